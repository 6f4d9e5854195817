"""The update rules of `charrnn.optim` (Adam, RMSprop, Adagrad, SGD) on PyTorch tensors, with
the parameters, their gradients and the optimizer's state each in one flat buffer.

torch.optim differs from optim.py in places that matter for an exact resume across engines
(torch's RMSprop puts eps outside the square root as optim.py does, but names its decay alpha
and defaults it to 0.99, not char-rnn's 0.95; its Adam divides m and v elementwise instead of
folding the bias corrections into the step), so each rule is written here with the same
operations in the same order, on state named and shaped as optim.py's: a state slot per kind
("m", "v", "G", "u") and a step count t, t = 1 on the first step; weight decay shrinks the
same tensors (2 or more axes in either layout) by the same factor first. Equations: see optim.py.
The hyperparameters and their defaults come from optim.py's classes, the one source.

Every rule is elementwise, so it runs on the whole model at once: the parameters are views of
row 0 of one buffer (1 + S, P), slot s of row 1 + s, and the gradients of one (P,) buffer that
backward accumulates into. An update, the clipping scale, the finiteness check and a snapshot
are then a few tensor operations whatever the number of parameters (per-parameter operations
in Python cost a quarter of a small model's step on a CPU). The matrices come first, so that
weight decay is one operation on a prefix of row 0.
"""

import math

import torch

from charrnn.optim import make_optimizer


class TorchOptimizer:
    """optim.py's optimizer `name` over the named numpy `arrays` (torch layout; any shapes),
    copied to `device` in `dtype`.

        opt.params[key]       a leaf tensor (requires grad), a view of the buffer's row 0
        opt.state[slot][key]  its state in slot `slot`, same shape
        opt.grad              (P,) the gradients, which backward accumulates (zero it first)
    """

    def __init__(self, name, arrays, device, dtype, **hyper):
        reference = make_optimizer(name, {}, **hyper)  # validates; defaults and slots
        self.name = reference.name
        self.slots = reference.slots
        self.hyper = reference.hyperparams()
        self.t = 0
        keys = sorted(arrays, key=lambda k: arrays[k].ndim < 2)  # stable: matrices first
        sizes = [arrays[k].size for k in keys]
        self.decayed = sum(n for k, n in zip(keys, sizes) if arrays[k].ndim >= 2)
        self.buffer = torch.zeros((1 + len(self.slots), sum(sizes)), device=device, dtype=dtype)
        self.grad = torch.zeros(sum(sizes), device=device, dtype=dtype)
        starts = [sum(sizes[:i]) for i in range(len(keys))]

        def views(row):
            return {k: row[s: s + n].view(arrays[k].shape) for k, s, n in zip(keys, starts, sizes)}

        self.params = {}
        for k, view in views(self.buffer[0]).items():
            view.copy_(torch.from_numpy(arrays[k]))
            self.params[k] = view.detach().requires_grad_()  # a leaf on the same memory
        grads = views(self.grad)
        for k, p in self.params.items():
            p.grad = grads[k]  # backward accumulates in place into the flat buffer
        self.state = {s: views(self.buffer[1 + i]) for i, s in enumerate(self.slots)}

    def hyperparams(self):
        return dict(self.hyper)

    @torch.no_grad()
    def step(self, lr):
        """Update every parameter in place from `self.grad` with learning rate `lr`; t += 1
        first."""
        self.t += 1
        p, lr = self.buffer[0], float(lr)
        decay = lr * self.hyper["weight_decay"]
        if decay:
            w = p[: self.decayed]
            w.sub_(w * decay)  # decoupled weight decay, weight matrices only
        getattr(self, "_" + self.name)(p, self.grad, lr)

    def _row(self, slot):
        return self.buffer[1 + self.slots.index(slot)]

    def _adam(self, p, g, lr):
        b1, b2, eps = self.hyper["beta1"], self.hyper["beta2"], self.hyper["eps"]
        m, v = self._row("m"), self._row("v")
        c = math.sqrt(1.0 - b2 ** self.t)
        a = lr * c / (1.0 - b1 ** self.t)
        m.mul_(b1).add_(g * (1.0 - b1))  # m = b1 m + (1 - b1) g
        v.mul_(b2).add_(g * g * (1.0 - b2))  # v = b2 v + (1 - b2) g^2
        p.sub_(m / (v.sqrt() + eps * c) * a)  # p -= a m / (sqrt(v) + eps c)

    def _rmsprop(self, p, g, lr):
        alpha, eps = self.hyper["alpha"], self.hyper["eps"]
        v = self._row("v")
        v.mul_(alpha).add_(g * g * (1.0 - alpha))  # v = alpha v + (1 - alpha) g^2
        p.sub_(g / (v.sqrt() + eps) * lr)  # p -= lr g / (sqrt(v) + eps)

    def _adagrad(self, p, g, lr):
        G = self._row("G")
        G.add_(g * g)  # G += g^2
        p.sub_(g / (G.sqrt() + self.hyper["eps"]) * lr)

    def _sgd(self, p, g, lr):
        if self.slots:  # u = momentum u + g;  p -= lr u
            u = self._row("u")
            u.mul_(self.hyper["momentum"]).add_(g)
            g = u
        p.sub_(g * lr)

    def finite(self):
        """Whether every parameter and every state value is finite: one pass, as the buffer's
        least and greatest values (NaN propagates into both; torch.isfinite makes four passes
        on a CPU and costs a small model's step several percent)."""
        return bool(torch.isfinite(torch.stack(torch.aminmax(self.buffer))).all())

    def snapshot(self):
        """The parameters, the state and t (a copy), for `restore`."""
        return self.buffer.clone(), self.t

    @torch.no_grad()
    def restore(self, snap):
        """Inverse of `snapshot` (copies into the existing buffer)."""
        buffer, self.t = snap
        self.buffer.copy_(buffer)
