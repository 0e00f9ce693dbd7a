"""Per-file configuration, as Ruff does it: the nearest [tool.zgcheck] above each file."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from cli_support import BUGGY, run

from test_config import ZG002

ROOT_CONFIG = """\
    [tool.zgcheck]
    ignore = ["ZG002"]
    extend-exclude = ["*_gen.py", "/packages/c/legacy/"]
    """
PACKAGES = {
    # its own settings: only ZG002; nothing of the root's applies
    "a": '[tool.zgcheck]\nselect = ["ZG002"]\n',
    # the root's settings, and a per-file ignore of its own
    "b": '[tool.zgcheck]\nextend = "../../pyproject.toml"\nper-file-ignores = { "tests/*" = ["ZG001"] }\n',
    # a pyproject.toml without the table: the root's settings govern
    "c": '[project]\nname = "c"\n',
}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture
def monorepo(tmp_path):
    write(tmp_path / "pyproject.toml", ROOT_CONFIG)
    for name, config in PACKAGES.items():
        package = tmp_path / "packages" / name
        write(package / "pyproject.toml", config)
        for rel in ("train.py", "wipe.py", "model_gen.py", "tests/test_train.py", "legacy/old.py"):
            write(package / rel, ZG002 if rel == "wipe.py" else BUGGY)
    return tmp_path


def verdict(cwd: Path, *args) -> dict:
    """{absolute path: sorted codes} of a JSON run from cwd."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = run("--output-format", "json", *args)
    finally:
        os.chdir(old)
    assert result.exit_code in (0, 1), result.output
    out: dict = {}
    for d in json.loads(result.stdout):
        out.setdefault(str((cwd / d["filename"]).resolve()), []).append(d["code"])
    return {path: sorted(found) for path, found in out.items()}


def test_each_file_gets_the_same_verdict_from_the_root_and_from_its_package(monorepo):
    from_root = verdict(monorepo, ".")
    by_package = {}
    for name in PACKAGES:
        package = monorepo / "packages" / name
        by_package.update(verdict(package, "."))
        inside = {p: c for p, c in from_root.items() if p.startswith(str(package) + os.sep)}
        assert verdict(package, ".") == inside, name
        assert verdict(package / "tests", "..") == inside, name  # from deeper down too
    assert by_package == from_root

    def found(package, rel):
        return from_root.get(str(monorepo / "packages" / package / rel))

    # a: its own select, none of the root's ignores or excludes
    assert found("a", "wipe.py") == ["ZG002"] and found("a", "train.py") is None
    assert found("a", "model_gen.py") is None  # ZG001 is not selected there
    # b: the root's ignore and excludes through `extend`, and its own per-file ignore
    assert found("b", "train.py") == ["ZG001"] and found("b", "wipe.py") is None
    assert found("b", "model_gen.py") is None and found("b", "tests/test_train.py") is None
    assert found("b", "legacy/old.py") == ["ZG001"]  # the root's anchored pattern names c's legacy/ only
    # c: governed by the root
    assert found("c", "train.py") == ["ZG001"] and found("c", "legacy/old.py") is None
    assert found("c", "model_gen.py") is None and found("c", "tests/test_train.py") == ["ZG001"]


def test_named_files_use_their_own_configuration(monorepo):
    a, b = monorepo / "packages" / "a", monorepo / "packages" / "b"
    got = verdict(monorepo, str(a / "wipe.py"), str(b / "wipe.py"), str(b / "train.py"))
    assert got == {str(a / "wipe.py"): ["ZG002"], str(b / "train.py"): ["ZG001"]}


def test_config_option_governs_every_file(monorepo):
    got = verdict(monorepo, "--config", "pyproject.toml", "packages/a")
    assert got == {str(monorepo / "packages" / "a" / "train.py"): ["ZG001"],
                   str(monorepo / "packages" / "a" / "tests" / "test_train.py"): ["ZG001"],
                   str(monorepo / "packages" / "a" / "legacy" / "old.py"): ["ZG001"]}


@pytest.mark.parametrize("config, key", [
    ('extend-exclude = ["legacy\\\\old.py"]', "extend-exclude"),
    ('exclude = ["build\\\\"]', "exclude"),
    ('per-file-ignores = { "tests\\\\*" = ["ZG001"] }', "per-file-ignores"),
    ('extend = "pyproject.toml"', "extend"),
    ('extend = "missing.toml"', "extend"),
    ('extend = 3', "extend"),
])
def test_bad_patterns_and_extends_are_configuration_errors(monorepo, config, key):
    path = monorepo / "packages" / "a" / "pyproject.toml"
    path.write_text(f"[tool.zgcheck]\n{config}\n")
    result = run(str(monorepo))
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and key in result.output and "Traceback" not in result.output
