"""Crash-safe files: every write goes to a temporary file, is fsynced, then renamed over the target,
so a reader (or a resumed run) sees either the old complete file or the new complete file, never a
torn one. Arrays are read with allow_pickle=False: nothing the project reads is ever unpickled."""
import io
import json
import os

import numpy as np


class StorageError(Exception):
    """A file the project wrote cannot be read back as expected (corrupt, foreign, or pickled)."""


def fsync_dir(folder):
    """Make renames inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path, data):
    """Write `data` to `path` atomically (temp file in the same folder, fsync, rename, fsync dir)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = path  # a failed write() names no file; the user needs to know which
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def to_jsonable(value):
    """Nested numpy values turned into plain JSON types (dict keys as strings)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def atomic_write_json(path, obj):
    """Write a JSON document atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save_npy(path, array):
    """Save one array as .npy atomically."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def load_npy(path):
    """Load a .npy written by the project; object arrays (pickles) are refused."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise StorageError(f"{path}: refused to load ({error})") from None
    except (OSError, EOFError) as error:
        raise StorageError(f"{path}: not a readable .npy file ({error})") from None
    if not isinstance(array, np.ndarray) or array.dtype.hasobject:
        raise StorageError(f"{path}: not a numeric array")
    return array


def atomic_save_npz(path, arrays):
    """Save a dict of arrays as one .npz file atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())


def load_npz(path):
    """Load every array of a .npz written by the project into a dict; pickles are refused."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, KeyError) as error:
        raise StorageError(f"{path}: not a readable checkpoint ({error})") from None
    except Exception as error:  # zipfile.BadZipFile and friends from a truncated file
        raise StorageError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
