"""The report's figures 5-13: loss curves, best losses, time and epochs, time per epoch on each
rank count, distances from the initial weights and the sizes of the updates."""
import numpy as np

from .drawing import CAPPED_LABEL, COLORS, Drawing, clipped_sd, plt


class TrainingFigures(Drawing):
    """Figures about how the runs trained (read from their metrics, status and update norms)."""

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
