"""Truth ratio, forget quality and model utility (TOFU, Maini et al. 2024).

Truth ratio of one question: how much more likely the model finds wrong answers than a
paraphrase of the right one, each probability length-normalised (``P(a|q)^(1/|a|)``):

    R = mean_j P(perturbed_j | q)^(1/|perturbed_j|)  /  P(paraphrase | q)^(1/|paraphrase|)

R << 1: the model prefers the truth; R ~ 1: it cannot tell truth from falsehood (what a model that
never saw the entity does); R >> 1: it prefers falsehoods. Paraphrases (not the trained answer)
keep the measure about the *fact*, not the memorised string.

Forget quality: the two-sample Kolmogorov-Smirnov p-value between the unlearned model's and the
gold model's truth ratios on the forget set. High (~1) = the distributions are indistinguishable,
i.e. the model looks as if it never saw the forget set; low = it does not.

Truth score: ``max(0, 1 - R)`` averaged over questions (TOFU's summary on data to keep).
Model utility: the harmonic mean of the kept-knowledge scores (see ``model_utility``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import ks_2samp


def truth_ratio(paraphrase_logprobs, perturbed_logprobs: list) -> float:
    """R from the token log-probabilities of the paraphrase and of each perturbed answer."""
    if not len(paraphrase_logprobs) or not perturbed_logprobs or not all(len(p) for p in perturbed_logprobs):
        raise ValueError("truth ratio needs a non-empty paraphrase and perturbed answers")
    right = float(np.mean(paraphrase_logprobs))
    wrong = [float(np.mean(p)) for p in perturbed_logprobs]
    # log of mean_j exp(wrong_j), computed stably, minus log of exp(right)
    top = max(wrong)
    log_mean_wrong = top + math.log(sum(math.exp(w - top) for w in wrong) / len(wrong))
    return math.exp(log_mean_wrong - right)


def truth_score(ratios) -> float:
    """Mean of max(0, 1 - R): 1 = always prefers the truth, 0 = never."""
    return float(np.mean(np.maximum(0.0, 1.0 - np.asarray(ratios, dtype=float))))


def geometric_mean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.exp(np.mean(np.log(np.maximum(values, 1e-300)))))


def forget_quality(unlearned_ratios, gold_ratios) -> float:
    """KS two-sample p-value between the two truth-ratio samples (1 = identical distributions)."""
    if not len(unlearned_ratios) or not len(gold_ratios):
        raise ValueError("forget quality needs truth ratios from both models")
    return float(ks_2samp(np.asarray(unlearned_ratios, dtype=float), np.asarray(gold_ratios, dtype=float)).pvalue)


def harmonic_mean(values) -> float:
    """Harmonic mean; 0 if any value is 0 (one destroyed ability ruins utility, as in TOFU)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("harmonic mean of nothing")
    if any(v < 0 for v in values):
        raise ValueError(f"harmonic mean of negative values {values}")
    if any(v == 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)
