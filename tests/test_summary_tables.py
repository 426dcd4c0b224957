"""The one-shot vs sequential table compares the final steps of the two schedules."""

from __future__ import annotations

import pandas as pd
import pytest

from pulse.report.summary import COLUMNS, markdown, schedule_gaps


def table() -> pd.DataFrame:
    rows = []
    finals = {("oneshot", "retain"): 0.9, ("sequential", "retain"): 0.6,
              ("oneshot", "forget"): 0.2, ("sequential", "forget"): 0.5}
    for schedule, steps in (("oneshot", 1), ("sequential", 3)):
        for step in range(steps + 1):
            for split in ("forget", "retain", "other", "utility"):
                value = 1.0 if step == 0 else 0.8  # intermediate steps must not be used
                if step == steps:
                    value = finals.get((schedule, split), 0.8)
                rows.append(["finetuned", "GA", schedule, step, split, "all", "mcq_acc", value])
            rows.append(["finetuned", "GA", schedule, step, "all", "all", "model_utility", 0.7])
    rows.append(["finetuned", "gold", "none", 0, "retain", "all", "mcq_acc", 1.0])
    return pd.DataFrame(rows, columns=COLUMNS)


def test_gap_is_sequential_final_minus_oneshot_final():
    gaps = schedule_gaps(table())["finetuned"]
    assert list(gaps.method) == ["GA"] and list(gaps.schedule) == ["sequential"]
    row = gaps.iloc[0]
    assert row["retain 1-shot"] == 0.9 and row["retain seq"] == 0.6
    assert row["Δ retain"] == pytest.approx(-0.3)
    assert row["forget 1-shot"] == 0.2 and row["forget seq"] == 0.5
    assert row["Δ other"] == pytest.approx(0.0) and row["Δ model utility"] == pytest.approx(0.0)


def test_summary_markdown_shows_the_gap_table_signed():
    text = markdown(table())
    assert "### One request vs sequential requests (finetuned)" in text
    assert "| GA | sequential | 0.20 | 0.50 | 0.90 | 0.60 | -0.30 |" in text


def test_no_gap_table_without_a_oneshot_schedule():
    only_sequential = table().query("schedule != 'oneshot'")
    assert schedule_gaps(only_sequential) == {}
    assert "One request vs sequential" not in markdown(only_sequential)
