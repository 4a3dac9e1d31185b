"""The loaded data set: uint8 NCHW arrays (often memory-mapped) plus a record of where they came from."""
from dataclasses import dataclass

import numpy as np

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
        the study's preprocessing.
        """
        x, y = self.arrays(split)
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        out = np.empty((idx.size,) + tuple(x.shape[1:]), dtype=np.float32)
        np.divide(x[idx], np.float32(255.0), out=out)
        return out, np.asarray(y[idx], dtype=np.float32)
