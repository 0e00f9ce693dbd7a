"""Every fixture's inline expectations against the runtime checker (the
reference trainer): all non-skipped fixtures run in a few batch interpreters,
once per session, and each fixture is then judged on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import pytest

pytest.importorskip("torch")

from fixture_support import all_fixtures  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURE_LIST = all_fixtures()
RUNNABLE = [f for f in FIXTURE_LIST if f.runtime_skip is None and not f.unsupported]
SKIPPED = [f for f in FIXTURE_LIST if f.runtime_skip is not None]
# Seconds one fixture may run before the batch stops it (it is a tiny script).
TIMEOUT = 120


def _run_batch(paths: List[Path]) -> List[dict]:
    # One torch thread per interpreter: the batches run side by side.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    proc = subprocess.run(
        [sys.executable, "-m", "zgcheck.runtime.batch", "--timeout", str(TIMEOUT), *map(str, paths)],
        capture_output=True, text=True, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(scope="session")
def runtime_results() -> Dict[str, dict]:
    """Path of each runnable fixture -> its batch result."""
    workers = max(1, min(4, os.cpu_count() or 1, len(RUNNABLE)))
    chunks = [[f.path for f in RUNNABLE[i::workers]] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        results = [r for batch in pool.map(_run_batch, chunks) for r in batch]
    return {r["path"]: r for r in results}


@pytest.mark.parametrize("fixture", RUNNABLE, ids=lambda f: f.name)
def test_runtime_verdict_matches_expectations(fixture, runtime_results):
    result = runtime_results[str(fixture.path)]
    assert result["error"] is None, result["error"]
    assert result["internal_errors"] == []
    found = {(d["code"], d["line"]) for d in result["diagnostics"] if d["path"] == str(fixture.path)}
    assert found == set(fixture.expected), [d["message"] for d in result["diagnostics"]]


def test_runtime_skipped_fixtures_state_why(capsys):
    for fixture in SKIPPED:
        assert fixture.runtime_skip.strip(), fixture.name
    with capsys.disabled():
        print(f"\n{len(SKIPPED)} of {len(FIXTURE_LIST)} fixtures are skipped by the runtime checker:")
        for fixture in SKIPPED:
            print(f"  {fixture.name}: {fixture.runtime_skip}")
