"""Stage 2: build the tiny LLaVA and pre-train it on the world entities + utility task."""

from __future__ import annotations

from pathlib import Path

import torch

from pulse.data.records import all_texts
from pulse.models.chain import device_of, save_model
from pulse.models.encoding import PROMPTS, Encoder
from pulse.models.tiny import build_model, build_processor
from pulse.stages.common import train_qas
from pulse.train import batches, fit, seed_everything


def run(params: dict, data_dir: str | Path, out_dir: str | Path, log=print) -> None:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    seed_everything(params["seed"])
    processor = build_processor(all_texts(sorted(data_dir.glob("*.parquet"))), params["tiny"],
                                PROMPTS["tiny"])
    model = build_model(processor.tokenizer, params["tiny"]).to(device_of(params["device"]))
    log(f"tiny LLaVA: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"vocabulary {len(processor.tokenizer)}")
    encoder = Encoder(processor, PROMPTS["tiny"])
    examples = [encoder.encode_qa(q) for q in train_qas(data_dir, "world") + train_qas(data_dir, "utility")]
    train = params["train"]
    stream = batches(examples, train["batch_size"], processor.tokenizer.pad_token_id, params["seed"])
    device = device_of(params["device"])

    def step_loss():
        batch = {k: v.to(device) for k, v in next(stream).items()}
        return model(**batch).loss, {}

    history = fit(model, step_loss, train["steps"], train["lr"], train["warmup"], train["weight_decay"], log)
    model.to(torch.device("cpu"))
    save_model(model, processor, out_dir, {"train_history.json": history})
