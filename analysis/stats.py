"""Seed statistics and the verdict rule of the study's findings.

Each setting (batch, lr) has one value per seed. An effect is a linear combination of setting means,
effect = sum_s w_s mean_s (e.g. mean at bs 256 minus mean at bs 32). Settings are independent groups
of seeds, so its standard error is sqrt(sum_s w_s^2 sd_s^2 / n_s) (Welch's, with sample sd, ddof 1).
A setting that appears with weights that cancel (finding 8's shared bs 32 runs) drops out exactly.

Verdict (issue 8): `reproduced` when the effect has the article's sign and |effect| > 2 SE,
`contradicted` when it has the opposite sign with the same margin, else `inconclusive` (also when a
setting has fewer than two seeds, so no SE exists).
"""
import math
from dataclasses import dataclass

import numpy as np

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
MARGIN = 2.0


@dataclass
class Summary:
    """Mean, sample standard deviation, count and standard error of one setting's seed values."""

    mean: float
    sd: float
    n: int
    values: list

    @property
    def se(self):
        """Standard error of the mean, sd / sqrt(n) (NaN with fewer than two values)."""
        return self.sd / math.sqrt(self.n) if self.n >= 2 else float("nan")

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
    """A contrast between settings with its standard error and verdict."""

    value: float
    se: float
    verdict: str
    expected_sign: int
    terms: dict  # setting -> (weight, Summary)

    @property
    def ratio(self):
        """|effect| / SE (NaN when the SE does not exist)."""
        if not math.isfinite(self.se):
            return float("nan")
        return abs(self.value) / self.se if self.se > 0 else float("inf")


def merge_weights(pairs):
    """{setting: summed weight} of (setting, weight) pairs; settings whose weights cancel vanish."""
    merged = {}
    for setting, w in pairs:
        merged[setting] = merged.get(setting, 0.0) + w
    return {k: w for k, w in merged.items() if w != 0.0}


def contrast(summaries, pairs):
    """(effect, SE) of sum_s w_s mean_s over independent settings, `pairs` = [(setting, w), ...];
    weights of a repeated setting are added first, so a setting whose weights cancel contributes
    nothing."""
    merged = merge_weights(pairs)
    value, variance = 0.0, 0.0
    for setting, w in merged.items():
        s = summaries[setting]
        value += w * s.mean
        variance += w * w * (s.sd ** 2 / s.n if s.n >= 2 else float("nan"))
    return value, math.sqrt(variance) if math.isfinite(variance) else float("nan")


def verdict(value, se, expected_sign, margin=MARGIN):
    """The issue-8 rule: sign as the article's and |value| > margin * SE -> reproduced; opposite
    sign with the same margin -> contradicted; otherwise (or without an SE) inconclusive."""
    if not (math.isfinite(value) and math.isfinite(se)):
        return INCONCLUSIVE
    if abs(value) <= margin * se or value == 0.0:
        return INCONCLUSIVE
    return REPRODUCED if np.sign(value) == np.sign(expected_sign) else CONTRADICTED


def judge(summaries, pairs, expected_sign):
    """The Effect of the contrast `pairs` = [(setting, weight), ...] of setting summaries."""
    value, se = contrast(summaries, pairs)
    terms = {k: (w, summaries[k]) for k, w in merge_weights(pairs).items()}
    return Effect(value, se, verdict(value, se, expected_sign), expected_sign, terms)
