"""Aggregate per-question evaluation records into the long summary table and a readable report.

Splits are relative to the knowledge source being unlearned: ``forget``/``retain`` are entities of
its own population, ``other`` is every entity of the other population (cross-effects),
``forget_requested`` only the forget entities requested up to that step (sequential schedules).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pulse.io import atomic_path, read_json

COLUMNS = ["knowledge", "method", "schedule", "step", "split", "modality", "metric", "value"]
POPULATION_OF = {"finetuned": "fictitious", "pretrained": "world"}
OTHER = {"finetuned": "world", "pretrained": "fictitious"}


def split_masks(items: pd.DataFrame, knowledge: str, splits: dict, requested: list[str]) -> dict:
    own = items.population == POPULATION_OF[knowledge]
    forget = items.entity.isin(splits[knowledge]["forget"])
    retain = items.entity.isin(splits[knowledge]["retain"])
    train, test = items.variant == "train", items.variant == "test"
    return {
        "forget": own & forget & train, "forget_test": own & forget & test,
        "forget_requested": own & items.entity.isin(requested) & train,
        "retain": own & retain & train, "retain_test": own & retain & test,
        "other": (items.population == OTHER[knowledge]) & train,
        "holdout": (items.population == "holdout") & train,
        "utility": items.population == "utility",
    }


def rows_for(items: pd.DataFrame, key: dict, splits: dict, requested: list[str]) -> list[dict]:
    rows = []
    for split, mask in split_masks(items, key["knowledge"], splits, requested).items():
        chosen = items[mask]
        for modality, part in [("all", chosen)] + list(chosen.groupby("modality")):
            if len(part):
                rows.append({**key, "split": split, "modality": modality, "metric": "mcq_acc",
                             "value": float(part.correct.mean())})
    return rows


def summarize(manifest: list[dict], splits_path: str | Path) -> pd.DataFrame:
    """``manifest``: one entry per checkpoint: knowledge, method, schedule, step, requests, path."""
    splits = read_json(splits_path)
    rows = []
    for entry in manifest:
        items = pd.DataFrame(read_json(entry["path"])["items"])
        forget = splits[entry["knowledge"]]["forget"]
        requested = forget[: len(forget) * entry["step"] // entry["requests"]]
        key = {k: entry[k] for k in ("knowledge", "method", "schedule", "step")}
        rows += rows_for(items, key, splits, requested)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(COLUMNS[:6], kind="stable").reset_index(drop=True)


REPORT_COLUMNS = [("forget", "mm"), ("forget", "text"), ("forget_test", "all"), ("retain", "all"),
                  ("retain_test", "all"), ("other", "all"), ("holdout", "all"), ("utility", "all")]


def markdown(table: pd.DataFrame, seeds: int = 1) -> str:
    """Per knowledge source: rows method x schedule at the final step, step 0 as reference."""
    spread = f"Mean over {seeds} seeds; std and 95% intervals in summary_stats.csv. " if seeds > 1 else ""
    lines = ["# PULSE summary", "", spread +
             "MCQ accuracy (option likelihood). `forget` = the forget set, `retain` = the rest of the "
             "same knowledge source, `other` = the other knowledge source, `holdout` = never-trained "
             "entities (chance level ≈ 0.25), `*_test` = paraphrased questions + transformed images.", ""]
    header = ["method", "schedule", "step"] + [f"{s} {m}" if m != "all" else s for s, m in REPORT_COLUMNS]
    for knowledge, part in table.groupby("knowledge", sort=False):
        lines += [f"## Unlearning {knowledge} knowledge", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        wide = part.pivot_table(index=["method", "schedule", "step"], columns=["split", "modality"],
                                values="value")
        base = wide.xs("base", level="method").iloc[0]
        lines.append("| (base model) | | | " + " | ".join(f"{base.get(c, float('nan')):.2f}" for c in REPORT_COLUMNS) + " |")
        wide = wide.drop(index="base", level="method")
        start = wide.xs(0, level="step").iloc[0]
        lines.append("| (start) | | 0 | " + " | ".join(f"{start.get(c, float('nan')):.2f}" for c in REPORT_COLUMNS) + " |")
        for (method, schedule), group in wide.groupby(level=["method", "schedule"], sort=False):
            final = group.iloc[-1]
            step = group.index[-1][2]
            lines.append(f"| {method} | {schedule} | {step} | "
                         + " | ".join(f"{final.get(c, float('nan')):.2f}" for c in REPORT_COLUMNS) + " |")
        lines.append("")
    return "\n".join(lines)


def write_csv(table: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def provenance_links(manifest: list[dict]) -> pd.DataFrame:
    """Per checkpoint (the summary's join keys): its evaluation file, the evaluation's provenance
    and the provenance of the checkpoint's last adapter (the base model for the base row)."""
    rows = []
    for entry in manifest:
        chain = read_json(entry["path"]).get("chain") or []
        rows.append({**{k: entry[k] for k in ("knowledge", "method", "schedule", "step")},
                     "evaluation": entry["path"], "evaluation_provenance": entry["path"] + ".provenance.json",
                     "checkpoint_provenance": f"{chain[-1]}/provenance.json" if chain else ""})
    return pd.DataFrame(rows)


def write(manifest: list[dict], splits_path, csv_path, provenance_path=None) -> pd.DataFrame:
    """One seed's long table (and, optionally, the provenance file of every checkpoint)."""
    table = summarize(manifest, splits_path)
    if table["value"].isna().any():
        raise ValueError("summary has missing values")
    write_csv(table, csv_path)
    if provenance_path:
        write_csv(provenance_links(manifest), provenance_path)
    return table


def seed_statistics(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Mean, sample std, count and 95% t-interval of every number over seeds."""
    from scipy import stats

    keys = COLUMNS[:-1]
    for table in tables[1:]:
        if not table[keys].equals(tables[0][keys]):
            raise ValueError("per-seed summaries do not have the same rows")
    values = pd.concat([t["value"] for t in tables], axis=1)
    out = tables[0][keys].copy()
    n = values.shape[1]
    out["n"] = n
    out["mean"] = values.mean(axis=1)
    out["std"] = values.std(axis=1, ddof=1) if n > 1 else float("nan")
    half = stats.t.ppf(0.975, n - 1) * out["std"] / n ** 0.5 if n > 1 else float("nan")
    out["ci95_low"], out["ci95_high"] = out["mean"] - half, out["mean"] + half
    return out


def aggregate(inputs: list, csv_path, stats_path, md_path) -> pd.DataFrame:
    """summary.csv (mean over seeds, the long format), summary_stats.csv and summary.md."""
    statistics = seed_statistics([pd.read_csv(path) for path in inputs])
    mean = statistics[COLUMNS[:-1]].assign(value=statistics["mean"])
    write_csv(mean, csv_path)
    write_csv(statistics, stats_path)
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown(mean, seeds=len(inputs)))
    return mean
