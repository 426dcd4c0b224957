"""What a data configuration implies before anything runs: for each knowledge source, how many
entities it has and how many are forgotten (so K sequential requests can be checked against it)."""

from __future__ import annotations

from pathlib import Path


class PlanError(ValueError):
    """A data setting that cannot work; the message names the key."""


def forget_plan(data: dict) -> dict[str, tuple[int | None, int | None]]:
    """knowledge -> (entities available, entities to forget); None where only the files can tell."""
    source = data["source"]
    for key in ("path", "general"):
        if source == "synthetic" and key in data:
            raise PlanError(f"key 'data.{key}' is not used by data.source synthetic")
    if source != "synthetic" and "path" not in data:
        raise PlanError(f"key 'data.path' is required by data.source {source}")
    if source != "mllmu":
        for key, default in (("download", False), ("holdout", 0), ("finetune_qa", "ft_Data"), ("forget_ratio", 10)):
            if data.get(key, default) != default:
                raise PlanError(f"key 'data.{key}' applies to data.source mllmu only")
    select = data.get("select_known")
    if source == "synthetic":
        entities = data["entities"]
        fictitious, world = entities["fictitious"], entities["world"]
        plan = {"finetuned": (fictitious, data["forget_size"]), "pretrained": (world, data["forget_size"])}
    elif source == "mllmu":
        from pulse.data.mllmu import count_rows
        root = Path(data["path"]).expanduser()
        ratio = data["forget_ratio"]
        forget = count_rows(root, f"forget_{ratio}") if root.is_dir() else None
        retain = count_rows(root, f"retain_{100 - ratio}") if root.is_dir() else None
        celebrities = count_rows(root, "Retain_Set") if root.is_dir() else None
        pool = None if forget is None or retain is None else forget + retain - data["holdout"]
        plan = {"finetuned": (pool, forget), "pretrained": (celebrities, data["forget_size"])}
    else:
        plan = {"finetuned": (None, data["forget_size"]), "pretrained": (None, data["forget_size"])}
    if select:
        if select["forget"] >= select["top"]:
            raise PlanError(f"key 'data.select_known.forget' is {select['forget']} but must be smaller than "
                            f"data.select_known.top ({select['top']}), so that a retain set remains")
        available = plan["pretrained"][0]
        if available is not None and select["top"] > available:
            raise PlanError(f"key 'data.select_known.top' is {select['top']} but the world population has "
                            f"only {available} entities")
        plan["pretrained"] = (select["top"], select["forget"])
    return plan
