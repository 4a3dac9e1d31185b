"""Reading a training run directory (config, layer table, metrics, saved flat vectors).

A run directory is the analyses' only input: `config.json`, `layers.json` (the flat-vector table),
`metrics.jsonl` (one object per epoch), `update_norms.npy`, `theta_{init,best,final}.npy` and
`status.json`. Missing or malformed pieces raise `AnalysisError` naming the file.
"""
import json
import os

import numpy as np

from storage.files import StorageError, load_npy

from .errors import AnalysisError

THETA_KINDS = ("init", "best", "final")


class Run:
    """One run directory, read lazily: each file is opened the first time it is asked for."""

    def __init__(self, path):
        if not os.path.isdir(path):
            raise AnalysisError(f"run directory not found: {path}")
        self.path = os.path.abspath(path)
        self.name = os.path.basename(os.path.normpath(self.path))
        self.config = self._json("config.json")
        self.table = self._json("layers.json")
        self.n_params = sum(int(row["size"]) for row in self.table)

    def _file(self, name):
        path = os.path.join(self.path, name)
        if not os.path.isfile(path):
            raise AnalysisError(f"{self.path} has no {name} (is it a finished training run?)")
        return path

    def _array(self, name):
        """A saved array as float64, read without unpickling; AnalysisError if it is not one."""
        try:
            return load_npy(self._file(name)).astype(np.float64).ravel()
        except StorageError as error:
            raise AnalysisError(f"{error}; is it a file this project wrote?") from None

    def _json(self, name):
        try:
            with open(self._file(name)) as f:
                return json.load(f)
        except json.JSONDecodeError as e:
            raise AnalysisError(f"{os.path.join(self.path, name)} is not valid JSON: {e}") from None

    def theta(self, kind="best"):
        """The saved flat vector `theta_<kind>.npy` as float64 (kind: init, best, final, or an
        equal-loss snapshot such as loss0.55)."""
        if kind not in THETA_KINDS and not kind.startswith("loss"):
            raise AnalysisError(f"unknown weights '{kind}' (choose from {', '.join(THETA_KINDS)} "
                                "or loss<level>)")
        vector = self._array(f"theta_{kind}.npy")
        if vector.size != self.n_params:
            raise AnalysisError(f"{self.path}/theta_{kind}.npy has {vector.size} values but "
                                f"layers.json describes {self.n_params}")
        return vector

    def metrics(self):
        """The per-epoch metric records of `metrics.jsonl`, in file order."""
        records = []
        with open(self._file("metrics.jsonl")) as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise AnalysisError(f"{self.path}/metrics.jsonl line {number} is not "
                                            "valid JSON") from None
        return records

    def update_norms(self):
        """Per-step update norms |theta_{t+1} - theta_t| as float64."""
        return self._array("update_norms.npy")

    def status(self):
        """The run's `status.json` (empty dict when the run wrote none)."""
        path = os.path.join(self.path, "status.json")
        return self._json("status.json") if os.path.isfile(path) else {}

    @property
    def args(self):
        """The training arguments (run.py nests them under "args"; a flat config also works)."""
        return self.config.get("args", self.config)

    @property
    def batch(self):
        """Global batch size of the run, or None when the config does not say."""
        return self.args.get("batch")

    @property
    def lr(self):
        """The learning rate actually used (after any scaling rule), or None when unknown."""
        return self.config.get("effective_lr", self.args.get("lr"))

    def label(self):
        """A short human label: directory name plus batch size and learning rate when known."""
        parts = [self.name]
        if self.batch is not None:
            parts.append(f"bs {self.batch}")
        if self.lr is not None:
            parts.append(f"lr {self.lr:g}")
        return ", ".join(parts)


def layout_key(table):
    """What must agree for two flat vectors to be comparable: names, shapes and offsets."""
    return [(row["name"], tuple(row["shape"]), int(row["offset"])) for row in table]


def check_same_model(runs):
    """Raise AnalysisError unless every run stores the same parameter layout."""
    first = runs[0]
    for other in runs[1:]:
        if layout_key(other.table) != layout_key(first.table):
            raise AnalysisError(f"runs hold different models: {first.path} and {other.path} "
                                "have different layer tables")
