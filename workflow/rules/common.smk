# Configuration checks and target lists shared by every stage.
import json
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from pulse.config import ConfigError, check_data_paths, method_settings
from pulse.config import validate as check_config


# Keys, types and defaults (JSON schema), then what a schema cannot say (methods exist, K fits),
# then the local data the config names (directories exist, a dataset's own splits are disjoint).
validate(config, "../schemas/config.schema.yaml")
config.update(check_config(config))
check_data_paths(config["data"])

RUN = f"results/{config['run']}"


def check_writable(directory):
    """Refuse to start when results cannot be written (before any job runs)."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise WorkflowError(f"results directory '{directory}' is not writable: {error}")


check_writable("results")
DATA = f"{RUN}/data"
DATA_TABLES = [
    f"{DATA}/{population}_{split}.parquet"
    for population in ("world", "fictitious", "holdout", "utility")
    for split in ("train", "test")
]
DATA_FILES = DATA_TABLES + [f"{DATA}/splits.json"]
# Pre-trained forget/retain chosen by scoring the base model (data.select_known): the data stage
# writes candidates, the base stage the selection, the splits rule splits.json.
SELECT_KNOWN = bool(config["data"].get("select_known"))
BASE = f"{RUN}/base"
# Training randomness (fine-tune, unlearning) fans out over seeds; data and base are shared.
SEEDS = config["seeds"]
SEEDED = f"{RUN}/seed{{seed}}"
# Every model-loading job depends on the base's checkpoint.json (weights beside it for tiny).
BASE_FILE = f"{BASE}/checkpoint.json"
TINY = config["model"]["backend"] == "tiny"
KNOWLEDGE = config["unlearn"]["knowledge"]
METHODS = list(config["unlearn"]["methods"])
SCHEDULES = config["unlearn"]["schedules"]


wildcard_constraints:
    seed=r"[0-9]+",
    knowledge="|".join(KNOWLEDGE),
    method="|".join(re.escape(m) for m in METHODS),
    schedule="|".join(SCHEDULES),
    step=r"[1-9][0-9]*",


# How every model-loading job loads and prompts the model.
MODEL_RUNTIME = {key: config["model"][key] for key in ("backend", "device", "dtype")}


def as_json(payload):
    return json.dumps(payload, sort_keys=True)


def starts_from_base(knowledge):
    return knowledge == "pretrained" and config["unlearn"]["pretrained_start"] == "base"


def finetune_dir(seed):
    return f"{RUN}/seed{seed}/finetune"


def unlearn_dir(seed, knowledge, method, schedule, step):
    return f"{RUN}/seed{seed}/unlearn/{knowledge}/{method}/{schedule}/step{step}"


def adapter_chain(seed, knowledge, method, schedule, step):
    """Adapter directories whose merge gives the model at ``step`` (step 0 = the start)."""
    start = [] if starts_from_base(knowledge) else [finetune_dir(seed)]
    return start + [unlearn_dir(seed, knowledge, method, schedule, s) for s in range(1, int(step) + 1)]


def adapter_files(directories):
    return [f"{d}/adapter_model.safetensors" for d in directories]


def eval_file(seed, knowledge, method, schedule, step):
    if int(step) == 0:
        return f"{RUN}/eval/base.json" if starts_from_base(knowledge) else f"{RUN}/seed{seed}/eval/finetune.json"
    return f"{RUN}/seed{seed}/eval/{knowledge}/{method}/{schedule}/step{step}.json"


def checkpoint_coordinates():
    """Every (knowledge, method, schedule, step) of the run, step 0 included."""
    return [
        (k, m, s, step)
        for k in KNOWLEDGE
        for m in METHODS
        for s, requests in SCHEDULES.items()
        for step in range(0, requests + 1)
    ]


def input_dir(name):
    """Params function: the directory of the named input (its first file if a list)."""

    def directory(wildcards, input):
        files = input[name]
        return os.path.dirname(files if isinstance(files, str) else files[0])

    return directory


def output_dir(wildcards, output):
    return os.path.dirname(output[0])


def chain_dirs(wildcards, input):
    return [os.path.dirname(f) for f in input.chain]


def previous_chain(wildcards):
    """Adapter files of the model that unlearning request ``step`` starts from."""
    step = int(wildcards.step) - 1
    return adapter_files(
        adapter_chain(wildcards.seed, wildcards.knowledge, wildcards.method, wildcards.schedule, step)
    )


def unlearn_settings(wildcards):
    return as_json(
        {
            **method_settings(config, wildcards.method),
            **MODEL_RUNTIME,
            "seed": int(wildcards.seed),
            "knowledge": wildcards.knowledge,
            "schedule": wildcards.schedule,
            "request": int(wildcards.step),
            "requests": SCHEDULES[wildcards.schedule],
        }
    )


def eval_chain(wildcards):
    """Adapter files of a seeded checkpoint: finetune or {knowledge}/{method}/{schedule}/step{k}."""
    if wildcards.checkpoint == "finetune":
        return adapter_files([finetune_dir(wildcards.seed)])
    knowledge, method, schedule, step = wildcards.checkpoint.split("/")
    return adapter_files(adapter_chain(wildcards.seed, knowledge, method, schedule, int(step.removeprefix("step"))))


def manifest(seed):
    """Every checkpoint evaluated for one seed, with its coordinates; the base is a reference row."""
    base = [
        {"knowledge": k, "method": "base", "schedule": "none", "step": 0, "requests": 1, "path": f"{RUN}/eval/base.json"}
        for k in KNOWLEDGE
    ]
    return base + [
        {
            "knowledge": k,
            "method": m,
            "schedule": s,
            "step": step,
            "requests": SCHEDULES[s],
            "path": eval_file(seed, k, m, s, step),
        }
        for k, m, s, step in checkpoint_coordinates()
    ]


def manifest_of(wildcards):
    return as_json(manifest(wildcards.seed))


def seed_evals(wildcards):
    return sorted({entry["path"] for entry in manifest(wildcards.seed)})


def threads_of(stage):
    return config["threads"][stage]


# Stages that run the model (and so use model.device); data and summarize never need a GPU.
# (gold_* and splits use the resources of the stage they repeat; aggregate and plots summarize's.)
MODEL_STAGES = ("base", "finetune", "unlearn", "evaluate")


def _scaled(amount):
    """A resource that grows with the attempt: a job retried after running out of memory or
    time (profiles/slurm sets retries) asks for twice as much, then three times."""
    return lambda wildcards, attempt: amount * attempt


def resources_of(stage):
    """Job resources of a stage (config resources.<stage>) as Snakemake executors read them.

    GPUs: the config's gpu, or 1 for model stages when model.device is cuda or multi (multi: set
    gpu to the GPUs to split over); Slurm gets --gpus. A GPU request that the stage cannot use is
    refused here, before any job runs."""
    wanted = dict(config["resources"][stage])
    key = f"resources.{stage}"
    device = config["model"]["device"]
    gres_gpu = wanted.get("gres", "").split(":")[0] == "gpu"
    if wanted.get("gpu") and gres_gpu:
        raise ConfigError(f"config: key '{key}': asks for GPUs twice (gpu and gres {wanted['gres']!r}); "
                          "use one of them")
    if "gpu" not in wanted and not gres_gpu:
        wanted["gpu"] = 1 if stage in MODEL_STAGES and device in ("cuda", "multi") else 0
    if wanted.get("gpu") or gres_gpu:
        if stage not in MODEL_STAGES:
            raise ConfigError(f"config: key '{key}' asks for a GPU but the {stage} stage never uses one")
        if device == "cpu":
            raise ConfigError(f"config: key '{key}' asks for a GPU but model.device is cpu; "
                              "set model.device to cuda (or auto), or drop the GPU request")
    if wanted.get("gpu_model") and not wanted.get("gpu"):
        raise ConfigError(f"config: key '{key}.gpu_model' is set but the stage asks for no GPU (gpu: 0)")
    wanted["mem_mb"] = _scaled(wanted["mem_mb"])
    wanted["runtime"] = _scaled(wanted["runtime"])
    return wanted


def base_settings():
    """Settings of the base job: the model (and, for tiny, its pre-training); the selection."""
    settings = {
        "seed": config["seed"],
        "model": config["model"],
        "select": config["data"].get("select_known"),
    }
    if SELECT_KNOWN:
        settings["batch_size"] = config["evaluate"]["batch_size"]
    if TINY:
        settings["train"] = config["pretrain"]
    return settings
