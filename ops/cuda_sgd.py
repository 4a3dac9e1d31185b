"""GPU kernel: the whole SGD update of the flat parameter vector in one pass, returning its norm.

Same update as engine/sgd.py (PyTorch's convention), for every element:
    d = g + wd * theta;   v <- mu * v + d, d = v (with momentum);   theta <- theta - lr * d
and |theta_{t+1} - theta_t| = lr * sqrt(sum d^2). Each block adds its threads' d^2 in float64
shared memory; the array module adds the blocks' sums. The scalars are passed in the vectors' dtype
so the arithmetic is the dtype's, as in the NumPy update.
"""
import math

from numba import cuda, float64

from .backend import array_module
from .cuda_launch import THREADS, block_sum, blocks_for


@cuda.jit
def _sgd_kernel(theta, grad, velocity, lr, momentum, weight_decay, block_sums):
    shared = cuda.shared.array(THREADS, float64)
    squares = 0.0
    for t in range(cuda.grid(1), theta.size, cuda.gridsize(1)):
        d = grad[t]
        if weight_decay != 0:
            d = d + weight_decay * theta[t]
        if momentum != 0:
            d = momentum * velocity[t] + d
            velocity[t] = d
        squares += float64(d) * float64(d)
        theta[t] = theta[t] - lr * d
    total = block_sum(shared, squares)
    if cuda.threadIdx.x == 0:
        block_sums[cuda.blockIdx.x] = total


def sgd_update(theta, grad, lr, momentum=0.0, weight_decay=0.0, velocity=None):
    """Update theta (and velocity, needed when momentum > 0) in place; return the update's norm."""
    xp = array_module(theta)
    scalar = theta.dtype.type
    blocks = blocks_for(theta.size)
    block_sums = xp.empty(blocks, dtype=xp.float64)
    # without momentum the velocity argument is never read; grad stands in for it
    _sgd_kernel[blocks, THREADS](theta, grad, grad if velocity is None else velocity, scalar(lr),
                                 scalar(momentum), scalar(weight_decay), block_sums)
    return lr * math.sqrt(float(block_sums.sum()))
