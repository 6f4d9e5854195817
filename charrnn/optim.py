"""Global-norm gradient clipping, the optimizers (Adam, RMSprop, Adagrad, SGD; each with
optional decoupled weight decay) and the learning-rate schedule."""

import math

import numpy as np

from charrnn.config import DEFAULT_LR  # noqa: F401  (re-exported: the rates of these optimizers)


def clip_grad_norm(grads, max_norm):
    """Scale all gradients together so that their global L2 norm is at most `max_norm`.

        norm = sqrt(sum_k sum(grads[k] ** 2))        (accumulated in float64)
        if 0 < max_norm < norm < inf:  grads[k] *= max_norm / norm   (in place, every k)

    `max_norm == 0` turns clipping off. A non-finite norm (inf or nan) is returned as it is and
    the gradients are left untouched: scaling by max_norm / inf would turn every finite
    gradient into 0 (or nan), and the caller is expected to skip the step after checking
    `math.isfinite(norm)` (a float64 overflow, norm > ~1e154, also reads as inf). Returns the
    norm before clipping, as a Python float.
    """
    if max_norm < 0:
        raise ValueError(f"max_norm must be >= 0 (0 = no clipping), got {max_norm}")
    total = 0.0
    for g in grads.values():
        flat = g.reshape(-1)
        # einsum casts in buffered chunks: float64 sums without a float64 copy of g
        total += float(np.einsum("i,i->", flat, flat, dtype=np.float64))
    norm = math.sqrt(total)  # inf and nan pass through
    if max_norm > 0 and math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm


class Optimizer:
    """Base class: per-parameter state arrays keyed by parameter name, and their (de)serialisation.

    A subclass names its kinds of state in `slots` (e.g. ("m", "v")) and implements
    `_update(key, p, g, lr, buf)`, which updates one parameter in place using
    `self.state[slot][key]` and `buf`, its preallocated scratch array (contents undefined between calls).

    Every optimizer takes `weight_decay` (lambda, default 0): decoupled weight decay
    (Loshchilov & Hutter 2019, "AdamW"), applied before the rule's own step to the weight
    matrices only (parameters with 2 or more axes; biases are not decayed):

        W -= lr * lambda * W          (lr * lambda < 1: `train` refuses more)

    It shrinks weights at a rate that does not pass through Adam's or RMSprop's division by
    sqrt(v), unlike an L2 term added to the loss. In float32, like any update smaller than
    2**-24 of a weight, a decay with lr * lambda below about 6e-8 is lost to rounding.
    """

    name = ""
    slots = ()

    def __init__(self, params, weight_decay=0.0, **hyper):
        for key, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
                raise ValueError(f"parameter {key!r} must be a float32 or float64 array")
        if not 0.0 <= weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        self._hyper = {**{k: float(v) for k, v in hyper.items()}, "weight_decay": float(weight_decay)}
        self.t = 0
        self.state = {s: {k: np.zeros_like(p) for k, p in params.items()} for s in self.slots}
        self.scratch = {k: np.empty_like(p) for k, p in params.items()}

    def step(self, params, grads, lr):
        """Update every parameter in place with learning rate `lr`; t += 1 first (t = 1 on step one)."""
        self.t += 1
        decay = float(lr) * self._hyper["weight_decay"]
        for key, buf in self.scratch.items():
            p = params[key]
            if decay and p.ndim >= 2:  # decoupled weight decay: W -= lr * lambda * W
                np.multiply(p, decay, out=buf)
                p -= buf
            self._update(key, p, grads[key], float(lr), buf)

    def _update(self, key, p, g, lr, buf):
        raise NotImplementedError

    def hyperparams(self):
        """JSON-safe {"name": ..., hyper: value}; `make_optimizer(params=p, **opt.hyperparams())` rebuilds it."""
        return {"name": self.name, **self._hyper}

    def state_arrays(self):
        """Copies of the state, flat: {"<slot>.<param name>": array, "t": 0-d int64}, for an .npz."""
        arrays = {f"{s}.{k}": a.copy() for s, per_key in self.state.items() for k, a in per_key.items()}
        arrays["t"] = np.array(self.t, dtype=np.int64)
        return arrays

    def load_state_arrays(self, arrays):
        """Inverse of `state_arrays`: afterwards steps continue bit for bit like the saved optimizer.

        Everything is checked before anything is changed; a ValueError names the first problem.
        """
        expected = {f"{s}.{k}": a for s, per_key in self.state.items() for k, a in per_key.items()}
        missing = sorted((set(expected) | {"t"}) - set(arrays))
        if missing:
            raise ValueError(f"{self.name} optimizer state is missing {_first_few(missing)}")
        unexpected = sorted(set(arrays) - set(expected) - {"t"})
        if unexpected:
            raise ValueError(f"{self.name} optimizer state has unexpected entries {_first_few(unexpected)}")
        t = np.asarray(arrays["t"])
        if t.shape != () or t.dtype.kind not in "iu" or int(t) < 0:
            raise ValueError(f"{self.name} optimizer state has an invalid step count 't'")
        for name, dst in expected.items():
            src = np.asarray(arrays[name])
            if src.shape != dst.shape:
                raise ValueError(
                    f"{self.name} optimizer state {name!r} has shape {src.shape}, the model needs {dst.shape}"
                )
            if src.dtype.kind != "f":
                raise ValueError(f"{self.name} optimizer state {name!r} is not a float array")
        for name, dst in expected.items():
            np.copyto(dst, arrays[name], casting="same_kind")
        self.t = int(t)


def _first_few(names, n=3):
    """'a', 'b', 'c' (and 4 more) — for error messages."""
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f" (and {len(names) - n} more)" if len(names) > n else "")


def _check_decay(name, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _check_eps(eps):
    if not eps > 0.0:
        raise ValueError(f"eps must be > 0, got {eps}")


def _divide_step(p, num, sq, lr, eps, buf):
    """p -= lr * num / (sqrt(sq) + eps), in place through `buf` (the step shared by Adam, RMSprop, Adagrad)."""
    np.sqrt(sq, out=buf)
    buf += eps
    np.divide(num, buf, out=buf)
    buf *= lr
    p -= buf


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction.

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t),  v_hat = v / (1 - beta2**t)
        p -= lr * m_hat / (sqrt(v_hat) + eps)

    computed as p -= a * m / (sqrt(v) + eps * c) with c = sqrt(1 - beta2**t) and
    a = lr * c / (1 - beta1**t), the same quantity without dividing v and m elementwise.
    At t = 1, m_hat = g and v_hat = g**2, so each parameter moves by about lr * sign(g).
    """

    name = "adam"
    slots = ("m", "v")

    def __init__(self, params, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        _check_decay("beta1", beta1)
        _check_decay("beta2", beta2)
        _check_eps(eps)
        super().__init__(params, weight_decay, beta1=beta1, beta2=beta2, eps=eps)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _update(self, key, p, g, lr, buf):
        b1, b2 = self.beta1, self.beta2
        m, v = self.state["m"][key], self.state["v"][key]
        c = math.sqrt(1.0 - b2**self.t)
        a = lr * c / (1.0 - b1**self.t)
        m *= b1  # m = b1 m + (1 - b1) g
        np.multiply(g, 1.0 - b1, out=buf)
        m += buf
        v *= b2  # v = b2 v + (1 - b2) g^2
        np.multiply(g, g, out=buf)
        buf *= 1.0 - b2
        v += buf
        _divide_step(p, m, v, a, self.eps * c, buf)  # p -= a m / (sqrt(v) + eps c)


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012), as in karpathy/char-rnn (alpha is its decay_rate).

        v = alpha * v + (1 - alpha) * g**2
        p -= lr * g / (sqrt(v) + eps)
    """

    name = "rmsprop"
    slots = ("v",)

    def __init__(self, params, alpha=0.95, eps=1e-8, weight_decay=0.0):
        _check_decay("alpha", alpha)
        _check_eps(eps)
        super().__init__(params, weight_decay, alpha=alpha, eps=eps)
        self.alpha, self.eps = float(alpha), float(eps)

    def _update(self, key, p, g, lr, buf):
        v = self.state["v"][key]
        v *= self.alpha  # v = alpha v + (1 - alpha) g^2
        np.multiply(g, g, out=buf)
        buf *= 1.0 - self.alpha
        v += buf
        _divide_step(p, g, v, lr, self.eps, buf)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011), as in min-char-rnn.

        G += g**2
        p -= lr * g / (sqrt(G) + eps)
    """

    name = "adagrad"
    slots = ("G",)

    def __init__(self, params, eps=1e-8, weight_decay=0.0):
        _check_eps(eps)
        super().__init__(params, weight_decay, eps=eps)
        self.eps = float(eps)

    def _update(self, key, p, g, lr, buf):
        G = self.state["G"][key]
        np.multiply(g, g, out=buf)  # G += g^2
        G += buf
        _divide_step(p, g, G, lr, self.eps, buf)


class SGD(Optimizer):
    """Stochastic gradient descent, with heavy-ball momentum when momentum > 0.

        momentum == 0:  p -= lr * g
        momentum  > 0:  u = momentum * u + g;  p -= lr * u      (u starts at 0)
    The velocity u is state only when momentum > 0.
    """

    name = "sgd"

    def __init__(self, params, momentum=0.0, weight_decay=0.0):
        _check_decay("momentum", momentum)
        self.slots = ("u",) if momentum > 0 else ()
        super().__init__(params, weight_decay, momentum=momentum)
        self.momentum = float(momentum)

    def _update(self, key, p, g, lr, buf):
        if self.slots:
            u = self.state["u"][key]
            u *= self.momentum  # u = momentum u + g
            u += g
            g = u
        np.multiply(g, lr, out=buf)
        p -= buf


OPTIMIZERS = {cls.name: cls for cls in (Adam, RMSprop, Adagrad, SGD)}



def make_optimizer(name, params, **hyper):
    """The optimizer called `name` (see OPTIMIZERS) over `params`; ValueError for an unknown name."""
    cls = OPTIMIZERS.get(name)
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return cls(params, **hyper)


class LRSchedule:
    """Learning rate for a step: linear warm-up, then constant or cosine decay.

        step < warmup_steps:   lr = base_lr * (step + 1) / warmup_steps
        otherwise, progress None (length of training unknown):   lr = base_lr
        otherwise:   p = clamp(progress, 0, 1)
                     lr = base_lr * (min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2)

    `step` counts from 0 (the update about to be made); `progress` is the fraction of the
    training budget used (max steps, epochs or time limit), so the rate falls from base_lr at
    progress 0 to base_lr * min_ratio at progress 1 (base_lr / 2 * (1 + min_ratio) halfway).
    """

    def __init__(self, base_lr, warmup_steps=100, min_ratio=0.1):
        if not (base_lr > 0 and math.isfinite(base_lr)):
            raise ValueError(f"learning rate must be a positive number, got {base_lr}")
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a whole number >= 0, got {warmup_steps}")
        if not 0.0 <= min_ratio <= 1.0:
            raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
        self.base_lr = float(base_lr)
        self.warmup_steps = int(warmup_steps)
        self.min_ratio = float(min_ratio)

    def __call__(self, step, progress=None):
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if progress is None:
            return self.base_lr
        p = min(max(float(progress), 0.0), 1.0)
        return self.base_lr * (self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))

    def to_json(self):
        return {"base_lr": self.base_lr, "warmup_steps": self.warmup_steps, "min_ratio": self.min_ratio}

    @classmethod
    def from_json(cls, d):
        """Inverse of `to_json`; ValueError for missing entries or invalid values."""
        missing = [k for k in ("base_lr", "warmup_steps", "min_ratio") if k not in d]
        if missing:
            raise ValueError(f"learning-rate schedule is missing {', '.join(missing)}")
        return cls(d["base_lr"], d["warmup_steps"], d["min_ratio"])
