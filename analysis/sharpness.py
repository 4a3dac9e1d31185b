"""Keskar et al. (2017) sharpness, metric 2.1: the largest relative loss rise in a small box.

    phi = 100 * (max_{y in C} f(x + A y) - f(x)) / (1 + f(x)),
    C = { y : |y_i| <= eps * (|(A^+ x)_i| + 1) }.

A = I searches the full parameter space (the box is eps-relative per weight); a random n x p matrix
A with standard Gaussian entries searches a p-dimensional random subspace. The inner maximum is
found approximately with L-BFGS-B on -f(x + A y), using the exact gradient A^T grad f.
"""
import numpy as np
from scipy.optimize import Bounds, minimize

from .progress import quiet


def random_subspace(n, p, seed=0):
    """A seeded n x p matrix of independent standard Gaussian entries (float32 to halve memory:
    353k x 100 is 141 MB)."""
    return np.random.default_rng(seed).standard_normal((n, p), dtype=np.float32)


def _chunked_rows(n, chunk=65536):
    for start in range(0, n, chunk):
        yield slice(start, min(n, start + chunk))


def subspace_matvec(A, y):
    """A y in float64, row chunk by row chunk (A may be float32)."""
    out = np.empty(A.shape[0], dtype=np.float64)
    for rows in _chunked_rows(A.shape[0]):
        out[rows] = A[rows].astype(np.float64) @ y
    return out


def subspace_rmatvec(A, g):
    """A^T g in float64 (the chain rule: d f(x + A y)/dy = A^T grad f)."""
    out = np.zeros(A.shape[1], dtype=np.float64)
    for rows in _chunked_rows(A.shape[0]):
        out += A[rows].astype(np.float64).T @ g[rows]
    return out


def pseudo_inverse_apply(A, x):
    """A^+ x for a tall full-column-rank A, via the normal equations (A^T A) z = A^T x.

    A^T A is only p x p, so this costs one pass over A instead of an n x p SVD; a tall Gaussian A is
    very well conditioned (singular values near sqrt(n) +- sqrt(p)), so squaring the condition number
    loses nothing visible in float64.
    """
    gram = np.zeros((A.shape[1], A.shape[1]), dtype=np.float64)
    for rows in _chunked_rows(A.shape[0]):
        block = A[rows].astype(np.float64)
        gram += block.T @ block
    return np.linalg.solve(gram, subspace_rmatvec(A, np.asarray(x, dtype=np.float64)))


def box_bounds(x, eps, A=None):
    """Half-widths of the box C: eps * (|(A^+ x)_i| + 1), with A^+ x = x for the full space."""
    z = np.asarray(x, dtype=np.float64) if A is None else pseudo_inverse_apply(A, x)
    return eps * (np.abs(z) + 1.0)


def keskar_sharpness(objective, x, eps=1e-3, A=None, maxiter=10, log=quiet):
    """Sharpness phi of `objective` at the flat vector `x` in the box of relative size `eps`.

    A = None is the full space; otherwise A is n x p. The search starts at y = 0 and runs at most
    `maxiter` L-BFGS-B iterations; the reported maximum is the best loss of any point evaluated
    (every trial point lies inside the box, so each is a valid lower bound on the true maximum).
    Returns phi, f(x), the maximum found, its |A y|, the iterations and evaluations used.
    """
    x = np.asarray(x, dtype=np.float64)
    # f(x) comes from the same gradient code path as every trial point, so phi compares like with
    # like; L-BFGS-B's first call is at y = 0 and reuses it
    f0, g0 = objective.value_and_grad(x)
    half = box_bounds(x, eps, A)
    best = {"f": f0, "y": np.zeros_like(half)}
    evaluations = [1]

    def negative_loss(y):
        if not y.any():
            f, grad = f0, g0
        else:
            f, grad = objective.value_and_grad(x + (y if A is None else subspace_matvec(A, y)))
            evaluations[0] += 1
        if f > best["f"]:
            best["f"], best["y"] = f, y.copy()
        log(f"sharpness evaluation {evaluations[0]}: loss {f:.6f} (start {f0:.6f})")
        g = grad if A is None else subspace_rmatvec(A, grad)
        return -f, -g

    result = minimize(negative_loss, np.zeros_like(half), method="L-BFGS-B", jac=True,
                      bounds=Bounds(-half, half), options={"maxiter": int(maxiter)})
    f_max, y = best["f"], best["y"]  # the best point seen is at least as high as result.x
    perturbation = y if A is None else subspace_matvec(A, y)
    return {"phi": 100.0 * (f_max - f0) / (1.0 + f0), "loss": f0, "loss_max": f_max,
            "eps": eps, "dimension": int(half.size), "space": "full" if A is None else "subspace",
            "iterations": int(result.nit), "evaluations": evaluations[0],
            "perturbation_norm": float(np.linalg.norm(perturbation)),
            "message": str(result.message)}
