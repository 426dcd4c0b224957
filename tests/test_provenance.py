"""Provenance names the code version even where there is no .git (an installed copy, the image)."""

from pulse import provenance


def test_commit_comes_from_git_when_there_is_one(monkeypatch):
    monkeypatch.setenv("PULSE_GIT_COMMIT", "from-the-environment")
    monkeypatch.setattr(provenance, "_git", lambda *args: "abc123" if args[0] == "rev-parse" else "")
    assert provenance.code_version() == {"git_commit": "abc123", "git_dirty": False}


def test_without_git_the_commit_the_image_was_built_from_is_recorded(monkeypatch):
    monkeypatch.setattr(provenance, "_git", lambda *args: None)
    monkeypatch.delenv("PULSE_GIT_COMMIT", raising=False)
    assert provenance.code_version() == {"git_commit": None, "git_dirty": None}
    monkeypatch.setenv("PULSE_GIT_COMMIT", "0123abcd")
    version = provenance.code_version()
    assert version["git_commit"] == "0123abcd" and version["git_dirty"] is None
