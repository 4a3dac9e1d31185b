"""1-D interpolation between two minimisers (Keskar et al. 2017, after Goodfellow et al. 2015):
theta(alpha) = alpha * theta_L + (1 - alpha) * theta_S, so alpha = 0 is the small-batch minimiser
and alpha = 1 the large-batch one; alpha outside [0, 1] extrapolates past either end."""
import numpy as np

from .progress import quiet


def default_alphas(points=25, low=-1.0, high=2.0):
    """The study's grid: `points` evenly spaced alphas on [low, high] (both ends included)."""
    return np.linspace(low, high, points)


def interpolate(theta_small, theta_large, objectives, alphas=None, log=quiet):
    """Loss and accuracy of each objective (e.g. {"train": ..., "val": ...}) along the line.

    Returns {"alpha": [...], "<split>_loss": [...], "<split>_acc": [...]} with one entry per alpha.
    """
    alphas = default_alphas() if alphas is None else np.asarray(alphas, dtype=np.float64)
    theta_small = np.asarray(theta_small, dtype=np.float64)
    theta_large = np.asarray(theta_large, dtype=np.float64)
    if theta_small.shape != theta_large.shape:
        raise ValueError(f"endpoints differ in shape: {theta_small.shape} vs {theta_large.shape}")
    result = {"alpha": alphas.tolist()}
    for name in objectives:
        result[f"{name}_loss"], result[f"{name}_acc"] = [], []
    for k, alpha in enumerate(alphas):
        theta = alpha * theta_large + (1.0 - alpha) * theta_small
        for name, objective in objectives.items():
            loss, acc = objective.evaluate(theta)
            result[f"{name}_loss"].append(float(loss))
            result[f"{name}_acc"].append(float(acc))
        log(f"interpolation {k + 1}/{len(alphas)}: alpha {alpha:+.3f} " + " ".join(
            f"{name} loss {result[f'{name}_loss'][-1]:.4f}" for name in objectives))
    return result
