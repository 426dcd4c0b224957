"""``pulse <stage>``: every workflow stage as a command the Snakemake rules call.

Each stage takes its settings as ``--params`` (JSON text, or @file.json) so that Snakemake sees
exactly which settings a job depends on and re-runs only the jobs whose settings changed.
Heavy imports happen inside the stage functions, so ``pulse check-config`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# cuBLAS needs this before CUDA starts for deterministic matrix products (no effect on CPU).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _params(text: str) -> dict:
    if text.startswith("@"):
        return json.loads(Path(text[1:]).read_text())
    return json.loads(text)


def _log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None, delegate: bool = True) -> int:
    if delegate:  # a warm worker of `pulse workflow` runs the stage, if there is one (pulse/worker.py)
        from pulse.worker import delegate as to_worker
        code = to_worker(sys.argv[1:] if argv is None else list(argv))
        if code is not None:
            return code
    from pulse.config import ConfigError
    from pulse.data.records import DataError
    try:
        return run(argv)
    except (ConfigError, DataError, FileNotFoundError) as error:
        # Bad input: one clear line naming the file or key, no traceback.
        print(f"pulse: error: {error}", file=sys.stderr)
        return 2


def run(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["workflow"]:  # every further argument is snakemake's, untouched
        from pulse.launch import main as launch
        return launch(raw[1:])
    parser = argparse.ArgumentParser(prog="pulse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    sub.add_parser("workflow", help="snakemake ARGS here, after removing the locks a killed run left",
                   add_help=False)

    def stage(name: str, help_text: str, *, data=True, base=False, chain=False, out="directory"):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--params", type=_params, required=True, help="JSON settings or @file.json")
        command.add_argument("--threads", type=int, default=1, help="torch threads")
        if data:
            command.add_argument("--data", required=True, help="data directory (MLLMU-Bench layout)")
        if base:
            command.add_argument("--base", required=True, help="base model directory")
        if chain:
            command.add_argument("--chain", nargs="*", default=[], help="adapter directories, in order")
        command.add_argument("--out", required=True, help=f"output {out}")
        return command

    stage("data", "convert the data source (synthetic, MLLMU-Bench, prepared) and write the splits", data=False)
    stage("base", "pre-train the tiny base, or record a real checkpoint; select known entities")
    splits = sub.add_parser("splits", help="splits.json from the candidates and the base's known-entity selection")
    splits.add_argument("--candidates", required=True, help="candidate_splits.json of the data stage")
    splits.add_argument("--known", required=True, help="known_entities.json of the base stage")
    splits.add_argument("--out", required=True, help="output splits.json")
    stage("finetune", "inject the fictitious entities with LoRA", base=True)
    stage("unlearn", "one unlearning request on top of a chain", base=True, chain=True)
    stage("evaluate", "score one checkpoint", base=True, chain=True, out="JSON file")
    stage("gold-data", "the data without one knowledge source's forget entities (gold models)")
    summary = sub.add_parser("summarize", help="one seed's summary.csv from its evaluation files")
    summary.add_argument("--manifest", type=_params, required=True,
                         help="JSON list of {knowledge, method, schedule, step, requests, path}")
    summary.add_argument("--splits", required=True)
    summary.add_argument("--csv", required=True)
    summary.add_argument("--provenance", help="CSV linking each checkpoint to its provenance files")
    summary.add_argument("--gold", type=_params, default={},
                         help="JSON {knowledge: evaluation file of its gold model}")
    aggregate = sub.add_parser("aggregate", help="mean over seeds: summary.csv, summary_stats.csv, summary.md")
    aggregate.add_argument("--inputs", nargs="+", required=True, help="per-seed summary.csv files")
    aggregate.add_argument("--csv", required=True)
    aggregate.add_argument("--stats", required=True)
    aggregate.add_argument("--md", required=True)
    expect = sub.add_parser("make-expected", help="expected results with tolerances from seed spread")
    expect.add_argument("--stats", required=True, help="summary_stats.csv of a multi-seed run")
    expect.add_argument("--out", required=True)
    expect.add_argument("--sigmas", type=float, default=3.0, help="tolerance = sigmas x seed std")
    expect.add_argument("--floor", type=float, default=0.02, help="smallest tolerance")
    expect.add_argument("--metrics", type=lambda text: text.split(","), help="comma-separated metrics (default: all)")
    verify = sub.add_parser("check-results", help="compare a run's summary.csv with expected results")
    verify.add_argument("--summary", required=True)
    verify.add_argument("--expected", required=True)
    plot = sub.add_parser("plot", help="figures (PNG + PDF) and HTML tables from summary.csv")
    plot.add_argument("--csv", required=True)
    plot.add_argument("--out", required=True, help="output directory")
    plot.add_argument("--stats", help="summary_stats.csv: 95%% intervals over seeds as bands and error bars")
    check = sub.add_parser("check-config", help="validate a config file and print it resolved")
    check.add_argument("config")
    guess = sub.add_parser("estimate", help="GPU memory/time estimates per stage for a real-checkpoint config")
    guess.add_argument("config")

    args = parser.parse_args(argv)
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    if args.stage == "check-config":
        from pulse.config import ConfigError, check_data_paths, load
        try:
            resolved = load(args.config)
            check_data_paths(resolved["data"], args.config)
            print(json.dumps(resolved, indent=1))
        except ConfigError as error:
            print(error, file=sys.stderr)
            return 2
        return 0
    if args.stage == "make-expected":
        from pulse.report.check import write_expected
        write_expected(args.stats, args.out, args.sigmas, args.floor, args.metrics)
        return 0
    if args.stage == "check-results":
        from pulse.report.check import report
        text, passed = report(args.summary, args.expected)
        print(text)
        return 0 if passed else 1
    if args.stage == "estimate":
        from pulse.config import load
        from pulse.models.estimates import table
        print("ESTIMATES from the model size (not measurements), see pulse/models/estimates.py")
        print(table(load(args.config)))
        return 0
    if args.stage == "summarize":
        from pulse.report.summary import write
        write(args.manifest, args.splits, args.csv, args.provenance, gold=args.gold)
        return 0
    if args.stage == "plot":
        from pulse.report.plots import write_all
        write_all(args.csv, args.out, args.stats)
        return 0
    if args.stage == "aggregate":
        from pulse.report.summary import aggregate
        aggregate(args.inputs, args.csv, args.stats, args.md)
        return 0
    if args.stage == "splits":
        from pulse.stages import data
        data.merge_selection(args.candidates, args.known, args.out)
        return 0
    from pulse.provenance import Recorder
    recorder = Recorder(args.stage, args.params, raw_argv)
    if args.stage == "data":
        from pulse.stages import data
        data.run(args.params, args.out, log=_log)
        recorder.write(args.out)
        return 0
    if args.stage == "gold-data":
        from pulse.stages import gold
        gold.run(args.params, args.data, args.out, log=_log)
        recorder.write(args.out)
        return 0

    import torch
    torch.set_num_threads(args.threads)
    # Same config, same numbers: deterministic kernels where torch has them.
    torch.use_deterministic_algorithms(True, warn_only=True)
    if args.stage == "base":
        from pulse.stages import base
        base.run(args.params, args.data, args.out, log=_log)
    elif args.stage == "finetune":
        from pulse.stages import finetune
        finetune.run(args.params, args.data, args.base, args.out, log=_log)
    elif args.stage == "unlearn":
        from pulse.stages import unlearn
        unlearn.run(args.params, args.data, args.base, args.chain, args.out, log=_log)
    elif args.stage == "evaluate":
        from pulse.stages import evaluate
        evaluate.run(args.params, args.data, args.base, args.chain, args.out, log=_log)
    recorder.write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
