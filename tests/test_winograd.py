"""The Winograd F(2x2, 3x3) pieces of ops/numba_winograd.py against plain definitions: the kernel
transform and its adjoint, the winner factors, and the spacing of the transform planes."""
import numpy as np
import pytest

from ops import block_numba, numba_winograd
from ops.pool_code import RELU_ZERO

# Lavin & Gray's F(2, 3) matrices, written out here rather than taken from the module
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])


def test_the_matrices_compute_a_2x2_correlation():
    # Y = A^T [(G g G^T) * (B^T d B)] A is the 3x3 correlation of the 4x4 patch d with g
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    direct = np.array([[np.sum(d[r:r + 3, q:q + 3] * g) for q in range(2)] for r in range(2)])
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)


def test_filters_are_g_w_gt_per_kernel():
    w = np.random.default_rng(1).standard_normal((5, 3, 3, 3))
    u = numba_winograd.winograd_filters(w)
    for o in range(5):
        for c in range(3):
            np.testing.assert_allclose(u[:, c, o].reshape(4, 4), G @ w[o, c] @ G.T, rtol=1e-14, atol=1e-14)


def test_weight_gradient_is_the_adjoint_of_the_filter_transform():
    # <U(w), X> = <w, U^T(X)> for random w and transform-domain X
    rng = np.random.default_rng(2)
    w, x = rng.standard_normal((4, 6, 3, 3)), rng.standard_normal((16, 6, 4))
    gw = np.empty_like(w)
    numba_winograd._weight_gradient(x, gw)
    assert np.isclose(np.sum(numba_winograd.winograd_filters(w) * x), np.sum(w * gw), rtol=1e-12)


def test_winner_factors_are_the_outer_products_of_a_columns():
    f = numba_winograd.winner_factors(np.float64)
    for code in range(RELU_ZERO):
        dy = np.zeros((2, 2))
        dy[code // 2, code % 2] = 1.0
        np.testing.assert_array_equal(f[:, code].reshape(4, 4), AT.T @ dy @ AT)
    assert np.all(f[:, RELU_ZERO] == 0)


@pytest.mark.parametrize("rows,row_bytes", [(512, 128), (256, 256), (16, 4 * 33), (25, 4 * 64), (9, 8 * 3)])
def test_transform_planes_start_in_distinct_cache_slots(rows, row_bytes):
    spread = block_numba._spread_planes(rows, row_bytes)
    slots = {(k * spread * row_bytes) % 4096 // 256 for k in range(16)}
    assert rows <= spread < rows + 4096 and len(slots) == 16


def test_rows_of_4_kib_cannot_be_spread_and_are_left_alone():
    assert block_numba._spread_planes(7, 4096) == 7
