"""uint8 pixels as network input (ops/pixels.py): the same numbers as the float batch, bit for bit."""
import numpy as np
import pytest
from numba import njit

from engine.model import ModelConfig, build_model
from imagedata.batching import gather_scaled
from ops import block
from ops.numba_direct import FASTMATH
from ops.pixels import PixelRows, input_value, pixels_to_float


def _values(pixels, like):
    out = np.empty(pixels.size, like.dtype)
    for i in range(pixels.size):
        out[i] = input_value(pixels[i], like)
    return out


_kernel_values = njit(_values)
# compiled with the conv kernels' fast-math flags (reassociation): the exact float32 quotient must
# not be simplified into the plain product with the reciprocal, which is wrong for 126 pixels
_fastmath_kernel_values = njit(fastmath=FASTMATH)(_values)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_value_of_every_pixel_is_the_division(dtype):
    # the kernels compute the definition: the same value for all 256 pixels
    pixels = np.arange(256, dtype=np.uint8)
    expected = pixels.astype(dtype) / dtype(255)
    assert np.array_equal(_kernel_values(pixels, np.empty(1, dtype)), expected)
    assert np.array_equal(_fastmath_kernel_values(pixels, np.empty(1, dtype)), expected)
    assert np.array_equal([input_value(p, np.empty(1, dtype)) for p in pixels], expected)  # in Python
    assert np.array_equal(pixels_to_float(pixels, dtype), expected)
    floats = np.linspace(0, 1, 7).astype(dtype)
    assert pixels_to_float(floats, dtype) is floats


# (N, C, O, S): the direct kernels (3 channels, odd size), and the Winograd path (16 channels)
@pytest.mark.parametrize("shape", [(3, 3, 4, 20), (2, 3, 5, 9), (2, 16, 4, 8)])
@pytest.mark.parametrize("kernels", ["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_on_pixels_equals_block_on_their_floats(shape, kernels, dtype):
    n, c, o, s = shape
    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 256, (n, c, s, s), dtype=np.uint8)
    w = (0.3 * rng.standard_normal((o, c, 3, 3))).astype(dtype)
    b = (0.1 * rng.standard_normal(o)).astype(dtype)
    floats = pixels.astype(dtype) / dtype(255)
    y, code = block.conv_relu_pool_forward(pixels, w, b, kernels=kernels)
    y_ref, code_ref = block.conv_relu_pool_forward(floats, w, b, kernels=kernels)
    assert y.dtype == dtype and np.array_equal(y, y_ref) and np.array_equal(code, code_ref)
    gy = rng.standard_normal(y.shape).astype(dtype)
    _, gw, gb = block.conv_relu_pool_backward(pixels, w, code, gy, need_gx=False, kernels=kernels)
    _, gw_ref, gb_ref = block.conv_relu_pool_backward(floats, w, code, gy, need_gx=False, kernels=kernels)
    assert np.array_equal(gw, gw_ref) and np.array_equal(gb, gb_ref)


@pytest.mark.parametrize("kernels,stack_blocks", [("fast", True), ("fast", False), ("reference", True)])
def test_training_step_on_pixels_equals_the_float_batch(kernels, stack_blocks):
    # the photos named by index in a read-only array (as in the memory-mapped cache), their uint8
    # copy, and the float32 batch: the same loss, accuracy, every gradient entry and evaluation
    config = ModelConfig(image_size=32)
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8)
    images.setflags(write=False)
    labels = (np.arange(10) % 2).astype(np.float32)
    indices = [7, 2, 2, 9]
    results = []
    for x in (PixelRows(images, indices), images[indices], gather_scaled(images, indices)):
        model = build_model(config, seed=1, kernels=kernels, stack_blocks=stack_blocks)
        loss, correct = model.loss_and_grad(x, labels[indices])
        results.append((loss, correct, model.grad.copy(), model.evaluate(x, labels[indices], batch_size=3)))
    for loss, correct, grad, scores in results[1:]:
        assert (loss, correct, scores) == results[0][:2] + results[0][3:]
        assert np.array_equal(grad, results[0][2])


def test_pixel_rows_name_photos_and_copy_them_only_on_request():
    images = np.random.default_rng(0).integers(0, 256, (6, 3, 4, 5), dtype=np.uint8)
    rows = PixelRows(images, [5, 0, 5])
    assert rows.source is images and rows.shape == (3, 3, 4, 5) and len(rows) == 3 and rows.dtype == np.uint8
    batch = rows.gather()
    assert batch.dtype == np.uint8 and batch.flags.c_contiguous
    assert np.array_equal(batch, np.stack([images[5], images[0], images[5]]))
    assert np.array_equal(np.asarray(rows), batch)
    assert np.array_equal(np.asarray(rows, dtype=np.float32), batch.astype(np.float32))
    assert np.array_equal(rows[1:].gather(), np.stack([images[0], images[5]]))
    assert np.array_equal(pixels_to_float(rows, np.float32), batch.astype(np.float32) / np.float32(255))
    with pytest.raises(TypeError, match="slices"):
        rows[0]
    for bad in ([6], [-1]):
        with pytest.raises(IndexError, match="out of range"):
            PixelRows(images, bad)


@pytest.mark.parametrize("stack_blocks", [True, False])
def test_fast_model_hands_the_pixels_themselves_to_its_first_block(monkeypatch, stack_blocks):
    from ops import block_numba
    seen = []
    for name in ("conv_relu_pool_forward", "stack_forward"):
        forward = getattr(block_numba, name)
        monkeypatch.setattr(block_numba, name, lambda x, *a, f=forward, **k: seen.append(x.dtype) or f(x, *a, **k))
    model = build_model(ModelConfig(image_size=32), seed=1, kernels="fast", stack_blocks=stack_blocks)
    model.loss_and_grad(np.zeros((2, 3, 32, 32), np.uint8), np.array([0.0, 1.0], np.float32))
    assert len(seen) == (3 if stack_blocks else 5)  # conv1-3 as one stack, then conv4 and conv5
    assert seen[0] == np.uint8 and all(dtype == np.float32 for dtype in seen[1:])


@pytest.mark.parametrize("stack_blocks", [True, False])
def test_photos_named_by_index_reach_the_stack_uncopied_and_a_single_block_gathered_once(monkeypatch,
                                                                                      stack_blocks):
    from ops import block_numba
    seen = []
    for name in ("conv_relu_pool_forward", "conv_relu_pool_backward", "stack_forward", "stack_backward"):
        kernel = getattr(block_numba, name)
        monkeypatch.setattr(block_numba, name, lambda x, *a, f=kernel, **k: seen.append(x) or f(x, *a, **k))
    images = np.random.default_rng(2).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    model = build_model(ModelConfig(image_size=32), seed=1, kernels="fast", stack_blocks=stack_blocks)
    model.loss_and_grad(PixelRows(images, [4, 1]), np.array([0.0, 1.0], np.float32))
    first = [x for x in seen if x.shape[1] == 3]  # the first block's input, forward and backward
    assert len(first) == 2 and first[0] is first[1]
    if stack_blocks:
        assert isinstance(first[0], PixelRows) and first[0].source is images
    else:
        assert isinstance(first[0], np.ndarray) and np.array_equal(first[0], images[[4, 1]])


def test_models_on_other_kernels_convert_the_pixels_once_before_the_first_layer(monkeypatch):
    import engine.model as model_module
    calls = []
    convert = model_module.pixels_to_float
    monkeypatch.setattr(model_module, "pixels_to_float", lambda x, d: calls.append(x.dtype) or convert(x, d))
    x, y = np.zeros((2, 3, 32, 32), np.uint8), np.array([0.0, 1.0], np.float32)
    for kernels in ("fast", "reference"):
        build_model(ModelConfig(image_size=32), seed=1, kernels=kernels).loss_and_grad(x, y)
    assert calls == [np.uint8]  # fast: the first block reads the pixels; reference: converted once here
