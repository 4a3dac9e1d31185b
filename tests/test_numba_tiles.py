"""The backward pass's explicit-vector kernels of ops/numba_tile.py, called alone against NumPy
definitions written from their docstrings: which memory they write and what they add up. (The
fused block's tests check them inside whole backward passes; these pin down the contract itself,
e.g. that a masked store at a row's end leaves the next element alone.)"""
import numpy as np
import pytest
from numba import njit

from ops.numba_direct import gw_from_lanes
from ops.numba_tile import GW_SUMS, LANES, corr3_tile_left, corr3_tile_right, scatter_windows
from ops.pool_code import RELU_ZERO


@njit
def _scatter(codes, grads, first, count, planes, upper, lower):
    scatter_windows(codes, grads, first, count, planes, upper, lower)


@njit
def _correlate_left(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums):
    corr3_tile_left(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums)


@njit
def _correlate_right(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums):
    corr3_tile_right(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums)


_TILE_COLUMNS = {"left": (_correlate_left, (0, 1)), "right": (_correlate_right, (2,))}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count", [1, 5, 8, 9, 15, 16])
def test_scatter_writes_each_window_to_its_winner_and_nothing_else(dtype, count):
    rng = np.random.default_rng(count)
    codes = rng.integers(0, RELU_ZERO + 1, 40).astype(np.uint8)
    grads = rng.standard_normal(40).astype(dtype)
    first, upper, lower = 3, 5, 50
    planes = np.full(100, np.nan, dtype)
    _scatter(codes, grads, first, count, planes, upper, lower)
    want = np.full(100, np.nan, dtype)
    for u in range(count):
        code, g = codes[first + u], grads[first + u]
        # window u: positions (upper + 2u, upper + 2u + 1) over (lower + 2u, lower + 2u + 1), codes 0 1 / 2 3
        for slot, position in enumerate((upper + 2 * u, upper + 2 * u + 1, lower + 2 * u, lower + 2 * u + 1)):
            want[position] = g if code == slot else 0
    np.testing.assert_array_equal(planes, want)  # NaN where nothing may be written


@pytest.mark.parametrize("tile", ["left", "right"])
@pytest.mark.parametrize("n", [LANES, 3 * LANES])
def test_weight_gradient_tile_adds_each_lane_sum_of_both_output_channels_for_its_columns(n, tile):
    correlate, columns = _TILE_COLUMNS[tile]
    rng = np.random.default_rng(n)
    wp, plane_len, start = 20, 4 * LANES + 60, 7
    planes = rng.standard_normal(2 * plane_len + 5)  # one input channel's even plane, odd plane, slack
    grads = rng.standard_normal(300)
    upper, lower, next_output = 2, 70, 130
    sums = GW_SUMS * LANES
    first, next_sums = 5, sums + 11
    lanes = rng.standard_normal(first + 2 * next_sums)
    before = lanes.copy()
    correlate(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums)
    even, odd = planes[start:], planes[start + plane_len:]
    t = np.arange(n)
    want = before.copy()
    for k in range(2):
        g_a = grads[upper + k * next_output + t]
        g_b = grads[lower + k * next_output + t]
        for j in columns:
            # the docstring's contract: X_0..X_3 = X[0], X[1], X[0] one row down, X[1] one row down
            x = [even[t + j], odd[t + j], even[t + wp + j], odd[t + wp + j]]
            p = (g_a, g_a + g_b, g_a - g_b, g_b)
            e = (x[0] - x[2], x[1] + x[2], x[2] - x[1], x[3] - x[1])
            for m in range(4):
                at = first + k * next_sums + (4 * j + m) * LANES
                want[at:at + LANES] += (p[m] * e[m]).reshape(-1, LANES).sum(axis=0)  # lane u: t = u, u + 16, ...
    np.testing.assert_allclose(lanes, want, rtol=1e-12, atol=1e-12)
    untouched = np.ones(len(lanes), bool)
    for k in range(2):
        for j in columns:
            untouched[first + k * next_sums + 4 * j * LANES:first + k * next_sums + 4 * (j + 1) * LANES] = False
    np.testing.assert_array_equal(lanes[untouched], before[untouched])  # other columns' sums included


@pytest.mark.parametrize("n", [LANES, 3 * LANES])
def test_weight_gradient_tile_sums_transform_to_the_plain_correlation(n):
    """The tiles' lane sums, through gw_from_lanes's output transform, are the 3x3 weight gradient
    written the plain way: gw[i, j] = sum_t gA[t] X[i % 2][t + (i // 2) wp + j] + gB[t]
    X[(i + 1) % 2][t + ((i + 1) // 2) wp + j] (numba_direct's module doc)."""
    rng = np.random.default_rng(n + 1)
    wp, plane_len = 20, 4 * LANES + 60
    planes = rng.standard_normal(2 * plane_len + 5)
    grads = rng.standard_normal(300)
    upper, lower, next_output = 2, 70, 130
    sums = GW_SUMS * LANES
    lanes = np.zeros(2 * sums)
    _correlate_left(grads, upper, lower, next_output, planes, 0, wp, plane_len, n, lanes, 0, sums)
    _correlate_right(grads, upper, lower, next_output, planes, 0, wp, plane_len, n, lanes, 0, sums)
    got = np.zeros((2, 1, 3, 3))
    gw_from_lanes(lanes, got)
    t = np.arange(n)
    for k in range(2):
        g_a = grads[upper + k * next_output + t]
        g_b = grads[lower + k * next_output + t]
        for i in range(3):
            for j in range(3):
                x_a = (planes, planes[plane_len:])[i % 2][t + (i // 2) * wp + j]
                x_b = (planes, planes[plane_len:])[(i + 1) % 2][t + ((i + 1) // 2) * wp + j]
                assert got[k, 0, i, j] == pytest.approx(np.sum(g_a * x_a + g_b * x_b), rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(lanes, 0)  # gw_from_lanes leaves the partial sums zeroed
