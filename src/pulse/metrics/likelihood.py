"""Teacher-forced scoring of answer continuations: one forward pass gives, for every answer token,
its log-probability and the Min-K%++ statistic (the token's log-probability standardised by the
mean and spread of log-probabilities under the model's own next-token distribution).

Everything that needs "how likely is this answer" reuses these numbers: the truth ratio
(paraphrased vs perturbed answers) and the membership-inference scores (LOSS, zlib, Min-K%,
Min-K%++) of the training answers. Sequences are sorted by length so that batches pad little.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from pulse.metrics.prefix import PromptBatch, chunks, group_by_image, padded, run_groups
from pulse.models.encoding import Encoded, Encoder, collate


@dataclass(frozen=True)
class Continuation:
    """Token-level scores of one answer continuation (answer tokens and EOS, if appended)."""
    logprobs: tuple[float, ...]
    standardised: tuple[float, ...]

    @property
    def mean_logprob(self) -> float:
        return sum(self.logprobs) / len(self.logprobs)


def answer_ids(encoder: Encoder, answer: str) -> list[int]:
    """The answer's tokens plus EOS, exactly as training encodes answers."""
    return encoder.answer_ids(answer)


def token_statistics(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``targets`` (N,) under ``logits`` (N, V), and its Min-K%++ standardisation
    (log p(x) - mu) / sigma with mu, sigma^2 the mean and variance of log p(z), z ~ p."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    variance = (p * logp.square()).sum(-1) - mu.square()
    sigma = variance.clamp(min=1e-12).sqrt()
    return chosen, (chosen - mu) / sigma


@torch.no_grad()
def score_continuations(model, encoder: Encoder, requests: list[tuple[str, object, list[int]]],
                        batch_size: int = 64) -> list[Continuation]:
    """Scores of each (question, image or None, continuation ids) in ``requests``, in order.

    Requests that share a prompt (a question with its paraphrased and perturbed answers) share one
    forward pass of that prompt: the prompts of a batch run once (left-padded, or on their image's
    shared prefix), with the key/value cache kept; each continuation then runs on a copy of its
    prompt's cache. The first continuation
    token is scored from the prompt's last logits, so one-token continuations need no second pass.
    About ``batch_size`` continuations go through per batch.
    """
    if encoder.patch_images:  # multimodal rotary positions (Qwen2-VL): no explicit-position cache reuse
        return score_full(model, encoder, requests, batch_size)
    parameter = next(model.parameters())
    pad = encoder.tokenizer.pad_token_id
    prompt_of: dict[tuple, int] = {}
    prompts: list[tuple[str, object]] = []
    continuations: dict[int, list[int]] = {}
    for n, (question, image, ids) in enumerate(requests):
        if not ids:
            raise ValueError(f"empty continuation for question {question!r}")
        key = (question, id(image) if image is not None else None)
        if key not in prompt_of:
            prompt_of[key] = len(prompts)
            prompts.append((question, image))
        continuations.setdefault(prompt_of[key], []).append(n)
    pairs = [(encoder.prompt_ids(q, image), image) for q, image in prompts]
    results: list[Continuation | None] = [None] * len(requests)
    for batch in _prompt_batches(model, encoder, pairs, batch_size, weight=lambda p: len(continuations[p])):
        rows = [(row, n) for row, p in enumerate(batch.members) for n in continuations[p]]
        index = torch.tensor([row for row, _ in rows], device=parameter.device)
        targets, target_mask = padded([requests[n][2] for _, n in rows], pad)
        targets, target_mask = targets.to(parameter.device), target_mask.to(parameter.device)
        logits = batch.last_logits.index_select(0, index).unsqueeze(1)
        if targets.shape[1] > 1:  # tokens 2.. are predicted from the cached prompt + earlier tokens
            cache = batch.cache
            cache.reorder_cache(index)
            feed = targets[:, :-1]
            past = batch.attention_mask.index_select(0, index)
            attention = torch.cat([past, target_mask[:, :-1]], dim=1)
            positions = past.sum(-1, keepdim=True) + torch.arange(feed.shape[1], device=parameter.device)
            rest = model(input_ids=feed, attention_mask=attention, position_ids=positions, past_key_values=cache,
                         use_cache=True).logits
            logits = torch.cat([logits, rest], dim=1)
        keep = target_mask.bool()
        chosen, standardised = token_statistics(logits[keep], targets[keep])
        counts = keep.sum(dim=1).tolist()
        for (_, n), c, s in zip(rows, chosen.split(counts), standardised.split(counts)):
            results[n] = Continuation(tuple(c.tolist()), tuple(s.tolist()))
    return results


def _prompt_batches(model, encoder: Encoder, prompts: list[tuple[list[int], object]], batch_size: int,
                    weight) -> Iterator[PromptBatch]:
    """Every prompt run once with its cache kept: questions about one image on their image's
    shared prefix (prefix.py), the others left-padded, similar lengths together; about
    ``batch_size`` continuations (``weight``) per batch."""
    parameter = next(model.parameters())
    groups, plain = group_by_image(model, encoder, prompts)
    yield from run_groups(model, encoder, prompts, groups, batch_size, weight)
    plain.sort(key=lambda p: len(prompts[p][0]))
    for chunk in chunks(plain, weight, batch_size):
        ids, mask = padded([prompts[p][0] for p in chunk], encoder.tokenizer.pad_token_id, left=True)
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
        images = [encoder.pixels(prompts[p][1]) for p in chunk if prompts[p][1] is not None]
        if images:
            inputs["pixel_values"] = torch.stack(images).to(parameter.dtype)
        inputs = {k: v.to(parameter.device) for k, v in inputs.items()}
        output = model(**inputs, use_cache=True)
        yield PromptBatch(chunk, output.logits[:, -1], output.past_key_values, inputs["attention_mask"])


@torch.no_grad()
def score_full(model, encoder: Encoder, requests: list[tuple[str, object, list[int]]],
               batch_size: int = 64) -> list[Continuation]:
    """The same scores from one plain (right-padded, uncached) forward pass per sequence: the
    reference implementation that ``score_continuations`` is tested against."""
    parameter = next(model.parameters())
    results = []
    for start in range(0, len(requests), batch_size):
        chunk = requests[start:start + batch_size]
        encoded = [Encoded(encoder.prompt_ids(q, image) + list(ids), len(encoder.prompt_ids(q, image)),
                           None if image is None else encoder.pixels(image)) for q, image, ids in chunk]
        batch = collate(encoded, encoder.tokenizer.pad_token_id)
        batch = {k: v.to(parameter.device) for k, v in batch.items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(parameter.dtype)
        labels = batch.pop("labels")[:, 1:]
        logits = model(**batch).logits[:, :-1]
        mask = labels != -100
        chosen, standardised = token_statistics(logits[mask], labels[mask])
        counts = mask.sum(dim=1).tolist()
        results += [Continuation(tuple(c.tolist()), tuple(s.tolist()))
                    for c, s in zip(chosen.split(counts), standardised.split(counts))]
    return results
