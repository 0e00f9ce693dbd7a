"""Issue 14: one bad file, a FIFO, a symlink loop or a corrupt cache never sinks the run,
and no byte is changed that a fix did not change."""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zgcheck import runner
from zgcheck.checker import check_source
from zgcheck.cli import main
from zgcheck.types import Span

from cli_support import BUGGY, CLEAN, cli_runner, codes


def zgcheck(*args, cwd=None, input=None, timeout=None):
    """The command line: in a process of its own when a crash or a hang must show as what it is
    (a timeout is given), else in this one."""
    if timeout is not None:
        return subprocess.run([sys.executable, "-m", "zgcheck", "check", *args], cwd=cwd, input=input,
                              capture_output=True, timeout=timeout)
    here = os.getcwd()
    try:
        os.chdir(cwd or here)
        result = cli_runner().invoke(main, ["check", *args], input=input)
    finally:
        os.chdir(here)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout_bytes, result.stderr_bytes)


def json_codes(proc):
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return sorted((d["code"], Path(d["filename"]).name, d["location"]["row"], d["location"]["column"])
                  for d in json.loads(proc.stdout))


def twenty_buggy(directory: Path) -> None:
    for i in range(20):
        (directory / f"train_{i:02}.py").write_text(BUGGY)


# --- 1. one file must never sink the run ---------------------------------------

def test_deep_nesting_is_zg901_and_the_twenty_other_files_are_reported(tmp_path):
    twenty_buggy(tmp_path)
    (tmp_path / "deep.py").write_text("loss.backward()\nx = " + "(" * 2000 + "1" + ")" * 2000 + "\n")
    proc = zgcheck("--no-cache", "--jobs", "4", "--output-format", "json", str(tmp_path), timeout=120)
    found = json_codes(proc)
    assert proc.returncode == 1
    assert [c for c in found if c[0] == "ZG001"] == [("ZG001", f"train_{i:02}.py", 7, 5) for i in range(20)]
    assert [c[:3] for c in found if c[0] != "ZG001"] == [("ZG901", "deep.py", 2)]


def _dies_on_killer(original):
    def process(path, config, mode):
        if "killer" in path:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, config, mode)
    return process


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the fault is injected by forking")
def test_a_worker_that_dies_is_retried_file_by_file_and_the_killer_is_zg999(tmp_path, monkeypatch):
    twenty_buggy(tmp_path)
    (tmp_path / "killer.py").write_text(BUGGY)
    monkeypatch.setattr(runner, "_process", _dies_on_killer(runner._process))
    result = CliRunner().invoke(main, ["check", "--no-cache", "--jobs", "3", "--output-format", "json",
                                       str(tmp_path)])
    assert result.exit_code == 1, result.output
    found = codes(result)
    assert [c for c in found if c[0] == "ZG001"] == [("ZG001", f"train_{i:02}.py", 7) for i in range(20)]
    assert [c for c in found if c[0] != "ZG001"] == [("ZG999", "killer.py", 1)]


# --- 2, 3. files that are not files ----------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_never_hangs_the_run(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    os.mkfifo(tmp_path / "pipe.py")
    walked = json_codes(zgcheck("--no-cache", "--output-format", "json", "--jobs", "1", str(tmp_path), timeout=60))
    named = json_codes(zgcheck("--no-cache", "--output-format", "json", str(tmp_path / "pipe.py"), timeout=60))
    assert walked == [("ZG001", "train.py", 7, 5), ("ZG903", "pipe.py", 1, 1)]
    assert named == [("ZG903", "pipe.py", 1, 1)]


def test_a_symlink_loop_is_zg903_and_the_run_goes_on(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "loop.py").symlink_to("loop.py")
    (tmp_path / "a.py").symlink_to("b.py")
    (tmp_path / "b.py").symlink_to("a.py")
    proc = zgcheck("--no-cache", "--output-format", "json", str(tmp_path))
    assert proc.returncode == 1
    assert json_codes(proc) == [("ZG001", "train.py", 7, 5), ("ZG903", "a.py", 1, 1), ("ZG903", "b.py", 1, 1),
                                ("ZG903", "loop.py", 1, 1)]
    named = zgcheck("--no-cache", "--output-format", "json", str(tmp_path / "loop.py"))
    assert json_codes(named) == [("ZG903", "loop.py", 1, 1)]


# --- 4. the cache is plain data, and a bad entry is a miss -------------------------

def _entries(root: Path):
    return sorted(p for p in (root / ".zgcheck_cache").rglob("*") if p.is_file() and len(p.name) == 64)


@pytest.mark.parametrize("damage", ["bit flip", "random bytes", "truncated", "another file's entry", "pickle"])
def test_a_damaged_cache_entry_is_discarded_with_one_line_and_the_file_rechecked(tmp_path, damage):
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "clean.py").write_text(CLEAN)
    args = ("--output-format", "json", "--jobs", "1", "train.py", "clean.py")
    expected = json_codes(zgcheck(*args, cwd=tmp_path))
    entries = _entries(tmp_path)
    assert len(entries) == 2
    for entry in entries:
        blob = entry.read_bytes()
        assert len(blob.split(b"\n", 1)[0]) == 64 and json.loads(blob.split(b"\n", 1)[1])  # checksum, JSON
    train = next(e for e in entries if b"ZG001" in e.read_bytes())
    clean = next(e for e in entries if e != train)
    if damage == "bit flip":
        blob = bytearray(train.read_bytes())
        blob[len(blob) // 2] ^= 0x04
        train.write_bytes(bytes(blob))
    elif damage == "random bytes":
        train.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        train.write_bytes(train.read_bytes()[:100])
    elif damage == "another file's entry":  # well-formed, right checksum, wrong answer
        train.write_bytes(clean.read_bytes())
    else:  # unpickling would run this
        train.write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    proc = zgcheck(*args, cwd=tmp_path)
    assert json_codes(proc) == expected and proc.returncode == 1
    notes = [line for line in proc.stderr.decode().splitlines() if "cache" in line]
    assert len(notes) == 1 and "discarded" in notes[0] and train.name in notes[0]
    assert not (tmp_path / "pwned").exists()
    again = zgcheck(*args, cwd=tmp_path)  # the entry was rewritten: served quietly
    assert json_codes(again) == expected and b"discarded" not in again.stderr


def test_entries_of_another_python_are_not_read(tmp_path, monkeypatch):
    # A `match` statement is ZG001 on 3.10 and ZG901 on 3.9: one cache, several interpreters.
    (tmp_path / "train.py").write_text(BUGGY)
    args = ("--output-format", "json", "--jobs", "1", "train.py")
    expected = json_codes(zgcheck(*args, cwd=tmp_path))
    assert len(_entries(tmp_path)) == 1
    monkeypatch.setattr(runner, "INTERPRETER", "cpython-3.99.0")
    monkeypatch.setattr(runner, "_TOOL", [])
    assert json_codes(zgcheck(*args, cwd=tmp_path)) == expected
    assert len(_entries(tmp_path)) == 2  # its own entry, beside the other interpreter's


# --- 5. stdin: the bytes that came in -----------------------------------------------

LATIN1 = ("# -*- coding: latin-1 -*-\n# caf\xe9 cr\xe8me\n" + BUGGY).encode("latin-1")


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf" + CLEAN.encode(),
    b"\xef\xbb\xbf" + CLEAN.replace("\n", "\r\n").encode(),
    ("# -*- coding: latin-1 -*-\n# caf\xe9\n" + CLEAN).encode("latin-1"),
    b"loss.backward()\n# \xff\xfe not UTF-8\n",
    b"x = (\n",
], ids=["bom", "bom-crlf", "latin-1", "undecodable", "syntax-error"])
def test_stdin_fix_with_nothing_to_fix_returns_the_input_bytes(data):
    proc = zgcheck("--no-cache", "--fix", "-", "--stdin-filename", "t.py", input=data)
    assert proc.stdout == data and b"Traceback" not in proc.stderr


@pytest.mark.parametrize("data, encoding", [
    (b"\xef\xbb\xbf" + BUGGY.encode(), "utf-8-sig"),
    (b"\xef\xbb\xbf" + BUGGY.replace("\n", "\r\n").encode(), "utf-8-sig"),
    (LATIN1, "latin-1"),
], ids=["bom", "bom-crlf", "latin-1"])
def test_stdin_fix_encodes_as_the_input_was(data, encoding):
    proc = zgcheck("--no-cache", "--fix", "-", "--stdin-filename", "t.py", input=data)
    assert proc.returncode == 0
    fixed = proc.stdout.decode(encoding)
    assert "optimizer.zero_grad()" in fixed and proc.stdout.startswith(data[:3])
    newline = "\r\n" if b"\r\n" in data else "\n"
    assert fixed.replace("    optimizer.zero_grad()" + newline, "", 1) == data.decode(encoding)


# --- 6, 8, 9, 10. what CPython accepts is analysed, what it refuses is ZG901 ---------------

def test_form_feeds_in_indentation_are_read_as_cpython_reads_them(tmp_path):
    source = BUGGY.replace("    loss = model", "\f    loss = model").replace("    optimizer.step()", "\f    optimizer.step()")
    source = source.replace("import torch\n", "import torch\n\f\n  \f\n")
    path = tmp_path / "t.py"
    path.write_bytes(source.encode())
    compile(source, "t.py", "exec")
    assert json_codes(zgcheck("--no-cache", "--output-format", "json", str(path))) == [("ZG001", "t.py", 9, 6)]
    assert zgcheck("--no-cache", "--fix", str(path)).returncode == 0
    fixed = path.read_bytes().decode()
    compile(fixed, "t.py", "exec")
    # Where the zero lands is the fix engine's business (its line splitting counts a form feed
    # as a line break); that it is one inserted line and every form feed stays is ours.
    assert fixed.count("\f") == source.count("\f") and fixed.count("\n") == source.count("\n") + 1
    assert "optimizer.zero_grad()" in fixed
    assert zgcheck("--no-cache", "--fix", str(path)).returncode == 0 and path.read_bytes().decode() == fixed


@pytest.mark.parametrize("table", [
    "table = " + " + ".join(["1"] * 2000),
    "table = (" + " ".join(['"a"'] * 5000) + ")",  # libcst cannot parse it; CPython can
    "table = a" + "[0]" * 2000,
    "table = " + "-" * 2000 + "x",
], ids=["2000-terms", "5000-adjacent-strings", "2000-subscripts", "2000-minus-signs"])
def test_deep_expressions_cpython_compiles_are_analysed(tmp_path, table):
    (tmp_path / "t.py").write_text(BUGGY + table + "\n")
    assert json_codes(zgcheck("--no-cache", "--output-format", "json", str(tmp_path / "t.py"))) == \
        [("ZG001", "t.py", 7, 5)]


def test_long_blank_and_comment_runs_cost_what_the_code_costs(tmp_path):
    # 400,000 quiet lines: about a minute before; the code is 8 lines
    filler = "\n" * 100_000 + "# a comment that goes on for a while\n" * 100_000
    source = filler + BUGGY.replace("    loss = model", "\n" * 1000 + "    loss = model") + filler
    (tmp_path / "t.py").write_text(source)
    proc = zgcheck("--no-cache", "--output-format", "json", str(tmp_path / "t.py"), timeout=30)
    assert json_codes(proc) == [("ZG001", "t.py", 201_007, 5)]


@pytest.mark.parametrize("source, position", [
    ("# a NUL \0 in a comment\n", (2, 9)),
    ("x = " + "(" * 500 + "1" + ")" * 500 + "\n", (2, 205)),
    ("x = " + " + ".join(["1"] * 20_000) + "\n", (1, 1)),
    ("def f():\n    return 1\nreturn 2\n", (4, 1)),
], ids=["nul", "500-parens", "20000-terms", "return-outside-function"])
def test_what_cpython_refuses_is_zg901_and_never_fixed(tmp_path, source, position):
    path = tmp_path / "t.py"
    data = b"loss.backward()\n" + source.encode()
    path.write_bytes(data)
    try:  # CPython 3.9 compiles 20,000 terms; later versions refuse them as nested too deeply
        compile(data, "t.py", "exec")
        refused = False
    except (SyntaxError, ValueError, RecursionError):
        refused = True
    proc = zgcheck("--no-cache", "--output-format", "json", str(path), timeout=120)
    assert json_codes(proc) == ([("ZG901", "t.py", *position)] if refused else [])
    if not refused:  # analysed as CPython reads it (and promptly: libcst never sees the table)
        return
    fixed = zgcheck("--no-cache", "--fix", str(path))
    assert fixed.returncode == 1 and path.read_bytes() == data


def test_spans_are_where_cpython_puts_the_calls():
    # CRLF line ends, a form feed in a statement's indentation, text wider in UTF-8 than in
    # characters before a call, a call over three lines: every span, the diagnostic's and its
    # related ones, is the one CPython's ast gives the call it names.
    source = ("import torch\r\n"
              "model = torch.nn.Linear(2, 1)\r\n"
              "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\r\n"
              "for x in torch.randn(3, 4, 2):\r\n"
              "    loss = model(x).sum()\r\n"
              "    é = 'ü'; loss.backward()\r\n"
              "\f    optimizer.step(\r\n"
              "        closure=None,\r\n"
              "    )\r\n")
    lines = source.split("\r\n")  # not splitlines(): that splits at the form feed too

    def column(line: int, offset: int) -> int:  # ast's UTF-8 offset -> 1-based character column
        return len(lines[line - 1].encode()[:offset].decode()) + 1

    calls = {ast.unparse(node.func): Span(node.lineno, column(node.lineno, node.col_offset), node.end_lineno,
                                          column(node.end_lineno, node.end_col_offset))
             for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}
    found = check_source(source.encode(), "t.py")
    assert [(d.code, d.span) for d in found] == [("ZG001", calls["optimizer.step"])]
    assert {r.span for r in found[0].related} <= set(calls.values()) and found[0].related
