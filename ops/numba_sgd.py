"""The CPU SGD update of the flat parameter vector in one pass, returning its norm (numba).

engine/sgd.py calls it on the CPU (ops/cuda_sgd.py is the GPU's); PyTorch's convention, for every element:
    d = g + wd * theta;   v <- mu * v + d, d = v (with momentum);   theta <- theta - lr * d
and |theta_{t+1} - theta_t| = lr * sqrt(sum d^2). The scalars arrive in the vectors' dtype, so the
update's arithmetic is the dtype's, exactly as NumPy's (no fused multiply-adds). Only the float64
sum of d^2 may be reassociated, so that it vectorises: its order is fixed by the compiled code,
not by the run.
"""
import numpy as np
from numba import njit

@njit(cache=True, fastmath={"reassoc"})
def sgd_update(theta, grad, lr, momentum, weight_decay, velocity):
    """Update theta (and velocity when momentum != 0) in place; return sum(d^2) in float64.

    velocity may be empty when momentum is 0."""
    squares = 0.0
    for i in range(theta.size):
        d = grad[i]
        if weight_decay != 0:
            d = d + weight_decay * theta[i]
        if momentum != 0:
            d = momentum * velocity[i] + d
            velocity[i] = d
        squares += np.float64(d) * np.float64(d)
        theta[i] = theta[i] - lr * d
    return squares


def warmup(dtype=np.float32):
    """Compile (or load from numba's on-disk cache) the update for `dtype` on a tiny vector."""
    theta = np.zeros(3, dtype)
    scalar = theta.dtype.type
    sgd_update(theta, np.ones(3, dtype), scalar(0.1), scalar(0.9), scalar(0.1), np.zeros(3, dtype))
