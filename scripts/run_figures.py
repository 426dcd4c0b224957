#!/usr/bin/env python3
"""Print the figures of a finished run: time and peak memory per stage (from Snakemake's
benchmark files) and checkpoint sizes. Usage: scripts/run_figures.py results/default"""

from __future__ import annotations

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
                                      peak_rss_mb=("max_rss_mb", "max"))
    print(table.round(1).to_string())
    print(f"\nsum of job times: {jobs.seconds.sum():.0f} s over {len(jobs)} jobs; "
          f"peak RSS of any job: {jobs.max_rss_mb.max():.0f} MB")
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
