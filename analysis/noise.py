"""Gradient statistics beyond the study: the gradient noise scale (McCandlish et al. 2018), the top
Hessian eigenvalue, and gradient competition between the examples of a batch.

Noise scale. A minibatch gradient G_B of B examples drawn from a population of per-example
gradients with mean G and covariance Sigma satisfies E|G_B|^2 = |G|^2 + c_B tr(Sigma), with
c_B = 1/B for an infinite population and c_B = (N - B) / (B (N - 1)) for B drawn without replacement
from N examples. Two batch sizes give two equations, solved for unbiased estimates of |G|^2 and
tr(Sigma); B_simple = tr(Sigma) / |G|^2 estimates the critical batch size.
"""
import numpy as np

from .progress import quiet


def noise_coefficient(batch, population=None):
    """c_B in E|G_B|^2 = |G|^2 + c_B tr(Sigma) (population None: sampling from a distribution)."""
    if population is None:
        return 1.0 / batch
    if not 1 <= batch <= population:
        raise ValueError(f"batch {batch} does not fit in a population of {population}")
    return (population - batch) / (batch * (population - 1.0))


def noise_estimates(sq_small, sq_big, b_small, b_big, population=None):
    """Unbiased (|G|^2, tr Sigma) from squared gradient norms at batch sizes b_small < b_big.

    With c = 1/B this is |G|^2 = (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small) and
    tr Sigma = (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big).
    """
    if not b_small < b_big:
        raise ValueError(f"need b_small < b_big, got {b_small} and {b_big}")
    c_small, c_big = noise_coefficient(b_small, population), noise_coefficient(b_big, population)
    trace = (sq_small - sq_big) / (c_small - c_big)
    return sq_big - c_big * trace, trace


def gradient_noise_scale(grad_fn, n_examples, b_small=32, b_big=256, batches=8, seed=0,
                         finite_population=True, log=quiet):
    """Estimate |G|^2, tr(Sigma) and B_simple at one point from `batches` random batch pairs.

    `grad_fn(indices)` returns the mean gradient over those examples. Each pair draws b_big distinct
    examples; the first b_small of them form the small batch, so the big-batch gradient costs only
    the remaining examples. The |G|^2 and tr(Sigma) estimates are averaged over pairs before taking
    their ratio (the ratio of means, as McCandlish et al. do, avoids dividing by noisy |G|^2).
    """
    if b_big > n_examples:
        raise ValueError(f"b_big {b_big} exceeds the {n_examples} available examples")
    rng = np.random.default_rng(seed)
    population = n_examples if finite_population else None
    g2s, traces = [], []
    for k in range(batches):
        indices = rng.choice(n_examples, size=b_big, replace=False)
        g_small = np.asarray(grad_fn(indices[:b_small]), dtype=np.float64)
        g_rest = np.asarray(grad_fn(indices[b_small:]), dtype=np.float64)
        g_big = (b_small * g_small + (b_big - b_small) * g_rest) / b_big
        g2, trace = noise_estimates(float(g_small @ g_small), float(g_big @ g_big),
                                    b_small, b_big, population)
        g2s.append(g2)
        traces.append(trace)
        log(f"noise scale batch {k + 1}/{batches}: |G|^2 {g2:.4g}, tr(Sigma) {trace:.4g}")
    g2_mean, trace_mean = float(np.mean(g2s)), float(np.mean(traces))

    def stderr(values):
        """Standard error of the mean of the batch estimates (NaN from a single batch)."""
        return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"b_small": b_small, "b_big": b_big, "batches": batches, "seed": seed,
            "population": population, "g2_estimates": g2s, "trace_estimates": traces,
            "g2": g2_mean, "g2_stderr": stderr(g2s), "trace": trace_mean,
            "trace_stderr": stderr(traces), "b_simple": trace_mean / g2_mean}


def hessian_vector_product(objective, theta, v, step=1e-3):
    """H v by central differences of the exact gradient: (g(theta + h v) - g(theta - h v)) / 2h.

    The error is O(h^2) times third derivatives (exact for a quadratic); h scales with 1/|v| so the
    probe always moves theta by `step`.
    """
    h = step / max(np.linalg.norm(v), 1e-300)
    _, g_plus = objective.value_and_grad(theta + h * v)
    _, g_minus = objective.value_and_grad(theta - h * v)
    return (g_plus - g_minus) / (2.0 * h)


def top_hessian_eigenvalue(objective, theta, iterations=20, tol=1e-3, seed=0, step=1e-3,
                           log=quiet):
    """Largest-magnitude Hessian eigenvalue by power iteration on Hessian-vector products.

    Each step v <- Hv / |Hv|; the estimate is the Rayleigh quotient v^T H v, which converges to the
    eigenvalue of largest magnitude at rate |lambda_2 / lambda_1| per step. Stops when the estimate
    changes by less than `tol` relative, or after `iterations` steps.
    """
    theta = np.asarray(theta, dtype=np.float64)
    v = np.random.default_rng(seed).standard_normal(theta.size)
    v /= np.linalg.norm(v)
    history, converged = [], False
    for k in range(iterations):
        hv = hessian_vector_product(objective, theta, v, step)
        estimate = float(v @ hv)
        history.append(estimate)
        log(f"power iteration {k + 1}/{iterations}: eigenvalue estimate {estimate:.6g}")
        if k and abs(estimate - history[-2]) <= tol * abs(estimate):
            converged = True
            break
        norm = np.linalg.norm(hv)
        if norm == 0.0:
            converged = True
            break
        v = hv / norm
    return {"eigenvalue": history[-1], "iterations": len(history), "converged": converged,
            "history": history, "seed": seed, "step": step}


def gradient_competition(example_grads, batch_sizes):
    """|sum_i g_i| / sum_i |g_i| over consecutive groups of B per-example gradients, for each B.

    The ratio is 1 when a batch's gradients all agree and falls towards 1/sqrt(B) for independent
    zero-mean directions: how much of each example's push survives averaging. Gradients are
    streamed once; each batch size keeps one running sum, so memory is one vector per size.
    Returns {B: {"mean", "std", "groups"}} (leftover examples that do not fill a group are dropped).
    """
    sizes = sorted({int(b) for b in batch_sizes})
    sums = {b: None for b in sizes}
    norm_sums = {b: 0.0 for b in sizes}
    counts = {b: 0 for b in sizes}
    ratios = {b: [] for b in sizes}
    for g in example_grads:
        g = np.asarray(g, dtype=np.float64)
        g_norm = float(np.linalg.norm(g))
        for b in sizes:
            sums[b] = g.copy() if counts[b] == 0 else sums[b] + g
            norm_sums[b] += g_norm
            counts[b] += 1
            if counts[b] == b:
                ratios[b].append(float(np.linalg.norm(sums[b])) / norm_sums[b]
                                 if norm_sums[b] > 0 else float("nan"))
                norm_sums[b], counts[b] = 0.0, 0
    return {b: {"mean": float(np.mean(r)) if r else float("nan"),
                "std": float(np.std(r)) if r else float("nan"), "groups": len(r)}
            for b, r in ratios.items()}
