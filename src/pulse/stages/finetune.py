"""Stage 3: inject the fictitious entities with a LoRA adapter, replaying world + utility data
so that pre-trained knowledge survives."""

from __future__ import annotations

from pathlib import Path

from pulse.models.chain import add_lora, load_base, save_adapter
from pulse.models.encoding import PROMPTS, Encoder
from pulse.stages.common import train_qas
from pulse.train import batches, fit, seed_everything


def run(params: dict, data_dir: str | Path, base_dir: str | Path, out_dir: str | Path, log=print) -> None:
    seed_everything(params["seed"])
    model, processor = load_base(base_dir, params["device"], params["dtype"])
    lora = params["train"]["lora"]
    model = add_lora(model, lora["rank"], lora["alpha"], lora["dropout"])
    encoder = Encoder(processor, PROMPTS[params["backend"]])
    new = [encoder.encode_qa(q) for q in train_qas(data_dir, "fictitious")]
    old = [encoder.encode_qa(q) for q in train_qas(data_dir, "world") + train_qas(data_dir, "utility")]
    train = params["train"]
    pad = processor.tokenizer.pad_token_id
    replay_size = round(train["batch_size"] * train["replay"] / (1 + train["replay"]))
    new_stream = batches(new, train["batch_size"] - replay_size, pad, params["seed"])
    old_stream = batches(old, replay_size, pad, params["seed"] + 1) if replay_size else None
    device = next(model.parameters()).device

    def step_loss():
        loss = model(**{k: v.to(device) for k, v in next(new_stream).items()}).loss
        logs = {"new_loss": loss.detach()}
        if old_stream is not None:
            replay = model(**{k: v.to(device) for k, v in next(old_stream).items()}).loss
            logs["replay_loss"] = replay.detach()
            loss = (loss * (train["batch_size"] - replay_size) + replay * replay_size) / train["batch_size"]
        return loss, logs

    history = fit(model, step_loss, train["steps"], train["lr"], train["warmup"], train["weight_decay"], log)
    save_adapter(model, out_dir, {"train_history.json": history})
