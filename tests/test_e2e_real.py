"""The DAG with each real back-end end to end through the snakemake CLI: a local MLLMU-Bench copy
(fixture in the release layout), a tiny random checkpoint of the back-end's real class, the PULSE
protocol's known-entity selection, a general benchmark, unlearning from the base for pre-trained
knowledge. Same DAG as the tiny run; nothing is downloaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mllmu_fixture import texts_of, write_checkpoint, write_mllmu
from pulse.io import read_json
from test_e2e import workflow_copy

pytestmark = pytest.mark.e2e
BACKENDS = ["llava", "qwen2_vl"]


def snakemake(directory: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """snakemake with the copy's config/config.yaml as the only config file."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted(directory.glob("results/*/logs/**/*.log")))
        raise AssertionError(f"snakemake {args} failed:\n{result.stderr[-6000:]}\n{logs}")
    return result


def real_config(run: str, backend: str, checkpoint, data) -> dict:
    return {
        "run": run, "seed": 0, "seeds": [0],
        "data": {"source": "mllmu", "path": str(data), "forget_ratio": 10, "holdout": 2,
                 "select_known": {"top": 6, "forget": 2},
                 "general": {"path": str(data / "MMBench_DEV_EN.parquet")}},
        "model": {"backend": backend, "checkpoint": str(checkpoint), "device": "cpu", "dtype": "float32",
                  "train_projector": True},
        "finetune": {"steps": 20, "batch_size": 16, "lr": 2.0e-3, "replay": 0.0, "lora": {"rank": 8, "alpha": 16}},
        "unlearn": {"knowledge": ["finetuned", "pretrained"], "pretrained_start": "base",
                    "schedules": {"oneshot": 1, "sequential": 2}, "batch_size": 16, "epochs": 1,
                    "lora": {"rank": 8, "alpha": 16}, "methods": {"GA": {"lr": 1.0e-3}}},
        # the gold fine-tune runs on the real class too; a real base cannot be re-pre-trained
        "evaluate": {"batch_size": 32, "gold": {"finetuned": True, "pretrained": False}},
        "resources": {stage: {"gpu": 0} for stage in ("data", "base", "finetune", "unlearn", "evaluate")},
    }


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    return write_mllmu(tmp_path_factory.mktemp("MLLMU-Bench"))


@pytest.fixture(scope="module", params=BACKENDS)
def real_run(request, tmp_path_factory, fixture_data):
    backend = request.param
    checkpoint = write_checkpoint(tmp_path_factory.mktemp("ckpt") / backend, backend, texts_of(fixture_data))
    directory = workflow_copy(tmp_path_factory.mktemp(f"real_{backend}"))
    # The embedded default config of this copy.
    (directory / "config" / "config.yaml").write_text(yaml.safe_dump(real_config(backend, backend, checkpoint,
                                                                                 fixture_data)))
    snakemake(directory)
    return backend, directory / "results" / backend, checkpoint


def test_every_stage_ran_on_the_real_class(real_run):
    backend, run, checkpoint = real_run
    record = read_json(run / "base" / "checkpoint.json")
    assert record["backend"] == backend and record["source"]["path"] == str(checkpoint.resolve())
    assert not (run / "base" / "model.safetensors").exists()  # a real base is recorded, not copied
    assert (run / "seed0" / "finetune" / "adapter_model.safetensors").exists()
    for knowledge in ("finetuned", "pretrained"):
        for schedule, steps in (("oneshot", 1), ("sequential", 2)):
            assert (run / "seed0" / "unlearn" / knowledge / "GA" / schedule / f"step{steps}" / "adapter_model.safetensors").exists()
    summary = pd.read_csv(run / "summary.csv")
    assert not summary.isna().any().any()
    assert {"forget", "retain", "other", "holdout", "utility", "forget_test"} <= set(summary.split)


def test_known_entities_are_the_best_scored_and_become_the_pretrained_split(real_run):
    _, run, _ = real_run
    known = read_json(run / "base" / "known_entities.json")
    scores = known["scores"]
    ranked = sorted(scores, key=lambda e: (-scores[e]["accuracy"], -scores[e]["mean_margin"], e))
    assert known["known"] == ranked[:6]
    assert min(scores[e]["accuracy"] for e in known["known"]) >= max(
        scores[e]["accuracy"] for e in scores if e not in known["known"])
    splits = read_json(run / "data" / "splits.json")
    assert splits["pretrained"]["forget"] == known["forget"] and len(known["forget"]) == 2
    assert sorted(splits["pretrained"]["retain"]) == sorted(set(known["known"]) - set(known["forget"]))
    log = read_json(run / "seed0" / "unlearn" / "pretrained" / "GA" / "oneshot" / "step1" / "unlearn_log.json")
    assert sorted(log["forget_entities"]) == sorted(known["forget"])


def test_evaluation_covers_every_population(real_run):
    _, run, _ = real_run
    items = pd.DataFrame(read_json(run / "eval" / "base.json")["items"])
    assert set(items.population) == {"world", "fictitious", "holdout", "utility"}
    assert set(items.modality) == {"mm", "text"}


def test_complete_real_run_has_nothing_to_do(real_run):
    backend, run, _ = real_run
    result = snakemake(run.parents[1], "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr
