# Target lists and input functions of the evaluation stages (gold models, evaluation, report);
# functions only, the rules are in gold.smk, evaluate.smk and report.smk.

GOLD = f"{RUN}/gold"
GOLD_KNOWLEDGE = [k for k in KNOWLEDGE if config["evaluate"]["gold"][k]]

if "pretrained" in GOLD_KNOWLEDGE and config["model"]["backend"] != "tiny":
    raise ValueError(
        "config key 'evaluate.gold.pretrained': the pre-trained-knowledge gold model re-trains the "
        f"base without the forget entities, which backend '{config['model']['backend']}' cannot do "
        "here; set evaluate.gold.pretrained: false (forget quality and PrivLeak are then not reported "
        "for pre-trained knowledge)"
    )


def gold_base_dir(knowledge):
    return f"{GOLD}/pretrained/base" if knowledge == "pretrained" else BASE


def gold_chain(knowledge):
    """Adapter directories of the gold model of ``knowledge`` on top of gold_base_dir(knowledge)."""
    if knowledge == "pretrained" and starts_from_base(knowledge):
        return []
    return [f"{GOLD}/{knowledge}/finetune"]


def gold_eval_files():
    return {k: f"{RUN}/eval/gold/{k}.json" for k in GOLD_KNOWLEDGE}


def gold_manifest():
    return [
        {"knowledge": k, "method": "gold", "schedule": "none", "step": 0, "requests": 1, "path": path}
        for k, path in gold_eval_files().items()
    ]


def gold_base_file(knowledge):
    """The file that stands for the base of ``knowledge``'s gold model (the ordinary base's record
    unless the base itself is re-trained)."""
    return f"{GOLD}/pretrained/base/model.safetensors" if knowledge == "pretrained" else BASE_FILE


def gold_finetune_base(wildcards):
    return gold_base_file(wildcards.knowledge)


# Only the settings that change the numbers (the gold switches do not re-run evaluations).
EVAL_SETTINGS = {**MODEL_RUNTIME, **{k: v for k, v in config["evaluate"].items() if k != "gold"}}


def evaluation_base(wildcards):
    if wildcards.checkpoint.startswith("gold/"):
        return gold_base_file(wildcards.checkpoint.removeprefix("gold/"))
    return BASE_FILE


def evaluation_chain(wildcards):
    if wildcards.checkpoint.startswith("gold/"):
        return adapter_files(gold_chain(wildcards.checkpoint.removeprefix("gold/")))
    return eval_chain(wildcards)


PLOTS = f"{RUN}/plots"
STEP_PLOTS = [f"{PLOTS}/steps_{k}.{ext}" for k in KNOWLEDGE for ext in ("png", "pdf")]
COMPARISON_PLOTS = [f"{PLOTS}/{name}.{ext}" for name in ("schedules", "modality") for ext in ("png", "pdf")]
PLOT_FILES = STEP_PLOTS + COMPARISON_PLOTS + [f"{PLOTS}/tables.html"]
