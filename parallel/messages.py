"""One rank's reason, told to every rank: how a failure on rank k reaches rank 0, which prints."""
import numpy as np


def first_message(comm, message):
    """(rank, message) of the lowest rank whose `message` is not None, on every rank; (None, None)
    when no rank has one. Every rank must call it (it is a collective).

    The text travels through the gradient sum: every rank contributes a zero buffer except the
    chosen one, which writes its UTF-8 bytes, so the sum is exactly those bytes.
    """
    encoded = b"" if message is None else message.encode("utf-8", "replace")
    # per rank: 0 for no message, else 1 + its length in bytes (so an empty message still counts)
    spread = [0.0] * comm.size
    spread[comm.rank] = 0.0 if message is None else 1.0 + len(encoded)
    lengths = comm.sum_values(spread)
    rank = next((r for r, n in enumerate(lengths) if n > 0), None)
    if rank is None:
        return None, None
    buffer = np.zeros(int(lengths[rank]) - 1, dtype=np.int32)
    if comm.rank == rank:
        buffer[:] = np.frombuffer(encoded, dtype=np.uint8)
    if buffer.size:
        comm.allreduce_sum_(buffer)
    return rank, buffer.astype(np.uint8).tobytes().decode("utf-8", "replace")
