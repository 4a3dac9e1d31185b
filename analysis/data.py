"""From a run directory to objectives: rebuild the run's model and reload the run's data.

The model architecture comes from config.json ("model"), the data source and image size from its
training arguments; `--data` and `--cache-dir` can override where the images are found. Everything
that touches the image loader sits in `load_run_dataset`.
"""
from pathlib import Path

import numpy as np

from .errors import AnalysisError
from .objective import ModelObjective
from .rundir import layout_key

SPLITS = ("train", "val")


def build_run_model(run, dtype="float32", kernels="fast", xp=None):
    """A fresh engine model with the run's architecture (on `xp`'s device: numpy by default, cupy
    for a GPU); its layout must match layers.json."""
    from engine.model import ModelConfig, build_model
    spec = run.config.get("model", {})
    config = ModelConfig(image_size=int(spec.get("image_size", run.args.get("image_size", 128))),
                         filters=tuple(spec.get("filters", ModelConfig.filters)),
                         dense=tuple(spec.get("dense", ModelConfig.dense)))
    model = build_model(config, seed=0, dtype=dtype, kernels=kernels,
                        **({} if xp is None else {"xp": xp}))
    if layout_key(model.table) != layout_key(run.table):
        raise AnalysisError(f"the model described by {run.path}/config.json does not match its "
                            "layers.json")
    return model


def load_run_dataset(run, data=None, cache_dir=None, log=None, show_progress=True):
    """The run's dataset (same source and image size as training) via imagedata.load_dataset;
    the loader's progress lines go to `log`, its download and decoding bars to stderr unless
    `show_progress` is off."""
    from imagedata import DataError, load_dataset
    source = data if data is not None else run.args.get("data")
    try:
        return load_dataset(source, image_size=int(run.args.get("image_size", 128)),
                            cache_dir=Path(cache_dir) if cache_dir else None,
                            jfif_only=bool(run.args.get("jfif_only", False)),
                            show_progress=show_progress,
                            **({} if log is None else {"log": log}))
    except DataError as error:
        raise AnalysisError(f"cannot load the data of {run.path}: {error}") from None


def example_subset(count, limit, seed=0):
    """Sorted indices of a seeded random subset of `limit` of `count` examples (all if no limit).

    Splits may be stored class by class, so a prefix would not be a fair sample."""
    if limit is None or limit >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def split_objective(model, dataset, split, limit=None, seed=0, batch_size=256):
    """ModelObjective of `model` on a (possibly subsampled) split of `dataset`."""
    if split not in SPLITS:
        raise AnalysisError(f"unknown split '{split}' (choose from {', '.join(SPLITS)})")
    x, y = getattr(dataset, f"{split}_x"), getattr(dataset, f"{split}_y")
    if len(x) == 0:
        raise AnalysisError(f"the {split} split is empty")
    indices = example_subset(len(x), limit, seed)
    return ModelObjective(model, x[indices], np.asarray(y)[indices], batch_size)
