"""The paper-plan projection's epoch model, checked against the article's own numbers."""
import pytest

from analysis.study.plan import PROFILES, StudySettings, plan_runs
from analysis.study.projection import article_epochs, log_interpolate, plan_hours


def paper(**overrides):
    return StudySettings(**{**PROFILES["paper"], "profile": "paper", **overrides})


def test_anchors_are_the_article_counts_plus_patience():
    s = paper()
    assert article_epochs(s, 32, 0.01) == 255 + 100  # figure 25's bs 32 (3156 s / 12.4 s)
    assert article_epochs(s, 256, 0.08) == 285 + 100  # 2197 s / 7.7 s
    assert article_epochs(s, 256, 0.01) == 1000  # 958 + 100 passes the 1,000-epoch cap


def test_between_anchors_the_count_is_a_power_law():
    # three equal steps in log2(batch) from 32 to 256: each multiplies by the same factor
    b64, b128 = (log_interpolate(b, 32, 256, 255, 958) for b in (64, 128))
    assert b64 / 255 == pytest.approx(b128 / b64) == pytest.approx(958 / b128)
    assert log_interpolate(512, 32, 256, 255, 958) == 958  # held, not extrapolated
    assert log_interpolate(16, 32, 256, 255, 958) == 255


def test_sweep_lrs_fall_between_the_two_rules():
    s = paper(patience=0)
    at_base, at_scaled = article_epochs(s, 128, 0.01), article_epochs(s, 128, 0.04)
    assert at_scaled < article_epochs(s, 128, 0.02) < at_base
    assert article_epochs(s, 128, 0.16) == at_scaled  # above the scaled lr: the scaled count


def test_plan_hours_adds_every_run():
    s = paper(batches=[32, 256], sweep_lrs=[], seeds=2, trend_seeds=2)
    runs = plan_runs(s)
    seconds = {32: 10.0, 256: 4.0}
    by_hand = sum(seconds[r.batch] * 7 for r in runs) / 3600
    assert plan_hours(s, seconds, lambda r: 7) == pytest.approx(by_hand)
    assert len(runs) == 2 * 3  # bs 32 (base = scaled), bs 256 base, bs 256 scaled; two seeds
