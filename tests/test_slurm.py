"""profiles/slurm against a real Slurm: a single-node cluster started on this machine.

scripts/slurm/start.sh installs the Debian packages when missing and starts munged, slurmctld and
slurmd (one node, this machine's CPUs and memory, one fake GPU); stop.sh cancels the jobs and
stops exactly the daemons start.sh recorded. The smoke configuration runs through
`snakemake --workflow-profile profiles/slurm` and gives the numbers of the local smoke run
(the session's `smoke` fixture); every job is a Slurm job that got the CPUs, memory and time its
stage asks for in the config. A training job of a cuda configuration is allocated the GPU (it
then fails: no CUDA here), and its retry asks for more. The test skips only when Slurm cannot be
set up (not root, packages not installable, a Slurm configuration that is not ours).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "slurm"
STATE = Path("/tmp/pulse-slurm-test")  # fixed, so a run killed midway is cleaned up by the next
LOCK = Path("/tmp/pulse-slurm-test.lock")  # one test cluster per machine at a time
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
# Seconds one snakemake run may take (a few minutes on an idle 2-core machine). Every external
# command runs under `timeout -k`: the Slurm plugin can ignore SIGTERM.
SNAKEMAKE_TIMEOUT = int(os.environ.get("PULSE_SLURM_TEST_TIMEOUT", "1800"))
# The config stage whose threads and resources each rule uses (workflow/rules/*.smk).
STAGE = {"data": "data", "splits": "data", "gold_data": "data",
         "base": "base", "gold_base": "base", "finetune": "finetune", "gold_finetune": "finetune",
         "unlearn": "unlearn", "evaluate": "evaluate", "evaluate_base": "evaluate",
         "summarize_seed": "summarize", "aggregate": "summarize", "plots": "summarize"}
MODEL_STAGES = {"base", "finetune", "unlearn", "evaluate"}
pytestmark = pytest.mark.slurm


def bounded(command: list[str], seconds: int, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["timeout", "-k", "30", str(seconds), *command], capture_output=True, text=True, **kwargs)


def environment(directory: Path) -> dict:
    """The submitting shell: this venv first on PATH (sbatch --export=ALL hands it to the jobs),
    the copy's own package sources, and no Slurm variables of an enclosing job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}{os.pathsep}/usr/sbin"
    env["PYTHONPATH"] = str(directory / "src")
    env["HF_HUB_OFFLINE"] = "1"
    return env


def workflow_copy(target: Path, config: dict | None = None) -> Path:
    """The workflow in ``target``; ``config`` (default: the smoke config) as config/run.yaml."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", target)
    for folder in ("workflow", "config", "profiles", "src"):
        shutil.copytree(REPO / folder, target / folder, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (target / "config" / "run.yaml").write_text(yaml.safe_dump(config or SMOKE))
    return target


def snakemake(directory: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--configfile", "config/run.yaml", *args]
    return bounded(command, SNAKEMAKE_TIMEOUT, cwd=directory, env=environment(directory))


def explain(result: subprocess.CompletedProcess, directory: Path) -> str:
    logs = sorted(directory.glob("results/**/logs/**/*.log")) + sorted(directory.glob(".snakemake/slurm_logs/**/*.log"))
    text = "\n".join(f"== {p}\n{p.read_text(errors='replace')[-2000:]}" for p in logs)
    daemon = STATE / "slurmctld.log"
    if daemon.exists():
        text += f"\n== {daemon}\n{daemon.read_text(errors='replace')[-3000:]}"
    return f"exit {result.returncode}\n{result.stderr[-6000:]}\n{text}"


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: jobs per rule of the DAG, without the target rule."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    counts.pop("all", None)
    return counts


def slurm_jobs(result: subprocess.CompletedProcess) -> dict[str, list[dict]]:
    """Every Slurm job a snakemake run submitted, as `scontrol show job` fields, by rule."""
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", result.stdout + result.stderr)
    jobs: dict[str, list[dict]] = {}
    for job_id in ids:
        shown = bounded(["scontrol", "show", "job", "--oneliner", "--details", job_id], 30)
        assert shown.returncode == 0, f"scontrol show job {job_id}: {shown.stderr}"
        fields = dict(re.findall(r"(\S+?)=(\S*)", shown.stdout))
        fields["raw"] = shown.stdout.strip()
        rule = fields["Comment"].removeprefix("rule_").split("_wildcards_")[0]  # set by the plugin
        jobs.setdefault(rule, []).append(fields)
    return jobs


def hours(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"  # scontrol's TimeLimit


# --- the cluster --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    with LOCK.open("w") as lock:
        deadline = time.monotonic() + 1200
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test cluster held {LOCK} for 20 minutes")
                time.sleep(5)
        started = time.monotonic()
        up = bounded(["bash", str(SCRIPTS / "start.sh"), str(STATE)], 1200)
        if up.returncode == 2:
            reason = up.stderr.strip().splitlines()[-1] if up.stderr.strip() else "start.sh exit 2"
            pytest.skip(f"Slurm cannot be set up on this machine: {reason}")
        assert up.returncode == 0, f"scripts/slurm/start.sh failed (exit {up.returncode}):\n{up.stdout}\n{up.stderr}"
        print(f"\nSlurm test cluster up in {time.monotonic() - started:.0f} s (packages included)", file=sys.stderr)
        try:
            yield STATE
        finally:
            down = bounded(["bash", str(SCRIPTS / "stop.sh"), str(STATE)], 120)
            assert down.returncode == 0, f"scripts/slurm/stop.sh failed:\n{down.stderr}"


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    directory = workflow_copy(tmp_path_factory.mktemp("slurm"))
    started = time.monotonic()
    result = snakemake(directory, "--workflow-profile", "profiles/slurm")
    assert result.returncode == 0, explain(result, directory)
    print(f"\nsmoke run through Slurm: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return directory, result, slurm_jobs(result)


# --- the smoke run through Slurm -----------------------------------------------------------------

def test_slurm_run_gives_the_numbers_of_the_local_run(slurm_run, smoke):
    directory, _, _ = slurm_run
    for name in ("summary.csv", "summary_stats.csv", "seed0/summary.csv"):
        local = pd.read_csv(smoke / "results" / "smoke" / name)
        slurm = pd.read_csv(directory / "results" / "smoke" / name)
        assert len(slurm) > 100, name
        pd.testing.assert_frame_equal(local, slurm, obj=name)
    assert (smoke / "results/smoke/summary.md").read_text() == (directory / "results/smoke/summary.md").read_text()


def test_every_job_was_a_completed_slurm_job(slurm_run):
    directory, result, jobs = slurm_run
    dag = job_stats(result.stdout + result.stderr)
    assert {"data", "base", "finetune", "unlearn", "evaluate", "aggregate"} <= set(dag), dag
    assert {rule: len(found) for rule, found in jobs.items()} == dag
    for found in jobs.values():
        for job in found:
            assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job["raw"]
            assert job["WorkDir"] == str(directory), job["raw"]


def test_jobs_get_the_cpus_memory_and_time_of_their_stage(slurm_run):
    _, _, jobs = slurm_run
    threads = {"base": 2, "finetune": 2, "unlearn": 1, "evaluate": 1}  # schema defaults; others 1
    for rule, found in jobs.items():
        assert rule in STAGE, f"rule {rule} is new: add its stage to STAGE (and check its resources)"
        for job in found:
            assert job["NumCPUs"] == str(threads.get(STAGE[rule], 1)), job["raw"]
            assert job["MinMemoryNode"] == "4000M", job["raw"]  # resources default mem_mb
            assert job["TimeLimit"] == hours(60), job["raw"]  # resources default runtime
            assert job["Partition"] == "main", job["raw"]  # the cluster's default partition
            assert job["JOB_GRES"] == "(null)" and "TresPerJob" not in job, job["raw"]  # device cpu: no GPU


def test_successful_jobs_leave_no_slurm_log_and_a_rerun_has_nothing_to_do(slurm_run):
    directory, _, _ = slurm_run
    assert not list((directory / ".snakemake" / "slurm_logs").glob("**/*.log"))
    again = snakemake(directory, "--workflow-profile", "profiles/slurm", "--dry-run")
    assert again.returncode == 0, explain(again, directory)
    assert "Nothing to be done" in again.stdout + again.stderr


# --- GPUs, retries and errors ------------------------------------------------------------------

def gpu_config() -> dict:
    config = yaml.safe_load(yaml.safe_dump(SMOKE))
    config["run"] = "smoke-gpu"
    config["model"]["device"] = "cuda"
    config["threads"] = {"base": 2}
    config["resources"] = {"base": {"mem_mb": 3000, "runtime": 40}, "data": {"mem_mb": 500, "runtime": 5}}
    return config


def test_training_job_of_a_cuda_config_is_allocated_a_gpu_and_retried_with_more(cluster, tmp_path):
    """model.device cuda: the base (training) job asks Slurm for one GPU and gets the fake one;
    the data job asks for none. There is no CUDA here, so training fails, and a retry asks for
    twice the memory and time (one retry here to save time; profiles/slurm has 2)."""
    directory = workflow_copy(tmp_path / "gpu", gpu_config())
    result = snakemake(directory, "--workflow-profile", "profiles/slurm", "--retries", "1",
                       "results/smoke-gpu/base/checkpoint.json")
    jobs = slurm_jobs(result)
    evidence = [job["raw"] for rule in ("data", "base") for job in jobs.get(rule, [])]
    (Path(os.environ.get("PULSE_SLURM_EVIDENCE", tmp_path)) / "gpu_jobs.txt").write_text(
        "\n".join(evidence) + "\n\n" + result.stderr)
    print("\nscontrol show job (data, then the attempts of base):\n" + "\n".join(evidence), file=sys.stderr)

    assert result.returncode != 0, "training on cuda cannot succeed without a GPU"
    (data,) = jobs["data"]
    assert data["JobState"] == "COMPLETED" and data["JOB_GRES"] == "(null)" and "TresPerJob" not in data, data["raw"]
    assert (data["NumCPUs"], data["MinMemoryNode"], data["TimeLimit"]) == ("1", "500M", hours(5)), data["raw"]
    attempts = sorted(jobs["base"], key=lambda job: int(job["JobId"]))
    assert len(attempts) == 2, evidence
    for attempt, job in enumerate(attempts, start=1):
        assert job["TresPerJob"] == "gres:gpu:1", job["raw"]
        assert job["JOB_GRES"] == "gpu:1", job["raw"]  # allocated, not only asked for
        assert job["JobState"] == "FAILED", job["raw"]
        assert job["NumCPUs"] == "2", job["raw"]
        assert job["MinMemoryNode"] == f"{3000 * attempt}M", job["raw"]
        assert job["TimeLimit"] == hours(40 * attempt), job["raw"]
    log = (directory / "results" / "smoke-gpu" / "logs" / "base.log").read_text()
    assert "CUDA" in log, log[-2000:]  # failed for the expected reason only


def test_unknown_partition_fails_with_slurms_message(cluster, tmp_path):
    config = yaml.safe_load(yaml.safe_dump(SMOKE))
    config["resources"] = {"data": {"slurm_partition": "nosuchpartition"}}
    directory = workflow_copy(tmp_path / "partition", config)
    result = snakemake(directory, "--workflow-profile", "profiles/slurm", "--retries", "0", "--until", "data")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SLURM sbatch failed" in output and "invalid partition specified: nosuchpartition" in output.lower(), output[-3000:]


# --- configuration checks (no cluster needed) -----------------------------------------------------

def dry_run(tmp_path, config: dict, *args: str) -> subprocess.CompletedProcess:
    directory = workflow_copy(tmp_path / "dry", config)
    return snakemake(directory, "--dry-run", "--cores", "2", *args)


def test_gpu_default_follows_the_model_device(tmp_path):
    config = gpu_config()
    config["resources"] = {}
    result = dry_run(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = re.findall(r"\nrule (\w+):.*?resources: ([^\n]*)", result.stdout + result.stderr, flags=re.S)
    gpus: dict[str, set] = {}
    for rule, resources in jobs:
        if rule != "all":
            gpus.setdefault(rule, set()).add(re.search(r"gpu=(\d+)", resources).group(1))
    assert set(gpus) <= set(STAGE) and {"data", "base", "evaluate", "aggregate"} <= set(gpus), gpus
    assert gpus == {rule: {"1" if STAGE[rule] in MODEL_STAGES else "0"} for rule in gpus}


@pytest.mark.parametrize("resources, message", [
    ({"base": {"gpu": 1}}, "resources.base' asks for a GPU but model.device is cpu"),
    ({"data": {"gpu": 1}}, "resources.data' asks for a GPU but the data stage never uses one"),
    ({"base": {"gres": "gpu:a100:1"}}, "resources.base' asks for a GPU but model.device is cpu"),
    ({"base": {"gres": "gpu:1 --exclusive"}}, "['resources']['base']['gres']"),
    ({"base": {"partition": "gpu"}}, "partition"),
])
def test_bad_resources_are_refused_before_any_job(tmp_path, resources, message):
    config = yaml.safe_load(yaml.safe_dump(SMOKE))
    config["resources"] = resources
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def test_gpu_and_gres_together_are_refused(tmp_path):
    config = gpu_config()
    config["resources"] = {"finetune": {"gpu": 1, "gres": "gpu:1"}}
    result = dry_run(tmp_path, config)
    assert result.returncode != 0
    assert "resources.finetune': asks for GPUs twice" in result.stdout + result.stderr


@pytest.mark.parametrize("setting, message", [
    ("slurm-status-comand: squeue", "unrecognized arguments: --slurm-status-comand"),
    ("slurm-status-command: squeu", "Invalid status command"),
])
def test_bad_profile_setting_is_refused(tmp_path, setting, message):
    directory = workflow_copy(tmp_path / "profile")
    profile = directory / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    assert "slurm-status-command: squeue" in text
    profile.write_text(text.replace("slurm-status-command: squeue", setting))
    result = snakemake(directory, "--workflow-profile", "profiles/slurm", "--dry-run")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
