"""Figures: with several seeds every line gets a 95%-interval band and every cross an error bar;
with one seed none (nothing is drawn that was not measured)."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from pulse.report.plots import step_figure, with_intervals, write_all
from pulse.report.summary import COLUMNS, seed_statistics


def seed_table(shift: float) -> pd.DataFrame:
    rows = []
    for schedule, steps in (("oneshot", 1), ("sequential", 3)):
        for step, split in itertools.product(range(steps + 1), ("forget", "retain", "other", "utility")):
            value = 0.9 - 0.2 * step + shift if split == "forget" else 0.9 + shift
            rows.append(["finetuned", "GA", schedule, step, split, "all", "mcq_acc", value])
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture
def stats():
    return seed_statistics([seed_table(0.0), seed_table(0.04), seed_table(-0.04)])


def forget_panel(figure):
    return next(ax for ax in figure.axes if ax.get_title().startswith("MCQ accuracy: forget"))


def test_several_seeds_draw_bands_around_the_mean(tmp_path, stats):
    mean = stats[COLUMNS[:-1]].assign(value=stats["mean"])
    figure = step_figure(with_intervals(mean, stats), "finetuned", tmp_path)
    bands = [c for c in forget_panel(figure).collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    vertices = bands[0].get_paths()[0].vertices
    # the band spans mean -/+ the t-interval: wider than the seeds' own spread (+-0.04) at every step
    assert vertices[:, 1].max() > 0.9 + 0.04 and vertices[:, 1].min() < 0.3 - 0.04
    assert (tmp_path / "steps_finetuned.png").stat().st_size > 0


def test_one_seed_draws_no_band(tmp_path):
    figure = step_figure(with_intervals(seed_table(0.0), None), "finetuned", tmp_path)
    assert not [c for c in forget_panel(figure).collections if isinstance(c, PolyCollection)]


def test_stats_that_do_not_match_the_summary_are_refused(tmp_path, stats):
    mean = stats[COLUMNS[:-1]].assign(value=stats["mean"])
    mean.to_csv(tmp_path / "summary.csv", index=False)
    stats.iloc[:-3].to_csv(tmp_path / "stats.csv", index=False)
    with pytest.raises(ValueError, match="summary_stats.csv"):
        write_all(tmp_path / "summary.csv", tmp_path / "plots", tmp_path / "stats.csv")
