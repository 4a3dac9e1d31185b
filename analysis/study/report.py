"""`run.py report STUDY_DIR`: write report.md and its PNG figures from a study folder.

The report puts the article's published numbers beside the study's (mean ± sd over seeds), and
gives each of the article's eight findings a verdict computed by analysis/stats.py, printing the
numbers that decided it. It reads only files the study wrote, so it can be rerun at any time, also
on a study that is still running (what is missing is listed, not invented).
"""
import math
import os
import sys

import numpy as np

from ..errors import EXIT_OK, command_main
from ..help_format import DefaultsFormatter, OneLineParser
from .figures import all_figures
from .findings import compute_findings
from .folder import StudyFolder
from ..stats import summarize, welch_difference
from .results import StudyResults, sharpness_key



def build_parser():
    """Arguments of `run.py report`."""
    p = OneLineParser(prog="run.py report", formatter_class=DefaultsFormatter,
                                description="Write report.md and figures for a study folder.")
    p.add_argument("study", metavar="STUDY_DIR", help="folder written by `run.py study`")
    p.add_argument("--out", default=None, help="output folder (default: STUDY_DIR/report)")
    p.add_argument("--dpi", type=int, default=90, help="figure resolution")
    p.add_argument("--title", default=None,
                   help="report title (default: 'Batch-size study (<profile> profile)')")
    return p


def fmt_effect(effect, fmt="{:+.4g}", percent=False):
    """'+0.0123 [+0.0040, +0.0206]' (the 95 % interval), or the value alone without one."""
    show = (lambda v: f"{100 * v:.0f} %") if percent else fmt.format
    if not math.isfinite(effect.value):
        return "n/a"
    if not math.isfinite(effect.low):
        return f"{show(effect.value)} (no interval: a setting has < 2 seeds)"
    return f"{show(effect.value)} [{show(effect.low)}, {show(effect.high)}]"


def fmt_p(effect):
    """The p value to two significant digits ('—' for the bootstrap finding)."""
    if effect.p is None:
        return "—"
    return "< 1e-4" if effect.p < 1e-4 else f"{effect.p:.2g}"


def findings_section(rows):
    """The findings table and, per finding, the numbers and the comparison that decided it."""
    lines = ["## The eight findings", "",
             "Findings 1-7 compare the largest batch with the smallest at the base lr, seed values "
             "against seed values: effect = mean(large) - mean(small), its 95 % confidence interval "
             "and two-sided p from Welch's t-test. **reproduced**: p < 0.05 with the article's sign; "
             "**contradicted**: p < 0.05 with the opposite sign; otherwise **inconclusive**. Finding 8 "
             "is the fraction of the large batch's validation-loss gap that linear lr scaling closes, "
             "with a percentile-bootstrap 95 % interval over the seeds: **reproduced** when the lower "
             "bound is above 50 % (\"most of the gap\"), **contradicted** when the upper bound is below 50 %.",
             "", "| # | article's claim | measure | compared | article | ours: effect [95 % CI] | p | "
             "verdict |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        e = row["effect"]
        lines.append(f"| {row['number']} | {row['claim']} | {row['measure']} | {row['comparison']} | "
                     f"{row['article']} | {fmt_effect(e, percent=row['number'] == 8)} | {fmt_p(e)} | "
                     f"**{e.verdict}** |")
    lines += ["", "Deciding numbers (mean ± sd over seeds, n = seeds with usable weights):", ""]
    for row in rows:
        e = row["effect"]
        values = "; ".join(f"bs{b}@{lr:g}: {summary.text(row['fmt'])}"
                           for (b, lr), summary in row["summaries"].items())
        lines.append(f"- **{row['number']}. {row['claim']}** — {values}. Effect "
                     f"{fmt_effect(e, percent=row['number'] == 8)}, p {fmt_p(e)}; rule: {e.rule} → "
                     f"**{e.verdict}**." + (f" {row['note']}." if row["note"] else ""))
    return lines


def header_section(results, title):
    """Title, data, settings, run counts and wall time."""
    st, meta = results.settings, results.meta
    counts = results.counts()
    invocations = meta.get("invocations", [])
    config = next((r.config for r in results.runs if r.usable), None)
    dataset = commit = threads = "unknown"
    if config:
        dataset = config.get("dataset", {})
        layout = dataset.get("layout", dataset.get("name", "?")) if isinstance(dataset, dict) else ""
        dataset = (f"{layout} layout ({dataset.get('n_train', dataset.get('train', '?'))} train / "
                   f"{dataset.get('n_val', dataset.get('val', '?'))} validation)"
                   if isinstance(dataset, dict) else str(dataset))
        commit = config.get("git_commit", "unknown")[:12]
        threads = config.get("threads_per_rank", "?")
    wall = results.wall_seconds()
    data_name = os.path.basename(os.path.normpath(st.data)) if st.data else "synthetic"
    lines = [f"# {title}", "",
             f"Reproduction of *Effect of Batch Size on Neural Net Training* (Chang & Pathak, 2020) "
             f"with batchlab, profile **{st.profile}**.", "",
             f"- Data: `{data_name}` — {dataset}",
             f"- Model input {st.image_size} px; batches {', '.join(map(str, st.batches))}; base lr "
             f"{st.base_lr:g} at batch {st.base_batch}; linear scaling gives "
             + ", ".join(f"bs {b}: {st.scaled_lr(b):g}" for b in st.batches),
             f"- Early stopping: patience {st.patience}, at most {st.max_epochs} epochs "
             "(the article: patience 100, up to 1000 epochs, 128 px)",
             f"- Seeds: {st.seeds} for the smallest and largest batch at the base and the linearly "
             f"scaled lr (every verdict reads only these), {st.trend_seeds} for the batches between; "
             + (f"{st.sweep_seeds} for the other cells of the lr sweep (lrs "
                f"{', '.join(f'{lr:g}' for lr in st.sweep_lrs)})" if st.sweep_lrs else "no lr sweep")
             + ". Seeds change the initial weights and the shuffling, never the data split.",
             f"- Equal-loss snapshots at training loss {', '.join(f'{v:g}' for v in st.snapshot_levels) or 'none'}; "
             "comparison points: " + "; ".join(
                 f"{group} lr runs {point.describe() if point else 'none (a run never reached a level)'}"
                 for group, point in results.points.items()),
             f"- Analyses: sharpness eps {', '.join(f'{e:g}' for e in st.sharpness_eps)}, {st.sharpness_space} space, "
             f"{st.sharpness_maxiter} L-BFGS-B iterations; surfaces {st.surface_grid}x{st.surface_grid} "
             f"on [-{st.surface_extent:g}, {st.surface_extent:g}]²; interpolation {st.interp_points} "
             f"points; analyses use {st.analysis_examples or 'all'} examples per split "
             "(the noise scale uses all training examples)",
             f"- Runs: {len(results.runs)} planned; "
             + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
             f"- Wall time of the study: **{wall / 60:.1f} min** over {len(invocations)} invocation(s) "
             + "(" + "; ".join(f"{i.get('start', '?')} → {i.get('end', '?')}, "
                               + (f"{i['workers']} worker processes" if i.get("workers", 1) > 1 else
                                  f"{i.get('ranks', 1)} rank(s), parallel {i.get('parallel', '?')}")
                               + f", {i.get('outcome', '?')}" for i in invocations) + ")",
             f"- Code: commit {commit}; {threads} thread(s) per rank", ""]
    missing = [t.name for t in results.tasks if results.analysis.get(t.name) is None]
    if results.timing is None:
        missing.append("the timing pass")
    if missing:
        lines += [f"Not computed yet: {', '.join(missing)}.", ""]
    return lines


def caveats_section(results):
    """Conditions of this study that limit what its verdicts mean, detected from the data."""
    st = results.settings
    lines = []
    for batch, lr in results.base_settings() + results.scaled_settings():
        runs = results.runs_of(batch, lr)
        capped = [r for r in runs if r.status == "finished"]
        if runs and len(capped) == len(runs):
            final = np.mean([r.metrics[-1]["train_loss"] for r in capped])
            lines.append(f"- All {len(runs)} runs of bs {batch} at lr {lr:g} used every one of the "
                         f"{st.max_epochs} epochs without stopping early (mean final training loss "
                         f"{final:.3f}; chance level ln 2 = {math.log(2):.3f}): they had not converged, "
                         "so their group is compared at equal training loss, not at its minimisers.")
    for group, point in results.points.items():
        if point is None:
            lines.append(f"- The {group} group has no comparison point: a run never reached "
                         f"training loss {max(st.snapshot_levels or [math.log(2)]):g}; the findings "
                         "that read it are inconclusive.")
    if st.sweep_lrs and st.sweep_seeds < 2:
        lines.append("- The lr sweep's cells outside the headline rows have a single seed: their values "
                     "carry no spread, and no verdict depends on them.")
    if not lines:
        return []
    return ["## Caveats (detected from the runs)", ""] + lines + [""]


def published_section(results):
    """study.md's table of published numbers with this study's value (mean ± sd) beside each."""
    st = results.settings
    S, L, lr0 = st.small_batch, st.large_batch, st.base_lr
    base = ((S, lr0), (L, lr0))
    scaled = ((S, st.scaled_lr(S)), (L, st.scaled_lr(L)))
    sharp = results.headline_sharpness_key()
    rows = [("best val loss, lr 0.01", "0.344", "0.395", base, "best_val_loss", "{:.4f}", "base"),
            ("best val accuracy, lr 0.01", "—", "—", base, "best_val_acc", "{:.4f}", "base"),
            ("best val loss, linear-scaled lr", "0.345", "0.352", scaled, "best_val_loss", "{:.4f}", "scaled"),
            ("best val accuracy, linear-scaled lr", "—", "—", scaled, "best_val_acc", "{:.4f}", "scaled"),
            ("epochs to converge, lr 0.01 (ours: to the comparison point)", "158", "958", base,
             "epochs_to_point", "{:.1f}", "base"),
            ("total time to converge (s), lr 0.01 (ours: to the comparison point)", "1915",
             "~3700 (4 GPUs)", base, "time_to_point", "{:.4g}", "base"),
            ("total time to converge (s), linear-scaled lr (ours: to the comparison point)", "3156",
             "2197", scaled, "time_to_point", "{:.4g}", "scaled"),
            ("median batch update norm, lr 0.01", "3.3e-3", "1.5e-3", base, "update_median", "{:.3g}", "base"),
            ("sharpness (eps 1e-3), lr 0.01", "1.14", "(figure 21)", base, sharp, "{:.3g}", "base"),
            ("sharpness, linear-scaled lr", "1.14", "4 - 7", scaled, sharp, "{:.3g}", "scaled")]
    lines = ["## Published numbers beside ours", "",
             f"The article's bs 32 / bs 256 against this study's bs {S} / bs {L} (mean ± sd over "
             f"seeds). The article trained at 128 px for up to 1,000 epochs with patience 100; this "
             f"study at {st.image_size} px for up to {st.max_epochs} epochs with patience "
             f"{st.patience}, so absolute losses, times and epoch counts differ; the findings compare "
             "directions and margins.", "",
             f"| quantity | article bs 32 | article bs 256 | ours bs {S} | ours bs {L} |",
             "|---|---|---|---|---|"]
    for label, a_small, a_large, settings, key, fmt, group in rows:
        ours = [results.summary(b, lr, key, group).text(fmt) for b, lr in settings]
        lines.append(f"| {label} (ours at lr {settings[0][1]:g} / {settings[1][1]:g}) | {a_small} | "
                     f"{a_large} | {ours[0]} | {ours[1]} |")
    timing = [summarize(results.timing_samples(b)).text("{:.3g}") for b in (S, L)]
    lines.append(f"| time per epoch (s), one device (ours: timing pass, 1 rank) | 12.4 | 7.7 | "
                 f"{timing[0]} | {timing[1]} |")
    ranges = []
    for batch in (S, L):
        values = [d for r in results.runs_of(batch, lr0) for d in r.curve("epoch_distance")[1]
                  if d is not None]
        ranges.append(f"{min(values):.3g} - {max(values):.3g}" if values else "n/a")
    lines.append(f"| epoch distance range, lr 0.01 (all seeds) | 0.15 - 0.4 | 0.02 - 0.04 | "
                 f"{ranges[0]} | {ranges[1]} |")
    return lines + [""]


def sharpness_section(results):
    """Keskar sharpness in every space and box size computed, large vs small batch, per group."""
    st = results.settings
    spaces = ("full", "subspace") if st.sharpness_space == "both" else (st.sharpness_space,)
    S, L = st.small_batch, st.large_batch
    lines = ["## Sharpness in every space and box size", "",
             f"Finding 7 reads the first row; the others test the same claim with the random "
             f"{st.subspace_dim}-dimensional subspace and the other box sizes (bs {L} minus bs {S}, "
             "Welch's t-test, mean ± sd over seeds).", "",
             f"| lr | compared | space | eps | bs {S} | bs {L} | effect [95 % CI] | p |",
             "|---|---|---|---|---|---|---|---|"]
    for group, lrs in (("base", (st.base_lr, st.base_lr)),
                       ("scaled", (st.scaled_lr(S), st.scaled_lr(L)))):
        point = results.points[group]
        where = "converged" if point and point.level is None else (
            f"train loss {point.level:g}" if point else "no point")
        for space in spaces:
            for eps in st.sharpness_eps:
                key = sharpness_key(space, eps)
                small, large = (results.summary(b, lr, key, group) for b, lr in zip((S, L), lrs))
                effect = welch_difference(large, small, +1)
                lines.append(f"| {lrs[0]:g} / {lrs[1]:g} | {where} | {space} | {eps:g} | "
                             f"{small.text('{:.3g}')} | {large.text('{:.3g}')} | "
                             f"{fmt_effect(effect, '{:+.3g}')} | {fmt_p(effect)} |")
    return lines + [""]


def figures_section(figures):
    """One subsection per figure: image, caption, the article's value, our numbers."""
    lines = ["## Figures", ""]
    for fig in figures:
        lines += [f"### {fig.title}", "", f"![{fig.title}]({fig.file})", "", fig.caption, ""]
        if fig.article:
            lines += [f"Article: {fig.article}.", ""]
        if fig.table:
            lines += ["| setting / quantity | ours | article |", "|---|---|---|"]
            lines += [f"| {a} | {b} | {c} |" for a, b, c in fig.table]
            lines.append("")
    return lines


def runs_section(results):
    """Every run with its status, headline values and the values at its groups' points."""
    key = results.headline_sharpness_key()
    lines = ["## Every run", "",
             "Values at the comparison point of the run's base-lr group (its scaled-lr group for "
             "runs only in that row). Snapshots: the training-loss levels the run crossed.", "",
             "| run | used by | status | best val loss | best val acc | best epoch | epochs | "
             "lowest level reached | epochs to point | dist. from init | median update | sharpness |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(value, fmt):
        return fmt.format(value) if math.isfinite(value) else "—"
    for run in results.runs:
        group = "base" if "base" in run.planned.groups else "scaled"
        levels = run.status_record.get("snapshots", {})
        lowest = f"{min(float(v) for v in levels):g}" if levels else "—"
        v = lambda k: results.run_value(run, k, group)  # noqa: E731 - a local shorthand
        lines.append(f"| {run.planned.name} | {', '.join(run.planned.groups)} | {run.status} | "
                     f"{cell(v('best_val_loss'), '{:.4f}')} | {cell(v('best_val_acc'), '{:.4f}')} | "
                     f"{cell(v('best_epoch'), '{:.0f}')} | {cell(v('epochs'), '{:.0f}')} | {lowest} | "
                     f"{cell(v('epochs_to_point'), '{:.0f}')} | {cell(v('dist_init'), '{:.3f}')} | "
                     f"{cell(v('update_median'), '{:.3g}')} | {cell(v(key), '{:.3g}')} |")
    return lines + [""]


def write_report(study_dir, out=None, dpi=90, title=None):
    """Write <out>/report.md and the figures; returns the report path and the figure files."""
    results = StudyResults(study_dir)
    out = out or StudyFolder(study_dir).report
    os.makedirs(out, exist_ok=True)
    figures = all_figures(results, out, dpi)
    rows = compute_findings(results)
    title = title or f"Batch-size study ({results.settings.profile} profile)"
    lines = (header_section(results, title) + findings_section(rows) + [""] + caveats_section(results)
             + published_section(results) + sharpness_section(results)
             + figures_section(figures) + runs_section(results))
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, [fig.file for fig in figures]


def main(argv=None):
    """Entry point of `run.py report`; returns the exit code (2 for a user mistake)."""
    def work(args):
        path, files = write_report(args.study, args.out, args.dpi, args.title)
        print(f"wrote {path} and {len(files)} figures", flush=True)
        return EXIT_OK
    return command_main(build_parser, argv, work)


if __name__ == "__main__":
    sys.exit(main())
