"""Stochastic gradient descent as one fused update on the flat vectors.

Plain SGD:        theta <- theta - lr * g
With momentum mu and weight decay wd (PyTorch's convention):
                  v <- mu * v + (g + wd * theta);   theta <- theta - lr * v
The step returns |theta_{t+1} - theta_t| = lr * |v|, the study's "batch update size", computed from
the step vector itself so it costs no extra copy of theta. The whole step, norm included, is one
pass: a numba kernel on the CPU (ops/numba_sgd.py), a CUDA kernel on a GPU (ops/cuda_sgd.py).
"""
import math


from ops.backend import is_gpu_array


class SGD:
    """SGD on a flat parameter vector `theta` with gradient vector `grad`.

    `cuda_kernel` (default: when theta is a GPU array) applies the update with the fused GPU kernel;
    True also runs it on NumPy arrays under numba's CUDA simulator."""

    def __init__(self, theta, grad, momentum=0.0, weight_decay=0.0, cuda_kernel=None):
        if momentum < 0 or weight_decay < 0:
            raise ValueError("momentum and weight decay must be non-negative")
        self.theta, self.grad = theta, grad
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocity = grad * 0 if momentum else None
        self.cuda_kernel = is_gpu_array(theta) if cuda_kernel is None else cuda_kernel

    def step(self, lr):
        """Apply one update with learning rate `lr`; return the update's Euclidean norm."""
        if self.cuda_kernel:
            from ops import cuda_sgd
            return cuda_sgd.sgd_update(self.theta, self.grad, lr, self.momentum,
                                       self.weight_decay, self.velocity)
        from ops.numba_sgd import sgd_update  # here, so that importing the engine does not load numba
        scalar = self.theta.dtype.type  # the update's arithmetic stays in the vectors' dtype
        velocity = self.velocity if self.momentum else self.theta[:0]  # an unused, empty view
        squares = sgd_update(self.theta, self.grad, scalar(lr), scalar(self.momentum),
                             scalar(self.weight_decay), velocity)
        return lr * math.sqrt(squares)

    def state(self):
        """Arrays that must be checkpointed to resume exactly (the momentum buffer, if any)."""
        return {} if self.velocity is None else {"velocity": self.velocity}
