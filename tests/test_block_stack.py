"""Several fused blocks run sample by sample (ops/block_numba.py: stack_forward/stack_backward)
against the same blocks one after the other, and against the NumPy reference."""
import numba
import numpy as np
import pytest

from ops import block, block_numba
from ops.pixels import PixelRows

# (N, [(C, O)], S, pixels, dtype): the study's first three blocks at 64 px, odd sizes (13 -> 6 -> 3),
# a single output channel, float64
CASES = [(5, [(3, 4), (4, 8), (8, 6)], 20, True, np.float32),
         (3, [(2, 3), (3, 5)], 13, False, np.float64),
         (4, [(3, 4), (4, 8), (8, 16)], 64, True, np.float32),
         (2, [(1, 1), (1, 2)], 8, False, np.float32)]


def _case(n, dims, size, pixels, dtype, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, dims[0][0], size, size)
    x = rng.integers(0, 256, shape, dtype=np.uint8) if pixels else rng.standard_normal(shape).astype(dtype)
    ws = [(0.4 * rng.standard_normal((o, c, 3, 3))).astype(dtype) for c, o in dims]
    bs = [(0.1 * rng.standard_normal(o)).astype(dtype) for _, o in dims]
    return x, ws, bs, rng


def _one_by_one(x, ws, bs, gy, need_gx, kernels):
    """Forward and backward block after block: ([y], [code], gx, [gw], [gb])."""
    ys, codes, inputs = [], [], []
    for w, b in zip(ws, bs):
        inputs.append(x)
        x, code = block.conv_relu_pool_forward(x, w, b, kernels=kernels)
        ys.append(x)
        codes.append(code)
    gws, gbs = [None] * len(ws), [None] * len(ws)
    for i in range(len(ws) - 1, -1, -1):
        gy, gws[i], gbs[i] = block.conv_relu_pool_backward(inputs[i], ws[i], codes[i], gy,
                                                           need_gx=need_gx or i > 0, kernels=kernels)
    return ys, codes, gy, gws, gbs


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("need_gx", [False, True])
def test_stack_gives_the_numbers_of_its_blocks_one_after_the_other(case, need_gx):
    x, ws, bs, rng = _case(*case)
    need_gx = need_gx and x.dtype != np.uint8
    ys, codes = block_numba.stack_forward(x, ws, bs)
    gy = rng.standard_normal(ys[-1].shape).astype(ws[0].dtype)
    gx, gws, gbs = block_numba.stack_backward(x, ws, ys, codes, gy, need_gx=need_gx)
    ys_ref, codes_ref, gx_ref, gws_ref, gbs_ref = _one_by_one(x, ws, bs, gy, need_gx, "fast")
    for got, ref in zip(ys + codes + gws + gbs, ys_ref + codes_ref + gws_ref + gbs_ref):
        assert got.dtype == ref.dtype and np.array_equal(got, ref)
    assert (gx is None) if not need_gx else np.array_equal(gx, gx_ref)


@pytest.mark.parametrize("case", CASES[:2])
@pytest.mark.parametrize("keep", [True, False])
def test_stack_reads_photos_named_by_index_where_they_are(case, keep):
    # PixelRows of a larger read-only array (shuffled, one photo twice) against their gathered copy
    x, ws, bs, rng = _case(*case, seed=7)
    source = np.concatenate([x, x[::-1]])
    source.setflags(write=False)
    rows = PixelRows(source, rng.permutation(len(source))[:len(x)].tolist() + [0])
    batch = rows.gather()
    ys, codes = block_numba.stack_forward(rows, ws, bs, keep=keep)
    ys_ref, codes_ref = block_numba.stack_forward(batch, ws, bs, keep=keep)
    for got, ref in zip(ys + codes, ys_ref + codes_ref):
        assert np.array_equal(got, ref)
    if keep:
        gy = rng.standard_normal(ys[-1].shape).astype(ws[0].dtype)
        need_gx = x.dtype != np.uint8
        got = block_numba.stack_backward(rows, ws, ys, codes, gy, need_gx=need_gx)
        ref = block_numba.stack_backward(batch, ws, ys, codes, gy, need_gx=need_gx)
        assert (got[0] is None) if not need_gx else np.array_equal(got[0], ref[0])
        for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
            assert np.array_equal(a, b)


def test_stack_gathers_photos_named_in_an_array_of_another_layout():
    x, ws, bs, _ = _case(*CASES[0])
    rows = PixelRows(np.asfortranarray(x), [4, 0, 2])
    ys, codes = block_numba.stack_forward(rows, ws, bs)
    ys_ref, codes_ref = block_numba.stack_forward(x[[4, 0, 2]], ws, bs)
    for got, ref in zip(ys + codes, ys_ref + codes_ref):
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("case", CASES[:2])
def test_stack_matches_the_numpy_reference(case):
    x, ws, bs, rng = _case(*case, seed=4)
    ys, codes = block.conv_relu_pool_stack_forward(x, ws, bs, kernels="fast")
    gy = rng.standard_normal(ys[-1].shape).astype(ws[0].dtype)
    _, gws, gbs = block.conv_relu_pool_stack_backward(x, ws, ys, codes, gy, need_gx=False, kernels="fast")
    ys_ref, codes_ref = block.conv_relu_pool_stack_forward(x, ws, bs, kernels="reference")
    _, gws_ref, gbs_ref = block.conv_relu_pool_stack_backward(x, ws, ys_ref, codes_ref, gy, need_gx=False,
                                                              kernels="reference")
    rtol = 1e-12 if ws[0].dtype == np.float64 else 2e-5
    for got, ref in zip(ys + gws + gbs, ys_ref + gws_ref + gbs_ref):
        scale = max(float(np.abs(ref).max()), 1e-30)
        assert float(np.abs(got.astype(np.float64) - ref).max()) <= rtol * scale
    # codes may differ only where two window values tie within rounding; these random inputs have none
    assert all(np.array_equal(c, r) for c, r in zip(codes, codes_ref))


def test_thread_count_only_changes_the_chunking_and_reruns_are_bitwise_equal():
    x, ws, bs, rng = _case(*CASES[0], seed=2)
    gy = rng.standard_normal((5, 6, 2, 2)).astype(np.float32)
    results = []
    before = numba.get_num_threads()
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS), 1):
        numba.set_num_threads(threads)
        try:
            ys, codes = block_numba.stack_forward(x, ws, bs)
            results.append(ys + block_numba.stack_backward(x, ws, ys, codes, gy, need_gx=False)[1])
        finally:
            numba.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(results[0], results[2]))
    # other chunks sum in another order: equal to a few float32 roundings of the largest entry
    # (seeds 2-11 differ by at most 3.5e-7 of it; an elementwise tolerance fails near-zero entries
    # with the plain sums too, e.g. seeds 3-5)
    assert all(np.abs(a - b).max() <= 2e-6 * np.abs(a).max() for a, b in zip(results[0], results[1]))


def test_a_stack_needs_two_direct_blocks_that_fit_together():
    x = np.zeros((1, 3, 8, 8), np.float32)
    w3, w16 = np.zeros((4, 3, 3, 3), np.float32), np.zeros((4, 16, 3, 3), np.float32)
    with pytest.raises(block_numba.BlockShapeError, match="two blocks"):
        block_numba.stack_forward(x, [w3], [np.zeros(4, np.float32)])
    with pytest.raises(block_numba.BlockShapeError, match="channels"):
        block_numba.stack_forward(x, [w3, w3], [np.zeros(4, np.float32)] * 2)
    with pytest.raises(block_numba.BlockShapeError, match="direct 3x3"):
        block_numba.stack_forward(np.zeros((1, 16, 8, 8), np.float32), [w16, np.zeros((2, 4, 3, 3), np.float32)],
                                  [np.zeros(4, np.float32), np.zeros(2, np.float32)])


def test_stack_depth_covers_the_leading_few_channel_blocks():
    assert block.direct_stack_depth((3, 4, 8, 16, 32), 3, "fast") == 3
    assert block.direct_stack_depth((3, 16, 32), 3, "fast") == 0  # a single direct block: no stack
    assert block.direct_stack_depth((3, 4, 8), 5, "fast") == 0
    assert block.direct_stack_depth((3, 4, 8), 3, "reference") == 0


@pytest.mark.parametrize("case", CASES[:3])
def test_evaluation_stack_keeps_only_the_last_output_and_it_is_the_same(case):
    x, ws, bs, _ = _case(*case, seed=6)
    ys, codes = block_numba.stack_forward(x, ws, bs)
    last, no_codes = block_numba.stack_forward(x, ws, bs, keep=False)
    assert len(last) == 1 and no_codes == [] and np.array_equal(last[0], ys[-1])


def test_stacked_and_unstacked_models_train_and_evaluate_alike():
    from engine.model import ModelConfig, build_model
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    y = (np.arange(6) % 2).astype(np.float32)
    results = []
    for stack_blocks in (True, False):
        model = build_model(ModelConfig(image_size=32), seed=3, kernels="fast", stack_blocks=stack_blocks)
        assert (type(model.layers[0]).__name__ == "ConvStack") == stack_blocks
        loss, correct = model.loss_and_grad(x, y)
        results.append((loss, correct, model.grad.copy(), model.evaluate(x, y, batch_size=4)))
    (loss, correct, grad, scores), (loss_u, correct_u, grad_u, scores_u) = results
    assert (loss, correct, scores) == (loss_u, correct_u, scores_u) and np.array_equal(grad, grad_u)
