"""Autofix through the CLI: what it writes, what it preserves, when it refuses."""

from __future__ import annotations

import os
import stat
import textwrap

import pytest


from cli_support import invoke
from zgcheck.writer import write_atomically

BUGGY = textwrap.dedent("""\
    import torch
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # café
    for x in torch.randn(3, 4, 2):
        loss = model(x).sum()
        loss.backward()
        optimizer.step()  # keep this comment
        print("done")
    """)
FIXED = BUGGY.replace("    optimizer.step()  # keep this comment\n",
                      "    optimizer.step()  # keep this comment\n    optimizer.zero_grad()\n")


def run(*args, input=None):
    return invoke(list(args), input=input)


def test_fix_inserts_zero_grad_after_the_step(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    result = run("check", "--fix", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_text() == FIXED
    assert "Fixed 1 diagnostic" in result.output


def test_second_fix_changes_nothing(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    run("check", "--fix", str(path))
    before = path.read_bytes()
    result = run("check", "--fix", str(path))
    assert result.exit_code == 0 and path.read_bytes() == before


def test_diff_prints_and_writes_nothing(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    result = run("check", "--diff", str(path))
    assert result.exit_code == 1
    assert "+    optimizer.zero_grad()" in result.stdout and result.stdout.startswith("---")
    assert path.read_text() == BUGGY


@pytest.mark.parametrize("name,transform,encoding", [
    ("crlf", lambda s: s.replace("\n", "\r\n"), "utf-8"),
    ("tabs", lambda s: s.replace("    ", "\t"), "utf-8"),
    ("bom", lambda s: s, "utf-8-sig"),
    ("latin1-cookie", lambda s: "# -*- coding: latin-1 -*-\n" + s, "latin-1"),
    ("no-final-newline", lambda s: s.rstrip("\n"), "utf-8"),
])
def test_every_other_byte_is_preserved(tmp_path, name, transform, encoding):
    path = tmp_path / f"{name}.py"
    source = transform(BUGGY)
    path.write_bytes(source.encode(encoding))
    result = run("check", "--fix", str(path))
    assert result.exit_code == 0, result.output
    expected = transform(FIXED)
    if name == "no-final-newline":
        expected = transform(FIXED) if not FIXED.endswith("\n") else FIXED.rstrip("\n")
    assert path.read_bytes() == expected.encode(encoding)


def test_fix_at_end_of_file_without_newline(tmp_path):
    path = tmp_path / "t.py"
    path.write_text("import torch\nm = torch.nn.Linear(1, 1)\nopt = torch.optim.SGD(m.parameters(), lr=1)\n"
                    "for i in range(2):\n    m(torch.ones(1)).sum().backward()\n    opt.step()")
    assert run("check", "--fix", str(path)).exit_code == 0
    assert path.read_text().endswith("    opt.step()\n    opt.zero_grad()")


def test_file_mode_is_kept(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    os.chmod(path, 0o750)
    run("check", "--fix", str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o750 and path.read_text() == FIXED


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write read-only files")
def test_read_only_file_is_reported_and_untouched(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    os.chmod(path, 0o444)
    result = run("check", "--fix", str(path))
    assert result.exit_code == 1 and "read-only" in result.output
    assert path.read_text() == BUGGY


def test_read_only_file_is_left_untouched_even_for_root(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    os.chmod(path, 0o444)
    assert "read-only" in write_atomically(str(path), BUGGY.encode(), b"x")
    assert path.read_text() == BUGGY


def test_file_changed_on_disk_is_left_untouched(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY + "# edited meanwhile\n")
    error = write_atomically(str(path), BUGGY.encode(), FIXED.encode())
    assert error and "changed on disk" in error
    assert path.read_text() == BUGGY + "# edited meanwhile\n"


def test_no_temporary_files_are_left_behind(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    run("check", "--fix", str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.py"]


def test_zero_grad_before_step_is_moved_after_it(tmp_path):
    path = tmp_path / "train.py"
    source = BUGGY.replace("    optimizer.step()  # keep this comment\n",
                           "    optimizer.zero_grad()  # too early\n    optimizer.step()\n")
    path.write_text(source)
    result = run("check", "--fix", str(path))
    assert result.exit_code == 0, result.output
    assert "    loss.backward()\n    optimizer.step()\n    optimizer.zero_grad()  # too early\n" in path.read_text()


def test_scaler_step_fix_goes_after_update(tmp_path):
    path = tmp_path / "amp.py"
    path.write_text(textwrap.dedent("""\
        import torch
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu")
        for x in torch.randn(3, 4, 2):
            scaler.scale(model(x).sum()).backward()
            scaler.step(optimizer)
            scaler.update()
        """))
    assert run("check", "--fix", str(path)).exit_code == 0
    assert "    scaler.update()\n    optimizer.zero_grad()\n" in path.read_text()


def test_one_line_suite_gets_a_semicolon_fix(tmp_path):
    path = tmp_path / "t.py"
    path.write_text("import torch\nm = torch.nn.Linear(1, 1)\nopt = torch.optim.SGD(m.parameters(), lr=1)\n"
                    "for i in range(2):\n    m(torch.ones(1)).sum().backward()\n    if i >= 0: opt.step()\n")
    assert run("check", "--fix", str(path)).exit_code == 0
    assert "    if i >= 0: opt.step(); opt.zero_grad()\n" in path.read_text()


def test_unsafe_fix_needs_the_flag(tmp_path):
    path = tmp_path / "helper.py"
    source = textwrap.dedent("""\
        import torch
        def train_step(model, opt, x):
            model(x).sum().backward()
            opt.step()
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in torch.randn(3, 4, 2):
            train_step(model, optimizer, x)
        """)
    path.write_text(source)
    result = run("check", "--fix", str(path))
    assert result.exit_code == 1 and path.read_text() == source
    assert "--unsafe-fixes" in result.output
    result = run("check", "--fix", "--unsafe-fixes", str(path))
    assert result.exit_code == 0 and "    opt.step()\n    opt.zero_grad()\n" in path.read_text()


def test_unparseable_file_is_reported_and_untouched(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("loss.backward()\ndef f(:\n")
    result = run("check", "--fix", str(path))
    assert result.exit_code == 1 and "ZG901" in result.output
    assert path.read_text() == "loss.backward()\ndef f(:\n"


def test_stdin_fix_writes_the_fixed_source_to_stdout():
    result = invoke(["check", "--fix", "-", "--stdin-filename", "t.py"], input=BUGGY)
    assert result.exit_code == 0
    assert result.stdout == FIXED


def test_json_output_carries_the_fix(tmp_path):
    import json
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    data = json.loads(run("check", "--output-format", "json", str(path)).stdout)
    fix = data[0]["fix"]
    assert fix["applicability"] == "safe"
    assert fix["edits"] == [{"content": "    optimizer.zero_grad()\n", "location": {"row": 8, "column": 1},
                             "end_location": {"row": 8, "column": 1}}]


def test_a_fix_that_does_not_remove_its_diagnostic_is_not_stacked():
    from zgcheck.fixes import fix_text
    from zgcheck.types import Applicability, Diagnostic, Edit, Fix, Span

    stuck = Diagnostic("ZG001", "missing-zero-grad", "m", "t.py", Span(1, 1, 1, 1),
                       fix=Fix("insert", Applicability.SAFE, (Edit(2, 1, 2, 1, "x = 1\n"),)))
    outcome = fix_text("a = 0\n", lambda text: [stuck], unsafe=True)
    assert outcome.text == "a = 0\n" and not outcome.fixed and outcome.remaining == [stuck]
    assert outcome.conflicts == [stuck]


def test_deleted_working_directory_is_one_line_not_a_traceback(tmp_path):
    import subprocess
    import sys

    gone = tmp_path / "gone"
    gone.mkdir()
    # zgcheck is imported before the directory goes, as the console script is: importing from
    # a deleted working directory fails inside CPython 3.13.0 itself (SystemError in `os`).
    code = ("import os, sys; from zgcheck.cli import run; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "sys.argv = ['zgcheck', 'check', '--no-cache', '.']; run()")
    proc = subprocess.run([sys.executable, "-c", code, str(gone)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("zgcheck: internal error") or "no such file" in proc.stderr.lower()


def test_line_separators_python_does_not_count_do_not_shift_the_fix(tmp_path):
    # str.splitlines() also splits on \f, \x1c and \u2028; CPython and libcst do not.
    path = tmp_path / "t.py"
    path.write_text("import torch\n# note\u2028more\fstill the same line\n"
                    "m = torch.nn.Linear(1, 1)\nopt = torch.optim.SGD(m.parameters(), lr=1)\n"
                    "for i in range(2):\n    m(torch.ones(1)).sum().backward()\n    opt.step()\n", encoding="utf-8")
    assert run("check", "--fix", str(path)).exit_code == 0
    assert path.read_text(encoding="utf-8").endswith("    opt.step()\n    opt.zero_grad()\n")
