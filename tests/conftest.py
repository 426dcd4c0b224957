"""Shared fixtures: a small synthetic world and a tiny LLaVA built on it (random weights)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL_DATA = {"seed": 0, "entities": {"world": 6, "fictitious": 6, "holdout": 2},
              "utility": {"train": 8, "test": 4}, "forget_size": 2}
SMALL_MODEL = {"image_size": 32, "patch_size": 8, "vision_hidden": 32, "vision_layers": 1,
               "vision_heads": 2, "hidden": 64, "layers": 2, "heads": 2, "max_positions": 128}

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    from pulse.stages import data
    out = tmp_path_factory.mktemp("data")
    data.run(SMALL_DATA, out)
    return out


@pytest.fixture(scope="session")
def tiny(data_dir):
    """(model, processor) of a randomly initialised tiny LLaVA over the small world's words."""
    import torch
    from pulse.data.records import all_texts
    from pulse.models.encoding import PROMPTS
    from pulse.models.tiny import build_model, build_processor
    torch.manual_seed(0)
    processor = build_processor(all_texts(sorted(data_dir.glob("*.parquet"))), SMALL_MODEL, PROMPTS["tiny"])
    return build_model(processor.tokenizer, SMALL_MODEL).eval(), processor


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory, tiny):
    from pulse.models.chain import save_model
    out = tmp_path_factory.mktemp("base")
    save_model(*tiny, out)
    return out


def workflow_copy(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", target)
    for folder in ("workflow", "config", "profiles", "src"):
        shutil.copytree(REPO / folder, target / folder, symlinks=True)
    return target


def snakemake(directory: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--workflow-profile", "profiles/local",
               "--configfile", "config/smoke.yaml", *args]
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted(directory.glob("results/*/logs/**/*.log")))
        raise AssertionError(f"snakemake {args} failed:\n{result.stderr[-6000:]}\n{logs}")
    return result


@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> Path:
    """A finished run of config/smoke.yaml in a copy of the workflow (shared by the end-to-end
    tests and the container test, which compares the image's numbers with these)."""
    directory = workflow_copy(tmp_path_factory.mktemp("smoke"))
    snakemake(directory)
    return directory


def value(summary, **where) -> float:
    """The one summary value matching ``where`` (metric defaults to MCQ accuracy)."""
    where.setdefault("metric", "mcq_acc")
    rows = summary
    for key, wanted in where.items():
        rows = rows[rows[key] == wanted]
    assert len(rows) == 1, where
    return float(rows["value"].iloc[0])
