"""Float64 central-difference checks of every op's gradient and of the whole model."""
import numpy as np
import pytest

from engine.functions import (BCEWithLogitsFn, ConvReLUPoolFn, Conv2DFn, DenseFn, FlattenFn,
                              MaxPool2x2Fn, ReLUFn)
from engine.gradcheck import directional_derivative, numerical_gradient, relative_error
from engine.model import ModelConfig, build_model
from engine.tensor import Tensor

TOL = 1e-6


def distinct_values(rng, shape):
    """Shuffled, well-separated values: no max-pool ties and no value near a ReLU kink."""
    n = int(np.prod(shape))
    values = np.linspace(0.05, 1.0, n) * rng.choice([-1.0, 1.0], n)
    return rng.permutation(values).reshape(shape)


def check_function(make_fn, arrays, rng):
    """Compare backward of make_fn() against central differences of <y, r> for every input."""
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    y = make_fn()(*tensors)
    r = rng.standard_normal(y.shape)
    y.backward(r)

    def projected():
        return float((make_fn()(*[Tensor(a) for a in arrays]).data * r).sum())

    for t, a in zip(tensors, arrays):
        numeric = numerical_gradient(projected, a)
        assert relative_error(t.grad, numeric) < TOL


CONV_SHAPES = [  # (N, C, H, W, O, k): odd shapes, batch 1, 1 and 64 channels
    (1, 1, 5, 7, 3, 3), (2, 3, 7, 5, 4, 3), (1, 64, 3, 3, 2, 3), (2, 2, 4, 6, 64, 1), (1, 2, 5, 5, 2, 5)]


@pytest.mark.parametrize("n,c,h,w,o,k", CONV_SHAPES)
def test_conv2d_gradient(n, c, h, w, o, k):
    rng = np.random.default_rng(1)
    arrays = [distinct_values(rng, (n, c, h, w)), rng.standard_normal((o, c, k, k)),
              rng.standard_normal(o)]
    check_function(Conv2DFn, arrays, rng)


@pytest.mark.parametrize("kernels", ["reference", "fast"])
@pytest.mark.parametrize("n,c,h,w,o,k", CONV_SHAPES)
def test_fused_block_gradient(n, c, h, w, o, k, kernels):
    rng = np.random.default_rng(2)
    arrays = [distinct_values(rng, (n, c, h, w)), rng.standard_normal((o, c, k, k)),
              rng.standard_normal(o)]
    check_function(lambda: ConvReLUPoolFn(kernels), arrays, rng)


@pytest.mark.parametrize("shape", [(1, 1, 5, 7), (2, 3, 4, 4), (1, 64, 3, 5)])
def test_maxpool_and_relu_gradient(shape):
    rng = np.random.default_rng(3)
    check_function(MaxPool2x2Fn, [distinct_values(rng, shape)], rng)
    check_function(ReLUFn, [distinct_values(rng, shape)], rng)
    check_function(FlattenFn, [distinct_values(rng, shape)], rng)


@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (3, 7, 5), (64, 64, 2)])
def test_dense_gradient(n, i, o):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((n, i)), rng.standard_normal((o, i)), rng.standard_normal(o)]
    check_function(DenseFn, arrays, rng)


def test_loss_gradient():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((9, 1)) * 3
    labels = (rng.random(9) > 0.5).astype(np.float64)
    z = Tensor(logits, requires_grad=True)
    BCEWithLogitsFn(7)(z, Tensor(labels)).backward()
    numeric = numerical_gradient(lambda: float(BCEWithLogitsFn(7).forward(logits, labels)), logits)
    assert relative_error(z.grad, numeric) < TOL


@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_whole_model_gradient(kernels):
    config = ModelConfig(image_size=32, filters=(2, 3, 4, 5, 6), dense=(7, 5))
    model = build_model(config, seed=0, dtype="float64", kernels=kernels)
    rng = np.random.default_rng(6)
    model.theta[...] = rng.standard_normal(model.theta.size) * 0.5
    x = rng.random((3, 3, 32, 32))
    y = np.array([0.0, 1.0, 1.0])
    model.loss_and_grad(x, y)
    analytic = model.grad.copy()

    def loss():
        return model.evaluate(x, y)[0]

    for _ in range(3):
        direction = rng.standard_normal(model.theta.size)
        numeric = directional_derivative(loss, model.theta, direction)
        assert relative_error(analytic @ direction, numeric) < TOL
    # a few single coordinates of the first and last layers, where errors hide most easily
    for index in (0, 5, model.theta.size - 1, model.theta.size - 3):
        e = np.zeros(model.theta.size)
        e[index] = 1.0
        numeric = directional_derivative(loss, model.theta, e)
        assert relative_error(analytic[index], numeric) < 1e-5
