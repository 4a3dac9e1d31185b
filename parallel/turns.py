"""Collective patterns built on the communicator contract: rank 0 first, then the others, with the
errors agreed on; and a JSON document from rank 0 to every rank."""
import json

import numpy as np

from .messages import first_message


class RankFailure(Exception):
    """An expected error on some rank, raised on every rank alike; `rank` is the lowest that failed
    and the message is its own, prefixed "rank k: " when k is not rank 0."""

    def __init__(self, rank, message):
        super().__init__(message if rank == 0 else f"rank {rank}: {message}")
        self.rank, self.reason = rank, message


def root_first(comm, fn, expected=(Exception,)):
    """Run `fn()` on rank 0, then on the other ranks, and return its result. For work that fills a
    shared cache (images, numba kernels): rank 0 builds it alone, the others then read it instead
    of racing to build it too. An `expected` error on any rank becomes a RankFailure on every rank,
    carrying the lowest failing rank's message; other errors propagate on their own rank only."""
    result, error = None, None
    for root_turn in (True, False):
        if root_turn == comm.is_root:
            try:
                result = fn()
            except expected as exc:
                error = str(exc) or type(exc).__name__
        comm.barrier()
    rank, message = first_message(comm, error)
    if message is not None:
        raise RankFailure(rank, message)
    return result


def broadcast_json(comm, document):
    """Rank 0's JSON-serializable `document`, on every rank (the others pass anything, e.g. None).
    Sent as its UTF-8 bytes through the array broadcast: first the length, then the bytes."""
    blob = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8) if comm.is_root else None
    length = np.array([0 if blob is None else blob.size], dtype=np.int64)
    comm.broadcast_(length)
    buffer = blob.copy() if blob is not None else np.empty(int(length[0]), dtype=np.uint8)
    comm.broadcast_(buffer)
    return json.loads(buffer.tobytes().decode())
