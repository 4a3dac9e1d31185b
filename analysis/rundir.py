"""A training run folder as the analyses read it: storage.runfolder's RunFolder, whose read
failures are AnalysisErrors naming the file, with the config and layer table read at once, the
weights as float64, and the run's batch size and learning rate."""
import os

import numpy as np

from storage.runfolder import RunFolder

from .errors import AnalysisError


class Run(RunFolder):
    """One run folder: config.json and layers.json read on opening, the rest when asked for."""

    error = AnalysisError

    def __init__(self, path):
        if not os.path.isdir(path):
            raise AnalysisError(f"run directory not found: {path}")
        super().__init__(os.path.abspath(path))
        self.config = self.read_config()
        self.table = self.read_layers()
        self.n_params = sum(int(row["size"]) for row in self.table)

    def theta(self, kind="best"):
        """The saved flat vector `theta_<kind>.npy` as float64 (kind: init, best, final, or an
        equal-loss snapshot such as loss0.55)."""
        vector = self.load_theta(kind).astype(np.float64).ravel()
        if vector.size != self.n_params:
            raise AnalysisError(f"{self.path}/theta_{kind}.npy has {vector.size} values but "
                                f"layers.json describes {self.n_params}")
        return vector

    def update_norms(self):
        """Per-step update norms |theta_{t+1} - theta_t| as float64."""
        return self.load_update_norms().astype(np.float64).ravel()

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
