"""The loaded data set: uint8 NCHW arrays (often memory-mapped) plus a record of where they came from."""
import mmap
from dataclasses import dataclass

import numpy as np

from imagedata.batching import batch_indices, gather_scaled
from ops.pixels import PixelRows

SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val"}


@dataclass
class Dataset:
    """Train/validation images (N, 3, H, W) uint8 and labels (N,) uint8, class names, identity.

    `identity` is a JSON-serialisable record (source, layout, counts, skipped files, cache key...)
    that run records store so every result names the exact data it was computed on.
    """
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    classes: list
    identity: dict

    def __post_init__(self):
        """Make the first epoch's batches as fast as the later ones': compile (or load from numba's
        cache) the batch kernel for these arrays, and map every page of memory-mapped images into
        this process by reading one byte per page (about 50 ms for 24,000 photos at 128 px, where
        first reads inside the epoch cost about 0.4 s: a page fault per 4 KiB of each image).
        The loader runs on rank 0 first under MPI, so ranks never write numba's cache at once."""
        for x in (self.train_x, self.val_x):
            gather_scaled(x, [])
            if isinstance(x, np.memmap) and x.size:
                x.reshape(-1)[::mmap.PAGESIZE].max()

    def arrays(self, split: str):
        """(images, labels) of 'train' or 'val' ('validation' accepted)."""
        try:
            which = SPLIT_ALIASES[split]
        except KeyError:
            raise ValueError(f"split must be 'train' or 'val', not {split!r}") from None
        return (self.train_x, self.train_y) if which == "train" else (self.val_x, self.val_y)

    def batch(self, split: str, indices):
        """Images scaled to [0, 1] as C-contiguous float32 NCHW, and float32 labels, for `indices`.

        `indices` may be in any order (a shuffled batch); pixels are divided by 255 in float32, as in
        the study's preprocessing, gathered and scaled in one pass (imagedata.batching).
        """
        x, y = self.arrays(split)
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        return gather_scaled(x, idx), np.asarray(y[idx], dtype=np.float32)

    def pixels(self, split: str, indices):
        """The same batch as `batch` with the images left as uint8 pixels (each standing for its
        value / 255), and not yet copied: ops.pixels.PixelRows, the photos named by index in this
        dataset's array (np.asarray(rows) is the copy). What training hands the model: its first
        blocks read each photo from the array and divide as they read (ops/block_numba.py)."""
        x, y = self.arrays(split)
        idx = batch_indices(x, indices)
        return PixelRows(x, idx), np.asarray(y[idx], dtype=np.float32)
