"""Which files a run checks: .gitignore (nested, negated), excludes, named files."""

from __future__ import annotations

import json

from cli_support import BUGGY, run


def found(*args):
    result = run("--output-format", "json", *map(str, args))
    assert result.exit_code in (0, 1), result.output
    return sorted({d["filename"] for d in json.loads(result.stdout)})


def make(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BUGGY)


def test_nested_gitignore_and_negation(tmp_path):
    (tmp_path / ".git").mkdir()
    make(tmp_path, "train.py", "generated_a.py", "local.py", "sub/generated_keep.py", "sub/generated_b.py",
         "sub/local.py", "sub/deeper/local.py", "logs/run.py")
    (tmp_path / ".gitignore").write_text("generated_*.py\nlogs/\n")
    (tmp_path / "sub" / ".gitignore").write_text("!generated_keep.py\nlocal.py\n")
    assert found(tmp_path) == sorted(str(tmp_path / p) for p in (
        "train.py", "local.py", "sub/generated_keep.py"))


def test_deeper_gitignore_overrides_a_shallower_one(tmp_path):
    (tmp_path / ".git").mkdir()
    make(tmp_path, "a/keep.py", "a/b/keep.py", "a/b/drop.py")
    (tmp_path / ".gitignore").write_text("*.py\n!keep.py\n")
    (tmp_path / "a" / "b" / ".gitignore").write_text("keep.py\n")
    assert found(tmp_path) == [str(tmp_path / "a" / "keep.py")]


def test_gitignore_above_the_repository_root_does_not_apply(tmp_path):
    (tmp_path / ".gitignore").write_text("*.py\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    make(repo, "train.py")
    assert found(repo) == [str(repo / "train.py")]


def test_git_info_exclude(tmp_path):
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("scratch.py\n")
    make(tmp_path, "train.py", "scratch.py")
    assert found(tmp_path) == [str(tmp_path / "train.py")]


def test_no_respect_gitignore(tmp_path):
    (tmp_path / ".git").mkdir()
    make(tmp_path, "train.py", "ignored.py")
    (tmp_path / ".gitignore").write_text("ignored.py\n")
    assert found(tmp_path) == [str(tmp_path / "train.py")]
    assert len(found("--no-respect-gitignore", tmp_path)) == 2


def test_exclude_option_and_default_excludes(tmp_path):
    make(tmp_path, "train.py", "vendor/lib.py", "pkg/vendor_x.py", ".venv/lib.py", "node_modules/x.py",
         ".ipynb_checkpoints/t.py")
    assert found("--exclude", "vendor", tmp_path) == sorted(
        str(tmp_path / p) for p in ("train.py", "pkg/vendor_x.py"))
    assert found("--exclude", "vendor*", "--exclude", "pkg/", tmp_path) == [str(tmp_path / "train.py")]


def test_named_files_are_checked_unless_force_exclude(tmp_path):
    (tmp_path / ".git").mkdir()
    make(tmp_path, "build/gen.py", "ignored.py", "vendor/lib.py")
    (tmp_path / ".gitignore").write_text("ignored.py\n")
    named = [tmp_path / "build" / "gen.py", tmp_path / "ignored.py", tmp_path / "vendor" / "lib.py"]
    assert len(found("--exclude", "vendor", *named)) == 3
    # pre-commit passes every staged file by name: --force-exclude makes excludes apply.
    assert found("--force-exclude", "--exclude", "vendor", *named) == []


def test_config_excludes_apply_to_named_files_with_force_exclude(tmp_path, monkeypatch):
    make(tmp_path, "train.py", "migrations/m1.py")
    (tmp_path / "pyproject.toml").write_text('[tool.zgcheck]\nextend-exclude = ["migrations/"]\n')
    monkeypatch.chdir(tmp_path)
    assert found(".") == ["train.py"]
    assert found("migrations/m1.py") == ["migrations/m1.py"]
    assert found("--force-exclude", "migrations/m1.py", "train.py") == ["train.py"]


def test_notebooks_are_discovered(tmp_path):
    make(tmp_path, "train.py")
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                                            "source": BUGGY}], "metadata": {}, "nbformat": 4,
                                                 "nbformat_minor": 5}))
    (tmp_path / "notes.txt").write_text(BUGGY)
    assert found(tmp_path) == sorted([str(tmp_path / "nb.ipynb"), str(tmp_path / "train.py")])
