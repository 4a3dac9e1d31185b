"""Thread budget per rank: cores / ranks-on-this-node, set BEFORE numpy or numba load.

Ranks that each start one thread per core fight for the cores (measured: 2-8x slower). The MPI
launchers tell each process how many ranks share its node; the budget goes to numba, OpenMP and the
BLAS libraries through their environment variables, which they read once at import time.
"""
import os

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_LOCAL_SIZE")


def available_cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def ranks_on_this_node(environ=None):
    """Number of MPI ranks sharing this node (1 without a launcher)."""
    env = os.environ if environ is None else environ
    for key in LOCAL_SIZE_VARIABLES:
        if key in env:
            try:
                return max(1, int(env[key]))
            except ValueError:
                pass
    return 1


def configure_threads(requested=None, environ=None):
    """Set the thread variables to `requested` or cores // local ranks (at least 1); return it.

    Variables the user already set are left alone unless a count is requested explicitly.
    """
    env = os.environ if environ is None else environ
    threads = requested or max(1, available_cores() // ranks_on_this_node(env))
    for key in THREAD_VARIABLES:
        if requested or key not in env:
            env[key] = str(threads)
    return threads
