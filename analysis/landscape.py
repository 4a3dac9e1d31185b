"""Filter-normalised 2-D loss surfaces (Li et al. 2018, "Visualizing the Loss Landscape of Neural
Nets"): f(theta + a d1 + b d2) on a grid of (a, b), with random directions whose every filter has
the norm of the matching filter of theta, so the picture does not depend on each layer's scale.

The grid is a flat list of points; `assigned_points` splits it over MPI ranks (or any workers) and
`merge_surface` puts the pieces back, so the caller decides how to spread the work.
"""
import numpy as np

from .progress import quiet


def filter_normalized_direction(theta, table, rng):
    """A Gaussian direction, rescaled filter by filter to theta's filter norms; biases get zero.

    A filter is one output unit's weights: weight[o, :, :, :] of a conv layer, row o of a dense
    layer. Each is scaled to |theta filter| / |direction filter|.
    """
    theta = np.asarray(theta, dtype=np.float64)
    direction = np.zeros_like(theta)
    for row in table:
        if row["role"] != "weight":
            continue  # bias entries of the direction stay zero
        part = slice(row["offset"], row["offset"] + row["size"])
        out_units = int(row["shape"][0])
        d = rng.standard_normal(row["size"]).reshape(out_units, -1)
        w = theta[part].reshape(out_units, -1)
        d_norm = np.linalg.norm(d, axis=1, keepdims=True)
        d *= np.linalg.norm(w, axis=1, keepdims=True) / d_norm
        direction[part] = d.ravel()
    return direction


def surface_directions(theta, table, seed=0):
    """The two filter-normalised directions (d1, d2), reproducible from `seed` on every rank."""
    rng = np.random.default_rng(seed)
    return (filter_normalized_direction(theta, table, rng),
            filter_normalized_direction(theta, table, rng))


def default_axes(points=51, extent=1.0):
    """The study's grid axis: `points` values evenly spaced on [-extent, extent]."""
    return np.linspace(-extent, extent, points)


def assigned_points(n_points, rank, size):
    """Flat grid indices computed by worker `rank` of `size`: round-robin, so every worker gets
    points from every row and the loads balance even when losses cost the same everywhere."""
    if not 0 <= rank < size:
        raise ValueError(f"rank {rank} is not in [0, {size})")
    return np.arange(rank, n_points, size)


def compute_surface_points(objective, theta, d1, d2, xs, ys, rank=0, size=1, log=quiet):
    """Loss at the grid points assigned to `rank` of `size`.

    Flat index k is the point (xs[k % len(xs)], ys[k // len(xs)]): row-major over ys, so the merged
    array is indexed [y, x] as matplotlib's contour expects. Returns {"indices", "losses"}.
    """
    theta = np.asarray(theta, dtype=np.float64)
    indices = assigned_points(len(xs) * len(ys), rank, size)
    losses = []
    for count, k in enumerate(indices, 1):
        a, b = xs[k % len(xs)], ys[k // len(xs)]
        losses.append(float(objective.value(theta + a * d1 + b * d2)))
        if count % len(xs) == 0 or count == len(indices):
            log(f"surface: {count}/{len(indices)} points of this worker, last loss {losses[-1]:.4f}")
    return {"indices": indices.tolist(), "losses": losses}


def merge_surface(parts, xs, ys):
    """Assemble per-worker results into the (len(ys), len(xs)) loss array; every point must be
    covered exactly once."""
    grid = np.full(len(xs) * len(ys), np.nan)
    seen = np.zeros(grid.size, dtype=int)
    for part in parts:
        idx = np.asarray(part["indices"], dtype=int)
        grid[idx] = part["losses"]
        np.add.at(seen, idx, 1)
    if not np.all(seen == 1):
        raise ValueError(f"grid coverage is wrong: {int((seen == 0).sum())} points missing, "
                         f"{int((seen > 1).sum())} computed twice")
    return grid.reshape(len(ys), len(xs))


def loss_surface(objective, theta, table, xs=None, ys=None, seed=0, log=quiet):
    """The whole surface on one worker: {"x", "y", "loss" (2-D list), "seed"}."""
    xs = default_axes() if xs is None else np.asarray(xs, dtype=np.float64)
    ys = default_axes() if ys is None else np.asarray(ys, dtype=np.float64)
    d1, d2 = surface_directions(theta, table, seed)
    part = compute_surface_points(objective, theta, d1, d2, xs, ys, log=log)
    return {"x": xs.tolist(), "y": ys.tolist(), "seed": seed,
            "loss": merge_surface([part], xs, ys).tolist()}
