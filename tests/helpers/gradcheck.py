"""Central finite differences for gradient checks (float64).

The relative error is taken over the whole array, max|a - b| / max(|a| + |b|): elementwise
ratios are dominated by round-off for entries near zero (with h = 1e-5 the difference quotient
carries an absolute error of about 1e-16 * |loss| / h = 1e-11, which is 1e-5 relative for a
1e-6 entry), while an array-wide ratio still fails for any entry that is wrong on the scale of
the gradient.
"""

import numpy as np


def rel_error(a, b):
    """max |a - b| / max(1e-8, max(|a| + |b|))."""
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


def numerical_grad(f, x, h=1e-5):
    """d f() / d x by central differences, perturbing x in place; f returns a scalar."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + h
        fp = f()
        x[idx] = old - h
        fm = f()
        x[idx] = old
        grad[idx] = (fp - fm) / (2 * h)
    return grad
