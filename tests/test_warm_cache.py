"""The stat index in front of the cache: an unchanged tree is answered without reading a file,
and whatever could change a verdict (the file, a helper it imports, a new module where an
import looked, the configuration) sends the file back to the checker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from zgcheck import cache, runner

from cli_support import BUGGY, CLEAN, ENGINE, invoke

FIXED_ENGINE = ENGINE.replace("        optimizer.step()\n", "        optimizer.step()\n        optimizer.zero_grad()\n")
# An absolute import: pkg/engine.py, if it appears, comes before the project's top-level engine.py.
MAIN = ("import torch\nfrom engine import train_one_epoch\n\nmodel = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nfor epoch in range(3):\n"
        "    train_one_epoch(model, opt, torch.randn(3, 4, 2))\n")
# Timestamps well in the past: the index trusts only signatures older than the run.
BEFORE, LATER = time.time() - 3600, time.time() - 1800


def backdate(root, when=BEFORE):
    for directory, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(directory, name), (when, when))
        os.utime(directory, (when, when))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """pkg/main.py calls a buggy helper from engine.py at the project's top; train.py and
    clean.py are scripts, notes.py holds nothing the gate keeps. The cache lives elsewhere."""
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "engine.py").write_text(ENGINE)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "main.py").write_text(MAIN)
    (root / "train.py").write_text(BUGGY)
    (root / "clean.py").write_text(CLEAN)
    (root / "notes.py").write_text("print('no training here')\n")
    backdate(root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("ZGCHECK_CACHE_DIR", str(tmp_path / "cache"))
    return root


@pytest.fixture
def processed(monkeypatch):
    """The files the run sent to the checker (the rest were answered by the index)."""
    seen = []
    original = runner._process

    def recording(path, config, mode):
        seen.append(path.replace(os.sep, "/"))
        return original(path, config, mode)

    monkeypatch.setattr(runner, "_process", recording)
    return seen


def check(*args):
    runner._GATE.clear()  # as in a process of its own: the gate's lookups are not remembered between runs
    result = invoke(["check", "--output-format", "json", "--jobs", "1", *args])
    assert result.exit_code in (0, 1), result.output
    found = [(d["filename"].replace("\\", "/"), d["code"], d["location"]["row"]) for d in json.loads(result.stdout)]
    return result, sorted(found)


def test_a_warm_run_reads_no_file_and_reports_what_a_cold_one_did(project, processed):
    uncached = check("--no-cache", "pkg/main.py", "engine.py", "train.py", "clean.py", "notes.py")[1]
    processed.clear()
    cold = check(".")
    assert sorted(processed) == ["clean.py", "engine.py", "notes.py", "pkg/__init__.py", "pkg/main.py", "train.py"]
    processed.clear()
    warm = check(".")
    assert processed == []
    assert warm[1] == cold[1] == uncached == [("engine.py", "ZG001", 5), ("train.py", "ZG001", 7)]
    assert warm[0].stdout == cold[0].stdout and warm[0].exit_code == cold[0].exit_code == 1
    # Named alone, the helper's finding is reported at main.py's call, warm or cold.
    alone = check("pkg/main.py")[1]
    processed.clear()
    assert check("pkg/main.py")[1] == alone == [("pkg/main.py", "ZG001", 7)] and processed == []


def test_editing_an_imported_helper_invalidates_its_importer(project, processed):
    assert check("pkg/main.py")[1] == [("pkg/main.py", "ZG001", 7)]
    (project / "engine.py").write_text(FIXED_ENGINE)
    backdate(project / "engine.py", LATER)
    processed.clear()
    assert check("pkg/main.py")[1] == []
    assert processed == ["pkg/main.py"]


@pytest.mark.parametrize("index", ["kept", "deleted"])  # deleted: the content entries alone must notice
def test_a_new_module_where_an_import_resolves_invalidates_the_importer(project, processed, index):
    assert check("pkg/main.py")[1] == [("pkg/main.py", "ZG001", 7)]
    if index == "deleted":
        (project.parent / "cache" / "index.json").unlink()
    # `from engine import ...` in pkg/main.py now finds pkg/engine.py first, a clean helper.
    (project / "pkg" / "engine.py").write_text(FIXED_ENGINE)
    backdate(project / "pkg" / "engine.py")
    os.utime(project / "pkg", (LATER, LATER))
    processed.clear()
    assert check("pkg/main.py")[1] == []
    assert processed == ["pkg/main.py"]


def test_a_changed_configuration_is_a_miss(project, processed):
    assert check("train.py")[1] == [("train.py", "ZG001", 7)]
    processed.clear()
    assert check("--ignore", "ZG001", "train.py")[1] == [] and processed == ["train.py"]


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "valid JSON of another shape", "empty"])
def test_a_corrupt_index_is_ignored_and_rebuilt(project, processed, damage):
    cold = check(".")
    index = project.parent / "cache" / "index.json"
    blob = index.read_bytes()
    if damage == "random bytes":
        index.write_bytes(os.urandom(2048))
    elif damage == "truncated":
        index.write_bytes(blob[: len(blob) // 2])
    elif damage == "empty":
        index.write_bytes(b"")
    else:  # right checksum, wrong shape
        import hashlib
        payload = json.dumps({"format": cache.INDEX_FORMAT, "tool": json.loads(blob.split(b"\n", 1)[1])["tool"],
                              "versions": [["x", "y"]], "entries": [[1, 2]]}).encode()
        index.write_bytes(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    processed.clear()
    again = check(".")
    assert again[1] == cold[1] and again[0].exit_code == cold[0].exit_code
    assert "Traceback" not in again[0].output
    processed.clear()
    assert check(".")[1] == cold[1] and processed == []  # rebuilt


def test_a_warm_run_imports_no_parser(project):
    command = [sys.executable, "-X", "importtime", "-m", "zgcheck", "check", "--jobs", "1", "."]
    subprocess.run(command, capture_output=True, timeout=120)  # cold, by the same zgcheck
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "zgcheck.cli" in imported
    assert not {name for name in imported if name.split(".")[0] in ("libcst", "pygls", "lsprotocol")
                or name.startswith("zgcheck.analysis")}


def test_a_file_named_another_way_is_reported_as_named(project, processed):
    assert check("train.py")[1] == [("train.py", "ZG001", 7)]
    os.chdir(project / "pkg")
    assert check("../train.py")[1] == [("../train.py", "ZG001", 7)]
    assert check(str(project / "train.py"))[1] == [(str(project / "train.py").replace(os.sep, "/"), "ZG001", 7)]


def test_the_second_run_is_warm_though_the_first_put_its_cache_in_the_project(project, processed, monkeypatch):
    monkeypatch.delenv("ZGCHECK_CACHE_DIR")  # .zgcheck_cache at the root: the root changes now
    cold = check(".")
    assert (project / ".zgcheck_cache" / "index.json").is_file()
    processed.clear()
    assert check(".")[1] == cold[1] and processed == []


def test_a_directory_changed_too_recently_to_trust_counts_by_its_lookups(project, processed):
    # pkg's timestamp is too recent for the index: were it trusted, a module created within
    # the same tick would go unseen. Here the tick is forced: pkg keeps that very timestamp.
    now = time.time_ns()
    os.utime(project / "pkg", ns=(now, now))
    assert check("pkg/main.py")[1] == [("pkg/main.py", "ZG001", 7)]
    (project / "pkg" / "engine.py").write_text(FIXED_ENGINE)
    backdate(project / "pkg" / "engine.py")
    os.utime(project / "pkg", ns=(now, now))
    processed.clear()
    assert check("pkg/main.py")[1] == [] and processed == ["pkg/main.py"]


def test_a_file_imports_cannot_find_leaves_the_directory_warm(project, processed):
    cold = check(".")
    (project / "pkg" / "notes.txt").write_text("a log\n")
    (project / ".coverage").write_text("")
    for directory in (project, project / "pkg"):  # their stat changed; no module came or went
        os.utime(directory, (LATER, LATER))
    processed.clear()
    assert check(".")[1] == cold[1] and processed == []


def test_a_helper_of_a_helper_invalidates_a_file_the_gate_left_out(project, processed):
    # a.py and z.py call f from b.py, which steps and calls g from c.py: only when g reaches
    # a backward call do they pass the gate, so their verdicts rest on c.py too (z.py's
    # gate reuses what a.py's found).
    for name in ("a.py", "z.py"):
        (project / name).write_text("from b import f\n\nfor batch in range(3):\n    f(batch)\n")
    (project / "b.py").write_text("from c import g\n\n\ndef f(m):\n    g(m)\n    m.opt.step()\n")
    (project / "c.py").write_text("def g(m):\n    pass\n")
    backdate(project)
    check("a.py", "z.py")
    processed.clear()
    check("a.py", "z.py")
    assert processed == []
    (project / "c.py").write_text("def g(m):\n    m.loss.backward()\n")
    backdate(project / "c.py", LATER)
    check("a.py", "z.py")
    assert processed == ["a.py", "z.py"]


def test_a_new_module_no_import_looked_for_leaves_its_directory_warm(project, processed):
    cold = check(".")
    for new in (project / "extra.py", project / "pkg" / "helpers.py"):
        new.write_text("print('no training here')\n")
        os.utime(new, (BEFORE, BEFORE))
    for directory in (project, project / "pkg"):  # both changed; nothing looked for there appeared
        os.utime(directory, (LATER, LATER))
    processed.clear()
    assert check(".")[1] == cold[1] and sorted(processed) == ["extra.py", "pkg/helpers.py"]
    # The directories' new stats were stored: the next run need not look in them again.
    versions = json.loads((project.parent / "cache" / "index.json").read_bytes().split(b"\n", 1)[1])["versions"]
    for directory in (project, project / "pkg"):
        assert {v[1] for v in versions if v[0] == str(directory)} == {os.stat(directory).st_mtime_ns}
    processed.clear()
    assert check(".")[1] == cold[1] and processed == []


def test_a_helper_renamed_away_invalidates_its_importer(project, processed):
    assert check("pkg/main.py")[1] == [("pkg/main.py", "ZG001", 7)]
    (project / "engine.py").rename(project / "old_engine.py")
    os.utime(project, (LATER, LATER))
    processed.clear()
    assert check("pkg/main.py")[1] == [] and processed == ["pkg/main.py"]


def test_a_module_created_in_a_new_package_invalidates_its_importer(project, processed):
    # sub/ does not exist: import resolution looked for sub/engine.py in the project root.
    touched(project / "a.py", MAIN.replace("from engine", "from sub.engine"))
    os.utime(project, (BEFORE, BEFORE))
    assert check("a.py")[1] == []
    (project / "sub").mkdir()
    os.utime(project / "sub", (BEFORE, BEFORE))
    os.utime(project, (LATER, LATER))
    assert check("a.py")[1] == []
    # Only sub's stat changes now: the root's, stored as it is after the last run, does not.
    touched(project / "sub" / "engine.py", ENGINE)
    os.utime(project / "sub", (LATER, LATER))
    assert check("a.py")[1] == [("a.py", "ZG001", 7)]


def indexed(project):
    """The paths the stat index holds an entry for."""
    data = json.loads((project.parent / "cache" / "index.json").read_bytes().split(b"\n", 1)[1])
    return sorted(path for _, _, entries in data["groups"] for path, _, _ in entries)


def touched(path, text):
    path.write_text(text)
    os.utime(path, (BEFORE, BEFORE))  # old enough for the index to record it


def test_the_index_forgets_files_that_are_gone(project, processed):
    check(".")
    everything = indexed(project)
    for n in range(3):  # a file created, renamed, deleted: each run adds one entry, none piles up
        touched(project / f"draft{n}.py", BUGGY)
        check(".")
        assert indexed(project) == sorted(everything + [f"draft{n}.py"])
        (project / f"draft{n}.py").rename(project / "pkg" / f"draft{n}.py")
        check(".")
        assert indexed(project) == sorted(everything + [f"pkg/draft{n}.py"])
        (project / "pkg" / f"draft{n}.py").unlink()
    touched(project / "notes.py", "print('still no training')\n")
    check(".")
    assert indexed(project) == everything
    # A run on part of the tree keeps the entries of the rest, but not of a file that is gone.
    (project / "train.py").unlink()
    touched(project / "pkg" / "main.py", MAIN + "\n")
    check("pkg")
    assert indexed(project) == [p for p in everything if p != "train.py"]


def fix(*args):
    result = invoke(["check", "--fix", "--jobs", "1", *args])
    assert result.exit_code in (0, 1), result.output
    return result


def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.py"))}


def test_fix_reads_only_files_with_findings_and_a_check_after_it_is_warm(project, processed, tmp_path):
    import shutil

    touched(project / "broken.py", "loss.backward(\n")  # a finding with no fix: reported, not re-read
    shutil.copytree(project, tmp_path / "copy")
    uncached = invoke(["check", "--fix", "--no-cache", "--jobs", "1", str(tmp_path / "copy")])
    check(".")
    processed.clear()
    fixed = fix(".")
    # pkg/main.py's one finding is engine.py's, fixed there: it goes through the fix path too.
    assert sorted(processed) == ["engine.py", "pkg/main.py", "train.py"]
    assert tree(project) == tree(tmp_path / "copy") != {}
    assert fixed.exit_code == uncached.exit_code
    for name in ("engine.py", "train.py"):  # time passes: the rewritten files' stats can be trusted
        os.utime(project / name, (LATER, LATER))
    uncached_check = check("--no-cache", ".")[1]
    processed.clear()
    after = check(".")
    assert after[1] == uncached_check
    assert sorted(processed) == ["engine.py", "pkg/main.py", "train.py"]  # rewritten, or importing one
    processed.clear()
    assert check(".")[1] == after[1] and processed == []
    assert fix(".").exit_code == after[0].exit_code and processed == []


def test_diff_reads_only_files_with_findings_and_writes_nothing(project, processed):
    touched(project / "broken.py", "loss.backward(\n")  # findings with no fix: reported, not re-read
    touched(project / "broken.ipynb", json.dumps({"cells": [{"cell_type": "code", "source": ["loss.backward(\n"],
                                                             "metadata": {}, "outputs": [], "execution_count": None}],
                                                  "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    uncached = invoke(["check", "--diff", "--no-cache", "--jobs", "1", "."])
    before = tree(project)
    processed.clear()
    assert invoke(["check", "--diff", "--jobs", "1", "."]).stdout == uncached.stdout != ""
    processed.clear()
    diff = invoke(["check", "--diff", "--jobs", "1", "."])
    assert diff.stdout == uncached.stdout and diff.exit_code == uncached.exit_code == 1
    assert diff.stderr == uncached.stderr and "broken.ipynb:cell 1" in diff.stderr  # the report
    # Only the files with a fix: --diff writes nothing, so pkg/main.py's finding stays engine.py's.
    assert sorted(processed) == ["engine.py", "train.py"] and tree(project) == before
    processed.clear()
    check(".")
    assert processed == []  # --diff recorded the verdicts a check reports
