"""Engine behaviour with known answers: autograd bookkeeping, the model's size and seeding, the loss
at extreme logits, max-pool ties, SGD."""
import numpy as np
import pytest

from engine.functions import BCEWithLogitsFn, DenseFn, MaxPool2x2Fn
from engine.model import ModelConfig, ModelConfigError, build_model
from engine.sgd import SGD
from engine.tensor import Tensor, no_grad
from ops.block import conv_relu_pool_backward, conv_relu_pool_forward


def test_parameter_count_of_the_study_net():
    model = build_model(ModelConfig(image_size=128), kernels="reference")
    assert model.theta.size == 353_161
    assert model.theta.dtype == np.float32
    assert [row["name"] for row in model.table][:2] == ["conv1.weight", "conv1.bias"]
    assert model.table[-1]["shape"] == [1]


def test_parameters_are_views_into_the_flat_vector():
    model = build_model(ModelConfig(image_size=32), kernels="reference")
    w = model.params["dense1.weight"]
    model.theta[model.table[[r["name"] for r in model.table].index("dense1.weight")]["offset"]] = 7.0
    assert w.data[0, 0] == 7.0
    model.grad[...] = 3.0
    assert np.all(w.grad == 3.0)


def test_same_seed_same_weights_other_seed_other_weights():
    a = build_model(ModelConfig(image_size=64), seed=11, kernels="reference").theta
    b = build_model(ModelConfig(image_size=64), seed=11, kernels="fast").theta
    c = build_model(ModelConfig(image_size=64), seed=12, kernels="reference").theta
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_glorot_limits_and_zero_biases():
    model = build_model(ModelConfig(image_size=128), seed=0)
    for row in model.table:
        values = model.theta[row["offset"]:row["offset"] + row["size"]]
        if row["role"] == "bias":
            assert np.all(values == 0)
        else:
            shape = row["shape"]
            rf = int(np.prod(shape[2:])) if len(shape) > 2 else 1
            limit = np.sqrt(6 / (shape[1] * rf + shape[0] * rf))
            assert np.abs(values).max() <= limit
            assert np.abs(values).max() > 0.9 * limit  # the draws span the interval


def test_image_size_too_small_is_a_clear_error():
    with pytest.raises(ModelConfigError, match="too small"):
        build_model(ModelConfig(image_size=16))


def test_loss_is_exact_and_finite_at_extreme_logits():
    logits = np.array([[100.0], [-100.0], [100.0], [-100.0]])
    labels = np.array([1.0, 0.0, 0.0, 1.0])
    z = Tensor(logits, requires_grad=True)
    loss = BCEWithLogitsFn(4)(z, Tensor(labels))
    # right answers cost log(1 + e^-100) ~ 3.7e-44 each; wrong ones cost 100 + that
    assert loss.data == pytest.approx((100.0 + 100.0) / 4, rel=1e-12)
    loss.backward()
    expected = np.array([[-np.exp(-100.0)], [np.exp(-100.0)], [1.0], [-1.0]]) / 4
    assert np.all(np.isfinite(z.grad))
    assert np.allclose(z.grad, expected, rtol=1e-12, atol=0)


def test_maxpool_tie_sends_gradient_to_exactly_one_input():
    x = np.ones((1, 1, 4, 4))
    t = Tensor(x, requires_grad=True)
    MaxPool2x2Fn()(t).backward(np.ones((1, 1, 2, 2)))
    assert t.grad.sum() == 4
    assert np.array_equal(t.grad[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_fused_block_tie_sends_gradient_to_one_input(kernels):
    # a 1x1 identity kernel makes the pre-activation equal the (tied, positive) input
    x = np.full((1, 1, 4, 4), 2.0)
    w, b = np.ones((1, 1, 1, 1)), np.zeros(1)
    y, code = conv_relu_pool_forward(x, w, b, kernels=kernels)
    gx, _, _ = conv_relu_pool_backward(x, w, code, np.ones_like(y), kernels=kernels)
    assert np.array_equal(gx[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


def test_value_used_twice_gets_the_sum_of_its_gradients():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w, b = Tensor(rng.standard_normal((4, 4))), Tensor(np.zeros(4))
    h = DenseFn()(x, w, b)          # h = x W^T
    y = DenseFn()(h, w, b)          # y = x W^T W^T: x reaches y along one path, W along two
    g = rng.standard_normal(y.shape)
    w.requires_grad = True
    w2 = Tensor(w.data, requires_grad=True)
    y = DenseFn()(DenseFn()(x, w2, b), w2, b)
    y.backward(g)
    # d<g, x W^T W^T>/dW = (g^T x W^T) + (W^T g^T x)^T... checked against the product rule numerically
    wd = w.data
    expected_w = g.T @ (x.data @ wd.T) + (g @ wd).T @ x.data
    assert np.allclose(w2.grad, expected_w)
    assert np.allclose(x.grad, g @ wd @ wd)


def test_no_grad_builds_no_graph():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with no_grad():
        y = DenseFn()(x, Tensor(np.ones((1, 3)), requires_grad=True), Tensor(np.zeros(1)))
    assert y.creator is None and not y.requires_grad


def test_deep_chain_backward_needs_no_recursion():
    x = Tensor(np.array([[1.0]]), requires_grad=True)
    one, zero = Tensor(np.array([[1.0]])), Tensor(np.zeros(1))
    y = x
    for _ in range(5000):
        y = DenseFn()(y, one, zero)
    y.backward(np.array([[2.0]]))
    assert x.grad[0, 0] == 2.0


def test_sgd_plain_and_momentum_match_closed_form():
    theta, grad = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    norm = SGD(theta, grad).step(0.1)
    assert np.allclose(theta, [0.95, -2.025]) and norm == pytest.approx(0.1 * np.hypot(0.5, 0.25))
    theta, grad = np.array([1.0]), np.array([1.0])
    opt = SGD(theta, grad, momentum=0.9, weight_decay=0.1)
    opt.step(0.1)             # v = 1 + 0.1*1 = 1.1; theta = 1 - 0.11 = 0.89
    opt.step(0.1)             # v = 0.99 + (1 + 0.089) = 2.079; theta = 0.89 - 0.2079
    assert theta[0] == pytest.approx(0.89 - 0.2079)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 1e-2)])
def test_sgd_kernel_equals_the_numpy_update_bitwise(momentum, weight_decay, dtype):
    # The one-pass numba update against the same update written with NumPy array operations:
    # theta and velocity bit for bit (same dtype arithmetic, no fused multiply-adds), the norm
    # to rounding (the kernel sums d^2 in another order).
    rng = np.random.default_rng(8)
    theta, grad = rng.standard_normal((2, 1001)).astype(dtype)
    opt = SGD(theta.copy(), grad, momentum, weight_decay)
    velocity = np.zeros_like(theta)
    for lr in (0.1, 0.05):  # two steps, so the momentum buffer is read as well as written
        direction = grad + weight_decay * theta
        if momentum:
            velocity *= momentum
            velocity += direction
            direction = velocity
        expected = lr * np.sqrt((direction.astype(np.float64) ** 2).sum())
        theta -= lr * direction
        assert opt.step(lr) == pytest.approx(expected, rel=1e-12)
        np.testing.assert_array_equal(opt.theta, theta)
    if momentum:
        np.testing.assert_array_equal(opt.velocity, velocity)


def test_one_sgd_step_lowers_the_loss_on_a_batch():
    model = build_model(ModelConfig(image_size=32), seed=3, dtype="float64", kernels="reference")
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 3, 32, 32)), np.array([0, 1] * 4, dtype=float)
    before, _ = model.loss_and_grad(x, y)
    SGD(model.theta, model.grad).step(0.01)
    after, _ = model.evaluate(x, y)
    assert after < before
