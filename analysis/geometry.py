"""Where training went in weight space: distance from the initial weights (total and per layer),
distance covered in each epoch, and the distribution of single-step update norms."""
import math

import numpy as np


def layer_norms(vector, table):
    """Euclidean norm of `vector` restricted to each layer (weight and bias together), in float64."""
    sums = {}
    for row in table:
        part = np.asarray(vector[row["offset"]:row["offset"] + row["size"]], dtype=np.float64)
        sums[row["layer"]] = sums.get(row["layer"], 0.0) + float(part @ part)
    return {layer: math.sqrt(s) for layer, s in sums.items()}


def distance_from_init(theta, theta_init, table):
    """|theta - theta_0| for the whole model and for each layer; the layer distances' squares sum
    to the total's square because layers partition the flat vector."""
    delta = np.asarray(theta, dtype=np.float64) - np.asarray(theta_init, dtype=np.float64)
    return {"total": float(np.linalg.norm(delta)), "layers": layer_norms(delta, table)}


def update_norm_summary(norms, bins=60):
    """Median, mean, quantiles and a log-spaced histogram of per-step update norms."""
    norms = np.asarray(norms, dtype=np.float64)
    if norms.size == 0:
        return {"count": 0}
    positive = norms[norms > 0]
    summary = {"count": int(norms.size), "median": float(np.median(norms)),
               "mean": float(norms.mean()), "min": float(norms.min()), "max": float(norms.max())}
    for q in (5, 25, 75, 95):
        summary[f"p{q}"] = float(np.percentile(norms, q))
    if positive.size:
        # update norms span orders of magnitude, so bins are equal in log space
        lo, hi = positive.min(), positive.max()
        edges = np.geomspace(lo, hi, bins + 1) if hi > lo else np.array([lo, lo * 2])
        counts, edges = np.histogram(positive, bins=edges)
        summary["hist"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    return summary


def run_geometry(run):
    """All geometry of one run directory: distances of the best and final weights from the initial
    weights, the per-epoch series recorded by training, and the update-norm distribution."""
    theta_init = run.theta("init")
    result = {"run": run.path, "label": run.label(), "batch": run.batch,
              "lr": run.lr}
    for kind in ("best", "final"):
        result[kind] = distance_from_init(run.theta(kind), theta_init, run.table)
    metrics = run.read_metrics()
    result["epochs"] = [m.get("epoch") for m in metrics]
    result["dist_init"] = [m.get("dist_init") for m in metrics]
    result["epoch_distance"] = [m.get("epoch_distance") for m in metrics]
    distances = [d for d in result["epoch_distance"] if d is not None]
    result["epoch_distance_range"] = [min(distances), max(distances)] if distances else None
    result["update_norms"] = update_norm_summary(run.update_norms())
    return result
