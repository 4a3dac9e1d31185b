"""One training run's folder: the only module that knows its file names. The runner prepares it,
the engine's Trainer writes into it (rank 0 only), the study and the analyses read it back.

    config.json        every setting ("args"), effective lr, dataset identity, versions, git commit
    metrics.jsonl      one record per finished epoch
    status.json        running | finished | early_stopped | diverged | interrupted | failed
    layers.json        the layer table of the flat vectors
    theta_<kind>.npy   flat weights: init, best, final, and loss<L> (the end of the first epoch
                       whose training loss fell below L)
    update_norms.npy   |theta_{t+1} - theta_t| of every step
    checkpoint.npz     everything needed to continue (engine/checkpoint.py)

It sits on the ground floor (beside the atomic files it writes with), so the engine below the
runner and the analyses above it share one definition of the format. Folders written by earlier
versions have the same names and keys, so they read and resume unchanged.
"""
import json
import os
from pathlib import Path

from .files import StorageError, atomic_save_npy, atomic_write_bytes, atomic_write_json, load_npy

# Settings ("args" keys) that may differ between the original and a resumed invocation of a run.
RESUMABLE_DIFFERENCES = {"resume", "overwrite", "quiet", "out", "max_epochs", "threads",
                         "checkpoint_every", "progress"}
THETA_KINDS = ("init", "best", "final")


class RunFolderError(Exception):
    """The folder cannot be used as asked (another run's folder, a missing or unreadable file)."""


def snapshot_kind(level):
    """The theta kind of the equal-loss snapshot at training-loss `level` (e.g. loss0.55); its
    level is spelled as in status.json's "snapshots" keys."""
    return f"loss{level:g}"


def snapshot_epochs(metrics, levels):
    """status.json's "snapshots": {"<level>": first epoch whose training loss is below level} for
    every level reached."""
    reached = {}
    for level in levels:
        epoch = next((m["epoch"] for m in metrics if m["train_loss"] < level), None)
        if epoch is not None:
            reached[f"{level:g}"] = epoch
    return reached


class RunFolder:
    """Create, resume, write and read one run folder.

    Read failures raise `self.error` (RunFolderError here); a reader with its own user-facing
    exception sets the attribute in a subclass, as unittest's TestCase.failureException does."""

    error = RunFolderError

    def __init__(self, path):
        self.path = os.fspath(path)  # a string: it goes into JSON results and messages as given

    @property
    def name(self):
        """The folder's own name (a study names its runs by their settings)."""
        return os.path.basename(os.path.normpath(os.path.abspath(self.path)))

    def _path(self, name):
        return Path(self.path, name)

    @property
    def checkpoint(self):
        """Path of the checkpoint (engine/checkpoint.py reads and writes its contents)."""
        return self._path("checkpoint.npz")

    def has_checkpoint(self):
        """True when a checkpoint was written."""
        return self.checkpoint.is_file()

    def exists(self):
        """True when the folder holds a run (its config.json)."""
        return self._path("config.json").is_file()

    # ---- writing -------------------------------------------------------------------------------
    def prepare(self, config, resume=False, overwrite=False):
        """Create the folder for a new run, or check that it holds this run when resuming; returns
        the config in force (the saved one when resuming).

        A folder holding a different run is refused unless `overwrite` (which empties it).
        """
        existing = self.read_config(missing_ok=True)
        if resume:
            if existing is None:
                raise self.error(f"nothing to resume in {self.path}: no config.json there")
            mismatched = sorted(k for k in set(existing["args"]) | set(config["args"])
                                if k not in RESUMABLE_DIFFERENCES
                                and existing["args"].get(k) != config["args"].get(k))
            if mismatched:
                raise self.error(f"{self.path} holds a run with different settings ({', '.join(mismatched)});"
                                 " resume it with its own settings")
            return existing
        folder = Path(self.path)
        if existing is not None or (folder.exists() and any(folder.iterdir())):
            if not overwrite:
                raise self.error(f"{self.path} already holds a run; pass --resume to continue it or "
                                 "--overwrite to replace it")
            for child in folder.iterdir():
                if child.is_file():
                    child.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self._path("config.json"), config)
        self._path("metrics.jsonl").write_text("")
        return config

    def write_metrics(self, records):
        """Rewrite metrics.jsonl with `records` (atomic: a resumed run never duplicates an epoch)."""
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        atomic_write_bytes(self._path("metrics.jsonl"), text.encode())

    def write_status(self, status, **details):
        """Record the run's state for users and for the study driver."""
        atomic_write_json(self._path("status.json"), {"status": status, **details})

    def write_layers(self, table):
        """Save the layer table that says where each tensor lives in the flat vectors."""
        atomic_write_json(self._path("layers.json"), table)

    def save_theta(self, kind, vector):
        """Save flat weights as theta_<kind>.npy (kind: init, best, final or snapshot_kind(L))."""
        atomic_save_npy(self._path(f"theta_{kind}.npy"), vector)

    def save_update_norms(self, norms):
        """Save the per-step update norms."""
        atomic_save_npy(self._path("update_norms.npy"), norms)

    # ---- reading -------------------------------------------------------------------------------
    def _existing(self, name):
        path = self._path(name)
        if not path.is_file():
            raise self.error(f"{self.path} has no {name} (is it a finished training run?)")
        return path

    def _json(self, name):
        path = self._existing(name)
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise self.error(f"{path} is not valid JSON: {error}") from None

    def _array(self, name):
        try:
            return load_npy(self._existing(name))
        except StorageError as error:
            raise self.error(f"{error}; is it a file this project wrote?") from None

    def read_config(self, missing_ok=False):
        """The saved config.json (None when there is none and `missing_ok`)."""
        if missing_ok and not self.exists():
            return None
        return self._json("config.json")

    def read_layers(self):
        """The layer table of layers.json."""
        return self._json("layers.json")

    def read_status(self):
        """The saved status.json, or {} before the run wrote one (or when it is unreadable: the
        status is advisory, the study then treats the run as not started)."""
        try:
            return self._json("status.json")
        except self.error:
            return {}

    def read_metrics(self):
        """The per-epoch records of metrics.jsonl, in file order."""
        records = []
        with open(self._existing("metrics.jsonl")) as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise self.error(f"{self.path}/metrics.jsonl line {number} is not "
                                         "valid JSON") from None
        return records

    def load_theta(self, kind):
        """The saved flat vector theta_<kind>.npy as stored (kind: init, best, final, loss<L>)."""
        if kind not in THETA_KINDS and not kind.startswith("loss"):
            raise self.error(f"unknown weights '{kind}' (choose from {', '.join(THETA_KINDS)} "
                             "or loss<level>)")
        return self._array(f"theta_{kind}.npy")

    def load_update_norms(self):
        """The per-step update norms as stored."""
        return self._array("update_norms.npy")
