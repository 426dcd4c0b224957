"""Stage 1: convert the configured source into the files every later stage reads:
``{population}_{train,test}.parquet`` (MLLMU-Bench row layout; populations world, fictitious,
holdout, utility) and the forget/retain splits of each knowledge source.

Sources: ``synthetic`` (a seeded world built here), ``mllmu`` (a local copy of the MLLMU-Bench
release, ``pulse.data.mllmu``), ``prepared`` (a directory already in this layout, e.g. a converted
CLEAR-style dataset). When ``data.select_known`` is set, the pre-trained forget/retain split is
chosen by the base model (the base stage scores the candidates): this stage then writes
``candidate_splits.json`` and ``pulse splits`` writes ``splits.json`` after the base stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pulse.data.records import DataError
from pulse.io import atomic_path, read_json, write_json

POPULATIONS = ("world", "fictitious", "holdout", "utility")
TABLES = [f"{population}_{split}" for population in POPULATIONS for split in ("train", "test")]
COLUMNS = ["ID", "name", "population", "image", "biography", "question", "answer",
           "Classification_Task", "Generation_Task", "Mask_Task"]
CANDIDATES = "candidate_splits.json"
SPLITS = "splits.json"
POPULATION_OF = {"finetuned": "fictitious", "pretrained": "world"}


def seeded_split(ids: list[str], forget_size: int, seed: int) -> dict:
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    return {"forget": order[:forget_size], "retain": sorted(order[forget_size:])}


def build(params: dict, log=print) -> tuple[dict[str, list[dict]], dict]:
    """(rows by table name, splits with the pre-trained entry possibly still to be selected)."""
    source = params.get("source", "synthetic")
    if source == "synthetic":
        from pulse.data.synthetic import forget_retain_splits, generate_world
        tables = generate_world(params["entities"], params["utility"], params["seed"])
        splits = forget_retain_splits(tables, params["forget_size"], params["seed"])
    elif source == "mllmu":
        from pulse.data import mllmu
        if params.get("download") and not Path(params["path"]).expanduser().is_dir():
            mllmu.download(params, log)
        tables, splits = mllmu.convert(params, log)
    elif source == "prepared":
        from pulse.data import prepared
        tables, given = prepared.read(params, log)
        splits = given or {}
    else:
        raise DataError(f"unknown data.source {source!r}")
    for knowledge, population in POPULATION_OF.items():
        ids = [row["ID"] for row in tables[f"{population}_train"]]
        if knowledge not in splits and ids:
            offset = 1 if knowledge == "finetuned" else 2
            splits[knowledge] = {"population": population,
                                 **seeded_split(ids, params["forget_size"], params["seed"] + offset)}
    if params.get("select_known"):
        splits["pretrained"] = {"population": "world",
                                "candidates": [row["ID"] for row in tables["world_train"]],
                                "select": params["select_known"]}
    return tables, splits


def write_table(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows) if rows else pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def source_files(params: dict) -> dict:
    """Size and sha256 of every file of a local dataset (which copy a run converted)."""
    from pulse.models.backends import file_digests, sha256_of
    files = {}
    for key in ("path", "general"):
        value = params.get(key)
        path = Path(value["path"] if isinstance(value, dict) else value).expanduser() if value else None
        if path is None or not path.exists():
            continue
        if path.is_dir():
            files.update({f"{path}/{k}": v for k, v in file_digests(path).items() if k.endswith((".parquet", ".tsv", ".json"))})
        else:
            files[str(path)] = {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
    return files


def run(params: dict, out_dir: str | Path, log=print) -> None:
    out_dir = Path(out_dir)
    tables, splits = build(params, log)
    for name in TABLES:
        write_table(out_dir / f"{name}.parquet", tables.get(name, []))
    if params.get("source", "synthetic") != "synthetic":
        write_json(out_dir / "source_files.json", source_files(params))
    write_json(out_dir / (CANDIDATES if params.get("select_known") else SPLITS), splits)


def merge_selection(candidates_path: str | Path, known_path: str | Path, out: str | Path) -> dict:
    """``splits.json`` from the data stage's candidates and the base stage's known-entity selection."""
    splits = read_json(candidates_path)
    known = read_json(known_path)
    missing = set(known["known"]) - set(splits["pretrained"]["candidates"])
    if missing:
        raise DataError(f"{known_path}: selected entities {sorted(missing)[:5]} are not candidates of {candidates_path}")
    splits["pretrained"] = {"population": "world", "forget": known["forget"], "retain": known["retain"],
                            "selected_by": "base-model MCQ accuracy (top entities, seeded split)",
                            "known": known["known"], "threshold_accuracy": known["threshold_accuracy"]}
    write_json(out, splits)
    return splits
