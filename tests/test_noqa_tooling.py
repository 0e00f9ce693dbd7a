"""noqa tooling, through the CLI: `check --add-noqa`, and ZG100 (unused suppression) with its fix."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cli_support import BUGGY, CLEAN, codes, notebook, run

STEP = "    optimizer.step()\n"


def write(tmp_path, text, name="train.py"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def check(path, *args):
    return run("--output-format", "json", *args, str(path))


def with_comment(text, comment):
    return text.replace(STEP, f"    optimizer.step()  {comment}\n")


# --- ZG100: a suppression that suppresses nothing ----------------------------

@pytest.mark.parametrize("comment, fixed", [
    ("# noqa: ZG001", ""),
    ("# NOQA:ZG001", ""),
    ("# noqa: E501, ZG001", "  # noqa: E501"),
    ("# noqa: ZG001 E501", "  # noqa: E501"),
    ("# zgcheck: ignore[ZG001]", ""),
    ("# zgcheck: ignore", ""),  # bare, but zgcheck's own: judged, it suppresses nothing
    ("# type: ignore  # noqa: ZG001", "  # type: ignore"),
    ("# noqa: ZG001 because the loop is replayed", "  # because the loop is replayed"),
    ("# noqa: ZG042", ""),  # a code of ours that does not exist
    ("# noqa: ZG901", ""),  # tool diagnostics are never suppressed
])
def test_unused_suppression_is_reported_and_fixed(tmp_path, comment, fixed):
    path = write(tmp_path, with_comment(CLEAN, comment))
    result = check(path)
    assert codes(result) == [("ZG100", "train.py", 8)] and result.exit_code == 1
    [d] = json.loads(result.stdout)
    before = "    optimizer.step()  " + ("# type: ignore  " if "type" in comment else "")
    assert d["location"]["column"] == len(before) + 1
    assert d["fix"]["applicability"] == "safe"
    fixed_run = run("--fix", str(path))
    assert fixed_run.exit_code == 0, fixed_run.output
    assert path.read_text() == CLEAN.replace(STEP, f"    optimizer.step(){fixed}\n")
    assert codes(check(path)) == []


@pytest.mark.parametrize("comment", [
    "# noqa",  # every linter's: never judged
    "# noqa: E501",  # another tool's code
    "# noqa: ZG001, ZG100",  # kept on purpose
    "# noqa: ZG1",
    "# noqa: ZG001  # noqa: ZG100",  # ZG100 suppressed on the line by another directive
    "# noqa: ZG001  # noqa",
])
def test_not_judged(tmp_path, comment):
    assert codes(check(write(tmp_path, with_comment(CLEAN, comment)))) == []


def test_a_used_code_is_kept_and_an_unused_one_beside_it_removed(tmp_path):
    path = write(tmp_path, with_comment(BUGGY, "# noqa: ZG002, ZG001"))
    assert codes(check(path)) == [("ZG100", "train.py", 7)]
    assert run("--fix", str(path)).exit_code == 0
    assert path.read_text() == with_comment(BUGGY, "# noqa: ZG001")
    # A used prefix counts as used.
    assert codes(check(write(tmp_path, with_comment(BUGGY, "# noqa: ZG0")))) == []


def test_selectable_and_ignorable(tmp_path):
    path = write(tmp_path, with_comment(CLEAN, "# noqa: ZG001"))
    assert codes(check(path, "--ignore", "ZG100")) == []
    assert codes(check(path, "--select", "ZG100")) == []  # ZG001 is off: its noqa is not judged
    assert codes(check(path, "--select", "ZG001,ZG100")) == [("ZG100", "train.py", 8)]
    assert codes(check(path, "--select", "ZG001")) == []
    (tmp_path / "pyproject.toml").write_text('[tool.zgcheck]\nper-file-ignores = {"train.py" = ["ZG100"]}\n')
    assert codes(run("--output-format", "json", str(tmp_path))) == []


def test_a_helper_outside_any_loop_is_not_judged(tmp_path):
    # Its finding would come from a caller's loop, in a file zgcheck may not be checking.
    helper = ("def train_step(model, optimizer, x):\n"
              "    model(x).sum().backward()\n"
              "    optimizer.step()  # noqa: ZG001\n")
    assert codes(check(write(tmp_path, helper, "steps.py"))) == []
    # The same directive in a loop of a function that back-propagates itself is judged.
    looped = ("def train(model, optimizer, data):\n"
              "    for x in data:\n"
              "        optimizer.zero_grad()\n"
              "        model(x).sum().backward()\n"
              "        optimizer.step()  # noqa: ZG001\n")
    assert codes(check(write(tmp_path, looped, "loop.py"))) == [("ZG100", "loop.py", 5)]


def test_fix_keeps_crlf_and_other_bytes(tmp_path):
    text = with_comment(CLEAN, "# noqa: ZG001").replace("\n", "\r\n")
    path = write(tmp_path, "\ufeff" + text)
    assert run("--fix", str(path)).exit_code == 0
    assert path.read_bytes() == ("\ufeff" + CLEAN.replace("\n", "\r\n")).encode("utf-8")


def test_unused_suppression_in_a_notebook_cell(tmp_path):
    setup, loop = CLEAN.split("for x")
    path = write(tmp_path, notebook(setup, with_comment("for x" + loop, "# noqa: ZG001")), "nb.ipynb")
    data = json.loads(check(path).stdout)
    assert [(d["code"], d["cell"], d["location"]["row"]) for d in data] == [("ZG100", 2, 5)]
    assert run("--fix", str(path)).exit_code == 0
    assert json.loads(path.read_text())["cells"][1]["source"][-1] == "    optimizer.step()"


# --- --add-noqa ---------------------------------------------------------------

def test_add_noqa(tmp_path):
    path = write(tmp_path, BUGGY)
    result = run("--add-noqa", str(path))
    assert result.exit_code == 0 and "Added 1 noqa directive." in result.output
    assert path.read_text() == with_comment(BUGGY, "# noqa: ZG001")
    assert codes(check(path)) == []
    again = run("--add-noqa", str(path))  # idempotent
    assert again.exit_code == 0 and "Added 0 noqa directives." in again.output
    assert path.read_text() == with_comment(BUGGY, "# noqa: ZG001")


def test_add_noqa_merges_into_an_existing_noqa(tmp_path):
    path = write(tmp_path, with_comment(BUGGY, "# noqa: E501"))
    assert run("--add-noqa", str(path)).exit_code == 0
    assert path.read_text() == with_comment(BUGGY, "# noqa: E501, ZG001")
    # Another comment stays, the directive goes after it.
    path = write(tmp_path, with_comment(BUGGY, "# the update"))
    assert run("--add-noqa", str(path)).exit_code == 0
    assert path.read_text() == with_comment(BUGGY, "# the update  # noqa: ZG001")


def test_add_noqa_keeps_every_other_byte(tmp_path):
    # BOM, CRLF, no final newline: only the comment is new.
    text = "\ufeff" + BUGGY.replace("\n", "\r\n").rstrip("\r\n")
    path = write(tmp_path, text)
    assert run("--add-noqa", str(path)).exit_code == 0
    assert path.read_bytes() == (text + "  # noqa: ZG001").encode("utf-8")


def test_add_noqa_on_a_statement_over_several_lines(tmp_path):
    text = BUGGY.replace(STEP, "    optimizer.step(\n        closure=None,\n    )\n")
    path = write(tmp_path, text)
    assert run("--add-noqa", str(path)).exit_code == 0
    assert path.read_text() == text.replace("    )\n", "    )  # noqa: ZG001\n")
    assert codes(check(path)) == []


def test_add_noqa_in_a_notebook_cell(tmp_path):
    setup, loop = BUGGY.split("for x")
    path = write(tmp_path, notebook(setup, "for x" + loop), "nb.ipynb")
    result = run("--add-noqa", str(path))
    assert result.exit_code == 0 and "Added 1 noqa directive." in result.output
    cells = json.loads(path.read_text())["cells"]
    assert cells[1]["source"][-1] == "    optimizer.step()  # noqa: ZG001"
    assert "".join(cells[0]["source"]) == setup.rstrip("\n")
    assert codes(check(path)) == []


def test_add_noqa_refuses_other_modes(tmp_path):
    path = write(tmp_path, BUGGY)
    for extra in (["--fix"], ["--diff"]):
        assert run("--add-noqa", *extra, str(path)).exit_code == 2
    assert run("--add-noqa", "-", input=BUGGY).exit_code == 2
    assert path.read_text() == BUGGY


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_add_noqa_on_a_read_only_file_is_a_zg905(tmp_path):
    path = write(tmp_path, BUGGY)
    path.chmod(stat.S_IRUSR)
    result = check(path, "--add-noqa")
    assert result.exit_code == 1 and {c for c, _, _ in codes(result)} == {"ZG001", "ZG905"}
    assert path.read_text() == BUGGY


def test_add_noqa_leaves_tool_diagnostics(tmp_path):
    path = write(tmp_path, "loss.backward()\ndef f(:\n    pass\n")
    result = check(path, "--add-noqa")
    assert result.exit_code == 1 and codes(result) == [("ZG901", "train.py", 2)]
    assert path.read_text() == "loss.backward()\ndef f(:\n    pass\n"


def test_a_directive_on_a_line_of_its_own_goes_with_its_line(tmp_path):
    text = CLEAN.replace(STEP, "    optimizer.step(\n        # noqa: ZG001\n    )\n")
    path = write(tmp_path, text)
    assert codes(check(path)) == [("ZG100", "train.py", 9)]
    assert run("--fix", str(path)).exit_code == 0
    assert path.read_text() == CLEAN.replace(STEP, "    optimizer.step(\n    )\n")
