"""Recognise the folder layout of an image data set and list its files in a deterministic order.

Supported layouts (the `layout` value recorded in the data identity):
- "petimages":  Microsoft's PetImages/{Cat,Dog}/N.jpg (given the folder holding PetImages or PetImages)
- "tensorflow": {train,validation}/<class>/* as in TensorFlow's cats_and_dogs_filtered (own split)
- "kaggle":     train/<class>.N.jpg as in Kaggle's dogs-vs-cats (class from the file-name prefix)
- "generic":    ROOT/<class>/* (files may sit in nested folders below the class folder)
Classes are sorted by name, so label 0 is the first class (cat = 0, dog = 1 in every cats/dogs layout).
A folder wrapping exactly one sub-folder (e.g. the folder holding cats_and_dogs_filtered) is entered.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

from imagedata.errors import DataError

TRAIN_NAMES = ("train", "training")
VAL_NAMES = ("validation", "val", "valid")
KAGGLE_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)\.\d+\.[A-Za-z0-9]+$")
MAX_WRAPPER_DEPTH = 3
LAYOUT_HINT = ("expected PetImages/{Cat,Dog}/*.jpg, train/{cat,dog}.N.jpg, "
               "{train,validation}/<class>/* or <class>/* folders")


@dataclass(frozen=True)
class Entry:
    """One file of the data set: path relative to the listing root, class label, own split or None.

    label is None for a file whose class could not be read from its name (Kaggle layout).
    """
    relpath: str
    label: int | None
    split: str | None


@dataclass(frozen=True)
class Listing:
    """All files of a recognised data set, in sorted order, with paths relative to `root`: the
    folder the layout was found in (PetImages, the folder holding train/validation, the Kaggle file
    folder, or the parent of the class folders), so any way of pointing at it shares one cache."""
    layout: str
    root: Path
    classes: tuple
    entries: tuple


def _visible(name: str) -> bool:
    """Hidden files and tool folders (.DS_Store, __MACOSX) are not data."""
    return not name.startswith(".") and not name.startswith("__")


def _children(folder: Path):
    """Visible sub-folders and files of `folder`, each sorted by name."""
    dirs, files = [], []
    with os.scandir(folder) as it:
        for item in it:
            if not _visible(item.name):
                continue
            (dirs if item.is_dir() else files).append(item.name)
    return sorted(dirs), sorted(files)


def _walk(folder: Path, top: Path):
    """Relative paths (to `top`) of all visible files below `folder`, in sorted order."""
    out = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        rel = os.path.relpath(here, top)
        out.extend(os.path.normpath(os.path.join(rel, f)) for f in sorted(files) if _visible(f))
    return out


def _kaggle_prefix(name: str):
    """Class prefix of a Kaggle-style file name like 'cat.123.jpg', else None."""
    m = KAGGLE_NAME.match(name)
    return m.group(1) if m else None


def _looks_kaggle(folder: Path) -> bool:
    """A flat folder of files of which at least one is named <class>.N.<ext>."""
    dirs, files = _children(folder)
    return not dirs and any(_kaggle_prefix(f) for f in files)


def _class_tree(base: Path, layout: str) -> Listing:
    """ROOT/<class>/... : every visible sub-folder of `base` is a class."""
    classes, _ = _children(base)
    if len(classes) < 2:
        _too_few_classes(base, classes)
    entries = [Entry(rel, label, None)
               for label, name in enumerate(classes) for rel in _walk(base / name, base)]
    return Listing(layout, base, tuple(classes), tuple(entries))


def _split_tree(base: Path, train: Path, val: Path) -> Listing:
    """{train,validation}/<class>/... : the data set's own split, classes must agree."""
    train_classes, _ = _children(train)
    val_classes, _ = _children(val)
    if train_classes != val_classes:
        raise DataError(f"class folders differ between {train} ({', '.join(train_classes) or 'none'}) "
                        f"and {val} ({', '.join(val_classes) or 'none'})")
    if len(train_classes) < 2:
        _too_few_classes(train, train_classes)
    entries = [Entry(rel, label, split)
               for split, folder in (("train", train), ("val", val))
               for label, name in enumerate(train_classes) for rel in _walk(folder / name, base)]
    return Listing("tensorflow", base, tuple(train_classes), tuple(entries))


def _kaggle(folder: Path) -> Listing:
    """train/<class>.N.jpg : the class is the file-name prefix; unnamed files get label None."""
    _, files = _children(folder)
    prefixes = [_kaggle_prefix(f) for f in files]
    classes = sorted({p for p in prefixes if p})
    if len(classes) < 2:
        raise DataError(f"data folder {folder} has file names of only one class ({classes[0]}); "
                        "need at least two")
    entries = [Entry(f, classes.index(p) if p else None, None) for f, p in zip(files, prefixes)]
    return Listing("kaggle", folder, tuple(classes), tuple(entries))


def _too_few_classes(folder: Path, classes):
    """Raise the one-line error for a folder with zero or one class folder."""
    if not classes:
        raise DataError(f"data folder {folder} has no class folders; {LAYOUT_HINT}")
    raise DataError(f"data folder {folder} has only one class folder ({classes[0]}); need at least two")


def _first_present(dirs, names):
    """The first of `names` that is among `dirs`, else None."""
    return next((n for n in names if n in dirs), None)


def _detect(folder: Path, depth: int) -> Listing:
    """Try each layout rule in order of specificity."""
    dirs, files = _children(folder)
    if "PetImages" in dirs:
        return _class_tree(folder / "PetImages", "petimages")
    if folder.name == "PetImages":
        return _class_tree(folder, "petimages")
    train, val = _first_present(dirs, TRAIN_NAMES), _first_present(dirs, VAL_NAMES)
    if train and val and _children(folder / train)[0]:
        return _split_tree(folder, folder / train, folder / val)
    if train and _looks_kaggle(folder / train):
        return _kaggle(folder / train)
    if not dirs and _looks_kaggle(folder):
        return _kaggle(folder)
    if not dirs and not files:
        raise DataError(f"data folder {folder} is empty")
    if len(dirs) == 1:
        child = folder / dirs[0]
        if depth < MAX_WRAPPER_DEPTH and (_children(child)[0] or _looks_kaggle(child)):
            return _detect(child, depth + 1)
        _too_few_classes(folder, dirs)
    if dirs:
        return _class_tree(folder, "generic")
    raise DataError(f"cannot recognise the layout of {folder}: {LAYOUT_HINT}")


def list_source(path) -> Listing:
    """Find the layout of the folder at `path` and list its files; DataError if it is unusable."""
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise DataError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder")
    listing = _detect(root, 0)
    if not listing.entries:
        raise DataError(f"the class folders of {listing.root} hold no files")
    return listing
