"""Shared pieces of the training stages: example sets by entity and modality."""

from __future__ import annotations

from pathlib import Path

from pulse.data.records import load_examples
from pulse.io import read_json

POPULATION_OF = {"finetuned": "fictitious", "pretrained": "world"}


def train_qas(data_dir: str | Path, population: str, entities: set[str] | None = None):
    qas, _ = load_examples(Path(data_dir) / f"{population}_train.parquet", entities)
    return qas


def splits(data_dir: str | Path) -> dict:
    return read_json(Path(data_dir) / "splits.json")


def request_entities(forget: list[str], request: int, requests: int) -> list[str]:
    """Entities of request ``request`` (1-based) when the forget list is split into ``requests``."""
    size = len(forget) // requests
    return forget[(request - 1) * size: request * size]
