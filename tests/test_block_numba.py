"""The numba fused block against the NumPy reference (ops.block), on both kernel families."""
import numba
import numpy as np
import pytest

from ops import block_numba
from ops.block import RELU_ZERO, conv_relu_pool_backward_reference, conv_relu_pool_reference
from ops.conv import conv2d_forward

# (N, C, O, H, W, k): odd sizes (floored pool), batch 1, 1 input channel, k 1/3/5; C >= 16 takes
# BLAS (Winograd tiles or im2col), fewer channels the direct kernels. The direct 3x3 kernels work on channel
# pairs (odd O and C leave a single one) and scatter the pooled gradient 16 windows at a time (35
# windows per row at W = 70: two full vectors and a masked one). 66 x 70 needs two row blocks and two
# weight-gradient passes (block_numba.BLOCK_ELEMS). With 4, 8, 12 output (input) channels and a
# 3x3 kernel the input gradient runs on ops/numba_tile.py's tiles, and so does the forward where the
# padded width is even and a row has 8 window slots or more (numba_direct.pools_in_tile: 14 x 14
# is the narrowest, 66 x 70 spans two row blocks, 9 rows leave the input gradient's last row pair
# one row short; 6 x 6 falls back to the loops), also from 16 input
# channels on (block_numba.forward_is_direct); so does the backward of 16 channels at 16 x 16
# (backward_is_direct), while 16 channels at 7 x 9 (odd: the pool drops a row and a column) and 64
# channels take the Winograd F(2x2, 3x3) tiles + BLAS (numba_winograd), and the 5x5 and 1x1
# kernels from 16 channels on im2col + BLAS.
SHAPES = [
    (3, 3, 4, 9, 11, 3),
    (2, 3, 5, 10, 12, 3),
    (2, 2, 3, 66, 70, 3),
    (1, 1, 2, 8, 7, 3),
    (2, 2, 3, 7, 9, 5),
    (2, 5, 3, 8, 6, 1),
    (5, 4, 8, 16, 16, 3),
    (2, 4, 4, 66, 70, 3),
    (1, 8, 12, 10, 14, 3),
    (1, 4, 4, 9, 14, 3),
    (2, 4, 4, 6, 6, 3),
    (3, 16, 5, 7, 9, 3),
    (2, 16, 8, 16, 16, 3),
    (1, 64, 3, 6, 6, 3),
    (2, 17, 2, 5, 8, 5),
    (2, 16, 4, 9, 7, 1),
]


def _data(shape, dtype, seed=0):
    n, c, o, h, wd, k = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, wd)).astype(dtype)
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(dtype)
    b = (0.1 * rng.standard_normal(o)).astype(dtype)
    gy = rng.standard_normal((n, o, h // 2, wd // 2)).astype(dtype)
    return x, w, b, gy


def _close(a, ref, rtol):
    """Max error relative to the scale of the reference array."""
    scale = max(float(np.abs(ref).max()), 1e-30)
    assert a.shape == ref.shape and a.dtype == ref.dtype
    assert float(np.abs(a.astype(np.float64) - ref).max()) <= rtol * scale


def _assert_float64_matches_reference(x, w, b, gy):
    """Forward (codes exactly, outputs to 1e-12) and every gradient against ops.block's reference."""
    y, code = block_numba.conv_relu_pool_forward(x, w, b)
    y_ref, code_ref = conv_relu_pool_reference(x, w, b)
    np.testing.assert_array_equal(code, code_ref)
    _close(y, y_ref, 1e-12)
    got = block_numba.conv_relu_pool_backward(x, w, code, gy)
    want = conv_relu_pool_backward_reference(x, w, code_ref, gy)
    for g, g_ref in zip(got, want):
        _close(g, g_ref, 1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_float64_matches_reference(shape):
    _assert_float64_matches_reference(*_data(shape, np.float64))


@pytest.mark.parametrize("shape", SHAPES)
def test_float32_matches_reference(shape):
    x, w, b, gy = _data(shape, np.float32, seed=1)
    y, code = block_numba.conv_relu_pool_forward(x, w, b)
    y_ref, code_ref = conv_relu_pool_reference(x, w, b)
    _close(y, y_ref, 1e-5)
    # Codes may only differ where the window's top two pre-activations tie to float32 rounding.
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    pre = conv2d_forward(x64, w64, b64)
    n, o, h2, w2 = y.shape
    win = pre[:, :, :2 * h2, :2 * w2].reshape(n, o, h2, 2, w2, 2).transpose(0, 1, 2, 4, 3, 5)
    top2 = np.sort(win.reshape(n, o, h2, w2, 4), axis=-1)[..., -2:]
    near_tie = (top2[..., 1] - top2[..., 0] < 1e-5) | (np.abs(top2[..., 1]) < 1e-5)
    assert np.all((code == code_ref) | near_tie)
    # Same codes on both sides so the gradients are comparable.
    got = block_numba.conv_relu_pool_backward(x, w, code, gy)
    want = conv_relu_pool_backward_reference(x, w, code, gy)
    for g, g_ref in zip(got, want):
        _close(g, g_ref, 1e-5)


@pytest.mark.parametrize("stack", [1, 2, 3])
@pytest.mark.parametrize("k", [3, 5])
def test_stacked_samples_match_reference(monkeypatch, stack, k):
    # The Winograd (3x3) and im2col (5x5) paths put `stack` samples' windows or rows into one
    # product; 7 samples leave a partial group in each thread's range (1 thread: 3+3+1 at stack 3;
    # 2 threads: ranges of 3 and 4).
    n, c, o, h, wd, k = shape = (7, 16, 6, 6, 5, k)
    monkeypatch.setattr(block_numba, "GEMM_ROWS", stack * h * wd)
    monkeypatch.setattr(block_numba, "WINOGRAD_TILES", stack * (h // 2) * (wd // 2))
    _assert_float64_matches_reference(*_data(shape, np.float64, seed=6))


@pytest.mark.parametrize("channels", [2, 16])
@pytest.mark.parametrize("value,bias", [(0.0, 0.5), (0.0, -0.5), (1.0, 0.0)])
def test_ties_give_reference_codes_and_gradients(channels, value, bias):
    # Constant planes: every interior window holds four exactly equal values (first one wins).
    n, c, o, h, wd = 2, channels, 3, 8, 10
    x = np.full((n, c, h, wd), value)
    w = np.full((o, c, 3, 3), 0.25)
    b = np.full(o, bias)
    gy = np.random.default_rng(2).standard_normal((n, o, h // 2, wd // 2))
    y, code = block_numba.conv_relu_pool_forward(x, w, b)
    y_ref, code_ref = conv_relu_pool_reference(x, w, b)
    np.testing.assert_array_equal(code, code_ref)
    if bias < 0:
        assert np.all(code == RELU_ZERO)
    _close(y, y_ref, 1e-12)
    got = block_numba.conv_relu_pool_backward(x, w, code, gy)
    want = conv_relu_pool_backward_reference(x, w, code_ref, gy)
    for g, g_ref in zip(got, want):
        _close(g, g_ref, 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [3, 16])
def test_exactly_zero_preactivations_stop_the_gradient(channels, dtype):
    # Black pixels and zero biases (the first step on a dark image): every pre-activation is exactly
    # 0, and ReLU'(0) = 0, so nothing passes the block: outputs, codes and all gradients vanish.
    n, o, h, wd = 2, 3, 8, 6
    x = np.zeros((n, channels, h, wd), dtype)
    w = np.random.default_rng(5).standard_normal((o, channels, 3, 3)).astype(dtype)
    b = np.zeros(o, dtype)
    gy = np.ones((n, o, h // 2, wd // 2), dtype)
    y, code = block_numba.conv_relu_pool_forward(x, w, b)
    assert np.all(y == 0) and np.all(code == RELU_ZERO)
    gx, gw, gb = block_numba.conv_relu_pool_backward(x, w, code, gy)
    assert np.all(gb == 0) and np.all(gw == 0) and np.all(gx == 0)


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[5]])
def test_need_gx_false_returns_none_and_same_weight_gradients(shape):
    x, w, b, gy = _data(shape, np.float64, seed=3)
    _, code = block_numba.conv_relu_pool_forward(x, w, b)
    gx, gw, gb = block_numba.conv_relu_pool_backward(x, w, code, gy, need_gx=False)
    _, gw_all, gb_all = block_numba.conv_relu_pool_backward(x, w, code, gy, need_gx=True)
    assert gx is None
    np.testing.assert_array_equal(gw, gw_all)
    np.testing.assert_array_equal(gb, gb_all)


@pytest.mark.parametrize("shape", [(5, 3, 4, 12, 12, 3), (5, 16, 4, 8, 8, 3)])
def test_thread_count_only_changes_rounding_and_reruns_are_bitwise_equal(shape):
    x, w, b, gy = _data(shape, np.float32, seed=4)
    threads = numba.get_num_threads()
    results = []
    try:
        for t in (1, threads, threads):
            numba.set_num_threads(t)
            y, code = block_numba.conv_relu_pool_forward(x, w, b)
            results.append((y, code) + block_numba.conv_relu_pool_backward(x, w, code, gy))
    finally:
        numba.set_num_threads(threads)
    for a, b_ in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, b_)
    np.testing.assert_array_equal(results[0][1], results[1][1])
    for a, b_ in zip(results[0], results[1]):
        _close(a, b_, 1e-5)


def test_mismatched_shapes_raise():
    x = np.zeros((1, 3, 4, 4), np.float32)
    with pytest.raises(block_numba.BlockShapeError):
        block_numba.conv_relu_pool_forward(x, np.zeros((2, 4, 3, 3), np.float32), np.zeros(2))
    with pytest.raises(block_numba.BlockShapeError):
        block_numba.conv_relu_pool_forward(x, np.zeros((2, 3, 2, 2), np.float32), np.zeros(2))
    with pytest.raises(block_numba.BlockShapeError):
        block_numba.conv_relu_pool_backward(x, np.zeros((2, 3, 3, 3), np.float32),
                                            np.zeros((1, 2, 2, 1), np.uint8), np.zeros((1, 2, 2, 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accumulator_rows_sit_one_kib_apart_modulo_four_kib(dtype):
    # The loop kernels load and store four accumulator rows per iteration; rows close together
    # modulo 4 KiB would stall on each other's stores (4K aliasing).
    acc = block_numba._acc_workspace("test_acc", 2, 1000, dtype)
    assert acc.shape[:2] == (2, 4) and acc.shape[2] >= 1000 and acc.flags.c_contiguous
    starts = [acc[t, r].ctypes.data for t in range(2) for r in range(4)]
    assert starts[0] % 4096 == 0
    assert [(a - starts[0]) % 4096 for a in starts] == [0, 1024, 2048, 3072] * 2


@pytest.mark.parametrize("total,most", [(32, 31), (64, 15), (2110, 2048), (7, 7), (1, 5)])
def test_even_split_uses_fewest_pieces_of_nearly_equal_size(total, most):
    size = block_numba._even_split(total, most)
    pieces = -(-total // most)
    assert size <= most and -(-total // size) == pieces
    assert pieces * size - total < pieces


def test_two_sizes_sharing_a_plane_length_do_not_share_dirty_pad_columns():
    # 9 x 14 and 12 x 12 planes have the same flat length but different pad columns; a scratch
    # buffer keyed by shape alone kept the first size's values where the second needs zeros
    from ops import numba_direct
    assert numba_direct.plane_len(9, 14, 3) == numba_direct.plane_len(12, 12, 3)
    for shape in ((2, 4, 4, 9, 14, 3), (2, 4, 4, 12, 12, 3), (2, 4, 4, 9, 14, 3)):
        _assert_float64_matches_reference(*_data(shape, np.float64, seed=5))
