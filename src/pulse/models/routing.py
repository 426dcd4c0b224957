"""Switchable LoRA experts behind a router (LUMoE-style lifelong unlearning).

Each unlearning request of a routed method trains its own LoRA expert on the starting model of
the chain and stores, next to the adapter, its router: the set of input-embedding vectors of the
request's forget prompts (``router.safetensors``). At inference an input is routed to the expert
whose forget prompts cover it best, if that *coverage* reaches the expert's threshold; otherwise no
expert is applied and the output is the starting model's, bit for bit.

coverage(input, expert) = mean over the prompt's positions of max cosine(input embedding at the
position, any stored embedding of the expert's forget prompts)

The embeddings are the language model's input embeddings (token embeddings, with the projected
image features at the image positions) of the starting model, so an input is covered when both its
words (the entity's name, the question's words) and its image patches were seen in the forget
prompts; a retain entity's name or image is not. Only prompt positions count (up to the end of the
prompt template, e.g. ``Answer :``), so every answer option of one question is routed alike.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
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


@contextmanager
def captured_input_embeddings(model):
    """Collects the language model's ``inputs_embeds`` (image features merged in) of each forward."""
    captured: list[torch.Tensor] = []

    def hook(_module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        if embeds is None and args:
            embeds = args[0]
        captured.append(embeds.detach())

    handle = _language_model(model).register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield captured
    finally:
        handle.remove()


def prompt_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, suffix: list[int]) -> torch.Tensor:
    """Positions that count for routing: attended, not the first (BOS), and not after the last
    occurrence of the prompt template's ``suffix`` ids (the answer being scored comes after it)."""
    mask = attention_mask.bool().clone()
    mask[:, 0] = False
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
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with captured_input_embeddings(model) as captured:
            model(**inputs)
        mask = prompt_mask(inputs["input_ids"], inputs["attention_mask"], suffix)
        keys.append(F.normalize(captured[0].float(), dim=-1)[mask])
    keys = torch.cat(keys)
    return torch.unique(keys, dim=0).contiguous()


def save_router(out_dir: str | Path, keys: torch.Tensor, threshold: float, suffix: list[int]) -> None:
    """Write the router next to an adapter (inside the stage's atomic output directory)."""
    save_file({"keys": keys.cpu()}, str(Path(out_dir) / ROUTER_FILE))
    (Path(out_dir) / ROUTER_SETTINGS).write_text(
        json.dumps({"threshold": threshold, "prompt_suffix": suffix}, indent=1) + "\n")


def load_router(adapter_dir: str | Path) -> dict:
    settings = json.loads((Path(adapter_dir) / ROUTER_SETTINGS).read_text())
    return {"keys": load_file(str(Path(adapter_dir) / ROUTER_FILE))["keys"], **settings}


class RoutedExperts(torch.nn.Module):
    """The starting model plus switchable experts; called exactly like the model it wraps.

    ``forward`` runs the starting model (every expert off) on the whole batch, routes each row
    from the captured input embeddings, and recomputes only the routed rows with their expert.
    Rows routed nowhere are therefore the starting model's output, unchanged bit for bit.
    """

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
        for name, router in zip(names, routers):
            self.register_buffer(f"keys_{name}", router["keys"].to(next(model.parameters()).device),
                                 persistent=False)
        self.thresholds = [float(r["threshold"]) for r in routers]
        self.suffix = routers[-1]["prompt_suffix"]
        self.image_token_id = getattr(model.config, "image_token_id", None)

    @property
    def config(self):
        return self.model.config

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    @property
    def device(self):
        return next(self.parameters()).device

    def route(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              embeds: torch.Tensor) -> torch.Tensor:
        """(B,) index of the expert each row goes to, -1 for none."""
        mask = prompt_mask(input_ids, attention_mask, self.suffix)
        scores = torch.stack([coverage(embeds, mask, getattr(self, f"keys_{name}"))
                              for name in self.names], dim=1)
        above = scores >= torch.tensor(self.thresholds, device=scores.device)
        best = scores.masked_fill(~above, float("-inf")).argmax(dim=1)
        return torch.where(above.any(dim=1), best, torch.full_like(best, -1))

    def _rows(self, inputs: dict, rows: torch.Tensor) -> dict:
        """The inputs of a subset of rows (pixel values follow the rows that hold an image)."""
        ids = inputs["input_ids"]
        subset = {}
        for key, value in inputs.items():
            if key == "pixel_values" and value is not None:
                has_image = (ids == self.image_token_id).any(dim=1)
                if value.shape[0] != int(has_image.sum()):
                    raise ValueError("routing expects one image per row that has image tokens")
                image_index = torch.cumsum(has_image.long(), dim=0) - 1
                subset[key] = value[image_index[rows][has_image[rows]]]
            elif torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == ids.shape[0]:
                subset[key] = value[rows]
            else:
                subset[key] = value
        return subset

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
        with self.model.disable_adapter(), captured_input_embeddings(self.model) as captured:
            output = self.model(**inputs)
        choice = self.route(input_ids, attention_mask, captured[0])
        if (choice >= 0).any():
            logits = output.logits.clone()
            for index, name in enumerate(self.names):
                rows = torch.nonzero(choice == index).squeeze(1)
                if len(rows):
                    self.model.set_adapter(name)
                    logits[rows] = self.model(**self._rows(inputs, rows)).logits
            output.logits = logits
        output.loss = None
        if labels is not None:
            shifted = output.logits[:, :-1].float()
            output.loss = F.cross_entropy(shifted.reshape(-1, shifted.shape[-1]), labels[:, 1:].reshape(-1),
                                          ignore_index=-100)
        return output

    @torch.no_grad()
    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        """Greedy/sampled generation, each row with the expert its prompt is routed to."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
                  **{k: v for k, v in kwargs.items() if torch.is_tensor(v)}}
        settings = {k: v for k, v in kwargs.items() if not torch.is_tensor(v)}
        with self.model.disable_adapter(), captured_input_embeddings(self.model) as captured:
            self.model(**inputs)
        choice = self.route(input_ids, attention_mask, captured[0])
        outputs: dict[int, torch.Tensor] = {}
        for index in sorted(set(choice.tolist())):
            rows = torch.nonzero(choice == index).squeeze(1)
            if index < 0:
                with self.model.disable_adapter():
                    generated = self.model.generate(**self._rows(inputs, rows), **settings)
            else:
                self.model.set_adapter(self.names[index])
                generated = self.model.generate(**self._rows(inputs, rows), **settings)
            for row, sequence in zip(rows.tolist(), generated):
                outputs[row] = sequence
        width = max(len(s) for s in outputs.values())
        pad = self.model.config.get_text_config().pad_token_id or 0
        result = torch.full((len(outputs), width), pad, dtype=input_ids.dtype, device=input_ids.device)
        for row, sequence in outputs.items():
            result[row, :len(sequence)] = sequence
        return result
