"""Proving fixes safe: each fix is judged as if applied alone, however few re-analyses that takes."""

from __future__ import annotations

import textwrap

import pytest

import zgcheck.checker as checker
import zgcheck.safety as safety
from zgcheck.checker import check_text
from zgcheck.config import DEFAULT_CONFIG
from zgcheck.fixes import apply_edits, verified_applicability
from zgcheck.types import Applicability

from fixture_support import FIXTURES, all_fixtures, params

# Two fixes in one root that interfere: moving the second loop's zero alone lets the first
# loop's leftover gradients reach the second loop's step (a new ZG001), which the first
# fix, applied too, would hide.
INTERFERING = (FIXTURES / "wipe_zero_every_micro_batch_step_every_k.py").read_text()

STAGE = textwrap.dedent("""\
    def stage_{n}(model, loader):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            loss = model(x).sum()
            loss.backward()
            optimizer.step()
    """)


def _applicabilities(text, path="t.py"):
    return [(d.code, d.span.start_line, d.fix.applicability) for d in check_text(text, path) if d.fix]


def _alone(text, path="t.py"):
    """The contract: each fix applied alone and the whole file checked again."""
    before = checker.diagnose(text, path, DEFAULT_CONFIG)
    recheck = lambda candidate: checker.diagnose(candidate, path, DEFAULT_CONFIG, with_fixes=False)  # noqa: E731
    return [(d.code, d.span.start_line, verified_applicability(text, d, before, recheck)) for d in before if d.fix]


def test_a_fix_that_is_unsafe_alone_stays_unsafe_when_another_fix_would_hide_it():
    path = "micro.py"
    found = check_text(INTERFERING, path)
    both = apply_edits(INTERFERING, [e for d in found for e in d.fix.edits])
    assert check_text(both, path) == []  # together, the two fixes leave nothing
    assert _applicabilities(INTERFERING, path) == [("ZG002", 16, Applicability.SAFE),
                                                   ("ZG002", 23, Applicability.UNSAFE)]


def test_fixes_in_functions_no_root_shares_are_proven_by_one_analysis(monkeypatch):
    text = "import torch\n\n\n" + "\n\n".join(STAGE.format(n=n) for n in range(6))
    runs = []
    real = safety.analyse_roots
    monkeypatch.setattr(safety, "analyse_roots", lambda *a, **k: runs.append(k["only"]) or real(*a, **k))
    monkeypatch.setattr(checker, "diagnose", lambda *a, **k: pytest.fail("a whole-file re-check"))
    assert [a for _, _, a in _applicabilities(text)] == [Applicability.SAFE] * 6
    assert len(runs) == 1 and len(runs[0]) == 6


def test_fixes_that_a_root_reaches_together_are_proven_apart(monkeypatch):
    calls = "".join(f"    stage_{n}(model, loader)\n" for n in range(3))
    text = "import torch\n\n\n" + "\n\n".join(STAGE.format(n=n) for n in range(3)) + "\n\ndef main(model, loader):\n" + calls
    runs = []
    real = safety.analyse_roots
    monkeypatch.setattr(safety, "analyse_roots", lambda *a, **k: runs.append(k["only"]) or real(*a, **k))
    assert [a for _, _, a in _applicabilities(text)] == [Applicability.SAFE] * 3
    assert len(runs) == 3 and all(len(only) == 2 for only in runs)  # the stage and main


def test_a_batch_judges_each_fix_as_it_would_be_judged_alone():
    # One root holds two interfering fixes, others hold plain ones: mixed in batches.
    interfering = "def micro(model, optimizer, k):\n" + textwrap.indent(
        INTERFERING.split("k = 3\n", 1)[1], "    ")
    text = "import torch\nimport torch.nn as nn\n\n\n" + interfering + "\n\n" + \
        "\n\n".join(STAGE.format(n=n) for n in range(3))
    assert _applicabilities(text) == _alone(text)
    assert Applicability.UNSAFE in {a for _, _, a in _applicabilities(text)}


@pytest.mark.parametrize("fixture", params(all_fixtures()))
def test_every_fixtures_verdicts_are_the_contracts(fixture):
    text = fixture.path.read_text()
    assert _applicabilities(text, str(fixture.path)) == _alone(text, str(fixture.path))
