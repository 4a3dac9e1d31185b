"""`run.py study --dry-run`: each profile's projected wall time on this machine.

The projection times a few training steps of the study's net at every batch size and the profile's
image size (random images, every core of one process), and a no-grad evaluation batch, then adds
up the plan: epoch = ceil(N_train / batch) steps + N_val evaluated images, counted two ways:
every run at its profile's epoch cap (an upper bound), and every run as long as the article's runs
took to converge plus the patience (`article_epochs`). The analyses and the timing pass come on
top. Whole runs side by side on one thread each use the cores about as well as one run on all of
them (bench/results/mpi_epochs.md), so the runs' times simply add up.
"""
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

from engine.model import ModelConfig, build_model
from engine.sgd import SGD

from .plan import PROFILES, StudyError, StudySettings, plan_runs

STEP_REPEATS = 3

# Epochs until the validation loss converged in the article (one GPU, lr 0.01 unless scaled):
# figure 7: bs 32 158, bs 256 958; figure 25 (linear scaling): bs 32 3156 s / 12.4 s per epoch = 255,
# bs 256 at lr 0.08 2197 s / 7.7 s = 285. The article measured bs 32 / lr 0.01 twice; the larger
# count (255) is used, so the projection errs long.
ARTICLE_CONVERGED = {"base": (255, 958), "scaled": (255, 285)}  # at batch 32 and batch 256
ARTICLE_BATCHES = (32, 256)


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


def log_interpolate(x, x0, x1, y0, y1):
    """y at x on the straight line through (log x0, log y0) and (log x1, log y1), held constant
    beyond either end (a power law between two measured points, no extrapolation)."""
    if x0 == x1:
        return y0
    t = min(1.0, max(0.0, math.log(x / x0) / math.log(x1 / x0)))
    return y0 * (y1 / y0) ** t


def article_epochs(settings, batch, lr):
    """Epochs a run of the plan takes if it converges when the article's did: the converged epoch
    (a power law in the batch between the article's bs 32 and bs 256, per lr rule; between the two
    rules a power law in the lr, the scaled rule's count above its lr) plus the patience, capped."""
    lo, hi = ARTICLE_BATCHES
    base = log_interpolate(batch, lo, hi, *ARTICLE_CONVERGED["base"])
    scaled = log_interpolate(batch, lo, hi, *ARTICLE_CONVERGED["scaled"])
    converged = log_interpolate(lr, settings.base_lr, settings.scaled_lr(batch), base, scaled)
    return min(settings.max_epochs, round(converged) + settings.patience)


def plan_hours(settings, epoch_seconds, epochs_of):
    """Hours of training for the plan, given seconds per epoch by batch and epochs_of(run)."""
    return sum(epochs_of(r) * epoch_seconds[r.batch] for r in plan_runs(settings)) / 3600


def project(settings, n_train, n_val):
    """(hours at the epoch cap, hours at the article's epoch counts, number of runs, measured
    seconds per epoch by batch) of one plan."""
    steps, per_image = measure(settings.image_size, settings.batches, settings.eval_batch,
                               settings.kernels)
    epoch = {b: math.ceil(n_train / b) * steps[b] + n_val * per_image for b in settings.batches}
    capped = plan_hours(settings, epoch, lambda r: settings.max_epochs)
    article = plan_hours(settings, epoch, lambda r: article_epochs(settings, r.batch, r.lr))
    return capped, article, len(plan_runs(settings)), epoch


def projection_lines(settings, n_train, n_val):
    """One line per profile: the plan's size and its projected training time on this machine."""
    lines = [f"projected training time on this machine ({n_train:,} training + {n_val:,} "
             "validation images; every run to its epoch cap, or as long as the article's runs "
             "took plus the patience; analyses not included):"]
    for name, values in PROFILES.items():
        profile = StudySettings(**{"data": settings.data, "eval_batch": settings.eval_batch,
                                   "kernels": settings.kernels, **values, "profile": name})
        capped, article, count, epoch = project(profile, n_train, n_val)
        per_epoch = ", ".join(f"bs {b} {s:.1f} s" for b, s in epoch.items())
        lines.append(f"  {name:<9} {count:3d} runs x up to {profile.max_epochs} epochs at "
                     f"{profile.image_size} px: at most {capped:.1f} h, {article:.1f} h at the "
                     f"article's epoch counts (epochs: {per_epoch})")
    return lines


def by_batch(measured, batches):
    """{batch: value} for every batch from {measured batch: value}: a batch between two measured
    ones gets the power law through them, one beyond them the nearest measured value."""
    known = sorted(measured)
    result = {}
    for batch in batches:
        below = max((b for b in known if b <= batch), default=known[0])
        above = min((b for b in known if b >= batch), default=known[-1])
        result[batch] = log_interpolate(batch, below, above, measured[below], measured[above])
    return result


def epoch_seconds_by_batch(epoch_rows, batches):
    """{batch: median whole-epoch seconds} from bench/epoch_time.py's rows (by_batch between the
    batch sizes it measured)."""
    measured = {}
    for row in epoch_rows:
        measured.setdefault(row["batch"], []).append(row["epoch_seconds"])
    return by_batch({b: statistics.median(v) for b, v in measured.items()}, batches)


def article_plan(settings):
    """The article's own plan: the same settings with one run per (batch, lr) setting."""
    return StudySettings(**{**vars(settings), "seeds": 1, "trend_seeds": 1, "sweep_seeds": 1})


def _read_result(folder, name, command):
    path = Path(folder, f"{name}.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise StudyError(f"no readable {path}: run {command} first") from None


LAYOUT_RESULT = "epoch_time_study_layout"
LAYOUT_COMMAND = f"bench/epoch_time.py --processes 2 --threads 1 --name {LAYOUT_RESULT}"


def measured_projection(settings, folder):
    """Markdown: hours of the plan and of the article's one-run-per-setting plan at the article's
    epoch counts, from whole epochs measured by bench/epoch_time.py in `folder`: one process on
    every core (epoch_time.json), and the study's own layout, runs side by side on one thread each,
    whose epochs over the number of runs are the machine's effective seconds per epoch."""
    epoch = _read_result(folder, "epoch_time", "bench/epoch_time.py")
    layout = _read_result(folder, LAYOUT_RESULT, LAYOUT_COMMAND)
    for name, result in (("epoch_time", epoch), (LAYOUT_RESULT, layout)):
        if result.get("image_size") != settings.image_size:
            raise StudyError(f"{folder}/{name}.json measured {result.get('image_size')} px, the plan "
                             f"trains at {settings.image_size} px")
    seconds = epoch_seconds_by_batch(epoch["rows"], settings.batches)
    runs = layout["processes"]
    in_layout = {b: s / runs for b, s in epoch_seconds_by_batch(layout["rows"], settings.batches).items()}
    lines = ["| plan | runs | epochs | hours, one process on every core | hours, the study's layout |",
             "|---|---|---|---|---|"]
    for name, plan in (("the article's (one run per setting)", article_plan(settings)),
                       (f"profile {settings.profile} ({settings.seeds} seeds per headline setting)", settings)):
        def epochs_of(run, plan=plan):
            return article_epochs(plan, run.batch, run.lr)
        planned = plan_runs(plan)
        lines.append(f"| {name} | {len(planned)} | {sum(epochs_of(r) for r in planned):,} | "
                     f"{plan_hours(plan, seconds, epochs_of):.1f} | {plan_hours(plan, in_layout, epochs_of):.1f} |")
    per_batch = ", ".join(f"bs {b} {seconds[b]:.2f} s ({in_layout[b]:.2f} s)" for b in settings.batches)
    return (f"Whole {settings.image_size}-px epochs of {epoch['rows'][0]['train_images']:,} training + "
            f"{epoch['rows'][0]['val_images']:,} validation photos measured by bench/epoch_time.py: one "
            f"process on {epoch['threads']} threads ({epoch['machine']['date']}) and, in brackets, the "
            f"study's layout, {runs} runs side by side on {layout['threads']} thread(s) each, the machine's "
            f"seconds per epoch being a run's epoch over {runs} ({layout['machine']['date']}): {per_batch}. "
            f"Epochs per run: the article's convergence epochs plus the patience of {settings.patience}, at "
            f"most {settings.max_epochs}; analyses not included.\n\n" + "\n".join(lines) + "\n")
