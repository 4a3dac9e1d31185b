"""The report's figures 18-29: the minimisers' surroundings (interpolation, sharpness, loss
surfaces, gradient noise scale) and the learning-rate comparisons (scaled lr, lr sweep)."""
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import MaxNLocator, NullFormatter

from .drawing import COLORS, Drawing, plt
from .plan import run_name


class LandscapeFigures(Drawing):
    """Figures read from the analysis tasks' results and from the lr rows of the plan."""

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
