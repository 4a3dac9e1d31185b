"""Seed statistics and verdicts (analysis/stats.py) and the study plan's run sharing."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats import CONTRADICTED, INCONCLUSIVE, REPRODUCED, contrast, judge, summarize, verdict
from analysis.study_plan import StudySettings, plan_analyses, plan_runs, run_name


def planted(rng, mean, sd, n=3):
    """n per-seed values drawn around `mean`, then shifted so their mean is exactly `mean`."""
    values = rng.normal(mean, sd, n)
    return list(values - values.mean() + mean)


def test_planted_effects_get_the_three_verdicts():
    rng = np.random.default_rng(0)
    small, large = (32, 0.01), (256, 0.01)
    pairs = [(large, 1.0), (small, -1.0)]
    # large effect with the article's sign (+): bs256 worse by 0.05, seed sd 0.005
    s = {small: summarize(planted(rng, 0.60, 0.005)), large: summarize(planted(rng, 0.65, 0.005))}
    assert judge(s, pairs, +1).verdict == REPRODUCED
    # the same data judged against an article that expected the opposite sign
    assert judge(s, pairs, -1).verdict == CONTRADICTED
    # null effect: identical means, real seed spread
    s = {small: summarize([0.60, 0.62, 0.58]), large: summarize([0.61, 0.59, 0.60])}
    assert judge(s, pairs, +1).verdict == INCONCLUSIVE
    # reversed effect: bs256 better by 0.05
    s = {small: summarize(planted(rng, 0.65, 0.005)), large: summarize(planted(rng, 0.60, 0.005))}
    effect = judge(s, pairs, +1)
    assert effect.verdict == CONTRADICTED and effect.value == pytest.approx(-0.05)
    # a large-looking effect inside the noise: 0.05 apart with sd 0.1 stays inconclusive
    s = {small: summarize(planted(rng, 0.60, 0.1)), large: summarize(planted(rng, 0.65, 0.1))}
    assert judge(s, pairs, +1).verdict == INCONCLUSIVE


def test_standard_error_matches_welch_t_statistic():
    a, b = [0.61, 0.64, 0.66, 0.60], [0.55, 0.57, 0.52]
    value, se = contrast({"a": summarize(a), "b": summarize(b)}, [("a", 1.0), ("b", -1.0)])
    t = scipy_stats.ttest_ind(a, b, equal_var=False).statistic
    assert value / se == pytest.approx(t, rel=1e-12)
    assert value == pytest.approx(np.mean(a) - np.mean(b))


def test_shared_setting_cancels_in_a_gap_of_gaps():
    # finding 8: (L - S) - (L' - S) uses S twice with opposite weights; only L and L' remain
    s = {"S": summarize([1.0, 5.0, 9.0]), "L": summarize([2.0, 2.2]), "L'": summarize([1.0, 1.4])}
    value, se = contrast(s, [("L", 1), ("S", -1), ("L'", -1), ("S", 1)])
    assert value == pytest.approx(2.1 - 1.2)
    assert se == pytest.approx(math.sqrt(np.var([2.0, 2.2], ddof=1) / 2 + np.var([1.0, 1.4], ddof=1) / 2))


def test_single_seed_or_missing_values_give_no_verdict():
    assert verdict(0.5, float("nan"), +1) == INCONCLUSIVE
    s = {"a": summarize([0.7]), "b": summarize([0.5, 0.52])}
    assert judge(s, [("a", 1), ("b", -1)], +1).verdict == INCONCLUSIVE
    # a diverged run (None/NaN) is left out of the summary rather than poisoning it
    summary = summarize([0.5, None, float("nan"), 0.7])
    assert summary.n == 2 and summary.mean == pytest.approx(0.6)
    # zero spread with a non-zero effect is decisive (e.g. every run capped at max epochs)
    s = {"a": summarize([60.0, 60.0]), "b": summarize([20.0, 20.0])}
    assert judge(s, [("a", 1), ("b", -1)], +1).verdict == REPRODUCED


def test_plan_shares_runs_between_steps():
    settings = StudySettings()  # the article's grid: 4 batches, 5 sweep lrs, 3 seeds, 1 sweep seed
    runs = plan_runs(settings)
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    # independent count: headline cells (base + scaled rows share bs32@0.01) x seeds, plus the
    # sweep cells not already headline cells x sweep seeds
    headline = {(b, 0.01) for b in (32, 64, 128, 256)} | {(b, 0.01 * b / 32) for b in (32, 64, 128, 256)}
    headline = {(b, round(lr, 10)) for b, lr in headline}
    sweep = {(b, lr) for b in (32, 64, 128, 256) for lr in (0.01, 0.02, 0.04, 0.08, 0.16)}
    assert len(names) == 3 * len(headline) + len(sweep - headline)
    by_name = {r.name: r for r in runs}
    assert set(by_name[run_name(32, 0.01, 0)].groups) == {"base", "scaled", "sweep"}
    assert set(by_name[run_name(256, 0.08, 2)].groups) == {"scaled", "sweep"}
    assert set(by_name[run_name(64, 0.16, 0)].groups) == {"sweep"}
    assert run_name(128, 0.01 * 128 / 32, 1) == "bs128-lr0.04-s1"
    tasks = plan_analyses(settings, runs)
    assert sum(t.kind == "sharpness" for t in tasks) == len(runs)
    assert {t.name for t in tasks if t.kind != "sharpness"} == {
        "interpolation", "surface-bs32-lr0.01-s0", "surface-bs256-lr0.01-s0",
        "noise-bs32-lr0.01-s0", "noise-bs256-lr0.01-s0"}
