"""ReLU. Backward needs only the output: relu'(x) = 1 exactly where relu(x) > 0."""
from .backend import array_module


def relu_forward(x):
    """y = max(x, 0)."""
    return array_module(x).maximum(x, 0)


def relu_backward(y, gy):
    """dL/dx = dL/dy where y > 0, else 0 (the kink at 0 gets gradient 0)."""
    return gy * (y > 0)
