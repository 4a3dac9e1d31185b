"""The report's figures: equivalents of the article's figures 5-8, 10-13, 18 and 21-29.

Each `fig_*` function draws one PNG from StudyResults and returns a Figure record (file, title,
caption, the article's value) or None when the study holds no data for it. Every PNG's suptitle names
the figure and the study's data set, image size and profile. Per-setting values are drawn seed by
seed (points; an open triangle for a run capped by the epoch limit) with the mean and standard
deviation over seeds (error bars, clipped at 0: every value drawn this way is non-negative).
"""
import os
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
CAPPED_STATUS = "finished"  # used every epoch without early stopping: not converged
CAPPED_LABEL = "capped run (not converged)"


def study_context(settings):
    """'<data set>, <size> px, <profile> profile': the data's folder name only, never its path."""
    data = os.path.basename(os.path.normpath(settings.data)) if settings.data else "synthetic"
    return f"{data}, {settings.image_size} px, {settings.profile} profile"


def clipped_sd(mean, sd, floor=0.0):
    """Asymmetric error bar [[below], [above]] of mean ± sd whose lower end stops at `floor`."""
    return [[max(0.0, min(sd, mean - floor))], [sd]]


@dataclass
class Figure:
    """One written figure and what the report says about it."""

    file: str
    title: str
    caption: str
    article: str = ""
    table: list = field(default_factory=list)  # rows (label, ours text, article text)


class FigureWriter:
    """Draws figures into one folder at one resolution."""

    def __init__(self, results, folder, dpi=90):
        self.r, self.folder, self.dpi = results, folder, dpi
        self.st = results.settings
        self.context = study_context(results.settings)

    def save(self, fig, name, title):
        """Write the figure as <folder>/<name>.png under a suptitle naming it and the study's data,
        image size and profile, then close it."""
        fig.suptitle(f"{title}\n{self.context}", fontsize=10)
        if fig.get_layout_engine() is None:
            fig.tight_layout()
        fig.savefig(f"{self.folder}/{name}.png", dpi=self.dpi)
        plt.close(fig)
        return f"{name}.png"

    def record(self, fig, name, title, *details):
        """Save the figure and return its Figure record (caption, article value, table rows)."""
        return Figure(self.save(fig, name, title), title, *details)

    @staticmethod
    def legend(ax):
        """A legend when the panel has labelled artists."""
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)

    # ---- shared drawing ------------------------------------------------------------------------
    def color(self, batch):
        """One colour per batch size, the same in every figure."""
        return COLORS[self.st.batches.index(batch) % len(COLORS)]

    def group(self, settings):
        """The comparison group a list of settings belongs to ('scaled' for the scaled-lr row)."""
        return "base" if all(lr == self.st.base_lr for _, lr in settings) else "scaled"

    def seeds_plot(self, ax, settings, key, offset=0.0, color=None, label=None, marker="o",
                   capped_label=CAPPED_LABEL):
        """Seeds as points (capped runs as open triangles) and mean ± sd, clipped at 0, as an
        error bar at categorical x = batch index."""
        rows = []
        group = self.group(settings)
        capped_labelled = capped_label in ax.get_legend_handles_labels()[1]  # one entry per panel
        for i, (batch, lr) in enumerate(settings):
            s = self.r.summary(batch, lr, key, group)
            x = i + offset
            c = color or self.color(batch)
            seeds = [(self.r.run_value(r, key, group), r.status == CAPPED_STATUS)
                     for r in self.r.runs_of(batch, lr)]
            seeds = [(v, capped) for v, capped in seeds if np.isfinite(v)]
            if s.n:
                jitter = np.linspace(-0.06, 0.06, s.n) if s.n > 1 else np.zeros(1)
                for dx, (v, capped) in zip(jitter, seeds):
                    if capped:
                        ax.scatter(x + dx, v, s=30, marker="^", facecolors="none", edgecolors=c,
                                   zorder=3, label=None if capped_labelled else capped_label)
                        capped_labelled = True
                    else:
                        ax.scatter(x + dx, v, s=14, color=c, alpha=0.6, zorder=3)
                ax.errorbar(x, s.mean, yerr=clipped_sd(s.mean, s.sd) if s.n > 1 else None,
                            fmt=marker, color=c, ms=7, capsize=4, zorder=4, mfc="white",
                            label=label if i == 0 else None)
            rows.append((f"bs {batch}, lr {lr:g}", s))
        ax.set_xticks(range(len(settings)), [f"bs {b}\nlr {lr:g}" for b, lr in settings])
        ax.set_xlabel("batch size, learning rate")
        return rows

    def article_stars(self, ax, settings, values, label="article"):
        """The article's values at the matching categorical positions (same units only)."""
        first = True
        for i, (batch, _lr) in enumerate(settings):
            if batch in values:
                ax.scatter(i, values[batch], marker="*", s=160, color="k", zorder=5,
                           label=label if first else None)
                first = False

    def curves(self, ax, settings, key):
        """One thin line per seed of `key` over epochs, coloured by batch."""
        for batch, lr in settings:
            for k, run in enumerate(self.r.runs_of(batch, lr)):
                epochs, values = run.curve(key)
                ax.plot(epochs, values, color=self.color(batch), lw=1, alpha=0.8,
                        label=f"bs {batch}, lr {lr:g}" if k == 0 else None)

    def seed_bands(self, ax, settings, key):
        """Per batch size: the mean over seeds as a bold line and the seeds' min-max as a band, over
        the epochs every seed reached; each seed as a thin faint line over all its epochs."""
        for batch, lr in settings:
            runs = self.r.runs_of(batch, lr)
            if not runs:
                continue
            c = self.color(batch)
            for run in runs:
                ax.plot(*run.curve(key), color=c, lw=0.6, alpha=0.3)
            common = min(len(run.metrics) for run in runs)
            seeds = np.array([[m[key] for m in run.metrics[:common]] for run in runs], dtype=float)
            epochs = np.arange(1, common + 1)
            ax.fill_between(epochs, seeds.min(0), seeds.max(0), color=c, alpha=0.2, lw=0)
            ax.plot(epochs, seeds.mean(0), color=c, lw=2.2, label=f"bs {batch}, lr {lr:g} (n={len(runs)})")

    def _has(self, settings):
        return any(self.r.runs_of(b, lr) for b, lr in settings)

    @staticmethod
    def table(rows, fmt="{:.4g}", article=None):
        """Report rows (label, 'mean ± sd (n)', article value) from summaries."""
        article = article or {}
        return [(label, s.text(fmt), article.get(label.split(",")[0], "")) for label, s in rows]

    # ---- figures 5-8 -----------------------------------------------------------------------------
    def loss_curves(self, settings, name, number, what):
        """Training loss, validation loss and validation accuracy per epoch: mean and range of seeds."""
        if not self._has(settings):
            return None
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
        panels = (("train_loss", "training loss"), ("val_loss", "validation loss"),
                  ("val_acc", "validation accuracy"))
        for ax, (key, label) in zip(axes, panels):
            self.seed_bands(ax, settings, key)
            ax.set(xlabel="epoch", ylabel=label, title=label)
            self.legend(ax)
        return self.record(fig, name, f"Figure {number}: loss curves, {what}",
                           "Training loss, validation loss and validation accuracy per epoch. Bold "
                           "line: mean over seeds; band: the seeds' min-max, both over the epochs "
                           "every seed reached; thin lines: each seed.")

    def best_losses(self, settings, name, number, what, article_val):
        """Best training and validation loss per batch size."""
        if not self._has(settings):
            return None
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        rows = []
        for ax, key, title in ((axes[0], "best_train_loss", "lowest training loss"),
                               (axes[1], "best_val_loss", "best validation loss")):
            got = self.seeds_plot(ax, settings, key, label="ours: mean ± sd")
            rows += [(f"{label}, {title}", s) for label, s in got]
            ax.set(ylabel="loss", title=title)
        self.article_stars(axes[1], settings, article_val)
        for ax in axes:
            self.legend(ax)
        art = {f"bs {b}": f"{v:.3f}" for b, v in article_val.items()}
        return self.record(fig, name, f"Figure {number}: best losses, {what}",
                      "Lowest training loss and best validation loss of each run (points: seeds; "
                      "error bars: mean ± sd, clipped at 0; stars: the article's validation losses).",
                      ", ".join(f"{k}: {v}" for k, v in art.items()),
                      [(label, s.text(), art.get(label.split(",")[0], "") if "validation" in label else "")
                       for label, s in rows])

    def time_and_epochs(self, settings, name, number, what, keys, article):
        """Seconds per epoch / epochs to the comparison point / total seconds to it, per batch size.
        When the point is an equal-loss level (some run was capped), a panel of epochs to the best
        validation loss is added, where a capped run's count is a lower bound."""
        if not self._has(settings):
            return None
        point = self.r.points[self.group(settings)]
        at_level = point is not None and point.level is not None
        where = f"train loss {point.level:g}" if at_level else "best val loss"
        titles = {"sec_per_epoch": "training seconds per epoch", "epochs_to_point": f"epochs to {where}",
                  "best_epoch": "epochs to best val loss", "time_to_point": f"seconds to {where} (train + eval)"}
        ylabels = {"sec_per_epoch": "seconds", "epochs_to_point": "epochs", "best_epoch": "epochs",
                   "time_to_point": "seconds"}
        if at_level:
            keys = tuple(keys) + ("best_epoch",)
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.2))
        rows = []
        for ax, key in zip(np.atleast_1d(axes), keys):
            # a capped run's best epoch would only move later with more epochs: a lower bound
            capped = "capped: lower bound" if key == "best_epoch" else CAPPED_LABEL
            got = self.seeds_plot(ax, settings, key, capped_label=capped)
            published = article.get(key, {})
            rows += [(f"{label}, {titles[key]}", s.text("{:.4g}"),
                      published.get(int(label.split(",")[0][3:]), "")) for label, s in got]
            ax.set(title=titles[key], ylabel=ylabels[key])
            self.legend(ax)
            if published:
                ax.text(0.02, 0.97, "article: " + ", ".join(f"bs {b} {v}" for b, v in published.items()),
                        transform=ax.transAxes, va="top", fontsize=7, bbox=dict(fc="white", alpha=0.8))
        capped_note = (" Open triangles: runs capped by the epoch limit (not converged); their epochs "
                       "to the best val loss are lower bounds." if at_level else "")
        return self.record(fig, name, f"Figure {number}: time and epochs, {what}",
                           "Per run (points) with mean ± sd over seeds (clipped at 0). Times are this "
                           "machine's, at this study's image size; the article's are GPU seconds at "
                           "128 px (in the boxes)." + capped_note,
                           "; ".join(f"{titles[k]}: " + ", ".join(f"bs {b} {v}" for b, v in p.items())
                                     for k, p in article.items()), rows)

    def time_per_rank_count(self, settings, name):
        """Figure 8: seconds per epoch of the timing pass by batch size, on each rank count measured."""
        if not self.r.timing:
            return None
        entries = self.r.timing["entries"]
        ranks = sorted({e["ranks"] for e in entries})
        threads = {e["ranks"]: e.get("threads_per_rank") for e in entries}
        on = " and ".join(map(str, ranks)) + (" rank" if ranks == [1] else " ranks")
        fig, ax = plt.subplots(figsize=(6, 4.2))
        rows = []
        for k, count in enumerate(ranks):
            for i, (batch, _lr) in enumerate(settings):
                values = self.r.timing_samples(batch, count)
                if values:
                    mean = float(np.mean(values))
                    ax.bar(i + 0.8 * k / len(ranks), mean, 0.8 / len(ranks),
                           yerr=clipped_sd(mean, np.std(values, ddof=1)) if len(values) > 1 else None,
                           color=COLORS[k], capsize=3, label=f"{count} rank(s)" if i == 0 else None)
                    rows.append((f"bs {batch}, {count} rank(s)", f"{mean:.3g} s (n={len(values)})", ""))
        ax.set_xticks([i + 0.4 * (len(ranks) - 1) / len(ranks) for i in range(len(settings))],
                      [f"bs {b}" for b, _ in settings])
        ax.set(xlabel="batch size", ylabel="seconds per epoch (train + validation)",
               title=f"timing pass on {on}")
        self.legend(ax)
        art = "1 GPU: bs 32 12.4 s, bs 256 7.7 s; 4 GPUs: bs 256 3.97 s, bs 32 slightly slower than 1 GPU"
        how = " and ".join(f"on {c} rank(s)" + (" (mpirun)" if c > 1 else "")
                           + (f" with {threads[c]} thread(s) each" if threads[c] else "") for c in ranks)
        return self.record(fig, name, f"Figure 8: time per epoch on {on}",
                           "The timing pass: each batch size trained alone on an otherwise idle machine "
                           f"for {self.r.timing['params']['epochs']} epochs (the first left out), {how}; "
                           "mean ± sd over the timed epochs (clipped at 0).", art, rows)

    # ---- figures 10-13 ---------------------------------------------------------------------------
    def distance(self, name):
        """Figure 10: distance of the best weights from the initial weights per batch size."""
        settings = self.r.base_settings()
        if not self._has(settings):
            return None
        fig, ax = plt.subplots(figsize=(6, 4))
        rows = self.seeds_plot(ax, settings, "dist_init")
        ax.set(ylabel="|theta - theta_0|", title=f"distance from initial weights, lr {self.st.base_lr:g}")
        self.legend(ax)
        return self.record(fig, name, "Figure 10: distance from the initial weights",
                      "Euclidean distance of each run's weights from its initial weights, "
                      + self.point_text("base") + "; points: seeds, error bars: mean ± sd "
                      "(clipped at 0).",
                      "decreasing with batch size except bs 128 > bs 64 (no numbers)",
                      self.table(rows))

    def distance_by_layer(self, name):
        """Figure 11: per-layer distance from init, small vs large batch."""
        pair = [(self.st.small_batch, self.st.base_lr), (self.st.large_batch, self.st.base_lr)]
        runs = {s: self.r.runs_of(*s) for s in pair}
        if not all(runs.values()):
            return None
        point = self.r.points["base"]
        if point is None:
            return None
        layer_distances = {s: [r.at_point(point)["dist_layers"] for r in runs[s]] for s in pair}
        layers = list(layer_distances[pair[0]][0])
        fig, ax = plt.subplots(figsize=(8, 4))
        rows = []
        for k, (batch, lr) in enumerate(pair):
            values = np.array([[d[n] for n in layers] for d in layer_distances[(batch, lr)]])
            x = np.arange(len(layers)) + (k - 0.5) * 0.38
            means = values.mean(0)
            sds = values.std(0, ddof=1) if len(values) > 1 else None
            ax.bar(x, means, 0.38, color=self.color(batch), alpha=0.7, capsize=3,
                   yerr=None if sds is None else [np.minimum(sds, means), sds],
                   label=f"bs {batch} (mean ± sd, clipped at 0)")
            for v in values:
                ax.scatter(x, v, s=10, color="k", zorder=3)
            for j, layer in enumerate(layers):
                sd = f" ± {values[:, j].std(ddof=1):.3g}" if len(values) > 1 else ""
                rows.append((f"bs {batch}, {layer}", f"{values[:, j].mean():.3g}{sd} (n={len(values)})", ""))
        ax.set_xticks(range(len(layers)), layers)
        ax.set(xlabel="layer", ylabel="|theta - theta_0| of the layer",
               title="distance from initial weights by layer")
        ax.legend(fontsize=7)
        return self.record(fig, name, "Figure 11: distance from the initial weights by layer",
                      "Per layer (weights and biases together), " + self.point_text("base")
                      + "; dots are seeds.",
                      "bs 32 farther than bs 256 in every layer (no numbers)", rows)

    def epoch_distances(self, name):
        """Figure 12: epoch distance per epoch for small and large batch, and their ratio."""
        S, L, lr = self.st.small_batch, self.st.large_batch, self.st.base_lr
        small, large = self.r.runs_of(S, lr), self.r.runs_of(L, lr)
        if not (small and large):
            return None
        fig, (ax, ax_ratio) = plt.subplots(1, 2, figsize=(10, 4))
        self.curves(ax, [(S, lr), (L, lr)], "epoch_distance")
        ax.set(xlabel="epoch", ylabel="|theta_end - theta_start| of the epoch", yscale="log",
               title="epoch distance")
        ax.legend(fontsize=7)
        k = min(len(r.metrics) for r in small + large)

        def mean_curve(runs):
            return np.mean([[m["epoch_distance"] for m in r.metrics[:k]] for r in runs], 0)
        ratio = mean_curve(small) / mean_curve(large)
        ax_ratio.plot(np.arange(1, k + 1), ratio, color="k")
        ax_ratio.set(xlabel="epoch", ylabel=f"bs {S} / bs {L}", title="ratio of mean epoch distances")
        ranges = {b: [d for r in runs for d in r.curve("epoch_distance")[1]] for b, runs in ((S, small), (L, large))}
        rows = [(f"bs {b}, epoch distance range", f"{min(v):.3g} - {max(v):.3g}", a)
                for (b, v), a in zip(ranges.items(), ("0.15 - 0.4", "0.02 - 0.04"))]
        rows.append((f"ratio bs {S}/bs {L}, first and last of {k} epochs", f"{ratio[0]:.3g} -> {ratio[-1]:.3g}",
                     "increases over time"))
        return self.record(fig, name, "Figure 12: epoch distances and their ratio",
                      "Distance covered in each epoch (one line per seed) and the ratio of the seed means.",
                      "bs 32: 0.15 - 0.4, bs 256: 0.02 - 0.04; ratio increases over time", rows)

    def update_norms(self, name):
        """Figure 13: distribution of per-step update norms, small vs large batch (seeds pooled)."""
        S, L, lr = self.st.small_batch, self.st.large_batch, self.st.base_lr
        pair = [(S, lr), (L, lr)]
        if not all(self.r.runs_of(*s) for s in pair):
            return None
        fig, ax = plt.subplots(figsize=(7, 4))
        pooled = {b: np.concatenate([r.update_norms for r in self.r.runs_of(b, lr)]) for b, _ in pair}
        positive = np.concatenate([v[v > 0] for v in pooled.values()])
        bins = np.geomspace(positive.min(), positive.max(), 60)
        for batch, values in pooled.items():
            # bins are equal in log space, so the fraction of steps per bin compares the shapes
            shown = values[values > 0]
            ax.hist(shown, bins=bins, weights=np.full(shown.size, 1.0 / shown.size), histtype="step",
                    lw=1.5, color=self.color(batch), label=f"bs {batch} (all seeds)")
            ax.axvline(np.median(values), color=self.color(batch), ls="--")
        ax.set(xscale="log", xlabel="|theta_{t+1} - theta_t|", ylabel="fraction of steps",
               title="update norm per step (dashed: pooled median)")
        ax.legend(fontsize=7)
        rows = self.table(self.seeds_plot_rows(pair, "update_median"), "{:.3g}",
                          {f"bs {S}": "3.3e-3", f"bs {L}": "1.5e-3"})
        return self.record(fig, name, "Figure 13: distribution of batch update sizes",
                      "Per-step update norms of all seeds; the table gives each setting's median "
                      "update norm as mean ± sd over seeds.", "median bs 32: 3.3e-3, bs 256: 1.5e-3", rows)

    def seeds_plot_rows(self, settings, key):
        """(label, Summary) per setting without drawing."""
        group = self.group(settings)
        return [(f"bs {b}, lr {lr:g}", self.r.summary(b, lr, key, group)) for b, lr in settings]

    def point_text(self, group):
        """Where the group's runs are read, in words."""
        point = self.r.points[group]
        return point.describe() if point else "no comparable point"

    # ---- figures 18, 21, 22 --------------------------------------------------------------------
    def interpolation(self, name):
        """Figure 18: loss along the line from the small- to the large-batch minimiser."""
        res = self.r.result("interpolation")
        if res is None:
            return None
        fig, ax = plt.subplots(figsize=(7, 4))
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(res["alpha"], res[f"{split}_loss"], style, marker=".", label=f"{split} loss")
        for a in (0.0, 1.0):
            ax.axvline(a, color="grey", lw=0.8)
        S, L = self.st.small_batch, self.st.large_batch
        ax.set(yscale="log", xlabel=f"alpha (0: bs {S} minimiser, 1: bs {L} minimiser)", ylabel="loss",
               title="1-D interpolation between minimisers (seed 0)")
        ax.legend(fontsize=7)
        alpha = np.asarray(res["alpha"])
        rows = [(f"{split} loss at alpha {a:g}", f"{np.interp(a, alpha, res[f'{split}_loss']):.4g}", "")
                for split in ("train", "val") for a in (0.0, 1.0)]
        return self.record(fig, name, "Figure 18: interpolation between minimisers",
                      "theta(alpha) = alpha theta_L + (1 - alpha) theta_S on alpha in [-1, 2], the two "
                      "runs read " + self.point_text("base") + ".",
                      "the large-batch end (alpha = 1) rises much more steeply", rows)

    def sharpness(self, settings_sets, name, number, title, article_stars):
        """Figures 21 and 26: Keskar sharpness per batch size (one series per lr rule)."""
        key = self.r.headline_sharpness_key()
        if not any(self._has(s) for s, _ in settings_sets):
            return None
        fig, ax = plt.subplots(figsize=(7, 4))
        rows = []
        for k, (settings, label) in enumerate(settings_sets):
            offset = (k - (len(settings_sets) - 1) / 2) * 0.25
            got = self.seeds_plot(ax, settings, key, offset, COLORS[k], label, "os"[k % 2])
            rows += [(f"{lbl} ({label})", s) for lbl, s in got]
        ax.set_xticks(range(len(self.st.batches)), [f"bs {b}" for b in self.st.batches])
        self.article_stars(ax, settings_sets[0][0], article_stars, "article bs 32: 1.14")
        space, eps = key.split("_")[1:]
        ax.set(xlabel="batch size", ylabel=f"phi ({space} space, eps {eps})", title=title)
        self.legend(ax)
        where = "; ".join(f"{label}: {self.point_text(self.group(s))}" for s, label in settings_sets)
        return self.record(fig, name, f"Figure {number}: {title}",
                      f"Keskar et al.'s metric on the training loss ({where}); points are seeds, "
                      "error bars mean ± sd over seeds, clipped at 0 (phi is never negative).",
                      "bs 32: 1.14; bs >= 64 after lr scaling: 4 - 7",
                      self.table(rows, article={"bs 32": "1.14"}))

    def surfaces(self, name):
        """Figure 22: filter-normalised loss contours of the small- and large-batch minimisers, on
        one set of contour levels and one colour scale so that the panels compare."""
        S, L, lr = self.st.small_batch, self.st.large_batch, self.st.base_lr
        from .study_plan import run_name
        results = [(b, self.r.result(f"surface-{run_name(b, lr, 0)}")) for b in (S, L)]
        results = [(b, res) for b, res in results if res is not None]
        if not results:
            return None
        losses = [np.asarray(res["loss"], dtype=float) for _, res in results]
        low = max(min(float(loss.min()) for loss in losses), 1e-6)
        high = max(float(loss.max()) for loss in losses)
        high = high if high > low else low * 1.01
        # losses span decades away from the minimum: levels equally spaced in log loss
        levels = np.geomspace(low, high, 20)
        norm = LogNorm(low, high)
        fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results) + 1, 4.6), squeeze=False,
                                 layout="constrained")
        rows = []
        for ax, (batch, res), loss in zip(axes[0], results, losses):
            cs = ax.contour(res["x"], res["y"], loss, levels=levels, cmap="viridis", norm=norm)
            ax.clabel(cs, cs.levels[::4], fontsize=6, fmt="%.3g")
            ax.plot([0], [0], "r+", ms=10)
            ax.set(title=f"bs {batch}, lr {lr:g}: train loss {loss.min():.3g} - {loss.max():.3g}",
                   xlabel="direction 1", ylabel="direction 2", aspect="equal")
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(5))
            centre = loss[len(res["y"]) // 2, len(res["x"]) // 2]
            rows.append((f"bs {batch}, loss at centre / max on grid", f"{centre:.4g} / {loss.max():.4g}", ""))
        bar = fig.colorbar(cs, ax=list(axes[0]), label="training loss (shared levels)")
        bar.ax.yaxis.set_major_formatter("{x:.3g}")
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
        return self.record(fig, name, "Figure 22: filter-normalised loss surfaces",
                           "Training loss around each minimiser along two filter-normalised random "
                           "directions (Li et al. 2018); seed 0 runs, " + self.point_text("base")
                           + ". Both panels use the same 20 contour levels (equally spaced in log "
                           "loss) and colour scale.", "contours tighter around the bs 256 minimiser", rows)

    # ---- figures 23-29 -------------------------------------------------------------------------
    def lr_comparison(self, key, name, number, title, ylabel, article):
        """Figures 26/27 style: one value per batch size, base lr vs linearly scaled lr."""
        sets = [(self.r.base_settings(), f"lr {self.st.base_lr:g}"), (self.r.scaled_settings(), "scaled lr")]
        if not any(self._has(s) for s, _ in sets):
            return None
        fig, ax = plt.subplots(figsize=(7, 4))
        rows = []
        for k, (settings, label) in enumerate(sets):
            got = self.seeds_plot(ax, settings, key, (k - 0.5) * 0.25, COLORS[k], label, "os"[k])
            rows += [(f"{lbl} ({label})", s) for lbl, s in got]
        ax.set_xticks(range(len(self.st.batches)), [f"bs {b}" for b in self.st.batches])
        ax.set(xlabel="batch size", ylabel=ylabel, title=title)
        self.legend(ax)
        return self.record(fig, name, f"Figure {number}: {title}",
                      "Base lr against the linearly scaled lr; points are seeds, error bars mean ± sd "
                      "(clipped at 0).", article,
                      self.table(rows))

    def val_at_lr(self, name):
        """Figure 28: best validation loss per batch size at the sweep's lr 0.08 (or nearest)."""
        lr = self.st.fig28_lr()
        if lr is None:
            return None
        settings = [(b, lr) for b in self.st.batches]
        if not self._has(settings):
            return None
        fig, ax = plt.subplots(figsize=(6, 4))
        rows = self.seeds_plot(ax, settings, "best_val_loss")
        ax.set(ylabel="best validation loss", title=f"best validation loss at lr {lr:g}")
        self.legend(ax)
        return self.record(fig, name, f"Figure 28: validation loss by batch size at lr {lr:g}",
                      "From the lr sweep (cells shared with the headline rows carry their seeds); "
                      "points: seeds, error bars: mean ± sd (clipped at 0).",
                      "at lr 0.08, bs 64 beats bs 32", self.table(rows))

    def lr_sweep(self, name):
        """Figure 29: best validation loss against lr per batch size, and the lr x batch heatmap."""
        lrs, batches = self.st.sweep_lrs, self.st.batches
        if not self._has([(b, lr) for b in batches for lr in lrs]):
            return None
        fig, (ax, ax_map) = plt.subplots(1, 2, figsize=(11, 4.2))
        grid = np.full((len(batches), len(lrs)), np.nan)
        rows = []
        for i, b in enumerate(batches):
            means = []
            for j, lr in enumerate(lrs):
                s = self.r.summary(b, lr, "best_val_loss")
                means.append(s.mean)
                grid[i, j] = s.mean
                if s.n:
                    ax.scatter([lr] * s.n, s.values, s=12, color=self.color(b), alpha=0.6)
                diverged = sum(r.status == "diverged" for r in self.r.runs_of(b, lr, usable=False))
                rows.append((f"bs {b}, lr {lr:g}", s.text() + (f", {diverged} diverged" if diverged else ""), ""))
            ax.plot(lrs, means, marker="o", color=self.color(b), label=f"bs {b}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="best validation loss",
               title="best validation loss against lr (points: seeds)")
        ax.legend(fontsize=7)
        image = ax_map.imshow(grid, cmap="viridis_r", aspect="auto")
        for i in range(len(batches)):
            for j in range(len(lrs)):
                text = "div" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3f}"
                ax_map.text(j, i, text, ha="center", va="center", fontsize=7, color="w")
        ax_map.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax_map.set_yticks(range(len(batches)), [f"bs {b}" for b in batches])
        ax_map.set(xlabel="learning rate", ylabel="batch size", title="mean best validation loss")
        fig.colorbar(image, ax=ax_map, label="best validation loss")
        return self.record(fig, name, "Figure 29: learning rate sweep",
                      "Best validation loss for every (batch, lr) cell; 'div' marks cells whose runs "
                      "all diverged (or are missing).", "best lr: 0.01 for bs 32, 0.08 for bs >= 64",
                      rows)

    def noise_scale(self, name):
        """Extra: gradient-noise scale B_simple at the small- and large-batch minimisers."""
        from .study_plan import run_name
        S, L, lr = self.st.small_batch, self.st.large_batch, self.st.base_lr
        found = [(b, self.r.result(f"noise-{run_name(b, lr, 0)}")) for b in (S, L)]
        found = [(b, res) for b, res in found if res is not None]
        if not found:
            return None
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.bar(range(len(found)), [res["b_simple"] for _, res in found],
               color=[self.color(b) for b, _ in found])
        ax.set_xticks(range(len(found)), [f"bs {b} minimiser" for b, _ in found])
        ax.set(xlabel="weights", ylabel="B_simple = tr(Sigma) / |G|^2", title="gradient noise scale (seed 0)")
        rows = [(f"bs {b} minimiser", f"B_simple {res['b_simple']:.4g} (|G|^2 {res['g2']:.3g} ± "
                 f"{res['g2_stderr']:.2g}, tr Sigma {res['trace']:.3g} ± {res['trace_stderr']:.2g})", "")
                for b, res in found]
        return self.record(fig, name, "Gradient noise scale (not in the article)",
                      "McCandlish et al.'s simple noise scale at each minimiser: the batch size above "
                      "which larger batches stop reducing the gradient noise much.", "", rows)


def all_figures(results, folder, dpi=90):
    """Draw every figure the study has data for; returns the Figure records in article order."""
    w = FigureWriter(results, folder, dpi)
    st = results.settings
    lr0 = st.base_lr
    base, scaled = results.base_settings(), results.scaled_settings()
    figures = [
        w.loss_curves(base, "fig05_loss_curves", 5, f"lr {lr0:g}"),
        w.best_losses(base, "fig06_best_losses", 6, f"lr {lr0:g}", {32: 0.344, 256: 0.395}),
        w.time_and_epochs(base, "fig07_time_epochs", 7, f"lr {lr0:g}",
                          ("sec_per_epoch", "epochs_to_point", "time_to_point"),
                          {"sec_per_epoch": {32: "12.4 s", 256: "7.7 s"},
                           "epochs_to_point": {32: "158", 256: "958"},
                           "time_to_point": {32: "1915 s", 256: "~4x bs 32's"}}),
        w.time_per_rank_count(base, "fig08_time_per_epoch_ranks"),
        w.distance("fig10_distance_from_init"),
        w.distance_by_layer("fig11_distance_by_layer"),
        w.epoch_distances("fig12_epoch_distances"),
        w.update_norms("fig13_update_norms"),
        w.interpolation("fig18_interpolation"),
        w.sharpness([(base, f"lr {lr0:g}")], "fig21_sharpness", 21, "sharpness by batch size", {32: 1.14}),
        w.surfaces("fig22_surfaces"),
        w.loss_curves(scaled, "fig23_loss_curves_scaled", 23, "linearly scaled lr"),
        w.best_losses(scaled, "fig24_best_losses_scaled", 24, "linearly scaled lr", {32: 0.345, 256: 0.352}),
        w.time_and_epochs(scaled, "fig25_epochs_time_scaled", 25, "linearly scaled lr",
                          ("epochs_to_point", "time_to_point"),
                          {"time_to_point": {32: "3156 s", 256: "2197 s"}}),
        w.sharpness([(base, f"lr {lr0:g}"), (scaled, "scaled lr")], "fig26_sharpness_scaled", 26,
                    "sharpness with and without lr scaling", {32: 1.14}),
        w.lr_comparison("dist_init", "fig27_distance_scaled", 27,
                        "distance from initial weights with and without lr scaling",
                        "|theta - theta_0|", "scaling closes most of the gap; bs 128 anomaly"),
        w.val_at_lr("fig28_val_loss_at_lr"),
        w.lr_sweep("fig29_lr_sweep"),
        w.noise_scale("noise_scale"),
    ]
    return [f for f in figures if f is not None]
