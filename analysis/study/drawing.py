"""The report's drawing ground: the Agg backend, colours, the Figure record, and the panels the
figures share.

Every PNG's suptitle names the figure and the study's data set, image size and profile. Per-setting
values are drawn seed by seed (points; an open triangle for a run capped by the epoch limit) with
the mean and standard deviation over seeds (error bars, clipped at 0: every value drawn this way is
non-negative).
"""
import os
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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


class Drawing:
    """Draws figures into one folder at one resolution: saving, colours, and the panels every
    figure shares (seeds with mean ± sd, the article's values, curves over epochs)."""

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

    def seeds_plot_rows(self, settings, key):
        """(label, Summary) per setting without drawing."""
        group = self.group(settings)
        return [(f"bs {b}, lr {lr:g}", self.r.summary(b, lr, key, group)) for b, lr in settings]

    def point_text(self, group):
        """Where the group's runs are read, in words."""
        point = self.r.points[group]
        return point.describe() if point else "no comparable point"
