"""GPU kernel: the binary cross-entropy on logits and its gradient, in one pass.

Same formulas as ops/loss.py, per example (z a logit, y a label in {0, 1}, s the logistic function):
    loss = max(z, 0) - z y + log(1 + exp(-|z|))
    dloss/dz / denominator = ((1 - y) s(z) - y s(-z)) / denominator,
    s(z) = exp(-logaddexp(0, -z)),   logaddexp(0, t) = max(t, 0) + log(1 + exp(-|t|)),
finite for any finite logit. The kernel writes both per example; the array module sums the losses.
"""
import math

from numba import cuda

from .backend import array_module
from .cuda_launch import launch


@cuda.jit(device=True)
def _sigmoid(z):
    t = -z
    return math.exp(-(max(t, 0) + math.log1p(math.exp(-abs(t)))))


@cuda.jit
def _bce_kernel(z, y, denominator, loss, grad):
    for t in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        zt, yt = z[t], y[t]
        loss[t] = max(zt, 0) - zt * yt + math.log1p(math.exp(-abs(zt)))
        grad[t] = ((1 - yt) * _sigmoid(zt) - yt * _sigmoid(-zt)) / denominator


def bce_with_logits(z, y, denominator):
    """(sum of the losses of logits z (N,) against labels y (N,), d(sum / denominator)/dz)."""
    xp = array_module(z)
    loss = xp.empty(z.shape, dtype=z.dtype)
    grad = xp.empty(z.shape, dtype=z.dtype)
    launch(_bce_kernel, z.size, z, y, z.dtype.type(denominator), loss, grad)
    return loss.sum(), grad
