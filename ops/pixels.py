"""Photos as network input: uint8 pixels whose value is v / 255 (the study's preprocessing).

The fast CPU kernels take the pixels themselves and divide while they copy them into their padded
planes (ops/numba_direct.py), so the float32 batch, four times the bytes, is never written or read
back. Every other path converts first with `pixels_to_float`, the definition.

A training batch need not even be copied out of the dataset: `PixelRows` names the photos by index
in their array (e.g. the memory-mapped cache), and the fast stack of the first blocks reads each
photo from there as it copies it into its planes; every other consumer gets the copy.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .backend import array_module

PIXEL_SCALE = 255


class PixelRows:
    """The photos source[indices] of a uint8 (N, C, H, W) array, not yet copied: a batch as the
    trainer hands it to the model. The fast CPU stack reads each photo straight from `source`
    (ops/block_numba.py: stack_forward); anything else takes the copy, `gather()` (np.asarray
    gives the same). Out-of-range indices raise IndexError here, before a kernel could read them."""

    def __init__(self, source, indices):
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(source)):
            raise IndexError(f"photo index out of range for {len(source)} photos")
        self.source = source if isinstance(source, np.ndarray) else np.asarray(source)
        self.indices = idx

    @property
    def shape(self):
        """The shape of the batch: (len(indices), C, H, W)."""
        return (len(self.indices),) + tuple(self.source.shape[1:])

    @property
    def dtype(self):
        """The pixels' dtype (uint8)."""
        return self.source.dtype

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, key):
        """Rows of the batch (a slice, e.g. one evaluation chunk), still uncopied."""
        if not isinstance(key, slice):
            raise TypeError("PixelRows takes slices only; gather() first for other indexing")
        return PixelRows(self.source, self.indices[key])

    def gather(self):
        """The batch copied into a new C-contiguous uint8 array (one block copy per photo)."""
        return np.asarray(self.source)[self.indices]

    def __array__(self, dtype=None, copy=None):
        """np.asarray(rows): the gathered batch (a new array whatever `copy` asks)."""
        batch = self.gather()
        return batch if dtype is None else batch.astype(dtype)


def gathered(x):
    """x itself, or the copied batch when x is PixelRows."""
    return x.gather() if isinstance(x, PixelRows) else x


def is_pixels(x):
    """True when x holds uint8 pixels rather than float values."""
    return x.dtype == array_module(x).uint8


def pixels_to_float(x, dtype):
    """x / 255 in `dtype` when x holds uint8 pixels (NumPy or CuPy, or PixelRows); float arrays pass
    unchanged."""
    if not is_pixels(x):
        return x
    x = gathered(x)
    dtype = np.dtype(dtype)
    return x.astype(dtype) / dtype.type(PIXEL_SCALE)


def input_value(v, like):
    """Element v of an input as a value of the float array `like`: a uint8 pixel becomes v / 255 in
    like's dtype, a float passes unchanged. Called from Python it applies the definition,
    pixels_to_float, to the one value; numba kernels get the overload below."""
    return pixels_to_float(np.asarray(v), like.dtype)[()]


@intrinsic
def _fused_multiply_add(typingctx, a, b, c):
    """a * b + c for three float32 values with one rounding (llvm.fma.f32), which numba has no
    function for: the exact quotient below depends on it."""
    if not all(t == types.float32 for t in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32, f32, f32]), "llvm.fma.f32")
        return builder.call(fma, args)

    return types.float32(a, b, c), codegen


@overload(input_value, inline="always")
def _input_value(v, like):
    """The compiled form: float(v) / 255 in like's dtype. In float32 the quotient comes from its
    reciprocal and one correction, q = v r, then q + (v - 255 q) r, both steps fused multiply-adds:
    the residual v - 255 q is exact, so the corrected q is the correctly rounded quotient (equal to
    the division for all 256 pixels: tests/test_pixels.py). The division it replaces bound the copy
    into the first block's planes: 49,152 pixels of a 128-px photo in ~10.7 us on the Xeon against
    ~6.0 (a float64 product, which also rounds the same, took ~7.6)."""
    if not isinstance(v, types.Integer):
        return lambda v, like: v
    if like.dtype == types.float32:
        scale = np.float32(PIXEL_SCALE)
        reciprocal = np.float32(1) / scale

        def quotient(v, like):
            x = np.float32(v)
            q = x * reciprocal
            return _fused_multiply_add(_fused_multiply_add(-q, scale, x), reciprocal, q)
        return quotient
    return lambda v, like: np.float64(v) / PIXEL_SCALE
