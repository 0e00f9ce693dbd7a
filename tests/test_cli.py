"""The command line, end to end: exit codes, formats, selection, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zgcheck.codes import UnusedNoqa
from zgcheck.rules import ALL_RULES

from cli_support import BUGGY, CLEAN, invoke

def run(*args, input=None):
    return invoke(list(args), input=input)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "buggy.py").write_text(BUGGY)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def test_exit_1_with_diagnostics_and_0_without(project):
    assert run("check", str(project / "buggy.py")).exit_code == 1
    assert run("check", str(project / "clean.py")).exit_code == 0


def test_text_output_shows_position_line_and_caret(project):
    result = run("check", str(project / "buggy.py"))
    assert f"{project / 'buggy.py'}:7:5: ZG001" in result.output
    assert "7 |     optimizer.step()" in result.output
    assert "^^^^^^^^^^^^^^^^" in result.output
    assert "line 6" in result.output  # names the related backward


def test_concise_is_one_line_per_diagnostic(project):
    result = run("check", "--output-format", "concise", "--quiet", str(project))
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{project / 'buggy.py'}:7:5: ZG001")


def test_json_output(project):
    result = run("check", "--output-format", "json", str(project))
    data = json.loads(result.stdout)
    assert [(d["code"], d["name"], d["location"]["row"]) for d in data] == [("ZG001", "missing-zero-grad", 7)]
    assert data[0]["related"][0]["location"]["row"] == 6


def test_github_output(project):
    result = run("check", "--output-format", "github", str(project))
    assert result.stdout.startswith(f"::error title=zgcheck (ZG001),file={project / 'buggy.py'},line=7,col=5,")


def test_select_ignore_and_exit_zero(project):
    assert run("check", "--select", "ZG002", str(project)).exit_code == 0
    assert run("check", "--ignore", "ZG001", str(project)).exit_code == 0
    assert run("check", "--select", "ZG", str(project)).exit_code == 1
    assert run("check", "--exit-zero", str(project)).exit_code == 0


def test_statistics(project):
    result = run("check", "--statistics", str(project))
    assert "1\tZG001" in result.stdout and "missing-zero-grad" in result.stdout


def test_output_file(project, tmp_path):
    out = tmp_path / "report.json"
    result = run("check", "--output-format", "json", "--output-file", str(out), str(project))
    assert result.exit_code == 1
    assert json.loads(out.read_text())[0]["code"] == "ZG001"


def test_stdin(project):
    result = run("check", "-", "--stdin-filename", "train.py", input=BUGGY)
    assert result.exit_code == 1 and "train.py:7:5: ZG001" in result.output


def test_missing_path_is_a_usage_error(tmp_path):
    result = run("check", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "no such file or directory" in result.output
    assert "Traceback" not in result.output


def test_syntax_error_is_a_diagnostic_and_the_run_goes_on(project):
    (project / "broken.py").write_text("loss.backward()\ndef f(:\n    pass\n")
    result = run("check", "--output-format", "json", str(project))
    codes = sorted((d["code"], d["filename"].rsplit("/", 1)[-1], d["location"]["row"]) for d in json.loads(result.stdout))
    assert codes == [("ZG001", "buggy.py", 7), ("ZG901", "broken.py", 2)]


def test_undecodable_file_is_a_diagnostic(project):
    (project / "latin.py").write_bytes(b"loss.backward()\nx = '\xff\xfe'\n")
    result = run("check", "--output-format", "json", str(project / "latin.py"))
    data = json.loads(result.stdout)
    assert [(d["code"], d["location"]["row"]) for d in data] == [("ZG902", 2)]
    assert "Traceback" not in result.output


def test_files_without_backward_are_not_parsed(tmp_path):
    # Broken syntax but no backward: the byte gate skips it, so no ZG901.
    (tmp_path / "data.py").write_text("def f(:\n")
    assert run("check", str(tmp_path)).exit_code == 0


def test_default_excludes_and_gitignore(project):
    for skipped in (".venv", "build", "__pycache__", "ignored"):
        (project / skipped).mkdir()
        (project / skipped / "t.py").write_text(BUGGY)
    (project / ".gitignore").write_text("ignored/\n")
    result = run("check", "--output-format", "json", str(project))
    assert {d["filename"] for d in json.loads(result.stdout)} == {str(project / "buggy.py")}
    explicit = run("check", "--output-format", "json", str(project / "build" / "t.py"))
    assert len(json.loads(explicit.stdout)) == 1  # named files are always checked


@pytest.mark.parametrize("rule", [*ALL_RULES, UnusedNoqa], ids=lambda r: r.code)
def test_rule_docs_and_their_examples(rule, tmp_path):
    result = run("rule", rule.code)
    assert result.exit_code == 0
    for heading in ("What it does", "Why is this bad?", "Example", "Use instead:", "Fix safety"):
        assert heading in result.output
    prelude = "import torch\nmodel = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n" \
              "loader = []\nloss_fn = torch.nn.functional.mse_loss\n"
    example, instead = tmp_path / "example.py", tmp_path / "instead.py"
    example.write_text(prelude + rule.example)
    instead.write_text(prelude + rule.use_instead)
    assert rule.code in run("check", "--output-format", "concise", str(example)).output
    assert run("check", str(instead)).exit_code == 0


def test_unknown_rule_is_a_usage_error():
    assert run("rule", "ZG777").exit_code == 2


def test_python_dash_m_and_version(project):
    proc = subprocess.run([sys.executable, "-m", "zgcheck", "check", "--output-format", "concise",
                           str(project / "buggy.py")], capture_output=True, text=True)
    assert proc.returncode == 1 and "ZG001" in proc.stdout
    version = subprocess.run([sys.executable, "-m", "zgcheck", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "zgcheck" in version.stdout


def test_parallel_run_matches_serial(tmp_path):
    for i in range(20):
        (tmp_path / f"t{i}.py").write_text(BUGGY if i % 2 else CLEAN)
    serial = run("check", "--output-format", "json", "--jobs", "1", str(tmp_path)).stdout
    parallel = run("check", "--output-format", "json", "--jobs", "2", str(tmp_path)).stdout
    assert serial == parallel and len(json.loads(serial)) == 10


def test_extra_model_names_are_never_optimizers(tmp_path):
    source = BUGGY.replace("optimizer.step()", "optimizer.step()\n    opt_net.step()")
    (tmp_path / "pyproject.toml").write_text('[tool.zgcheck]\nextra-model-names = ["opt_net"]\n')
    (tmp_path / "t.py").write_text(source)
    result = run("check", "--output-format", "json", "--no-cache", "--config", str(tmp_path / "pyproject.toml"),
                 str(tmp_path / "t.py"))
    assert [d["location"]["row"] for d in json.loads(result.stdout)] == [7]  # not opt_net.step()


def test_stdin_notebook_fix_prints_the_fixed_notebook():
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": BUGGY.splitlines(keepends=True)}
    nb = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    result = run("check", "--fix", "-", "--stdin-filename", "t.ipynb", input=json.dumps(nb, indent=1) + "\n")
    fixed = json.loads(result.stdout)
    assert "    optimizer.zero_grad()\n" in fixed["cells"][0]["source"]


def test_pathologically_deep_expression_is_reported_as_cpython_would(tmp_path):
    source = "loss.backward()\nx = " + " + ".join(["'a'"] * 6000) + "\n"
    (tmp_path / "deep.py").write_text(source)
    try:  # CPython 3.9 compiles this; later versions refuse it as too deeply nested
        compile(source, "deep.py", "exec")
        expected = []
    except (SyntaxError, RecursionError, MemoryError):
        expected = ["ZG901"]
    result = run("check", "--no-cache", "--output-format", "json", str(tmp_path / "deep.py"))
    assert [d["code"] for d in json.loads(result.stdout)] == expected


def test_rule_documents_every_code_tool_codes_included():
    from zgcheck.codes import CODES

    listed = run("rule", "--all").output
    for code in CODES:
        assert code in listed
        shown = run("rule", code)
        assert shown.exit_code == 0 and CODES[code].name in shown.output
    assert run("rule", "ZG999").exit_code == 0 and run("rule", "ZG900").exit_code == 2
