#!/usr/bin/env python3
"""Compile envs/image.lock (every Python package of the image, by version and sha256) from
envs/image.in, or check that it is fresh.

    python scripts/image_lock.py          # rewrite envs/image.lock (needs uv and the index)
    python scripts/image_lock.py --check  # compile again into a temporary file; exit 1 if it differs

The resolution is reproducible: the target is fixed (the image's Python and platform below) and
uv only sees releases uploaded before the ``resolved-as-of`` date written in envs/image.in. The
lock starts with the sha256 of the spec files, which the tests compare without any network.
uv reads the index from its own settings (UV_INDEX_URL / UV_DEFAULT_INDEX); when those are unset,
the host pip's index (PIP_INDEX_URL or pip's global.index-url) is used, so the lock comes from
the same index as the host's installs.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "envs" / "image.in"
LOCK = REPO / "envs" / "image.lock"
# Installed first, from the same entries of the lock: the installer and the build backend, so that
# the packages published as source only are built with hash-checked tools (no build isolation).
BUILD_LOCK = REPO / "envs" / "image-build.lock"
BUILD_PACKAGES = ("pip", "setuptools")
# The interpreter and platform of the image (Ubuntu 24.04's python3 on amd64): docker/Dockerfile.
PYTHON_VERSION = "3.12"
PLATFORM = "x86_64-manylinux_2_28"
COMMAND = "python scripts/image_lock.py"
DIGEST_LINE = re.compile(r"^# spec-sha256: ([0-9a-f]{64})$", re.M)
AS_OF = re.compile(r"^# resolved-as-of: (\S+)$", re.M)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def spec_files(spec: Path = SPEC) -> list[Path]:
    """The spec and every requirements file it includes (-r / -c), in include order."""
    files, pending = [], [spec]
    while pending:
        path = pending.pop(0)
        if path in files:
            continue
        files.append(path)
        for line in path.read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) == 2 and parts[0] in ("-r", "-c", "--requirement", "--constraint"):
                pending.append((path.parent / parts[1]).resolve())
    return files


def spec_digest(spec: Path = SPEC) -> str:
    """sha256 over the names and contents of the spec files."""
    digest = hashlib.sha256()
    for path in spec_files(spec):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def spec_requirements(spec: Path = SPEC) -> list[str]:
    """Every requirement line of the spec files (options and comments dropped)."""
    lines = []
    for path in spec_files(spec):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                lines.append(line)
    return lines


def parse_lock(text: str) -> dict[str, dict]:
    """{normalised name: {"version": str, "hashes": [str]}} of a hash-locked requirements file."""
    joined = re.sub(r"\\\n\s*", " ", text)
    packages = {}
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        if not match:
            raise ValueError(f"not a pinned requirement: {line!r}")
        name = re.sub(r"[-_.]+", "-", match[1]).lower()
        packages[name] = {"version": match[3], "hashes": re.findall(r"--hash=sha256:([0-9a-f]{64})", line)}
    return packages


def lock_entries(text: str) -> dict[str, str]:
    """{normalised name: the entry's text (pin, hashes and comments)} of a lock file."""
    entries, name = {}, None
    for line in text.splitlines(keepends=True):
        match = PIN.match(line)
        if match:
            name = re.sub(r"[-_.]+", "-", match[1]).lower()
            entries[name] = ""
        elif not line.startswith((" ", "\t")):
            name = None
        if name:
            entries[name] += line
    return entries


def build_lock_text(lock_text: str) -> str:
    entries = lock_entries(lock_text)
    missing = [p for p in BUILD_PACKAGES if p not in entries]
    if missing:
        raise SystemExit(f"envs/image.in must name {missing}: envs/image-build.lock is made of them")
    header = (f"# The entries of {', '.join(BUILD_PACKAGES)} in envs/image.lock, installed first in the\n"
              f"# image (docker/Dockerfile). Written by `{COMMAND}`: do not edit.\n")
    return header + "".join(entries[p] for p in BUILD_PACKAGES)


def index_url() -> str | None:
    if os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX"):
        return None
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    result = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                            capture_output=True, text=True)
    return result.stdout.strip() or None if result.returncode == 0 else None


def find_uv() -> str:
    for candidate in (Path(sys.executable).parent / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise SystemExit("uv not found: it is installed by `make setup` (envs/requirements-dev.txt)")


def compile_lock(output: Path, spec: Path = SPEC) -> None:
    as_of = AS_OF.search(spec.read_text())
    if not as_of:
        raise SystemExit(f"{spec}: needs a '# resolved-as-of: <RFC 3339 date>' line")
    command = [
        find_uv(), "pip", "compile", str(spec.relative_to(REPO)), "--output-file", str(output),
        "--generate-hashes", "--python-version", PYTHON_VERSION, "--python-platform", PLATFORM,
        "--exclude-newer", as_of[1], "--custom-compile-command", COMMAND, "--quiet",
    ]
    url = index_url()
    if url:
        command += ["--index-url", url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_EXCLUDE_NEWER")}
    subprocess.run(command, cwd=REPO, check=True, env=env)
    body = output.read_text()
    output.write_text(f"# spec-sha256: {spec_digest(spec)}\n{body}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compile into a temporary file and compare")
    args = parser.parse_args(argv)
    if not args.check:
        compile_lock(LOCK)
        BUILD_LOCK.write_text(build_lock_text(LOCK.read_text()))
        print(f"wrote {LOCK.relative_to(REPO)} ({len(parse_lock(LOCK.read_text()))} packages) and {BUILD_LOCK.relative_to(REPO)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "image.lock"
        compile_lock(fresh)
        compiled = {LOCK: fresh.read_text()}
    compiled[BUILD_LOCK] = build_lock_text(compiled[LOCK])
    stale = 0
    for path, new in compiled.items():
        old = path.read_text() if path.exists() else ""
        if old != new:
            stale += 1
            name = str(path.relative_to(REPO))
            sys.stdout.writelines(line + "\n" for line in difflib.unified_diff(
                old.splitlines(), new.splitlines(), name, "compiled", lineterm=""))
    if stale:
        print(f"the image lock is stale: run `{COMMAND}`", file=sys.stderr)
        return 1
    print(f"{LOCK.relative_to(REPO)} and {BUILD_LOCK.relative_to(REPO)} are fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
