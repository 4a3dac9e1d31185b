"""Differentiable wrappers around the ops: each keeps exactly what its backward needs."""
from ops.activation import relu_backward, relu_forward
from ops.block import (conv_relu_pool_backward, conv_relu_pool_forward, conv_relu_pool_stack_backward,
                       conv_relu_pool_stack_forward)
from ops.conv import conv2d_backward, conv2d_forward
from ops.dense import dense_backward, dense_forward
from ops.loss import bce_with_logits_grad, bce_with_logits_sum
from ops.pool import maxpool2x2_backward, maxpool2x2_forward

from .tensor import Function, is_recording


class Conv2DFn(Function):
    """'same' convolution plus bias; keeps the input and the weight."""

    def forward(self, x, w, b):
        self.x, self.w = x, w
        return conv2d_forward(x, w, b)

    def backward(self, gy):
        return conv2d_backward(self.x, self.w, gy, need_gx=self.needs_grad[0])


class ReLUFn(Function):
    """max(x, 0); keeps only its output."""

    def forward(self, x):
        self.y = relu_forward(x)
        return self.y

    def backward(self, gy):
        return (relu_backward(self.y, gy),)


class MaxPool2x2Fn(Function):
    """2x2/2 max-pool; keeps the winner index of each window and the input shape."""

    def forward(self, x):
        y, self.winner = maxpool2x2_forward(x)
        self.x_shape = x.shape
        return y

    def backward(self, gy):
        return (maxpool2x2_backward(gy, self.winner, self.x_shape),)


class ConvReLUPoolFn(Function):
    """The fused VGG block; keeps the input, the weight and one uint8 code per pooled output."""

    def __init__(self, kernels):
        self.kernels = kernels

    def forward(self, x, w, b):
        y, code = conv_relu_pool_forward(x, w, b, kernels=self.kernels)
        self.x, self.w, self.code = x, w, code
        return y

    def backward(self, gy):
        return conv_relu_pool_backward(self.x, self.w, self.code, gy,
                                       need_gx=self.needs_grad[0], kernels=self.kernels)


class ConvStackFn(Function):
    """Several fused blocks in a row as one op, inputs (x, w1, b1, w2, b2, ...): on the fast CPU
    kernels each sample goes through all of them before the next, so a block's output and its
    gradient are handed on while they are in cache (ops/block.py: conv_relu_pool_stack_forward).
    Keeps the input, the weights, every block's output and codes."""

    def __init__(self, kernels):
        self.kernels = kernels

    def forward(self, x, *params):
        ws, bs = params[0::2], params[1::2]
        # without a graph to record (evaluation) the inner outputs and codes need not be kept
        ys, codes = conv_relu_pool_stack_forward(x, ws, bs, kernels=self.kernels, keep=is_recording())
        self.x, self.ws, self.ys, self.codes = x, ws, ys, codes
        return ys[-1]

    def backward(self, gy):
        gx, gws, gbs = conv_relu_pool_stack_backward(self.x, self.ws, self.ys, self.codes, gy,
                                                     need_gx=self.needs_grad[0], kernels=self.kernels)
        return (gx,) + tuple(g for pair in zip(gws, gbs) for g in pair)


class FlattenFn(Function):
    """(N, C, H, W) -> (N, C*H*W) in C, H, W order."""

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, gy):
        return (gy.reshape(self.x_shape),)


class DenseFn(Function):
    """y = x W^T + b; keeps the input and the weight. `kernels="fast"` splits the products over the
    numba threads (ops/numba_dense.py); otherwise NumPy's BLAS, on one thread in a tuned process."""

    def __init__(self, kernels="reference"):
        self.kernels = kernels

    def forward(self, x, w, b):
        self.x, self.w = x, w
        return dense_forward(x, w, b, kernels=self.kernels)

    def backward(self, gy):
        return dense_backward(self.x, self.w, gy, need_gx=self.needs_grad[0], kernels=self.kernels)


class BCEWithLogitsFn(Function):
    """Sum of per-example binary cross-entropies divided by `denominator`.

    The denominator is the GLOBAL batch size: with the batch split over ranks, each rank's loss is its
    share of the global mean, so summing gradients across ranks gives exactly the global mean's
    gradient. With `kernels="cuda"` one GPU kernel computes the losses and the gradient together.
    """

    def __init__(self, denominator, kernels="fast"):
        self.denominator, self.kernels = denominator, kernels

    def forward(self, logits, labels):
        self.logits, self.labels = logits, labels
        if self.kernels == "cuda":
            from ops.cuda_loss import bce_with_logits
            loss_sum, self.gz = bce_with_logits(logits.reshape(-1), labels, self.denominator)
            return loss_sum / self.denominator
        return bce_with_logits_sum(logits.reshape(-1), labels) / self.denominator

    def backward(self, g):
        gz = self.gz if self.kernels == "cuda" else bce_with_logits_grad(
            self.logits.reshape(-1), self.labels, self.denominator)
        return (g * gz).reshape(self.logits.shape), None
