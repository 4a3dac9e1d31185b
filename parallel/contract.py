"""What a communicator must do: the one interface the training loop, the runner and the study use,
met by LocalCommunicator (one process) and MPICommunicator (mpi4py). Every collective must be called
by every rank, in the same order; methods ending in `_` change their argument in place."""
from typing import Protocol, runtime_checkable


@runtime_checkable
class Communicator(Protocol):
    """Rank `rank` of `size` processes; `local_rank` of `local_size` on this node (it picks a GPU)."""

    rank: int
    size: int
    local_rank: int
    local_size: int

    @property
    def is_root(self):
        """True on rank 0, the rank that writes files and prints."""

    def shard(self, count):
        """This rank's contiguous slice of `count` items (shares differ by at most one)."""

    def broadcast_(self, array):
        """Make `array` equal rank 0's copy, in place; returns it."""

    def allreduce_sum_(self, array):
        """Replace `array` by its elementwise sum over ranks, in place, identical bits everywhere."""

    def sum_values(self, values):
        """Sum a list of floats over ranks (float64, correctly rounded); the sums on every rank."""

    def any_flag(self, flag):
        """True on every rank if `flag` is true on any rank (how ranks agree to stop or fail)."""

    def barrier(self):
        """Wait until every rank arrives."""

    def abort(self, code):
        """End the whole job with exit code `code` (no rank is left waiting in a collective)."""
