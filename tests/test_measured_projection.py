"""`study --project`: the plan's hours from the two measurements (the figures are benchmarks)."""
import json

import pytest

from analysis.study.command import main as study_main
from analysis.study.plan import PROFILES, StudySettings, plan_runs
from analysis.study.projection import (article_epochs, article_plan, epoch_seconds_by_batch, layout_gain,
                                       measured_projection)


def test_epoch_seconds_take_the_median_and_interpolate_unmeasured_batches():
    rows = [{"batch": 32, "epoch_seconds": s} for s in (10.0, 12.0, 30.0)] + \
           [{"batch": 256, "epoch_seconds": s} for s in (5.0, 5.0)]
    seconds = epoch_seconds_by_batch(rows, [32, 64, 128, 256])
    assert seconds[32] == 12.0 and seconds[256] == 5.0
    # a power law through (32, 12) and (256, 5): equal ratios per doubling
    assert seconds[64] / seconds[32] == pytest.approx(seconds[128] / seconds[64])
    assert seconds[64] == pytest.approx(12.0 * (5.0 / 12.0) ** (1 / 3))


def test_layout_gain_is_the_best_layout_over_one_process():
    rates = {"training_images_per_s": {"threads": {"32": 1000.0, "256": 2000.0},
                                       "runs": {"32": 1500.0, "256": 1800.0}}}
    assert layout_gain(rates, [32, 256]) == {32: ("runs", 1.5), 256: ("threads", 1.0)}
    # between measured batches each layout's rate follows a power law: runs 1500 -> 1800 and threads
    # 1000 -> 2000 over three doublings; at 64, runs 1500 * 1.2^(1/3) beats threads 1000 * 2^(1/3)
    layout, gain = layout_gain(rates, [64])[64]
    assert layout == "runs" and gain == pytest.approx(1.5 * 1.2 ** (1 / 3) / 2 ** (1 / 3))


def test_the_articles_plan_is_one_run_per_setting():
    paper = StudySettings(**{**PROFILES["paper"], "profile": "paper"})
    settings = {(r.batch, r.lr) for r in plan_runs(paper)}
    runs = plan_runs(article_plan(paper))
    assert len(runs) == len(settings) == 20
    assert {(r.batch, r.lr) for r in runs} == settings


def write_measurements(folder, epoch_seconds, rates, size=128):
    machine = {"date": "2026-12-01 18:00 UTC"}
    rows = [{"batch": b, "epoch_seconds": s, "train_images": 100, "val_images": 20} for b, s in epoch_seconds.items()]
    (folder / "epoch_time.json").write_text(json.dumps({"machine": machine, "threads": 2, "image_size": size,
                                                        "rows": rows}))
    (folder / "study_throughput.json").write_text(json.dumps({"machine": machine,
                                                              "training_images_per_s": rates}))


def test_projection_hours_add_up_by_hand(tmp_path):
    paper = StudySettings(**{**PROFILES["paper"], "profile": "paper"})
    epoch_seconds = {32: 10.0, 64: 9.0, 128: 8.0, 256: 8.0}
    rates = {"threads": {str(b): 100.0 for b in paper.batches}, "runs": {str(b): 125.0 for b in paper.batches}}
    write_measurements(tmp_path, epoch_seconds, rates)
    text = measured_projection(paper, tmp_path)
    one = article_plan(paper)
    hours = sum(article_epochs(one, r.batch, r.lr) * epoch_seconds[r.batch] for r in plan_runs(one)) / 3600
    assert f"| {hours:.1f} | {hours / 1.25:.1f} |" in text  # runs layout: 1.25x the throughput
    assert "bs 32 10.00 s (runs x1.25)" in text


def test_the_command_says_in_one_line_what_is_missing(tmp_path, capsys):
    assert study_main(["--profile", "paper", "--project", str(tmp_path)]) == 2
    expected = f"error: no readable {tmp_path}/epoch_time.json: run bench/epoch_time.py first"
    assert capsys.readouterr().err.strip() == expected
    write_measurements(tmp_path, {32: 1.0}, {"threads": {"32": 1.0}}, size=64)
    assert study_main(["--profile", "paper", "--project", str(tmp_path)]) == 2
    assert "measured 64 px, the plan trains at 128 px" in capsys.readouterr().err
