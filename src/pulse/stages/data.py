"""Stage 1: write the synthetic world (MLLMU-Bench layout) and the forget/retain splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pulse.data.synthetic import forget_retain_splits, generate_world
from pulse.io import atomic_path, write_json


def run(params: dict, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    tables = generate_world(params["entities"], params["utility"], params["seed"])
    for name, rows in tables.items():
        with atomic_path(out_dir / f"{name}.parquet") as tmp:
            pd.DataFrame(rows).to_parquet(tmp, index=False)
    write_json(out_dir / "splits.json", forget_retain_splits(tables, params["forget_size"], params["seed"]))
