"""Questions about one image share the beginning of their prompt: run it once per image.

In LLaVA-style prompts the image comes first, so every question about one image starts with the
same tokens: ``<bos> <image>x16 Question :`` on the tiny model, ``USER: <image>x576`` on LLaVA-1.5
(where the image is ~95% of the prompt). MLLMU-Bench asks several questions per image (the
default world: 4 MCQs and 4 open questions per image and variant), so evaluation runs that shared
prefix once per image, keeps its keys and values, and runs only the rest of each question on top
of them. The outputs are the same function of the same tokens (the floating-point sums run in
another order: tested equal to plain passes within 1e-4).

Used only where this is exact: not for patch-sequence images with multimodal rotary positions
(Qwen2-VL family), sliding-window attention, or a model that picks its weights from the whole
prompt (``RoutedExperts``); those prompts, text-only prompts and images asked once run plainly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch

from pulse.models.encoding import Encoder, image_inputs


@dataclass
class PromptBatch:
    """Prompts run through the model: ``members`` (the caller's prompt indices, one per row), the
    logits after each prompt's last token, the key/value cache, and which cache positions hold
    real tokens (a later pass continues the cache at ``attention_mask.sum(-1)``)."""
    members: list[int]
    last_logits: torch.Tensor
    cache: object
    attention_mask: torch.Tensor


@dataclass
class Group:
    """Prompts that begin with the same ``prefix_length`` tokens, image included."""
    members: list[int]
    prefix_length: int


def shares_prefixes(model, encoder: Encoder) -> bool:
    if encoder.patch_images or getattr(model, "routes_whole_prompts", False):
        return False
    text = model.config.get_text_config()
    layer_types = getattr(text, "layer_types", None) or []
    return getattr(text, "sliding_window", None) is None and "sliding_attention" not in layer_types


def group_by_image(model, encoder: Encoder, prompts: list[tuple[list[int], object]]) -> tuple[list[Group], list[int]]:
    """Split prompts (ids, image or None) into groups that share an image and a prefix covering
    all its image tokens, and the rest (text-only, an image asked once, nothing to share)."""
    image_token = getattr(encoder.processor, "image_token_id", None)
    if image_token is None or not shares_prefixes(model, encoder):
        return [], list(range(len(prompts)))
    by_image: dict[int, list[int]] = {}
    plain = []
    for n, (_, image) in enumerate(prompts):
        if image is None:
            plain.append(n)
        else:
            by_image.setdefault(id(image), []).append(n)
    groups = []
    for members in by_image.values():
        sequences = [prompts[n][0] for n in members]
        # At least one token of each prompt stays outside the prefix: its logits are the output.
        length = min(len(os.path.commonprefix(sequences)), min(len(s) for s in sequences) - 1)
        image_positions = [i for i, token in enumerate(sequences[0]) if token == image_token]
        if len(members) < 2 or not image_positions or length <= image_positions[-1]:
            plain += members
        else:
            groups.append(Group(members, length))
    return groups, sorted(plain)


def padded(sequences: list[list[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and attention mask of ``sequences`` padded to one width, on the left or the right."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        columns = slice(width - len(sequence), width) if left else slice(0, len(sequence))
        ids[row, columns] = torch.tensor(sequence, dtype=torch.long)
        mask[row, columns] = 1
    return ids, mask


def _select_rows(cache, rows: torch.Tensor):
    """A new cache holding ``rows`` of ``cache`` (which stays usable for other rows)."""
    from transformers import DynamicCache
    return DynamicCache([(keys.index_select(0, rows), values.index_select(0, rows)) for keys, values, *_ in cache])


def chunks(items: list, weight, budget: int) -> Iterator[list]:
    """Consecutive items, about ``budget`` weight per chunk (an item heavier than that alone)."""
    chunk, size = [], 0
    for item in items:
        chunk.append(item)
        size += weight(item)
        if size >= budget:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


@dataclass
class SharedBatch:
    """Prompts of one batch on their prefixes' cache: ``members`` (the caller's prompt indices),
    each row's prefix ids and mask (left-padded), a cache of those prefixes that this batch owns,
    and each prompt's remaining ids."""
    members: list[int]
    prefix_ids: torch.Tensor
    prefix_mask: torch.Tensor
    cache: object
    suffixes: list[list[int]]


@torch.no_grad()
def shared_batches(model, encoder: Encoder, prompts: list[tuple[list[int], object]], groups: list[Group],
                   batch_size: int, weight=lambda n: 1) -> Iterator[SharedBatch]:
    """Each window of groups runs its distinct prefixes in one pass (left-padded, with their
    images); its prompts then come in batches of about ``batch_size`` weight (``weight(n)``: e.g.
    the continuations prompt n will need), similar remaining lengths together."""
    parameter = next(model.parameters())
    suffix_length = lambda n, g: len(prompts[n][0]) - g.prefix_length  # noqa: E731
    ordered = sorted(groups, key=lambda g: (g.prefix_length, max(suffix_length(n, g) for n in g.members)))
    for window in chunks(ordered, lambda g: sum(weight(n) for n in g.members), batch_size):
        prefixes = [prompts[g.members[0]][0][:g.prefix_length] for g in window]
        ids, mask = padded(prefixes, encoder.tokenizer.pad_token_id, left=True)
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
        inputs.update(image_inputs([encoder.pixels(prompts[g.members[0]][1]) for g in window], ids))
        inputs = {k: v.to(parameter.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(parameter.dtype)
        cache = model(**inputs, use_cache=True).past_key_values

        rows = [(slot, n) for slot, g in enumerate(window) for n in g.members]
        rows.sort(key=lambda row: suffix_length(row[1], window[row[0]]))
        for chosen in chunks(rows, lambda row: weight(row[1]), batch_size):
            slots = torch.tensor([slot for slot, _ in chosen], device=parameter.device)
            yield SharedBatch([n for _, n in chosen], inputs["input_ids"].index_select(0, slots),
                              inputs["attention_mask"].index_select(0, slots), _select_rows(cache, slots),
                              [prompts[n][0][window[slot].prefix_length:] for slot, n in chosen])


@torch.no_grad()
def run_groups(model, encoder: Encoder, prompts: list[tuple[list[int], object]], groups: list[Group],
               batch_size: int, weight=lambda n: 1) -> Iterator[PromptBatch]:
    """The groups' prompts run on their shared prefixes (``shared_batches``): the remaining tokens
    right-padded after the prefix, logits taken at each prompt's own last token."""
    device = next(model.parameters()).device
    for batch in shared_batches(model, encoder, prompts, groups, batch_size, weight):
        suffix_ids, suffix_mask = (t.to(device) for t in padded(batch.suffixes, encoder.tokenizer.pad_token_id))
        attention = torch.cat([batch.prefix_mask, suffix_mask], dim=1)
        positions = batch.prefix_mask.sum(-1, keepdim=True) + torch.arange(suffix_ids.shape[1], device=device)
        output = model(input_ids=suffix_ids, attention_mask=attention, position_ids=positions,
                       past_key_values=batch.cache, use_cache=True)
        last = suffix_mask.sum(-1) - 1
        last_logits = output.logits[torch.arange(len(batch.members), device=device), last]
        yield PromptBatch(batch.members, last_logits, output.past_key_values, attention)
