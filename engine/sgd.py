"""Stochastic gradient descent as one fused update on the flat vectors.

Plain SGD:        theta <- theta - lr * g
With momentum mu and weight decay wd (PyTorch's convention):
                  v <- mu * v + (g + wd * theta);   theta <- theta - lr * v
The step returns |theta_{t+1} - theta_t| = lr * |v|, the study's "batch update size", computed from
the step vector itself so it costs no extra copy of theta.
"""
import math


class SGD:
    """SGD on a flat parameter vector `theta` with gradient vector `grad`."""

    def __init__(self, theta, grad, momentum=0.0, weight_decay=0.0):
        if momentum < 0 or weight_decay < 0:
            raise ValueError("momentum and weight decay must be non-negative")
        self.theta, self.grad = theta, grad
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocity = grad * 0 if momentum else None

    def step(self, lr):
        """Apply one update with learning rate `lr`; return the update's Euclidean norm."""
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
