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
def _pixel_quotient(typingctx, v):
    """The integer v (a pixel) over PIXEL_SCALE as a correctly rounded float32, from the reciprocal
    r and one correction, all fused multiply-adds (one rounding each):

        q = v r,   e = v - PIXEL_SCALE q (exact),   result q + e r

    Written as IR on one-lane vectors so that it survives a fastmath caller: numba adds the caller's
    flags to every float arithmetic instruction and to every call that returns a scalar float (and
    a callee that sets no flags inherits its caller's), and under reassociation LLVM folds e to
    v (1 - PIXEL_SCALE r) = 0. These vector calls carry no flags."""
    if not isinstance(v, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        lane = ir.VectorType(f32, 1)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lane, [lane] * 3), "llvm.fma.v1f32")
        x = (builder.sitofp if signature.args[0].signed else builder.uitofp)(args[0], f32)
        x = builder.insert_element(ir.Constant(lane, None), x, ir.Constant(ir.IntType(32), 0))
        scale = np.float32(PIXEL_SCALE)
        reciprocal = np.float32(1) / scale
        r, minus_scale = ir.Constant(lane, [float(reciprocal)]), ir.Constant(lane, [float(-scale)])
        q = builder.call(fma, [x, r, ir.Constant(lane, [-0.0])])  # v r, rounded once
        e = builder.call(fma, [q, minus_scale, x])
        return builder.extract_element(builder.call(fma, [e, r, q]), ir.Constant(ir.IntType(32), 0))

    return types.float32(v), codegen


@overload(input_value, inline="always")
def _input_value(v, like):
    """The compiled form: float(v) / 255 in like's dtype; in float32 _pixel_quotient, which equals
    the division for all 256 pixels (tests/test_pixels.py) and is cheaper: the division bound the
    copy into the first block's planes (49,152 pixels of a 128-px photo in ~10.7 us on the Xeon
    against ~6.0; a float64 product, which also rounds the same, took ~7.6)."""
    if not isinstance(v, types.Integer):
        return lambda v, like: v
    if like.dtype == types.float32:
        return lambda v, like: _pixel_quotient(v)
    return lambda v, like: np.float64(v) / PIXEL_SCALE
