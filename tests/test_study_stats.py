"""Seed statistics and verdicts (analysis/stats.py) on planted data, and the study plan's run sharing.

Welch's test is checked against a hand-written Welch-Satterthwaite computation on data planted at a
known p; finding 8's bootstrap interval against the exact bootstrap distribution, enumerated over
every equally likely resample of three seeds per setting.
"""
import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats import (CONTRADICTED, INCONCLUSIVE, REPRODUCED, gap_closed, gap_closed_fraction,
                            summarize, welch_difference)
from analysis.study.plan import StudySettings, plan_analyses, plan_runs, run_name


def hand_welch(a, b):
    """(effect, low, high, p) of mean(a) - mean(b): Welch's t with Welch-Satterthwaite degrees of
    freedom, the t distribution's quantile for the 95 % interval and its two tails for p."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    se = math.sqrt(va + vb)
    effect = a.mean() - b.mean()
    half = scipy_stats.t.ppf(0.975, df) * se
    return effect, effect - half, effect + half, 2 * scipy_stats.t.sf(abs(effect) / se, df)


def planted_at_p(p, sign=+1):
    """Two settings of three seeds (sd 1 each, so df = 4 exactly) whose Welch p is exactly `p`."""
    small = [9.0, 10.0, 11.0]
    shift = sign * scipy_stats.t.isf(p / 2, 4) * math.sqrt(2 / 3)  # t = shift / sqrt(1/3 + 1/3)
    return summarize([v + shift for v in small]), summarize(small)


@pytest.mark.parametrize("p,sign,expected_sign,verdict", [
    (0.04, +1, +1, REPRODUCED), (0.04, -1, +1, CONTRADICTED), (0.04, -1, -1, REPRODUCED),
    (0.04, +1, -1, CONTRADICTED), (0.06, +1, +1, INCONCLUSIVE), (0.06, -1, +1, INCONCLUSIVE),
    (0.001, +1, +1, REPRODUCED), (0.5, +1, +1, INCONCLUSIVE)])
def test_welch_verdict_at_known_p(p, sign, expected_sign, verdict):
    large, small = planted_at_p(p, sign)
    effect = welch_difference(large, small, expected_sign)
    value, low, high, hand_p = hand_welch(large.values, small.values)
    assert hand_p == pytest.approx(p, rel=1e-9)  # the planting itself is right
    assert effect.p == pytest.approx(hand_p, rel=1e-9)
    assert effect.value == pytest.approx(value, rel=1e-12)
    assert (effect.low, effect.high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert effect.verdict == verdict


def test_welch_with_unequal_sizes_and_spreads_matches_the_hand_computation():
    large, small = [0.61, 0.64, 0.66, 0.60, 0.70], [0.55, 0.57, 0.52]
    effect = welch_difference(summarize(large), summarize(small), +1)
    value, low, high, p = hand_welch(large, small)
    assert (effect.value, effect.low, effect.high, effect.p) == (
        pytest.approx(value, rel=1e-12), pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9),
        pytest.approx(p, rel=1e-9))
    assert p < 0.05 and effect.verdict == REPRODUCED
    # the interval excludes 0 exactly when p < 0.05 (same t distribution, same df)
    assert low > 0


def test_fewer_than_two_seeds_or_missing_values_give_no_verdict():
    effect = welch_difference(summarize([0.7]), summarize([0.5, 0.52]), +1)
    assert effect.verdict == INCONCLUSIVE and effect.p is None and math.isnan(effect.low)
    assert effect.value == pytest.approx(0.7 - 0.51)
    effect = welch_difference(summarize([]), summarize([0.5, 0.52]), +1)
    assert effect.verdict == INCONCLUSIVE and math.isnan(effect.value)
    # a diverged run (None/NaN) is left out of the summary rather than poisoning it
    summary = summarize([0.5, None, float("nan"), 0.7])
    assert summary.n == 2 and summary.mean == pytest.approx(0.6)
    assert welch_difference(summarize([0.7, None, 0.71]), summarize([0.5, float("nan")]), +1).verdict \
        == INCONCLUSIVE
    # zero spread with a non-zero effect is exact (e.g. every run capped at max epochs)
    effect = welch_difference(summarize([60.0, 60.0]), summarize([20.0, 20.0]), +1)
    assert (effect.verdict, effect.value, effect.low, effect.high, effect.p) == (REPRODUCED, 40, 40, 40, 0)
    assert welch_difference(summarize([60.0, 60.0]), summarize([60.0, 60.0]), +1).verdict == INCONCLUSIVE


# ---- finding 8: the fraction of the gap closed --------------------------------------------------

def exact_bootstrap(settings, shared_small):
    """Every equally likely fraction under resampling each setting's three seeds with replacement
    (27 resamples per setting); with `shared_small` the first setting serves both gaps and is drawn
    once per resample."""
    def resamples(values):
        values = np.asarray(values, float)
        return np.array([values[list(i)].mean() for i in itertools.product(range(3), repeat=3)])
    means = np.meshgrid(*[resamples(v) for v in settings], indexing="ij")
    s, large, large_scaled = means[0], means[1], means[2]
    small_scaled = s if shared_small else means[3]
    gap = large - s
    return (gap - (large_scaled - small_scaled)).ravel() / gap.ravel()


def assert_matches_exact_bootstrap(effect, fractions):
    """scipy's 10,000 percentile-bootstrap draws land within 0.5 % of the exact 2.5 % / 97.5 %
    quantiles (about three standard errors of a quantile's probability at 10,000 draws)."""
    q = np.quantile(fractions, [0.02, 0.03, 0.97, 0.98])
    assert q[0] <= effect.low <= q[1]
    assert q[2] <= effect.high <= q[3]


def around(mean, spread):
    return [mean - spread, mean, mean + spread]


@pytest.mark.parametrize("large_scaled,spread,verdict", [
    (0.61, 0.001, REPRODUCED),      # 90 % of a 0.10 gap closed
    (0.68, 0.001, CONTRADICTED),    # 20 % closed
    (0.61, 0.08, INCONCLUSIVE),     # 90 % on average, but the seeds spread over the whole gap
])
def test_gap_closed_fraction_on_planted_seeds(large_scaled, spread, verdict):
    small, large, scaled = around(0.60, spread), around(0.70, spread), around(large_scaled, spread)
    effect = gap_closed(summarize(small), summarize(large), summarize(scaled))
    truth = (0.70 - large_scaled) / (0.70 - 0.60)  # small's lr is unchanged by scaling
    assert effect.value == pytest.approx(truth, rel=1e-9)
    assert effect.verdict == verdict and effect.p is None
    assert effect.low <= effect.value <= effect.high
    assert_matches_exact_bootstrap(effect, exact_bootstrap([small, large, scaled], shared_small=True))


def test_a_setting_serving_both_gaps_is_resampled_once():
    small, large, scaled = [0.55, 0.60, 0.65], [0.69, 0.70, 0.71], [0.61, 0.62, 0.63]
    shared = gap_closed(summarize(small), summarize(large), summarize(scaled))
    separate = gap_closed(summarize(small), summarize(large), summarize(scaled),
                          summarize(list(small)))
    assert shared.value == separate.value == pytest.approx((0.70 - 0.62) / (0.70 - 0.60))
    # shared: S cancels from the numerator, (L - Ls) / (L - S); separate: a second, independent S
    assert_matches_exact_bootstrap(shared, exact_bootstrap([small, large, scaled], True))
    assert_matches_exact_bootstrap(separate, exact_bootstrap([small, large, scaled, small], False))
    # one S resampled into both gaps moves numerator and denominator together; two independent
    # copies do not, and widen the interval past 50 %
    assert (shared.verdict, separate.verdict) == (REPRODUCED, INCONCLUSIVE)


def test_gap_closed_fraction_formula_and_degenerate_cases():
    # ((L - S) - (Ls - Ss)) / (L - S) with a small-batch scaled setting of its own
    assert gap_closed_fraction([1.0, 3.0], [6.0], [4.0], [1.5]) == pytest.approx((4 - 2.5) / 4)
    assert math.isnan(gap_closed_fraction([1.0], [1.0], [0.5]))  # no gap: nothing to close
    effect = gap_closed(summarize([0.6]), summarize([0.7, 0.71]), summarize([0.61, 0.62]))
    assert effect.verdict == INCONCLUSIVE and math.isnan(effect.low)
    effect = gap_closed(summarize([0.6, 0.6]), summarize([0.6, 0.6]), summarize([0.61, 0.62]))
    assert effect.verdict == INCONCLUSIVE and math.isnan(effect.value)


# ---- the plan ----------------------------------------------------------------------------------

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
    # sharpness of every member of each comparison group at that group's point: 4 batches x 3 seeds
    # per group, bs32@0.01 once in each group
    sharpness = {t.name for t in tasks if t.kind == "sharpness"}
    assert len(sharpness) == sum(t.kind == "sharpness" for t in tasks) == 2 * 4 * 3
    assert {"sharpness-base-bs32-lr0.01-s0", "sharpness-scaled-bs32-lr0.01-s0",
            "sharpness-scaled-bs256-lr0.08-s2"} <= sharpness
    assert "sharpness-base-bs256-lr0.08-s0" not in sharpness
    assert {t.name for t in tasks if t.kind != "sharpness"} == {
        "interpolation", "surface-bs32-lr0.01-s0", "surface-bs256-lr0.01-s0",
        "noise-bs32-lr0.01-s0", "noise-bs256-lr0.01-s0"}
