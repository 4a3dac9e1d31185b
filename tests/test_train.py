"""The training loop: lr rules, learning, early stopping, exact resume, divergence, checkpoints."""
import errno
import json

import numpy as np
import pytest
from conftest import ArrayData, make_array_data

import storage.files
from engine.checkpoint import CheckpointError, load_checkpoint
from engine.model import ModelConfig, build_model
from storage.runfolder import RunFolder, RunFolderError, snapshot_epochs
from engine.schedule import lr_at_step, scaled_lr
from storage.files import StorageError, load_npy
from engine.train import Trainer, TrainConfig, epoch_permutation
from parallel import LocalCommunicator, shard_bounds

CONFIG = ModelConfig(image_size=32)


def make_trainer(tmp_path, data=None, name="run", **settings):
    settings = {"batch": 16, "lr": 0.05, "max_epochs": 2, "patience": 10, **settings}
    model = build_model(CONFIG, seed=1, kernels="reference")
    run_dir = RunFolder(tmp_path / name)
    run_dir.prepare({"args": settings}, resume=(tmp_path / name / "config.json").exists())
    return Trainer(model, data or make_array_data(60, 20), LocalCommunicator(), TrainConfig(**settings),
                   run_dir=run_dir, log=lambda *a: None)


def test_lr_scaling_rules_and_warmup():
    assert scaled_lr(0.01, 256, 32, "linear") == pytest.approx(0.08)
    assert scaled_lr(0.01, 128, 32, "sqrt") == pytest.approx(0.02)
    assert scaled_lr(0.01, 256, 32, "none") == 0.01
    # halfway through a 2-epoch warm-up of 10 steps per epoch: halfway from 0.01 to 0.08
    assert lr_at_step(0.01, 0.08, 2, 1, 0, 10) == pytest.approx(0.045)
    assert lr_at_step(0.01, 0.08, 2, 2, 0, 10) == 0.08
    assert lr_at_step(0.01, 0.08, 0, 0, 0, 10) == 0.08


def test_shards_cover_the_batch_exactly_once():
    for count in (0, 1, 3, 30, 31, 256):
        for size in (1, 2, 3, 4):
            bounds = [shard_bounds(count, r, size) for r in range(size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_permutation_depends_on_seed_and_epoch_only():
    assert np.array_equal(epoch_permutation(3, 5, 100), epoch_permutation(3, 5, 100))
    assert not np.array_equal(epoch_permutation(3, 5, 100), epoch_permutation(3, 6, 100))
    assert sorted(epoch_permutation(3, 5, 100)) == list(range(100))


def test_training_learns_and_records_a_complete_run(tmp_path):
    trainer = make_trainer(tmp_path, max_epochs=4)
    moves = []  # |theta after - theta before| of every step, measured on the vectors themselves
    original_step = trainer.optimizer.step

    def measured_step(lr):
        before = trainer.model.theta.astype(np.float64)
        norm = original_step(lr)
        moves.append(np.linalg.norm(trainer.model.theta.astype(np.float64) - before))
        return norm
    trainer.optimizer.step = measured_step
    assert trainer.run() == "finished"
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    theta_init, theta_final = load_npy(run / "theta_init.npy"), load_npy(run / "theta_final.npy")
    norms = load_npy(run / "update_norms.npy")
    assert len(norms) == 4 * 4  # 60 images in batches of 16
    assert records[-1]["dist_init"] == pytest.approx(np.linalg.norm(theta_final - theta_init), rel=1e-5)
    per_layer = records[-1]["dist_init_layers"]
    assert np.sqrt(sum(v * v for v in per_layer.values())) == pytest.approx(records[-1]["dist_init"])
    # each recorded update norm is the distance theta actually moved in that step (up to the
    # float32 rounding of theta), and the first epoch's steps add up to at least its distance
    np.testing.assert_allclose(norms, moves, rtol=1e-3)
    assert norms[:4].sum() >= records[0]["dist_init"] * (1 - 1e-6)
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished" and status["best_epoch"] == min(
        records, key=lambda r: r["val_loss"])["epoch"]


def test_early_stopping_keeps_the_best_weights(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, max_epochs=10, patience=2)
    scripted = iter([(0.5, 0.6), (0.4, 0.7), (0.45, 0.7), (0.46, 0.7), (0.3, 0.9)])
    snapshots = []
    original = trainer.evaluate_validation

    def fake_validation():
        original()
        snapshots.append(trainer.model.theta.copy())
        return next(scripted)
    monkeypatch.setattr(trainer, "evaluate_validation", fake_validation)
    assert trainer.run() == "early_stopped"
    assert trainer.epoch == 4 and trainer.best["epoch"] == 2
    assert np.array_equal(load_npy(tmp_path / "run" / "theta_best.npy"), snapshots[1])


@pytest.mark.parametrize("optimizer", [{}, {"momentum": 0.9, "weight_decay": 1e-3}],
                         ids=["plain", "momentum_weight_decay"])
def test_interrupted_run_resumes_bit_identically(tmp_path, optimizer):
    reference = make_trainer(tmp_path, name="whole", max_epochs=3, **optimizer)
    reference.run()
    interrupted = make_trainer(tmp_path, name="cut", max_epochs=3, **optimizer)
    original_step = interrupted.train_step

    def step_then_stop(indices):
        ok = original_step(indices)
        if interrupted.global_step == 5:  # mid-epoch 2
            interrupted.stop_requested = True
        return ok
    interrupted.train_step = step_then_stop
    assert interrupted.run() == "interrupted"
    resumed = make_trainer(tmp_path, name="cut", max_epochs=3, **optimizer)
    resumed.restore(tmp_path / "cut" / "checkpoint.npz")
    assert (resumed.epoch, resumed.step_in_epoch) == (1, 2)
    assert resumed.run() == "finished"
    for name in ("theta_final", "theta_best", "update_norms"):
        assert np.array_equal(load_npy(tmp_path / "whole" / f"{name}.npy"),
                              load_npy(tmp_path / "cut" / f"{name}.npy"))
    strip = lambda r: {k: v for k, v in r.items() if "seconds" not in k}  # noqa: E731
    whole = [strip(json.loads(x)) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    cut = [strip(json.loads(x)) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert whole == cut


def test_snapshot_is_saved_once_at_the_first_crossing(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, snapshot_levels=(0.65, 0.6, 0.5))
    saved = []
    original_save = trainer.run_dir.save_theta
    monkeypatch.setattr(trainer.run_dir, "save_theta",
                        lambda kind, array: (saved.append(kind), original_save(kind, array)))
    vectors = []
    for epoch, loss in enumerate([0.70, 0.64, 0.66, 0.58], 1):  # crosses 0.65 at 2, 0.6 at 4
        trainer.model.theta[...] = epoch  # a different, recognisable vector each epoch
        vectors.append(trainer.model.theta.copy())
        record = {"epoch": epoch, "train_loss": loss}
        trainer.metrics.append(record)
        trainer.save_snapshots(record)
    assert saved == ["loss0.65", "loss0.6"]  # 0.66 and 0.58 re-cross 0.65: no resave
    assert np.array_equal(load_npy(tmp_path / "run" / "theta_loss0.65.npy"), vectors[1])
    assert np.array_equal(load_npy(tmp_path / "run" / "theta_loss0.6.npy"), vectors[3])
    assert not (tmp_path / "run" / "theta_loss0.5.npy").exists()
    assert snapshot_epochs(trainer.metrics, trainer.config.snapshot_levels) == {"0.65": 2, "0.6": 4}


# levels dense enough that the tiny run, still near ln 2 = 0.693, crosses some in several epochs
DENSE_LEVELS = [float(v) for v in np.round(np.arange(0.710, 0.680, -0.001), 3)]


def snapshot_files(folder):
    """{file name: bytes} of every equal-loss snapshot in a run folder."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("theta_loss*.npy"))}


def test_snapshots_hold_the_epoch_end_weights_and_survive_a_kill_exactly(tmp_path):
    whole = make_trainer(tmp_path, name="whole", max_epochs=4, snapshot_levels=DENSE_LEVELS)
    epoch_end = []
    record_snapshot = whole.save_snapshots

    def keep_epoch_end(record):
        epoch_end.append(whole.model.theta.copy())
        record_snapshot(record)
    whole.save_snapshots = keep_epoch_end
    assert whole.run() == "finished"
    losses = [m["train_loss"] for m in whole.metrics]
    status = json.loads((tmp_path / "whole" / "status.json").read_text())
    # independent: the first epoch below each level, from the loss curve alone
    expected = {f"{level:g}": next(e for e, loss in enumerate(losses, 1) if loss < level)
                for level in DENSE_LEVELS if min(losses) < level}
    assert status["snapshots"] == expected and len(set(expected.values())) >= 2
    files = snapshot_files(tmp_path / "whole")
    assert sorted(files) == sorted(f"theta_loss{level}.npy" for level in expected)
    for level, epoch in expected.items():
        assert np.array_equal(load_npy(tmp_path / "whole" / f"theta_loss{level}.npy"),
                              epoch_end[epoch - 1])
    # killed between saving epoch 3's snapshots and its checkpoint (nothing else written): the
    # resumed run redoes epoch 3 from epoch 2's checkpoint
    cut = make_trainer(tmp_path, name="cut", max_epochs=4, snapshot_levels=DENSE_LEVELS)
    checkpoint = cut.save_checkpoint

    class Killed(Exception):
        pass

    def die_after_epoch_3():
        if cut.epoch == 3:
            raise Killed
        checkpoint()
    cut.save_checkpoint = die_after_epoch_3
    with pytest.raises(Killed):
        cut.run()
    resumed = make_trainer(tmp_path, name="cut", max_epochs=4, snapshot_levels=DENSE_LEVELS)
    resumed.restore(tmp_path / "cut" / "checkpoint.npz")
    assert resumed.epoch == 2
    assert resumed.run() == "finished"
    assert snapshot_files(tmp_path / "cut") == files
    assert json.loads((tmp_path / "cut" / "status.json").read_text())["snapshots"] == expected


class NaNData(ArrayData):
    """Serves a NaN pixel in the third training batch (as float images: the model takes those too)."""

    calls = 0

    def pixels(self, split, indices):
        x, y = super().batch(split, indices)
        if split == "train":
            NaNData.calls += 1
            if NaNData.calls == 3:
                x[0, 0, 0, 0] = np.nan
        return x, y


def test_divergence_stops_the_run_and_is_recorded(tmp_path):
    base = make_array_data(60, 20)
    data = NaNData(base.train_x, base.train_y, base.val_x, base.val_y)
    trainer = make_trainer(tmp_path, data=data, max_epochs=3)
    assert trainer.run() == "diverged"
    assert trainer.global_step == 2
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "diverged"
    assert np.all(np.isfinite(load_npy(tmp_path / "run" / "theta_final.npy")))


def test_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, max_epochs=1)
    trainer.run()
    path = tmp_path / "run" / "checkpoint.npz"
    before = path.read_bytes()
    messages = []
    trainer.log = messages.append

    def disk_full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(storage.files.os, "fsync", disk_full)
    trainer.model.theta[...] += 1.0
    trainer.save_checkpoint()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not list((tmp_path / "run").glob("*.tmp-*"))
    assert any("No space left" in m for m in messages)
    header, arrays = load_checkpoint(path, trainer.model.table)
    assert header["epoch"] == 1 and not np.array_equal(arrays["theta"], trainer.model.theta)


def test_bad_checkpoints_are_refused_with_a_reason(tmp_path):
    trainer = make_trainer(tmp_path, max_epochs=1)
    trainer.run()
    good = tmp_path / "run" / "checkpoint.npz"
    table = trainer.model.table
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(truncated, table)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, theta=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a batchlab checkpoint"):
        load_checkpoint(foreign, table)
    other = build_model(ModelConfig(image_size=64), kernels="reference")
    with pytest.raises(CheckpointError, match="different model"):
        load_checkpoint(good, other.table)


def test_pickled_arrays_are_never_loaded(tmp_path):
    crafted = tmp_path / "theta.npy"
    np.save(crafted, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(StorageError, match="refused"):
        load_npy(crafted)


def test_run_directory_refuses_another_run(tmp_path):
    RunFolder(tmp_path / "r").prepare({"args": {"batch": 32}})
    with pytest.raises(RunFolderError, match="already holds a run"):
        RunFolder(tmp_path / "r").prepare({"args": {"batch": 64}})
    with pytest.raises(RunFolderError, match="different settings"):
        RunFolder(tmp_path / "r").prepare({"args": {"batch": 64}}, resume=True)
    RunFolder(tmp_path / "r").prepare({"args": {"batch": 64}}, overwrite=True)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["args"]["batch"] == 64
