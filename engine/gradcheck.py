"""Numerical gradient checks: float64 central differences, the oracle every analytic gradient is
tested against.

For f: R^n -> R and a direction d, (f(x + h d) - f(x - h d)) / 2h = <grad f(x), d> + O(h^2).
Checking every coordinate (d = e_i) is exact but costs 2n evaluations, fine for small ops; for a
whole model, a few random directions test every parameter at once.
"""
import numpy as np


def relative_error(a, b):
    """||a - b|| / max(||a||, ||b||) over whole arrays (0 when both are 0).

    Taken over the whole array rather than per element: an element that is nearly zero carries the
    finite-difference rounding error (~1e-10) alone and would dominate a per-element maximum.
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def numerical_gradient(f, x, h=1e-6):
    """Central-difference gradient of scalar f at array x (perturbed in place and restored)."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


def directional_derivative(f, x, direction, h=1e-6):
    """Central-difference estimate of <grad f(x), direction>; x is perturbed in place and restored."""
    original = x.copy()
    x += h * direction
    up = f()
    x[...] = original - h * direction
    down = f()
    x[...] = original
    return (up - down) / (2 * h)
