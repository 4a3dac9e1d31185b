"""The article's eight findings as computed effects with verdicts (see analysis/stats.py).

S and L are the plan's smallest and largest batch (the article's 32 and 256), lr0 the base lr and
lr_L the large batch's linearly scaled lr (0.08). Each finding compares setting means over seeds:

1. training loss falls slower: mean training loss over the first K epochs, L - S at lr0, expected > 0
   (K = the fewest epochs any of those runs trained, so every run is averaged over the same epochs)
2. higher best validation loss: L - S at lr0, expected > 0
3. less time per epoch: mean training seconds per epoch, L - S at lr0, expected < 0
4. more epochs to converge: epoch of the best validation loss, L - S at lr0, expected > 0
5. minimiser closer to the initial weights: |theta_best - theta_0|, L - S at lr0, expected < 0
6. smaller updates: median per-step update norm, L - S at lr0, expected < 0
7. sharper minimiser: Keskar sharpness (full space if computed, else random subspace), L - S at
   lr0, expected > 0
8. linear scaling closes the gap: (best val loss gap L - S at lr0) - (gap with scaled lrs),
   expected > 0; S's runs appear in both gaps when S is the base batch, and cancel
"""
import math

from .stats import judge, summarize

CLAIMS = {
    1: "the larger the batch, the slower the training loss falls",
    2: "the larger the batch, the higher the best validation loss",
    3: "the larger the batch, the less time per epoch",
    4: "the larger the batch, the more epochs to converge",
    5: "the larger the batch, the closer the minimiser to the initial weights",
    6: "the larger the batch, the smaller each update",
    7: "the larger the batch, the sharper the minimiser",
    8: "linear lr scaling closes most of the gap",
}

# The article's own numbers for each effect (bs 256 against bs 32), where it gives them.
ARTICLE = {
    1: "slope difference in figure 5 (no number)",
    2: "0.395 - 0.344 = +0.051",
    3: "7.7 s - 12.4 s = -4.7 s",
    4: "958 - 158 = +800 epochs",
    5: "figure 10 (no number)",
    6: "1.5e-3 - 3.3e-3 = -1.8e-3",
    7: "figure 21; bs 32: 1.14",
    8: "(0.395 - 0.344) - (0.352 - 0.345) = +0.044 (86 % of the gap)",
}


def early_train_loss(results, settings):
    """Per-run mean training loss over the first K epochs, K common to all runs of `settings`."""
    runs = [r for s in settings for r in results.runs_of(*s)]
    if not runs:
        return {}, 0
    k = min(len(r.metrics) for r in runs)
    return {r.planned.name: sum(m["train_loss"] for m in r.metrics[:k]) / k for r in runs}, k


def sharpness_key(results):
    """The sharpness value the findings use: full space when it was computed, else subspace."""
    return "sharpness_full" if results.settings.sharpness_space in ("full", "both") else "sharpness_subspace"


def _diff_text(effect, fmt):
    parts = []
    for (batch, lr), (weight, summary) in effect.terms.items():
        sign = "+" if weight > 0 else "-"
        scale = "" if abs(weight) == 1 else f"{abs(weight):g} x "
        parts.append(f"{sign} {scale}bs{batch}@{lr:g}: {summary.text(fmt)}")
    return "; ".join(parts).lstrip("+ ")


def compute_findings(results):
    """One row per finding: claim, measure, rule, article value, effect (with SE) and verdict."""
    st = results.settings
    S, L, lr0 = st.small_batch, st.large_batch, st.base_lr
    small, large = (S, lr0), (L, lr0)
    small_scaled, large_scaled = (S, st.scaled_lr(S)), (L, st.scaled_lr(L))
    rows = []

    def add(number, measure, summaries, pairs, sign, fmt="{:.4g}", note=""):
        effect = judge(summaries, pairs, sign)
        rows.append({"number": number, "claim": CLAIMS[number], "measure": measure,
                     "rule": f"effect {'>' if sign > 0 else '<'} 0 and |effect| > 2 SE",
                     "article": ARTICLE[number], "effect": effect,
                     "deciding": _diff_text(effect, fmt), "note": note})

    per_run, k = early_train_loss(results, [small, large])
    early = {s: summarize([per_run.get(r.planned.name) for r in results.runs_of(*s)])
             for s in (small, large)}
    add(1, f"mean training loss over epochs 1-{k}, bs{L} - bs{S} at lr {lr0:g}", early,
        [(large, 1), (small, -1)], +1)
    pairs = [(large, 1), (small, -1)]
    add(2, f"best validation loss, bs{L} - bs{S} at lr {lr0:g}",
        results.summaries("best_val_loss", [small, large]), pairs, +1)
    add(3, f"mean training seconds per epoch, bs{L} - bs{S} at lr {lr0:g}",
        results.summaries("sec_per_epoch", [small, large]), pairs, -1, "{:.3g}")
    capped = sum(r.value("hit_max_epochs") == 1.0 for r in results.runs_of(*large))
    add(4, f"epoch of the best validation loss, bs{L} - bs{S} at lr {lr0:g}",
        results.summaries("best_epoch", [small, large]), pairs, +1, "{:.4g}",
        note=(f"{capped} bs{L} run(s) used all {st.max_epochs} epochs without stopping early: "
              "their value is a lower bound" if capped else ""))
    add(5, f"‖theta_best - theta_0‖, bs{L} - bs{S} at lr {lr0:g}",
        results.summaries("dist_init", [small, large]), pairs, -1)
    add(6, f"median update norm, bs{L} - bs{S} at lr {lr0:g}",
        results.summaries("update_median", [small, large]), pairs, -1, "{:.3g}")
    key = sharpness_key(results)
    add(7, f"Keskar sharpness ({key.split('_')[1]} space, eps {st.sharpness_eps:g}), "
        f"bs{L} - bs{S} at lr {lr0:g}", results.summaries(key, [small, large]), pairs, +1)
    gap_pairs = [(large, 1), (small, -1), (large_scaled, -1), (small_scaled, 1)]
    summaries = results.summaries("best_val_loss", [small, large, small_scaled, large_scaled])
    add(8, f"best val loss gap bs{L} - bs{S} at lr {lr0:g} minus the gap with linear scaling "
        f"(bs{L} at lr {st.scaled_lr(L):g})", summaries, gap_pairs, +1,
        note=gap_closed_note(summaries, small, large, small_scaled, large_scaled))
    return rows


def gap_closed_note(summaries, small, large, small_scaled, large_scaled):
    """'the gap went from A to B (C % closed)' from the setting means."""
    before = summaries[large].mean - summaries[small].mean
    after = summaries[large_scaled].mean - summaries[small_scaled].mean
    if not (math.isfinite(before) and math.isfinite(after)) or before == 0:
        return ""
    return (f"gap without scaling {before:+.4f}, with scaling {after:+.4f} "
            f"({100 * (before - after) / before:.0f} % of the gap closed)")
