"""The backward pass's explicit-vector kernels of ops/numba_tile.py, called alone against NumPy
definitions written from their docstrings: which memory they write and what they add up. (The
fused block's tests check them inside whole backward passes; these pin down the contract itself,
e.g. that a masked store at a row's end leaves the next element alone.)"""
import numpy as np
import pytest
from numba import njit

from ops.numba_tile import LANES, corr3_tile_pair, scatter_windows
from ops.pool_code import RELU_ZERO


@njit
def _scatter(codes, grads, first, count, planes, upper, lower):
    scatter_windows(codes, grads, first, count, planes, upper, lower)


@njit
def _correlate(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums):
    corr3_tile_pair(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums)


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


@pytest.mark.parametrize("n", [LANES, 3 * LANES])
def test_weight_gradient_tile_adds_each_lane_sum_of_both_output_channels(n):
    rng = np.random.default_rng(n)
    wp, plane_len, start = 20, 4 * LANES + 60, 7
    planes = rng.standard_normal(2 * plane_len + 5)  # one input channel's even plane, odd plane, slack
    grads = rng.standard_normal(300)
    upper, lower, next_output = 2, 70, 130
    sums = 9 * LANES
    first, next_sums = 5, sums + 11
    lanes = rng.standard_normal(first + 2 * next_sums)
    before = lanes.copy()
    _correlate(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums)
    even, odd = planes[start:], planes[start + plane_len:]
    t = np.arange(n)
    want = before.copy()
    for k in range(2):
        g_a = grads[upper + k * next_output + t]
        g_b = grads[lower + k * next_output + t]
        for i in range(3):
            for j in range(3):
                # gradient row 2r reads kernel row i from X[i % 2] shifted (i // 2) rows, row 2r + 1 from
                # X[(i + 1) % 2] shifted ((i + 1) // 2) rows (numba_direct's module doc)
                x_a = (even, odd)[i % 2][t + (i // 2) * wp + j]
                x_b = (even, odd)[(i + 1) % 2][t + ((i + 1) // 2) * wp + j]
                products = g_a * x_a + g_b * x_b
                at = first + k * next_sums + (3 * i + j) * LANES
                want[at:at + LANES] += products.reshape(-1, LANES).sum(axis=0)  # lane u: t = u, u + 16, ...
    np.testing.assert_allclose(lanes, want, rtol=1e-12, atol=1e-12)
    untouched = np.ones(len(lanes), bool)
    for k in range(2):
        untouched[first + k * next_sums:first + k * next_sums + sums] = False
    np.testing.assert_array_equal(lanes[untouched], before[untouched])
