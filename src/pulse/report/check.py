"""Expected results for artifact reviewers: derive tolerances from measured seed-to-seed spread,
then check a run against them cell by cell."""

from __future__ import annotations

import pandas as pd

from pulse.report.summary import COLUMNS
from pulse.io import atomic_path

KEYS = COLUMNS[:-1]


def final_and_start(table: pd.DataFrame) -> pd.DataFrame:
    """The cells a reviewer checks: step 0, every curve's final step and the base model."""
    last = table.groupby(["knowledge", "method", "schedule"])["step"].transform("max")
    return table[(table["step"] == 0) | (table["step"] == last)]


def make_expected(stats: pd.DataFrame, sigmas: float, floor: float, metrics: list[str] | None = None) -> pd.DataFrame:
    """expected = mean over seeds; tolerance = max(sigmas * std, floor) per cell (of ``metrics``,
    default all)."""
    if stats["n"].min() < 2:
        raise ValueError("tolerances need the spread of at least two seeds (summary_stats.csv n >= 2)")
    if metrics:
        unknown = sorted(set(metrics) - set(stats["metric"]))
        if unknown:
            raise ValueError(f"metrics {unknown} are not in the summary; it has {sorted(set(stats['metric']))}")
        stats = stats[stats["metric"].isin(metrics)]
    chosen = final_and_start(stats.rename(columns={"mean": "value"}))
    expected = chosen[KEYS].copy()
    expected["expected"] = chosen["value"].round(4)
    expected["tolerance"] = (sigmas * chosen["std"]).clip(lower=floor).round(4)
    expected["seeds"] = chosen["n"]
    return expected.reset_index(drop=True)


def check(summary: pd.DataFrame, expected: pd.DataFrame) -> pd.DataFrame:
    """One row per expected cell with the observed value and pass/fail (missing = fail)."""
    merged = expected.merge(summary, on=KEYS, how="left")
    merged["difference"] = (merged["value"] - merged["expected"]).abs()
    merged["passed"] = merged["difference"].le(merged["tolerance"]) & merged["value"].notna()
    return merged.rename(columns={"value": "observed"})


def write_expected(stats_path, out_path, sigmas: float, floor: float, metrics: list[str] | None = None) -> pd.DataFrame:
    expected = make_expected(pd.read_csv(stats_path), sigmas, floor, metrics)
    with atomic_path(out_path) as tmp:
        expected.to_csv(tmp, index=False)
    return expected


def report(summary_path, expected_path) -> tuple[str, bool]:
    result = check(pd.read_csv(summary_path), pd.read_csv(expected_path))
    shown = result[KEYS[:-1] + ["expected", "observed", "tolerance", "passed"]].copy()
    shown["passed"] = shown["passed"].map({True: "PASS", False: "FAIL"})
    failed = int((~result["passed"]).sum())
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    text += f"\n\n{len(result) - failed} passed, {failed} failed\n"
    return text, failed == 0
