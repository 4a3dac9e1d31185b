"""The runner against run folders written before it existed: the committed standard study's runs
were written by run.py's argparse path (the study built argv strings, run.py parsed them and stored
vars(args)). Their config.json "args" must be exactly what a planned run's RunSpec records now, or
the study could not resume those folders; and a run folder of that age must resume through
train_run."""
import json
import shutil
from dataclasses import fields
from pathlib import Path

import pytest

from analysis.study.plan import StudySettings, plan_runs
from storage.runfolder import RESUMABLE_DIFFERENCES, RunFolder
from parallel import LocalCommunicator
from runner import RunSpec, UsageError, train_run

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "docs" / "standard-study"


def test_the_study_plan_records_what_the_argv_path_recorded():
    settings = StudySettings.from_dict(json.loads((STUDY / "study.json").read_text())["settings"])
    planned = plan_runs(settings)
    written = sorted((STUDY / "runs").glob("*/config.json"))
    assert {path.parent.name for path in written} == {run.name for run in planned}
    for run in planned:
        saved = json.loads((STUDY / "runs" / run.name / "config.json").read_text())["args"]
        recorded = run.run_spec(settings).record(saved["out"], resume=saved["resume"])
        assert set(saved) <= set(recorded), run.name  # a key added since (sha256) reads as None
        assert recorded == {key: saved.get(key) for key in recorded}, run.name


def test_a_recorded_spec_reads_back_as_the_same_spec():
    spec = RunSpec(data="photos", batch=64, lr=0.05, lr_scale="linear", snapshot_levels=[0.5, 0.6, 0.5],
                   cache_dir="/somewhere")
    record = json.loads(json.dumps(spec.record("out")))
    assert record["snapshot_levels"] == [0.6, 0.5] and "cache_dir" not in record
    assert RunSpec.from_mapping(record) == RunSpec(**{f.name: getattr(spec, f.name) for f in fields(spec)
                                                      if f.name != "cache_dir"})


def old_run_folder(tmp_path):
    """One committed run of the standard study, as written by the argparse path, moved to tmp."""
    folder = tmp_path / "bs128-lr0.01-s0"
    folder.mkdir()
    shutil.copy2(STUDY / "runs" / folder.name / "config.json", folder / "config.json")
    return folder


def test_a_run_folder_written_before_the_runner_is_accepted_for_resuming(tmp_path):
    folder = old_run_folder(tmp_path)
    saved = json.loads((folder / "config.json").read_text())
    spec = RunSpec.from_mapping(saved["args"])
    config = {**saved, "args": spec.record(folder, resume=True)}
    assert RunFolder(folder).prepare(config, resume=True) == saved
    changed = {**saved, "args": RunSpec.from_mapping({**saved["args"], "seed": 1}).record(folder, resume=True)}
    with pytest.raises(Exception, match="different settings \\(seed\\)"):
        RunFolder(folder).prepare(changed, resume=True)
    assert {"out", "resume", "quiet"} <= RESUMABLE_DIFFERENCES


def test_train_run_refuses_to_resume_an_old_folder_with_other_settings(tmp_path):
    folder = old_run_folder(tmp_path)
    saved = json.loads((folder / "config.json").read_text())["args"]
    other = RunSpec.from_mapping({**saved, "data": "synthetic", "image_size": 32, "kernels": "reference"})
    with pytest.raises(UsageError, match="different settings \\(data, image_size, kernels\\)"):
        train_run(other, folder, LocalCommunicator(), resume=True, log=lambda message: None)


def test_train_run_continues_its_own_run_where_it_stopped(tmp_path):
    spec = RunSpec(data="synthetic", image_size=32, batch=64, max_epochs=1, kernels="reference", quiet=True)
    comm, quiet = LocalCommunicator(), (lambda message: None)
    first = train_run(spec, tmp_path / "run", comm, log=quiet)
    resumed = train_run(RunSpec.from_mapping({**spec.record("x"), "max_epochs": 2}), tmp_path / "run", comm,
                        resume=True, log=quiet)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert (first.status, first.epoch, resumed.status, resumed.epoch, epochs) == ("finished", 1, "finished", 2, [1, 2])


# A run folder written by run.py at commit e75322c, before storage.runfolder (synthetic set, 32 px,
# one epoch, reference kernels); its weights and checkpoint are not committed (1.7 MB).
OLD_RUN = ROOT / "tests" / "fixtures" / "old_run"
NOT_SCALAR = ("train_seconds", "eval_seconds", "dist_init_layers")  # times, and a dict compared alone


def test_a_run_folder_written_before_the_run_folder_class_resumes(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(OLD_RUN, old)
    saved = RunFolder(old).read_config()
    comm, quiet = LocalCommunicator(), (lambda message: None)
    # the checkpoint it ended with: its own spec trained again (training is deterministic and the
    # checkpoint's format is engine/checkpoint.py's, unchanged)
    train_run(RunSpec.from_mapping(saved["args"]), tmp_path / "again", comm, log=quiet)
    shutil.copy2(tmp_path / "again" / "checkpoint.npz", old / "checkpoint.npz")
    resumed = train_run(RunSpec.from_mapping({**saved["args"], "max_epochs": 2}), old, comm, resume=True,
                        log=quiet)
    assert (resumed.status, resumed.epoch) == ("finished", 2)
    assert (old / "config.json").read_bytes() == (OLD_RUN / "config.json").read_bytes()
    metrics = RunFolder(old).read_metrics()
    written_then = RunFolder(OLD_RUN).read_metrics()[0]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert {k: v for k, v in metrics[0].items() if k not in NOT_SCALAR} == pytest.approx(
        {k: v for k, v in written_then.items() if k not in NOT_SCALAR}, rel=1e-5)
    assert metrics[0]["dist_init_layers"] == pytest.approx(written_then["dist_init_layers"], rel=1e-5)
    assert RunFolder(old).read_status()["status"] == "finished"
    assert RunFolder(old).load_theta("final").shape == RunFolder(old).load_theta("init").shape


def test_the_engine_gets_every_training_setting_of_the_spec():
    spec = RunSpec(batch=64, lr=0.02, lr_scale="linear", base_batch=16, warmup_epochs=1.5, momentum=0.9,
                   weight_decay=1e-4, max_epochs=7, patience=3, seed=5, eval_batch=128, checkpoint_every=2,
                   snapshot_levels=(0.5, 0.6))
    config = spec.train_config()
    assert (config.batch, config.lr, config.lr_scale, config.base_batch) == (64, 0.02, "linear", 16)
    assert (config.warmup_epochs, config.momentum, config.weight_decay) == (1.5, 0.9, 1e-4)
    assert (config.max_epochs, config.patience, config.seed) == (7, 3, 5)
    assert (config.eval_batch, config.checkpoint_every, config.snapshot_levels) == (128, 2, (0.6, 0.5))
