"""A warm worker for local runs: stage commands start from already imported libraries.

At the embedded default's scale a job's start-up (Python + torch + transformers + peft imports,
~4 s) costs about as much as its work (an evaluation job computes for ~6 s), and a run has ~125
such jobs.
``pulse workflow`` (local runs only) therefore starts one worker process that imports everything
once, then forks a fresh child per job: the rules still run ``pulse <stage> ...`` as a shell
command (same logs, same exit codes, same numbers), but that command only hands its arguments,
working directory, environment and stdin/stdout/stderr to the worker and waits for the child.

- The worker never runs a torch operation, so no thread pool exists when it forks; each child
  sets its own thread count and seeds exactly as a fresh process does.
- A child dies with the worker, and the worker with the process that started it (Linux
  ``PR_SET_PDEATHSIG``); killing the client (Snakemake cancelling a job) kills its child.
- Anything unusual falls back to running the stage in the calling process: no worker configured,
  not Linux, the socket gone (e.g. a cluster node: the socket lives in the submitting host's
  ``/tmp``), ``PULSE_WORKER=`` empty.
- Snakemake's ``benchmark:`` files measure the job's own process tree, i.e. the thin client:
  wall time ``s`` stays exact, CPU time and peak memory of the stage are in the job's
  provenance (``resources``), which ``scripts/run_figures.py`` reads.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

ENV = "PULSE_WORKER"
# The stages whose start-up is worth saving (they import torch); others run in the caller.
STAGES = {"base", "finetune", "gold-data", "unlearn", "evaluate"}
MAX_MESSAGE = 1 << 20


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent ends (no-op elsewhere)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def preload() -> None:
    """Import what the stages import (no torch operation: forking must stay safe)."""
    import importlib
    for module in ("torch", "pulse.cli", "pulse.config", "pulse.provenance", "pulse.data.records",
                   "pulse.models.backends", "pulse.models.tiny", "pulse.models.chain", "pulse.models.routing",
                   "pulse.methods", "pulse.stages.base", "pulse.stages.finetune", "pulse.stages.gold",
                   "pulse.stages.unlearn", "pulse.stages.evaluate", "rouge_score.rouge_scorer"):
        importlib.import_module(module)
    # transformers builds its table of checkpoint renamings (~1,000 regular expressions, ~0.35 s)
    # at the first model load of a process; build it here once, so that no child pays it.
    try:
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping
        get_checkpoint_conversion_mapping("llava")
    except (ImportError, AttributeError):  # another transformers version: nothing to warm
        pass


def _run_child(connection: socket.socket) -> None:
    """In the forked child: become the client's process (fds, cwd, environment) and run the stage."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the worker ignores it; stages run git
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _die_with_parent()
        message, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 3)
        request = json.loads(message)
        connection.sendall(json.dumps({"pid": os.getpid()}).encode())
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(ENV, None)
        os.environ["PULSE_WARM_CHILD"] = "1"  # recorded in the stage's provenance
        sys.argv = ["pulse", *request["argv"]]
        from pulse import cli
        try:
            code = cli.main(request["argv"], delegate=False)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:  # noqa: BLE001 - reported like an uncaught error of a fresh process
            import traceback
            traceback.print_exc()
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            connection.sendall(json.dumps({"exit": code}).encode())
        except OSError:
            pass
        os._exit(code if isinstance(code, int) else 1)


def serve(path: str | Path, ready=None) -> None:
    """Accept one job per connection, forever; each in a forked child."""
    path = Path(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen(64)  # clients queue here while the imports below run
    _die_with_parent()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically

    def stop(*_):
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    preload()
    if ready is not None:
        ready()
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            _run_child(connection)
        connection.close()


def delegate(argv: list[str]) -> int | None:
    """Run ``pulse ARGV`` in the worker named by $PULSE_WORKER and return its exit code, or None
    when there is no usable worker (the caller then runs the stage itself)."""
    path = os.environ.get(ENV)
    if not path or not argv or argv[0] not in STAGES or not hasattr(socket, "send_fds"):
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        connection.connect(path)
        request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
        socket.send_fds(connection, [json.dumps(request).encode()], [0, 1, 2])
        reply = connection.recv(MAX_MESSAGE)
    except OSError:
        connection.close()
        return None
    if not reply:
        return None
    child = json.loads(reply)["pid"]

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    reply = connection.recv(MAX_MESSAGE)
    if not reply:
        print("pulse: error: the worker process running this job ended without an exit code",
              file=sys.stderr)
        return 1
    return int(json.loads(reply)["exit"])


def start(env: dict):
    """Start a worker for this run (Linux only): returns its process once it listens (None if it
    cannot) and puts its socket path in ``env``. The worker ends with the calling process."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "send_fds"):
        return None
    import subprocess
    import time
    path = Path(tempfile.mkdtemp(prefix="pulse-worker-")) / "socket"
    process = subprocess.Popen([sys.executable, "-m", "pulse.worker", str(path)], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not path.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            return None
        time.sleep(0.02)
    env[ENV] = str(path)
    return process


if __name__ == "__main__":
    serve(sys.argv[1])
