"""Layers: small callables that apply a Function to a Tensor with their parameters.

Layers own no storage: their weight and bias Tensors are views into the flat parameter store.
"""
from .functions import ConvReLUPoolFn, ConvStackFn, Conv2DFn, DenseFn, FlattenFn, MaxPool2x2Fn, ReLUFn


class Conv2D:
    """Convolution, stride 1, 'same' padding; weight (out, in, k, k), bias (out,)."""

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias

    def __call__(self, x):
        return Conv2DFn()(x, self.weight, self.bias)


class ReLU:
    """Elementwise max(x, 0)."""

    def __call__(self, x):
        return ReLUFn()(x)


class MaxPool2D:
    """2x2 max-pool with stride 2 (odd sizes floored)."""

    def __call__(self, x):
        return MaxPool2x2Fn()(x)


class ConvReLUPool:
    """Conv2D -> ReLU -> MaxPool2D as one fused op (same math, no pre-pool activation stored).
    With the fast CPU kernels, as the first layer, it takes uint8 pixels as they are (ops/pixels.py);
    for the others the model converts them once, before the first layer."""

    def __init__(self, weight, bias, kernels):
        self.weight, self.bias, self.kernels = weight, bias, kernels
        self.reads_pixels = kernels == "fast"

    def __call__(self, x):
        return ConvReLUPoolFn(self.kernels)(x, self.weight, self.bias)


class ConvStack:
    """Several ConvReLUPool blocks in a row as one op (ConvStackFn): the same numbers, but each
    sample goes through all of them before the next. `blocks` is [(weight, bias)] in order."""

    def __init__(self, blocks, kernels):
        self.blocks, self.kernels = list(blocks), kernels
        self.reads_pixels = kernels == "fast"  # as for ConvReLUPool
        # and photos named by index in the dataset (ops.pixels.PixelRows), read where they are
        self.reads_rows = kernels == "fast"

    def __call__(self, x):
        return ConvStackFn(self.kernels)(x, *(t for block in self.blocks for t in block))


class Flatten:
    """(N, C, H, W) -> (N, C*H*W), C-major, so weights exchange with other frameworks' NCHW nets."""

    def __call__(self, x):
        return FlattenFn()(x)


class Dense:
    """Fully connected layer; weight (out, in), bias (out,); `kernels` as for ConvReLUPool."""

    def __init__(self, weight, bias, kernels="reference"):
        self.weight, self.bias, self.kernels = weight, bias, kernels

    def __call__(self, x):
        return DenseFn(self.kernels)(x, self.weight, self.bias)
