"""Significance of a difference between two models on the same clips: McNemar's exact test.

Two models classify the same N clips. Only the clips where exactly one of them is right say
anything about which is better: `b` = clips only the first gets right, `c` = clips only the
second gets right. If both models were equally accurate, each of those `n = b + c` discordant
clips would be equally likely to fall either way, so `b` would follow Binomial(n, 1/2). The exact
two-sided p-value is the probability, under that assumption, of a split at least as uneven as
the one seen:

    p = min(1, 2 * sum_{i=0}^{min(b, c)} C(n, i) / 2^n)

(the binomial distribution with p = 1/2 is symmetric, so doubling one tail is the two-sided
test). Up to `EXACT_UP_TO` discordant clips the sum is computed in exact integers and divided
once (Python divides big integers exactly and rounds the quotient to the nearest float: no
overflow, and a p-value below the smallest float is 0.0, not an error). Beyond that the integers
grow too long to be quick, and the tail is summed in log space instead (relative error about
1e-10, far below any decision it informs). No scipy.
"""

from __future__ import annotations

import math


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` and `c` discordant pairs (1.0 when b = c = 0)."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be 0 or more, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0  # no clip where the models disagree: nothing tells them apart
    k = min(b, c)
    if n <= EXACT_UP_TO:
        term, tail = 1, 1  # C(n, 0); each next term from the last: C(n, i+1) = C(n, i) (n-i) / (i+1)
        for i in range(k):
            term = term * (n - i) // (i + 1)
            tail += term
        # 2 * tail / 2^n = tail / 2^(n-1); when b == c the two tails share the middle term and the
        # doubled sum exceeds 1, hence the cap.
        return min(1.0, tail / (1 << (n - 1)))
    return min(1.0, math.exp(_log_tail(n, k) - (n - 1) * math.log(2)))


#: Discordant clips up to which the p-value is computed with exact integers.
EXACT_UP_TO = 20_000


def _log_tail(n: int, k: int) -> float:
    """log(sum_{i=0}^{k} C(n, i)), summed from the largest term down so nothing underflows."""
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(log_terms)
    return top + math.log(math.fsum(math.exp(t - top) for t in log_terms))


def discordant_pairs(first_correct, second_correct) -> tuple[int, int]:
    """(b, c): clips only the first model gets right, clips only the second gets right."""
    first = [bool(x) for x in first_correct]
    second = [bool(x) for x in second_correct]
    if len(first) != len(second):
        raise ValueError(f"{len(first)} and {len(second)} predictions: the clips must be the same")
    b = sum(1 for x, y in zip(first, second) if x and not y)
    c = sum(1 for x, y in zip(first, second) if y and not x)
    return b, c
