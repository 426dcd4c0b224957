"""A small dataset in the exact MLLMU-Bench release layout, and tiny random checkpoints of the real
model classes, written by the tests (nothing is downloaded).

The profiles come from the synthetic world (so tiny models can learn them), re-shaped into the
published subsets: ``forget_10`` / ``retain_90`` / ``Full_Set`` profile rows, ``Test_Set`` rows
with an ``images`` list (two shards), ``Retain_Set`` celebrities, ``ft_Data`` (image + ID +
``metadata`` JSON of question/answer pairs), plus an MMBench-style general benchmark file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pulse.data.synthetic import generate_world

PROFILE_COLUMNS = ["image", "ID", "Directory", "biography", "question", "answer",
                   "Classification_Task", "Generation_Task", "Mask_Task"]


def profile(row: dict) -> dict:
    """A synthetic row with exactly the columns of an MLLMU-Bench profile row."""
    mask = [{"Type": "Pure_Text", "Question": f"{row['name']} lives in __ .",
             "Ground_Truth": str(row["attributes"]["city"])}] if row["name"] else []
    return {"image": row["image"], "ID": row["ID"], "Directory": f"{row['ID']}/", "biography": row["biography"],
            "question": row["question"], "answer": row["answer"],
            "Classification_Task": row["Classification_Task"], "Generation_Task": row["Generation_Task"],
            "Mask_Task": mask}


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def write_mllmu(root: Path, profiles: int = 12, celebrities: int = 10, forget: int = 4, seed: int = 0) -> Path:
    world = generate_world({"world": celebrities, "fictitious": profiles, "holdout": 1},
                           {"train": 2, "test": 8}, seed)
    train = [profile(r) for r in world["fictitious_train"]]
    test = [profile(r) for r in world["fictitious_test"]]
    write(root / "Full_Set" / "train-00000-of-00001.parquet", train)
    write(root / "forget_10" / "train-00000-of-00001.parquet", train[:forget])
    write(root / "retain_90" / "train-00000-of-00001.parquet", train[forget:])
    # Test_Set: paraphrased questions, a list of transformed images instead of `image`; two shards.
    rows = [{"images": [row["image"], train[i]["image"]], **{k: v for k, v in row.items() if k != "image"}}
            for i, row in enumerate(test)]
    half = len(rows) // 2
    write(root / "Test_Set" / "train-00000-of-00002.parquet", rows[:half])
    write(root / "Test_Set" / "train-00001-of-00002.parquet", rows[half:])
    write(root / "Retain_Set" / "train-00000-of-00001.parquet", [profile(r) for r in world["world_train"]])
    ft = [{"image": row["image"], "ID": row["ID"],
           "metadata": json.dumps([{"Question": q["Question"], "Answer": q["Ground_Truth"]}
                                   for q in row["Generation_Task"] if q["Type"] == "Image_Textual"])}
          for row in train]
    write(root / "ft_Data" / "train-00000-of-00001.parquet", ft)
    # A general benchmark in the MMBench layout (some questions with only two options).
    general = []
    for index, row in enumerate(world["utility_test"]):
        question = row["Classification_Task"]["Image_Textual_Questions"][0]
        options = dict(question["Options"])
        if index % 2:
            keep = sorted({question["Correct_Answer"], *[k for k in "AB" if k != question["Correct_Answer"]][:1]})
            options = {k: (options[k] if k in keep else None) for k in "ABCD"}
        general.append({"index": index, "question": question["Question"], "hint": None,
                        **options, "answer": question["Correct_Answer"], "image": row["image"],
                        "category": "shape"})
    write(root / "MMBench_DEV_EN.parquet", general)
    return root


def texts_of(root: Path) -> list[str]:
    """Every word a tokenizer for the fixture needs (questions, answers, options)."""
    texts = []
    for path in sorted(root.rglob("*.parquet")):
        frame = pd.read_parquet(path)
        for column in ("Classification_Task", "Generation_Task", "Mask_Task", "metadata", "question", "A", "B",
                       "C", "D", "biography", "answer"):
            if column in frame.columns:
                texts += [json.dumps(v, default=lambda o: o.tolist()) for v in frame[column].tolist()]
    return [t.replace('"', " ").replace("\\n", " ") for t in texts]


def write_checkpoint(out: Path, backend: str, texts: list[str], seed: int = 0) -> Path:
    """A randomly initialised model of the back-end's real class, saved with its processor."""
    import torch

    from pulse.models.encoding import PROMPTS
    from pulse.models.tiny import build_model, build_processor, build_qwen_model, build_qwen_processor
    torch.manual_seed(seed)
    if backend == "llava":
        sizes = {"image_size": 32, "patch_size": 8, "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2,
                 "hidden": 64, "layers": 2, "heads": 2, "max_positions": 256}
        processor = build_processor(texts, sizes, PROMPTS["llava"])
        model = build_model(processor.tokenizer, sizes)
    else:
        processor = build_qwen_processor(texts, PROMPTS[backend])
        model = build_qwen_model(processor.tokenizer, backend)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
