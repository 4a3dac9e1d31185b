"""Reading a study folder into per-run values and per-setting seed summaries.

A setting is (batch, lr); its seeds are the runs that share it. Every per-run quantity the report
compares lives in `RunResult.values`, so the findings and figures all summarise the same numbers.
"""
import math
import os

import numpy as np

from .geometry import distance_from_init
from .rundir import Run
from .stats import summarize
from .study_plan import StudyError, StudySettings, plan_analyses, plan_runs
from .study_tasks import USABLE_STATUSES, read_json


class RunResult:
    """One planned run's outcome: status, metric curves and scalar values (NaN where missing)."""

    def __init__(self, planned, folder, analysis_dir):
        self.planned, self.folder = planned, folder
        self.batch, self.lr, self.seed = planned.batch, planned.lr, planned.seed
        self.setting = (planned.batch, planned.lr)
        status = read_json(os.path.join(folder, "status.json")) or {}
        self.status = status.get("status", "missing")
        self.metrics, self.values, self.layers = [], {}, {}
        self.update_norms = None
        if self.status in USABLE_STATUSES:
            self._read(status, analysis_dir)

    @property
    def usable(self):
        """True when the run finished (or stopped early) and left its weights."""
        return self.status in USABLE_STATUSES

    def _read(self, status, analysis_dir):
        run = Run(self.folder)
        self.metrics = run.metrics()
        best_epoch = int(status.get("best_epoch") or 0)
        seconds = [m["train_seconds"] + m["eval_seconds"] for m in self.metrics]
        distance = distance_from_init(run.theta("best"), run.theta("init"), run.table)
        self.layers = distance["layers"]
        self.update_norms = run.update_norms()
        self.values = {
            "best_val_loss": float(status["best_val_loss"]),
            "best_val_acc": float(status.get("best_val_acc", float("nan"))),
            "best_train_loss": min(m["train_loss"] for m in self.metrics),
            "best_epoch": float(best_epoch),
            "epochs": float(status.get("epochs", len(self.metrics))),
            "sec_per_epoch": float(np.mean([m["train_seconds"] for m in self.metrics])),
            "time_to_best": float(sum(seconds[:best_epoch])),
            "dist_init": distance["total"],
            "update_median": float(np.median(self.update_norms)) if self.update_norms.size else math.nan,
            # "finished" means it used every epoch without stopping early: its epochs-to-best is
            # then only a lower bound on the epochs it would need to converge
            "hit_max_epochs": float(self.status == "finished"),
        }
        sharp = read_json(os.path.join(analysis_dir, f"sharpness-{self.planned.name}.json"))
        spaces = (sharp or {}).get("result", {}).get("spaces", {})
        for space, entry in spaces.items():
            self.values[f"sharpness_{space}"] = float(entry["phi"])

    def curve(self, key):
        """(epochs, values) of one metric over the run's epochs."""
        return ([m["epoch"] for m in self.metrics], [m.get(key) for m in self.metrics])

    def value(self, key):
        """A scalar of this run, NaN when the run has none."""
        return self.values.get(key, math.nan)


class StudyResults:
    """Everything the report needs from a study folder."""

    def __init__(self, study_dir):
        meta = read_json(os.path.join(study_dir, "study.json"))
        if meta is None:
            raise StudyError(f"{study_dir} is not a study folder (no readable study.json)")
        self.study_dir, self.meta = study_dir, meta
        self.settings = StudySettings.from_dict(meta["settings"])
        self.planned = plan_runs(self.settings)
        self.tasks = plan_analyses(self.settings, self.planned)
        analysis_dir = os.path.join(study_dir, "analysis")
        self.runs = [RunResult(p, os.path.join(study_dir, "runs", p.name), analysis_dir)
                     for p in self.planned]
        self.analysis = {t.name: read_json(os.path.join(analysis_dir, f"{t.name}.json"))
                         for t in self.tasks}

    # ---- selecting ---------------------------------------------------------------------------
    def runs_of(self, batch, lr, usable=True):
        """The runs (all seeds) of one setting, optionally only those with weights."""
        return [r for r in self.runs if r.setting == (batch, lr) and (r.usable or not usable)]

    def summary(self, batch, lr, key):
        """Seed summary of one value in one setting (diverged or missing runs left out)."""
        return summarize([r.value(key) for r in self.runs_of(batch, lr)])

    def summaries(self, key, settings):
        """{setting: Summary} of one value over several settings."""
        return {s: self.summary(s[0], s[1], key) for s in settings}

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

    def counts(self):
        """{status: number of runs}."""
        counts = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def wall_seconds(self):
        """Total wall time of all study invocations (seconds)."""
        return sum(float(i.get("seconds", 0.0)) for i in self.meta.get("invocations", []))
