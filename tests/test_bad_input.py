"""Bad input is refused with one clear message naming the file, row or key, and nothing
already written is overwritten."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pulse.cli import main
from pulse.data.records import DataError, load_examples

REPO = Path(__file__).resolve().parents[1]


def test_parquet_missing_a_column_names_file_and_column(data_dir, tmp_path):
    frame = pd.read_parquet(data_dir / "world_train.parquet").drop(columns=["Classification_Task"])
    bad = tmp_path / "world_train.parquet"
    frame.to_parquet(bad)
    with pytest.raises(DataError, match=r"world_train.parquet.*Classification_Task"):
        load_examples(bad)


def test_undecodable_image_names_file_and_row(data_dir, tmp_path):
    frame = pd.read_parquet(data_dir / "world_train.parquet")
    frame.at[1, "image"] = {"bytes": b"not a png", "path": "broken.png"}
    bad = tmp_path / "world_train.parquet"
    frame.to_parquet(bad)
    with pytest.raises(DataError, match=r"world_train.parquet row 1 \(ID world_001\).*cannot be decoded"):
        load_examples(bad)


def test_missing_data_file_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_examples(tmp_path / "nowhere" / "world_train.parquet")


def test_cli_reports_a_missing_checkpoint_in_one_line(tmp_path, capsys, data_dir):
    code = main(["evaluate", "--params", '{"backend": "tiny", "device": "cpu", "dtype": "float32", "batch_size": 8}',
                 "--data", str(data_dir), "--base", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "e.json")])
    error = capsys.readouterr().err
    assert code == 2 and "no-such-model" in error and "Traceback" not in error
    assert not (tmp_path / "e.json").exists()


def test_cli_refuses_a_bad_config_file(tmp_path, capsys):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["unlearn"]["knowledge"] = ["finetuned", "innate"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check-config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "unlearn.knowledge.1" in error and "innate" in error


def test_failed_stage_leaves_earlier_output_untouched(tmp_path, base_dir, data_dir):
    """An evaluation that fails midway does not replace the previous result file."""
    out = tmp_path / "eval.json"
    out.write_text('{"previous": true}')
    code = main(["evaluate", "--params", '{"backend": "tiny", "device": "cpu", "dtype": "float32", "batch_size": 8}',
                 "--data", str(tmp_path / "missing-data"), "--base", str(base_dir), "--out", str(out)])
    assert code == 2
    assert out.read_text() == '{"previous": true}'


def _snakemake_dry_run(directory: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args], cwd=directory,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def workflow(tmp_path) -> Path:
    shutil.copy(REPO / "Snakefile", tmp_path)
    for folder in ("workflow", "config", "src"):
        shutil.copytree(REPO / folder, tmp_path / folder, symlinks=True)
    return tmp_path


def test_workflow_refuses_bad_config_before_any_job(workflow):
    config = yaml.safe_load((workflow / "config" / "smoke.yaml").read_text())
    config["unlearn"]["schedules"]["sequential"] = 40
    (workflow / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    result = _snakemake_dry_run(workflow, "--configfile", "config/bad.yaml")
    assert result.returncode != 0
    assert "unlearn.schedules.sequential" in result.stdout + result.stderr
    assert not (workflow / "results").exists() or not any((workflow / "results").iterdir())


def test_workflow_refuses_unwritable_results(workflow):
    (workflow / "results").write_text("a file where the results directory should be")
    result = _snakemake_dry_run(workflow, "--configfile", "config/smoke.yaml")
    assert result.returncode != 0 and "not writable" in result.stdout + result.stderr


def _refused_data(workflow: Path, data: dict) -> str:
    """The smoke config with ``data`` replaced: snakemake must refuse it before writing any result."""
    config = yaml.safe_load((workflow / "config" / "smoke.yaml").read_text())
    config["data"] = data
    (workflow / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    result = _snakemake_dry_run(workflow, "--configfile", "config/bad.yaml")
    assert result.returncode != 0
    assert not (workflow / "results").exists() or not any((workflow / "results").iterdir())
    return result.stdout + result.stderr


def test_workflow_refuses_a_missing_data_directory_before_any_job(workflow):
    message = _refused_data(workflow, {"source": "prepared", "path": "data/not-there", "forget_size": 2})
    assert "data.path" in message and "data/not-there is not a directory" in message


def test_workflow_refuses_overlapping_forget_and_retain_before_any_job(workflow, data_dir):
    """A prepared dataset brings its own splits.json; an entity on both sides is refused."""
    dataset = workflow / "data" / "mine"
    shutil.copytree(data_dir, dataset)
    splits = yaml.safe_load((dataset / "splits.json").read_text())
    splits["finetuned"]["retain"].append(splits["finetuned"]["forget"][0])
    (dataset / "splits.json").write_text(json.dumps(splits))
    message = _refused_data(workflow, {"source": "prepared", "path": "data/mine", "forget_size": 4})
    assert "data.path" in message and "splits.json" in message and "in both forget and retain" in message
    assert splits["finetuned"]["forget"][0] in message


def test_data_stage_refuses_overlapping_splits_of_a_prepared_dataset(data_dir, tmp_path):
    from pulse.stages import data
    dataset = tmp_path / "mine"
    shutil.copytree(data_dir, dataset)
    splits = yaml.safe_load((dataset / "splits.json").read_text())
    splits["pretrained"]["forget"].append(splits["pretrained"]["retain"][0])
    (dataset / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(DataError, match=r"splits\.json: pretrained: entities .* in both forget and retain"):
        data.run({"source": "prepared", "path": str(dataset), "seed": 0, "forget_size": 4}, tmp_path / "out",
                 log=lambda _: None)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
