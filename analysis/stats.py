"""Seed statistics and the verdict rules of the study's findings.

Each setting (batch, lr) has one value per seed. Findings 1-7 compare two settings, the largest
batch L against the smallest S: the effect is mean_L - mean_S, tested with Welch's t-test (unequal
variances; SciPy), and reported with its 95 % confidence interval and two-sided p. Verdict:
`reproduced` when p < 0.05 and the effect has the article's sign, `contradicted` when p < 0.05 and
it has the opposite sign, `inconclusive` otherwise (also when a setting has fewer than two seeds).

Finding 8 is a ratio: the fraction of the large batch's validation-loss gap that linear lr scaling
closes, f = (gap at the base lr - gap with scaling) / gap at the base lr. Its 95 % interval is a
percentile bootstrap that resamples each setting's seeds independently (SciPy). `reproduced` when the
interval's lower bound is above 50 % ("most of the gap"), `contradicted` when its upper bound is
below 50 %, `inconclusive` otherwise.
"""
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
ALPHA = 0.05
MOST = 0.5  # finding 8: "most of the gap"
BOOTSTRAP_RESAMPLES = 10000


@dataclass
class Summary:
    """Mean, sample standard deviation and count of one setting's seed values."""

    mean: float
    sd: float
    n: int
    values: list

    def text(self, fmt="{:.4g}"):
        """'mean ± sd (n=k)' (sd to two digits), or the single value when n is 1."""
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return f"{fmt.format(self.mean)} (n=1)"
        return f"{fmt.format(self.mean)} ± {self.sd:.2g} (n={self.n})"


def summarize(values):
    """Summary of the finite values in `values` (NaN/None entries, e.g. diverged runs, are left out)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    mean = float(np.mean(finite)) if n else float("nan")
    sd = float(np.std(finite, ddof=1)) if n >= 2 else float("nan")
    return Summary(mean, sd, n, finite)


@dataclass
class Effect:
    """A measured effect with its 95 % interval, p value (None for a bootstrap) and verdict."""

    value: float
    low: float
    high: float
    p: float | None
    verdict: str
    rule: str


NAN = float("nan")


def welch_difference(large, small, expected_sign):
    """Effect mean(large) - mean(small) of two Summaries: Welch's t-test, 95 % interval, verdict."""
    rule = (f"Welch's t-test: effect {'>' if expected_sign > 0 else '<'} 0 with p < {ALPHA:g}")
    if large.n < 2 or small.n < 2:
        value = large.mean - small.mean if large.n and small.n else NAN
        return Effect(value, NAN, NAN, None, INCONCLUSIVE, rule + " (needs 2+ seeds per setting)")
    with warnings.catch_warnings():  # near-identical seed values are a result, not an error
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_ind(large.values, small.values, equal_var=False)
    value = large.mean - small.mean
    if large.sd == 0 and small.sd == 0:  # no spread at all: the difference is exact
        low = high = value
        p = 0.0 if value != 0 else 1.0
    else:
        interval = result.confidence_interval(1 - ALPHA)
        low, high, p = float(interval.low), float(interval.high), float(result.pvalue)
    if p < ALPHA and value != 0:
        verdict = REPRODUCED if np.sign(value) == np.sign(expected_sign) else CONTRADICTED
    else:
        verdict = INCONCLUSIVE
    return Effect(value, low, high, p, verdict, rule)


def gap_closed_fraction(small, large, large_scaled, small_scaled=None):
    """Fraction of the gap L - S (means) that scaling closes: ((L - S) - (Ls - Ss)) / (L - S); the
    small batch's own runs serve as Ss when its lr is unchanged by scaling (small_scaled None)."""
    small_scaled = small if small_scaled is None else small_scaled
    gap = np.mean(large) - np.mean(small)
    closed = gap - (np.mean(large_scaled) - np.mean(small_scaled))
    return closed / gap if gap != 0 else NAN


def gap_closed(small, large, large_scaled, small_scaled=None, seed=0):
    """Finding 8's Effect: the fraction of the gap closed, with a percentile bootstrap interval that
    resamples each setting's seeds independently (a setting serving both gaps is resampled once)."""
    rule = f"bootstrap 95 % interval of the fraction closed: lower bound > {MOST:.0%}"
    settings = [small, large, large_scaled] + ([small_scaled] if small_scaled is not None else [])
    samples = [s.values for s in settings]
    value = gap_closed_fraction(*samples) if all(samples) else NAN
    if any(len(s) < 2 for s in samples) or not math.isfinite(value):
        return Effect(value, NAN, NAN, None, INCONCLUSIVE, rule + " (needs 2+ seeds per setting)")
    result = scipy_stats.bootstrap(samples, gap_closed_fraction, vectorized=False, paired=False,
                                   n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                                   confidence_level=1 - ALPHA, rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    verdict = REPRODUCED if low > MOST else CONTRADICTED if high < MOST else INCONCLUSIVE
    return Effect(float(value), low, high, None, verdict, rule)
