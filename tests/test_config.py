"""Bad configurations are refused before any job runs, with a message naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from pulse.config import ConfigError, validate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def refused(config) -> str:
    with pytest.raises(ConfigError) as error:
        validate(config)
    return str(error.value)


def test_shipped_configs_are_valid():
    from snakemake.utils import update_config
    for path in sorted((REPO / "config").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        if "model" not in config:  # an overlay: merged onto the default as `--configfile A B` does
            overlay, config = config, yaml.safe_load((REPO / "config" / "config.yaml").read_text())
            update_config(config, overlay)
        resolved = validate(config, str(path))
        assert resolved["unlearn"]["methods"]


def test_all_methods_overlay_adds_every_method_to_the_default():
    from snakemake.utils import update_config

    from pulse.methods import METHODS
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "all-methods.yaml").read_text()))
    assert set(config["unlearn"]["methods"]) == set(METHODS)
    assert config["run"] == "all-methods" and config["data"]["entities"]["world"] == 30


def test_defaults_are_filled(config):
    resolved = validate(config)
    assert resolved["threads"]["unlearn"] == 1
    assert resolved["model"]["tiny"]["hidden"] == 256
    assert "lora" in resolved["unlearn"] and resolved["unlearn"]["lora"]["rank"] == 16


def test_unknown_key_is_refused(config):
    config["unlearn"]["epochz"] = 3
    assert "epochz" in refused(config)


def test_wrong_type_is_refused(config):
    config["pretrain"]["steps"] = "many"
    message = refused(config)
    assert "pretrain.steps" in message and "integer" in message


def test_unknown_method_is_refused(config):
    config["unlearn"]["methods"]["Forgetron"] = {"lr": 1e-4}
    message = refused(config)
    assert "unlearn.methods.Forgetron" in message and "unknown method" in message


def test_unknown_method_hyperparameter_is_refused(config):
    config["unlearn"]["methods"]["NPO"]["betta"] = 0.2
    assert "betta" in refused(config)


def test_k_larger_than_forget_set_is_refused(config):
    config["unlearn"]["schedules"]["sequential"] = 50
    message = refused(config)
    assert "unlearn.schedules.sequential" in message and "forget" in message


def test_k_that_does_not_divide_forget_set_is_refused(config):
    config["unlearn"]["schedules"]["sequential"] = 3
    assert "equal chunks" in refused(config)


def test_forget_set_must_leave_a_retain_set(config):
    config["data"]["forget_size"] = config["data"]["entities"]["world"]
    assert "data.forget_size" in refused(config)


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_run_name_cannot_escape_results(config, name):
    config["run"] = name
    assert "run" in refused(config)


def test_validation_does_not_modify_its_input(config):
    before = copy.deepcopy(config)
    validate(config)
    assert config == before


def test_unknown_model_backend_is_refused(config):
    config["model"]["backend"] = "gpt5-vision"
    message = refused(config)
    assert "model.backend" in message and "gpt5-vision" in message


def test_unknown_knowledge_source_is_refused(config):
    config["unlearn"]["knowledge"] = ["finetuned", "dreamt"]
    message = refused(config)
    assert "unlearn.knowledge" in message and "dreamt" in message
