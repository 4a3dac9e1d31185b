"""`run.py report STUDY_DIR`: write report.md and its PNG figures from a study folder.

The report puts the article's published numbers beside the study's (mean ± sd over seeds), and
gives each of the article's eight findings a verdict computed by analysis/stats.py, printing the
numbers that decided it. It reads only files the study wrote, so it can be rerun at any time, also
on a study that is still running (what is missing is listed, not invented).
"""
import argparse
import math
import os
import sys

import numpy as np

from .errors import AnalysisError
from .study_figures import all_figures
from .study_findings import compute_findings
from .study_results import StudyResults

EXIT_OK, EXIT_USAGE = 0, 2


def build_parser():
    """Arguments of `run.py report`."""
    p = argparse.ArgumentParser(prog="run.py report",
                                description="Write report.md and figures for a study folder.")
    p.add_argument("study", metavar="STUDY_DIR", help="folder written by `run.py study`")
    p.add_argument("--out", default=None, help="output folder (default STUDY_DIR/report)")
    p.add_argument("--dpi", type=int, default=90, help="figure resolution")
    p.add_argument("--title", default=None, help="report title")
    return p


def fmt_effect(effect):
    """'+0.0123 ± 0.0040 SE' or the value alone when there is no SE."""
    if not math.isfinite(effect.value):
        return "n/a"
    if not math.isfinite(effect.se):
        return f"{effect.value:+.4g} (no SE: a setting has < 2 seeds)"
    return f"{effect.value:+.4g} ± {effect.se:.2g}"


def findings_section(rows):
    """The findings table and, per finding, the numbers that decided its verdict."""
    lines = ["## The eight findings", "",
             "Rule (issue 8): **reproduced** when the effect has the article's sign and |effect| > "
             "2 SE; **contradicted** when it has the opposite sign with the same margin; otherwise "
             "**inconclusive**. SE = sqrt(sum of sd²/n over the settings compared), sd over seeds.",
             "", "| # | article's claim | effect measured (ours) | article | ours: effect ± SE | "
             "\\|effect\\|/SE | verdict |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        e = row["effect"]
        ratio = f"{e.ratio:.1f}" if math.isfinite(e.ratio) else "n/a"
        lines.append(f"| {row['number']} | {row['claim']} | {row['measure']} | {row['article']} | "
                     f"{fmt_effect(e)} | {ratio} | **{e.verdict}** |")
    lines += ["", "Deciding numbers (mean ± sd over seeds, n = seeds with usable weights):", ""]
    for row in rows:
        e = row["effect"]
        sign = "> 0" if e.expected_sign > 0 else "< 0"
        lines.append(f"- **{row['number']}. {row['claim']}** — {row['deciding']}. Effect "
                     f"{fmt_effect(e)}; rule: effect {sign} and |effect| > 2 SE"
                     + (f" ({abs(e.value):.3g} vs {2 * e.se:.3g})" if math.isfinite(e.se) else "")
                     + f" → **{e.verdict}**." + (f" {row['note']}." if row["note"] else ""))
    return lines


def header_section(results, title):
    """Title, data, settings, run counts and wall time."""
    st, meta = results.settings, results.meta
    counts = results.counts()
    invocations = meta.get("invocations", [])
    first_config = next((r.folder for r in results.runs if r.usable), None)
    dataset = commit = threads = "unknown"
    if first_config:
        import json
        with open(os.path.join(first_config, "config.json")) as f:
            config = json.load(f)
        dataset = config.get("dataset", {})
        dataset = (f"{dataset.get('name', '?')} ({dataset.get('n_train', dataset.get('train', '?'))} train / "
                   f"{dataset.get('n_val', dataset.get('val', '?'))} validation)"
                   if isinstance(dataset, dict) else str(dataset))
        commit = config.get("git_commit", "unknown")[:12]
        threads = config.get("threads_per_rank", "?")
    wall = results.wall_seconds()
    lines = [f"# {title}", "",
             f"Reproduction of *Effect of Batch Size on Neural Net Training* (Chang & Pathak, 2020) "
             f"with batchlab, profile **{st.profile}**.", "",
             f"- Data: `{st.data or 'synthetic'}` — {dataset}",
             f"- Model input {st.image_size} px; batches {', '.join(map(str, st.batches))}; base lr "
             f"{st.base_lr:g} at batch {st.base_batch}; linear scaling gives "
             + ", ".join(f"bs {b}: {st.scaled_lr(b):g}" for b in st.batches),
             f"- Early stopping: patience {st.patience}, at most {st.max_epochs} epochs "
             "(the article: patience 100, up to 1000 epochs, 128 px)",
             f"- Seeds: {st.seeds} for every headline configuration (base lr and linearly scaled "
             f"lr); {st.sweep_seeds} for the other cells of the lr sweep "
             f"(lrs {', '.join(f'{lr:g}' for lr in st.sweep_lrs)}). Seeds change the initial weights "
             "and the shuffling, never the data split.",
             f"- Analyses: sharpness eps {st.sharpness_eps:g}, {st.sharpness_space} space, "
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
        if runs and len(capped) == len(runs) and (batch, lr) != (st.small_batch, st.base_lr):
            final = np.mean([r.metrics[-1]["train_loss"] for r in capped])
            lines.append(f"- All {len(runs)} runs of bs {batch} at lr {lr:g} used every one of the "
                         f"{st.max_epochs} epochs without stopping early: they had not converged "
                         f"(mean final training loss {final:.3f}; chance level ln 2 = {math.log(2):.3f}). "
                         "Comparisons with them (epochs to converge, distance, update size, sharpness) "
                         "compare a trained minimiser with a point still on its way.")
    invocations = results.meta.get("invocations", [])
    side_by_side = max((max(i.get("workers", 1), i.get("ranks", 1) if i.get("parallel") == "runs" else 1)
                        for i in invocations), default=1)
    if side_by_side > 1:
        lines.append(f"- Up to {side_by_side} runs trained side by side (one per worker/rank, one thread "
                     "each), so seconds per epoch include contention for the cores and memory "
                     "bandwidth with the other run and with anything else on the machine.")
    if st.sweep_seeds < 2:
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
    from .study_findings import sharpness_key
    rows = [("best val loss, lr 0.01", "0.344", "0.395", base, "best_val_loss", "{:.4f}"),
            ("best val loss, linear-scaled lr", "0.345", "0.352", scaled, "best_val_loss", "{:.4f}"),
            ("time per epoch (s), one device", "12.4", "7.7", base, "sec_per_epoch", "{:.3g}"),
            ("epochs to converge, lr 0.01", "158", "958", base, "best_epoch", "{:.1f}"),
            ("total time to converge (s), lr 0.01", "1915", "~3700 (4 GPUs)", base, "time_to_best", "{:.4g}"),
            ("total time to converge (s), linear-scaled lr", "3156", "2197", scaled, "time_to_best", "{:.4g}"),
            ("median batch update norm, lr 0.01", "3.3e-3", "1.5e-3", base, "update_median", "{:.3g}"),
            ("sharpness (eps 1e-3), lr 0.01", "1.14", "(figure 21)", base, sharpness_key(results), "{:.3g}"),
            ("sharpness, linear-scaled lr", "1.14", "4 - 7", scaled, sharpness_key(results), "{:.3g}")]
    lines = ["## Published numbers beside ours", "",
             f"The article's bs 32 / bs 256 against this study's bs {S} / bs {L} (mean ± sd over "
             "seeds). Absolute times and epoch counts are not comparable across machines, image sizes "
             "and epoch caps; the findings below compare directions and margins.", "",
             f"| quantity | article bs 32 | article bs 256 | ours bs {S} | ours bs {L} |",
             "|---|---|---|---|---|"]
    for label, a_small, a_large, settings, key, fmt in rows:
        ours = [results.summary(b, lr, key).text(fmt) for b, lr in settings]
        lines.append(f"| {label} (ours at lr {settings[0][1]:g} / {settings[1][1]:g}) | {a_small} | "
                     f"{a_large} | {ours[0]} | {ours[1]} |")
    ranges = []
    for batch in (S, L):
        values = [d for r in results.runs_of(batch, lr0) for d in r.curve("epoch_distance")[1]
                  if d is not None]
        ranges.append(f"{min(values):.3g} - {max(values):.3g}" if values else "n/a")
    lines.append(f"| epoch distance range, lr 0.01 (all seeds) | 0.15 - 0.4 | 0.02 - 0.04 | "
                 f"{ranges[0]} | {ranges[1]} |")
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
    """Every run with its status and headline values."""
    from .study_findings import sharpness_key
    key = sharpness_key(results)
    lines = ["## Every run", "", "| run | used by | status | best val loss | best epoch | epochs | "
             "s/epoch | dist. from init | median update | sharpness |", "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(run, name, fmt):
        value = run.value(name)
        return fmt.format(value) if math.isfinite(value) else "—"
    for run in results.runs:
        lines.append(f"| {run.planned.name} | {', '.join(run.planned.groups)} | {run.status} | "
                     f"{cell(run, 'best_val_loss', '{:.4f}')} | {cell(run, 'best_epoch', '{:.0f}')} | "
                     f"{cell(run, 'epochs', '{:.0f}')} | {cell(run, 'sec_per_epoch', '{:.2f}')} | "
                     f"{cell(run, 'dist_init', '{:.3f}')} | {cell(run, 'update_median', '{:.3g}')} | "
                     f"{cell(run, key, '{:.3g}')} |")
    return lines + [""]


def write_report(study_dir, out=None, dpi=90, title=None):
    """Write <out>/report.md and the figures; returns the report path and the figure files."""
    results = StudyResults(study_dir)
    out = out or os.path.join(study_dir, "report")
    os.makedirs(out, exist_ok=True)
    figures = all_figures(results, out, dpi)
    rows = compute_findings(results)
    title = title or f"Batch-size study ({results.settings.profile} profile)"
    lines = (header_section(results, title) + findings_section(rows) + [""] + caveats_section(results)
             + published_section(results)
             + figures_section(figures) + runs_section(results))
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, [fig.file for fig in figures]


def main(argv=None):
    """Entry point of `run.py report`; returns the exit code (2 for a user mistake)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        path, files = write_report(args.study, args.out, args.dpi, args.title)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    print(f"wrote {path} and {len(files)} figures", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
