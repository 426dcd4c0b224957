#!/usr/bin/env python
"""Benchmark of MCQ evaluation speed: batched option likelihood vs per-question generation.

The same MCQ items of one checkpoint are answered two ways:

1. **batched option likelihood** (what ``pulse evaluate`` does): each option is scored as the
   continuation of the question; the most likely option is the answer; many questions per
   forward pass;
2. **per-question ``generate()``** the way the public MLLMU-Bench evaluator works: the question is
   asked with the options listed as ``A. ...`` to ``D. ...`` and an instruction to answer with the
   letter, the model generates greedily, one question at a time, and the letter is parsed from the
   output. A model that never learned the lettered format (like the tiny model, trained on
   question -> short answer) tends to answer with an option's *text* instead: as a fair fallback
   such an answer is mapped to the option whose text it names (counted separately).

As a control, the same per-question ``generate()`` is also run on the plain question (the format
the model was trained on) and its answer mapped to the option it names.

Reports items/s of each (wall clock and CPU time, after one untimed warm-up batch), the speed-up
of the batched scorer, how answers were parsed, and the agreement with the batched answers (over
all items and over the items whose generated answer could be parsed).

Example (after ``snakemake --configfile config/smoke.yaml``):

    python scripts/bench_eval.py --run results/smoke --checkpoint finetune
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LETTERS = "ABCD"
INSTRUCTION = "Answer with the option's letter from the given choices directly."


def lettered_question(question: str, options) -> str:
    listed = "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))
    return f"{question}\n{listed}\n{INSTRUCTION}"


def parse(text: str, options) -> tuple[int | None, str]:
    """(option index, how): a standalone letter A-D first, else an option's text, else None."""
    match = re.search(r"\b([A-D])\b", text)
    if match:
        return LETTERS.index(match.group(1)), "letter"
    lowered = f" {text.lower()} "
    named = [i for i, option in enumerate(options) if f" {option.lower()} " in lowered]
    if len(named) == 1:
        return named[0], "option text"
    return None, "unparsed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="results/smoke", help="run directory (data/, base/, finetune/, unlearn/)")
    parser.add_argument("--checkpoint", default="finetune",
                        help="'base', 'finetune' or knowledge/method/schedule/stepK (its adapter chain is loaded)")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed whose checkpoints to load (run/seed{N}/, if the run has seeds)")
    parser.add_argument("--populations", nargs="+", default=["fictitious", "world", "holdout"])
    parser.add_argument("--variant", default="train", choices=["train", "test"])
    parser.add_argument("--limit", type=int, default=0, help="at most this many items (0 = all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="tiny")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from pulse.data.records import load_examples
    from pulse.metrics.generation import greedy_answers
    from pulse.metrics.mcq import choices, score_options
    from pulse.models.chain import load_chain
    from pulse.models.encoding import PROMPTS, Encoder

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    seeded = run / f"seed{args.seed}" if (run / f"seed{args.seed}").is_dir() else run
    chain = []
    if args.checkpoint != "base":
        chain = [seeded / "finetune"]
        if args.checkpoint != "finetune":
            knowledge, method, schedule, step = args.checkpoint.split("/")
            chain += [seeded / "unlearn" / knowledge / method / schedule / f"step{s}"
                      for s in range(1, int(step.removeprefix("step")) + 1)]
    model, processor = load_chain(run / "base", chain)
    encoder = Encoder(processor, PROMPTS[args.backend])
    mcqs = []
    for population in args.populations:
        mcqs += load_examples(run / "data" / f"{population}_{args.variant}.parquet")[1]
    if args.limit:
        mcqs = mcqs[:args.limit]
    for q in mcqs:  # preprocess every image once, outside both timings
        if q.image is not None:
            encoder.pixels(q.image)

    def timed(function):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        return result, time.perf_counter() - wall, time.process_time() - cpu

    def per_question(prompt_of):
        return [greedy_answers(model, encoder, [(prompt_of(q), q.image)], batch_size=1,
                               max_new_tokens=args.max_new_tokens)[0] for q in mcqs]

    warm = mcqs[:args.batch_size]  # one untimed batch of each path (allocations, first-call costs)
    score_options(model, encoder, warm, args.batch_size)
    for q in warm[:4]:
        greedy_answers(model, encoder, [(lettered_question(q.question, q.options), q.image)], 1, args.max_new_tokens)

    processed = [0]  # tokens through the model in the batched pass (padding in, shared image prefixes once)

    def count(_module, _args, kwargs):
        processed[0] += kwargs["input_ids"].numel()

    hook = model.register_forward_pre_hook(count, with_kwargs=True)
    likelihood, batched_wall, batched_cpu = timed(lambda: choices(score_options(model, encoder, mcqs, args.batch_size)))
    hook.remove()
    n = len(mcqs)
    figures = {"items": n, "checkpoint": args.checkpoint, "threads": args.threads,
               "max_new_tokens": args.max_new_tokens,
               "batched": {"items_per_s_wall": n / batched_wall, "items_per_s_cpu": n / batched_cpu,
                           "accuracy": sum(c == q.answer_index for c, q in zip(likelihood, mcqs)) / n}}
    print(f"{n} MCQ items of {args.checkpoint} ({', '.join(args.populations)}, {args.variant}), "
          f"{args.threads} thread(s), max_new_tokens {args.max_new_tokens}")
    print(f"{'mode':44s} {'items/s wall':>12s} {'items/s CPU':>12s} {'speed-up (CPU)':>15s} "
          f"{'agree all':>9s} {'agree parsed':>12s} {'accuracy':>8s}  parsed by letter/text/unparsed")
    print(f"{'batched option likelihood':44s} {n / batched_wall:12.1f} {n / batched_cpu:12.1f} {'1.0x':>15s} "
          f"{'':>9s} {'':>12s} {figures['batched']['accuracy']:8.3f}")
    modes = [("generate_lettered", "per-question generate(), options A-D + letter",
              lambda q: lettered_question(q.question, q.options)),
             ("generate_plain", "per-question generate(), plain question",
              lambda q: q.question)]
    for key, label, prompt_of in modes:
        generated, wall, cpu = timed(lambda: per_question(prompt_of))
        parsed = [parse(text, q.options) for text, q in zip(generated, mcqs)]
        how = {kind: sum(h == kind for _, h in parsed) for kind in ("letter", "option text", "unparsed")}
        answered = [(p, l) for (p, _), l in zip(parsed, likelihood) if p is not None]
        result = {
            "items_per_s_wall": n / wall, "items_per_s_cpu": n / cpu,
            "speedup_wall": wall / batched_wall, "speedup_cpu": cpu / batched_cpu, "parsed": how,
            "agreement_all": sum(p == l for (p, _), l in zip(parsed, likelihood)) / n,
            "agreement_parsed": sum(p == l for p, l in answered) / len(answered) if answered else None,
            "accuracy": sum(p == q.answer_index for (p, _), q in zip(parsed, mcqs)) / n,
            "examples": [{"prompt": prompt_of(q), "generated": g} for q, g in list(zip(mcqs, generated))[:3]],
        }
        figures[key] = result
        agree_parsed = result["agreement_parsed"] if answered else float("nan")
        print(f"{label:44s} {result['items_per_s_wall']:12.1f} {result['items_per_s_cpu']:12.1f} "
              f"{result['speedup_cpu']:14.1f}x {result['agreement_all']:9.3f} {agree_parsed:12.3f} "
              f"{result['accuracy']:8.3f}  {how['letter']}/{how['option text']}/{how['unparsed']}")
    # How close the batched path is to the hardware: its matrix-multiply work per second. Each
    # token through the model costs ~2 FLOPs per weight of the language model's linear layers (the
    # vision tower and attention scores are small at this size and left out).
    weights = sum(m.weight.numel() for name, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and ("language_model" in name or name.endswith("lm_head")))
    tokens = sum(len(encoder.prompt_ids(q.question, q.image)) for q in mcqs)
    flops = 2 * weights * processed[0] / batched_cpu
    figures["batched"].update({"prompt_tokens": tokens, "tokens_through_model": processed[0],
                               "lm_linear_weights": weights, "gflops_per_s_cpu": flops / 1e9})
    print(f"batched pass: {tokens} prompt tokens, {processed[0]} through the model (image prefixes shared, "
          f"padding included) x {weights / 1e6:.2f} M linear weights = {flops / 1e9:.1f} GFLOP/s per CPU second "
          f"(compare the core's peak FP32 rate)")
    print("example generations (lettered):", json.dumps(figures["generate_lettered"]["examples"][:2], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
