"""Stochastic gradient descent as one fused update on the flat vectors.

Plain SGD:        theta <- theta - lr * g
With momentum mu and weight decay wd (PyTorch's convention):
                  v <- mu * v + (g + wd * theta);   theta <- theta - lr * v
The step returns |theta_{t+1} - theta_t| = lr * |v|, the study's "batch update size", computed from
the step vector itself so it costs no extra copy of theta. On a GPU the whole step, norm included,
is one kernel (ops/cuda_sgd.py).
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
            from ops.cuda_sgd import sgd_update
            return sgd_update(self.theta, self.grad, lr, self.momentum, self.weight_decay,
                              self.velocity)
        direction = self.grad
        if self.weight_decay:
            direction = direction + self.weight_decay * self.theta
        if self.momentum:
            self.velocity *= self.momentum
            self.velocity += direction
            direction = self.velocity
        norm = lr * math.sqrt(float((direction.astype("float64") ** 2).sum()))
        self.theta -= lr * direction
        return norm

    def state(self):
        """Arrays that must be checkpointed to resume exactly (the momentum buffer, if any)."""
        return {} if self.velocity is None else {"velocity": self.velocity}
