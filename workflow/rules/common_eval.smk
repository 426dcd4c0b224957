# Target lists and input functions of the evaluation stages (gold models, evaluation, report);
# functions only, the rules are in gold.smk, evaluate.smk and report.smk.

# Gold models: data and the re-trained base are shared; the fine-tune fans out over seeds like the
# real one, so each seed's checkpoints are compared with the gold model of the same seed.
GOLD = f"{RUN}/gold"
GOLD_KNOWLEDGE = [k for k in KNOWLEDGE if config["evaluate"]["gold"][k]]

if "pretrained" in GOLD_KNOWLEDGE and config["model"]["backend"] != "tiny":
    raise WorkflowError(
        "config key 'evaluate.gold.pretrained': the pre-trained-knowledge gold model re-trains the "
        f"base without the forget entities, which backend '{config['model']['backend']}' cannot do "
        "here; set evaluate.gold.pretrained: false (forget quality and PrivLeak are then not reported "
        "for pre-trained knowledge)"
    )


def gold_base_dir(knowledge):
    return f"{GOLD}/pretrained/base" if knowledge == "pretrained" else BASE


def gold_chain(seed, knowledge):
    """Adapter directories of the gold model of ``knowledge`` on top of gold_base_dir(knowledge)."""
    if starts_from_base(knowledge):
        return []
    return [f"{RUN}/seed{seed}/gold/{knowledge}/finetune"]


def gold_eval_files(seed):
    return {k: f"{RUN}/seed{seed}/eval/gold/{k}.json" for k in GOLD_KNOWLEDGE}


def gold_evals(wildcards):
    return sorted(gold_eval_files(wildcards.seed).values())


def gold_files_of(wildcards):
    return as_json(gold_eval_files(wildcards.seed))


def seed_manifest(wildcards):
    """The seed's checkpoints (common.smk) plus its gold models as reference rows."""
    gold = [
        {"knowledge": k, "method": "gold", "schedule": "none", "step": 0, "requests": 1, "path": path}
        for k, path in gold_eval_files(wildcards.seed).items()
    ]
    return as_json(manifest(wildcards.seed) + gold)


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
        return adapter_files(gold_chain(wildcards.seed, wildcards.checkpoint.removeprefix("gold/")))
    return eval_chain(wildcards)


PLOTS = f"{RUN}/plots"
STEP_PLOTS = [(k, f"{PLOTS}/steps_{k}.{ext}") for k in KNOWLEDGE for ext in ("png", "pdf")]
COMPARISON_PLOTS = [f"{PLOTS}/{name}.{ext}" for name in ("schedules", "modality") for ext in ("png", "pdf")]
PLOT_FILES = [f for _, f in STEP_PLOTS] + COMPARISON_PLOTS + [f"{PLOTS}/tables.html"]
