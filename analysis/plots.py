"""PNG figures for every analysis, drawn with matplotlib's Agg backend (no display needed).

Each function takes the JSON-ready result of its analysis and the PNG path, so a figure can be
redrawn from saved JSON without recomputing anything.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_geometry(results, path):
    """Per-layer distance from init, distance and epoch distance per epoch, update-norm histograms."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    layers = list(results[0]["best"]["layers"])
    width = 0.8 / len(results)
    for k, r in enumerate(results):
        axes[0, 0].bar(np.arange(len(layers)) + k * width, [r["best"]["layers"][n] for n in layers],
                       width, label=f"{r['label']} (total {r['best']['total']:.3g})")
        epochs = r["epochs"]
        axes[0, 1].plot(epochs, r["dist_init"], label=r["label"])
        axes[1, 0].plot(epochs, r["epoch_distance"], label=r["label"])
        hist = r["update_norms"].get("hist")
        if hist:
            edges = np.asarray(hist["edges"])
            line = axes[1, 1].stairs(hist["counts"], edges, label=r["label"])
            axes[1, 1].axvline(r["update_norms"]["median"], color=line.get_edgecolor(), ls="--")
    axes[0, 0].set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers)
    axes[0, 0].set(title="distance from initial weights (best weights)", ylabel="|theta - theta_0|")
    axes[0, 1].set(title="distance from initial weights", xlabel="epoch", ylabel="|theta - theta_0|")
    axes[1, 0].set(title="epoch distance", xlabel="epoch", ylabel="|theta_end - theta_start|",
                   yscale="log")
    axes[1, 1].set(title="update norm per step (dashed: median)", xlabel="|theta_{t+1} - theta_t|",
                   ylabel="steps", xscale="log")
    for ax in axes.flat:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_interpolation(result, path):
    """Loss (left axis) and accuracy (right axis) along theta(alpha); alpha 0 small, 1 large batch."""
    fig, ax = plt.subplots(figsize=(8, 5))
    alpha = result["alpha"]
    acc_ax = ax.twinx()
    for split, style in (("train", "-"), ("val", "--")):
        ax.plot(alpha, result[f"{split}_loss"], "b" + style, marker=".", label=f"{split} loss")
        acc_ax.plot(alpha, result[f"{split}_acc"], "r" + style, marker=".", label=f"{split} accuracy")
    for a in (0.0, 1.0):
        ax.axvline(a, color="grey", lw=0.8)
    ax.set(xlabel=f"alpha  (0: {result['small']['label']},  1: {result['large']['label']})",
           ylabel="loss", yscale="log", title="1-D interpolation between minimisers")
    acc_ax.set_ylabel("accuracy")
    handles = ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="best")
    return _save(fig, path)


def plot_sharpness(results, path):
    """Keskar sharpness phi of each run, one bar group per search space."""
    spaces = sorted({s for r in results for s in r["spaces"]})
    fig, ax = plt.subplots(figsize=(8, 5))
    width = 0.8 / len(results)
    for k, r in enumerate(results):
        values = [r["spaces"][s]["phi"] if s in r["spaces"] else np.nan for s in spaces]
        ax.bar(np.arange(len(spaces)) + k * width, values, width, label=r["label"])
    ax.set_xticks(np.arange(len(spaces)) + 0.4 - width / 2, spaces)
    ax.set(ylabel="phi (percent loss rise)", title=f"Keskar sharpness, eps {results[0]['eps']:g}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_surface(results, path):
    """One contour panel per run of the filter-normalised training-loss surface."""
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 5), squeeze=False)
    for ax, r in zip(axes[0], results):
        loss = np.asarray(r["loss"])
        # loss surfaces rise steeply away from the minimum: levels at quantiles of the grid's
        # losses put as many contours in the flat basin as on the steep walls
        low = np.nanmin(loss)
        levels = np.unique(np.nanquantile(loss, np.linspace(0, 1, 26)[1:-1]))
        levels = levels if len(levels) > 1 else None
        contours = ax.contour(r["x"], r["y"], loss, levels=levels, cmap="viridis")
        ax.clabel(contours, contours.levels[::4], fontsize=7, fmt="%.3g")
        ax.plot([0], [0], "r+", ms=10)
        ax.set(title=f"{r['label']}\n{r['split']} loss, min {low:.3g}", xlabel="direction 1",
               ylabel="direction 2", aspect="equal")
    return _save(fig, path)


def plot_noise(results, path):
    """Critical batch size B_simple per run, and each batch pair's |G|^2 and tr(Sigma) estimates."""
    fig, (ax_b, ax_e) = plt.subplots(1, 2, figsize=(11, 4.5))
    labels = [r["label"] for r in results]
    ax_b.bar(range(len(results)), [r["b_simple"] for r in results])
    ax_b.set_xticks(range(len(results)), labels, fontsize=8)
    ax_b.set(ylabel="B_simple = tr(Sigma) / |G|^2", title="gradient noise scale")
    for r in results:
        ax_e.scatter(r["g2_estimates"], r["trace_estimates"], s=12, label=r["label"])
    ax_e.set(xlabel="|G|^2 estimate", ylabel="tr(Sigma) estimate", title="per batch-pair estimates")
    ax_e.legend(fontsize=8)
    return _save(fig, path)


def plot_hessian(results, path):
    """Power-iteration estimates of the top Hessian eigenvalue, step by step, per run."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        ax.plot(range(1, len(r["history"]) + 1), r["history"], marker="o",
                label=f"{r['label']}: {r['eigenvalue']:.4g}")
    ax.set(xlabel="power iteration", ylabel="Rayleigh quotient v^T H v",
           title="top Hessian eigenvalue")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_competition(results, path):
    """|sum g_i| / sum |g_i| against batch size, with the 1/sqrt(B) line of unrelated gradients."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        sizes = sorted(int(b) for b in r["by_batch"])
        ax.errorbar(sizes, [r["by_batch"][str(b)]["mean"] for b in sizes],
                    yerr=[r["by_batch"][str(b)]["std"] for b in sizes], marker="o", capsize=3,
                    label=r["label"])
    sizes = sorted({int(b) for r in results for b in r["by_batch"]})
    ax.plot(sizes, 1 / np.sqrt(sizes), "k:", label="1/sqrt(B) (independent zero-mean)")
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="|sum g_i| / sum |g_i|",
           title="gradient competition within a batch")
    ax.legend(fontsize=8)
    return _save(fig, path)
