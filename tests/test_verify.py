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


def verify(tmp_path, source, *args, fmt="json"):
    script = tmp_path / "train.py"
    script.write_text(source)
    return CliRunner().invoke(main, ["verify", "--output-format", fmt, str(script), *args])


def test_buggy_script_is_reported_with_evidence(tmp_path):
    result = verify(tmp_path, BUGGY)
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert [(d["code"], d["location"]["row"]) for d in found] == [("ZG001", 8)]
    assert any("stale norm" in e for e in found[0]["evidence"])


def test_text_output_shows_the_evidence(tmp_path):
    result = verify(tmp_path, BUGGY, fmt="text")
    assert "ZG001" in result.output and "evidence: model.weight" in result.output


def test_clean_script_prints_nothing_and_exits_0(tmp_path):
    result = verify(tmp_path, CLEAN, fmt="concise")
    assert result.exit_code == 0 and result.stdout == ""


def test_arguments_reach_the_script_and_its_exit_code_is_kept(tmp_path):
    source = CLEAN + "import sys\nsys.exit(int(sys.argv[1]))\n"
    assert verify(tmp_path, source, "3").exit_code == 3


def test_a_script_that_raises_gets_its_traceback_and_the_report(tmp_path):
    result = verify(tmp_path, BUGGY + "raise RuntimeError('boom')\n", fmt="concise")
    assert result.exit_code == 1
    assert "RuntimeError: boom" in result.output and "ZG001" in result.output
    assert "the script raised" in result.output


def test_without_torch_verify_says_how_to_install_it(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(CLEAN)
    code = ("import sys; sys.modules['torch'] = None; from zgcheck.cli import main; "
            f"main(['verify', {str(script)!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "pip install 'zgcheck[runtime]'" in proc.stderr and "Traceback" not in proc.stderr


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
