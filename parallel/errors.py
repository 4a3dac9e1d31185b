"""Errors of the parallel layer that callers turn into one-line messages."""


class MPIUnavailableError(RuntimeError):
    """Started under an MPI launcher with several ranks, but mpi4py cannot be imported."""
