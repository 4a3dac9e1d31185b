"""The run directory: everything one training run leaves behind, written only by rank 0.

    config.json        every argument, effective lr, dataset identity, versions, git commit
    metrics.jsonl      one record per finished epoch
    status.json        running | finished | early_stopped | diverged | interrupted | failed
    layers.json        the layer table of the flat vectors
    theta_init.npy, theta_best.npy, theta_final.npy, update_norms.npy
    theta_loss<L>.npy  the weights at the end of the first epoch whose training loss fell below L
    checkpoint.npz     everything needed to continue (see engine/checkpoint.py)
"""
import json
import os
from pathlib import Path

from storage.files import atomic_save_npy, atomic_write_bytes, atomic_write_json

# Arguments that may differ between the original and a resumed invocation of the same run.
RESUMABLE_DIFFERENCES = {"resume", "overwrite", "quiet", "out", "max_epochs", "threads",
                         "checkpoint_every", "progress"}


def snapshot_name(level):
    """Array name of the equal-loss snapshot at training-loss `level` (e.g. theta_loss0.55)."""
    return f"theta_loss{level:g}"


def snapshot_epochs(metrics, levels):
    """{"<level>": first epoch whose training loss is below level} for every level reached."""
    reached = {}
    for level in levels:
        epoch = next((m["epoch"] for m in metrics if m["train_loss"] < level), None)
        if epoch is not None:
            reached[f"{level:g}"] = epoch
    return reached


class RunDirError(Exception):
    """The output folder cannot be used for this run (a user mistake, reported in one line)."""


class RunDirectory:
    """Create, resume and write a run folder."""

    def __init__(self, path):
        self.path = Path(path)

    def file(self, name):
        """Path of a file inside the run folder."""
        return self.path / name

    def read_config(self):
        """The run's saved config.json, or None when there is none."""
        try:
            return json.loads(self.file("config.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            raise RunDirError(f"{self.file('config.json')}: unreadable ({error})") from None

    def prepare(self, config, resume=False, overwrite=False):
        """Create the folder for a new run, or check that it holds this run when resuming.

        A folder holding a different run is refused unless `overwrite` (which empties it).
        """
        existing = self.read_config()
        if resume:
            if existing is None:
                raise RunDirError(f"nothing to resume in {self.path}: no config.json there")
            mismatched = sorted(k for k in set(existing["args"]) | set(config["args"])
                                if k not in RESUMABLE_DIFFERENCES
                                and existing["args"].get(k) != config["args"].get(k))
            if mismatched:
                raise RunDirError(f"{self.path} holds a run with different settings ({', '.join(mismatched)});"
                                  " resume it with its own settings")
            return existing
        if existing is not None or (self.path.exists() and any(self.path.iterdir())):
            if not overwrite:
                raise RunDirError(f"{self.path} already holds a run; pass --resume to continue it or "
                                  "--overwrite to replace it")
            for child in self.path.iterdir():
                if child.is_file():
                    child.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.file("config.json"), config)
        self.file("metrics.jsonl").write_text("")
        return config

    def write_metrics(self, records):
        """Rewrite metrics.jsonl with `records` (atomic: a resumed run never duplicates an epoch)."""
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        atomic_write_bytes(self.file("metrics.jsonl"), text.encode())

    def write_status(self, status, **details):
        """Record the run's state for users and for the study driver."""
        atomic_write_json(self.file("status.json"), {"status": status, **details})

    def read_status(self):
        """The saved status.json, or None."""
        try:
            return json.loads(self.file("status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save_array(self, name, array):
        """Save one flat vector or array as NAME.npy atomically."""
        atomic_save_npy(self.file(f"{name}.npy"), array)

    def write_layers(self, table):
        """Save the layer table that says where each tensor lives in the flat vectors."""
        atomic_write_json(self.file("layers.json"), table)

    def exists(self):
        """True when the folder holds a run config."""
        return os.path.exists(self.file("config.json"))
