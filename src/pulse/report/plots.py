"""Figures (PNG + PDF) and an HTML table page from summary.csv (the mean over seeds) and, with
several seeds, summary_stats.csv: then every line has a band, every cross and bar an error bar,
showing the 95% interval over seeds (t-interval of the mean, ``pulse.report.summary``).

- ``steps_{knowledge}``: the main metrics against the sequential step, one line per method; the
  one-shot result (same forget set, one request) is a cross at the last step; the gold model and
  the start model are horizontal lines.
- ``schedules``: final values of one-shot vs sequential side by side, per method and knowledge.
- ``modality``: forget-set MCQ accuracy asked with the image vs by name (text only).
- ``tables.html``: the summary tables (final step of every method and schedule).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from pulse.io import atomic_path  # noqa: E402
from pulse.report.summary import html  # noqa: E402

REFERENCES = ("base", "gold")
KEYS = ["knowledge", "method", "schedule", "step", "split", "modality", "metric"]
# (row title, [(split, metric, panel title)]) of the step figure
STEP_PANELS = [
    ("MCQ accuracy", [("forget", "mcq_acc", "forget"), ("retain", "mcq_acc", "retain"),
                      ("other", "mcq_acc", "other knowledge"), ("utility", "mcq_acc", "utility")]),
    ("ROUGE-L recall", [("forget", "rouge_l", "forget"), ("retain", "rouge_l", "retain"),
                        ("other", "rouge_l", "other knowledge"), ("utility", "rouge_l", "utility")]),
    ("forget set", [("forget", "forget_quality", "forget quality (KS p)"),
                    ("forget", "mia_auc_minkpp", "MIA AUC (Min-K%++)"),
                    ("forget", "truth_ratio", "truth ratio"),
                    ("all", "model_utility", "model utility")]),
]
LOG_METRICS = {"forget_quality", "truth_ratio"}
SCHEDULE_PANELS = [("forget", "mcq_acc", "forget MCQ acc"), ("retain", "mcq_acc", "retain MCQ acc"),
                   ("other", "mcq_acc", "other-knowledge MCQ acc"), ("utility", "mcq_acc", "utility MCQ acc"),
                   ("forget", "rouge_l", "forget ROUGE-L"), ("forget", "forget_quality", "forget quality"),
                   ("forget", "mia_auc_minkpp", "MIA AUC (Min-K%++)"), ("all", "model_utility", "model utility")]


def save(figure, out_dir: Path, name: str) -> None:
    for ext in ("png", "pdf"):
        with atomic_path(out_dir / f"{name}.{ext}") as tmp:
            figure.savefig(tmp, format=ext, dpi=110, bbox_inches="tight")
    plt.close(figure)


def with_intervals(table: pd.DataFrame, stats: pd.DataFrame | None) -> pd.DataFrame:
    """``table`` with columns ``low``/``high``: the 95% interval over seeds (NaN with one seed)."""
    if stats is None:
        return table.assign(low=float("nan"), high=float("nan"))
    bounds = stats[KEYS + ["ci95_low", "ci95_high"]].rename(columns={"ci95_low": "low", "ci95_high": "high"})
    merged = table.merge(bounds, on=KEYS, how="left", validate="one_to_one", indicator=True)
    if len(stats) != len(table) or (merged.pop("_merge") != "both").any():
        raise ValueError("summary_stats.csv does not match summary.csv row for row")
    return merged


def error_bars(rows: pd.DataFrame, log: bool = False):
    """(lower, upper) distances of the 95% interval from the values, for ``yerr``; None if unknown.
    On a log axis the lower bar stops at a tenth of the value (an interval reaching <= 0 cannot
    be drawn there)."""
    if rows.low.isna().all():
        return None
    lower = (rows.value - rows.low).clip(lower=0).fillna(0)
    if log:
        lower = lower.clip(upper=0.9 * rows.value)
    return [lower.tolist(), (rows.high - rows.value).clip(lower=0).fillna(0).tolist()]


def select(table: pd.DataFrame, **where) -> pd.DataFrame:
    rows = table
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return rows


def methods_of(table: pd.DataFrame) -> list[str]:
    return [m for m in dict.fromkeys(table.method) if m not in REFERENCES]


def colours(methods: list[str]) -> dict[str, tuple]:
    palette = plt.get_cmap("tab10")
    return {m: palette(i % 10) for i, m in enumerate(methods)}


def seeds_note(table: pd.DataFrame) -> str:
    return "" if table.low.isna().all() else "\nmeans over seeds; bands and error bars: 95% interval"


def step_figure(table: pd.DataFrame, knowledge: str, out_dir: Path) -> None:
    part = select(table, knowledge=knowledge, modality="all")
    methods = methods_of(part)
    colour = colours(methods)
    schedules = [s for s in dict.fromkeys(part.schedule) if s != "none"]
    longest = max(schedules, key=lambda s: part[part.schedule == s].step.max())
    figure, axes = plt.subplots(len(STEP_PANELS), 4, figsize=(15, 3.1 * len(STEP_PANELS)), squeeze=False)
    for r, (row_title, panels) in enumerate(STEP_PANELS):
        for c, (split, metric, title) in enumerate(panels):
            ax = axes[r][c]
            rows = select(part, split=split, metric=metric)
            plotted = False
            for method in methods:
                line = select(rows, method=method, schedule=longest).sort_values("step")
                if len(line):
                    ax.plot(line.step, line.value, marker="o", ms=3, color=colour[method], label=method)
                    if line.low.notna().any():
                        low = line.low
                        if metric in LOG_METRICS:  # an interval reaching <= 0 would fill to -inf on a log axis
                            low = low.clip(lower=line.value[line.value > 0].min() / 10)
                        ax.fill_between(line.step, low, line.high, color=colour[method], alpha=0.15, lw=0)
                    plotted = True
                for schedule in schedules:
                    if schedule == longest:
                        continue
                    final = select(rows, method=method, schedule=schedule)
                    final = final[final.step == final.step.max()] if len(final) else final
                    if len(final):
                        ax.errorbar([part[part.schedule == longest].step.max()], final.value.iloc[:1],
                                    yerr=error_bars(final.iloc[:1], metric in LOG_METRICS), marker="x", ms=8, mew=2, ls="none",
                                    capsize=3, color=colour[method])
            for reference, style in (("gold", "--"), ("base", ":")):
                ref = select(rows, method=reference)
                if len(ref):
                    ax.axhline(ref.value.iloc[0], color="black", ls=style, lw=1, label=f"{reference} model")
            if metric in LOG_METRICS and plotted and (rows.value > 0).all():
                ax.set_yscale("log")
            elif metric != "truth_ratio":
                ax.set_ylim(-0.03, 1.03) if "privleak" not in metric else None
            ax.set_title(title if c else f"{row_title}: {title}", fontsize=9)
            ax.set_xlabel(f"{longest} step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if not plotted:
                ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
    handles, labels = [], []
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    handles.append(plt.Line2D([], [], marker="x", ls="none", color="grey", mew=2))
    labels.append("one-shot (final)")
    figure.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.02))
    figure.suptitle(f"Unlearning {knowledge} knowledge: metrics after each {longest} request "
                    f"(image + text and text-only questions pooled){seeds_note(table)}",
                    y=1.08 if seeds_note(table) else 1.05)
    figure.tight_layout()
    save(figure, out_dir, f"steps_{knowledge}")
    return figure


def final_values(table: pd.DataFrame) -> pd.DataFrame:
    """The last step of every (knowledge, method, schedule)."""
    last = table.groupby(["knowledge", "method", "schedule"]).step.transform("max")
    return table[table.step == last]


def schedules_figure(table: pd.DataFrame, knowledges: list[str], out_dir: Path) -> None:
    finals = final_values(select(table, modality="all"))
    figure, axes = plt.subplots(len(knowledges), len(SCHEDULE_PANELS),
                                figsize=(2.6 * len(SCHEDULE_PANELS), 3.0 * len(knowledges)), squeeze=False)
    for r, knowledge in enumerate(knowledges):
        part = select(finals, knowledge=knowledge)
        methods = methods_of(part)
        schedules = [s for s in dict.fromkeys(part.schedule) if s != "none"]
        width = 0.8 / max(1, len(schedules))
        for c, (split, metric, title) in enumerate(SCHEDULE_PANELS):
            ax = axes[r][c]
            rows = select(part, split=split, metric=metric)
            for i, schedule in enumerate(schedules):
                bars = pd.concat([select(rows, method=m, schedule=schedule).iloc[:1] for m in methods])
                bars = bars.set_index("method").reindex(methods)
                ax.bar([x + (i - (len(schedules) - 1) / 2) * width for x in range(len(methods))], bars.value,
                       width=width, label=schedule, color=plt.get_cmap("Set2")(i), yerr=error_bars(bars, metric in LOG_METRICS),
                       capsize=2, error_kw={"lw": 0.8})
            gold = select(rows, method="gold")
            if len(gold):
                ax.axhline(gold.value.iloc[0], color="black", ls="--", lw=1, label="gold model")
            ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
            ax.set_title(title if c else f"{knowledge}: {title}", fontsize=9)
            if metric == "forget_quality" and len(rows) and (rows.value > 0).all():
                ax.set_yscale("log")
            else:
                ax.set_ylim(0, 1.03)
            ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    figure.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.03))
    figure.suptitle("One-shot vs sequential unlearning of the same forget set: final values"
                    f"{seeds_note(table)}", y=1.1 if seeds_note(table) else 1.07)
    figure.tight_layout()
    save(figure, out_dir, "schedules")
    return figure


def modality_figure(table: pd.DataFrame, knowledges: list[str], out_dir: Path) -> None:
    finals = final_values(select(table, split="forget", metric="mcq_acc"))
    figure, axes = plt.subplots(1, len(knowledges), figsize=(7.5 * len(knowledges), 3.6), squeeze=False)
    for c, knowledge in enumerate(knowledges):
        ax = axes[0][c]
        part = select(finals, knowledge=knowledge)
        start = select(table, knowledge=knowledge, split="forget", metric="mcq_acc", step=0)
        start = start[~start.method.isin(REFERENCES)]
        labels, mm, text = [], [], []
        if len(start):
            labels.append("start")
            mm.append(select(start, modality="mm").iloc[:1])
            text.append(select(start, modality="text").iloc[:1])
        groups = list(part.groupby(["method", "schedule"], sort=False))
        groups = [g for g in groups if g[0][0] not in REFERENCES] + [g for g in groups if g[0][0] == "gold"]
        for (method, schedule), group in groups:
            if len(select(group, modality="mm")) and len(select(group, modality="text")):
                labels.append(method if method == "gold" else f"{method}\n{schedule}")
                mm.append(select(group, modality="mm").iloc[:1])
                text.append(select(group, modality="text").iloc[:1])
        x = range(len(labels))
        for offset, bars, label, colour in ((-0.2, mm, "image + text (mm)", "tab:blue"),
                                            (0.2, text, "text only", "tab:orange")):
            bars = pd.concat(bars) if bars else select(part, modality="none")
            ax.bar([i + offset for i in x], bars.value, width=0.4, label=label, color=colour,
                   yerr=error_bars(bars) if len(bars) else None, capsize=2, error_kw={"lw": 0.8})
        ax.axhline(0.25, color="grey", ls=":", lw=1, label="chance (4 options)")
        ax.set_xticks(list(x), labels, fontsize=7)
        ax.set_ylim(0, 1.03)
        ax.set_title(f"{knowledge} knowledge: forget-set MCQ accuracy at the final step", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle(seeds_note(table).strip(), fontsize=8)
    figure.tight_layout()
    save(figure, out_dir, "modality")
    return figure


def write_all(csv_path: str | Path, out_dir: str | Path, stats_path: str | Path | None = None) -> None:
    """Every figure and tables.html; with ``stats_path`` (summary_stats.csv) the 95% intervals over
    seeds as bands and error bars."""
    plain = pd.read_csv(csv_path)
    table = with_intervals(plain, pd.read_csv(stats_path) if stats_path else None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    knowledges = list(dict.fromkeys(table.knowledge))
    for knowledge in knowledges:
        step_figure(table, knowledge, out_dir)
    schedules_figure(table, knowledges, out_dir)
    modality_figure(table, knowledges, out_dir)
    with atomic_path(out_dir / "tables.html") as tmp:
        tmp.write_text(html(plain))
