"""Fast checks of the container recipe: hadolint, every base image pinned by digest, the hash
lock fresh against its spec, and the names that point at the published image."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
sys.path.insert(0, str(REPO / "scripts"))
import image_lock  # noqa: E402

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed: `make setup` installs envs/requirements-dev.txt"
    return found


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("hadolint"), "--no-color", "--failure-threshold", "style", str(path)],
                          capture_output=True, text=True)


def unpinned_images(text: str) -> list[str]:
    """Every FROM (after ARG defaults are substituted) and every ARG that a FROM uses whose image
    is not pinned by @sha256 digest; also a FROM whose ARG has no default."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    defaults: dict[str, str] = {}
    problems = []
    seen_from = False
    stages: set[str] = set()
    for instruction in parser.structure:
        name, value = instruction["instruction"], instruction["value"].strip()
        if name == "ARG" and not seen_from:
            key, _, default = value.partition("=")
            defaults[key.strip()] = default.strip().strip('"')
        elif name == "FROM":
            seen_from = True
            words = [w for w in value.split() if not w.startswith("--")]
            image = words[0]
            for match in VARIABLE.finditer(image):
                arg = match[1] or match[2]
                if not defaults.get(arg):
                    problems.append(f"FROM {image}: ARG {arg} has no default")
                elif not DIGEST.search(defaults[arg]):
                    problems.append(f"ARG {arg}={defaults[arg]} is not pinned by digest")
            resolved = VARIABLE.sub(lambda m: defaults.get(m[1] or m[2], ""), image)
            if resolved not in stages and resolved != "scratch" and not DIGEST.search(resolved):
                problems.append(f"FROM {image} ({resolved}) is not pinned by digest")
            if len(words) == 3 and words[1].lower() == "as":
                stages.add(words[2])
        elif name in ("COPY", "ADD"):
            source = re.search(r"--from=(\S+)", value)
            if source and source[1] not in stages and not source[1].isdigit() and not DIGEST.search(source[1]):
                problems.append(f"{name} --from={source[1]} is not pinned by digest")
    return problems


def test_hadolint_passes_the_dockerfile():
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_catches_a_careless_dockerfile(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = hadolint(careless)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3008" in result.stdout, result.stdout


def test_every_base_image_is_pinned_by_digest():
    text = DOCKERFILE.read_text()
    assert unpinned_images(text) == []
    assert re.search(r"^ARG BASE_IMAGE=\S+@sha256:[0-9a-f]{64}$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), "no parser directive: the default frontend builds it"


@pytest.mark.parametrize("recipe, problem", [
    ("FROM ubuntu:24.04\n", "FROM ubuntu:24.04"),
    ("ARG BASE=ubuntu:24.04\nFROM ${BASE}\n", "ARG BASE=ubuntu:24.04"),
    ("ARG BASE\nFROM $BASE\n", "ARG BASE has no default"),
    ("FROM a@sha256:" + "0" * 64 + " AS build\nFROM build\nCOPY --from=busybox:1 /bin/sh /sh\n", "--from=busybox:1"),
])
def test_digest_check_catches_unpinned_images(recipe, problem):
    found = unpinned_images(recipe)
    assert any(problem in p for p in found), found


def test_lock_was_compiled_from_the_current_spec():
    lock = image_lock.LOCK.read_text()
    recorded = re.search(r"^# spec-sha256: ([0-9a-f]{64})$", lock, re.M)
    assert recorded, "envs/image.lock has no spec-sha256 line: run python scripts/image_lock.py"
    assert recorded[1] == image_lock.spec_digest(), "envs/image.in or requirements.txt changed: run python scripts/image_lock.py"


def test_lock_pins_every_package_by_version_and_hash():
    packages = image_lock.parse_lock(image_lock.LOCK.read_text())
    assert len(packages) > 50
    for name, entry in packages.items():
        assert entry["hashes"], f"{name} has no --hash"
    for line in image_lock.spec_requirements():
        requirement = Requirement(line)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in packages, f"{line} of the spec is not in the lock"
        assert requirement.specifier.contains(packages[name]["version"], prereleases=True), (line, packages[name])


def test_lock_keeps_the_local_pins_and_a_cuda_torch():
    packages = image_lock.parse_lock(image_lock.LOCK.read_text())
    local = [Requirement(r) for r in (REPO / "envs" / "requirements.txt").read_text().split("\n") if r.strip() and not r.startswith("#")]
    for requirement in local:
        pinned = str(requirement.specifier).removeprefix("==")
        assert packages[requirement.name.lower()]["version"] == pinned, requirement
    # The default torch wheels of this release are CUDA 13.0 builds: their runtime libraries are locked too.
    assert "nvidia-cublas" in packages and "nvidia-cudnn-cu13" in packages
    assert Version(packages["torch"]["version"]).local is None


def test_build_lock_is_the_same_entries_as_the_lock():
    entries = image_lock.lock_entries(image_lock.LOCK.read_text())
    build = image_lock.BUILD_LOCK.read_text()
    assert build == image_lock.build_lock_text(image_lock.LOCK.read_text())
    for name in image_lock.BUILD_PACKAGES:
        assert entries[name] in build


def test_lock_parser_refuses_an_unpinned_line():
    with pytest.raises(ValueError):
        image_lock.parse_lock("torch>=2\n")


def test_lock_is_what_the_spec_compiles_to_today():
    """Resolve the spec again (uv, the index, releases before the spec's resolved-as-of date)."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "image_lock.py"), "--check"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_snakefile_container_is_the_published_image_of_this_version():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    image = f"ghcr.io/pulse-unlearning/pulse:{version}"
    assert re.search(rf'^container: "docker://{re.escape(image)}"$', (REPO / "Snakefile").read_text(), re.M)
    assert image in (REPO / "docs" / "container.md").read_text()


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies():
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    copied = set()
    for instruction in DockerfileParser(str(DOCKERFILE), env_replace=False).structure:
        if instruction["instruction"] == "COPY" and "--from" not in instruction["value"]:
            copied.update(instruction["value"].split()[:-1])
    assert copied == allowed, (copied, allowed)
    for path in copied:
        assert (REPO / path).exists(), path
