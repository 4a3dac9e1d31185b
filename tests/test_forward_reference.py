"""The study's whole net, forward, against definitions that share no code with the engine.

Finite differences only prove a backward consistent with its own forward; these tests pin the
forward itself: (1) the real 128-px net with the real filter counts against a naive float64
definition written from the article's description (shift-and-add convolution, explicit NCHW
flatten); (2) hand-built weights whose every layer output is known in closed form.
"""
import numpy as np
import pytest

from engine.model import ModelConfig, build_model
from engine.tensor import Tensor, no_grad

STUDY = ModelConfig()  # 128 px, filters 4, 8, 16, 32, 64, dense 256, 256, 1


def tensors_of(theta, table):
    """name -> array, cut from the flat vector by the layer table's offsets and shapes."""
    return {row["name"]: np.asarray(theta[row["offset"]:row["offset"] + row["size"]],
                                    dtype=np.float64).reshape(row["shape"]) for row in table}


def naive_conv_same(x, w, b):
    """3x3 'same' convolution (cross-correlation, as every framework) by shift and add: one
    zero-padded shifted copy of the input per kernel offset, weighted and summed."""
    n, c, h, wd = x.shape
    k = w.shape[2]
    r = k // 2
    padded = np.zeros((n, c, h + 2 * r, wd + 2 * r))
    padded[:, :, r:r + h, r:r + wd] = x
    y = np.zeros((n, w.shape[0], h, wd)) + b[None, :, None, None]
    for di in range(k):
        for dj in range(k):
            shifted = padded[:, :, di:di + h, dj:dj + wd]
            y += np.einsum("nchw,oc->nohw", shifted, w[:, :, di, dj])
    return y


def naive_pool(x):
    """2x2 max pooling, stride 2, odd rows and columns dropped."""
    n, c, h, wd = x.shape
    h2, w2 = h // 2, wd // 2
    out = np.full((n, c, h2, w2), -np.inf)
    for di in range(2):
        for dj in range(2):
            out = np.maximum(out, x[:, :, di:2 * h2:2, dj:2 * w2:2])
    return out


def naive_flatten_nchw(x):
    """features[n, (c * H + h) * W + w] = x[n, c, h, w], written out element by element."""
    n, c, h, wd = x.shape
    out = np.empty((n, c * h * wd))
    for ci in range(c):
        for hi in range(h):
            for wi in range(wd):
                out[:, (ci * h + hi) * wd + wi] = x[:, ci, hi, wi]
    return out


def naive_logits(theta, table, x, config=STUDY):
    """The article's net in float64: 5 x (conv 3x3 same, ReLU, maxpool 2x2), flatten NCHW,
    dense ReLU, dense ReLU, dense -> one logit per image."""
    p = tensors_of(theta, table)
    a = np.asarray(x, dtype=np.float64)
    for i in range(1, len(config.filters) + 1):
        a = naive_pool(np.maximum(naive_conv_same(a, p[f"conv{i}.weight"], p[f"conv{i}.bias"]), 0))
    a = naive_flatten_nchw(a)
    n_dense = len(config.dense) + 1
    for i in range(1, n_dense + 1):
        a = a @ p[f"dense{i}.weight"].T + p[f"dense{i}.bias"]
        if i < n_dense:
            a = np.maximum(a, 0)
    return a.reshape(-1)


def engine_logits(model, x):
    with no_grad():
        return np.asarray(model.forward(Tensor(np.asarray(x, model.theta.dtype))).data,
                          dtype=np.float64).reshape(-1)


@pytest.mark.parametrize("kernels,dtype,rtol", [("reference", "float64", 1e-10),
                                                ("fast", "float64", 1e-10),
                                                ("fast", "float32", 1e-4)])
def test_study_net_forward_matches_a_naive_definition(kernels, dtype, rtol):
    model = build_model(STUDY, seed=3, dtype=dtype, kernels=kernels)
    rng = np.random.default_rng(11)
    for row in model.table:  # non-zero biases, so a misplaced bias shows
        if row["role"] == "bias":
            model.theta[row["offset"]:row["offset"] + row["size"]] = rng.uniform(-0.05, 0.05, row["size"])
    x = rng.random((3, 3, 128, 128))
    want = naive_logits(model.theta, model.table, x)
    got = engine_logits(model, x)
    assert np.all(np.abs(want) > 1e-3)  # a net whose logits all vanished would prove nothing
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def position_code(size, channels=3):
    """x[c, h, w] = 1 + (c * S + h) * S + w: a distinct positive integer per pixel, growing along
    every axis, so that a 2x2 max always picks the window's bottom-right pixel."""
    c, h, w = np.meshgrid(np.arange(channels), np.arange(size), np.arange(size), indexing="ij")
    return (1 + (c * size + h) * size + w).astype(np.float64)


@pytest.mark.parametrize("kernels,stack_blocks", [("reference", True), ("fast", True), ("fast", False)])
def test_every_layer_of_a_hand_built_net_gives_known_values(kernels, stack_blocks):
    # Each conv copies its first 3 channels through (centre tap 1, biases 0) and leaves the others 0;
    # after pooling stage L the map is x[c, 2^L i + 2^L - 1, 2^L j + 2^L - 1] for c < 3, else 0.
    # dense1 picks features 0..255 (one-hot rows), dense2 is the identity, dense3 picks feature f.
    model = build_model(STUDY, seed=0, kernels=kernels, stack_blocks=stack_blocks)
    model.theta[...] = 0
    rows = {row["name"]: row for row in model.table}

    def tensor(name):  # a view into theta, placed by the layer table
        row = rows[name]
        return model.theta[row["offset"]:row["offset"] + row["size"]].reshape(row["shape"])
    for i in range(1, 6):
        for c in range(3):
            tensor(f"conv{i}.weight")[c, c, 1, 1] = 1.0
    tensor("dense1.weight")[np.arange(256), np.arange(256)] = 1.0
    tensor("dense2.weight")[np.arange(256), np.arange(256)] = 1.0
    picked = 2 * 16 + 1 * 4 + 3  # channel 2, row 1, column 3 of the 4 x 4 map
    tensor("dense3.weight")[0, picked] = 1.0
    tensor("dense3.bias")[0] = 0.5
    code = position_code(128)
    a = Tensor(code[None].astype(np.float32))
    stage, outputs = 0, []
    with no_grad():
        for layer in model.layers:
            a = layer(a)
            outputs.append(np.asarray(a.data, dtype=np.float64))
    stages = []  # the fast model's first layer is conv1-conv3 as one stack: its output is stage 3
    for o in outputs:
        if o.ndim == 4 and o.shape[2] < 128:
            stage = (128 // o.shape[2]).bit_length() - 1
            stages.append(stage)
            step = 2 ** stage
            want = np.zeros(o.shape[1:])
            want[:3] = code[:, step - 1::step, step - 1::step]
            np.testing.assert_array_equal(o[0], want, err_msg=f"pooling stage {stage}")
    stacked = kernels == "fast" and stack_blocks
    assert sorted(set(stages)) == ([3, 4, 5] if stacked else [1, 2, 3, 4, 5]) and stages == sorted(stages)
    features = outputs[len(outputs) - 6]  # flatten, then dense ReLU dense ReLU dense
    assert features.shape == (1, 1024)
    known = np.zeros(1024)
    for c in range(3):
        for i in range(4):
            for j in range(4):
                known[c * 16 + i * 4 + j] = 1 + (c * 128 + 32 * i + 31) * 128 + 32 * j + 31
    np.testing.assert_array_equal(features[0], known)
    np.testing.assert_array_equal(outputs[-3][0], known[:256])  # dense2 output (before its ReLU)
    assert outputs[-1][0, 0] == known[picked] + 0.5
