"""Known-answer tests of the analyses on closed-form objectives (quadratics, synthetic gradients)."""
import itertools

import numpy as np
import pytest

from analysis.interpolation import default_alphas, interpolate
from analysis.landscape import (assigned_points, compute_surface_points, filter_normalized_direction,
                                merge_surface, surface_directions)
from analysis.noise import (gradient_competition, gradient_noise_scale, noise_estimates,
                            top_hessian_eigenvalue)
from analysis.objective import QuadraticObjective
from analysis.sharpness import box_bounds, keskar_sharpness, pseudo_inverse_apply, random_subspace


def random_psd(rng, n, eigenvalues=None):
    """A symmetric matrix with the given (or random positive) eigenvalues and a random basis."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = rng.uniform(0.5, 3.0, n) if eigenvalues is None else np.asarray(eigenvalues, float)
    return (q * lam) @ q.T


def phi_of(f0, fmax):
    return 100.0 * (fmax - f0) / (1.0 + f0)


@pytest.mark.parametrize("eps", [1e-3, 5e-2])
def test_sharpness_matches_closed_form_for_diagonal_quadratic(eps):
    rng = np.random.default_rng(1)
    n = 40
    h = rng.uniform(0.2, 5.0, n)
    b, x, c = rng.standard_normal(n), rng.standard_normal(n) * 2, 0.7
    q = QuadraticObjective(np.diag(h), c=c, b=b)
    # a convex separable f is maximised over a box coordinate by coordinate, at one of the two ends
    r = eps * (np.abs(x) + 1)
    per_coord = lambda z: 0.5 * h * z * z + b * z  # noqa: E731
    fmax = float(np.maximum(per_coord(x + r), per_coord(x - r)).sum() + c)
    result = keskar_sharpness(q, x, eps=eps)
    assert result["loss"] == pytest.approx(q.value(x), rel=1e-12)
    assert result["loss_max"] == pytest.approx(fmax, rel=1e-10)
    assert result["phi"] == pytest.approx(phi_of(q.value(x), fmax), rel=1e-7)
    assert 1 <= result["iterations"] <= 10


def brute_force_max(q, x, A, half, points=201):
    """Max of f(x + A y) over a grid of the 2-D box that includes its corners."""
    axes = [np.linspace(-r, r, points) for r in half]
    return max(q.value(x + (A @ np.array(y) if A is not None else np.array(y)))
               for y in itertools.product(*axes))


def test_sharpness_non_diagonal_2d_matches_brute_force():
    q = QuadraticObjective([[2.0, 1.2], [1.2, 1.0]], c=0.1)
    x = np.array([0.3, -0.7])
    eps = 0.1
    fmax = brute_force_max(q, x, None, box_bounds(x, eps))
    result = keskar_sharpness(q, x, eps=eps)
    assert result["loss_max"] == pytest.approx(fmax, rel=1e-9)


def test_sharpness_random_subspace_matches_brute_force():
    rng = np.random.default_rng(3)
    q = QuadraticObjective(random_psd(rng, 6), c=0.2, b=rng.standard_normal(6))
    x = rng.standard_normal(6)
    A = random_subspace(6, 2, seed=5)
    eps = 0.05
    half = box_bounds(x, eps, A)
    np.testing.assert_allclose(half, eps * (np.abs(np.linalg.pinv(A.astype(float)) @ x) + 1),
                               rtol=1e-10)
    fmax = brute_force_max(q, x, A.astype(float), half)
    result = keskar_sharpness(q, x, eps=eps, A=A)
    assert result["dimension"] == 2
    assert result["loss_max"] == pytest.approx(fmax, rel=1e-9)


def test_pseudo_inverse_apply_matches_numpy_pinv_on_tall_matrix():
    A = random_subspace(70000, 3, seed=0)  # more rows than one chunk, to exercise the accumulation
    x = np.random.default_rng(0).standard_normal(70000)
    expected = np.linalg.lstsq(A.astype(float), x, rcond=None)[0]
    np.testing.assert_allclose(pseudo_inverse_apply(A, x), expected, rtol=1e-9, atol=1e-12)


def test_power_iteration_finds_largest_eigenvalue():
    rng = np.random.default_rng(2)
    eig = np.concatenate([[9.0, 4.5], rng.uniform(-3.0, 3.0, 28)])
    q = QuadraticObjective(random_psd(rng, 30, eig), b=rng.standard_normal(30))
    theta = rng.standard_normal(30)
    result = top_hessian_eigenvalue(q, theta, iterations=200, tol=1e-12)
    assert result["converged"]
    assert result["eigenvalue"] == pytest.approx(9.0, rel=1e-8)


def test_interpolation_endpoints_and_parabola():
    rng = np.random.default_rng(4)
    H = random_psd(rng, 8)
    train, val = QuadraticObjective(H, c=0.5), QuadraticObjective(H, c=1.5, b=np.ones(8))
    s, large = rng.standard_normal(8), rng.standard_normal(8)
    alphas = default_alphas()
    assert len(alphas) == 25 and alphas[0] == -1 and alphas[-1] == 2
    result = interpolate(s, large, {"train": train, "val": val}, alphas)
    i0, i1 = list(alphas).index(0.0), list(alphas).index(1.0)
    for name, q in (("train", train), ("val", val)):
        assert result[f"{name}_loss"][i0] == pytest.approx(q.value(s), rel=1e-12)
        assert result[f"{name}_loss"][i1] == pytest.approx(q.value(large), rel=1e-12)
        # along the line f is the parabola f(s) + a g(s).d + a^2/2 d.H.d
        d = large - s
        g = q.value_and_grad(s)[1]
        expected = q.value(s) + alphas * (g @ d) + 0.5 * alphas ** 2 * (d @ H @ d)
        np.testing.assert_allclose(result[f"{name}_loss"], expected, rtol=1e-10)


def toy_table():
    rows, offset = [], 0
    for name, layer, kind, role, shape in [("c.weight", "c", "conv", "weight", [4, 3, 3, 3]),
                                           ("c.bias", "c", "conv", "bias", [4]),
                                           ("d.weight", "d", "dense", "weight", [5, 16]),
                                           ("d.bias", "d", "dense", "bias", [5])]:
        size = int(np.prod(shape))
        rows.append({"name": name, "layer": layer, "kind": kind, "role": role, "shape": shape,
                     "offset": offset, "size": size})
        offset += size
    return rows, offset


def test_filter_normalisation_matches_weight_filter_norms_and_zeroes_biases():
    table, n = toy_table()
    theta = np.random.default_rng(6).standard_normal(n) * np.linspace(0.1, 3.0, n)
    d = filter_normalized_direction(theta, table, np.random.default_rng(7))
    for row in table:
        part = slice(row["offset"], row["offset"] + row["size"])
        if row["role"] == "bias":
            assert np.all(d[part] == 0)
            continue
        shape = row["shape"]
        w, dd = theta[part].reshape(shape), d[part].reshape(shape)
        for o in range(shape[0]):
            assert np.linalg.norm(dd[o]) == pytest.approx(np.linalg.norm(w[o]), rel=1e-12)
            # the direction is random, not a copy of the weights
            assert not np.allclose(dd[o], w[o])


def test_surface_split_over_ranks_merges_to_single_worker_result():
    table, n = toy_table()
    rng = np.random.default_rng(8)
    theta = rng.standard_normal(n)
    q = QuadraticObjective(random_psd(rng, n), c=0.3)
    d1, d2 = surface_directions(theta, table, seed=1)
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    whole = merge_surface([compute_surface_points(q, theta, d1, d2, xs, ys)], xs, ys)
    parts = [compute_surface_points(q, theta, d1, d2, xs, ys, rank=r, size=3) for r in range(3)]
    np.testing.assert_array_equal(merge_surface(parts, xs, ys), whole)
    # grid point [i, j] is theta + xs[j] d1 + ys[i] d2
    assert whole[3, 1] == pytest.approx(q.value(theta + xs[1] * d1 + ys[3] * d2), rel=1e-12)
    assert sorted(np.concatenate([assigned_points(20, r, 3) for r in range(3)])) == list(range(20))
    with pytest.raises(ValueError, match="missing"):
        merge_surface(parts[:2], xs, ys)


def test_noise_scale_two_batch_formulas():
    # |G_B|^2 = |G|^2 + tr/B exactly when the noise term takes its mean: the estimator inverts it
    g2, tr, bs, bb = 2.0, 30.0, 8, 64
    est = noise_estimates(g2 + tr / bs, g2 + tr / bb, bs, bb)
    assert est == pytest.approx((g2, tr), rel=1e-12)


def within_stderr(estimates, truth, k=4.0):
    est = np.asarray(estimates)
    stderr = est.std(ddof=1) / np.sqrt(len(est))
    return abs(est.mean() - truth) <= k * stderr, stderr


def test_noise_scale_unbiased_for_gaussian_gradients_with_known_covariance():
    rng = np.random.default_rng(9)
    dim = 6
    G = rng.standard_normal(dim) * 0.5
    L = rng.standard_normal((dim, dim)) * 0.8
    true_trace = float(np.trace(L @ L.T))
    draws = np.random.default_rng(10)

    def grad_fn(indices):
        # the mean of B iid N(G, LL^T) gradients is N(G, LL^T / B)
        return G + L @ draws.standard_normal(dim) / np.sqrt(len(indices))

    result = gradient_noise_scale(grad_fn, n_examples=10 ** 6, b_small=4, b_big=32, batches=4000,
                                  finite_population=False)
    for key, truth in (("g2", float(G @ G)), ("trace", true_trace)):
        ok, stderr = within_stderr(result[f"{key}_estimates"], truth)
        assert ok, (key, result[key], truth, stderr)
        assert stderr < 0.1 * truth  # the test has the power to see a real bias
    assert result["b_simple"] == pytest.approx(true_trace / float(G @ G), rel=0.3)


def test_noise_scale_unbiased_for_finite_population_without_replacement():
    rng = np.random.default_rng(11)
    population = rng.standard_normal((40, 5)) + np.array([1.0, -0.5, 0.2, 0.0, 0.3])
    G = population.mean(axis=0)
    true_trace = float(population.var(axis=0).sum())  # per-example covariance, divisor N
    result = gradient_noise_scale(lambda idx: population[idx].mean(axis=0), 40, b_small=4,
                                  b_big=16, batches=4000, seed=3)
    for key, truth in (("g2", float(G @ G)), ("trace", true_trace)):
        ok, stderr = within_stderr(result[f"{key}_estimates"], truth)
        assert ok, (key, result[key], truth, stderr)
        assert stderr < 0.1 * truth


def test_gradient_competition_matches_direct_numpy():
    rng = np.random.default_rng(12)
    grads = rng.standard_normal((64, 7)) + 0.3
    result = gradient_competition(iter(grads), [1, 4, 16, 64, 5])
    for b in (1, 4, 16, 64, 5):
        groups = grads[: (64 // b) * b].reshape(64 // b, b, 7)
        ratios = np.linalg.norm(groups.sum(axis=1), axis=1) / np.linalg.norm(groups, axis=2).sum(1)
        assert result[b]["groups"] == 64 // b
        assert result[b]["mean"] == pytest.approx(ratios.mean(), rel=1e-12)
    assert result[1]["mean"] == pytest.approx(1.0)
    same = gradient_competition([np.ones(3)] * 8, [8])
    assert same[8]["mean"] == pytest.approx(1.0)
    opposed = gradient_competition([np.ones(3), -np.ones(3)] * 4, [2])
    assert opposed[2]["mean"] == pytest.approx(0.0)
