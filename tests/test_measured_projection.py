"""`study --project`: the plan's hours from the two measurements (the figures are benchmarks)."""
import json

import pytest

from analysis.study.command import main as study_main
from analysis.study.plan import PROFILES, StudySettings, plan_runs
from analysis.study.projection import (LAYOUT_COMMAND, article_epochs, article_plan, epoch_seconds_by_batch,
                                       measured_projection)


def test_epoch_seconds_take_the_median_and_interpolate_unmeasured_batches():
    rows = [{"batch": 32, "epoch_seconds": s} for s in (10.0, 12.0, 30.0)] + \
           [{"batch": 256, "epoch_seconds": s} for s in (5.0, 5.0)]
    seconds = epoch_seconds_by_batch(rows, [32, 64, 128, 256])
    assert seconds[32] == 12.0 and seconds[256] == 5.0
    # a power law through (32, 12) and (256, 5): equal ratios per doubling
    assert seconds[64] / seconds[32] == pytest.approx(seconds[128] / seconds[64])
    assert seconds[64] == pytest.approx(12.0 * (5.0 / 12.0) ** (1 / 3))


def test_the_articles_plan_is_one_run_per_setting():
    paper = StudySettings(**{**PROFILES["paper"], "profile": "paper"})
    settings = {(r.batch, r.lr) for r in plan_runs(paper)}
    runs = plan_runs(article_plan(paper))
    assert len(runs) == len(settings) == 20
    assert {(r.batch, r.lr) for r in runs} == settings


def write_measurements(folder, epoch_seconds, layout_seconds, size=128, processes=2):
    machine = {"date": "2026-12-01 18:00 UTC"}

    def rows(seconds):
        return [{"batch": b, "epoch_seconds": s, "train_images": 100, "val_images": 20} for b, s in seconds.items()]
    (folder / "epoch_time.json").write_text(json.dumps({"machine": machine, "threads": 2, "image_size": size,
                                                        "rows": rows(epoch_seconds)}))
    (folder / "epoch_time_study_layout.json").write_text(json.dumps(
        {"machine": machine, "processes": processes, "threads": 1, "image_size": size,
         "rows": rows(layout_seconds)}))


def test_projection_hours_add_up_by_hand(tmp_path):
    paper = StudySettings(**{**PROFILES["paper"], "profile": "paper"})
    epoch_seconds = {32: 10.0, 64: 9.0, 128: 8.0, 256: 8.0}
    # two runs side by side, each epoch 12.8 s: 6.4 s of the machine per epoch, 1.25x faster at 256
    layout_seconds = {32: 14.0, 64: 14.0, 128: 13.0, 256: 12.8}
    write_measurements(tmp_path, epoch_seconds, layout_seconds)
    text = measured_projection(paper, tmp_path)
    one = article_plan(paper)
    hours = sum(article_epochs(one, r.batch, r.lr) * epoch_seconds[r.batch] for r in plan_runs(one)) / 3600
    in_layout = sum(article_epochs(one, r.batch, r.lr) * layout_seconds[r.batch] / 2 for r in plan_runs(one)) / 3600
    assert f"| {hours:.1f} | {in_layout:.1f} |" in text
    assert "bs 32 10.00 s (7.00 s)" in text and "bs 256 8.00 s (6.40 s)" in text
    assert "2 runs side by side on 1 thread(s) each" in text


def test_the_command_says_in_one_line_what_is_missing(tmp_path, capsys):
    assert study_main(["--profile", "paper", "--project", str(tmp_path)]) == 2
    expected = f"error: no readable {tmp_path}/epoch_time.json: run bench/epoch_time.py first"
    assert capsys.readouterr().err.strip() == expected
    write_measurements(tmp_path, {32: 1.0}, {32: 1.0}, size=64)
    assert study_main(["--profile", "paper", "--project", str(tmp_path)]) == 2
    assert "measured 64 px, the plan trains at 128 px" in capsys.readouterr().err
    (tmp_path / "epoch_time_study_layout.json").unlink()
    assert study_main(["--profile", "paper", "--project", str(tmp_path)]) == 2
    assert f"run {LAYOUT_COMMAND} first" in capsys.readouterr().err
