#!/usr/bin/env python3
"""Print the figures of a finished run: wall time per stage (Snakemake's benchmark files), CPU
time and peak memory per stage (the stages' provenance records: under `pulse workflow` a warm
worker runs each stage and the benchmark files measure only the thin client), and checkpoint
sizes. Usage: scripts/run_figures.py results/default"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def stage_of(path: Path, run: Path) -> str:
    parts = path.relative_to(run).parts
    parts = parts[1:] if parts[0].startswith("seed") else parts
    return parts[1] if parts[1] in ("unlearn", "eval") else path.stem


def main(run: Path) -> None:
    rows = []
    for path in sorted(run.glob("**/benchmarks/**/*.tsv")):
        bench = pd.read_csv(path, sep="\t")
        rows.append({"stage": stage_of(path, run), "job": str(path.relative_to(run)),
                     "seconds": bench["s"].iloc[0], "max_rss_mb": bench["max_rss"].iloc[0]})
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("stage").agg(jobs=("job", "count"), total_s=("seconds", "sum"),
                                      mean_s=("seconds", "mean"), max_s=("seconds", "max"),
                                      benchmark_peak_rss_mb=("max_rss_mb", "max"))
    print("wall time per job (benchmark files):")
    print(table.round(1).to_string())
    print(f"\nsum of job times: {jobs.seconds.sum():.0f} s over {len(jobs)} jobs")
    records = []
    for path in sorted(run.glob("**/*provenance.json")):
        record = json.loads(path.read_text())
        if "resources" in record:
            records.append({"stage": record["stage"], "cpu_s": record["resources"]["cpu_seconds"],
                            "max_rss_mb": record["resources"]["max_rss_mb"],
                            "warm": record["resources"].get("warm_worker", False)})
    if records:
        stages = pd.DataFrame(records).groupby("stage").agg(
            jobs=("cpu_s", "count"), cpu_s=("cpu_s", "sum"), mean_cpu_s=("cpu_s", "mean"),
            peak_rss_mb=("max_rss_mb", "max"), warm_worker_jobs=("warm", "sum"))
        print("\nCPU time and peak memory per stage (the stages' own provenance records):")
        print(stages.round(1).to_string())
        print(f"peak RSS of any stage: {stages.peak_rss_mb.max():.0f} MB")
    else:
        print(f"peak RSS of any job: {jobs.max_rss_mb.max():.0f} MB")
    sizes = {
        "base model.safetensors": run / "base" / "model.safetensors",
        "fine-tune adapter": next(run.glob("seed*/finetune/adapter_model.safetensors"), None),
        "one unlearning step adapter": next(run.glob("seed*/unlearn/*/*/*/step1/adapter_model.safetensors"), None),
    }
    for name, path in sizes.items():
        if path is not None and path.exists():
            print(f"{name}: {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/default"))
