"""`load_dataset`: one entry point for the synthetic set, a local folder, or a downloaded archive."""
import operator
import os
import shutil
from pathlib import Path

import PIL

from imagedata import synthetic
from imagedata.archive import extract_zip
from imagedata.build import build_entry
from imagedata.cache import CacheEntry, cache_key, prune_stale
from imagedata.dataset import Dataset
from imagedata.download import DEFAULT_URL, FILTERED_URL, archive_downloaded, fetch_archive
from imagedata.errors import DataError
from imagedata.layouts import list_source
from imagedata.split import SPLIT_SEED

SYNTHETIC = "synthetic"
CATS_VS_DOGS = "cats_vs_dogs"
CATS_AND_DOGS_FILTERED = "cats_and_dogs_filtered"
MAX_IMAGE_SIZE = 2048


def default_cache_dir():
    """The decoded-image and download cache every command shares: $BATCHLAB_CACHE, else
    ~/.cache/batchlab (read at call time, so a changed environment is honoured)."""
    return Path(os.environ.get("BATCHLAB_CACHE", Path.home() / ".cache" / "batchlab"))


def _check_image_size(image_size) -> int:
    """image_size as a plain int (NumPy integers accepted); DataError unless 1..MAX_IMAGE_SIZE."""
    try:
        size = None if isinstance(image_size, bool) else operator.index(image_size)
    except TypeError:
        size = None
    if size is None or not 1 <= size <= MAX_IMAGE_SIZE:
        raise DataError(f"image size must be an integer from 1 to {MAX_IMAGE_SIZE}, not {image_size!r}")
    return size


def _load_synthetic(image_size: int, log) -> Dataset:
    """The built-in synthetic set (generated in memory, nothing cached)."""
    train_x, train_y, val_x, val_y = synthetic.make_synthetic(image_size)
    classes = list(synthetic.CLASSES)
    counts = {split: {c: int((y == k).sum()) for k, c in enumerate(classes)}
              for split, y in (("train", train_y), ("val", val_y))}
    log(f"data: built-in SYNTHETIC set ({' vs '.join(classes)}, {train_y.size} train + {val_y.size} val "
        f"at {image_size}x{image_size}) - generated shapes, not photos")
    identity = {"name": SYNTHETIC, "source": SYNTHETIC, "layout": SYNTHETIC, "image_size": image_size,
                "classes": classes, "counts": counts, "n_train": int(train_y.size),
                "n_val": int(val_y.size), "n_skipped": 0, "skipped": [], "skipped_by_reason": {},
                "split": f"fixed, generator seed {synthetic.SYNTHETIC_SEED}", "cache_key": None,
                "cache_used": False, "jfif_only": False}
    return Dataset(train_x, train_y, val_x, val_y, classes, identity)


def _file_stats(listing):
    """[relpath, label, split, size, mtime_ns] per file: any change to a file changes the cache key."""
    rows = []
    for e in listing.entries:
        try:
            st = os.stat(listing.root / e.relpath)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        rows.append([e.relpath, e.label, e.split, size, mtime])
    return rows


def _load_folder(folder, image_size: int, cache_dir: Path, jfif_only: bool, log,
                 show_progress=True) -> Dataset:
    """Decode a folder of images through the on-disk cache."""
    listing = list_source(folder)
    key = cache_key({"source": str(listing.root), "layout": listing.layout,
                     "classes": list(listing.classes), "files": _file_stats(listing),
                     "image_size": image_size, "jfif_only": jfif_only, "split_seed": SPLIT_SEED,
                     "pillow": PIL.__version__})
    entry = CacheEntry(cache_dir, key)
    try:
        entry.folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create cache folder {entry.folder.parent}: {e.strerror}") from None
    found, cache_used = entry.load(), True
    if found is None:
        with entry.lock():
            found = entry.load()  # another process may have built it while we waited
            if found is None:
                try:
                    build_entry(entry, listing, image_size, jfif_only, log, show_progress)
                except BaseException:
                    shutil.rmtree(entry.folder, ignore_errors=True)
                    raise
                prune_stale(cache_dir, key, {"source": str(listing.root), "image_size": image_size,
                                             "jfif_only": jfif_only})
                found, cache_used = entry.load(), False
    if found is None:
        raise DataError(f"cache entry {entry.folder} could not be read back; delete it and retry")
    arrays, meta = found
    if cache_used:
        log(f"data: using cached arrays from {entry.folder} (train {arrays['train_y'].size:,}, "
            f"val {arrays['val_y'].size:,}, {meta['n_skipped']:,} files skipped)")
    identity = {"name": "folder", "source": meta["source"], "layout": meta["layout"],
                "image_size": meta["image_size"], "classes": meta["classes"], "counts": meta["counts"],
                "n_train": int(arrays["train_y"].size), "n_val": int(arrays["val_y"].size),
                "n_files": meta["n_files"], "n_skipped": meta["n_skipped"], "skipped": meta["skipped"],
                "skipped_by_reason": meta["skipped_by_reason"], "split": meta["split"],
                "cache_key": key, "cache_used": cache_used, "jfif_only": meta["jfif_only"]}
    return Dataset(arrays["train_x"], arrays["train_y"], arrays["val_x"], arrays["val_y"],
                   list(meta["classes"]), identity)


def _load_download(name: str, url: str, image_size: int, cache_dir: Path, jfif_only: bool, log,
                   expected_sha256, progress, show_progress) -> Dataset:
    """Download (or resume) the archive `name` from `url` into the cache, verify, unpack, load."""
    archive = fetch_archive(url, cache_dir / "downloads", expected_sha256, progress, log, show_progress)
    stem = archive.path.name.rsplit(".", 1)[0]
    folder = extract_zip(archive.path, cache_dir / "extracted" / f"{stem}-{archive.sha256[:12]}")
    ds = _load_folder(folder, image_size, cache_dir, jfif_only, log, show_progress)
    ds.identity.update({"name": name, "source": url, "folder": str(folder),
                        "archive": {"url": url, "size": archive.size, "sha256": archive.sha256}})
    return ds


def load_dataset(source=None, image_size=128, cache_dir=None, seed=0, jfif_only=False, log=print,
                 download_url=None, expected_sha256=None, progress=None, show_progress=True) -> Dataset:
    """Load the data a run trains on, as a `Dataset` of uint8 NCHW arrays.

    source: None -> Microsoft's archive if it was downloaded into cache_dir before, else the built-in
    synthetic set; "synthetic" -> the synthetic set; "cats_vs_dogs" -> Microsoft's archive (loaded as
    PetImages) and "cats_and_dogs_filtered" (unless a folder of that name exists here) ->
    TensorFlow's 3,000 photos, each downloaded (or resumed) into cache_dir, verified, unpacked and
    loaded; anything else -> a folder path (layouts in imagedata.layouts). Decoded arrays are cached
    under cache_dir and reused while the folder's files are unchanged.
    seed is accepted so callers can pass the run's seed, and deliberately unused: a seed changes the
    initial weights and batch order, never the data or the train/validation split.
    jfif_only keeps only files whose first 10 bytes contain b"JFIF" (TensorFlow Datasets' filter).
    download_url / expected_sha256 / progress(done, total) apply to the downloads only.
    show_progress draws download and decoding bars on stderr (console.progress).
    log receives one-line progress messages. User mistakes raise DataError.
    """
    del seed  # documented above: the data never depends on the training seed
    image_size = _check_image_size(image_size)
    cache_dir = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser()
    if source is None:
        source = CATS_VS_DOGS if archive_downloaded(DEFAULT_URL, cache_dir / "downloads") else SYNTHETIC
    if source == SYNTHETIC:
        return _load_synthetic(image_size, log)
    downloads = {CATS_VS_DOGS: DEFAULT_URL, CATS_AND_DOGS_FILTERED: FILTERED_URL}  # name -> URL
    if source in downloads and not (source == CATS_AND_DOGS_FILTERED and Path(source).is_dir()):
        return _load_download(source, download_url or downloads[source], image_size, cache_dir,
                              jfif_only, log, expected_sha256, progress, show_progress)
    return _load_folder(source, image_size, cache_dir, jfif_only, log, show_progress)
