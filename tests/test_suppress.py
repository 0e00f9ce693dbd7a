"""Suppression comments, through the CLI."""

from __future__ import annotations

import pytest

from cli_support import BUGGY, codes, run

STEP = "    optimizer.step()\n"


def check(tmp_path, text, *args):
    (tmp_path / "train.py").write_text(text)
    return run("--output-format", "json", *args, str(tmp_path / "train.py"))


@pytest.mark.parametrize("comment", [
    "# noqa",
    "# noqa: ZG001",
    "# NOQA:ZG001",
    "# noqa: ZG002, ZG001",
    "# noqa: ZG002 ZG001",
    "# noqa: ZG0",
    "# type: ignore  # noqa: ZG001",
    "# zgcheck: ignore[ZG001]",
    "# zgcheck: ignore[ZG002, ZG001]",
    "# zgcheck: ignore",
    "# ZGCHECK: IGNORE[zg001]",
])
def test_comment_on_the_reported_line_suppresses(tmp_path, comment):
    # ZG002 in a list suppresses nothing here (ZG100, tested in test_noqa_tooling.py).
    result = check(tmp_path, BUGGY.replace(STEP, f"    optimizer.step()  {comment}\n"), "--ignore", "ZG100")
    assert codes(result) == [] and result.exit_code == 0


@pytest.mark.parametrize("comment", [
    "# noqa: ZG002",
    "# zgcheck: ignore[ZG002]",
    "# noqa: E501",
    "# a note about noqa",  # not a directive: 'noqa' is not after '#'
])
def test_comment_for_other_codes_does_not_suppress(tmp_path, comment):
    result = check(tmp_path, BUGGY.replace(STEP, f"    optimizer.step()  {comment}\n"), "--ignore", "ZG100")
    assert codes(result) == [("ZG001", "train.py", 7)] and result.exit_code == 1


def test_noqa_inside_a_string_does_not_count(tmp_path):
    text = BUGGY.replace(STEP, '    optimizer.step(); note = "# noqa"\n')
    assert codes(check(tmp_path, text)) == [("ZG001", "train.py", 7)]


def test_noqa_on_another_line_does_not_count(tmp_path):
    text = BUGGY.replace("    loss.backward()\n", "    loss.backward()  # noqa\n")
    assert codes(check(tmp_path, text)) == [("ZG001", "train.py", 7)]


def test_multi_line_call_accepts_noqa_on_its_last_line(tmp_path):
    text = BUGGY.replace(STEP, "    optimizer.step(\n    )  # noqa: ZG001\n")
    assert codes(check(tmp_path, text)) == []
    # ...and on its first line.
    text = BUGGY.replace(STEP, "    optimizer.step(  # noqa: ZG001\n    )\n")
    assert codes(check(tmp_path, text)) == []


def test_skip_file(tmp_path):
    result = check(tmp_path, "# zgcheck: skip-file\n" + BUGGY)
    assert codes(result) == [] and result.exit_code == 0
    # Anywhere in the file, indented or after code.
    indented = BUGGY.replace(STEP, STEP + "    # zgcheck: skip-file\n")
    assert codes(check(tmp_path, indented)) == []
    trailing = BUGGY.replace("import torch\n", "import torch  # zgcheck: skip-file (generated)\n")
    assert codes(check(tmp_path, trailing)) == []


def test_skip_file_in_a_string_does_not_count(tmp_path):
    text = 'DOC = "# zgcheck: skip-file"\n' + BUGGY
    assert codes(check(tmp_path, text)) == [("ZG001", "train.py", 8)]


def test_tool_diagnostics_ignore_noqa_but_honour_skip_file(tmp_path):
    broken = "loss.backward()\ndef f(:  # noqa\n    pass\n"
    assert codes(check(tmp_path, broken)) == [("ZG901", "train.py", 2)]
    assert codes(check(tmp_path, "# zgcheck: skip-file\n" + broken)) == []
    undecodable = b"# zgcheck: skip-file\n# backward\nx = '\xff'\n"
    (tmp_path / "latin.py").write_bytes(undecodable)
    assert codes(run("--output-format", "json", str(tmp_path / "latin.py"))) == []


def test_suppressed_diagnostics_do_not_count_in_the_summary(tmp_path):
    (tmp_path / "a.py").write_text(BUGGY.replace(STEP, "    optimizer.step()  # noqa\n"))
    (tmp_path / "b.py").write_text(BUGGY)
    result = run(str(tmp_path))
    assert result.exit_code == 1 and "Found 1 diagnostic " in result.output
    assert result.output.count("ZG001") == 1


def test_suppressed_diagnostics_are_not_fixed(tmp_path):
    text = BUGGY.replace(STEP, "    optimizer.step()  # noqa: ZG001\n")
    path = tmp_path / "train.py"
    path.write_text(text)
    result = run("--fix", str(path))
    assert result.exit_code == 0 and path.read_text() == text


def test_finding_in_an_imported_helper_obeys_the_helper_files_comments(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    helper = "def train_step(model, optimizer, x):\n    loss = model(x).sum()\n    loss.backward()\n" \
             "    optimizer.step()\n"
    (pkg / "engine.py").write_text(helper)
    # Line 4 of main.py carries a noqa: it must not silence line 4 of engine.py.
    (pkg / "main.py").write_text(
        "import torch\nfrom .engine import train_step\nmodel = torch.nn.Linear(2, 1)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # noqa\n"
        "for x in torch.randn(3, 4, 2):\n    train_step(model, optimizer, x)\n")
    assert codes(run("--output-format", "json", str(pkg))) == [("ZG001", "engine.py", 4)]
    (pkg / "engine.py").write_text(helper.replace("step()\n", "step()  # noqa: ZG001\n"))
    assert codes(run("--output-format", "json", str(pkg))) == []
    (pkg / "engine.py").write_text(helper)
    (tmp_path / "pyproject.toml").write_text('[tool.zgcheck]\nper-file-ignores = { "pkg/engine.py" = ["ZG001"] }\n')
    assert codes(run("--output-format", "json", str(pkg))) == []
