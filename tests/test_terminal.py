"""What a person sees on a terminal: colour only on a TTY and never with NO_COLOR, a progress bar."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cli_support import BUGGY, CLEAN, run

ESC = "\x1b["

pty = pytest.importorskip("pty", reason="needs a POSIX pseudo-terminal")


def on_a_terminal(args, env_extra=None, stdout_tty=True, stderr_tty=True, cwd=None):
    """Run zgcheck with stdout/stderr on a pseudo-terminal (or a pipe); return (code, tty text, pipe text)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(env_extra or {})
    env.setdefault("COLUMNS", "100")
    proc = subprocess.Popen([sys.executable, "-m", "zgcheck", "check", "--no-cache", *args],
                            stdout=slave if stdout_tty else subprocess.PIPE,
                            stderr=slave if stderr_tty else subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    piped = proc.stdout.read() if not stdout_tty else proc.stderr.read() if not stderr_tty else b""
    code = proc.wait(timeout=60)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace"), piped.decode("utf-8", "replace")


@pytest.fixture
def buggy(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    return tmp_path / "train.py"


def test_colour_on_a_terminal(buggy):
    code, tty, _ = on_a_terminal([str(buggy)])
    assert code == 1
    assert ESC in tty and "ZG001" in tty
    assert "optimizer.step()" in tty and "^^^^" in tty
    assert "note" in tty and "Found 1 diagnostic" in tty


def test_no_colour_with_NO_COLOR(buggy):
    code, tty, _ = on_a_terminal([str(buggy)], {"NO_COLOR": "1"})
    assert code == 1 and "ZG001" in tty and ESC not in tty


def test_no_colour_when_stdout_is_not_a_terminal(buggy):
    code, tty, piped = on_a_terminal([str(buggy)], stdout_tty=False)
    assert code == 1 and "ZG001" in piped and ESC not in piped
    result = run(str(buggy))  # CliRunner: not a terminal either
    assert "ZG001" in result.output and ESC not in result.output


def test_text_report_has_line_caret_related_and_summary(buggy):
    result = run(str(buggy))
    out = result.output
    assert "7 |     optimizer.step()" in out and "  |     ^^^^^^^^^^^^^^^^" in out
    assert f"note: backward: `loss.backward()` at {buggy}:6:5" in out
    assert "help: Insert `optimizer.zero_grad()` after `optimizer.step()`" in out
    assert "Found 1 diagnostic (1 fixable with --fix) in 1 file checked." in out


def test_progress_bar_on_a_terminal_for_many_files(tmp_path):
    for i in range(60):
        (tmp_path / f"t{i:02}.py").write_text(CLEAN)
    code, tty, _ = on_a_terminal([str(tmp_path), "--jobs", "1"], stdout_tty=False)
    assert code == 0
    assert "Checking" in tty and "60/60" in tty and "All checks passed (60 files checked)" in tty


def test_no_progress_bar_for_few_files_or_without_a_terminal(tmp_path):
    for i in range(60):
        (tmp_path / f"t{i:02}.py").write_text(CLEAN)
    code, _, piped = on_a_terminal([str(tmp_path), "--jobs", "1"], stderr_tty=False)
    assert code == 0 and "Checking" not in piped and "All checks passed" in piped
    few = tmp_path / "few"
    few.mkdir()
    (few / "t.py").write_text(CLEAN)
    code, tty, _ = on_a_terminal([str(few)], stdout_tty=False)
    assert code == 0 and "Checking" not in tty
