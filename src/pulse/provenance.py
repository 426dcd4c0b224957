"""What produced an output: settings and their hash, code version, library versions, device,
threads, determinism switches, seeds and times. Written beside every stage's output."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from pulse.io import write_json

PACKAGES = ("pulse-unlearning", "torch", "transformers", "peft", "tokenizers", "safetensors",
            "snakemake", "pandas", "pyarrow", "numpy", "scipy")


def settings_hash(params) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def code_version() -> dict:
    commit = _git("rev-parse", "HEAD")
    if not commit and os.environ.get("PULSE_GIT_COMMIT"):
        # An installed copy without .git (the container image): the commit it was built from.
        return {"git_commit": os.environ["PULSE_GIT_COMMIT"], "git_dirty": None,
                "git_commit_source": "PULSE_GIT_COMMIT (set when the image was built)"}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def versions() -> dict:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def runtime() -> dict:
    info = {"hostname": socket.gethostname(), "platform": platform.platform()}
    if "torch" in sys.modules:
        import torch
        info.update({
            "torch_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cuda_available": torch.cuda.is_available(),
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or ["cpu"],
        })
    return info


def resources() -> dict:
    """CPU time and peak resident memory of this process so far (the stage's own figures, also
    when a warm worker runs it and Snakemake's benchmark file only sees the thin client)."""
    import os
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
            "pid": os.getpid(), "warm_worker": os.environ.get("PULSE_WARM_CHILD") == "1"}


class Recorder:
    """Collects a stage's provenance; ``write`` puts it beside the output."""

    def __init__(self, stage: str, params: dict, argv: list[str]):
        self.record = {"stage": stage, "params": params, "params_sha256": settings_hash(params),
                       "argv": argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       **code_version()}
        self._start = time.perf_counter()

    def write(self, output: str | Path) -> Path:
        output = Path(output)
        target = output / "provenance.json" if output.is_dir() else output.with_name(output.name + ".provenance.json")
        self.record.update({"ended": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "seconds": round(time.perf_counter() - self._start, 3),
                            "resources": resources(), "versions": versions(), "runtime": runtime()})
        write_json(target, self.record)
        return target
