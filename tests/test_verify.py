"""`zgcheck verify` end to end: the runtime verdict, its evidence, and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from zgcheck.cli import main

pytest.importorskip("torch")

BUGGY = textwrap.dedent("""\
    import torch
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(3):
        loss = model(torch.randn(4, 3)).pow(2).sum()
        loss.backward()
        optimizer.step()
    """)
CLEAN = BUGGY.replace("    loss = model", "    optimizer.zero_grad()\n    loss = model")


def verify(tmp_path, source, *args, fmt="json", before=False):
    """`args` go to the script, or (`before`) to verify itself."""
    script = tmp_path / "train.py"
    script.write_text(source)
    options, after = (list(args), []) if before else ([], list(args))
    return CliRunner().invoke(main, ["verify", "--output-format", fmt, *options, str(script), *after])


def test_buggy_script_is_reported_with_evidence(tmp_path):
    result = verify(tmp_path, BUGGY)
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert [(d["code"], d["location"]["row"]) for d in found] == [("ZG001", 8)]
    assert any("stale norm" in e for e in found[0]["evidence"])


def test_text_output_shows_the_evidence(tmp_path):
    result = verify(tmp_path, BUGGY, fmt="text")
    assert "ZG001" in result.output and "evidence: model.weight" in result.output


def test_clean_script_prints_only_the_summary_and_exits_0(tmp_path):
    result = verify(tmp_path, CLEAN, fmt="concise")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "zgcheck verify: 3 backward calls, 3 steps, 3 zero_grad calls, 1 optimizer; verdict: clean; not seeded"]


def test_summary_names_the_verdict_and_the_seed(tmp_path):
    result = verify(tmp_path, BUGGY, "--seed", "7", fmt="concise", before=True)
    assert result.exit_code == 1
    assert "verdict: 1 finding (ZG001); seed 7" in result.stderr


def test_seed_is_off_by_default_and_given_when_asked(tmp_path):
    source = "import torch\nprint(torch.initial_seed())\n"
    assert verify(tmp_path, source, "--seed", "5", before=True).stdout.splitlines()[0] == "5"
    assert verify(tmp_path, source).stdout.splitlines()[0] != "0"


@pytest.mark.parametrize("source, warning", [
    ("import torch\n", "no backward() was observed"),
    ("import torch\ntorch.nn.Linear(2, 1)(torch.ones(2)).sum().backward()\n", "no optimizer step was observed"),
])
def test_a_run_that_saw_nothing_says_so(tmp_path, source, warning):
    result = verify(tmp_path, source)
    assert result.exit_code == 0 and warning in result.stderr


def test_module_form_runs_like_python_dash_m(tmp_path, monkeypatch):
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(BUGGY + "import sys\nprint(sys.argv[1:])\n")
    monkeypatch.chdir(tmp_path / "src")  # python -m puts the working directory first on sys.path
    result = CliRunner().invoke(main, ["verify", "--output-format", "json", "-m", "pkg.train", "--", "--lr", "3"])
    assert result.exit_code == 1, result.output
    printed = result.stdout.splitlines()[0]
    assert printed == "['--lr', '3']"
    assert [(d["code"], d["location"]["row"]) for d in json.loads(result.stdout[len(printed) + 1:])] == [("ZG001", 8)]


def test_unknown_module_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["verify", "-m", "no_such_module_zg"])
    assert result.exit_code == 2 and "no_such_module_zg" in result.output


def test_internal_error_of_the_checker_is_shown_and_exits_2(tmp_path, monkeypatch):
    from zgcheck.runtime.tracker import Tracker

    def broken(self, optimizer, counted=True):
        raise ZeroDivisionError("checker bug")

    monkeypatch.setattr(Tracker, "on_step", broken)
    result = verify(tmp_path, CLEAN, fmt="concise")
    assert result.exit_code == 2
    assert "internal error of the checker" in result.stderr and "ZeroDivisionError: checker bug" in result.stderr
    assert "verdict: internal error" in result.stderr


def test_arguments_reach_the_script_and_its_exit_code_is_kept(tmp_path):
    source = CLEAN + "import sys\nsys.exit(int(sys.argv[1]))\n"
    assert verify(tmp_path, source, "3").exit_code == 3


def test_a_script_that_raises_gets_its_traceback_and_the_report(tmp_path):
    result = verify(tmp_path, BUGGY + "raise RuntimeError('boom')\n", fmt="concise")
    assert result.exit_code == 1
    assert "RuntimeError: boom" in result.output and "ZG001" in result.output
    assert "the script raised" in result.output


def test_a_child_that_cannot_be_instrumented_is_an_internal_error(tmp_path):
    # The child's bootstrap cannot load the checker: the parent says so and exits 2.
    child = tmp_path / "child.py"
    child.write_text("import sys\nsys.modules['zgcheck.runtime.processes'] = None\n" + CLEAN)
    source = f"import subprocess, sys\nsubprocess.run([sys.executable, {str(child)!r}], check=True)\n"
    result = verify(tmp_path, source, fmt="concise")
    assert result.exit_code == 2, result.output
    assert "instrumenting a child process failed" in result.stderr and "verdict: internal error" in result.stderr


@pytest.mark.parametrize("fake_torch, said", [
    ("None", ["pip install 'zgcheck[runtime]'"]),
    ("types.SimpleNamespace(__version__='1.13.1')", ["torch 1.13.1 is too old", "torch>=2.1"]),
], ids=["missing", "too-old"])
def test_without_a_usable_torch_verify_says_why_and_exits_2(tmp_path, fake_torch, said):
    script = tmp_path / "train.py"
    script.write_text(CLEAN)
    code = (f"import sys, types; sys.modules['torch'] = {fake_torch}; from zgcheck.cli import main; "
            f"main(['verify', {str(script)!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert all(text in proc.stderr for text in said) and "Traceback" not in proc.stderr


def test_the_static_checker_never_imports_torch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(BUGGY)
    code = ("import sys; from zgcheck.cli import main\n"
            "try:\n"
            f"    main(['check', '--no-cache', {str(script)!r}])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().endswith("False")
