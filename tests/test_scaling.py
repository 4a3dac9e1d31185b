"""The scaling model (bench/scaling.py): its fits recover known terms from synthetic timings, its
collective cost matches a message-by-message simulation of the algorithms, and its epoch time
matches a step-by-step sum over the Trainer's batches and shards."""
import math

import numpy as np
import pytest
from conftest import ROOT  # noqa: F401  (puts the project on sys.path)

from bench import scaling
from parallel import shard_bounds

SWEEP = (4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20)


def simulated_reduce_bcast(message, ranks, alpha, beta):
    """Seconds of Reduce + Bcast on a power-of-two rank count, summed round by round: every round
    costs one latency plus its bytes (the largest message any rank sends in it)."""
    rounds = int(math.log2(ranks))
    seconds = 0.0
    piece = message
    for _ in range(rounds):  # reduce-scatter by recursive halving: send half of what is left
        piece /= 2
        seconds += alpha + piece * beta
    for k in range(rounds):  # binomial gather of the reduced pieces onto the root
        seconds += alpha + message / ranks * 2 ** k * beta
    for k in range(rounds):  # binomial scatter of the root's vector
        seconds += alpha + message / 2 ** (k + 1) * beta
    for _ in range(ranks - 1):  # ring allgather: one piece per round
        seconds += alpha + message / ranks * beta
    return seconds


def test_collective_counts_match_the_simulated_algorithms():
    for ranks in (2, 4, 8, 16, 64):
        model = scaling.StepModel(0, 0, 0, alpha=3e-6, beta=2e-10, flag_seconds=0, eval_per_example=0,
                                  fixed_seconds=0, message_bytes=1_412_644)
        expected = simulated_reduce_bcast(1_412_644, ranks, 3e-6, 2e-10)
        assert model.sum_seconds(ranks) == pytest.approx(expected, rel=1e-12)


def test_fit_collective_recovers_alpha_and_beta_from_noisy_sweeps():
    rng = np.random.default_rng(1)
    alpha, beta = 7e-6, 4e-10
    sizes, ranks, seconds = [], [], []
    for p in (2, 4, 8):
        for m in SWEEP:
            for _ in range(5):
                sizes.append(m)
                ranks.append(p)
                seconds.append(simulated_reduce_bcast(m, p, alpha, beta) * rng.normal(1.0, 0.03))
    fitted_alpha, fitted_beta = scaling.fit_collective(sizes, ranks, seconds)
    assert fitted_alpha == pytest.approx(alpha, rel=0.05)
    assert fitted_beta == pytest.approx(beta, rel=0.05)


def test_fit_compute_recovers_overhead_and_per_example_cost():
    rng = np.random.default_rng(2)
    t0, c = 4e-3, 5e-4
    batches = np.repeat([8, 16, 32, 64, 128, 256], 6)
    seconds = (t0 + c * batches) * rng.normal(1.0, 0.03, batches.size)
    fitted_t0, fitted_c = scaling.fit_compute(batches, seconds)
    assert fitted_t0 == pytest.approx(t0, rel=0.05)
    assert fitted_c == pytest.approx(c, rel=0.05)


def test_fit_spread_recovers_the_rank_to_rank_spread_not_the_step_to_step_drift():
    rng = np.random.default_rng(3)
    sigma = 0.08
    drift = rng.lognormal(0.0, 0.5, size=(2000, 1))  # the whole machine speeds up and slows down
    times = 0.02 * drift * rng.normal(1.0, sigma, size=(2000, 4))
    assert scaling.fit_spread(times) == pytest.approx(sigma, rel=0.05)
    assert scaling.fit_spread(times[:, :1]) == 0.0


def test_expected_max_normal_closed_forms():
    assert scaling.expected_max_normal(1) == 0.0
    assert scaling.expected_max_normal(2) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-9)
    assert scaling.expected_max_normal(3) == pytest.approx(3 / (2 * math.sqrt(math.pi)), rel=1e-9)
    four = 3 / (2 * math.sqrt(math.pi)) * (1 + 2 / math.pi * math.asin(1 / 3))
    assert scaling.expected_max_normal(4) == pytest.approx(four, rel=1e-9)


def test_epoch_seconds_sums_the_trainers_steps_and_shards():
    model = scaling.StepModel(step_overhead=2e-3, per_example=3e-4, spread=0.1, alpha=5e-6,
                              beta=1e-9, flag_seconds=2e-5, eval_per_example=1e-4,
                              fixed_seconds=0.05, message_bytes=600_000)
    n_train, n_val, batch, ranks = 1010, 301, 100, 3  # uneven shards, a short last step
    straggle = 1 + 0.1 * scaling.expected_max_normal(ranks)
    total = 0.0
    for start in range(0, n_train, batch):  # the Trainer's slices; the largest shard sets the pace
        size = min(batch, n_train - start)
        largest = max(b - a for a, b in (shard_bounds(size, r, ranks) for r in range(ranks)))
        total += (2e-3 + 3e-4 * largest) * straggle + model.sum_seconds(ranks) + 2 * 2e-5
    largest_val = max(b - a for a, b in (shard_bounds(n_val, r, ranks) for r in range(ranks)))
    total += 1e-4 * largest_val + 0.05
    assert model.epoch_seconds(n_train, n_val, batch, ranks) == pytest.approx(total, rel=1e-12)


def test_fit_from_epochs_recovers_a_device_from_whole_epoch_times():
    t0, c, n_train, n_val = 9e-3, 3.5e-4, 18610, 4652
    epochs = {}
    for batch in (32, 64, 256):
        steps = [min(batch, n_train - s) for s in range(0, n_train, batch)]
        epochs[batch] = sum(t0 + c * b for b in steps) + n_val * c / 3
    fitted_t0, fitted_c = scaling.fit_from_epochs(epochs, n_train, n_val, eval_ratio=1 / 3)
    assert fitted_t0 == pytest.approx(t0, rel=0.05)
    assert fitted_c == pytest.approx(c, rel=0.05)


def test_break_even_is_where_doubling_the_ranks_stops_shortening_the_step():
    model = scaling.StepModel(step_overhead=1e-3, per_example=2e-4, spread=0.05, alpha=2e-5,
                              beta=3.2e-10, flag_seconds=4e-5, eval_per_example=0, fixed_seconds=0,
                              message_bytes=1_412_644)
    for ranks in (2, 8, 32):
        b = scaling.break_even_per_rank_batch(model, ranks)
        assert model.step_seconds(2 * b, ranks) > model.step_seconds(b, 2 * ranks)  # pays above
        assert model.step_seconds(b / 2, ranks) < model.step_seconds(b / 4, 2 * ranks)  # not below


def synthetic_job(model, ranks, batches, n_train, n_val, rng):
    """What one measurement job writes, made from known terms instead of timings."""
    compute = []
    for b in sorted({math.ceil(B / ranks) for B in batches}):
        mean = model.compute_seconds(b)
        compute.append({"per_rank_batch": b,
                        "step_seconds": (mean * rng.normal(1.0, model.spread, (40, ranks))).tolist()})
    sweep = [{"bytes": m, "seconds": simulated_reduce_bcast(m, ranks, model.alpha, model.beta)}
             for m in SWEEP] if ranks > 1 else []
    shard = math.ceil(n_val / ranks)
    epochs = []
    for B in batches:  # the "measured" epoch: the step-by-step sum the Trainer would take
        steps = [min(B, n_train - s) for s in range(0, n_train, B)]
        seconds = sum(model.step_seconds(math.ceil(b / ranks), ranks) for b in steps)
        epochs.append({"batch": B, "epoch_seconds": seconds + model.eval_per_example * shard + 0.03})
    return {"ranks": ranks, "threads_per_rank": 1, "message_bytes": model.message_bytes,
            "sweep": sweep, "flag_seconds": model.flag_seconds, "compute": compute,
            "fixed": {"eval_examples": shard, "eval_seconds": model.eval_per_example * shard,
                      "data_seconds": 0.01, "checkpoint_seconds": 0.02}, "epochs": epochs}


def test_report_fits_checks_and_writes_from_a_synthetic_measurement(tmp_path, monkeypatch):
    import json

    import bench.common
    monkeypatch.setattr(bench.common, "RESULTS", tmp_path)
    monkeypatch.setattr(scaling, "RESULTS", tmp_path)
    rng = np.random.default_rng(4)
    batches, n_train, n_val = [32, 64, 128, 256], 2048, 512
    jobs = []
    for ranks in (1, 2, 4):
        truth = scaling.StepModel(step_overhead=3e-3, per_example=5e-4 * ranks,
                                  spread=0.0 if ranks == 1 else 0.06, alpha=20e-6, beta=1e-9,
                                  flag_seconds=50e-6 if ranks > 1 else 0.0, eval_per_example=2e-4,
                                  fixed_seconds=0.03, message_bytes=1_412_644)
        jobs.append(synthetic_job(truth, ranks, batches, n_train, n_val, rng))
    measurement = {"machine": {"cores_available": 2}, "kernels": "fast", "images": n_train,
                   "val_images": n_val, "image_size": 128, "epochs": 3,
                   "load_average_1min": [0.1, 0.2], "jobs": jobs}
    worst = scaling.report(measurement)
    assert worst < 0.05
    written = json.loads((tmp_path / "scaling.json").read_text())
    assert len(written["check"]) == 12
    assert written["fitted"][2]["model"]["per_example"] == pytest.approx(2e-3, rel=0.05)
    assert (tmp_path / "scaling.png").stat().st_size > 0
    assert "| 4 x 1 | 256 |" in (tmp_path / "scaling.md").read_text()


def test_bad_arguments_are_one_line_and_exit_2(capsys):
    assert scaling.main(["--ranks", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
