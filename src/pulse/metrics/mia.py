"""Membership inference: does the model still behave as if it trained on the forget set?

Each training answer gets four scores, all oriented so that *higher = more likely a member*:

- ``loss``: mean log-probability of the answer tokens (Yeom et al. 2018, the negated LOSS);
- ``zlib``: that mean log-probability divided by the answer's zlib-compressed length in bytes
  (Carlini et al. 2021), so that generic, compressible text is not mistaken for memorised text;
- ``mink``: Min-K% (Shi et al. 2024), the mean of the k% lowest token log-probabilities;
- ``minkpp``: Min-K%++ (Zhang et al. 2024), the same over token log-probabilities standardised by
  the mean and standard deviation of the model's log-probabilities at that position.

The attack is scored by the AUC of members (forget set) against non-members (holdout entities
never trained on): 0.5 = indistinguishable, 1 = perfectly separable. PrivLeak (MUSE, Shi et al.
2024) compares it with the gold model that never saw the forget set:
``100 * (AUC_unlearned - AUC_gold) / AUC_gold`` percent; 0 is ideal, positive = under-unlearned
(members still stand out), negative = over-unlearned (the forget set now stands out by being
*less* likely than never-seen data).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from scipy.stats import rankdata

SCORES = ("loss", "zlib", "mink", "minkpp")


def lowest_mean(values, fraction: float) -> float:
    """Mean of the ceil(fraction * n) lowest values (at least one)."""
    if not len(values):
        raise ValueError("no token scores")
    count = max(1, math.ceil(fraction * len(values)))
    return float(np.mean(np.sort(np.asarray(values, dtype=float))[:count]))


def zlib_bytes(text: str) -> int:
    return len(zlib.compress(text.encode("utf-8")))


def scores(logprobs, standardised, text: str, k: float = 0.2) -> dict[str, float]:
    """The four membership scores of one answer from its token log-probabilities."""
    mean = float(np.mean(logprobs))
    return {"loss": mean, "zlib": mean / zlib_bytes(text), "mink": lowest_mean(logprobs, k),
            "minkpp": lowest_mean(standardised, k)}


def auc(members, nonmembers) -> float:
    """Area under the ROC curve of a score that should be higher for members (ties count 1/2)."""
    members, nonmembers = np.asarray(members, dtype=float), np.asarray(nonmembers, dtype=float)
    if not len(members) or not len(nonmembers):
        raise ValueError("AUC needs at least one member and one non-member")
    ranks = rankdata(np.concatenate([members, nonmembers]))
    n1, n0 = len(members), len(nonmembers)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def privleak(auc_unlearned: float, auc_gold: float) -> float:
    """PrivLeak in percent: relative gap of the attack AUC to the gold model's."""
    return 100.0 * (auc_unlearned - auc_gold) / auc_gold
