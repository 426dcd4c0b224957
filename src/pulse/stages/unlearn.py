"""Stage 4: one unlearning request. Reads the model at step k-1 (base + adapters), trains a
fresh LoRA adapter with the method's loss on the request's forget entities (and the retain
entities of the same knowledge source), and saves only that adapter as step k.

Methods may ask for more: alternative answers on each forget example (``Method.alternatives``),
a pass over the forget set before training (``Method.prepare``), or a routed expert that starts
from the chain's starting model and is saved with its router (``Method.routed``)."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np

from pulse.data.synthetic import REFUSALS
from pulse.methods import build
from pulse.methods.base import collate_forget, reference
from pulse.models.chain import add_lora, load_chain, save_adapter
from pulse.models.encoding import PROMPTS, Encoded, Encoder, collate
from pulse.models.routing import router_keys
from pulse.stages.common import POPULATION_OF, request_entities, splits, train_qas
from pulse.train import batches, fit, mixed, seed_everything


def step_seed(seed: int, *parts) -> int:
    """A stable per-job seed (Python's hash() is salted per process, crc32 is not)."""
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % 2**31


def wrong_answer_pools(forget_qas, population_qas) -> list[list[str]]:
    """For each forget question, the wrong answers to draw from: those the data gives
    (``Wrong_Answers``), else the answers other entities give to the same question, else any
    answer of another entity."""
    by_question: dict[str, set[str]] = {}
    for qa in population_qas:
        by_question.setdefault(qa.question, set()).add((qa.entity, qa.answer))
    pools = []
    for qa in forget_qas:
        pool = [w for w in qa.wrong if w != qa.answer]
        if not pool:
            pool = sorted({a for e, a in by_question.get(qa.question, ()) if e != qa.entity and a != qa.answer})
        if not pool:
            pool = sorted({o.answer for o in population_qas if o.entity != qa.entity and o.answer != qa.answer})
        if not pool:
            raise ValueError(f"no wrong answer available for {qa.question!r}")
        pools.append(pool)
    return pools


def forget_examples(encoder: Encoder, forget_qas, population_qas, alternatives, seed: int) -> list:
    """Encoded forget examples; with ``alternatives``, (true, {name: alternative}) pairs."""
    if not alternatives:
        return [encoder.encode_qa(q) for q in forget_qas]
    rng = np.random.default_rng(seed)
    pools = wrong_answer_pools(forget_qas, population_qas) if "wrong" in alternatives else None
    examples = []
    for index, qa in enumerate(forget_qas):
        alts = {}
        for name in alternatives:
            if name == "wrong":
                answer = pools[index][int(rng.integers(len(pools[index])))]
            elif name == "refusal":
                answer = qa.refusal or REFUSALS[0]
            else:
                raise KeyError(f"unknown alternative answer {name!r}")
            alts[name] = encoder.encode(qa.question, answer, qa.image)
        examples.append((encoder.encode_qa(qa), alts))
    return examples


def one_pass(examples: list, batch_size: int, pad: int, collate_fn) -> list[dict]:
    """Every example once, in order (for ``Method.prepare``)."""
    return [collate_fn(examples[i:i + batch_size], pad) for i in range(0, len(examples), batch_size)]


def prompt_suffix(prompts: list[list[int]]) -> list[int]:
    """The token ids every prompt ends with (the template's answer cue, e.g. ``Answer :``)."""
    suffix = prompts[0]
    for ids in prompts[1:]:
        n = 0
        while n < min(len(suffix), len(ids)) and suffix[-1 - n] == ids[-1 - n]:
            n += 1
        suffix = suffix[len(suffix) - n:]
    return list(suffix)


def run(params: dict, data_dir: str | Path, base_dir: str | Path, chain: list[str],
        out_dir: str | Path, log=print) -> dict:
    knowledge, method_name = params["knowledge"], params["method"]
    seed = step_seed(params["seed"], knowledge, method_name, params["schedule"], params["request"])
    seed_everything(seed)
    split = splits(data_dir)[knowledge]
    forget_ids = request_entities(split["forget"], params["request"], params["requests"])
    population = POPULATION_OF[knowledge]

    method = build(method_name, params["hyperparameters"])
    # A routed method's expert starts from the chain's starting model, not from earlier experts.
    model, processor = load_chain(base_dir, chain, params["device"], params["dtype"], experts=not method.routed)
    lora = params["lora"]
    model = add_lora(model, lora["rank"], lora["alpha"], lora["dropout"])
    encoder = Encoder(processor, PROMPTS[params["backend"]])
    population_qas = train_qas(data_dir, population)
    forget_set, retain_set = set(forget_ids), set(split["retain"])
    forget_qas = [q for q in population_qas if q.entity in forget_set]
    retain_qas = [q for q in population_qas if q.entity in retain_set]
    forget = forget_examples(encoder, forget_qas, population_qas, method.alternatives, seed)
    retain = [encoder.encode_qa(q) for q in retain_qas]
    collate_fn = collate_forget if method.alternatives else collate
    pad = processor.tokenizer.pad_token_id
    batch_size = min(params["batch_size"], len(forget))
    steps = math.ceil(params["epochs"] * len(forget) / batch_size)
    log(f"{method_name} on {knowledge} request {params['request']}/{params['requests']}: "
        f"{len(forget_ids)} entities, {len(forget)} forget / {len(retain)} retain examples, {steps} steps")
    device = next(model.parameters()).device

    def on_device(batch):
        return {k: v.to(device) for k, v in batch.items()}

    prepared = method.prepare(model, [on_device(b) for b in one_pass(forget, batch_size, pad, collate_fn)])
    if prepared:
        log("prepare: " + " ".join(f"{k}={v:.4f}" for k, v in prepared.items()))
    stream = mixed(batches(forget, batch_size, pad, seed, collate_fn), batches(retain, batch_size, pad, seed + 1))

    def step_loss():
        forget_batch, retain_batch = (on_device(b) for b in next(stream))
        return method.loss(model, forget_batch, retain_batch)

    history = fit(model, step_loss, steps, params["lr"], log=log, log_every=max(1, steps // 5))
    summary = {"forget_entities": forget_ids, "steps": steps, "seed": seed, "history": history,
               **({"prepare": prepared} if prepared else {})}
    router = None
    if method.routed:
        suffix = prompt_suffix([encoder.prompt_ids(q.question, q.image) for q in forget_qas + retain_qas])

        def embeddings(qas):
            items = [Encoded(ids, len(ids), None if q.image is None else encoder.pixels(q.image))
                     for q in qas for ids in [encoder.prompt_ids(q.question, q.image)]]
            with reference(model):
                return router_keys(model, [on_device(b) for b in one_pass(items, 64, pad, collate)], suffix)

        router = {"keys": embeddings(forget_qas), "negatives": embeddings(retain_qas),
                  "threshold": float(method.hp["threshold"]), "suffix": suffix}
        summary["router"] = {"keys": int(router["keys"].shape[0]), "negatives": int(router["negatives"].shape[0])}
        log(f"router: {summary['router']} embeddings, threshold {router['threshold']}, prompt suffix {suffix}")
    save_adapter(model, out_dir, {"unlearn_log.json": summary}, router=router)
    return summary
