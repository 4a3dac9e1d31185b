"""Every GPU kernel (ops/cuda_*.py) against the NumPy reference, run by numba's CUDA simulator in CI
(tests/cuda_harness.py) and on a real GPU by bench/gpu_check.sh. Shapes are odd on purpose: batch 1,
1 and 64 channels, odd sizes that pooling floors, element counts that do not divide evenly among the
launched threads."""
import numpy as np
import pytest
from cuda_harness import TOLERANCE, max_relative_error, on_device, on_host

from engine.sgd import SGD
from ops import cuda_block, cuda_im2col, cuda_loss, cuda_pool, cuda_sgd
from ops.block import RELU_ZERO, conv_relu_pool_backward_reference, conv_relu_pool_reference
from ops.conv import _col2im, _im2col
from ops.loss import bce_with_logits_grad, bce_with_logits_sum

DTYPES = (np.float32, np.float64)
# (batch, in channels, out channels, height, width)
SHAPES = [(1, 1, 64, 5, 7), (2, 3, 5, 7, 6), (1, 64, 2, 5, 5), (2, 17, 3, 6, 9)]


def random_block(shape, dtype, seed):
    n, c, o, h, w = shape
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, h, w)).astype(dtype),
            (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(dtype),
            rng.standard_normal(o).astype(dtype) * 0.1)


def integer_block(shape, dtype, seed):
    """Small integers: every sum is exact, so pooling windows tie and pre-activations hit exactly 0
    often, and the first-maximum rule and the ReLU's 0 are tested exactly."""
    n, c, o, h, w = shape
    rng = np.random.default_rng(seed)
    return (rng.integers(-1, 2, (n, c, h, w)).astype(dtype),
            rng.integers(-1, 2, (o, c, 3, 3)).astype(dtype),
            rng.integers(-1, 2, o).astype(dtype))


def check_block(x, w, b, gemm, seed):
    dtype = x.dtype.type
    y_ref, code_ref = conv_relu_pool_reference(x, w, b)
    gy = np.random.default_rng(seed).standard_normal(y_ref.shape).astype(dtype)
    gx_ref, gw_ref, gb_ref = conv_relu_pool_backward_reference(x, w, code_ref, gy)
    xd, wd = on_device(x), on_device(w)
    y, code = cuda_block.conv_relu_pool_forward(xd, wd, on_device(b), gemm=gemm)
    np.testing.assert_array_equal(on_host(code), code_ref)
    gx, gw, gb = cuda_block.conv_relu_pool_backward(xd, wd, code, on_device(gy), gemm=gemm)
    for result, reference in ((y, y_ref), (gx, gx_ref), (gw, gw_ref), (gb, gb_ref)):
        assert max_relative_error(result, reference) < TOLERANCE[dtype]
    return code_ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gemm", [False, True], ids=["direct", "im2col"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fused_block_matches_reference(shape, gemm, dtype):
    check_block(*random_block(shape, dtype, seed=sum(shape)), gemm, seed=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gemm", [False, True], ids=["direct", "im2col"])
def test_fused_block_ties_and_zero_preactivations(gemm, dtype):
    code = check_block(*integer_block((2, 2, 3, 7, 5), dtype, seed=3), gemm, seed=4)
    # the data must actually exercise both rules: ties won by a later cell would show up as codes
    # that differ from the reference's first maximum, ReLU zeros as code 4
    assert (code == RELU_ZERO).any() and (code < RELU_ZERO).any()


def test_fused_block_skips_input_gradient_when_not_needed():
    x, w, b = random_block((1, 3, 4, 5, 5), np.float64, seed=0)
    for gemm in (False, True):
        xd, wd = on_device(x), on_device(w)
        y, code = cuda_block.conv_relu_pool_forward(xd, wd, on_device(b), gemm=gemm)
        assert cuda_block.conv_relu_pool_backward(xd, wd, code, y, need_gx=False, gemm=gemm)[0] is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 5, 7), (2, 3, 4, 3)])
def test_im2col_and_col2im_match_reference(shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    cols = cuda_im2col.im2col(on_device(x), 3)
    np.testing.assert_array_equal(on_host(cols), _im2col(x, 3))  # a copy: exact
    gcols = rng.standard_normal(cols.shape).astype(dtype)
    gx = cuda_im2col.col2im(on_device(gcols), shape, 3)
    assert max_relative_error(gx, _col2im(gcols, shape, 3)) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_relu_pool_and_its_routing_match_reference(dtype):
    rng = np.random.default_rng(5)
    pre = rng.integers(-2, 3, (2, 3, 7, 5)).astype(dtype)  # ties and exact zeros after the bias
    b = np.array([0, 1, -1], dtype=dtype)
    pre_with_bias = pre + b[None, :, None, None]
    from ops.pool import maxpool2x2_backward, maxpool2x2_forward
    pooled, winner = maxpool2x2_forward(pre_with_bias)
    y, code = cuda_pool.bias_relu_pool_forward(on_device(pre), on_device(b))
    np.testing.assert_array_equal(on_host(y), np.maximum(pooled, 0))
    np.testing.assert_array_equal(on_host(code), np.where(pooled > 0, winner, RELU_ZERO))
    gy = rng.standard_normal(pooled.shape).astype(dtype)
    g_pre = cuda_pool.bias_relu_pool_backward(on_device(gy), code, pre.shape)
    np.testing.assert_array_equal(on_host(g_pre), maxpool2x2_backward(gy * (pooled > 0), winner, pre.shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_kernel_matches_reference(dtype):
    z = np.array([-100, -7.5, -1e-3, 0, 0.25, 3, 100], dtype=dtype)
    y = np.array([1, 0, 1, 0, 1, 0, 1], dtype=dtype)
    loss_sum, grad = cuda_loss.bce_with_logits(on_device(z), on_device(y), 8)
    assert max_relative_error(np.float64(on_host(loss_sum)), bce_with_logits_sum(z, y)) < TOLERANCE[dtype]
    assert max_relative_error(grad, bce_with_logits_grad(z, y, 8)) < TOLERANCE[dtype]
    assert on_host(grad)[-1] < 0  # the tail at z = 100, y = 1 is -e^-100 / 8, not 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 1e-2)])
def test_sgd_kernel_matches_reference_update_and_norm(momentum, weight_decay, dtype):
    rng = np.random.default_rng(7)
    theta, grad = rng.standard_normal((2, 1001)).astype(dtype)  # 1001: not a multiple of a block
    reference = SGD(theta.copy(), grad.copy(), momentum, weight_decay, cuda_kernel=False)
    theta_d, grad_d = on_device(theta), on_device(grad)
    velocity = on_device(np.zeros_like(theta)) if momentum else None
    for lr in (0.1, 0.05):  # two steps, so the momentum buffer is read as well as written
        expected = reference.step(lr)
        norm = cuda_sgd.sgd_update(theta_d, grad_d, lr, momentum, weight_decay, velocity)
        assert abs(norm - expected) / expected < TOLERANCE[dtype]
    assert max_relative_error(theta_d, reference.theta) < TOLERANCE[dtype]
