"""The sdist ships its tests and what they read; the metadata is a real project's."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """The sdist built from the files git tracks (as a release would be), unpacked."""
    if shutil.which("git") is None:
        pytest.skip("needs git to list the tracked files")
    # Built with the environment's setuptools (no isolation): it must meet build-system.requires.
    pytest.importorskip("setuptools", minversion="64", reason="needs setuptools>=64, as pyproject.toml's build")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if tracked.returncode != 0 or not tracked.stdout:
        pytest.skip("not a git checkout")
    source = tmp_path_factory.mktemp("source")
    for name in tracked.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    code = ("import sys; from setuptools import build_meta as b; "
            "print(b.build_sdist(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    archive = out / proc.stdout.strip().splitlines()[-1]
    with tarfile.open(archive) as tar:
        tar.extractall(out)
    [unpacked] = [p for p in out.iterdir() if p.is_dir()]
    return unpacked


def test_sdist_ships_the_tests_and_what_they_read(sdist):
    for name in ("LICENSE", "action.yml", ".pre-commit-hooks.yaml", ".ci/run", ".ci/constraints.txt",
                 "tests/cli_support.py", "tests/data/sarif-schema-2.1.0.json", "docs/rules/ZG001.md",
                 "fixtures/missing_zero_no_zero_grad_at_all.py"):
        assert (sdist / name).is_file(), name
    assert not list(sdist.rglob("__pycache__"))
    # A few of its test modules, run from the unpacked sdist, find everything they read there.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_readme.py", "tests/test_output_formats.py", "-k", "not pre_commit"],
                          cwd=sdist, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_metadata(sdist):
    meta = email.message_from_string((sdist / "PKG-INFO").read_text())
    from zgcheck import __version__

    assert meta["Version"] == __version__ and meta["License"] == "MIT"
    assert meta["Author"] or meta["Author-email"]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Repository", "Issues", "Documentation"} <= set(urls)
    classifiers = meta.get_all("Classifier")
    assert "License :: OSI Approved :: MIT License" in classifiers
    assert {f"Programming Language :: Python :: 3.{v}" for v in range(9, 14)} <= set(classifiers)
    assert not any("torch==" in r for r in meta.get_all("Requires-Dist") or ())  # older setuptools omit them
