"""`run.py study --dry-run`: each profile's projected wall time on this machine.

The projection times a few training steps of the study's net at every batch size and the profile's
image size (random images, every core of one process), and a no-grad evaluation batch, then adds
up the plan: epoch = ceil(N_train / batch) steps + N_val evaluated images; every run at its profile's
epoch cap. That is an upper bound on training (runs that stop early take less; the analyses and the
timing pass come on top). Whole runs side by side on one thread each use the cores about as well as
one run on all of them (bench/results/mpi_epochs.md), so the runs' times simply add up.
"""
import math
import time

import numpy as np

from engine.model import ModelConfig, build_model
from engine.sgd import SGD

from .study_plan import PROFILES, StudySettings, plan_runs

STEP_REPEATS = 3


def best_seconds(fn, repeats=STEP_REPEATS):
    """Fastest of `repeats` timed calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(image_size, batches, eval_batch, kernels):
    """{batch: seconds per training step} and seconds per evaluated image, measured here."""
    model = build_model(ModelConfig(image_size=image_size), seed=0, kernels=kernels)
    sgd = SGD(model.theta, model.grad)
    rng = np.random.default_rng(0)
    steps = {}
    for batch in batches:
        x = rng.random((batch, 3, image_size, image_size), dtype=np.float32)
        y = (rng.random(batch) > 0.5).astype(np.float32)

        def step():
            model.loss_and_grad(x, y)
            sgd.step(0.0)  # lr 0: the weights stay put between the timed steps
        steps[batch] = best_seconds(step)
    x = rng.random((eval_batch, 3, image_size, image_size), dtype=np.float32)
    y = (rng.random(eval_batch) > 0.5).astype(np.float32)
    per_image = best_seconds(lambda: model.evaluate_sums(x, y, eval_batch)) / eval_batch
    return steps, per_image


def project(settings, n_train, n_val):
    """(hours at most, number of runs, measured seconds per epoch by batch) of one plan."""
    steps, per_image = measure(settings.image_size, settings.batches, settings.eval_batch,
                               settings.kernels)
    epoch = {b: math.ceil(n_train / b) * steps[b] + n_val * per_image for b in settings.batches}
    runs = plan_runs(settings)
    seconds = sum(settings.max_epochs * epoch[r.batch] for r in runs)
    return seconds / 3600, len(runs), epoch


def projection_lines(settings, n_train, n_val):
    """One line per profile: the plan's size and its projected training time on this machine."""
    lines = [f"projected training time on this machine ({n_train:,} training + {n_val:,} "
             "validation images; every run to its epoch cap, analyses not included):"]
    for name, values in PROFILES.items():
        profile = StudySettings(**{"data": settings.data, "eval_batch": settings.eval_batch,
                                   "kernels": settings.kernels, **values, "profile": name})
        hours, count, epoch = project(profile, n_train, n_val)
        per_epoch = ", ".join(f"bs {b} {s:.1f} s" for b, s in epoch.items())
        lines.append(f"  {name:<9} {count:3d} runs x up to {profile.max_epochs} epochs at "
                     f"{profile.image_size} px: at most {hours:.1f} h (epochs: {per_epoch})")
    return lines
