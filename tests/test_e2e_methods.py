"""The added unlearning methods through the real snakemake CLI (config/smoke-methods.yaml: the smoke
world and model, fine-tuned knowledge, both schedules): every method produces every checkpoint and
forgets, and the lifelong LUMoE leaves everything its router does not select exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import snakemake, value, workflow_copy

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e
CONFIG = yaml.safe_load((REPO / "config" / "smoke-methods.yaml").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    directory = workflow_copy(tmp_path_factory.mktemp("smoke_methods"))
    snakemake(directory, "--configfile", "config/smoke-methods.yaml", timeout=3600)
    return directory / "results" / CONFIG["run"]


@pytest.fixture(scope="module")
def summary(run) -> pd.DataFrame:
    return pd.read_csv(run / "summary.csv")


def test_every_method_and_schedule_has_every_checkpoint(run, summary):
    for method in CONFIG["unlearn"]["methods"]:
        for schedule, requests in CONFIG["unlearn"]["schedules"].items():
            for step in range(1, requests + 1):
                stem = f"finetuned/{method}/{schedule}/step{step}"
                assert (run / "seed0" / "unlearn" / stem / "adapter_model.safetensors").exists(), stem
                assert (run / "seed0" / "eval" / f"{stem}.json").exists(), stem
    assert set(summary.method) - {"base", "gold"} == set(CONFIG["unlearn"]["methods"])  # + base and gold rows
    assert not summary.isna().any().any()


@pytest.mark.parametrize("method", list(CONFIG["unlearn"]["methods"]))
def test_every_method_forgets_in_both_schedules(summary, method):
    for schedule, requests in CONFIG["unlearn"]["schedules"].items():
        where = {"knowledge": "finetuned", "method": method, "schedule": schedule, "modality": "all"}
        start = value(summary, step=0, split="forget", **where)
        final = value(summary, step=requests, split="forget", **where)
        assert final < start - 0.25, (schedule, start, final)


def eval_items(path: Path) -> pd.DataFrame:
    return pd.DataFrame(json.loads(path.read_text())["items"])


def test_lumoe_stores_one_expert_and_router_per_request(run):
    for schedule, requests in CONFIG["unlearn"]["schedules"].items():
        for step in range(1, requests + 1):
            directory = run / "seed0" / "unlearn" / "finetuned" / "LUMoE" / schedule / f"step{step}"
            assert (directory / "router.safetensors").exists() and (directory / "router.json").exists()


def test_lumoe_leaves_other_knowledge_and_utility_untouched(run):
    """Questions about the other knowledge source, never-seen entities and the utility task are
    routed to no expert: at every step their answers are the starting model's and their scores
    equal its scores up to float rounding. (Bit for bit at the model level: test_methods. Here
    the starting model's evaluation shares image prefixes, which a routed model cannot, so the
    same sums run in another order; an expert moves these scores by far more than 1e-4.)"""
    start = eval_items(run / "seed0" / "eval" / "finetune.json")
    untouched = start.population.isin(["world", "holdout", "utility"])
    for schedule, requests in CONFIG["unlearn"]["schedules"].items():
        for step in range(1, requests + 1):
            items = eval_items(run / "seed0" / "eval" / "finetuned" / "LUMoE" / schedule / f"step{step}.json")
            assert items[untouched].correct.tolist() == start[untouched].correct.tolist()
            np.testing.assert_allclose(items[untouched].answer_logprob, start[untouched].answer_logprob,
                                       rtol=0, atol=1e-4)
            forgotten = items.population.eq("fictitious") & ~untouched
            assert (items[forgotten].answer_logprob - start[forgotten].answer_logprob).abs().max() > 1e-2


def test_lumoe_sequential_requests_cost_retain_nothing_more_than_one_request(summary):
    """The lifelong property: after K requests the retain accuracy is the one-request value, the
    starting value (retain questions are covered by the router's retain prompts, never routed)."""
    where = {"knowledge": "finetuned", "method": "LUMoE", "modality": "all"}
    requests = CONFIG["unlearn"]["schedules"]["sequential"]
    for split in ("retain", "utility"):
        oneshot = value(summary, schedule="oneshot", step=1, split=split, **where)
        sequential = value(summary, schedule="sequential", step=requests, split=split, **where)
        start = value(summary, schedule="sequential", step=0, split=split, **where)
        assert sequential == oneshot == start, (split, start, oneshot, sequential)
