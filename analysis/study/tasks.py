"""Executing the study's analysis tasks on finished runs; each writes <study>/analysis/<name>.json.

A result file stores the task's parameters; a task counts as done only when its file exists with the
same parameters, so changing e.g. the surface grid recomputes the surfaces and nothing else.
"""
import os
import time

from storage.files import to_jsonable

from ..comparison import comparison_point
from ..data import build_run_model, load_run_dataset, split_objective
from ..interpolation import default_alphas, interpolate
from ..landscape import default_axes, loss_surface
from ..noise import gradient_noise_scale
from ..rundir import Run
from ..sharpness import keskar_sharpness, random_subspace
from .folder import StudyFolder, read_json, write_json_atomic

TERMINAL_STATUSES = ("finished", "early_stopped", "diverged")
USABLE_STATUSES = ("finished", "early_stopped")


def task_done(study_dir, task):
    """True when the task's result exists and was computed with the current parameters."""
    saved = read_json(StudyFolder(study_dir).task_result(task.name))
    return saved is not None and saved.get("params") == to_jsonable(task.params)


class TaskRunner:
    """Runs analysis tasks, keeping loaded datasets between tasks of one process."""

    def __init__(self, study_dir, settings, cache_dir=None, log=print):
        self.study_dir, self.settings, self.cache_dir, self.log = study_dir, settings, cache_dir, log
        self._datasets = {}

    def _dataset(self, run):
        key = (run.args.get("data"), run.args.get("image_size"))
        if key not in self._datasets:
            self._datasets[key] = load_run_dataset(run, None, self.cache_dir)
        return self._datasets[key]

    def _objective(self, run, split, examples):
        model = build_run_model(run, "float32", self.settings.kernels)
        return split_objective(model, self._dataset(run), split, examples, 0,
                               self.settings.eval_batch)

    def run(self, task):
        """Compute one task at its group's comparison point and write its result file (or a
        'skipped' record saying why no comparable weights exist)."""
        folder = StudyFolder(self.study_dir)
        group = [Run(folder.run(name)) for name in task.runs]
        started = time.perf_counter()
        usable = [r for r in group if r.read_status().get("status") in USABLE_STATUSES]
        point = comparison_point([r.read_status() for r in usable])
        by_name = {r.name: r for r in group}
        targets = [by_name[name] for name in task.params["targets"]]
        unusable = [r.name for r in targets if r not in usable]
        if unusable:
            result = {"skipped": f"no usable weights in {', '.join(unusable)}"}
        elif point is None:
            result = {"skipped": "no training-loss level was reached by every run of the "
                                 f"{task.params['group']} group (a run never left the plateau)"}
        else:
            result = {"point": point.as_dict(),
                      "epochs": {r.name: point.epoch(r.read_status()) for r in targets},
                      **getattr(self, f"_{task.kind}")(task, targets, point.weights)}
        path = folder.task_result(task.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomic(path,
                          {"kind": task.kind, "runs": list(task.runs), "params": task.params,
                           "seconds": time.perf_counter() - started, "result": result})

    def _sharpness(self, task, runs, weights):
        p, run = task.params, runs[0]
        theta = run.theta(weights)
        objective = self._objective(run, "train", p["examples"])
        spaces = ("full", "subspace") if p["space"] == "both" else (p["space"],)
        values = []
        for space in spaces:
            A = random_subspace(theta.size, p["subspace_dim"], 0) if space == "subspace" else None
            for eps in p["eps"]:
                entry = keskar_sharpness(objective, theta, eps, A, p["maxiter"])
                values.append({"space": space, "eps": eps, **entry})
        return {"sharpness": values}

    def _interpolation(self, task, runs, weights):
        p = task.params
        small, large = runs
        objectives = {split: self._objective(small, split, p["examples"]) for split in ("train", "val")}
        return interpolate(small.theta(weights), large.theta(weights), objectives,
                           default_alphas(p["points"]))

    def _surface(self, task, runs, weights):
        p, run = task.params, runs[0]
        axis = default_axes(p["grid"], p["extent"])
        return loss_surface(self._objective(run, "train", p["examples"]), run.theta(weights),
                            run.table, axis, axis, p["seed"])

    def _noise(self, task, runs, weights):
        p, run = task.params, runs[0]
        objective = self._objective(run, "train", None)
        theta = run.theta(weights)
        b_big = min(p["b_big"], objective.n_examples)

        def grad_fn(indices):
            return objective.subset(indices).value_and_grad(theta)[1]
        return gradient_noise_scale(grad_fn, objective.n_examples, p["b_small"], b_big,
                                    p["batches"], p["seed"])
