"""A general multimodal benchmark (the paper's MMBench) as ``utility`` rows: image + multiple-choice
questions, scored like every other MCQ.

Reads a local file in the MMBench layout, as its two common distributions ship it: a parquet file
(``image`` {bytes, path}) or the TSV of VLMEvalKit (``image`` as base64). Columns: ``question``,
``A``..``D`` (missing options empty), ``answer`` (a letter), optional ``hint`` (prepended to the
question as MMBench does) and ``index``.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pulse.data.records import DataError

REQUIRED = ("question", "A", "B", "answer", "image")
LETTERS = "ABCD"


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _image_bytes(cell, where: str) -> bytes:
    if isinstance(cell, dict):
        data = cell.get("bytes")
    elif isinstance(cell, (bytes, bytearray)):
        data = bytes(cell)
    elif isinstance(cell, str):
        try:
            data = base64.b64decode(cell, validate=True)
        except ValueError as error:
            raise DataError(f"{where}: image is neither bytes nor base64 ({error})") from error
    else:
        data = None
    if not data:
        raise DataError(f"{where}: no image")
    try:
        Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as error:  # PIL raises several types for corrupt bytes
        raise DataError(f"{where}: image cannot be decoded ({error})") from error
    return data


def read_general(path: str | Path, limit: int | None, seed: int) -> list[dict]:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data.general.path {path}: no such file")
    frame = pd.read_csv(path, sep="\t") if path.suffix in (".tsv", ".csv") else pd.read_parquet(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected the MMBench columns {list(REQUIRED)}")
    order = np.arange(len(frame))
    if limit is not None and limit < len(frame):
        order = np.sort(np.random.default_rng(seed).permutation(len(frame))[:limit])
    rows = []
    for position in order:
        row = frame.iloc[int(position)]
        key = _text(row.get("index")) or str(position)
        where = f"{path} row {position} (index {key})"
        options = {letter: _text(row.get(letter)) for letter in LETTERS}
        answer = _text(row["answer"])
        if answer not in {k for k, v in options.items() if v is not None}:
            raise DataError(f"{where}: answer {answer!r} is not one of its options")
        question = _text(row["question"]) or ""
        hint = _text(row.get("hint"))
        rows.append({
            "ID": f"general_{key}", "name": "", "population": "utility",
            "image": {"bytes": _image_bytes(row["image"], where), "path": ""},
            "biography": "", "question": "", "answer": "",
            "Classification_Task": {"Image_Textual_Questions": [
                {"Question": f"{hint}\n{question}" if hint else question, "Options": options,
                 "Correct_Answer": answer}], "Pure_Text_Questions": []},
            "Generation_Task": [], "Mask_Task": [], "source": path.name,
        })
    return rows
