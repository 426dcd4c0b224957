"""``pulse workflow ARGS``: snakemake ARGS in this directory, resuming after a killed run.

A run killed with SIGKILL (or a lost login session, an OOM kill) leaves Snakemake's locks in
``.snakemake/locks``, and plain ``snakemake`` then refuses to start until ``--unlock``. The
outputs themselves are safe (every write is atomic; ``rerun-incomplete`` redoes cut-off jobs), so
the only thing between the user and a resume is the stale lock. This launcher removes it with
``snakemake --unlock`` when no snakemake process is running in the directory (checked in /proc;
where /proc is missing it never unlocks), then replaces itself with snakemake.
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
    os.execv(sys.executable, command)
    return 0  # not reached
