"""The image for real: docker/Dockerfile built with podman (docker/ci.sh, on a stand-in of the
pinned base) and config/smoke.yaml run inside it on the CPU with no network, giving the same
numbers as the same run outside the container (the `smoke` fixture of conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import image_lock  # noqa: E402

pytestmark = pytest.mark.container
TAG = "localhost/pulse:ci"
TIMINGS: dict[str, float] = {}


class Podman:
    """docker/ci.sh with its own storage and configuration in one temporary directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.env = {**os.environ, "PULSE_CI_DIR": str(directory)}

    def ci(self, *args: str, timeout: int = 1800) -> str:
        result = subprocess.run([str(REPO / "docker" / "ci.sh"), *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"docker/ci.sh {' '.join(args[:3])} failed ({result.returncode}):\n"
                                 f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
        return result.stdout

    def podman(self, *args: str, timeout: int = 1800) -> str:
        return self.ci("podman", *args, timeout=timeout)

    def python(self, code: str) -> str:
        return self.podman("run", "--rm", "--network=none", "--entrypoint", "python", TAG, "-c", code).strip()


def timed(name: str, function, *args, **kwargs):
    start = time.monotonic()
    try:
        return function(*args, **kwargs)
    finally:
        TIMINGS[name] = time.monotonic() - start


@pytest.fixture(scope="module")
def podman(request):
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("builds with rootful podman: run as root (CI does)")
    # Not under pytest's basetemp: several GB that the test removes itself, whatever happens.
    runner = Podman(Path(tempfile.mkdtemp(prefix="pulse-podman-")))
    start = time.monotonic()
    try:
        timed("prepare", runner.ci, "prepare")
        yield runner
    finally:
        try:
            runner.ci("clean", timeout=600)
        finally:
            shutil.rmtree(runner.directory, ignore_errors=True)
        TIMINGS["container tests in all"] = time.monotonic() - start
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line("container test timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def image(podman) -> str:
    base = timed("stand-in base", podman.ci, "base").strip()
    assert base
    timed("build", podman.ci, "build", TAG, timeout=2400)
    return TAG


@pytest.fixture(scope="module")
def inside(podman, image) -> Path:
    """config/smoke.yaml run by the image's entrypoint, results in a mounted directory."""
    results = podman.directory / "results"
    results.mkdir()
    uid = podman.podman("run", "--rm", "--network=none", "--entrypoint", "id", image, "-u").strip()
    os.chown(results, int(uid), int(uid))
    timed("smoke run inside", podman.podman, "run", "--rm", "--network=none",
          "-v", f"{results}:/opt/pulse/results", image, "--cores", "2", "--configfile", "config/smoke.yaml",
          timeout=2400)
    return results


def test_image_runs_as_a_non_root_user(podman, image):
    assert podman.podman("run", "--rm", "--network=none", "--entrypoint", "id", image, "-u").strip() != "0"
    config = podman.podman("image", "inspect", "--format",
                           "{{.Config.User}}|{{json .Config.Entrypoint}}|{{.Config.WorkingDir}}|{{json .Config.Env}}", image)
    user, entrypoint, workdir, env = config.strip().split("|", 3)
    assert user and not user.startswith("0") and user != "root"
    assert entrypoint.startswith('["pulse","workflow"') and workdir == "/opt/pulse"
    assert "NVIDIA_VISIBLE_DEVICES=all" in env and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env


def test_image_has_exactly_the_locked_packages(podman, image):
    locked = image_lock.parse_lock(image_lock.LOCK.read_text())
    frozen = podman.podman("run", "--rm", "--network=none", "--entrypoint", "pip", image,
                           "list", "--format=freeze", "--exclude", "pulse-unlearning")
    installed = {}
    for line in frozen.split():
        name, _, version = line.partition("==")
        installed[name.replace("_", "-").replace(".", "-").lower()] = version
    assert installed == {name: entry["version"] for name, entry in locked.items()}


def test_image_python_and_torch_are_the_locked_cuda_build(podman, image):
    report = podman.python(
        "import sys, torch; print(sys.version_info[0], sys.version_info[1], torch.__version__, torch.version.cuda,"
        " torch._C._cuda_getArchFlags())")
    major, minor, torch_version, cuda, *arches = report.split()
    assert f"{major}.{minor}" == image_lock.PYTHON_VERSION
    locked = image_lock.parse_lock(image_lock.LOCK.read_text())["torch"]["version"]
    assert torch_version == f"{locked}+cu130" and cuda == "13.0"
    assert "sm_75" in arches and "sm_120" in arches and "sm_70" not in arches


def test_smoke_numbers_inside_the_image_equal_the_numbers_outside(inside, smoke):
    """Same torch release (2.13.0: CUDA build inside, CPU build outside, both on the CPU here),
    same numpy/pandas/transformers: every checkpoint is bit-identical (checked by hand: base and
    LoRA safetensors hash-equal). The one difference is in the last bits of float64 metrics that
    go through the C library's exp/log (truth_ratio: glibc 2.36 outside on Debian 12, 2.39 in
    Ubuntu 24.04), about 1e-15 relative; hence rtol 1e-12, far below any reported digit."""
    import torch
    outside_run, inside_run = smoke / "results" / "smoke", inside / "smoke"
    assert torch.__version__.split("+")[0] == image_lock.parse_lock(image_lock.LOCK.read_text())["torch"]["version"]
    for table in ("summary.csv", "summary_stats.csv"):
        outside = pd.read_csv(outside_run / table)
        inner = pd.read_csv(inside_run / table)
        assert len(inner) == len(outside) > 100, table
        pd.testing.assert_frame_equal(inner, outside, check_exact=False, rtol=1e-12, atol=0, obj=table)
    assert (inside_run / "summary.md").read_text() == (outside_run / "summary.md").read_text()


def test_runs_inside_the_image_record_the_commit_it_was_built_from(inside):
    """The image has no .git: provenance takes the commit docker/ci.sh passed at build time."""
    import json
    import subprocess
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                            text=True).stdout.strip()
    record = json.loads((inside / "smoke" / "base" / "provenance.json").read_text())
    assert record["git_commit"] == commit, {k: record.get(k) for k in ("git_commit", "git_dirty")}


def test_the_image_entrypoint_runs_stages_in_the_warm_worker(inside):
    """The entrypoint is `pulse workflow`: the model stages ran in its warm worker (and gave the
    outside run's numbers, test above)."""
    import json
    records = [json.loads(p.read_text()) for p in sorted((inside / "smoke").glob("**/*provenance.json"))]
    model_stages = [r for r in records if r["stage"] in ("base", "finetune", "unlearn", "evaluate")]
    assert {r["stage"] for r in model_stages} == {"base", "finetune", "unlearn", "evaluate"}
    assert all(r["resources"]["warm_worker"] for r in model_stages)
