"""Another dataset in the same schema (e.g. CLEAR-style person data): a directory that already
holds ``{population}_{split}.parquet`` files in the MLLMU-Bench row layout of
``pulse.data.records`` (populations world, fictitious, holdout, utility; splits train, test; a
missing file is an empty population) and optionally its own ``splits.json``. See
docs/real-models.md, "Another dataset"."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pulse.data.mllmu import plain
from pulse.data.records import DataError, load_examples
from pulse.io import read_json

POPULATIONS = ("world", "fictitious", "holdout", "utility")


def read(params: dict, log=print) -> tuple[dict[str, list[dict]], dict | None]:
    root = Path(params["path"]).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path {root}: no such directory")
    tables = {}
    for population in POPULATIONS:
        for split in ("train", "test"):
            path = root / f"{population}_{split}.parquet"
            if not path.exists():
                tables[f"{population}_{split}"] = []
                continue
            load_examples(path)  # checks columns, images and tasks; errors name the file and row
            tables[f"{population}_{split}"] = [plain(r) for r in pd.read_parquet(path).to_dict("records")]
    if not tables["fictitious_train"] and not tables["world_train"]:
        raise DataError(f"{root}: neither fictitious_train.parquet nor world_train.parquet found")
    splits = read_json(root / "splits.json") if (root / "splits.json").exists() else None
    if splits is not None:
        check_splits(splits, root / "splits.json")
    log(f"prepared dataset {root}: " + ", ".join(f"{k} {len(v)}" for k, v in tables.items() if v))
    return tables, splits


def check_splits(splits: dict, where) -> None:
    """A dataset's own forget/retain splits: lists of entity IDs, no entity on both sides."""
    if not isinstance(splits, dict):
        raise DataError(f"{where}: expected {{knowledge: {{forget: [...], retain: [...]}}}}")
    for knowledge, split in splits.items():
        if not isinstance(split, dict) or not all(isinstance(split.get(k), list) for k in ("forget", "retain")):
            raise DataError(f"{where}: {knowledge}: expected lists 'forget' and 'retain' of entity IDs")
        both = sorted(set(split["forget"]) & set(split["retain"]))
        if both:
            raise DataError(f"{where}: {knowledge}: entities {both[:5]} are in both forget and retain; "
                            "expected disjoint sets")
