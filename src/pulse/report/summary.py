"""Aggregate per-question evaluation records into the long summary table and a readable report.

Splits are relative to the knowledge source being unlearned: ``forget``/``retain`` are entities of
its own population, ``other`` is every entity of the other population (cross-effects),
``forget_requested`` only the forget entities requested up to that step (sequential schedules).

Metrics (the ``metric`` column; docs/evaluation.md defines each):

- ``mcq_acc``: MCQ accuracy by option likelihood;
- ``rouge_l``, ``exact_match``: greedy answers to open questions vs the reference;
- ``truth_ratio`` (geometric mean of the per-question ratio R), ``truth_score`` (mean max(0, 1-R));
- ``forget_quality``: KS p-value of the truth ratios vs the gold model's on the same questions;
- ``mia_auc_{loss,zlib,mink,minkpp}``: membership-inference AUC of the split (members) against
  the holdout entities (non-members); ``privleak_*``: its relative gap to the gold model's AUC (%);
- ``model_utility``: harmonic mean of the kept-knowledge scores (split ``all``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pulse.io import atomic_path, read_json
from pulse.metrics import mia
from pulse.metrics.truth import forget_quality, geometric_mean, harmonic_mean, truth_score

COLUMNS = ["knowledge", "method", "schedule", "step", "split", "modality", "metric", "value"]
POPULATION_OF = {"finetuned": "fictitious", "pretrained": "world"}
OTHER = {"finetuned": "world", "pretrained": "fictitious"}
REFERENCE_METHODS = ("base", "gold")
MIA_SPLITS = ("forget", "forget_requested")
FORGET_SPLITS = ("forget", "forget_requested")
# Model utility: harmonic mean of these (split, metric) scores, modality "all".
UTILITY_PARTS = [("retain", "mcq_acc"), ("retain", "rouge_l"), ("other", "mcq_acc"), ("other", "rouge_l"),
                 ("utility", "mcq_acc"), ("utility", "rouge_l")]


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


def by_modality(part: pd.DataFrame):
    """("all", part) then one (modality, rows) per modality present."""
    return [("all", part)] + list(part.groupby("modality"))


def rows_for(items: pd.DataFrame, key: dict, splits: dict, requested: list[str]) -> list[dict]:
    rows = []
    for split, mask in split_masks(items, key["knowledge"], splits, requested).items():
        chosen = items[mask]
        for modality, part in by_modality(chosen):
            if len(part):
                rows.append({**key, "split": split, "modality": modality, "metric": "mcq_acc",
                             "value": float(part.correct.mean())})
    return rows


def item_key(frame: pd.DataFrame) -> pd.Series:
    """Identity of an open question across checkpoints (same data, same selection)."""
    return frame.entity + "|" + frame.modality + "|" + frame["index"].astype(str) + "|" + frame.variant


def open_rows(items: pd.DataFrame, key: dict, splits: dict, requested: list[str],
              gold: pd.DataFrame | None, is_gold: bool) -> list[dict]:
    """Generation, truth-ratio, forget-quality and membership-inference rows of one checkpoint."""
    rows = []
    knowledge = key["knowledge"]

    def add(split, modality, metric, value):
        rows.append({**key, "split": split, "modality": modality, "metric": metric, "value": float(value)})

    masks = split_masks(items, knowledge, splits, requested)
    holdout = items[masks["holdout"]]
    gold_masks = split_masks(gold, knowledge, splits, requested) if gold is not None else None
    for split, mask in masks.items():
        chosen = items[mask]
        for modality, part in by_modality(chosen):
            if not len(part):
                continue
            add(split, modality, "rouge_l", part.rouge_l.mean())
            add(split, modality, "exact_match", part.exact.mean())
            if "truth_ratio" in part and part.truth_ratio.notna().any():
                ratios = part.truth_ratio.dropna()
                add(split, modality, "truth_ratio", geometric_mean(ratios))
                add(split, modality, "truth_score", truth_score(ratios))
                if split in FORGET_SPLITS and gold_masks is not None and not is_gold:
                    reference = gold[gold_masks[split]]
                    if modality != "all":
                        reference = reference[reference.modality == modality]
                    reference = reference.dropna(subset=["truth_ratio"])
                    if len(reference):
                        add(split, modality, "forget_quality", forget_quality(ratios, reference.truth_ratio))
            if split in MIA_SPLITS and "mia_loss" in part:
                nonmembers = holdout if modality == "all" else holdout[holdout.modality == modality]
                members = part.dropna(subset=["mia_loss"])
                nonmembers = nonmembers.dropna(subset=["mia_loss"])
                if not len(members) or not len(nonmembers):
                    continue
                gold_members = gold_nonmembers = None
                if gold_masks is not None and not is_gold:
                    gold_members = gold[gold_masks[split]]
                    gold_nonmembers = gold[gold_masks["holdout"]]
                    if modality != "all":
                        gold_members = gold_members[gold_members.modality == modality]
                        gold_nonmembers = gold_nonmembers[gold_nonmembers.modality == modality]
                for score in mia.SCORES:
                    auc = mia.auc(members[f"mia_{score}"], nonmembers[f"mia_{score}"])
                    add(split, modality, f"mia_auc_{score}", auc)
                    if gold_members is not None and len(gold_members) and len(gold_nonmembers):
                        reference = mia.auc(gold_members[f"mia_{score}"], gold_nonmembers[f"mia_{score}"])
                        add(split, modality, f"privleak_{score}", mia.privleak(auc, reference))
    return rows


def utility_rows(rows: list[dict], key: dict) -> list[dict]:
    values = {(r["split"], r["metric"]): r["value"] for r in rows if r["modality"] == "all"}
    if not all(part in values for part in UTILITY_PARTS):
        return []
    return [{**key, "split": "all", "modality": "all", "metric": "model_utility",
             "value": harmonic_mean([values[part] for part in UTILITY_PARTS])}]


def open_frame(path) -> pd.DataFrame | None:
    records = read_json(path).get("open")
    return pd.DataFrame(records) if records else None


def summarize(manifest: list[dict], splits_path: str | Path, gold: dict | None = None) -> pd.DataFrame:
    """``manifest``: one entry per checkpoint: knowledge, method, schedule, step, requests, path.
    ``gold``: knowledge -> evaluation file of its gold model (forget quality, PrivLeak)."""
    splits = read_json(splits_path)
    gold_frames = {k: open_frame(p) for k, p in (gold or {}).items()}
    rows = []
    for entry in manifest:
        payload = read_json(entry["path"])
        items = pd.DataFrame(payload["items"])
        forget = splits[entry["knowledge"]]["forget"]
        requested = forget[: len(forget) * entry["step"] // entry["requests"]]
        key = {k: entry[k] for k in ("knowledge", "method", "schedule", "step")}
        checkpoint_rows = rows_for(items, key, splits, requested)
        if payload.get("open"):
            checkpoint_rows += open_rows(pd.DataFrame(payload["open"]), key, splits, requested,
                                         gold_frames.get(entry["knowledge"]), entry["method"] == "gold")
        rows += checkpoint_rows + utility_rows(checkpoint_rows, key)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(COLUMNS[:6], kind="stable").reset_index(drop=True)


REPORT_COLUMNS = [("forget", "mm"), ("forget", "text"), ("forget_test", "all"), ("retain", "all"),
                  ("retain_test", "all"), ("other", "all"), ("holdout", "all"), ("utility", "all")]
# Second table: (split, modality, metric, header)
FORGETTING_COLUMNS = [
    ("forget", "all", "forget_quality", "forget quality"),
    ("forget", "mm", "forget_quality", "FQ mm"),
    ("forget", "text", "forget_quality", "FQ text"),
    ("forget", "all", "truth_ratio", "forget TR"),
    ("forget", "mm", "rouge_l", "forget ROUGE-L mm"),
    ("forget", "text", "rouge_l", "forget ROUGE-L text"),
    ("retain", "all", "rouge_l", "retain ROUGE-L"),
    ("forget", "all", "mia_auc_loss", "MIA AUC loss"),
    ("forget", "all", "mia_auc_minkpp", "MIA AUC Min-K%++"),
    ("forget", "all", "privleak_minkpp", "PrivLeak Min-K%++ (%)"),
    ("all", "all", "model_utility", "model utility"),
]


def _table_rows(wide: pd.DataFrame, columns) -> list[list]:
    """The base model, the start (step 0), every method x schedule at its final step, then the
    gold model: [method, schedule, step, *values of ``columns``]."""
    methods = wide.index.get_level_values("method")

    def values(row):
        return [row.get(c) for c in columns]

    rows = []
    if "base" in methods:
        rows.append(["(base model)", "", ""] + values(wide.xs("base", level="method").iloc[0]))
    curves = wide[~methods.isin(REFERENCE_METHODS)]
    if len(curves):
        rows.append(["(start)", "", "0"] + values(curves.xs(0, level="step").iloc[0]))
    for (method, schedule), group in curves.groupby(level=["method", "schedule"], sort=False):
        rows.append([method, schedule, str(int(group.index[-1][2]))] + values(group.iloc[-1]))
    if "gold" in methods:
        rows.append(["gold", "", ""] + values(wide.xs("gold", level="method").iloc[0]))
    return rows


def final_tables(table: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame | None]]:
    """Per knowledge source: the MCQ table and the forgetting/utility table, one row per
    method x schedule at its final step (plus the start model and the reference models)."""
    tables = {}
    index = ["method", "schedule", "step"]
    for knowledge, part in table.groupby("knowledge", sort=False):
        mcq = part[part.metric == "mcq_acc"]
        wide = mcq.pivot_table(index=index, columns=["split", "modality"], values="value")
        header = [f"{s} {m}" if m != "all" else s for s, m in REPORT_COLUMNS]
        first = pd.DataFrame(_table_rows(wide, REPORT_COLUMNS), columns=index + header)
        second = None
        other = part[part.metric != "mcq_acc"]
        if len(other):
            wide = other.pivot_table(index=index, columns=["split", "modality", "metric"], values="value")
            second = pd.DataFrame(_table_rows(wide, [c[:3] for c in FORGETTING_COLUMNS]),
                                  columns=index + [c[3] for c in FORGETTING_COLUMNS])
        tables[knowledge] = (first, second)
    return tables


# Third table: the same forget set unlearned in one request vs in K (PULSE question 2).
# (split, metric, header, which of: values of both schedules, their difference)
GAP_COLUMNS = [("forget", "mcq_acc", "forget", "values"), ("retain", "mcq_acc", "retain", "both"),
               ("other", "mcq_acc", "other", "delta"), ("utility", "mcq_acc", "utility", "delta"),
               ("all", "model_utility", "model utility", "both")]
GAP_INTRO = ("The same forget set unlearned in one request (`oneshot`) and in K requests one after "
             "another: MCQ accuracy (and model utility) at the final step of each schedule; Δ = "
             "sequential − one-shot, so Δ < 0 means the sequential requests cost more of what should "
             "stay.")


def schedule_gaps(table: pd.DataFrame, one: str = "oneshot") -> dict[str, pd.DataFrame]:
    """Per knowledge source, per method and multi-request schedule: final values of ``GAP_COLUMNS``
    under ``one`` and under that schedule, and their difference."""
    tables = {}
    curves = table[~table.method.isin(REFERENCE_METHODS) & (table.modality == "all")]
    last = curves.groupby(["knowledge", "method", "schedule"]).step.transform("max")
    finals = curves[curves.step == last].set_index(["knowledge", "method", "schedule", "split", "metric"]).value
    for knowledge, part in curves.groupby("knowledge", sort=False):
        rows = []
        for method in dict.fromkeys(part.method):
            for schedule in dict.fromkeys(part[part.method == method].schedule):
                if schedule == one or (knowledge, method, one) not in finals.index.droplevel([3, 4]):
                    continue
                row = {"method": method, "schedule": schedule}
                for split, metric, header, shown in GAP_COLUMNS:
                    single = finals.get((knowledge, method, one, split, metric), float("nan"))
                    multi = finals.get((knowledge, method, schedule, split, metric), float("nan"))
                    if shown in ("values", "both"):
                        row.update({f"{header} 1-shot": single, f"{header} seq": multi})
                    if shown in ("delta", "both"):
                        row[f"Δ {header}"] = multi - single
                rows.append(row)
        if rows:
            tables[knowledge] = pd.DataFrame(rows)
    return tables


def _cell(value, digits=2) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return "–"
    if isinstance(value, int):
        return str(value)
    if abs(value) < 10 ** -digits and value != 0:
        return f"{value:.0e}"
    return f"{value:.{digits}f}"


def _format(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells as text: 2 decimals, forget quality (a p-value) with 3 or in scientific notation."""
    out = frame.astype(object).copy()
    for column in frame.columns:
        if column.startswith("Δ"):  # a difference: signed, fixed point
            out[column] = ["–" if pd.isna(v) else f"{v:+.2f}" for v in frame[column]]
            continue
        digits = 3 if column.startswith(("forget quality", "FQ")) else 2
        out[column] = [_cell(v, digits) for v in frame[column]]
    return out


INTRO = ("MCQ accuracy (option likelihood). `forget` = the forget set, `retain` = the rest of the "
         "same knowledge source, `other` = the other knowledge source, `holdout` = never-trained "
         "entities (chance level ≈ 0.25), `*_test` = paraphrased questions + transformed images. "
         "`gold` = the reference model trained without the forget set.")
FORGETTING_INTRO = ("Forget quality = KS p-value of truth ratios vs the gold model (1 = indistinguishable "
                    "from never having seen the forget set); MIA AUC = forget vs holdout (0.5 = no "
                    "membership signal); PrivLeak = relative AUC gap to the gold model (0 ideal); "
                    "model utility = harmonic mean of retain/other/utility MCQ accuracy and ROUGE-L.")


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    text = _format(frame)
    return (["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
            + ["| " + " | ".join(row) + " |" for row in text.itertuples(index=False)])


def markdown(table: pd.DataFrame, seeds: int = 1) -> str:
    """Per knowledge source: rows method x schedule at the final step, step 0 as reference."""
    spread = f"Mean over {seeds} seeds; std and 95% intervals in summary_stats.csv. " if seeds > 1 else ""
    lines = ["# PULSE summary", "", spread + INTRO, ""]
    gaps = schedule_gaps(table)
    for knowledge, (first, second) in final_tables(table).items():
        lines += [f"## Unlearning {knowledge} knowledge", ""] + _markdown_table(first) + [""]
        if second is not None:
            lines += [f"### Forgetting and utility ({knowledge})", "", FORGETTING_INTRO, ""]
            lines += _markdown_table(second) + [""]
        if knowledge in gaps:
            lines += [f"### One request vs sequential requests ({knowledge})", "", GAP_INTRO, ""]
            lines += _markdown_table(gaps[knowledge]) + [""]
    return "\n".join(lines)


def html(table: pd.DataFrame) -> str:
    """The same tables as one self-contained HTML page (for the Snakemake report)."""
    style = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}"
             "td:first-child,td:nth-child(2){text-align:left}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>PULSE summary</title><style>{style}</style>"
             "</head><body><h1>PULSE summary</h1>", f"<p>{INTRO}</p>"]
    gaps = schedule_gaps(table)
    for knowledge, (first, second) in final_tables(table).items():
        parts += [f"<h2>Unlearning {knowledge} knowledge</h2>", _format(first).to_html(index=False, escape=True)]
        if second is not None:
            parts += [f"<h3>Forgetting and utility ({knowledge})</h3>", f"<p>{FORGETTING_INTRO}</p>",
                      _format(second).to_html(index=False, escape=True)]
        if knowledge in gaps:
            parts += [f"<h3>One request vs sequential requests ({knowledge})</h3>", f"<p>{GAP_INTRO}</p>",
                      _format(gaps[knowledge]).to_html(index=False, escape=True)]
    return "\n".join(parts + ["</body></html>"]) + "\n"


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


def write(manifest: list[dict], splits_path, csv_path, provenance_path=None, gold: dict | None = None) -> pd.DataFrame:
    """One seed's long table (and, optionally, the provenance file of every checkpoint);
    ``gold``: knowledge -> evaluation file of its gold model."""
    table = summarize(manifest, splits_path, gold)
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
