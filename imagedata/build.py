"""Build one cache entry from a listed folder: decode every file, split, write the arrays."""
import time
from collections import Counter

import numpy as np

from console.progress import progress_bar
from imagedata import decode as _decode
from imagedata.errors import DataError
from imagedata.split import SPLIT_SEED, stratified_split

REASON_NO_CLASS = "no class in file name"
SKIPPED_CAP = 200
COPY_ROWS = 256


def summarise(reasons: Counter) -> str:
    """'reason: count, ...' in descending count order, for log lines and error messages."""
    return ", ".join(f"{r}: {n}" for r, n in reasons.most_common())


def _decode_all(listing, image_size, jfif_only, scratch, show_progress):
    """Decode the listing's files into `scratch` rows; return (labels, splits, skipped, n_rows)."""
    labels, splits, skipped = [], [], []
    candidates = []
    for e in listing.entries:
        if e.label is None:
            skipped.append({"path": e.relpath, "reason": REASON_NO_CLASS})
        elif not _decode.has_image_extension(e.relpath):
            skipped.append({"path": e.relpath, "reason": _decode.REASON_NOT_IMAGE_NAME})
        else:
            candidates.append(e)
    bar = progress_bar(len(candidates), "decoding", unit="file", enabled=show_progress)
    for e in candidates:
        pixels, reason = _decode.decode_file(listing.root / e.relpath, image_size, jfif_only)
        if pixels is None:
            skipped.append({"path": e.relpath, "reason": reason})
        else:
            scratch[len(labels)] = pixels
            labels.append(e.label)
            splits.append(e.split)
        bar.update(1)
    bar.close()
    return np.asarray(labels, dtype=np.uint8), splits, skipped


def _split(labels, splits, n_classes):
    """Row indices of (train, val): the layout's own split if it has one, else the seeded 80/20."""
    if splits and all(s is not None for s in splits):
        tags = np.asarray(splits)
        return np.flatnonzero(tags == "train"), np.flatnonzero(tags == "val"), "own"
    train, val = stratified_split(labels, n_classes)
    return train, val, f"stratified 80/20, split seed {SPLIT_SEED}"


def _write_rows(entry, name, scratch, rows, image_size):
    """Copy the selected scratch rows into a new committed array, a few hundred rows at a time."""
    out = entry.scratch(name, (rows.size, 3, image_size, image_size))
    for start in range(0, rows.size, COPY_ROWS):
        out[start:start + COPY_ROWS] = scratch[rows[start:start + COPY_ROWS]]
    entry.commit(name, out)
    return out


def build_entry(entry, listing, image_size: int, jfif_only: bool, log, show_progress=True) -> dict:
    """Decode `listing` into `entry` (lock held by the caller) and return the meta written.

    Raises DataError if no file decodes or fewer than two classes keep an image; the partly written
    entry is removed in that case. show_progress draws a decoding bar on stderr.
    """
    entry.start()
    n_files = len(listing.entries)
    log(f"data: decoding {n_files:,} files from {listing.root} (layout {listing.layout}) "
        f"at {image_size}x{image_size}")
    t0 = time.perf_counter()
    scratch = entry.scratch("all_x", (n_files, 3, image_size, image_size))
    labels, splits, skipped = _decode_all(listing, image_size, jfif_only, scratch, show_progress)
    reasons = Counter(s["reason"] for s in skipped)
    if labels.size == 0:
        raise DataError(f"no readable images in {listing.root}: all {n_files:,} files were skipped "
                        f"({summarise(reasons)})")
    present = sorted(set(labels.tolist()))
    if len(present) < 2:
        raise DataError(f"only class {listing.classes[present[0]]} has readable images in "
                        f"{listing.root}; need at least two classes")
    train, val, split_rule = _split(labels, splits, len(listing.classes))
    arrays = {"train_x": _write_rows(entry, "train_x", scratch, train, image_size),
              "val_x": _write_rows(entry, "val_x", scratch, val, image_size),
              "train_y": labels[train], "val_y": labels[val]}
    entry.commit("train_y", arrays["train_y"])
    entry.commit("val_y", arrays["val_y"])
    del scratch
    entry.discard("all_x")
    skipped.sort(key=lambda s: s["path"])
    counts = {split: {c: int(np.sum(arrays[f"{split}_y"] == k)) for k, c in enumerate(listing.classes)}
              for split in ("train", "val")}
    log(f"data: decoded {labels.size:,} images in {time.perf_counter() - t0:.1f} s "
        f"(train {train.size:,}, val {val.size:,}); skipped {len(skipped):,}"
        + (f" ({summarise(reasons)})" if skipped else ""))
    meta = {"source": str(listing.root), "layout": listing.layout, "classes": list(listing.classes),
            "image_size": image_size, "jfif_only": jfif_only, "split": split_rule,
            "n_files": n_files, "counts": counts, "n_skipped": len(skipped),
            "skipped_by_reason": dict(reasons), "skipped": skipped[:SKIPPED_CAP]}
    return entry.finish(meta, arrays)
