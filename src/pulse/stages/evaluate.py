"""Stage 5: score one checkpoint, writing one JSON record per question.

- ``items``: every MCQ of every population (train and test variants, image+text and text-only),
  answered by option likelihood;
- ``open``: open questions (a strided subset of ``open_questions`` per entity and modality, train
  and test variants, plus the utility task): the greedy answer with ROUGE-L recall and exact match;
  on training questions and the utility task also the truth ratio (paraphrased vs perturbed
  answers) and the membership-inference scores of the reference answer, all from one
  teacher-forced pass per answer.
"""

from __future__ import annotations

import time
from pathlib import Path

from pulse.data.records import load_examples
from pulse.io import write_json
from pulse.metrics import mia
from pulse.metrics.generation import exact_match, greedy_answers, rouge_l_recall
from pulse.metrics.likelihood import answer_ids, score_continuations
from pulse.metrics.mcq import choices, score_options
from pulse.metrics.truth import truth_ratio
from pulse.models.chain import load_chain
from pulse.models.encoding import PROMPTS, Encoder

EVAL_FILES = [("world", "train"), ("world", "test"), ("fictitious", "train"), ("fictitious", "test"),
              ("holdout", "train"), ("holdout", "test"), ("utility", "test")]
# Open questions: (population, variant, teacher-forced likelihoods too?); the test variants of
# the entities only with ``generate_test``.
OPEN_FILES = [("world", "train", True), ("fictitious", "train", True), ("holdout", "train", True),
              ("utility", "test", True)]
OPEN_TEST_FILES = [("world", "test", False), ("fictitious", "test", False), ("holdout", "test", False)]
DEFAULTS = {"open_questions": 4, "generate_test": False, "max_new_tokens": 8, "mink_fraction": 0.2}


def strided(qas, per_group: int):
    """Up to ``per_group`` open questions per (entity, modality), evenly spaced over its list
    (on the synthetic data with 4: one template of each attribute)."""
    sizes: dict[tuple, int] = {}
    for qa in qas:
        key = (qa.entity, qa.modality)
        sizes[key] = max(sizes.get(key, 0), qa.index + 1)
    keep = {key: {round(i * size / per_group) for i in range(min(per_group, size))} for key, size in sizes.items()}
    return [qa for qa in qas if qa.index in keep[(qa.entity, qa.modality)]]


def open_records(model, encoder, data_dir: Path, params: dict, log=print) -> list[dict]:
    settings = {**DEFAULTS, **params}
    batch = settings["batch_size"]
    chosen = []  # (population, variant, with_likelihood, qa)
    files = OPEN_FILES + (OPEN_TEST_FILES if settings["generate_test"] else [])
    for population, variant, likelihood in files:
        qas, _ = load_examples(data_dir / f"{population}_{variant}.parquet")
        chosen += [(population, variant, likelihood, qa) for qa in strided(qas, settings["open_questions"])]

    start = time.process_time()
    answers = greedy_answers(model, encoder, [(qa.question, qa.image) for *_, qa in chosen], batch,
                             settings["max_new_tokens"])
    generated = time.process_time()

    # One teacher-forced pass over every continuation: reference answers (membership scores),
    # paraphrases and perturbed answers (truth ratio).
    requests, owners = [], []
    for n, (_, _, likelihood, qa) in enumerate(chosen):
        if not likelihood:
            continue
        requests.append((qa.question, qa.image, answer_ids(encoder, qa.answer)))
        owners.append((n, "answer"))
        if qa.paraphrase and qa.perturbed:
            for role, text in [("paraphrase", qa.paraphrase)] + [("perturbed", p) for p in qa.perturbed]:
                requests.append((qa.question, qa.image, answer_ids(encoder, text)))
                owners.append((n, role))
    scored = score_continuations(model, encoder, requests, batch)
    by_item: dict[int, dict[str, list]] = {}
    for (n, role), result in zip(owners, scored):
        by_item.setdefault(n, {}).setdefault(role, []).append(result)
    done = time.process_time()

    records = []
    for n, ((population, variant, _, qa), answer) in enumerate(zip(chosen, answers)):
        record = {"entity": qa.entity, "population": population, "variant": variant, "modality": qa.modality,
                  "index": qa.index, "prediction": answer, "rouge_l": rouge_l_recall(answer, qa.answer),
                  "exact": exact_match(answer, qa.answer)}
        parts = by_item.get(n, {})
        if "answer" in parts:
            reference = parts["answer"][0]
            for name, value in mia.scores(reference.logprobs, reference.standardised, qa.answer,
                                          settings["mink_fraction"]).items():
                record[f"mia_{name}"] = value
        if "paraphrase" in parts:
            record["truth_ratio"] = truth_ratio(parts["paraphrase"][0].logprobs,
                                                [p.logprobs for p in parts["perturbed"]])
        records.append(record)
    log(f"open questions: {len(chosen)} generated in {generated - start:.1f} CPU s; "
        f"{len(requests)} answers scored in {done - generated:.1f} CPU s")
    return records


def run(params: dict, data_dir: str | Path, base_dir: str | Path, chain: list[str], out: str | Path,
        log=print) -> None:
    data_dir = Path(data_dir)
    model, processor = load_chain(base_dir, chain, params["device"], params["dtype"])
    encoder = Encoder(processor, PROMPTS[params["backend"]])
    start = time.process_time()
    records = []
    for population, variant in EVAL_FILES:
        _, mcqs = load_examples(data_dir / f"{population}_{variant}.parquet")
        scores = score_options(model, encoder, mcqs, params["batch_size"])
        for question, option_scores, choice in zip(mcqs, scores, choices(scores)):
            records.append({"entity": question.entity, "population": population, "variant": variant,
                            "modality": question.modality, "correct": int(choice == question.answer_index),
                            "answer_logprob": option_scores[question.answer_index]})
    log(f"scored {len(records)} questions in {time.process_time() - start:.1f} CPU s; "
        f"accuracy {sum(r['correct'] for r in records) / len(records):.3f}")
    open_items = open_records(model, encoder, data_dir, params, log)
    write_json(out, {"chain": [str(c) for c in chain], "items": records, "open": open_items})
