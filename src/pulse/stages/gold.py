"""Gold-model data: the run's data with one knowledge source's forget entities removed from its
training file, so that the ordinary ``pulse base`` / ``pulse finetune`` stages, run on it, train
the reference model that never saw the forget set.

Only ``{population}_train.parquet`` of that knowledge source loses rows; the test files keep
them, so every word of the data (and hence the tiny model's vocabulary) stays the same, and the
gold model is evaluated on exactly the questions every other checkpoint is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from pulse.data.records import all_texts
from pulse.io import atomic_dir, read_json

POPULATION_OF = {"finetuned": "fictitious", "pretrained": "world"}


def words(paths) -> set[str]:
    return {word for text in all_texts(paths) for word in text.split()}


def run(params: dict, data_dir: str | Path, out_dir: str | Path, log=print) -> None:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    knowledge = params["knowledge"]
    forget = set(read_json(data_dir / "splits.json")[knowledge]["forget"])
    population = POPULATION_OF[knowledge]
    with atomic_dir(out_dir) as tmp:
        for path in sorted(data_dir.iterdir()):
            if path.name == f"{population}_train.parquet":
                frame = pd.read_parquet(path)
                kept = frame[~frame["ID"].isin(forget)]
                if len(frame) - len(kept) != len(forget):
                    raise ValueError(f"{path}: expected the {len(forget)} forget entities of {knowledge} "
                                     f"knowledge, found {len(frame) - len(kept)}")
                kept.to_parquet(tmp / path.name, index=False)
                log(f"{path.name}: {len(frame)} -> {len(kept)} entities (forget set of {knowledge} removed)")
            elif path.is_file():
                shutil.copy2(path, tmp / path.name)
        before, after = words(sorted(data_dir.glob("*.parquet"))), words(sorted(tmp.glob("*.parquet")))
        if before != after:
            raise ValueError(f"removing the forget entities changed the data's words: {sorted(before ^ after)[:10]}")
