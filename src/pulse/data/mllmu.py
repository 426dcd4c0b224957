"""MLLMU-Bench, as published, converted into the files every later stage reads.

The release (one folder per subset, each holding ``train-0000i-of-0000n.parquet`` shards):

==============  =====================================================================================
``forget_{r}``  fictitious profiles to forget (r = 5, 10, 15 % of the 500 profiles): ``ID``,
                ``image`` {bytes, path}, ``biography``, ``question``/``answer``,
                ``Classification_Task`` {``Image_Textual_Questions``, ``Pure_Text_Questions``: lists
                of {``Question``, ``Options`` {A..D}, ``Correct_Answer``}}, ``Generation_Task`` and
                ``Mask_Task`` (lists of {``Type``, ``Question``, ``Ground_Truth``})
``retain_{q}``  the other fictitious profiles (q = 100 - r), same columns
``Test_Set``    the same profiles with paraphrased questions and transformed images: ``images``
                (a list of {bytes, path}) instead of ``image``
``Retain_Set``  153 real celebrities, same columns as ``forget_{r}``
``ft_Data``     the fine-tuning data of the fictitious profiles: ``image`` and ``metadata``
                (JSON list of {``Question``, ``Answer``}); joined to profiles by ``ID``, or by the
                image bytes when a copy has no ``ID`` column
``Full_Set``    all 500 profiles (not needed here: forget ∪ retain is the same rows)
==============  =====================================================================================

Populations written (see ``pulse.data.records`` for the row layout): ``fictitious`` = forget ∪
retain profiles (train: their MCQs, with the ft_Data question/answer pairs as the
``Generation_Task`` the training stages learn and unlearn; test: their Test_Set rows), ``world`` =
the celebrities (pre-trained knowledge; MLLMU-Bench has no test variant for them), ``holdout`` =
``data.holdout`` retain profiles kept out of fine-tuning (a never-learned reference), ``utility``
= an optional general benchmark (``data.general``). Every problem names the file and row.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pulse.data.records import DataError

PROFILE_COLUMNS = ("ID", "image", "Classification_Task", "Generation_Task")
TEST_COLUMNS = ("ID", "images", "Classification_Task", "Generation_Task")
FT_COLUMNS = ("image", "metadata")
TASK_KEYS = ("Image_Textual_Questions", "Pure_Text_Questions")
QA_TYPES = ("Image_Textual", "Pure_Text")
REPO = "MLLMMU/MLLMU-Bench"


def plain(value):
    """Nested numpy/pandas cells (arrays of dicts) as plain Python lists and dicts."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def shards(root: Path, folder: str) -> list[Path]:
    directory = root / folder
    files = sorted(directory.glob("*.parquet"))
    if not files:
        raise DataError(f"{directory}: no parquet files; expected the MLLMU-Bench layout "
                        f"{folder}/train-00000-of-0000N.parquet under data.path")
    return files


def count_rows(root: Path, folder: str) -> int | None:
    """Rows of a subset from the parquet footers only (None if the folder is missing)."""
    import pyarrow.parquet as pq
    files = sorted((root / folder).glob("*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files) if files else None


def read_subset(root: Path, folder: str, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    """Rows of one subset as (where, row) pairs; ``where`` names the file and row for errors."""
    rows = []
    for path in shards(root, folder):
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for damaged files
            raise DataError(f"{path}: not a readable parquet file ({error})") from error
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; MLLMU-Bench {folder} rows have "
                            f"{list(required)} (found {list(frame.columns)})")
        for index, row in enumerate(frame.to_dict("records")):
            rows.append((f"{path} row {index} (ID {row.get('ID', '?')})", row))
    return rows


def image_cell(cell, where: str) -> dict:
    """An image cell {bytes, path} checked to decode; a DataError names the row if it does not."""
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not data:
        raise DataError(f"{where}: image has no bytes")
    try:
        Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as error:  # PIL raises several types for corrupt bytes
        raise DataError(f"{where}: image cannot be decoded ({error})") from error
    return {"bytes": bytes(data), "path": str(cell.get("path") or "")}


def check_tasks(row: dict, where: str) -> dict:
    """The row's classification task, checked: four lettered options, the answer among them."""
    task = plain(row["Classification_Task"])
    if not isinstance(task, dict) or not any(k in task for k in TASK_KEYS):
        raise DataError(f"{where}: Classification_Task has neither of {list(TASK_KEYS)}")
    checked = {}
    for key in TASK_KEYS:
        items = task.get(key) or []
        for number, item in enumerate(items):
            options = item.get("Options") if isinstance(item, dict) else None
            if not isinstance(options, dict) or not item.get("Question"):
                raise DataError(f"{where}: Classification_Task.{key}[{number}] lacks Question/Options")
            if item.get("Correct_Answer") not in {k for k, v in options.items() if v is not None}:
                raise DataError(f"{where}: Classification_Task.{key}[{number}]: Correct_Answer "
                                f"{item.get('Correct_Answer')!r} is not one of its options {sorted(options)}")
        checked[key] = [{"Question": str(i["Question"]), "Options": dict(i["Options"]),
                         "Correct_Answer": str(i["Correct_Answer"])} for i in items]
    return checked


def qa_list(value, where: str, column: str) -> list[dict]:
    items = plain(value) if value is not None else []
    out = []
    for number, item in enumerate(items):
        if not isinstance(item, dict) or item.get("Type") not in QA_TYPES or "Question" not in item:
            raise DataError(f"{where}: {column}[{number}] is not a {{Type in {list(QA_TYPES)}, "
                            "Question, Ground_Truth}} item")
        out.append({"Type": item["Type"], "Question": str(item["Question"]),
                     "Ground_Truth": str(item.get("Ground_Truth", ""))})
    return out


def profile_row(row: dict, where: str, population: str, image: dict, source: str) -> dict:
    return {"ID": str(row["ID"]), "name": str(row.get("name") or ""), "population": population,
            "image": image, "biography": str(row.get("biography") or ""),
            "question": str(row.get("question") or ""), "answer": str(row.get("answer") or ""),
            "Classification_Task": check_tasks(row, where),
            "Generation_Task": qa_list(row["Generation_Task"], where, "Generation_Task"),
            "Mask_Task": qa_list(row.get("Mask_Task"), where, "Mask_Task"),
            "source": source}


def unique(rows: list[tuple[str, dict]], folder: str) -> dict[str, tuple[str, dict]]:
    by_id: dict[str, tuple[str, dict]] = {}
    for where, row in rows:
        key = str(row["ID"])
        if key in by_id:
            raise DataError(f"{where}: ID {key} appears twice in {folder} (first: {by_id[key][0]})")
        by_id[key] = (where, row)
    return by_id


def finetune_pairs(root: Path, profiles: dict[str, tuple[str, dict]]) -> dict[str, list[dict]]:
    """ft_Data question/answer pairs per profile ID (joined by ID, else by identical image bytes)."""
    rows = read_subset(root, "ft_Data", FT_COLUMNS)
    by_image = {hashlib.sha1(bytes(row["image"]["bytes"])).hexdigest(): key
                for key, (_, row) in profiles.items() if isinstance(row.get("image"), dict)}
    pairs: dict[str, list[dict]] = {}
    for where, row in rows:
        if "ID" in row and row["ID"] is not None:
            key = str(row["ID"])
        else:
            cell = row["image"] if isinstance(row["image"], dict) else {}
            key = by_image.get(hashlib.sha1(bytes(cell.get("bytes") or b"")).hexdigest())
            if key is None:
                continue  # a profile outside forget ∪ retain (or not in this subset)
        meta = row["metadata"]
        try:
            meta = json.loads(meta) if isinstance(meta, (str, bytes)) else plain(meta)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: metadata is not valid JSON ({error})") from error
        if not isinstance(meta, list) or not all(isinstance(m, dict) for m in meta):
            raise DataError(f"{where}: metadata is not a list of {{Question, Answer}} pairs")
        pairs.setdefault(key, []).extend(
            {"Type": "Image_Textual", "Question": str(m["Question"]), "Ground_Truth": str(m["Answer"])}
            for m in meta if m.get("Question") and m.get("Answer"))
    return pairs


def pick(items: list, key: str, seed: int):
    """A seeded choice that depends only on (seed, key): stable whatever else changes."""
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    return items[int.from_bytes(digest[:8], "little") % len(items)]


def convert(params: dict, log=print) -> tuple[dict[str, list[dict]], dict]:
    """(rows by ``{population}_{split}``, draft splits) of a local MLLMU-Bench directory."""
    root = Path(params["path"]).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path {root}: no such directory (a local copy of {REPO}; set data.download "
                        "to fetch it)")
    ratio, seed = params["forget_ratio"], params["seed"]
    forget = unique(read_subset(root, f"forget_{ratio}", PROFILE_COLUMNS), f"forget_{ratio}")
    retain = unique(read_subset(root, f"retain_{100 - ratio}", PROFILE_COLUMNS), f"retain_{100 - ratio}")
    both = set(forget) & set(retain)
    if both:
        raise DataError(f"{root}: profiles {sorted(both)[:5]} are in both forget_{ratio} and retain_{100 - ratio}")
    rng = np.random.default_rng(seed)
    retain_ids = sorted(retain)
    holdout_ids = sorted(retain_ids[i] for i in rng.permutation(len(retain_ids))[:params["holdout"]])
    profiles = {**forget, **retain}
    pairs = finetune_pairs(root, profiles) if params["finetune_qa"] == "ft_Data" else {}

    tables: dict[str, list[dict]] = {f"{p}_{s}": [] for p in ("world", "fictitious", "holdout", "utility")
                                     for s in ("train", "test")}
    for key in sorted(profiles, key=lambda k: (k not in forget, k)):
        where, row = profiles[key]
        population = "holdout" if key in holdout_ids else "fictitious"
        folder = f"forget_{ratio}" if key in forget else f"retain_{100 - ratio}"
        out = profile_row(row, where, population, image_cell(row["image"], where), folder)
        if params["finetune_qa"] == "ft_Data":
            if key not in pairs:
                raise DataError(f"{where}: profile {key} has no question/answer pairs in {root / 'ft_Data'}")
            out["Generation_Task"] = pairs[key]
        tables[f"{population}_train"].append(out)

    tested = set()
    for where, row in read_subset(root, "Test_Set", TEST_COLUMNS):
        key = str(row["ID"])
        if key not in profiles:
            continue
        if key in tested:
            raise DataError(f"{where}: ID {key} appears twice in Test_Set")
        tested.add(key)
        images = plain(row["images"])
        if not images:
            raise DataError(f"{where}: images is empty")
        chosen = pick(list(range(len(images))), key, seed)
        image = image_cell(images[chosen], f"{where} images[{chosen}]")
        population = "holdout" if key in holdout_ids else "fictitious"
        tables[f"{population}_test"].append(profile_row(row, where, population, image, "Test_Set"))

    for where, row in unique(read_subset(root, "Retain_Set", PROFILE_COLUMNS), "Retain_Set").values():
        tables["world_train"].append(profile_row(row, where, "world", image_cell(row["image"], where),
                                                 "Retain_Set"))

    if params.get("general"):
        from pulse.data.general import read_general
        tables["utility_test"] = read_general(params["general"]["path"], params["general"].get("limit"), seed)

    order = sorted(forget)
    draft = {"finetuned": {"population": "fictitious",
                           "forget": [order[i] for i in rng.permutation(len(order))],
                           "retain": sorted(k for k in retain if k not in holdout_ids),
                           "source": f"{root.name}/forget_{ratio} and retain_{100 - ratio}"}}
    log(f"MLLMU-Bench {root}: {len(forget)} forget / {len(retain) - len(holdout_ids)} retain / "
        f"{len(holdout_ids)} holdout profiles, {len(tables['fictitious_test']) + len(tables['holdout_test'])} "
        f"test rows, {len(tables['world_train'])} celebrities, {len(tables['utility_test'])} general questions")
    return tables, draft


def download(params: dict, log=print) -> None:
    """Fetch the release into data.path (only when the config sets data.download)."""
    from huggingface_hub import snapshot_download
    target = Path(params["path"]).expanduser()
    log(f"downloading {params['repo']} (revision {params.get('revision') or 'main'}) into {target}")
    snapshot_download(params["repo"], repo_type="dataset", revision=params.get("revision"),
                      local_dir=target, allow_patterns=["*.parquet", "README.md"])
