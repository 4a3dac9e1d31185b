"""The paper projection's reading of the two measurements (the figures themselves are benchmarks)."""
import pytest

from bench.paper_projection import article_plan, epoch_seconds_by_batch, layout_gain
from analysis.study.plan import PROFILES, StudySettings, plan_runs


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


def test_the_articles_plan_is_one_run_per_setting():
    paper = StudySettings(**{**PROFILES["paper"], "profile": "paper"})
    settings = {(r.batch, r.lr) for r in plan_runs(paper)}
    runs = plan_runs(article_plan(paper))
    assert len(runs) == len(settings) == 20
    assert {(r.batch, r.lr) for r in runs} == settings
