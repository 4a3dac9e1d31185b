"""Geometry and CLI behaviour on made-up run directories written into tmp_path."""
import json

import numpy as np
import pytest

from analysis.cli import main
from analysis.geometry import distance_from_init, run_geometry
from analysis.rundir import Run

TOY_ENTRIES = [("conv1.weight", "conv1", "conv", "weight", [4, 3, 3, 3]),
               ("conv1.bias", "conv1", "conv", "bias", [4]),
               ("dense1.weight", "dense1", "dense", "weight", [6, 10]),
               ("dense1.bias", "dense1", "dense", "bias", [6]),
               ("dense2.weight", "dense2", "dense", "weight", [1, 6]),
               ("dense2.bias", "dense2", "dense", "bias", [1])]


def make_table(entries=TOY_ENTRIES):
    table, offset = [], 0
    for name, layer, kind, role, shape in entries:
        size = int(np.prod(shape))
        table.append({"name": name, "layer": layer, "kind": kind, "role": role, "shape": shape,
                      "offset": offset, "size": size})
        offset += size
    return table


def make_run(path, table, seed=0, batch=32, lr=0.01, epochs=5, steps=40, thetas=None):
    """Write a run directory the way training does, with random (but known) contents."""
    rng = np.random.default_rng(seed)
    n = sum(row["size"] for row in table)
    path.mkdir(parents=True)
    if thetas is None:
        init = rng.standard_normal(n).astype(np.float32)
        thetas = {"init": init, "best": init + rng.standard_normal(n).astype(np.float32) * 0.1,
                  "final": init + rng.standard_normal(n).astype(np.float32) * 0.2}
    for kind, vector in thetas.items():
        np.save(path / f"theta_{kind}.npy", np.asarray(vector, dtype=np.float32))
    norms = rng.lognormal(-6, 1, steps).astype(np.float32)
    np.save(path / "update_norms.npy", norms)
    (path / "layers.json").write_text(json.dumps(table))
    (path / "config.json").write_text(json.dumps(
        {"args": {"batch": batch, "lr": lr, "image_size": 32, "data": None},
         "effective_lr": lr, "model": {"image_size": 32}}))
    metrics = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1), "dist_init": 0.1 * (e + 1),
                "epoch_distance": float(rng.uniform(0.01, 0.1))} for e in range(epochs)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (path / "status.json").write_text(json.dumps({"status": "finished", "best_epoch": 3}))
    return thetas, norms, metrics


def numpy_layer_distance(theta, init, table, layer):
    parts = [np.asarray(theta, float)[r["offset"]:r["offset"] + r["size"]]
             - np.asarray(init, float)[r["offset"]:r["offset"] + r["size"]]
             for r in table if r["layer"] == layer]
    return np.linalg.norm(np.concatenate(parts))


def test_distances_match_numpy_norms(tmp_path):
    table = make_table()
    thetas, norms, metrics = make_run(tmp_path / "run", table)
    result = run_geometry(Run(str(tmp_path / "run")))
    for kind in ("best", "final"):
        delta = thetas[kind].astype(float) - thetas["init"].astype(float)
        assert result[kind]["total"] == pytest.approx(np.linalg.norm(delta), rel=1e-12)
        for layer in ("conv1", "dense1", "dense2"):
            assert result[kind]["layers"][layer] == pytest.approx(
                numpy_layer_distance(thetas[kind], thetas["init"], table, layer), rel=1e-12)
    summary = result["update_norms"]
    assert summary["median"] == pytest.approx(float(np.median(norms.astype(float))), rel=1e-12)
    assert summary["count"] == len(norms) == sum(summary["hist"]["counts"])
    assert result["epoch_distance"] == [m["epoch_distance"] for m in metrics]
    assert result["epoch_distance_range"] == [min(result["epoch_distance"]),
                                              max(result["epoch_distance"])]
    assert result["batch"] == 32 and result["lr"] == 0.01


def test_layer_distances_square_sum_to_total():
    table = make_table()
    rng = np.random.default_rng(1)
    n = sum(r["size"] for r in table)
    d = distance_from_init(rng.standard_normal(n), rng.standard_normal(n), table)
    assert sum(v ** 2 for v in d["layers"].values()) == pytest.approx(d["total"] ** 2, rel=1e-12)


def test_cli_geometry_writes_json_and_png(tmp_path, capsys):
    table = make_table()
    small, _, _ = make_run(tmp_path / "small", table, seed=1, batch=32)
    large, _, _ = make_run(tmp_path / "large", table, seed=2, batch=256, lr=0.08)
    out = tmp_path / "out"
    code = main(["geometry", str(tmp_path / "small"), str(tmp_path / "large"), "--out", str(out),
                 "--quiet"])
    assert code == 0
    written = json.loads((out / "geometry.json").read_text())
    for run, thetas in zip(written["runs"], (small, large)):
        expected = np.linalg.norm(thetas["best"].astype(float) - thetas["init"].astype(float))
        assert run["best"]["total"] == pytest.approx(expected, rel=1e-12)
    assert [r["batch"] for r in written["runs"]] == [32, 256]
    assert (out / "geometry.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "geometry: wrote" in capsys.readouterr().out


def test_cli_missing_run_dir_is_one_line_error(tmp_path, capsys):
    code = main(["geometry", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: run directory not found")


def test_cli_missing_theta_file_names_it(tmp_path, capsys):
    make_run(tmp_path / "run", make_table())
    (tmp_path / "run" / "theta_init.npy").unlink()
    assert main(["geometry", str(tmp_path / "run"), "--quiet"]) == 2
    assert "theta_init.npy" in capsys.readouterr().err


def test_cli_interpolate_refuses_mismatched_models(tmp_path, capsys):
    make_run(tmp_path / "a", make_table())
    other = make_table(TOY_ENTRIES[:4] + [("dense2.weight", "dense2", "dense", "weight", [2, 6]),
                                          ("dense2.bias", "dense2", "dense", "bias", [2])])
    make_run(tmp_path / "b", other)
    assert main(["interpolate", str(tmp_path / "a"), str(tmp_path / "b"), "--quiet"]) == 2
    assert "different models" in capsys.readouterr().err


def test_cli_interpolate_needs_two_runs(tmp_path, capsys):
    make_run(tmp_path / "a", make_table())
    assert main(["interpolate", str(tmp_path / "a"), "--quiet"]) == 2
    assert "exactly two" in capsys.readouterr().err


def test_gather_grid_checks_coverage_on_one_rank():
    from analysis.cli import gather_grid
    from analysis.errors import AnalysisError
    from parallel import LocalCommunicator
    part = {"indices": [0, 1, 2, 3], "losses": [0.5, 0.25, 2.0, 1.0]}
    np.testing.assert_array_equal(gather_grid(part, 4, LocalCommunicator()), part["losses"])
    with pytest.raises(AnalysisError, match="not covered"):
        gather_grid({"indices": [0, 2], "losses": [1.0, 1.0]}, 4, LocalCommunicator())
