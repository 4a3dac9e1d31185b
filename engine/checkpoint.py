"""Checkpoints: one .npz holding the flat vectors plus a JSON header, written atomically.

Everything needed to continue a run bit-exactly is in it: theta, the best theta, theta at the start
of the current epoch, the initial theta, the optimiser's buffers, the per-step update norms, and a
header with counters (epoch, step inside the epoch, global step), early-stopping state, the partial
training sums of the current epoch, the metrics so far and the layer table. The shuffling RNG is
derived from (seed, epoch), so the epoch counter is its whole state.
"""
import json

import numpy as np

from .params import tables_match
from storage.files import StorageError, atomic_save_npz, load_npz

FORMAT = "batchlab-checkpoint-1"
ARRAYS = ("theta", "theta_best", "theta_init", "theta_epoch_start", "update_norms")


class CheckpointError(Exception):
    """A checkpoint that cannot be used (corrupt, foreign, or for another model)."""


def save_checkpoint(path, header, arrays):
    """Write header (a JSON-able dict) and arrays (name -> ndarray) to `path` atomically."""
    payload = dict(arrays)
    blob = json.dumps({"format": FORMAT, **header}, sort_keys=True).encode()
    payload["header"] = np.frombuffer(blob, dtype=np.uint8)
    atomic_save_npz(path, payload)


def load_checkpoint(path, table):
    """Read a checkpoint and check it belongs to a model with layer table `table`.

    Returns (header, arrays). Raises CheckpointError with a one-line reason otherwise.
    """
    try:
        arrays = load_npz(path)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except StorageError as error:
        raise CheckpointError(str(error)) from None
    try:
        header = json.loads(bytes(arrays.pop("header")).decode())
    except (KeyError, ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not a batchlab checkpoint (no readable header)") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a batchlab checkpoint (format {header.get('format')!r})")
    if not tables_match(header.get("table", []), table):
        raise CheckpointError(f"{path} was written for a different model (layer table differs)")
    size = sum(row["size"] for row in table)
    for name in ARRAYS:
        if name not in arrays:
            raise CheckpointError(f"{path} lacks {name}")
        if name != "update_norms" and arrays[name].shape != (size,):
            raise CheckpointError(f"{path}: {name} has shape {arrays[name].shape}, expected ({size},)")
    return header, arrays
