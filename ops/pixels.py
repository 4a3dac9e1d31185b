"""Photos as network input: uint8 pixels whose value is v / 255 (the study's preprocessing).

The fast CPU kernels take the pixels themselves and divide while they copy them into their padded
planes (ops/numba_direct.py), so the float32 batch, four times the bytes, is never written or read
back. Every other path converts first with `pixels_to_float`, the definition.
"""
import numpy as np
from numba import types
from numba.extending import overload

from .backend import array_module

PIXEL_SCALE = 255


def is_pixels(x):
    """True when x holds uint8 pixels rather than float values."""
    return x.dtype == array_module(x).uint8


def pixels_to_float(x, dtype):
    """x / 255 in `dtype` when x holds uint8 pixels (NumPy or CuPy); float arrays pass unchanged."""
    if not is_pixels(x):
        return x
    dtype = np.dtype(dtype)
    return x.astype(dtype) / dtype.type(PIXEL_SCALE)


def input_value(v, like):
    """Element v of an input as a value of the float array `like`: a uint8 pixel becomes v / 255 in
    like's dtype, a float passes unchanged. Called from Python it applies the definition,
    pixels_to_float, to the one value; numba kernels get the overload below."""
    return pixels_to_float(np.asarray(v), like.dtype)[()]


@overload(input_value, inline="always")
def _input_value(v, like):
    """The compiled form: the definition itself, float(v) / 255 in like's dtype. (A float32 division
    converts and scales 49,152 pixels of a 128-px photo in ~6 us here; the float64 product that
    rounds the same took ~10: the copy into the first block's planes is bound by this arithmetic.)"""
    if not isinstance(v, types.Integer):
        return lambda v, like: v
    if like.dtype == types.float32:
        return lambda v, like: np.float32(v) / np.float32(PIXEL_SCALE)
    return lambda v, like: np.float64(v) / PIXEL_SCALE
