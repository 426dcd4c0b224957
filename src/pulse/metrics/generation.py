"""Open-question answering: batched greedy generation and its scores against the reference.

Prompts are left-padded so that every row of a batch continues from its last real token (what
batched ``generate()`` needs); the answer is the text generated up to the end-of-sequence token.
ROUGE-L recall (the ``rouge-score`` implementation, as MLLMU-Bench and TOFU report it) measures
how much of the reference the answer contains; exact match compares normalised strings.
"""

from __future__ import annotations

import re
from functools import lru_cache

import torch

from pulse.metrics.prefix import left_padded
from pulse.models.encoding import Encoder, image_inputs


@torch.no_grad()
def greedy_answers(model, encoder: Encoder, questions: list[tuple[str, object]], batch_size: int = 64,
                   max_new_tokens: int = 16) -> list[str]:
    """Greedy answers to (question, image or None) pairs, in order; batched with left padding."""
    tokenizer = encoder.tokenizer
    parameter = next(model.parameters())
    prompts = [encoder.prompt_ids(q, image) for q, image in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[str | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids, mask = left_padded([prompts[i] for i in chunk], tokenizer.pad_token_id)
        inputs = {"input_ids": ids.to(parameter.device), "attention_mask": mask.to(parameter.device)}
        images = [encoder.pixels(questions[i][1]) for i in chunk if questions[i][1] is not None]
        inputs.update({k: v.to(parameter.device) for k, v in image_inputs(images, inputs["input_ids"]).items()})
        if images:
            inputs["pixel_values"] = inputs["pixel_values"].to(parameter.dtype)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(chunk):
            new = output[row, ids.shape[1]:].tolist()
            if tokenizer.eos_token_id in new:
                new = new[:new.index(tokenizer.eos_token_id)]
            answers[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return answers


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall: longest common subsequence / reference length (in rouge-score's tokens)."""
    return float(_scorer().score(reference, prediction)["rougeL"].recall)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z ]", " ", text.lower()).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))
