"""Every fixture's inline expectations against the static checker, through the API and the CLI."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from zgcheck.checker import check_file
from zgcheck.cli import main

from fixture_support import FIXTURES, all_fixtures, params

FIXTURE_LIST = all_fixtures()


def test_there_are_enough_fixtures():
    originals = [f for f in FIXTURE_LIST if not f.name.endswith(".fixed.py")]
    assert len(originals) >= 45


@pytest.mark.parametrize("fixture", params(FIXTURE_LIST))
def test_static_verdict_matches_expectations(fixture):
    # Findings inside helpers imported from other fixture files are that file's expectations.
    found = {(d.code, d.span.start_line) for d in check_file(str(fixture.path))
             if os.path.samefile(d.path, fixture.path)}
    assert found == set(fixture.expected)


def test_cli_reports_exactly_the_expected_diagnostics():
    result = CliRunner().invoke(main, ["check", "--output-format", "json", str(FIXTURES)])
    assert result.exit_code == 1, result.output
    reported = {(d["filename"], d["code"], d["location"]["row"]) for d in json.loads(result.stdout)
                if "known_limitations" not in d["filename"]}
    expected = {(str(f.path), code, line) for f in FIXTURE_LIST for code, line in f.expected if not f.unsupported}
    # What this Python cannot parse is reported as CPython would refuse it: ZG901, once.
    newer = {str(f.path) for f in FIXTURE_LIST if f.unsupported}
    assert sorted(code for name, code, _ in reported if name in newer) == ["ZG901"] * len(newer)
    assert {d for d in reported if d[0] not in newer} == expected
