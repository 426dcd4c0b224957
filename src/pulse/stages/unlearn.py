"""Stage 4: one unlearning request. Reads the model at step k-1 (base + adapters), trains a
fresh LoRA adapter with the method's loss on the request's forget entities (and the retain
entities of the same knowledge source), and saves only that adapter as step k."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

from pulse.methods import build
from pulse.models.chain import add_lora, load_chain, save_adapter
from pulse.models.encoding import PROMPTS, Encoder
from pulse.stages.common import POPULATION_OF, request_entities, splits, train_qas
from pulse.train import batches, fit, mixed, seed_everything


def step_seed(seed: int, *parts) -> int:
    """A stable per-job seed (Python's hash() is salted per process, crc32 is not)."""
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % 2**31


def run(params: dict, data_dir: str | Path, base_dir: str | Path, chain: list[str],
        out_dir: str | Path, log=print) -> dict:
    knowledge, method_name = params["knowledge"], params["method"]
    seed = step_seed(params["seed"], knowledge, method_name, params["schedule"], params["request"])
    seed_everything(seed)
    split = splits(data_dir)[knowledge]
    forget_ids = request_entities(split["forget"], params["request"], params["requests"])
    population = POPULATION_OF[knowledge]

    model, processor = load_chain(base_dir, chain, params["device"], params["dtype"])
    lora = params["lora"]
    model = add_lora(model, lora["rank"], lora["alpha"], lora["dropout"])
    method = build(method_name, params["hyperparameters"])
    encoder = Encoder(processor, PROMPTS[params["backend"]])
    forget = [encoder.encode_qa(q) for q in train_qas(data_dir, population, set(forget_ids))]
    retain = [encoder.encode_qa(q) for q in train_qas(data_dir, population, set(split["retain"]))]
    pad = processor.tokenizer.pad_token_id
    batch_size = min(params["batch_size"], len(forget))
    steps = math.ceil(params["epochs"] * len(forget) / batch_size)
    log(f"{method_name} on {knowledge} request {params['request']}/{params['requests']}: "
        f"{len(forget_ids)} entities, {len(forget)} forget / {len(retain)} retain examples, {steps} steps")
    stream = mixed(batches(forget, batch_size, pad, seed), batches(retain, batch_size, pad, seed + 1))
    device = next(model.parameters()).device

    def step_loss():
        forget_batch, retain_batch = ({k: v.to(device) for k, v in b.items()} for b in next(stream))
        return method.loss(model, forget_batch, retain_batch)

    history = fit(model, step_loss, steps, params["lr"], log=log, log_every=max(1, steps // 5))
    summary = {"forget_entities": forget_ids, "steps": steps, "seed": seed, "history": history}
    save_adapter(model, out_dir, {"unlearn_log.json": summary})
    return summary
