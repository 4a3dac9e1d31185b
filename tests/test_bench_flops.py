"""bench/flops.py against a count made independently from the built model's parameter shapes."""
import numpy as np
import pytest

from bench.flops import layer_flops, sgemm_gflops, step_flops
from engine.model import ModelConfig, build_model


def independent_count(config, batch, train):
    """Multiply-adds from the parameter table: a conv weight (O, C, k, k) is applied at every output
    position of its plane, a dense weight once per image; gradients repeat the forward work."""
    model = build_model(config, kernels="reference")
    plane, total = config.image_size ** 2, 0
    for entry in model.table:
        if entry["role"] != "weight":
            continue
        per_image = int(np.prod(entry["shape"])) * (plane if entry["kind"] == "conv" else 1)
        passes = 1 if not train else (2 if entry["name"] == "conv1.weight" else 3)
        total += 2 * batch * per_image * passes
        if entry["kind"] == "conv":
            plane //= 4
    return total


@pytest.mark.parametrize("size,train", [(128, True), (128, False), (64, True), (32, False)])
def test_step_flops_match_the_parameter_count(size, train):
    config = ModelConfig(image_size=size)
    assert step_flops(config, 7, train) == independent_count(config, 7, train)


def test_the_study_net_costs_what_the_docstring_says():
    config = ModelConfig(image_size=128)
    assert round(step_flops(config, 1, True) / 1e6, 2) == 37.36
    assert round(step_flops(config, 1, False) / 1e6, 2) == 13.63
    assert {p for layer, p, _ in layer_flops(config, 1) if layer == "conv1"} == {"forward", "weight grad"}


def test_sgemm_rate_is_a_positive_median_not_above_the_best():
    median, best = sgemm_gflops(size=64, repeats=3)
    assert 0 < median <= best
