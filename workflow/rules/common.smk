# Configuration checks and target lists shared by every stage.
import json
import re

from snakemake.utils import validate

from pulse.config import ConfigError, method_settings
from pulse.config import validate as check_config


# Keys, types and defaults (JSON schema), then what a schema cannot say (methods exist, K fits).
validate(config, "../schemas/config.schema.yaml")
config.update(check_config(config))

RUN = f"results/{config['run']}"
DATA = f"{RUN}/data"
DATA_FILES = [
    f"{DATA}/{population}_{split}.parquet"
    for population in ("world", "fictitious", "holdout", "utility")
    for split in ("train", "test")
] + [f"{DATA}/splits.json"]
BASE = f"{RUN}/base"
FINETUNE = f"{RUN}/finetune"
KNOWLEDGE = config["unlearn"]["knowledge"]
METHODS = list(config["unlearn"]["methods"])
SCHEDULES = config["unlearn"]["schedules"]


wildcard_constraints:
    knowledge="|".join(KNOWLEDGE),
    method="|".join(re.escape(m) for m in METHODS),
    schedule="|".join(SCHEDULES),
    step=r"[1-9][0-9]*",


MODEL_RUNTIME = {"device": config["model"]["device"], "dtype": config["model"]["dtype"]}


def as_json(payload):
    return json.dumps(payload, sort_keys=True)


def starts_from_base(knowledge):
    return knowledge == "pretrained" and config["unlearn"]["pretrained_start"] == "base"


def unlearn_dir(knowledge, method, schedule, step):
    return f"{RUN}/unlearn/{knowledge}/{method}/{schedule}/step{step}"


def adapter_chain(knowledge, method, schedule, step):
    """Adapter directories whose merge gives the model at ``step`` (step 0 = the start)."""
    start = [] if starts_from_base(knowledge) else [FINETUNE]
    return start + [unlearn_dir(knowledge, method, schedule, s) for s in range(1, int(step) + 1)]


def adapter_files(directories):
    return [f"{d}/adapter_model.safetensors" for d in directories]


def eval_file(knowledge, method, schedule, step):
    if int(step) == 0:
        return f"{RUN}/eval/base.json" if starts_from_base(knowledge) else f"{RUN}/eval/finetune.json"
    return f"{RUN}/eval/{knowledge}/{method}/{schedule}/step{step}.json"


def checkpoint_coordinates():
    """Every (knowledge, method, schedule, step) of the run, step 0 included."""
    return [
        (k, m, s, step)
        for k in KNOWLEDGE
        for m in METHODS
        for s, requests in SCHEDULES.items()
        for step in range(0, requests + 1)
    ]


def threads_of(stage):
    return config["threads"][stage]


# Stages that run the model (and so use model.device); data and summarize never need a GPU.
MODEL_STAGES = ("base", "finetune", "unlearn", "evaluate")


def _scaled(amount):
    """A resource that grows with the attempt: a job retried after running out of memory or
    time (profiles/slurm sets retries) asks for twice as much, then three times."""
    return lambda wildcards, attempt: amount * attempt


def resources_of(stage):
    """Job resources of a stage (config resources.<stage>) as Snakemake executors read them.

    GPUs: the config's gpu, or 1 for model stages when model.device is cuda; Slurm gets
    --gpus. A GPU request that the stage cannot use is refused here, before any job runs."""
    wanted = dict(config["resources"][stage])
    key = f"resources.{stage}"
    device = config["model"]["device"]
    gres_gpu = wanted.get("gres", "").split(":")[0] == "gpu"
    if wanted.get("gpu") and gres_gpu:
        raise ConfigError(f"config: key '{key}': asks for GPUs twice (gpu and gres {wanted['gres']!r}); "
                          "use one of them")
    if "gpu" not in wanted and not gres_gpu:
        wanted["gpu"] = 1 if stage in MODEL_STAGES and device == "cuda" else 0
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
