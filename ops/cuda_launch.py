"""Launching numba.cuda kernels on the arrays of either backend.

The GPU kernels (ops/cuda_*.py) are numba.cuda kernels. On a GPU they run on CuPy arrays, which numba
reads through the CUDA array interface without a copy; with NUMBA_ENABLE_CUDASIM=1 numba's CUDA
simulator runs the very same kernel source on NumPy arrays on the CPU, one Python thread per CUDA
thread, with CUDA's blocks, shared memory and barriers. That is how CI executes every line of them.

Every kernel walks its elements with a grid-stride loop (element t, t + gridsize, ...), so any grid
covers any size: on a GPU the grid fills the device; under the simulator, where each thread costs
an interpreter thread, a few blocks walk many elements each.
"""
import math

from numba import cuda
from numba.core import config

THREADS = 128  # threads per block; a power of two, which block_sum's tree relies on
SIMULATED = bool(config.ENABLE_CUDASIM)
MAX_BLOCKS = 3 if SIMULATED else 4096


def blocks_for(total):
    """Blocks for a grid-stride launch over `total` elements."""
    return max(1, min(math.ceil(total / THREADS), MAX_BLOCKS))


def launch(kernel, total, *args):
    """Run `kernel` over `total` elements with a grid-stride launch."""
    kernel[blocks_for(total), THREADS](*args)


@cuda.jit(device=True)
def block_sum(shared, value):
    """Sum `value` over the threads of one block (tree reduction in shared memory); every thread
    gets the total. All threads of the block must call it."""
    tid = cuda.threadIdx.x
    shared[tid] = value
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if tid < step:
            shared[tid] += shared[tid + step]
        cuda.syncthreads()
        step //= 2
    total = shared[0]
    cuda.syncthreads()  # nobody may overwrite shared[0] before every thread has read it
    return total

