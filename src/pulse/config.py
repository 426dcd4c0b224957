"""Load and check a run configuration before any job starts.

The JSON schema (``schemas/config.schema.yaml``, linked from ``workflow/schemas/``) checks keys,
types and ranges and fills defaults; ``check_semantics`` checks what a schema cannot (methods
exist, K fits the forget set). Every error names the key and what was expected.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def _with_defaults(validator_class):
    """A validator that also fills ``default`` values of (nested) properties, the usual recipe."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


DefaultingValidator = _with_defaults(Draft202012Validator)


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate(config: dict, source: str = "config") -> dict:
    """A checked copy of ``config`` with defaults filled in; raises ConfigError naming the key."""
    resolved = copy.deepcopy(config)
    errors = sorted(DefaultingValidator(load_schema()).iter_errors(resolved), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{source}: key '{_path(e)}': {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    check_semantics(resolved, source)
    return resolved


def check_semantics(config: dict, source: str = "config") -> None:
    from pulse.methods import METHODS, build

    from pulse.data.plan import PlanError, forget_plan
    try:
        plan = forget_plan(config["data"])
    except PlanError as error:
        raise ConfigError(f"{source}: {error}") from None
    if config["model"]["backend"] == "tiny" and "pretrain" not in config:
        raise ConfigError(f"{source}: key 'pretrain' is required by model.backend tiny (the base is pre-trained here)")
    if config["model"]["backend"] != "tiny" and "checkpoint" not in config["model"]:
        raise ConfigError(f"{source}: key 'model.checkpoint' is required by model.backend "
                          f"{config['model']['backend']} (a local directory or a model-hub id)")
    population = {"finetuned": "fictitious", "pretrained": "world"}
    for knowledge in config["unlearn"]["knowledge"]:
        entities, forget = plan[knowledge]
        key = ("data.select_known.forget" if knowledge == "pretrained" and config["data"].get("select_known")
               else "data.forget_size")
        if config["data"]["source"] == "mllmu" and knowledge == "finetuned":
            key = f"data.forget_ratio (forget_{config['data']['forget_ratio']})"
        if forget is None:
            continue  # only the data files can tell; the data stage checks them
        if entities is not None and forget >= entities:
            raise ConfigError(f"{source}: key '{key}' is {forget} but the {population[knowledge]} "
                              f"population ({knowledge} knowledge) has only {entities} entities; "
                              "expected fewer, so that a retain set remains")
        for name, chunks in config["unlearn"]["schedules"].items():
            if chunks > forget:
                raise ConfigError(f"{source}: key 'unlearn.schedules.{name}' asks for K={chunks} sequential "
                                  f"requests but the {knowledge} forget set has only {forget} entities ({key})")
            if forget % chunks:
                raise ConfigError(f"{source}: key 'unlearn.schedules.{name}': the {knowledge} forget set of "
                                  f"{forget} entities ({key}) does not split into K={chunks} equal chunks")
    for name, hyper in config["unlearn"]["methods"].items():
        if name not in METHODS:
            raise ConfigError(f"{source}: key 'unlearn.methods.{name}': unknown method; "
                              f"expected one of {sorted(METHODS)}")
        own = {k: v for k, v in hyper.items() if k not in ("lr", "epochs")}
        try:
            build(name, own)
        except KeyError as error:
            raise ConfigError(f"{source}: key 'unlearn.methods.{name}': {error.args[0]}") from None


def check_data_paths(data: dict, source: str = "config") -> None:
    """Local dataset directories exist, and a prepared dataset's own splits do not overlap.

    Separate from ``validate`` (which never touches the file system, so a config can be checked
    anywhere); the workflow and ``pulse check-config`` call both before any job starts."""
    if data["source"] == "synthetic":
        return
    if "path" not in data:
        raise ConfigError(f"{source}: key 'data.path' is required by data.source {data['source']} "
                          "(a local directory of the dataset)")
    root = Path(data["path"]).expanduser()
    downloadable = data["source"] == "mllmu" and data.get("download")
    if not root.is_dir() and not downloadable:
        raise ConfigError(f"{source}: key 'data.path': {root} is not a directory; expected a local copy of the "
                          f"dataset" + (" (or data.download: true)" if data["source"] == "mllmu" else ""))
    general = (data.get("general") or {}).get("path")
    if general and not Path(general).expanduser().exists():
        raise ConfigError(f"{source}: key 'data.general.path': {general} does not exist")
    splits_file = root / "splits.json"
    if data["source"] == "prepared" and splits_file.is_file():
        from pulse.data.prepared import check_splits
        from pulse.data.records import DataError
        from pulse.io import read_json
        try:
            check_splits(read_json(splits_file), splits_file)
        except DataError as error:
            raise ConfigError(f"{source}: key 'data.path': {error}") from None


def load(path: str | Path, overrides: dict | None = None) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    config.update(overrides or {})
    return validate(config, str(path))


def method_settings(config: dict, method: str) -> dict:
    """lr/epochs and the method's own hyper-parameters, with the unlearn-wide defaults applied."""
    hyper = dict(config["unlearn"]["methods"][method])
    return {"lr": hyper.pop("lr"), "epochs": hyper.pop("epochs", config["unlearn"]["epochs"]),
            "batch_size": config["unlearn"]["batch_size"], "lora": config["unlearn"]["lora"],
            "method": method, "hyperparameters": hyper}
