"""Stage 5: score one checkpoint on every MCQ of every population (train and test variants,
image+text and text-only), writing one JSON record per question."""

from __future__ import annotations

from pathlib import Path

from pulse.data.records import load_examples
from pulse.io import write_json
from pulse.metrics.mcq import choices, score_options
from pulse.models.chain import load_chain
from pulse.models.encoding import PROMPTS, Encoder

EVAL_FILES = [("world", "train"), ("world", "test"), ("fictitious", "train"), ("fictitious", "test"),
              ("holdout", "train"), ("holdout", "test"), ("utility", "test")]


def run(params: dict, data_dir: str | Path, base_dir: str | Path, chain: list[str], out: str | Path,
        log=print) -> None:
    model, processor = load_chain(base_dir, chain, params["device"], params["dtype"])
    encoder = Encoder(processor, PROMPTS[params["backend"]])
    records = []
    for population, variant in EVAL_FILES:
        _, mcqs = load_examples(Path(data_dir) / f"{population}_{variant}.parquet")
        scores = score_options(model, encoder, mcqs, params["batch_size"])
        for question, option_scores, choice in zip(mcqs, scores, choices(scores)):
            records.append({"entity": question.entity, "population": population, "variant": variant,
                            "modality": question.modality, "correct": int(choice == question.answer_index),
                            "answer_logprob": option_scores[question.answer_index]})
    log(f"scored {len(records)} questions; accuracy {sum(r['correct'] for r in records) / len(records):.3f}")
    write_json(out, {"chain": [str(c) for c in chain], "items": records})
