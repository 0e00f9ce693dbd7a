"""Jupyter notebooks: cells analysed together, magics masked, positions per cell, JSON kept on write-back."""

from __future__ import annotations

import json

import pytest

from zgcheck.notebook import NotebookError, apply_fixed_source, virtual_source

from cli_support import notebook, run

PRELUDE = "import torch\nmodel = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
LOOP = "for x in torch.randn(3, 4, 2):\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n"
FIXED_LOOP = LOOP + "    optimizer.zero_grad()\n"


def check(tmp_path, text, *args, name="train.ipynb"):
    (tmp_path / name).write_text(text)
    result = run("--output-format", "json", *args, str(tmp_path / name))
    return result, json.loads(result.stdout) if result.stdout.strip() else []


def where(data):
    return [(d["code"], d["cell"], d["location"]["row"], d["location"]["column"]) for d in data]


def test_a_loop_in_one_cell_sees_the_optimizer_of_another(tmp_path):
    result, data = check(tmp_path, notebook(("markdown", "# Training\nSome text."), PRELUDE, LOOP))
    assert result.exit_code == 1
    # Cell numbers count every cell (the markdown one too); lines are the cell's own.
    assert where(data) == [("ZG001", 3, 4, 5)]
    assert data[0]["related"][0]["cell"] == 3 and data[0]["related"][0]["location"]["row"] == 3
    assert "(line 3)" in data[0]["message"]


def test_clean_notebook(tmp_path):
    result, data = check(tmp_path, notebook(PRELUDE, FIXED_LOOP))
    assert result.exit_code == 0 and data == []


def test_text_output_names_the_cell(tmp_path):
    (tmp_path / "nb.ipynb").write_text(notebook(PRELUDE, LOOP))
    result = run(str(tmp_path / "nb.ipynb"))
    assert f"{tmp_path / 'nb.ipynb'}:cell 2:4:5: ZG001" in result.output
    assert "4 |     optimizer.step()" in result.output


MAGICS = [
    "%matplotlib inline",
    "%load_ext autoreload",
    "!pip install torch",
    "!pip install torch \\\n    torchvision",
    "files = !ls",
    "t = %timeit -o sum(range(3))",
    "?torch.optim",
    "torch.optim.SGD?",
    "model??",
]


@pytest.mark.parametrize("magic", MAGICS)
def test_ipython_magics_are_masked_and_lines_keep_their_numbers(tmp_path, magic):
    lines = magic.count("\n") + 1
    result, data = check(tmp_path, notebook(magic + "\n" + PRELUDE, magic + "\n" + LOOP))
    assert where(data) == [("ZG001", 2, 4 + lines, 5)], result.output


def test_magic_inside_a_block_keeps_the_block_valid(tmp_path):
    loop = LOOP.replace("    loss.backward()\n", "    loss.backward()\n    %time pass\n")
    result, data = check(tmp_path, notebook(PRELUDE, loop))
    assert where(data) == [("ZG001", 2, 5, 5)]


def test_cell_magics(tmp_path):
    shell = "%%bash\nfor x in 1 2; do\n  echo $x\ndone\n"
    timed = "%%time\n" + LOOP
    result, data = check(tmp_path, notebook(PRELUDE, shell, timed))
    assert where(data) == [("ZG001", 3, 5, 5)]
    # A non-Python cell magic hides the whole cell, Python or not.
    result, data = check(tmp_path, notebook(PRELUDE, "%%writefile train.py\n" + LOOP))
    assert data == []


def test_magic_like_lines_inside_strings_are_left_alone():
    text = notebook(PRELUDE + 'doc = """\n!not a shell line\n%not a magic\n"""\n')
    source, _ = virtual_source(text)
    assert "!not a shell line\n%not a magic\n" in source


def test_suppression_comments_in_cells(tmp_path):
    result, data = check(tmp_path, notebook(PRELUDE, LOOP.replace("step()\n", "step()  # noqa: ZG001\n")))
    assert data == [] and result.exit_code == 0
    result, data = check(tmp_path, notebook("# zgcheck: skip-file", PRELUDE, LOOP))
    assert data == []


@pytest.mark.parametrize("text,row", [
    ("{ not json: loss.backward()", 1),
    ('{\n "cells": [\n  {"cell_type": "code", "source": "loss.backward()"},,\n ]\n}', 3),
])
def test_invalid_json_is_one_zg904_with_a_position(tmp_path, text, row):
    result, data = check(tmp_path, text)
    assert result.exit_code == 1 and where(data)[0][:1] == ("ZG904",)
    assert data[0]["location"]["row"] == row and data[0]["name"] == "invalid-notebook"
    assert "Traceback" not in result.output


@pytest.mark.parametrize("data", [
    {"worksheets": [], "x": "loss.backward()"},
    {"cells": {"x": "loss.backward()"}},
    {"cells": [{"cell_type": "code", "source": 3, "x": "loss.backward()"}]},
    ["loss.backward()"],
])
def test_notebook_without_cells_is_a_zg904(tmp_path, data):
    result, found = check(tmp_path, json.dumps(data))
    assert [d["code"] for d in found] == ["ZG904"]


def test_syntax_error_in_a_cell_is_reported_in_that_cell(tmp_path):
    result, data = check(tmp_path, notebook(PRELUDE, "loss.backward()\ndef f(:\n    pass\n"))
    assert where(data) == [("ZG901", 2, 2, 7)]


def test_a_cell_that_does_not_parse_hides_only_itself(tmp_path):
    # An exercise placeholder between the setup and the loop: ZG901 for that cell, the rest analysed.
    exercise = "# YOUR CODE HERE\nloss = ???\n"
    result, data = check(tmp_path, notebook(PRELUDE, exercise, LOOP))
    assert where(data) == [("ZG901", 2, 2, 8), ("ZG001", 3, 4, 5)]
    result, data = check(tmp_path, notebook(PRELUDE, exercise, LOOP), "--fix")
    text = (tmp_path / "train.ipynb").read_text()
    assert "loss = ???" in text and "optimizer.zero_grad()" in text


def test_fixing_a_notebook_still_reports_its_broken_cell(tmp_path):
    # The loop is fixed; the cell that does not parse stays a ZG901, so the run fails and
    # says where, as a check without --fix does.
    exercise = "# YOUR CODE HERE\nloss = ???\n"
    result, data = check(tmp_path, notebook(PRELUDE, exercise, LOOP), "--fix")
    assert result.exit_code == 1, result.output
    assert where(data) == [("ZG901", 2, 2, 8)]
    assert "optimizer.zero_grad()" in (tmp_path / "train.ipynb").read_text()
    result, data = check(tmp_path, notebook(PRELUDE, exercise, FIXED_LOOP), "--fix")  # nothing to fix
    assert result.exit_code == 1 and where(data) == [("ZG901", 2, 2, 8)]
    # --diff prints the patch and reports on stderr: the broken cell is in that report.
    (tmp_path / "train.ipynb").write_text(notebook(PRELUDE, exercise, LOOP))
    diff = run("--diff", str(tmp_path / "train.ipynb"))
    assert diff.exit_code == 1 and "optimizer.zero_grad()" in diff.stdout
    assert "ZG901" in diff.stderr


def test_byte_gate_applies_to_the_raw_notebook(tmp_path):
    result, data = check(tmp_path, "{ not json, and no mention of the b-word")
    assert data == [] and result.exit_code == 0


def test_non_python_notebook_is_skipped(tmp_path):
    text = notebook(PRELUDE, LOOP).replace('"language": "python"', '"language": "R"')
    result, data = check(tmp_path, text)
    assert data == []


def test_stdin_notebook(tmp_path):
    result = run("-", "--stdin-filename", "nb.ipynb", input=notebook(PRELUDE, LOOP))
    assert result.exit_code == 1 and "nb.ipynb:cell 2:4:5: ZG001" in result.output


def test_fix_positions_are_cell_relative(tmp_path):
    result, data = check(tmp_path, notebook(PRELUDE, LOOP, "print('done')\n"))
    edit = data[0]["fix"]["edits"][0]
    assert edit["location"]["row"] == 5 and edit["content"] == "    optimizer.zero_grad()\n"


# --- virtual_source / apply_fixed_source ---------------------------------------

LAYOUTS = {
    "nbformat": notebook(("markdown", "# Title é"), "%matplotlib inline\n" + PRELUDE, LOOP, "print('ünïcode')\n"),
    "indent 2": notebook(PRELUDE, LOOP, indent=2),
    "ascii escapes": json.dumps(json.loads(notebook(PRELUDE + "# é\n", LOOP)), indent=1) + "\n",
    "no trailing newline": notebook(PRELUDE, LOOP).rstrip("\n"),
    "string sources": json.dumps({"cells": [
        {"cell_type": "code", "source": PRELUDE, "outputs": [], "metadata": {}},
        {"cell_type": "code", "source": LOOP, "outputs": [{"output_type": "stream", "text": ["x\n"]}],
         "metadata": {}}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}),
    "crlf": notebook(PRELUDE, LOOP).replace("\n", "\r\n"),
    "key order": json.dumps({"nbformat": 4, "metadata": {}, "nbformat_minor": 5, "cells": [
        {"source": PRELUDE.splitlines(True), "metadata": {}, "cell_type": "code", "outputs": []},
        {"source": LOOP.splitlines(True), "outputs": [], "cell_type": "code", "metadata": {}}]}, indent=1),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_round_trip_without_changes_is_byte_identical(name):
    text = LAYOUTS[name]
    source, mapping = virtual_source(text)
    assert apply_fixed_source(text, source, mapping) == text


@pytest.mark.parametrize("name", LAYOUTS)
def test_fixed_source_rewrites_only_the_changed_cell(name):
    text = LAYOUTS[name]
    source, mapping = virtual_source(text)
    fixed = source.replace("    optimizer.step()\n", "    optimizer.step()\n    optimizer.zero_grad()\n")
    new = apply_fixed_source(text, fixed, mapping)
    before, after = json.loads(text), json.loads(new)
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert len(changed) == 1
    cell = after["cells"][changed[0]]
    joined = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    assert joined.rstrip("\n").endswith("    optimizer.step()\n    optimizer.zero_grad()")
    assert type(cell["source"]) is type(before["cells"][changed[0]]["source"])
    # Everything else is as it was; re-serialising the new object the way the file was written
    # reproduces the new file exactly (for files json.dump wrote).
    assert {k: v for k, v in after.items() if k != "cells"} == {k: v for k, v in before.items() if k != "cells"}
    if name in ("nbformat", "indent 2"):
        indent = 2 if name == "indent 2" else 1
        assert new == json.dumps(after, indent=indent, sort_keys=True, ensure_ascii=False) + "\n"
    if name == "ascii escapes":
        assert "\\u00e9" in new and "é" not in new
    if name == "no trailing newline":
        assert not new.endswith("\n")
    if name == "crlf":
        assert "\n" not in new.replace("\r\n", "")
    # And the result reads back to the fixed module.
    assert virtual_source(new)[0] == fixed


def test_fix_keeps_masked_magics_and_the_cell_without_a_final_newline():
    text = LAYOUTS["nbformat"]
    source, mapping = virtual_source(text)
    fixed = source.replace("    optimizer.step()\n", "    optimizer.step()\n    optimizer.zero_grad()\n")
    after = json.loads(apply_fixed_source(text, fixed, mapping))
    assert after["cells"][1]["source"][0] == "%matplotlib inline\n"
    assert after["cells"][2]["source"][-1] == "    optimizer.zero_grad()"


def test_a_fix_that_touches_a_magic_line_is_refused():
    text = notebook("%matplotlib inline\n" + PRELUDE, LOOP)
    source, mapping = virtual_source(text)
    with pytest.raises(NotebookError):
        apply_fixed_source(text, source.replace("pass  # masked", "x = 1  # masked", 1), mapping)


def test_fix_and_diff_on_a_notebook(tmp_path):
    path = tmp_path / "nb.ipynb"
    original = notebook("%matplotlib inline\n" + PRELUDE, LOOP, ("markdown", "done"))
    path.write_text(original)
    diff = run("--diff", str(path))
    assert diff.exit_code == 1 and path.read_text() == original
    # The .ipynb is one unit of the patch (git apply takes it); the change is the cell's source.
    rel = path.as_posix().lstrip("/")
    assert f"--- a/{rel}\n+++ b/{rel}\n" in diff.stdout and '+    "    optimizer.zero_grad()"' in diff.stdout
    result = run("--fix", str(path))
    assert result.exit_code == 0, result.output
    after = json.loads(path.read_text())
    assert after["cells"][1]["source"][-1] == "    optimizer.zero_grad()"
    assert after["cells"][0]["source"][0] == "%matplotlib inline\n"
    assert run(str(path)).exit_code == 0
    assert run("--fix", str(path)).exit_code == 0 and json.loads(path.read_text()) == after  # idempotent
