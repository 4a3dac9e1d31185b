"""bench/tile_mix.py times what it says: each variant's sums against NumPy's definition of them.

A variant that silently computed something else (other weights, other rows, no additions where
they were meant) would time another instruction mix; the tile loop's sums also pin the weights'
layout that ops/numba_tile._tile_sums reads (u[o // 4, c, o % 4, j, m])."""
import numpy as np
import pytest

from bench import tile_mix
from ops.numba_tile import LANES, OUTPUTS

C = 3


def expected_sums(planes, weights, additions, memory_weights, unaligned, indexed):
    """sums[k][m] (16 lanes) = sum over channels c and kernel columns j of weight(c, k, j, m) times
    the m-th input vector: the rows d0..d3 (even and odd plane, rows 0 and 1) at the column shift,
    Winograd-transformed when `additions`."""
    p = planes[:C * 2 * tile_mix.PLANE].reshape(C, 2, tile_mix.PLANE)
    sums = np.zeros((OUTPUTS, 4, LANES))
    for c in range(C):
        for j in range(3):
            s = j if unaligned else LANES * j
            d0, d1 = p[c, 0, s:s + LANES], p[c, 1, s:s + LANES]
            below = tile_mix.ROW + s  # the next row of the same parity
            d2, d3 = p[c, 0, below:below + LANES], p[c, 1, below:below + LANES]
            inputs = (d0 - d2, d1 + d2, d2 - d1, d1 - d3) if additions else (d0, d1, d2, d3)
            for k in range(OUTPUTS):
                for m in range(4):
                    if not memory_weights:
                        weight = weights[m]
                    elif indexed:
                        weight = weights[(k * C + c) * 12 + 4 * j + m]
                    else:
                        weight = weights[c * OUTPUTS * 12 + 12 * k + 4 * j + m]
                    sums[k, m] += weight * inputs[m].astype(np.float64)
    return sums


@pytest.mark.parametrize("variant", [None, *tile_mix.VARIANTS])
def test_variant_sums_match_their_definition(variant):
    rng = np.random.default_rng(7)
    planes = rng.standard_normal(C * 2 * tile_mix.PLANE + LANES).astype(np.float32)
    weights = rng.standard_normal(OUTPUTS * C * 12).astype(np.float32)
    out = np.zeros(16 * LANES, np.float32)
    tile_mix._mix_loop(variant)(planes, C, weights, out, 1)
    if variant is None:  # the tile's own loop, its two rows per output channel (init = out[0:4] = 0)
        sums = expected_sums(planes, weights, True, True, True, False)
        m1, m2, m3, m4 = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
        rows = np.stack([m1 + m2 + m3, m2 - m3 - m4], axis=1)  # (k, even/odd, lanes)
        np.testing.assert_allclose(out[:OUTPUTS * 2 * LANES], rows.reshape(-1), rtol=1e-5, atol=1e-5)
        assert not out[OUTPUTS * 2 * LANES:].any()
    else:
        sums = expected_sums(planes, weights, *tile_mix.VARIANTS[variant])
        np.testing.assert_allclose(out, sums.reshape(-1), rtol=1e-5, atol=1e-5)
