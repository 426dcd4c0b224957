"""The smoke configuration through the real snakemake CLI, in a temporary copy of the workflow."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import snakemake, value, workflow_copy

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


@pytest.fixture(scope="module")
def summary(smoke) -> pd.DataFrame:
    return pd.read_csv(smoke / "results" / "smoke" / "summary.csv")


def test_every_checkpoint_and_evaluation_exists(smoke):
    run = smoke / "results" / "smoke"
    seeded = run / "seed0"
    assert (run / "base" / "model.safetensors").stat().st_size > 0
    assert (run / "eval" / "base.json").exists()
    links = pd.read_csv(seeded / "provenance.csv")
    assert all((smoke / p).exists() for p in links.checkpoint_provenance.dropna())
    assert (seeded / "finetune" / "adapter_model.safetensors").stat().st_size > 0
    assert (seeded / "eval" / "finetune.json").exists()
    for knowledge in SMOKE["unlearn"]["knowledge"]:
        for method in SMOKE["unlearn"]["methods"]:
            for schedule, requests in SMOKE["unlearn"]["schedules"].items():
                for step in range(1, requests + 1):
                    stem = f"{knowledge}/{method}/{schedule}/step{step}"
                    assert (seeded / "unlearn" / stem / "adapter_model.safetensors").exists(), stem
                    assert (seeded / "unlearn" / stem / "provenance.json").exists(), stem
                    assert (seeded / "eval" / f"{stem}.json").exists(), stem
                    assert (seeded / "benchmarks" / "unlearn" / f"{stem}.tsv").exists(), stem


def test_a_config_file_on_the_command_line_defines_the_run_alone(smoke):
    """--configfile replaces the embedded default (no method of config.yaml leaks in)."""
    methods = {p.name for p in (smoke / "results" / "smoke" / "seed0" / "unlearn" / "finetuned").iterdir()}
    assert methods == set(SMOKE["unlearn"]["methods"])


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
    assert "### One request vs sequential requests (finetuned)" in text


# --- evaluation suite: generation, truth ratio / forget quality vs gold models, MIA, report ----

# Knowledge sources with a gold model (evaluate.gold, default on).
GOLD = [k for k in SMOKE["unlearn"]["knowledge"] if SMOKE.get("evaluate", {}).get("gold", {}).get(k, True)]
NEW_METRICS = {"rouge_l", "exact_match", "truth_ratio", "truth_score", "forget_quality", "model_utility",
               "mia_auc_loss", "mia_auc_zlib", "mia_auc_mink", "mia_auc_minkpp", "privleak_loss",
               "privleak_zlib", "privleak_mink", "privleak_minkpp"}


def test_gold_models_and_their_evaluations_exist(smoke):
    run = smoke / "results" / "smoke"
    assert GOLD, "the smoke config should train at least one gold model"
    if "pretrained" in GOLD:
        assert (run / "gold" / "pretrained" / "base" / "model.safetensors").exists()
    for knowledge in GOLD:
        assert (run / "seed0" / "gold" / knowledge / "finetune" / "adapter_model.safetensors").exists()
        assert (run / "seed0" / "eval" / "gold" / f"{knowledge}.json").exists()


def test_every_new_metric_is_reported_for_image_and_text_questions(summary):
    assert NEW_METRICS <= set(summary.metric)
    for metric in ("rouge_l", "truth_ratio", "forget_quality", "mia_auc_minkpp"):
        rows = summary[(summary.metric == metric) & (summary.split == "forget")]
        assert {"mm", "text", "all"} <= set(rows.modality), metric
    # every unlearning checkpoint has a model utility, and a forget quality if it has a gold model
    unlearned = summary[~summary.method.isin(["base", "gold"])]
    coordinates = ["knowledge", "method", "schedule", "step"]
    for metric, knowledge in (("model_utility", SMOKE["unlearn"]["knowledge"]), ("forget_quality", GOLD)):
        rows = unlearned[unlearned.knowledge.isin(knowledge)]
        keys = rows[rows.metric == metric][coordinates].drop_duplicates()
        assert len(keys) == len(rows[coordinates].drop_duplicates()) > 0, metric


def test_gold_model_is_near_chance_on_its_forget_set_where_the_fine_tuned_model_is_not(summary):
    for knowledge in GOLD:
        gold = value(summary, knowledge=knowledge, method="gold", split="forget", modality="all", metric="mcq_acc")
        start = value(summary, knowledge=knowledge, method="GA", schedule="oneshot", step=0, split="forget",
                      modality="all", metric="mcq_acc")
        assert gold <= 0.5 and start >= 0.9, (knowledge, gold, start)
        # it still knows what it was trained on
        retain = value(summary, knowledge=knowledge, method="gold", split="retain", modality="all", metric="mcq_acc")
        assert retain >= 0.8, (knowledge, retain)


def test_membership_inference_separates_the_fine_tuned_forget_set_from_holdout(summary):
    for score in ("loss", "minkpp"):
        if "finetuned" not in GOLD:
            break
        start = value(summary, knowledge="finetuned", method="GA", schedule="oneshot", step=0, split="forget",
                      modality="all", metric=f"mia_auc_{score}")
        gold = value(summary, knowledge="finetuned", method="gold", split="forget", modality="all",
                     metric=f"mia_auc_{score}")
        assert start >= 0.75 and start > gold + 0.15, (score, start, gold)


def test_forget_quality_tells_the_model_that_knows_the_forget_set_from_the_gold_model(summary):
    def cell(knowledge, metric, **where):
        return value(summary, knowledge=knowledge, split="forget", modality="all", metric=metric, **where)

    start = {"method": "GA", "schedule": "oneshot", "step": 0}
    for knowledge in GOLD:
        # the model that knows the forget set prefers the truth; the gold model cannot tell
        assert cell(knowledge, "truth_ratio", **start) < 0.85 * cell(knowledge, "truth_ratio", method="gold")
        assert cell(knowledge, "forget_quality", **start) < 0.1, knowledge
    if "pretrained" in GOLD:  # pre-trained knowledge is known firmly: far from the gold model
        assert cell("pretrained", "forget_quality", **start) < 1e-6


def test_plots_and_html_report_exist_and_are_not_empty(smoke):
    plots = smoke / "results" / "smoke" / "plots"
    names = [f"steps_{k}" for k in SMOKE["unlearn"]["knowledge"]] + ["schedules", "modality"]
    for name in names:
        png, pdf = plots / f"{name}.png", plots / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000, name
    assert "Forgetting and utility" in (plots / "tables.html").read_text()
    snakemake(smoke, "--report", "report.html")
    report = (smoke / "report.html").read_text(errors="replace")
    assert len(report) > 100_000 and "forget quality" in report


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


def test_killed_run_resumes_to_the_same_summary(summary, tmp_path_factory):
    """SIGKILL the whole workflow once some unlearning checkpoints exist, re-run the same
    command (the README's, `pulse workflow`, which clears the killed run's stale lock), and get
    exactly the uninterrupted run's summary."""
    directory = workflow_copy(tmp_path_factory.mktemp("smoke_killed"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [str(Path(sys.executable).parent / "pulse"), "workflow", "--cores", "2",
               "--workflow-profile", "profiles/local", "--configfile", "config/smoke.yaml"]
    process = subprocess.Popen(command, cwd=directory, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    unlearned = directory / "results" / "smoke" / "seed0" / "unlearn"
    deadline = time.monotonic() + 900
    try:
        while not list(unlearned.glob("*/*/*/step1/adapter_model.safetensors")):
            assert process.poll() is None, "workflow ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (directory / "results" / "smoke" / "summary.csv").exists()
    assert list((directory / ".snakemake" / "locks").iterdir()), "the killed run left no lock to clear"
    resumed = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=1800)
    assert resumed.returncode == 0, resumed.stderr[-6000:]
    assert "removing the locks of a run that was killed" in resumed.stderr
    pd.testing.assert_frame_equal(summary, pd.read_csv(directory / "results" / "smoke" / "summary.csv"))
