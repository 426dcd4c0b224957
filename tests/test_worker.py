"""The warm worker of `pulse workflow`: a stage run through it behaves exactly like the same
command run in a fresh process (output, exit code, messages, working directory), a cancelled
job's stage is killed, and anything unusual falls back to running in the calling process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pulse.launch import runs_locally
from pulse.worker import ENV, start

PULSE = str(Path(sys.executable).parent / "pulse")
PARAMS = {"backend": "tiny", "device": "cpu", "dtype": "float32", "batch_size": 8, "open_questions": 1}

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker forks (Linux)")


@pytest.fixture(scope="module")
def worker_env():
    env = dict(os.environ)
    process = start(env)
    assert process is not None and env[ENV]
    yield env
    process.terminate()
    process.wait(timeout=30)
    assert not Path(env[ENV]).exists(), "the worker left its socket behind"


def evaluate(env, cwd, base, data, out, *extra):
    command = [PULSE, "evaluate", "--params", json.dumps(PARAMS), "--data", str(data), "--base", str(base),
               "--out", str(out), "--threads", "1", *extra]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def worker_pid(socket_path: str) -> int:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and socket_path.encode() in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:  # a process that ended while we looked
            continue
    raise AssertionError(f"no worker process serves {socket_path}")


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        return b"zombie" not in Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return False


def test_a_stage_run_by_the_worker_equals_a_fresh_process(worker_env, base_dir, data_dir, tmp_path):
    # relative paths: the worker's child must work in the caller's directory
    (tmp_path / "warm").mkdir()
    (tmp_path / "cold").mkdir()
    warm = evaluate(worker_env, tmp_path / "warm", base_dir, data_dir, "eval.json")
    cold = evaluate({k: v for k, v in worker_env.items() if k != ENV}, tmp_path / "cold", base_dir, data_dir,
                    "eval.json")
    assert warm.returncode == cold.returncode == 0, warm.stderr[-3000:] + cold.stderr[-3000:]
    assert "scored" in warm.stdout  # the stage's log reaches the caller's stdout
    results = [json.loads((tmp_path / d / "eval.json").read_text()) for d in ("warm", "cold")]
    assert results[0] == results[1]
    provenance = [json.loads((tmp_path / d / "eval.json.provenance.json").read_text()) for d in ("warm", "cold")]
    assert [p["resources"]["warm_worker"] for p in provenance] == [True, False]
    assert all(p["resources"]["cpu_seconds"] > 0 and p["resources"]["max_rss_mb"] > 0 for p in provenance)


def test_bad_input_gives_the_same_exit_code_and_message(worker_env, data_dir, tmp_path):
    result = evaluate(worker_env, tmp_path, tmp_path / "no-such-model", data_dir, "e.json")
    assert result.returncode == 2
    assert "no-such-model" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "e.json").exists()


def test_cancelling_the_job_kills_its_stage(worker_env, data_dir, tmp_path):
    tiny = {"heads": 2, "hidden": 32, "image_size": 32, "layers": 1, "max_positions": 128, "patch_size": 8,
            "vision_heads": 2, "vision_hidden": 32, "vision_layers": 1}
    params = {"model": {"allow_download": False, "backend": "tiny", "device": "cpu", "dtype": "float32",
                        "gradient_checkpointing": False, "hash_weights": True, "lora_modules": ["q_proj"],
                        "revision": None, "tiny": tiny, "train_projector": False, "train_vision": False,
                        "trust_remote_code": False},
              "seed": 0, "select": None,
              "train": {"batch_size": 8, "lr": 1e-3, "steps": 100000, "warmup": 1, "weight_decay": 0.0}}
    worker = worker_pid(worker_env[ENV])
    before = set(children_of(worker))
    client = subprocess.Popen([PULSE, "base", "--params", json.dumps(params), "--data", str(data_dir),
                               "--out", str(tmp_path / "base"), "--threads", "1"], env=worker_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not set(children_of(worker)) - before:
        assert client.poll() is None, client.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (stage,) = set(children_of(worker)) - before
    time.sleep(1)
    client.send_signal(signal.SIGTERM)
    client.wait(timeout=60)
    assert client.returncode != 0
    deadline = time.monotonic() + 30
    while stage in children_of(worker) or alive(stage):
        assert time.monotonic() < deadline, "the cancelled job's stage kept running"
        time.sleep(0.1)
    assert not (tmp_path / "base" / "model.safetensors").exists()


def test_without_a_reachable_worker_the_stage_runs_in_the_caller(base_dir, data_dir, tmp_path):
    env = {**os.environ, ENV: str(tmp_path / "no-such-socket")}
    result = evaluate(env, tmp_path, base_dir, data_dir, "eval.json")
    assert result.returncode == 0, result.stderr[-3000:]
    provenance = json.loads((tmp_path / "eval.json.provenance.json").read_text())
    assert provenance["resources"]["warm_worker"] is False


@pytest.mark.parametrize("args, local", [
    (["--cores", "2", "--workflow-profile", "profiles/local"], True),
    (["--cores", "2"], True),
    (["--workflow-profile", "profiles/slurm"], False),
    (["--workflow-profile=profiles/slurm"], False),
    (["--executor", "slurm", "--jobs", "4"], False),
    (["--executor", "local"], True),
    (["--cores", "2", "-n"], False),
    (["--report", "report.html"], False),
])
def test_only_local_runs_get_a_worker(args, local, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert runs_locally(args) is local
