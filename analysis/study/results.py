"""Reading a study folder into per-run values and per-setting seed summaries.

A setting is (batch, lr); its seeds are the runs that share it. The runs at the base lr form the
`base` comparison group, the runs at their linearly scaled lr the `scaled` group; each group is
compared at one point (analysis/comparison.py): the converged runs' best weights, or the first epoch
below a training-loss level every run of the group reached. Every per-run quantity the report
compares is a value of `RunResult`, read at its group's point where the quantity depends on it.
Everything comes from the run folders' JSON and update norms; no weights are read.
"""
import math
import os

import numpy as np

from storage.runfolder import RunFolder

from ..comparison import comparison_point
from ..rundir import Run
from ..stats import summarize
from .folder import StudyFolder, read_json
from .plan import COMPARISON_GROUPS, StudyError, StudySettings, plan_analyses, plan_runs
from .tasks import USABLE_STATUSES

# Values that depend on where a run is read (its group's comparison point).
POINT_KEYS = ("dist_init", "update_median", "epochs_to_point", "train_loss_at_point",
              "val_loss_at_point", "val_acc_at_point", "steps_to_point", "time_to_point")


class RunResult:
    """One planned run's outcome: status, metric curves and scalar values (NaN where missing)."""

    def __init__(self, planned, folder):
        self.planned, self.folder = planned, folder
        self.batch, self.lr, self.seed = planned.batch, planned.lr, planned.seed
        self.setting = (planned.batch, planned.lr)
        self.status_record = RunFolder(folder).read_status()
        self.status = self.status_record.get("status", "missing")
        self.metrics, self.values, self.config = [], {}, {}
        self.update_norms = None
        if self.status in USABLE_STATUSES:
            self._read()

    @property
    def usable(self):
        """True when the run finished (or stopped early) and left its weights."""
        return self.status in USABLE_STATUSES

    def _read(self):
        run = Run(self.folder)
        self.config = run.config
        self.metrics = run.read_metrics()
        self.update_norms = run.update_norms()
        status = self.status_record
        self.values = {
            "best_val_loss": float(status["best_val_loss"]),
            "best_val_acc": float(status.get("best_val_acc", math.nan)),
            "best_train_loss": min(m["train_loss"] for m in self.metrics),
            "best_epoch": float(status.get("best_epoch") or 0),
            "epochs": float(status.get("epochs", len(self.metrics))),
            "sec_per_epoch": float(np.mean([m["train_seconds"] for m in self.metrics])),
            # "finished" means it used every epoch without stopping early (not converged)
            "hit_max_epochs": float(self.status == "finished"),
        }

    def at_point(self, point):
        """The point-dependent values of this run at a ComparisonPoint (or {} without one)."""
        if point is None or not self.usable:
            return {}
        epoch = point.epoch(self.status_record)
        record = self.metrics[epoch - 1]
        steps = int(record["steps"])
        seconds = [m["train_seconds"] + m["eval_seconds"] for m in self.metrics[:epoch]]
        return {"dist_init": float(record["dist_init"]), "dist_layers": record["dist_init_layers"],
                "update_median": float(np.median(self.update_norms[:steps])),
                "epochs_to_point": float(epoch), "steps_to_point": float(steps),
                "time_to_point": float(sum(seconds)), "train_loss_at_point": record["train_loss"],
                "val_loss_at_point": record["val_loss"], "val_acc_at_point": record["val_acc"]}

    def curve(self, key):
        """(epochs, values) of one metric over the run's epochs."""
        return ([m["epoch"] for m in self.metrics], [m.get(key) for m in self.metrics])

    def value(self, key):
        """A point-independent scalar of this run, NaN when the run has none."""
        return self.values.get(key, math.nan)


class StudyResults:
    """Everything the report needs from a study folder."""

    def __init__(self, study_dir):
        folder = StudyFolder(study_dir)
        meta = read_json(folder.study_json)
        if meta is None:
            raise StudyError(f"{study_dir} is not a study folder (no readable study.json)")
        self.study_dir, self.meta = study_dir, meta
        self.settings = StudySettings.from_dict(meta["settings"])
        self.planned = plan_runs(self.settings)
        self.tasks = plan_analyses(self.settings, self.planned)
        if not os.path.isdir(folder.runs):
            raise StudyError(f"{study_dir} holds no run data (no runs/ folder): nothing to report")
        self.runs = [RunResult(p, folder.run(p.name)) for p in self.planned]
        if not any(r.usable for r in self.runs):
            raise StudyError(f"{study_dir} holds no finished run yet: nothing to report")
        self.analysis = {t.name: read_json(folder.task_result(t.name)) for t in self.tasks}
        self.points = {g: comparison_point([r.status_record for r in self.group_runs(g)])
                       for g in COMPARISON_GROUPS}
        self.timing = read_json(folder.timing_json)

    # ---- selecting ---------------------------------------------------------------------------
    def group_runs(self, group):
        """The usable runs of a comparison group ('base' or 'scaled')."""
        return [r for r in self.runs if group in r.planned.groups and r.usable]

    def runs_of(self, batch, lr, usable=True):
        """The runs (all seeds) of one setting, optionally only those with weights."""
        return [r for r in self.runs if r.setting == (batch, lr) and (r.usable or not usable)]

    def run_value(self, run, key, group="base"):
        """One value of one run; point-dependent values and sharpness at `group`'s point."""
        if key.startswith("sharpness"):
            return self.sharpness(run, group).get(key, math.nan)
        if key in POINT_KEYS:
            return run.at_point(self.points[group]).get(key, math.nan)
        return run.value(key)

    def summary(self, batch, lr, key, group="base"):
        """Seed summary of one value in one setting (diverged or missing runs left out)."""
        return summarize([self.run_value(r, key, group) for r in self.runs_of(batch, lr)])

    def summaries(self, key, settings, group="base"):
        """{setting: Summary} of one value over several settings."""
        return {s: self.summary(s[0], s[1], key, group) for s in settings}

    def base_settings(self):
        """(batch, base lr) for every batch."""
        return [(b, self.settings.base_lr) for b in self.settings.batches]

    def scaled_settings(self):
        """(batch, linearly scaled lr) for every batch."""
        return [(b, self.settings.scaled_lr(b)) for b in self.settings.batches]

    def result(self, name):
        """An analysis task's result payload, or None when it is missing or was skipped."""
        saved = self.analysis.get(name)
        if not saved or "skipped" in saved.get("result", {}):
            return None
        return saved["result"]

    def sharpness(self, run, group):
        """{'sharpness_<space>_<eps>': phi} of one run at its group's point ({} when not computed)."""
        result = self.result(f"sharpness-{group}-{run.planned.name}") or {}
        return {sharpness_key(e["space"], e["eps"]): float(e["phi"])
                for e in result.get("sharpness", [])}

    def headline_sharpness_key(self):
        """The sharpness the findings use: full space if computed (else subspace), first eps."""
        st = self.settings
        space = "full" if st.sharpness_space in ("full", "both") else "subspace"
        return sharpness_key(space, st.sharpness_eps[0])

    def timing_samples(self, batch, ranks=1):
        """Seconds per epoch of the timing pass at one batch size and rank count ([] if none)."""
        for entry in (self.timing or {}).get("entries", []):
            if entry["batch"] == batch and entry["ranks"] == ranks:
                return list(entry["samples"])
        return []

    def counts(self):
        """{status: number of runs}."""
        counts = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def wall_seconds(self):
        """Total wall time of all study invocations (seconds)."""
        return sum(float(i.get("seconds", 0.0)) for i in self.meta.get("invocations", []))


def sharpness_key(space, eps):
    """The value name of one sharpness measurement, e.g. sharpness_full_0.001."""
    return f"sharpness_{space}_{eps:g}"
