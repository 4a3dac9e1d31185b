"""Analyses on the engine's real model (image size 32, float64, reference kernels: tiny and fast)."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

import analysis.cli
import engine.model as engine_model
from analysis.interpolation import interpolate
from analysis.objective import ModelObjective, to_unit_range
from test_analysis_runs import make_run



def tiny_model(seed=0):
    return engine_model.build_model(engine_model.ModelConfig(image_size=32), seed=seed,
                                    dtype="float64", kernels="reference")


def tiny_data(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
            (rng.random(n) < 0.5).astype(np.float32))


def test_chunked_objective_equals_one_full_batch():
    model = tiny_model()
    x, y = tiny_data(7, 0)
    theta = model.theta.copy() + 0.01
    objective = ModelObjective(model, x, y, batch_size=3)  # chunks of 3, 3 and 1
    loss, grad = objective.value_and_grad(theta)
    model.theta[...] = theta
    full_loss, _ = model.loss_and_grad(to_unit_range(x), y)
    assert loss == pytest.approx(full_loss, rel=1e-12)
    np.testing.assert_allclose(grad, model.grad, rtol=1e-10, atol=1e-14)
    assert objective.evaluate(theta)[0] == pytest.approx(full_loss, rel=1e-12)


def test_objective_gradient_matches_central_differences():
    model = tiny_model(3)
    x, y = tiny_data(5, 1)
    objective = ModelObjective(model, x, y, batch_size=2)
    theta = model.theta.copy()
    v = np.random.default_rng(2).standard_normal(theta.size)
    v /= np.linalg.norm(v)  # a tiny step in parameter space, so no ReLU or max-pool kink is crossed
    h = 1e-6
    numeric = (objective.value(theta + h * v) - objective.value(theta - h * v)) / (2 * h)
    analytic = objective.value_and_grad(theta)[1] @ v
    assert analytic == pytest.approx(numeric, rel=1e-6)


def test_interpolation_endpoints_reproduce_each_models_own_loss():
    small, large = tiny_model(0), tiny_model(1)
    x, y = tiny_data(6, 2)
    xv, yv = tiny_data(4, 3)
    own = {}
    for name, m in (("small", small), ("large", large)):
        own[name] = (m.evaluate(to_unit_range(x), y), m.evaluate(to_unit_range(xv), yv))
    probe = tiny_model(5)
    objectives = {"train": ModelObjective(probe, x, y, 4), "val": ModelObjective(probe, xv, yv, 4)}
    result = interpolate(small.theta.copy(), large.theta.copy(), objectives,
                         alphas=np.linspace(-1, 2, 4))
    assert result["alpha"] == [-1.0, 0.0, 1.0, 2.0]
    for index, name in ((1, "small"), (2, "large")):
        for split, (loss, acc) in zip(("train", "val"), own[name]):
            assert result[f"{split}_loss"][index] == pytest.approx(loss, rel=1e-12)
            assert result[f"{split}_acc"][index] == pytest.approx(acc)


def test_cli_all_on_real_model(tmp_path, monkeypatch):
    model = tiny_model(0)
    table = model.table
    thetas = {}
    for name, seed in (("small", 0), ("large", 1)):
        init = tiny_model(seed).theta.astype(np.float32)
        rng = np.random.default_rng(seed)
        thetas[name] = {"init": init, "best": init + 0.01 * rng.standard_normal(init.size),
                        "final": init + 0.02 * rng.standard_normal(init.size)}
        make_run(tmp_path / name, table, thetas=thetas[name])
    x, y = tiny_data(16, 4)
    xv, yv = tiny_data(8, 5)
    dataset = SimpleNamespace(train_x=x, train_y=y, val_x=xv, val_y=yv)
    monkeypatch.setattr(analysis.cli, "load_run_dataset", lambda run, data, cache, log: dataset)
    out = tmp_path / "out"
    code = analysis.cli.main(
        ["all", str(tmp_path / "small"), str(tmp_path / "large"), "--out", str(out), "--quiet",
         "--kernels", "reference", "--dtype", "float64", "--points", "4", "--grid", "3",
         "--maxiter", "2", "--subspace-dim", "4", "--b-small", "2", "--b-big", "8",
         "--batches", "2", "--iterations", "3", "--competition-examples", "8"])
    assert code == 0
    for name in ("geometry", "interpolate", "sharpness", "surface", "noise", "hessian",
                 "competition"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    results = {name: json.loads((out / f"{name}.json").read_text())
               for name in ("interpolate", "sharpness", "surface", "competition")}

    def own_loss(theta, xs, ys):
        probe = tiny_model()
        probe.theta[...] = theta.astype(np.float32)
        return probe.evaluate(to_unit_range(xs), ys)[0]

    small_train = own_loss(thetas["small"]["best"], x, y)
    assert results["interpolate"]["train_loss"][1] == pytest.approx(small_train, rel=1e-12)
    assert results["interpolate"]["val_loss"][2] == pytest.approx(
        own_loss(thetas["large"]["best"], xv, yv), rel=1e-12)
    first = results["sharpness"]["runs"][0]
    for space in ("full", "subspace"):
        s = first["spaces"][space]
        assert s["loss"] == pytest.approx(small_train, rel=1e-12)
        assert s["loss_max"] >= s["loss"]
        assert s["phi"] == pytest.approx(100 * (s["loss_max"] - s["loss"]) / (1 + s["loss"]))
    assert first["spaces"]["subspace"]["dimension"] == 4
    assert results["surface"]["runs"][0]["loss"][1][1] == pytest.approx(small_train, rel=1e-12)
    assert results["competition"]["runs"][0]["by_batch"]["1"]["mean"] == pytest.approx(1.0)
    assert sorted(int(b) for b in results["competition"]["runs"][0]["by_batch"]) == [1, 2, 4, 8]
