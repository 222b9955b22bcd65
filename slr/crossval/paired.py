"""Two recipes on the same folds: per-fold differences, a confidence interval, an exact sign-flip
test across folds, and McNemar's exact test on the pooled held-out clips.

The sign-flip (permutation) test asks: if the two recipes were equally good, each fold's
difference would be as likely positive as negative, so every one of the 2^K assignments of signs
to the K differences is equally likely. The two-sided p-value is the share of them whose sum is at
least as far from 0 as the one seen. It is exact: every assignment is counted (meet in the middle:
the sums of each half are listed, and for each sum of one half the other half's sums far enough
are counted by binary search, so 36 folds cost 2 x 2^18 sums, not 2^36). The smallest p it can
give is 2 / 2^K (the sum seen and its mirror image): 0.0625 with 5 folds, so with 5 folds no test
on folds can be "significant at 0.05" however large the gain, and the report says so.

McNemar's test (`slr.analysis.stats`) pools the held-out clips of every fold (each clip is held
out in exactly one fold): it counts clips, not folds, so it is sharper, but it treats clips of one
signer as independent, which they are not; the fold test is the one that speaks about new signers.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from slr.analysis.compare import ALPHA, PairedTest
from slr.analysis.stats import mcnemar_exact

#: Folds up to which the sign-flip test counts every assignment (2 x 2^(K/2) sums in memory).
EXACT_FOLDS_UP_TO = 44
#: Differences closer than this count as equal (scores are shares of clips: float noise only).
_TIE = 1e-9


def sign_flip_p(differences: Sequence[float]) -> float:
    """Exact two-sided sign-flip p-value of the mean difference being 0 (1.0 when every difference is 0)."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) > EXACT_FOLDS_UP_TO:
        raise ValueError(f"{len(d)} folds: the exact sign-flip test counts up to {EXACT_FOLDS_UP_TO}")
    observed = abs(float(d.sum()))
    if observed <= _TIE:
        return 1.0
    half = len(d) // 2
    left, right = _all_sums(d[:half]), np.sort(_all_sums(d[half:]))
    # |l + r| >= observed  <=>  r >= observed - l  or  r <= -observed - l
    high = len(right) - np.searchsorted(right, observed - left - _TIE, side="left")
    low = np.searchsorted(right, -observed - left + _TIE, side="right")
    extreme = int(high.sum() + low.sum())
    return min(1.0, extreme / float(2 ** len(d)))


def _all_sums(values: np.ndarray) -> np.ndarray:
    sums = np.zeros(1)
    for v in values:
        sums = np.concatenate([sums + v, sums - v])
    return sums


def smallest_p(folds: int) -> float:
    """The smallest two-sided p-value a sign-flip test over `folds` folds can give."""
    return min(1.0, 2.0 / 2 ** folds)


def mean_interval(differences: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean difference over folds."""
    from scipy.stats import t  # scikit-learn, which the folds need, brings scipy

    values = [float(v) for v in differences]
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = t.ppf(0.5 + level / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


@dataclass
class RecipePair:
    """Recipe `second` against recipe `first` on the same folds (differences: second - first)."""

    first: str
    second: str
    differences: list[float]  # held-out gloss accuracy, per fold
    mean: float
    low: float
    high: float
    sign_flip_p: float
    smallest_p: float
    mcnemar: PairedTest  # on the pooled held-out clips, gloss head

    @property
    def wins(self) -> int:
        return sum(1 for d in self.differences if d > _TIE)

    @property
    def losses(self) -> int:
        return sum(1 for d in self.differences if d < -_TIE)

    @property
    def meaning(self) -> str:
        """The comparison in words, e.g. "B is better on 5 of 5 folds, +3.1 points, p = 0.062 — ..."."""
        k = len(self.differences)
        if self.wins == 0 and self.losses == 0:
            return (f"{self.second} and {self.first} score the same on every one of the {k} folds: nothing here "
                    "tells them apart (p = 1)")
        if self.mean >= 0:
            better, worse, count = self.second, self.first, self.wins
            gain, low, high = self.mean, self.low, self.high
        else:
            better, worse, count = self.first, self.second, self.losses
            gain, low, high = -self.mean, -self.high, -self.low
        ties = k - self.wins - self.losses
        text = (f"{better} is better than {worse} on {count} of {k} folds" + (f" ({ties} tied)" if ties else "")
                + f", {gain * 100:+.1f} points of held-out gloss accuracy")
        if not math.isnan(low):
            text += f" (95% interval {low * 100:+.1f} to {high * 100:+.1f})"
        text += f", sign-flip p = {self.sign_flip_p:.2g}"
        if self.sign_flip_p <= self.smallest_p + _TIE:
            text += f" — with {k} folds no smaller p is possible"
        else:
            text += f" (with {k} folds the smallest possible p is {self.smallest_p:.3g})"
        if self.sign_flip_p >= ALPHA and self.smallest_p >= ALPHA:
            text += f"; more folds (or groups) are needed to reach p < {ALPHA}"
        elif self.sign_flip_p < ALPHA:
            text += f", so the difference on new groups is unlikely to be chance (p < {ALPHA})"
        else:
            text += f", so it may well be chance (p >= {ALPHA})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first, "second": self.second, "differences": self.differences,
            "mean_difference": self.mean, "interval_95": [self.low, self.high],
            "wins": self.wins, "losses": self.losses, "sign_flip_p": self.sign_flip_p,
            "smallest_possible_p": self.smallest_p, "meaning": self.meaning,
            "mcnemar_pooled": self.mcnemar.to_dict(),
        }


def pair_recipes(first: str, second: str, first_scores: Sequence[float], second_scores: Sequence[float],
                 first_correct: dict[str, bool], second_correct: dict[str, bool]) -> RecipePair:
    """`*_scores`: held-out gloss accuracy per fold (same fold order); `*_correct`: clip -> right or not,
    pooled over the folds (the same clips for both)."""
    differences = [float(b) - float(a) for a, b in zip(first_scores, second_scores)]
    mean, low, high = mean_interval(differences)
    clips = sorted(set(first_correct) & set(second_correct))
    x = np.array([first_correct[c] for c in clips], dtype=bool)
    y = np.array([second_correct[c] for c in clips], dtype=bool)
    b, c = int((x & ~y).sum()), int((~x & y).sum())
    test = PairedTest(first, second, "gloss", int((x & y).sum()), b, c, int((~x & ~y).sum()), mcnemar_exact(b, c))
    p = sign_flip_p(differences) if len(differences) <= EXACT_FOLDS_UP_TO else _sampled_p(differences)
    return RecipePair(first, second, differences, mean, low, high, p, smallest_p(len(differences)), test)


def _sampled_p(differences: Sequence[float], draws: int = 200_000, seed: Optional[int] = 0) -> float:
    """Beyond `EXACT_FOLDS_UP_TO` folds: the share of random sign assignments (fixed seed), plus one."""
    d = np.asarray(differences, dtype=np.float64)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(draws, len(d)))
    extreme = int((np.abs(signs @ d) >= abs(d.sum()) - _TIE).sum())
    return (extreme + 1) / (draws + 1)
