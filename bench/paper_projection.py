"""The article's plan at 128 px on this machine: hours of training from measured whole epochs.

    python bench/paper_projection.py     (after bench/epoch_time.py and bench/study_throughput.py)

Reads two measurements taken on this machine and multiplies them with the article's epoch counts:
  - bench/results/epoch_time.json: seconds of one whole epoch on the 23,998 PetImages photos at
    128 px (training steps, batches, validation, checkpoint), one process on every core, per batch
    size (its median over the measured epochs; a batch size it did not measure is interpolated as
    a power law between its neighbours);
  - bench/results/study_throughput.json: how much more training a study gets out of the cores in its
    best layout than in one process (ratio of total training images/s, per batch size).
Epochs per run: analysis.study.projection.article_epochs (the article's convergence epochs, between
its runs a power law in batch and lr, plus the patience of 100, capped at 1,000). Two plans: the
article's own (one run per batch x lr setting: 20 runs) and the `paper` profile (three seeds of every
headline setting for the verdicts: 34 runs). Analyses (sharpness, surfaces) are not included.
Writes bench/results/paper_projection.json and .md.
"""
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.study.plan import PROFILES, StudySettings, plan_runs  # noqa: E402
from analysis.study.projection import article_epochs, log_interpolate, plan_hours  # noqa: E402
from bench.common import RESULTS, write_result  # noqa: E402


def epoch_seconds_by_batch(epoch_rows, batches):
    """{batch: median whole-epoch seconds}, interpolated (power law in the batch) where not measured."""
    measured = {}
    for row in epoch_rows:
        measured.setdefault(row["batch"], []).append(row["epoch_seconds"])
    measured = {b: statistics.median(v) for b, v in measured.items()}
    known = sorted(measured)
    result = {}
    for batch in batches:
        below = max((b for b in known if b <= batch), default=known[0])
        above = min((b for b in known if b >= batch), default=known[-1])
        result[batch] = log_interpolate(batch, below, above, measured[below], measured[above])
    return result


def layout_gain(throughput, batches):
    """{batch: (best layout, its training images/s over one process on every core)}."""
    rates = throughput["training_images_per_s"]
    gains = {}
    for batch in batches:
        best = max(rates, key=lambda layout: rates[layout][str(batch)])
        gains[batch] = (best, rates[best][str(batch)] / rates["threads"][str(batch)])
    return gains


def article_plan(settings):
    """The article's plan: the paper profile with one run per (batch, lr) setting."""
    return StudySettings(**{**vars(settings), "seeds": 1, "trend_seeds": 1, "sweep_seeds": 1})


def main():
    """Combine the two measurements into the projection and write it."""
    epoch = json.loads((RESULTS / "epoch_time.json").read_text())
    throughput = json.loads((RESULTS / "study_throughput.json").read_text())
    paper = StudySettings(**{**PROFILES["paper"], "profile": "paper"})
    seconds = epoch_seconds_by_batch(epoch["rows"], paper.batches)
    gains = layout_gain(throughput, paper.batches)
    effective = {b: seconds[b] / gains[b][1] for b in paper.batches}
    lines = ["| plan | runs | epochs | hours, one process on both cores | hours, best layout |",
             "|---|---|---|---|---|"]
    plans = {}
    for name, settings in (("article's plan (one run per setting)", article_plan(paper)),
                           ("paper profile (3 seeds per headline setting)", paper)):
        runs = plan_runs(settings)
        epochs = sum(article_epochs(settings, r.batch, r.lr) for r in runs)
        one = plan_hours(settings, seconds, lambda r, s=settings: article_epochs(s, r.batch, r.lr))
        best = plan_hours(settings, effective, lambda r, s=settings: article_epochs(s, r.batch, r.lr))
        plans[name] = {"runs": len(runs), "epochs": epochs, "hours_one_process": one, "hours_best_layout": best}
        lines.append(f"| {name} | {len(runs)} | {epochs:,} | {one:.1f} | {best:.1f} |")
    per_batch = ", ".join(f"bs {b} {seconds[b]:.2f} s ({gains[b][0]} x{gains[b][1]:.2f})" for b in paper.batches)
    write_result("paper_projection", {"epoch_seconds": seconds, "layout_gain": gains, "plans": plans,
                                      "epoch_time_machine": epoch["machine"],
                                      "study_throughput_machine": throughput["machine"]})
    text = (f"# The article's plan on this machine\n\nWhole 128-px PetImages epochs measured by "
            f"bench/epoch_time.py ({epoch['machine']['date']}), one process on {epoch['threads']} threads: "
            f"{per_batch} (in brackets the study's best layout and its throughput over one process, "
            f"from bench/study_throughput.py). Epochs: the article's convergence epochs plus the "
            f"patience of 100, at most 1,000 (analysis.study.projection.article_epochs).\n\n"
            + "\n".join(lines) + "\n")
    (RESULTS / "paper_projection.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
