"""Fully connected layer y = x W^T + b, with W stored (out, in) as in PyTorch/Keras exchange format."""


def dense_forward(x, w, b):
    """x: (N, in), w: (out, in), b: (out,) -> y: (N, out)."""
    return x @ w.T + b


def dense_backward(x, w, gy, need_gx=True):
    """Gradients of y = x W^T + b: gx = gy W, gW = gy^T x, gb = sum_n gy."""
    gx = gy @ w if need_gx else None
    return gx, gy.T @ x, gy.sum(axis=0)
