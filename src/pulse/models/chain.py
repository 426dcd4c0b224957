"""The model at step k of a chain: base weights + fine-tune adapter + step adapters 1..k.

Each stage stores only its own LoRA delta; adapters are merged in order into the base so that
the next stage trains a fresh adapter on top. Weights load from safetensors only. Adapters saved
with a router (routed methods such as LUMoE) are not merged: they stay switchable experts on top
of the merged model (``pulse.models.routing``).
"""

from __future__ import annotations

import json
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model

from pulse.io import atomic_dir
from pulse.models.backends import DTYPES, LM_LINEAR, device_of, load_model  # noqa: F401


def load_base(base_dir: str | Path, device: str = "cpu", dtype: str = "float32"):
    """The base model of any back-end (see models/backends.py) and its processor."""
    return load_model(base_dir, device, dtype)


def merge_adapter(model, adapter_dir: str | Path):
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_model.safetensors").exists():
        raise FileNotFoundError(f"{adapter_dir}: adapter_model.safetensors missing")
    return PeftModel.from_pretrained(model, adapter_dir, use_safetensors=True).merge_and_unload()


def split_experts(adapters) -> tuple[list, list]:
    """(adapters to merge, routed experts); experts must come last in a chain."""
    from pulse.models.routing import is_expert

    adapters = list(adapters)
    first = next((i for i, a in enumerate(adapters) if is_expert(a)), len(adapters))
    merged, experts = adapters[:first], adapters[first:]
    if not all(is_expert(a) for a in experts):
        raise ValueError(f"chain {adapters}: a plain adapter follows a routed expert")
    return merged, experts


def load_chain(base_dir, adapters=(), device: str = "cpu", dtype: str = "float32", experts: bool = True):
    """The model at the end of ``adapters`` and its processor: plain adapters merged in order, then
    any routed experts behind their router (``experts=False``: without them, i.e. the model the
    experts start from). Called the same way whatever the method."""
    merged, routed = split_experts(adapters)
    model, processor = load_base(base_dir, device, dtype)
    for adapter in merged:
        model = merge_adapter(model, adapter)
    if routed and experts:
        from pulse.models.routing import RoutedExperts
        model = RoutedExperts(model, routed)
    return model.eval(), processor


def add_lora(model, rank: int, alpha: int, dropout: float = 0.0, modules=LM_LINEAR):
    """A fresh LoRA adapter on the language model's linear layers only (not the vision tower),
    or on the modules of the base's training policy (back-end, projector/vision tower trained)."""
    target = getattr(model, "pulse_lora_target", None) or r".*language_model.*\.(" + "|".join(modules) + ")"
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target,
                        bias="none")
    return get_peft_model(model, config)


def _write_extras(directory: Path, extras: dict | None) -> None:
    for name, payload in (extras or {}).items():
        (directory / name).write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")


def save_adapter(peft_model, out_dir: str | Path, extras: dict | None = None, router: dict | None = None) -> None:
    """Save only the adapter (the step's delta), plus JSON ``extras`` such as the loss history and,
    for a routed expert, its ``router`` (``keys``, ``negatives``, ``threshold``, ``suffix``)."""
    with atomic_dir(out_dir) as tmp:
        peft_model.save_pretrained(tmp, safe_serialization=True)
        _write_extras(tmp, extras)
        if router is not None:
            from pulse.models.routing import save_router
            save_router(tmp, router["keys"], router["negatives"], router["threshold"], router["suffix"])


def save_model(model, processor, out_dir: str | Path, extras: dict | None = None) -> None:
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        _write_extras(tmp, extras)
