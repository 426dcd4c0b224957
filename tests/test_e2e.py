"""The smoke configuration through the real snakemake CLI, in a temporary copy of the workflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def workflow_copy(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", target)
    for folder in ("workflow", "config", "profiles", "src"):
        shutil.copytree(REPO / folder, target / folder, symlinks=True)
    return target


def snakemake(directory: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # --replace-workflow-config: the smoke config replaces the Snakefile's default config instead of
    # being merged into it (a merge would add every default method to the smoke run).
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--replace-workflow-config",
               "--configfile", "config/smoke.yaml", *args]
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted(directory.glob("results/*/logs/**/*.log")))
        raise AssertionError(f"snakemake {args} failed:\n{result.stderr[-6000:]}\n{logs}")
    return result


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    directory = workflow_copy(tmp_path_factory.mktemp("smoke"))
    snakemake(directory)
    return directory


@pytest.fixture(scope="module")
def summary(smoke) -> pd.DataFrame:
    return pd.read_csv(smoke / "results" / "smoke" / "summary.csv")


def value(summary, **where) -> float:
    rows = summary
    for key, wanted in where.items():
        rows = rows[rows[key] == wanted]
    assert len(rows) == 1, where
    return float(rows["value"].iloc[0])


def test_every_checkpoint_and_evaluation_exists(smoke):
    run = smoke / "results" / "smoke"
    assert (run / "base" / "model.safetensors").stat().st_size > 0
    assert (run / "finetune" / "adapter_model.safetensors").stat().st_size > 0
    for name in ("base", "finetune"):
        assert (run / "eval" / f"{name}.json").exists()
    for knowledge in SMOKE["unlearn"]["knowledge"]:
        for method in SMOKE["unlearn"]["methods"]:
            for schedule, requests in SMOKE["unlearn"]["schedules"].items():
                for step in range(1, requests + 1):
                    stem = f"{knowledge}/{method}/{schedule}/step{step}"
                    assert (run / "unlearn" / stem / "adapter_model.safetensors").exists(), stem
                    assert (run / "eval" / f"{stem}.json").exists(), stem
                    assert (run / "benchmarks" / "unlearn" / f"{stem}.tsv").exists(), stem


def test_summary_has_the_long_format_and_no_missing_value(summary):
    assert list(summary.columns) == ["knowledge", "method", "schedule", "step", "split", "modality", "metric", "value"]
    assert not summary.isna().any().any()
    assert set(summary.knowledge) == {"finetuned", "pretrained"}
    assert {"forget", "retain", "other", "holdout", "utility", "forget_test", "retain_test"} <= set(summary.split)


def test_fine_tuned_model_knows_its_entities(summary):
    for split in ("forget", "retain"):
        acc = value(summary, knowledge="finetuned", method="GA", schedule="oneshot", step=0, split=split, modality="all")
        assert acc >= 0.9, (split, acc)


def test_gradient_ascent_forgets_fine_tuned_knowledge(summary):
    for schedule, requests in SMOKE["unlearn"]["schedules"].items():
        start = value(summary, knowledge="finetuned", method="GA", schedule=schedule, step=0, split="forget", modality="all")
        final = value(summary, knowledge="finetuned", method="GA", schedule=schedule, step=requests, split="forget", modality="all")
        assert final < start - 0.3, (schedule, start, final)


def test_summary_markdown_has_a_table_per_knowledge_source(smoke):
    text = (smoke / "results" / "smoke" / "summary.md").read_text()
    assert "## Unlearning finetuned knowledge" in text and "## Unlearning pretrained knowledge" in text
    assert re.search(r"\| GradDiff \| sequential \| 2 \|", text)


def test_complete_run_has_nothing_to_do(smoke):
    result = snakemake(smoke, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_method_reruns_only_that_method(smoke, tmp_path):
    changed = yaml.safe_load((smoke / "config" / "smoke.yaml").read_text())
    changed["unlearn"]["methods"]["GradDiff"]["lr"] = 5e-4
    (smoke / "config" / "changed.yaml").write_text(yaml.safe_dump(changed))
    result = snakemake(smoke, "--dry-run", "--configfile", "config/changed.yaml")
    output = result.stdout + result.stderr
    methods = set(re.findall(r"method=([^,\s]+)", output))
    assert methods == {"GradDiff"}, methods
    assert "rule finetune" not in output and "rule base" not in output


def test_same_config_gives_identical_numbers(smoke, summary, tmp_path_factory):
    again = workflow_copy(tmp_path_factory.mktemp("smoke_again"))
    snakemake(again)
    pd.testing.assert_frame_equal(summary, pd.read_csv(again / "results" / "smoke" / "summary.csv"))
