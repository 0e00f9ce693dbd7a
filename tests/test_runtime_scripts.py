"""`zgcheck verify` on the runtime-only cases of tests/data/runtime (compiled
steps, child processes, closures evaluated several times), through the CLI.

They run in this interpreter (click's runner: torch is imported once), and the
noise check runs one compiled case in a fresh `python -m zgcheck verify`,
whose stderr must hold verify's own lines only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from fixture_support import parse_fixture  # noqa: E402
from zgcheck.cli import main  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "runtime"
SCRIPTS = sorted(DATA.glob("*.py"))
_RUNS = re.compile(r"^# runs: (\S+)$", re.M)
_CHILDREN = re.compile(r"^# child processes: (\d+)$", re.M)
_RANKS = re.compile(r"^# ranks: (.+)$", re.M)


def _expected(script: Path):
    text = script.read_text(encoding="utf-8")
    files = [script] + [script.parent / name for name in _RUNS.findall(text)]
    return {(path.name, code, line) for path in files for code, line in parse_fixture(path).expected}


def _found(report: str):
    return {(Path(d["filename"]).name, d["code"], d["location"]["row"]) for d in json.loads(report)}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_verify_reaches_the_expected_verdict(script, monkeypatch, recwarn):
    monkeypatch.chdir(DATA)
    result = CliRunner().invoke(main, ["verify", "--output-format", "json", str(script)])
    expected = _expected(script)
    assert _found(result.stdout) == expected, result.stderr
    assert result.exit_code == (1 if expected else 0), result.stderr
    assert "verdict: " + ("1 finding" if expected else "clean") in result.stderr
    # Warnings the checker caused itself (torch's own, e.g. from compiling, are the script's).
    assert [str(w.message) for w in recwarn if f"{os.sep}zgcheck{os.sep}" in w.filename] == []

    text = script.read_text(encoding="utf-8")
    children = _CHILDREN.search(text)
    if children:
        (diagnostic,) = json.loads(result.stdout)
        assert diagnostic["message"].count("pid ") == int(children.group(1)), diagnostic["message"]
        assert re.search(r"; \d+ child process(es)? reported; ", result.stderr), result.stderr
    ranks = _RANKS.search(text)
    if ranks:
        for rank in ranks.group(1).split(","):
            assert f"rank {rank.strip()}, pid " in result.stdout


def test_a_compiled_step_prints_no_compiler_noise():
    script = DATA / "compiled_train_step_no_zero.py"
    proc = subprocess.run([sys.executable, "-m", "zgcheck", "verify", "--output-format", "json", str(script)],
                          capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 1 and _found(proc.stdout) == _expected(script)
    assert [line for line in proc.stderr.splitlines() if not line.startswith("zgcheck verify: ")] == []
