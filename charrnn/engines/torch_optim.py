"""The update rules of `charrnn.optim` (Adam, RMSprop, Adagrad, SGD) on PyTorch tensors.

torch.optim differs from optim.py in places that matter for an exact resume across engines
(torch's RMSprop puts eps outside the square root as optim.py does, but names its decay alpha
and defaults it to 0.99, not char-rnn's 0.95; its Adam divides m and v elementwise instead of
folding the bias corrections into the step), so each rule is written here with the same
operations in the same order, on state named and shaped as optim.py's: a state slot per kind
("m", "v", "G", "u") and a step count t, t = 1 on the first step; weight decay shrinks the
same tensors (2 or more axes in either layout) by the same factor first. Equations: see optim.py.
The hyperparameters and their defaults come from optim.py's classes, the one source.
"""

import math

import torch

from charrnn.optim import make_optimizer


class TorchOptimizer:
    """optim.py's optimizer `name` over a dict of parameter tensors (any layout: every rule is
    elementwise). `state[slot][key]` has the shape of `params[key]`."""

    def __init__(self, name, params, **hyper):
        reference = make_optimizer(name, {}, **hyper)  # validates; defaults and slots
        self.name = reference.name
        self.slots = reference.slots
        self.hyper = reference.hyperparams()
        self.t = 0
        self.state = {s: {k: torch.zeros_like(p) for k, p in params.items()} for s in self.slots}

    def hyperparams(self):
        return dict(self.hyper)

    @torch.no_grad()
    def step(self, params, grads, lr):
        """Update every parameter in place with learning rate `lr`; t += 1 first."""
        self.t += 1
        rule = getattr(self, "_" + self.name)
        decay = float(lr) * self.hyper["weight_decay"]
        for key, p in params.items():
            if decay and p.dim() >= 2:
                p.sub_(p * decay)  # decoupled weight decay, weight matrices only
            rule(key, p, grads[key], float(lr))

    def _adam(self, key, p, g, lr):
        b1, b2, eps = self.hyper["beta1"], self.hyper["beta2"], self.hyper["eps"]
        m, v = self.state["m"][key], self.state["v"][key]
        c = math.sqrt(1.0 - b2 ** self.t)
        a = lr * c / (1.0 - b1 ** self.t)
        m.mul_(b1).add_(g * (1.0 - b1))  # m = b1 m + (1 - b1) g
        v.mul_(b2).add_(g * g * (1.0 - b2))  # v = b2 v + (1 - b2) g^2
        p.sub_(m / (v.sqrt() + eps * c) * a)  # p -= a m / (sqrt(v) + eps c)

    def _rmsprop(self, key, p, g, lr):
        alpha, eps = self.hyper["alpha"], self.hyper["eps"]
        v = self.state["v"][key]
        v.mul_(alpha).add_(g * g * (1.0 - alpha))  # v = alpha v + (1 - alpha) g^2
        p.sub_(g / (v.sqrt() + eps) * lr)  # p -= lr g / (sqrt(v) + eps)

    def _adagrad(self, key, p, g, lr):
        G = self.state["G"][key]
        G.add_(g * g)  # G += g^2
        p.sub_(g / (G.sqrt() + self.hyper["eps"]) * lr)

    def _sgd(self, key, p, g, lr):
        if self.slots:  # u = momentum u + g;  p -= lr u
            u = self.state["u"][key]
            u.mul_(self.hyper["momentum"]).add_(g)
            g = u
        p.sub_(g * lr)

    def clone_state(self):
        return {s: {k: a.clone() for k, a in per.items()} for s, per in self.state.items()}, self.t

    @torch.no_grad()
    def load_state(self, snap):
        """Inverse of `clone_state` (copies into the existing tensors)."""
        state, self.t = snap
        for s, per in state.items():
            for k, a in per.items():
                self.state[s][k].copy_(a)

    def tensors(self):
        return [a for per in self.state.values() for a in per.values()]
