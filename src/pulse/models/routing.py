"""Switchable LoRA experts behind a router (LUMoE-style lifelong unlearning).

Each unlearning request of a routed method trains its own LoRA expert on the starting model of
the chain and stores, next to the adapter, its router (``router.safetensors``): the distinct
input-embedding vectors of the request's forget prompts (``keys``) and of the retain prompts
(``negatives``). At inference an input goes to the expert whose forget prompts cover it best if

    coverage(input, keys) >= threshold   and   coverage(input, keys) > coverage(input, negatives)

coverage(input, K) = mean over the prompt's positions of max cosine(input embedding there, any k in K)

otherwise no expert is applied and the output is the starting model's, bit for bit. The
embeddings are the language model's input embeddings (token embeddings, with the projected image
features at the image positions) of the starting model: an input is covered when both its words
(the entity's name, the question's words) and its image patches were seen in the forget prompts.
A question about a retain entity is covered at least as well by the negatives, so it is never
routed; inputs from elsewhere (other entities, other tasks) must reach the threshold. Only prompt
positions count (up to the end of the prompt template, e.g. ``Answer :``), so every answer option
of one question is routed alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROUTER_FILE = "router.safetensors"
ROUTER_SETTINGS = "router.json"


def is_expert(adapter_dir: str | Path) -> bool:
    return (Path(adapter_dir) / ROUTER_FILE).exists()


def _language_model(model) -> torch.nn.Module:
    for name, module in model.named_modules():
        if name.endswith("language_model") and hasattr(module, "layers"):
            return module
    raise ValueError("routing needs a LLaVA-style model with a `language_model` decoder")


class _Embedded(Exception):
    """Raised by the capture hook to stop a forward pass once the input embeddings exist."""

    def __init__(self, embeds: torch.Tensor):
        super().__init__("input embeddings captured")
        self.embeds = embeds


@torch.no_grad()
def input_embeddings(model, inputs: dict) -> torch.Tensor:
    """The language model's ``inputs_embeds`` for ``inputs`` (token embeddings with the projected
    image features merged in), without running the language model itself."""

    def hook(_module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        raise _Embedded((embeds if embeds is not None else args[0]).detach())

    handle = _language_model(model).register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(**{k: v for k, v in inputs.items() if k not in ("labels", "past_key_values", "use_cache")})
    except _Embedded as captured:
        return captured.embeds
    finally:
        handle.remove()
    raise RuntimeError("the language model was never called")


def prompt_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, suffix: list[int]) -> torch.Tensor:
    """Positions that count for routing: attended, not the first attended one (BOS), and not after
    the last occurrence of the prompt template's ``suffix`` ids (the answer scored comes after it)."""
    mask = attention_mask.bool().clone()
    rows = torch.arange(mask.shape[0], device=mask.device)
    mask[rows, attention_mask.long().argmax(dim=1)] = False  # first real token (left or right padding)
    n = len(suffix)
    if n and input_ids.shape[1] >= n:
        pattern = torch.tensor(suffix, device=input_ids.device)
        hits = (input_ids.unfold(1, n, 1) == pattern).all(dim=-1)  # (B, T-n+1): suffix starts here
        starts = torch.arange(hits.shape[1], device=input_ids.device)
        last = torch.where(hits, starts, torch.full_like(starts, -1)).max(dim=1).values
        end = torch.where(last >= 0, last + n, torch.full_like(last, input_ids.shape[1]))
        mask &= torch.arange(input_ids.shape[1], device=input_ids.device) < end.unsqueeze(1)
    return mask


def coverage(embeds: torch.Tensor, mask: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(B,) mean over masked positions of the best cosine similarity to any key."""
    similarity = F.normalize(embeds.float(), dim=-1) @ keys.float().T
    best = similarity.max(dim=-1).values * mask
    return best.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@torch.no_grad()
def router_keys(model, batches, suffix: list[int]) -> torch.Tensor:
    """The distinct normalised input embeddings of the prompt positions of ``batches`` (model =
    the starting model; pass a peft model inside its ``disable_adapter()``)."""
    keys = []
    for batch in batches:
        embeds = input_embeddings(model, batch)
        mask = prompt_mask(batch["input_ids"], batch["attention_mask"], suffix)
        keys.append(F.normalize(embeds.float(), dim=-1)[mask])
    keys = torch.cat(keys)
    return torch.unique(keys, dim=0).contiguous()


def save_router(out_dir: str | Path, keys: torch.Tensor, negatives: torch.Tensor, threshold: float,
                suffix: list[int]) -> None:
    """Write the router next to an adapter (inside the stage's atomic output directory)."""
    save_file({"keys": keys.cpu(), "negatives": negatives.cpu()}, str(Path(out_dir) / ROUTER_FILE))
    (Path(out_dir) / ROUTER_SETTINGS).write_text(
        json.dumps({"threshold": threshold, "prompt_suffix": suffix}, indent=1) + "\n")


def load_router(adapter_dir: str | Path) -> dict:
    settings = json.loads((Path(adapter_dir) / ROUTER_SETTINGS).read_text())
    return {**load_file(str(Path(adapter_dir) / ROUTER_FILE)), **settings}


class RoutedExperts(torch.nn.Module):
    """The starting model plus switchable experts, called exactly like the model it wraps
    (``forward``, cached continuation passes, ``generate``).

    Each row is routed from its input embeddings (an embedding-only pass of the starting model),
    then one forward pass applies to every row its own expert, or none (peft's mixed-adapter
    batches): a row routed nowhere is computed by the starting model's layers alone, bit for bit.
    A key/value cache returned by ``forward`` remembers its rows' routes (also through
    ``reorder_cache``), so a later pass that continues it applies the same experts.
    """

    BASE = "__base__"
    routes_whole_prompts = True  # a prompt's expert depends on all of it: no shared-prefix passes

    def __init__(self, model, expert_dirs: list[str | Path]):
        super().__init__()
        from peft import PeftModel

        names = [f"expert{i}" for i in range(1, len(expert_dirs) + 1)]
        peft_model = PeftModel.from_pretrained(model, expert_dirs[0], adapter_name=names[0],
                                               use_safetensors=True)
        for name, directory in zip(names[1:], expert_dirs[1:]):
            peft_model.load_adapter(directory, adapter_name=name, use_safetensors=True)
        self.model = peft_model.eval()
        self.names = names
        routers = [load_router(d) for d in expert_dirs]
        device = next(model.parameters()).device
        for name, router in zip(names, routers):
            self.register_buffer(f"keys_{name}", router["keys"].to(device), persistent=False)
            self.register_buffer(f"negatives_{name}", router["negatives"].to(device), persistent=False)
        self.thresholds = [float(r["threshold"]) for r in routers]
        self.suffix = routers[-1]["prompt_suffix"]

    @property
    def config(self):
        return self.model.config

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    @property
    def device(self):
        return next(self.parameters()).device

    def route(self, inputs: dict) -> torch.Tensor:
        """(B,) index of the expert each row goes to, -1 for none."""
        with self.model.disable_adapter():
            embeds = input_embeddings(self.model, inputs)
        attention = inputs.get("attention_mask")
        if attention is None:
            attention = torch.ones_like(inputs["input_ids"])
        mask = prompt_mask(inputs["input_ids"], attention, self.suffix)
        scores = torch.stack([coverage(embeds, mask, getattr(self, f"keys_{n}")) for n in self.names], dim=1)
        negative = torch.stack([coverage(embeds, mask, getattr(self, f"negatives_{n}")) for n in self.names], dim=1)
        above = (scores >= torch.tensor(self.thresholds, device=scores.device)) & (scores > negative)
        best = scores.masked_fill(~above, float("-inf")).argmax(dim=1)
        return torch.where(above.any(dim=1), best, torch.full_like(best, -1))

    def adapter_names(self, route: torch.Tensor) -> list[str]:
        return [self.BASE if r < 0 else self.names[r] for r in route.tolist()]

    @staticmethod
    def _remember(cache, route: torch.Tensor) -> None:
        """Attach the rows' routes to a returned cache, following its row reordering."""
        if cache is None or getattr(cache, "pulse_route", None) is not None:
            return
        cache.pulse_route = route
        reorder = cache.reorder_cache

        def reorder_with_route(beam_idx):
            reorder(beam_idx)
            cache.pulse_route = cache.pulse_route[beam_idx.to(cache.pulse_route.device)]

        cache.reorder_cache = reorder_with_route

    def forward(self, **inputs):
        cache = inputs.get("past_key_values")
        route = getattr(cache, "pulse_route", None) if cache is not None else None
        if route is None:
            if cache is not None and cache.get_seq_length() > 0:
                raise ValueError("RoutedExperts: a cache that did not come from this model cannot be continued")
            route = self.route(inputs)
        output = self.model(**inputs, adapter_names=self.adapter_names(route))
        self._remember(getattr(output, "past_key_values", None), route)
        return output

    @torch.no_grad()
    def generate(self, **inputs):
        settings = {k: v for k, v in inputs.items() if not torch.is_tensor(v)}
        tensors = {k: v for k, v in inputs.items() if torch.is_tensor(v)}
        route = self.route(tensors)
        return self.model.generate(**tensors, **settings, adapter_names=self.adapter_names(route))
