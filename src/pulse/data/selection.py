"""Known-entity selection for pre-trained knowledge (the PULSE protocol): score the base model on
every candidate entity's MCQs, keep the ``top`` entities it answers best, and split them with a
seed into ``forget`` entities (in request order) and retain entities."""

from __future__ import annotations

import numpy as np

from pulse.data.records import DataError


def entity_scores(mcqs, option_scores) -> dict[str, dict]:
    """Per entity: accuracy (all, image+text, text-only), question count and mean margin of the
    correct option's log-likelihood over the best wrong option (a tie-breaker)."""
    stats: dict[str, dict] = {}
    for question, scores in zip(mcqs, option_scores):
        best = max(range(len(scores)), key=scores.__getitem__)
        wrong = max(s for i, s in enumerate(scores) if i != question.answer_index) if len(scores) > 1 else 0.0
        entry = stats.setdefault(question.entity, {"correct": 0, "questions": 0, "margin": 0.0,
                                                   "mm": [0, 0], "text": [0, 0]})
        hit = int(best == question.answer_index)
        entry["correct"] += hit
        entry["questions"] += 1
        entry["margin"] += scores[question.answer_index] - wrong
        entry[question.modality][0] += hit
        entry[question.modality][1] += 1
    return {entity: {"accuracy": e["correct"] / e["questions"], "questions": e["questions"],
                     "mean_margin": e["margin"] / e["questions"],
                     **{f"accuracy_{m}": (e[m][0] / e[m][1] if e[m][1] else None) for m in ("mm", "text")}}
            for entity, e in stats.items()}


def rank(scores: dict[str, dict]) -> list[str]:
    """Entities best answered first: accuracy, then margin, then ID (deterministic)."""
    return sorted(scores, key=lambda e: (-scores[e]["accuracy"], -scores[e]["mean_margin"], e))


def select(scores: dict[str, dict], top: int, forget: int, seed: int) -> dict:
    if top > len(scores):
        raise DataError(f"data.select_known.top is {top} but only {len(scores)} candidate entities were scored")
    if forget >= top:
        raise DataError(f"data.select_known.forget ({forget}) must be smaller than top ({top})")
    ranking = rank(scores)
    known = ranking[:top]
    order = [known[i] for i in np.random.default_rng(seed).permutation(top)]
    return {"ranking": ranking, "known": known, "forget": order[:forget], "retain": sorted(order[forget:]),
            "threshold_accuracy": scores[known[-1]]["accuracy"], "top": top, "seed": seed}
