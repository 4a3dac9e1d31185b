"""The numba dense layer (ops/numba_dense.py) against sums written out with einsum in float64."""
import numba
import numpy as np
import pytest

from ops import dense, numba_dense


def _data(n, n_in, n_out, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_in)).astype(dtype)
    w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    gy = rng.standard_normal((n, n_out)).astype(dtype)
    return x, w, b, gy


def _definition(x, w, b, gy):
    """y[n, o] = sum_i x[n, i] w[o, i] + b[o] and its three gradients, in float64."""
    x, w, b, gy = (a.astype(np.float64) for a in (x, w, b, gy))
    y = np.einsum("ni,oi->no", x, w) + b
    return y, np.einsum("no,oi->ni", gy, w), np.einsum("no,ni->oi", gy, x), gy.sum(axis=0)


def _assert_close(a, ref, rtol):
    scale = max(float(np.abs(ref).max()), 1e-30)
    assert float(np.abs(a.astype(np.float64) - ref).max()) <= rtol * scale


# (N, in, out): fewer rows or output units than threads, odd sizes, the study's dense1 and dense2;
# batches below and from numba_dense.TRANSPOSED_BELOW (the two forms of the forward)
SHAPES = [(1, 5, 3), (3, 7, 1), (5, 9, 4), (32, 1024, 256), (33, 256, 256), (130, 64, 3), (300, 9, 256)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_fast_dense_matches_the_sums(shape, dtype, rtol):
    x, w, b, gy = _data(*shape, dtype)
    y = numba_dense.dense_forward(x, w, b)
    gx, gw, gb = numba_dense.dense_backward(x, w, gy)
    for got, ref in zip((y, gx, gw, gb), _definition(x, w, b, gy)):
        assert got.dtype == dtype
        _assert_close(got, ref, rtol)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_count_does_not_change_the_result_beyond_rounding(threads):
    x, w, b, gy = _data(17, 64, 9, np.float32, seed=3)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        got = (numba_dense.dense_forward(x, w, b),) + numba_dense.dense_backward(x, w, gy)
    finally:
        numba.set_num_threads(before)
    for a, ref in zip(got, _definition(x, w, b, gy)):
        _assert_close(a, ref, 2e-6)


@pytest.mark.parametrize("nchunks", [1, 2, 3, 5])
@pytest.mark.parametrize("need_gx", [True, False])
def test_backward_products_cover_every_row_for_any_split(nchunks, need_gx):
    # the backward gives its two products to two groups of threads; whatever the split (more
    # chunks than rows of gx included), every entry is computed, and gx only when asked for
    x, w, b, gy = _data(4, 6, 7, np.float64, seed=nchunks)
    gx = np.full(x.shape, np.nan)
    gw = np.full(w.shape, np.nan)
    numba_dense._backward(x, w, gy, np.ascontiguousarray(gy.T), gx, gw, nchunks, need_gx)
    _, gx_ref, gw_ref, _ = _definition(x, w, b, gy)
    _assert_close(gw, gw_ref, 1e-12)
    if need_gx:
        _assert_close(gx, gx_ref, 1e-12)
    else:
        assert np.isnan(gx).all()


def test_need_gx_false_skips_the_input_gradient():
    x, w, b, gy = _data(6, 8, 5, np.float64)
    gx, gw, gb = numba_dense.dense_backward(x, w, gy, need_gx=False)
    assert gx is None
    _, _, gw_ref, gb_ref = _definition(x, w, b, gy)
    _assert_close(gw, gw_ref, 1e-12)
    _assert_close(gb, gb_ref, 1e-12)


def test_dispatch_takes_the_fast_path_only_when_it_pays(monkeypatch):
    calls = []
    monkeypatch.setattr(numba_dense, "dense_forward", lambda *a: calls.append("fast") or 0)
    x, w, b, _ = _data(4, 8, 2, np.float32)
    dense.dense_forward(x, w, b, kernels="fast")  # 64 multiply-adds: below FAST_MIN_MACS
    dense.dense_forward(x, w, b, kernels="reference")
    assert calls == []
    monkeypatch.setattr(dense, "FAST_MIN_MACS", 64)
    dense.dense_forward(x, w, b, kernels="fast")
    assert calls == ["fast"]
    with pytest.raises(ValueError, match="kernels must be"):
        dense.dense_forward(x, w, b, kernels="gpu")
