"""Data parallelism: communicators that the training loop is handed.

`get_communicator()` returns an MPI communicator when the process was started by an MPI launcher
(mpirun/mpiexec) and a LocalCommunicator otherwise, so one process needs neither MPI nor mpi4py.
"""
from .contract import Communicator
from .local import LocalCommunicator, shard_bounds
from .turns import RankFailure, broadcast_json, root_first


def launched_by_mpi(environ=None):
    """True when an MPI launcher started this process with more than one rank."""
    import os
    env = os.environ if environ is None else environ
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        if key in env:
            try:
                return int(env[key]) > 1
            except ValueError:
                return False
    return False


def get_communicator():
    """An MPI communicator under mpirun with several ranks, else the single-process one."""
    if launched_by_mpi():
        from .mpi import MPICommunicator
        return MPICommunicator()
    return LocalCommunicator()


__all__ = ["Communicator", "LocalCommunicator", "RankFailure", "broadcast_json", "get_communicator",
           "launched_by_mpi", "root_first", "shard_bounds"]
