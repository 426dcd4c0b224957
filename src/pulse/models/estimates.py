"""Back-of-envelope GPU memory and time per stage for a real checkpoint, from its size.

ESTIMATES, not measurements: they follow the usual rules (forward = 2·P FLOPs per token, LoRA
training ≈ 6·P with activation checkpointing / 4·P without, bf16 weights 2 bytes per parameter,
AdamW state 16 bytes per trainable parameter) with assumed data sizes and an assumed fraction of
the GPU's peak throughput (``MFU``). Use them to size Slurm requests, then replace them with the
benchmark files (results/{run}/benchmarks/) of a first run. ``pulse estimate CONFIG`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    params: float           # all parameters (LM + vision tower + projector)
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    image_tokens: int       # image tokens per image in the prompt


# Published configurations (config.json of each checkpoint); parameter counts rounded.
ARCHITECTURES = {
    "llava-hf/llava-1.5-7b-hf": Architecture(7.06e9, 4096, 32, 11008, 32064, 576),
    "llava-hf/llava-1.5-13b-hf": Architecture(13.35e9, 5120, 40, 13824, 32064, 576),
    # Qwen2-VL: image tokens depend on the image size; 256 = a 448x448 image.
    "Qwen/Qwen2-VL-7B-Instruct": Architecture(8.29e9, 3584, 28, 18944, 152064, 256),
    "Qwen/Qwen2.5-VL-7B-Instruct": Architecture(8.29e9, 3584, 28, 18944, 152064, 256),
}

GPU_PEAK_BF16 = 312e12       # A100 dense bf16 FLOP/s (H100 SXM: ~990e12)
MFU = 0.35                   # assumed fraction of peak reached (small batches, long image prefixes)
LOAD_SECONDS_PER_GB = 2.0    # reading safetensors from a local/parallel file system (assumed)

# Assumed data sizes of the PULSE setting on MLLMU-Bench (see docs/real-models.md).
ASSUMED = {"profiles": 500, "celebrities": 153, "mcq_per_entity": 10, "qa_per_profile": 10,
           "general_questions": 4329, "text_tokens": 70, "option_sequences": 4}


def lora_params(arch: Architecture, rank: int, modules: list[str]) -> float:
    h, m = arch.hidden, arch.intermediate
    shapes = {"q_proj": (h, h), "k_proj": (h, h), "v_proj": (h, h), "o_proj": (h, h),
              "gate_proj": (h, m), "up_proj": (h, m), "down_proj": (m, h)}
    return arch.layers * sum(rank * sum(shapes[name]) for name in modules if name in shapes)


def estimate(config: dict) -> dict[str, dict]:
    """Per stage: GPU memory (GB) and runtime (hours) for the config's checkpoint and protocol."""
    model, data = config["model"], config["data"]
    name = model.get("checkpoint", "")
    if name not in ARCHITECTURES:
        raise KeyError(f"no architecture numbers for '{name}'; known: {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[name]
    bytes_per = 4 if model.get("dtype") == "float32" else 2
    weights_gb = arch.params * bytes_per / 1e9
    ckpt = model.get("gradient_checkpointing", False)
    flops = GPU_PEAK_BF16 * MFU
    seq = arch.image_tokens + ASSUMED["text_tokens"]
    unlearn, finetune = config["unlearn"], config["finetune"]
    batch = max(unlearn.get("batch_size", 4), finetune.get("batch_size", 4))
    lora = lora_params(arch, unlearn.get("lora", {}).get("rank", 16), model.get("lora_modules", []))
    # activations: layer inputs kept (checkpointing) + one layer's intermediates, or all layers'
    per_layer = batch * seq * 34 * arch.hidden * bytes_per / 1e9
    boundaries = batch * seq * arch.hidden * bytes_per * arch.layers / 1e9
    activations = boundaries + per_layer if ckpt else per_layer * arch.layers
    logits = batch * seq * arch.vocab * 4 * 3 / 1e9
    train_gb = weights_gb + lora * 16 / 1e9 + activations + logits + 2.0
    eval_gb = weights_gb + per_layer / 2 + logits / 3 + 2.0
    load_h = weights_gb * LOAD_SECONDS_PER_GB / 3600

    # evaluation of one checkpoint: every MCQ, one sequence per option (image prefix repeated)
    entities = ASSUMED["profiles"] * 2 + ASSUMED["celebrities"]  # train + test variants of profiles
    mcq = entities * ASSUMED["mcq_per_entity"]
    tokens = (mcq / 2 * seq + mcq / 2 * ASSUMED["text_tokens"]) * ASSUMED["option_sequences"]
    if data.get("general"):
        tokens += ASSUMED["general_questions"] * ASSUMED["option_sequences"] * seq
    eval_h = 2 * arch.params * tokens / flops / 3600 + load_h
    select_h = 2 * arch.params * ASSUMED["celebrities"] * ASSUMED["mcq_per_entity"] * seq * 2 / flops / 3600

    train_factor = 6 if ckpt else 4
    pairs = ASSUMED["profiles"] * ASSUMED["qa_per_profile"]
    finetune_h = (train_factor * arch.params * finetune["steps"] * finetune.get("batch_size", 4) * seq / flops / 3600
                  + load_h)
    forget_profiles = {5: 25, 10: 50, 15: 75}[data.get("forget_ratio", 10)]
    forget_pairs = forget_profiles * ASSUMED["qa_per_profile"]
    cost = {"GA": train_factor, "GA+KLR": 2 * train_factor + 2, "NPO": train_factor + 2,
            "GradDiff": 2 * train_factor, "KL": 2 * train_factor + 2}
    epochs = unlearn.get("epochs", 1)
    worst = max(cost.get(m, 2 * train_factor + 2) for m in unlearn["methods"])
    # one request of the one-shot schedule (all forget pairs); a sequential request is 1/K of it
    unlearn_h = worst * arch.params * forget_pairs * epochs * seq / flops / 3600 + load_h
    return {
        "base": {"gpu_gb": round(eval_gb, 1), "hours": round(select_h + load_h, 2),
                 "what": "record checkpoint; score the celebrities' MCQs (selection)"},
        "finetune": {"gpu_gb": round(train_gb, 1), "hours": round(finetune_h, 2),
                     "what": f"{finetune['steps']} LoRA steps of batch {finetune.get('batch_size', 4)} "
                             f"(assumed {pairs} ft_Data pairs)"},
        "unlearn": {"gpu_gb": round(train_gb, 1), "hours": round(unlearn_h, 2),
                    "what": f"one one-shot request, costliest method, {forget_pairs} forget pairs x {epochs} epoch(s)"},
        "evaluate": {"gpu_gb": round(eval_gb, 1), "hours": round(eval_h, 2),
                     "what": f"one checkpoint: ~{int(mcq + (ASSUMED['general_questions'] if data.get('general') else 0))} "
                             f"MCQs, {ASSUMED['option_sequences']} sequences each"},
    }


def table(config: dict) -> str:
    rows = estimate(config)
    lines = ["| stage | GPU memory (GB, estimate) | time per job (h, estimate) | assumption |", "|---|---|---|---|"]
    lines += [f"| {stage} | {r['gpu_gb']} | {r['hours']} | {r['what']} |" for stage, r in rows.items()]
    return "\n".join(lines)
