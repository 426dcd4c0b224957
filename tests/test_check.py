"""Expected results: tolerances come from seed spread; a run inside them passes, outside fails."""

import pandas as pd
import pytest

from pulse.report.check import check, make_expected
from pulse.report.summary import seed_statistics


def table(values):
    rows = []
    for step, value in enumerate(values):
        rows.append({"knowledge": "finetuned", "method": "GA", "schedule": "sequential", "step": step,
                     "split": "forget", "modality": "all", "metric": "mcq_acc", "value": value})
    return pd.DataFrame(rows)


def test_seed_statistics_mean_std_and_interval():
    stats = seed_statistics([table([1.0, 0.5, 0.2]), table([1.0, 0.7, 0.4])])
    final = stats.iloc[-1]
    assert final["n"] == 2 and final["mean"] == pytest.approx(0.3)
    assert final["std"] == pytest.approx(0.1414, abs=1e-4)
    # 95% t interval with 1 degree of freedom: mean +- 12.706 * std / sqrt(2)
    assert final["ci95_high"] - final["mean"] == pytest.approx(12.706 * 0.1414 / 2 ** 0.5, rel=1e-3)


def test_tolerance_is_seed_spread_with_a_floor_and_only_start_and_final_steps():
    stats = seed_statistics([table([1.0, 0.5, 0.2]), table([1.0, 0.7, 0.4])])
    expected = make_expected(stats, sigmas=3, floor=0.02)
    assert list(expected["step"]) == [0, 2]
    assert expected["tolerance"].tolist() == pytest.approx([0.02, 3 * 0.1414], abs=1e-3)


def test_check_passes_inside_and_fails_outside_or_missing():
    stats = seed_statistics([table([1.0, 0.5, 0.2]), table([1.0, 0.7, 0.4])])
    expected = make_expected(stats, sigmas=3, floor=0.02)
    assert check(table([1.0, 0.6, 0.5]), expected)["passed"].all()
    assert not check(table([0.9, 0.6, 0.5]), expected)["passed"].iloc[0]
    assert not check(table([1.0, 0.6]), expected)["passed"].iloc[-1]


def test_one_seed_cannot_give_tolerances():
    with pytest.raises(ValueError, match="two seeds"):
        make_expected(seed_statistics([table([1.0, 0.5])]), sigmas=3, floor=0.02)


def test_expected_results_can_keep_only_the_headline_metrics():
    seeds = [pd.concat([table([1.0, v]), table([0.9, v / 2]).assign(metric="rouge_l")]) for v in (0.5, 0.7)]
    stats = seed_statistics(seeds)
    expected = make_expected(stats, sigmas=3, floor=0.02, metrics=["rouge_l"])
    assert set(expected["metric"]) == {"rouge_l"} and len(expected) == 2
    with pytest.raises(ValueError, match=r"\['mia_auc'\] are not in the summary"):
        make_expected(stats, sigmas=3, floor=0.02, metrics=["mia_auc"])


def test_committed_expected_results_cover_the_default_config():
    """expected/default.csv belongs to config/config.yaml: every method, knowledge source and
    schedule has cells, from at least two seeds, with positive tolerances (regenerate it with a
    multi-seed run and `pulse make-expected` whenever the default changes)."""
    from pathlib import Path

    import yaml
    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    expected = pd.read_csv(repo / "expected" / "default.csv")
    assert list(expected.columns) == ["knowledge", "method", "schedule", "step", "split", "modality", "metric",
                                      "expected", "tolerance", "seeds"]
    unlearned = expected[~expected["method"].isin(["base", "gold"])]
    assert set(unlearned["method"]) == set(config["unlearn"]["methods"])
    assert set(unlearned["knowledge"]) == set(config["unlearn"]["knowledge"])
    finals = unlearned.groupby("schedule")["step"].max().to_dict()
    assert finals == config["unlearn"]["schedules"]
    assert (expected["seeds"] >= 2).all() and (expected["tolerance"] > 0).all()
