"""A job in which the last rank raises while the others wait in a collective.

Usage: mpirun -n N python fail.py MODE. MODE "uncaught": the exception escapes to the interpreter
(the communicator's excepthook must abort the job). MODE "main": the exception is raised inside
run.py's main(), whose handler must abort the job.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import numpy as np  # noqa: E402

import run  # noqa: E402
from parallel import get_communicator  # noqa: E402


class InjectedFailure(RuntimeError):
    """The error the failing rank raises."""


def work(comm):
    """Every rank but the last enters a gradient sum the last never joins."""
    if comm.rank == comm.size - 1:
        raise InjectedFailure(f"injected failure on rank {comm.rank}")
    comm.allreduce_sum_(np.ones(1000, dtype=np.float32))
    comm.barrier()


def main(mode):
    if mode == "uncaught":
        work(get_communicator())
    else:
        run.train_command = lambda argv, comm: work(comm)
        sys.exit(run.main([]))


if __name__ == "__main__":
    main(sys.argv[1])
