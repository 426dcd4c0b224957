"""Stage 2: the base model.

``tiny``: build the tiny LLaVA and pre-train it here on the world entities + utility task, so its
pre-trained knowledge is real. A real checkpoint (``llava``, ``qwen2_vl``, ``qwen2_5_vl``) is not
trained: the stage records which checkpoint it is (name or path, revision, resolved commit, file
digests) in ``checkpoint.json``, which every later stage loads from.

Either way, with ``data.select_known`` the stage then scores the base model on the MCQs of every
world entity and writes ``known_entities.json``: the ``top`` entities it answers best, split with
a seed into the pre-trained forget and retain sets (the PULSE protocol).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pulse.data.records import all_texts, load_examples
from pulse.data.selection import entity_scores, select
from pulse.io import atomic_dir, write_json
from pulse.models.backends import built_record, device_of, record_checkpoint
from pulse.models.chain import load_base, save_model
from pulse.models.encoding import PROMPTS, Encoder
from pulse.stages.common import train_qas
from pulse.train import batches, fit, seed_everything

KNOWN = "known_entities.json"


def pretrain_tiny(params: dict, data_dir: Path, out_dir: Path, log=print) -> None:
    model_config = params["model"]
    sizes = model_config["tiny"]
    from pulse.models.tiny import build_model, build_processor
    seed_everything(params["seed"])
    processor = build_processor(all_texts(sorted(data_dir.glob("*.parquet"))), sizes, PROMPTS["tiny"])
    device = device_of(model_config["device"])
    model = build_model(processor.tokenizer, sizes).to(device)
    log(f"tiny LLaVA: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"vocabulary {len(processor.tokenizer)}")
    encoder = Encoder(processor, PROMPTS["tiny"])
    examples = [encoder.encode_qa(q) for q in train_qas(data_dir, "world") + train_qas(data_dir, "utility")]
    train = params["train"]
    stream = batches(examples, train["batch_size"], processor.tokenizer.pad_token_id, params["seed"])

    def step_loss():
        batch = {k: v.to(device) for k, v in next(stream).items()}
        return model(**batch).loss, {}

    history = fit(model, step_loss, train["steps"], train["lr"], train["warmup"], train["weight_decay"], log)
    model.to(torch.device("cpu"))
    save_model(model, processor, out_dir, {"train_history.json": history,
                                           "checkpoint.json": built_record(model_config)})


def select_known(params: dict, data_dir: Path, base_dir: Path, log=print) -> dict:
    """Score the base on every world entity's MCQs; keep the best-known ``top``, split with a seed."""
    from pulse.metrics.mcq import score_options
    model_config, chosen = params["model"], params["select"]
    model, processor = load_base(base_dir, model_config["device"], model_config["dtype"])
    encoder = Encoder(processor, PROMPTS[model_config["backend"]])
    _, mcqs = load_examples(data_dir / "world_train.parquet")
    scores = entity_scores(mcqs, score_options(model, encoder, mcqs, params["batch_size"]))
    selection = select(scores, chosen["top"], chosen["forget"], params["seed"])
    log(f"known entities: top {chosen['top']} of {len(scores)} by base MCQ accuracy "
        f"(threshold {selection['threshold_accuracy']:.2f}); {chosen['forget']} to forget")
    record = {**selection, "scores": scores, "questions": len(mcqs)}
    write_json(base_dir / KNOWN, record)
    return record


def run(params: dict, data_dir: str | Path, out_dir: str | Path, log=print) -> None:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if params["model"]["backend"] == "tiny":
        pretrain_tiny(params, data_dir, out_dir, log)
    else:
        with atomic_dir(out_dir) as tmp:  # a fresh directory: nothing stale from an earlier run
            record_checkpoint(params["model"], tmp, log)
    if params.get("select"):
        select_known(params, data_dir, out_dir, log)
