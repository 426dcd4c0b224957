"""Open-question answering: batched greedy generation and its scores against the reference.

Prompts are left-padded so that every row of a batch continues from its last real token (what
batched ``generate()`` needs); questions about one image continue its shared prefix's cache
(``prefix.py``). The answer is the text generated up to the end-of-sequence token.
ROUGE-L recall (the ``rouge-score`` implementation, as MLLMU-Bench and TOFU report it) measures
how much of the reference the answer contains; exact match compares normalised strings.
"""

from __future__ import annotations

import re
from functools import lru_cache

import torch

from pulse.metrics.prefix import group_by_image, padded, shared_batches
from pulse.models.encoding import Encoder, image_inputs


@torch.no_grad()
def greedy_answers(model, encoder: Encoder, questions: list[tuple[str, object]], batch_size: int = 64,
                   max_new_tokens: int = 16) -> list[str]:
    """Greedy answers to (question, image or None) pairs, in order; batched with left padding."""
    tokenizer = encoder.tokenizer
    parameter = next(model.parameters())
    settings = {"max_new_tokens": max_new_tokens, "do_sample": False, "num_beams": 1,
                "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    prompts = [encoder.prompt_ids(q, image) for q, image in questions]
    answers: list[str | None] = [None] * len(prompts)

    def decode(members, output, width):
        for row, i in enumerate(members):
            new = output[row, width:].tolist()
            if tokenizer.eos_token_id in new:
                new = new[:new.index(tokenizer.eos_token_id)]
            answers[i] = tokenizer.decode(new, skip_special_tokens=True).strip()

    # Questions about one image continue its prefix's cache (prefix.py): the remaining tokens are
    # left-padded after the prefix, so every row still ends at its last real token.
    pairs = [(ids, image) for ids, (_, image) in zip(prompts, questions)]
    groups, plain = group_by_image(model, encoder, pairs)
    for batch in shared_batches(model, encoder, pairs, groups, batch_size):
        suffix_ids, suffix_mask = (t.to(parameter.device) for t in padded(batch.suffixes, tokenizer.pad_token_id, left=True))
        ids = torch.cat([batch.prefix_ids, suffix_ids], dim=1)
        output = model.generate(input_ids=ids, attention_mask=torch.cat([batch.prefix_mask, suffix_mask], dim=1),
                                past_key_values=batch.cache, **settings)
        decode(batch.members, output, ids.shape[1])

    plain.sort(key=lambda i: len(prompts[i]))
    for start in range(0, len(plain), batch_size):
        chunk = plain[start:start + batch_size]
        ids, mask = padded([prompts[i] for i in chunk], tokenizer.pad_token_id, left=True)
        inputs = {"input_ids": ids.to(parameter.device), "attention_mask": mask.to(parameter.device)}
        images = [encoder.pixels(questions[i][1]) for i in chunk if questions[i][1] is not None]
        inputs.update({k: v.to(parameter.device) for k, v in image_inputs(images, inputs["input_ids"]).items()})
        if images:
            inputs["pixel_values"] = inputs["pixel_values"].to(parameter.dtype)
        decode(chunk, model.generate(**inputs, **settings), ids.shape[1])
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
