"""The single-process communicator: every collective is the identity."""


def shard_bounds(count, rank, size):
    """[start, stop) of rank's contiguous share of `count` items; the first count % size ranks get one
    more, so shares differ by at most one item (uneven splits allowed, empty shares too)."""
    base, extra = divmod(count, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class LocalCommunicator:
    """One process, rank 0 of 1: collectives return their input."""

    rank = 0
    size = 1
    local_rank = 0
    local_size = 1

    @property
    def is_root(self):
        """True on the rank that writes files and prints (always, here)."""
        return True

    def shard(self, count):
        """This rank's slice of `count` items."""
        return slice(*shard_bounds(count, self.rank, self.size))

    def broadcast_(self, array):
        """Make `array` equal rank 0's copy, in place."""
        return array

    def allreduce_sum_(self, array):
        """Replace `array` by its sum over ranks, in place."""
        return array

    def sum_values(self, values):
        """Sum a list of floats over ranks (float64, exact reductions of sums and counts)."""
        return [float(v) for v in values]

    def any_flag(self, flag):
        """True on every rank if `flag` is true on any rank (used to agree on stopping)."""
        return bool(flag)

    def barrier(self):
        """Wait until every rank arrives."""

    def abort(self, code):
        """End the whole job with exit code `code`."""
        raise SystemExit(code)
