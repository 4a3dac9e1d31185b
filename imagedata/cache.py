"""On-disk cache of decoded arrays: one folder per cache key, uint8 .npy files read by memory map.

Layout: <cache_dir>/arrays/<key>/{train_x,train_y,val_x,val_y}.npy + meta.json, and a lock file
<cache_dir>/arrays/<key>.lock. Every file is written to a temporary name, fsynced and renamed into
place; meta.json is written last and marks the entry complete, so a reader that sees meta.json sees
whole arrays. Builders hold an exclusive flock on the lock file, so two processes (e.g. MPI ranks)
never build the same entry at once; readers of a complete entry need no lock.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from storage.files import atomic_write_bytes, fsync_dir
from storage.lock import file_lock

CACHE_FORMAT = 1
ARRAY_NAMES = ("train_x", "train_y", "val_x", "val_y")
META_NAME = "meta.json"


def cache_key(payload: dict) -> str:
    """Stable short hash of everything that determines the arrays (JSON with sorted keys)."""
    text = json.dumps({"format": CACHE_FORMAT, **payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class CacheEntry:
    """One cache key's folder: build under `lock()`, then `load()` from any number of processes."""

    def __init__(self, cache_dir: Path, key: str):
        self.key = key
        self.folder = Path(cache_dir).expanduser().resolve() / "arrays" / key
        self.lock_path = self.folder.with_name(f"{key}.lock")

    def lock(self):
        """Exclusive build lock for this key."""
        return file_lock(self.lock_path)

    def load(self):
        """Return (arrays dict, meta) for a complete entry, or None if absent or damaged.

        Arrays are opened read-only by memory map with allow_pickle=False (a cache file can never
        run code); zero-row arrays are read normally because an empty file cannot be mapped.
        """
        meta_path = self.folder / META_NAME
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            arrays = {}
            for name in ARRAY_NAMES:
                path = self.folder / f"{name}.npy"
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
                if arr.size == 0:
                    arr = np.load(path, allow_pickle=False)
                arrays[name] = arr
            intact = all(list(arrays[n].shape) == meta["shapes"][n] and arrays[n].dtype == np.uint8
                         for n in ARRAY_NAMES)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (arrays, meta) if intact else None

    def start(self) -> None:
        """Prepare an empty folder for a (re)build; call with the lock held."""
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)

    def scratch(self, name: str, shape) -> np.ndarray:
        """A writable uint8 memory-mapped .npy under a temporary name, for filling in place."""
        path = self.folder / f"{name}.npy.tmp-{os.getpid()}"
        if int(np.prod(shape)) == 0:
            np.save(path, np.zeros(shape, dtype=np.uint8), allow_pickle=False)
            return np.load(path, allow_pickle=False)
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=tuple(shape))

    def commit(self, name: str, array: np.ndarray) -> None:
        """Write `array` as <name>.npy atomically (fsync + rename)."""
        final = self.folder / f"{name}.npy"
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        if isinstance(array, np.memmap) and Path(array.filename) == tmp:
            array.flush()
        else:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(array, dtype=np.uint8), allow_pickle=False)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)

    def discard(self, name: str) -> None:
        """Delete a scratch array that is not part of the entry."""
        (self.folder / f"{name}.npy.tmp-{os.getpid()}").unlink(missing_ok=True)

    def finish(self, meta: dict, arrays: dict) -> dict:
        """Record the committed arrays' shapes in `meta` and write meta.json last, which marks the
        entry complete. Returns the meta as written."""
        meta = {**meta, "shapes": {n: list(arrays[n].shape) for n in ARRAY_NAMES}}
        fsync_dir(self.folder)
        atomic_write_bytes(self.folder / META_NAME, json.dumps(meta, indent=1).encode())
        return meta


def prune_stale(cache_dir: Path, keep: str, same: dict) -> list:
    """Delete complete entries whose meta matches `same` on every field but whose key differs.

    Used after a rebuild: the old arrays of a changed source folder are of no further use. Open
    memory maps held by other processes stay valid on POSIX after the files are unlinked. Lock
    files are kept: deleting one another process may be waiting on would split the lock in two.
    """
    removed = []
    for meta_path in sorted((Path(cache_dir) / "arrays").glob(f"*/{META_NAME}")):
        folder = meta_path.parent
        if folder.name == keep:
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if all(meta.get(k) == v for k, v in same.items()):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed
