"""The article's eight findings as measured effects with verdicts (see analysis/stats.py).

S and L are the plan's smallest and largest batch (the article's 32 and 256), lr0 the base lr and
lr_L the large batch's linearly scaled lr (0.08). Findings 1-7 compare L with S at lr0, seed values
against seed values (Welch); what each one reads:

1. training loss falls slower: mean training loss over the first K epochs (K = the fewest epochs any
   compared run trained, so every run is averaged over the same epochs), expected > 0
2. higher best validation loss: each run's best validation loss, expected > 0
3. less time per epoch: seconds per epoch of the timing pass (one process at a time on an idle
   machine, 1 rank; the warm-up epoch left out), epochs as samples, expected < 0
4. more epochs to converge: epochs to the base group's comparison point (the best epoch when every
   run converged, else the first epoch below the common training-loss level), expected > 0
5. minimiser closer to the initial weights: |theta - theta_0| at the comparison point, expected < 0
6. smaller updates: median per-step update norm over the steps up to the comparison point, expected < 0
7. sharper minimiser: Keskar sharpness at the comparison point, expected > 0
8. linear scaling closes most of the gap: fraction of the best-validation-loss gap (L - S at lr0)
   that L at lr_L closes, bootstrap interval, lower bound above 50 %
"""
from ..stats import gap_closed, welch_difference

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
    8: "(0.395 - 0.352) / (0.395 - 0.344) = 84 % of the gap",
}


def early_train_loss(results, settings):
    """Per-run mean training loss over the first K epochs, K common to all runs of `settings`."""
    runs = [r for s in settings for r in results.runs_of(*s)]
    if not runs:
        return {}, 0
    k = min(len(r.metrics) for r in runs)
    return {r.planned.name: sum(m["train_loss"] for m in r.metrics[:k]) / k for r in runs}, k


def compute_findings(results):
    """One row per finding: claim, measure, comparison made, article value, the two settings'
    summaries, the effect (with interval, p and verdict) and a note."""
    from ..stats import summarize
    st = results.settings
    S, L, lr0 = st.small_batch, st.large_batch, st.base_lr
    small, large = (S, lr0), (L, lr0)
    small_scaled, large_scaled = (S, st.scaled_lr(S)), (L, st.scaled_lr(L))
    point = results.points["base"]
    at_point = point.describe() if point else "no comparable point: a run never reached a level"
    rows = []

    def add(number, measure, comparison, summaries, effect, fmt="{:.4g}", note=""):
        rows.append({"number": number, "claim": CLAIMS[number], "measure": measure,
                     "comparison": comparison, "article": ARTICLE[number], "summaries": summaries,
                     "effect": effect, "fmt": fmt, "note": note})

    def welch(key, sign, group="base"):
        s = results.summaries(key, [large, small], group)
        return s, welch_difference(s[large], s[small], sign)

    per_run, k = early_train_loss(results, [small, large])
    early = {s: summarize([per_run.get(r.planned.name) for r in results.runs_of(*s)])
             for s in (large, small)}
    add(1, f"mean training loss over epochs 1-{k}", f"the first {k} epochs of every run", early,
        welch_difference(early[large], early[small], +1))
    summaries, effect = welch("best_val_loss", +1)
    capped = sum(r.value("hit_max_epochs") == 1.0 for r in results.runs_of(*large))
    add(2, "best validation loss", "each run's best epoch", summaries, effect,
        note=(f"{capped} of the bs {L} runs used all {st.max_epochs} epochs without converging: "
              "their best validation loss is an upper bound" if capped else ""))
    timing = {large: summarize(results.timing_samples(L)), small: summarize(results.timing_samples(S))}
    add(3, "seconds per epoch (training + validation)",
        "timing pass: one process at a time on an idle machine, 1 rank, epochs as samples",
        timing, welch_difference(timing[large], timing[small], -1), "{:.3g}",
        note="" if results.timing else "the timing pass has not run yet")
    summaries, effect = welch("epochs_to_point", +1)
    add(4, "epochs to converge" if point and point.level is None else
        f"epochs to reach training loss {point.level:g}" if point else "epochs to converge",
        at_point, summaries, effect, "{:.4g}")
    summaries, effect = welch("dist_init", -1)
    add(5, "‖theta - theta_0‖", at_point, summaries, effect)
    summaries, effect = welch("update_median", -1)
    add(6, "median update norm up to that point", at_point, summaries, effect, "{:.3g}")
    key = results.headline_sharpness_key()
    space, eps = key.split("_")[1:]
    summaries, effect = welch(key, +1)
    add(7, f"Keskar sharpness ({space} space, eps {eps})", at_point, summaries, effect)
    s8 = results.summaries("best_val_loss", [small, large, small_scaled, large_scaled])
    effect = gap_closed(s8[small], s8[large], s8[large_scaled],
                        None if small_scaled == small else s8[small_scaled])
    add(8, f"fraction of the best-val-loss gap bs{L} - bs{S} closed by bs{L} at lr "
        f"{st.scaled_lr(L):g}", "each run's best epoch", s8, effect, "{:.4g}",
        note=(f"gap without scaling {s8[large].mean - s8[small].mean:+.4f}, with scaling "
              f"{s8[large_scaled].mean - s8[small_scaled].mean:+.4f}"))
    return rows
