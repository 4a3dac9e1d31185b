"""Launching numba.cuda kernels on the arrays of either backend.

The GPU kernels (ops/cuda_*.py) are numba.cuda kernels. On a GPU they run on CuPy arrays, which numba
reads through the CUDA array interface without a copy; with NUMBA_ENABLE_CUDASIM=1 numba's CUDA
simulator runs the very same kernel source on NumPy arrays on the CPU, one Python thread per CUDA
thread, with CUDA's blocks, shared memory and barriers. That is how CI executes every line of them.

Every kernel walks its elements with a grid-stride loop (element t, t + gridsize, ...), so any grid
covers any size: on a GPU the grid fills the device; under the simulator, where each thread costs
an interpreter thread, two small blocks walk many elements each.
"""
import math

from numba import cuda
from numba.core import config

SIMULATED = bool(config.ENABLE_CUDASIM)
# Threads per block, a power of two (block_sum's tree relies on it), and the most blocks a launch
# uses. The simulator starts an operating-system thread per CUDA thread, and a manager thread polls
# them while they take turns at the interpreter lock: every hand-over waits for the scheduler, so
# on a loaded machine a launch of 384 threads took seconds of waiting for milliseconds of work. In
# simulation a launch has two blocks of 16 threads, still several of each for every barrier.
THREADS = 16 if SIMULATED else 128
MAX_BLOCKS = 2 if SIMULATED else 4096


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

