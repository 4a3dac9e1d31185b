"""Batch assembly: gather uint8 images by index and scale them to float32 in [0, 1] in one pass.

The plain NumPy form, x[idx].astype(float32) / 255, reads every pixel twice on one core (a uint8
copy, then the scaling into a new float32 array). This kernel reads each selected image once and
writes the scaled float32 straight into the batch, one image per thread of numba's pool (the pool the
training kernels use, so no other thread competes for the cores). Every value is
float32(v) / float32(255), correctly rounded, so the result is bit-identical to the NumPy form.
(Assembling the next batch on a worker thread during the step was measured too: on two cores the
step's kernels already use both, and the worker only slowed them.)
"""
import numpy as np
from numba import njit, prange

SCALE = np.float32(255.0)


@njit(cache=True, parallel=True)
def _gather_scaled(x, idx, out):
    """out[i] = x[idx[i]] / 255 in float32 (x uint8 (N, C, H, W), out float32 (len(idx), C, H, W))."""
    for i in prange(idx.size):
        src = x[idx[i]]
        dst = out[i]
        for c in range(src.shape[0]):
            for h in range(src.shape[1]):
                for w in range(src.shape[2]):
                    dst[c, h, w] = np.float32(src[c, h, w]) / SCALE


def gather_scaled(x, indices):
    """Images x[indices] (uint8 NCHW, memory-mapped or not) as a new C-contiguous float32 batch
    scaled to [0, 1]; negative indices count from the end, as in NumPy; IndexError out of range."""
    idx = np.asarray(indices, dtype=np.intp).reshape(-1)
    count = len(x)
    if idx.size and (idx.min() < -count or idx.max() >= count):
        raise IndexError(f"image index out of range for {count} images")
    out = np.empty((idx.size,) + tuple(x.shape[1:]), dtype=np.float32)
    _gather_scaled(x, idx % max(count, 1), out)
    return out
