"""The one record schema: MLLMU-Bench rows flattened into QA and MCQ examples.

Every stage reads data through these functions, whichever source (synthetic or real) wrote the
parquet files, so a new dataset only needs to be written in the same row layout.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

REQUIRED_COLUMNS = ("ID", "image", "Classification_Task", "Generation_Task")
MODALITIES = {"Image_Textual": "mm", "Pure_Text": "text"}


@dataclass(frozen=True)
class QA:
    """An open question with its reference answer; ``image`` is None for text-only questions.

    ``paraphrase``/``perturbed`` (truth ratio: a rephrased correct answer and wrong answers) are
    present when the data provides them (``Paraphrased_Answer``/``Perturbed_Answers``); ``index``
    is the position of the question among its entity's open questions of the same modality.
    ``wrong`` (other answers of the same kind) and ``refusal`` (an "I don't know"-style answer) are
    alternative answers some unlearning methods train on (``Wrong_Answers``/``Refusal``), empty
    when the data has none.
    """
    entity: str
    modality: str
    question: str
    answer: str
    image: Image.Image | None
    paraphrase: str | None = None
    perturbed: tuple[str, ...] = ()
    index: int = 0
    wrong: tuple[str, ...] = ()
    refusal: str | None = None


@dataclass(frozen=True)
class MCQ:
    entity: str
    modality: str
    question: str
    options: tuple[str, ...]
    answer_index: int
    image: Image.Image | None


class DataError(ValueError):
    """Bad input data, with the file and row that caused it."""


def read_rows(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data file does not exist")
    frame = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected the MLLMU-Bench columns "
                        f"{list(REQUIRED_COLUMNS)}")
    return frame


def decode_image(cell, where: str) -> Image.Image:
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as error:  # PIL raises several types for corrupt bytes
        raise DataError(f"{where}: image cannot be decoded ({error})") from error


def load_examples(path: str | Path, entities: set[str] | None = None) -> tuple[list[QA], list[MCQ]]:
    """Open QA pairs and MCQs of the rows of one parquet file (optionally only some entities)."""
    frame = read_rows(path)
    qas: list[QA] = []
    mcqs: list[MCQ] = []
    for index, row in frame.iterrows():
        if entities is not None and row["ID"] not in entities:
            continue
        image = decode_image(row["image"], f"{path} row {index} (ID {row['ID']})")
        seen = {"mm": 0, "text": 0}
        for item in row["Generation_Task"]:
            modality = MODALITIES[item["Type"]]
            perturbed, wrong = item.get("Perturbed_Answers"), item.get("Wrong_Answers")
            qas.append(QA(row["ID"], modality, item["Question"], item["Ground_Truth"],
                          image if modality == "mm" else None, item.get("Paraphrased_Answer"),
                          tuple(perturbed) if perturbed is not None else (), seen[modality],
                          tuple(wrong) if wrong is not None else (), item.get("Refusal") or None))
            seen[modality] += 1
        task = row["Classification_Task"]
        for key, modality in (("Image_Textual_Questions", "mm"), ("Pure_Text_Questions", "text")):
            for item in task.get(key) if task.get(key) is not None else []:
                letters = sorted(k for k, v in item["Options"].items() if v is not None)  # A..D, some may be absent
                options = tuple(item["Options"][letter] for letter in letters)
                mcqs.append(MCQ(row["ID"], modality, item["Question"], options,
                                letters.index(item["Correct_Answer"]),
                                image if modality == "mm" else None))
    return qas, mcqs


def all_texts(paths) -> list[str]:
    """Every question, answer and option string in the files (to build a word vocabulary)."""
    texts: list[str] = []
    for path in paths:
        qas, mcqs = load_examples(path)
        texts += [q.question for q in qas] + [q.answer for q in qas]
        texts += sorted({q.refusal for q in qas if q.refusal})
        for m in mcqs:
            texts += [m.question, *m.options]
    return texts
