"""``pulse workflow ARGS``: snakemake ARGS in this directory, resuming after a killed run.

A run killed with SIGKILL (or a lost login session, an OOM kill) leaves Snakemake's locks in
``.snakemake/locks``, and plain ``snakemake`` then refuses to start until ``--unlock``. The
outputs themselves are safe (every write is atomic; ``rerun-incomplete`` redoes cut-off jobs), so
the only thing between the user and a resume is the stale lock. This launcher removes it with
``snakemake --unlock`` when no snakemake process is running in the directory (checked in /proc;
where /proc is missing it never unlocks), then replaces itself with snakemake.

For local runs it first starts a warm worker (``pulse.worker``) so that the jobs' ``pulse <stage>``
commands do not each pay the ~4 s of imports; ``PULSE_NO_WORKER=1`` turns it off, and runs on
another executor (``--executor``, or a profile that sets one, e.g. profiles/slurm) never use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def snakemake_running_in(directory: Path) -> bool | None:
    """Whether a snakemake process has ``directory`` as its working directory (None: unknown)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    directory = directory.resolve()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if not any(b"snakemake" in part for part in command[:3]):
                continue
            if Path(os.readlink(entry / "cwd")).resolve() == directory:
                return True
        except OSError:  # the process ended meanwhile, or is not ours to inspect
            continue
    return False


def stale_locks(directory: Path) -> bool:
    locks = directory / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def profile_executor(args: list[str]) -> str | None:
    """The executor a ``--profile``/``--workflow-profile`` directory in ``args`` sets, if any."""
    import yaml
    for flag in ("--profile", "--workflow-profile"):
        for n, arg in enumerate(args):
            value = arg.split("=", 1)[1] if arg.startswith(flag + "=") else (
                args[n + 1] if arg == flag and n + 1 < len(args) else None)
            if value is None:
                continue
            config = Path(value) / "config.yaml"
            if config.is_file():
                executor = (yaml.safe_load(config.read_text()) or {}).get("executor")
                if executor:
                    return str(executor)
    return None


NO_JOBS = ("-n", "--dry-run", "--dryrun", "--report", "--lint", "--unlock", "--summary", "--list-changes", "-h",
           "--help", "--version", "--dag", "--rulegraph")


def runs_locally(args: list[str]) -> bool:
    """Whether this snakemake invocation runs jobs on this machine (worth a warm worker)."""
    if any(arg in NO_JOBS or arg.startswith(("--report=", "--list-")) for arg in args):
        return False
    for n, arg in enumerate(args):
        if arg in ("--executor", "-e") and n + 1 < len(args) and args[n + 1] != "local":
            return False
        if arg.startswith("--executor=") and arg != "--executor=local":
            return False
        if arg.startswith(("--cluster", "--slurm", "--kubernetes")):
            return False
    return profile_executor(args) in (None, "local")


def main(args: list[str]) -> int:
    directory = Path.cwd()
    command = [sys.executable, "-m", "snakemake", *args]
    if stale_locks(directory) and snakemake_running_in(directory) is False:
        print("pulse workflow: removing the locks of a run that was killed (no snakemake is running here)",
              file=sys.stderr, flush=True)
        unlocked = subprocess.run([*command, "--unlock"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        if unlocked.returncode != 0:
            print(unlocked.stderr, file=sys.stderr)
            return unlocked.returncode
    if runs_locally(args) and os.environ.get("PULSE_NO_WORKER") != "1":
        from pulse.worker import start
        start(os.environ)  # ends with this process, i.e. with snakemake after the exec below
    os.execv(sys.executable, command)
    return 0  # not reached
