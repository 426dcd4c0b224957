"""`pulse workflow` clears a killed run's stale Snakemake lock, never a live run's."""

from __future__ import annotations

import subprocess
import sys

from pulse.launch import snakemake_running_in, stale_locks


def test_a_snakemake_process_in_the_directory_is_seen_and_its_end_too(tmp_path):
    script = tmp_path / "snakemake"  # a stand-in: only the command line and working directory matter
    script.write_text("import time\ntime.sleep(60)\n")
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert snakemake_running_in(tmp_path) is False
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        for _ in range(50):  # /proc shows the process as soon as it exists
            if snakemake_running_in(tmp_path):
                break
        assert snakemake_running_in(tmp_path) is True
        assert snakemake_running_in(other) is False
    finally:
        process.kill()
        process.wait()
    assert snakemake_running_in(tmp_path) is False


def test_stale_locks_are_the_files_in_snakemakes_lock_directory(tmp_path):
    assert not stale_locks(tmp_path)
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    assert not stale_locks(tmp_path)
    (locks / "0.input.lock").write_text("x")
    assert stale_locks(tmp_path)
