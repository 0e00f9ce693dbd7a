"""`zgcheck check --fix fixtures/` on a copy: every fix matches its `.fixed.py`.

The `.fixed.py` files are fixtures too: the static test finds them clean and the
runtime test trains them clean, so a fix equal to one is proven by training.
"""

from __future__ import annotations

import re
import shutil

import pytest


from cli_support import invoke

from fixture_support import FIXTURES, all_fixtures, params

EXPECT_COMMENT = re.compile(r"  # expect: [A-Z0-9, ]+$", re.M)


@pytest.fixture(scope="module")
def fixed_copy(tmp_path_factory):
    copy = tmp_path_factory.mktemp("fixtures") / "fixtures"
    shutil.copytree(FIXTURES, copy)
    result = invoke(["check", "--fix", "--no-cache", str(copy)])
    return copy, result


BUGGY = [f for f in all_fixtures() if f.expected and not f.name.endswith(".fixed.py")]


@pytest.mark.parametrize("fixture", params([f for f in BUGGY if f.fixed_path.exists()]))
def test_fix_produces_the_expected_file(fixture, fixed_copy):
    copy, _ = fixed_copy
    produced = (copy / fixture.path.relative_to(FIXTURES)).read_text()
    assert EXPECT_COMMENT.sub("", produced) == fixture.fixed_path.read_text()


@pytest.mark.parametrize("fixture", params([f for f in BUGGY if not f.fixed_path.exists()]))
def test_a_buggy_fixture_without_fixed_file_says_why(fixture, fixed_copy):
    text = fixture.path.read_text()
    assert re.search(r"#\s*fix:\s*(unsafe|none)\s*--", text), "state `# fix: unsafe -- why` or add a .fixed.py"
    copy, _ = fixed_copy
    assert (copy / fixture.path.relative_to(FIXTURES)).read_text() == text  # safe --fix leaves it alone


def test_every_fixed_file_has_its_fixture():
    for fixed in FIXTURES.rglob("*.fixed.py"):
        assert fixed.with_name(fixed.name.replace(".fixed.py", ".py")).exists(), fixed


def test_second_fix_changes_nothing(fixed_copy):
    copy, _ = fixed_copy
    before = {p: p.read_bytes() for p in copy.rglob("*.py")}
    invoke(["check", "--fix", "--no-cache", str(copy)])
    assert {p: p.read_bytes() for p in copy.rglob("*.py")} == before


def test_summary_counts_fixed_and_remaining(fixed_copy):
    _, result = fixed_copy
    assert re.search(r"Fixed \d+ diagnostics", result.output)
