"""Reads the expectations a fixture states inline.

Conventions (see fixtures/README.md):
  opt.step()  # expect: ZG001            one diagnostic of that code on this line
  x()  # expect: ZG001, ZG002            several on one line
  # runtime: skip -- needs deepspeed      (anywhere) the runtime checker cannot observe it
  # requires: python >= 3.10 -- match     (anywhere) older Pythons cannot parse it: skipped there
Files named `name.fixed.py` are the expected output of `--fix` on `name.py`
and are fixtures in their own right: they must be clean.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, List, Optional, Tuple

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

_EXPECT = re.compile(r"#\s*expect:\s*([A-Z]{2}\d{3}(?:\s*,\s*[A-Z]{2}\d{3})*)")
_RUNTIME_SKIP = re.compile(r"^\s*#\s*runtime:\s*skip\s*--\s*(.+?)\s*$", re.M)
_REQUIRES = re.compile(r"^\s*#\s*requires:\s*python\s*>=\s*(\d+)\.(\d+)\s*--\s*(.+?)\s*$", re.M)


@dataclass(frozen=True)
class Fixture:
    path: Path
    expected: FrozenSet[Tuple[str, int]]  # (code, line)
    runtime_skip: Optional[str]  # the stated reason, if any
    requires: Optional[Tuple[int, int]] = None  # the oldest Python that can parse it
    requires_why: str = ""

    @property
    def unsupported(self) -> Optional[str]:
        """Why this Python cannot run or parse the fixture (its syntax is newer), else None."""
        if self.requires is None or sys.version_info[:2] >= self.requires:
            return None
        return f"needs Python >= {self.requires[0]}.{self.requires[1]} ({self.requires_why})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def fixed_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".fixed.py")


def parse_fixture(path: Path) -> Fixture:
    text = path.read_text(encoding="utf-8")
    expected = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            for code in match.group(1).split(","):
                expected.add((code.strip(), lineno))
    skip = _RUNTIME_SKIP.search(text)
    requires = _REQUIRES.search(text)
    return Fixture(path, frozenset(expected), skip.group(1) if skip else None,
                   (int(requires.group(1)), int(requires.group(2))) if requires else None,
                   requires.group(3) if requires else "")


def all_fixtures() -> List[Fixture]:
    """Every runnable fixture script, the `.fixed.py` ones included."""
    paths = sorted(
        p for p in FIXTURES.rglob("*.py")
        if not p.name.startswith("_") and not {"helpers", "known_limitations"} & set(p.parts)
    )
    return [parse_fixture(p) for p in paths]


def params(fixtures: List[Fixture]) -> list:
    """Fixtures as pytest parameters, those this Python cannot parse skipped with their reason."""
    import pytest

    return [pytest.param(f, id=f.name, marks=pytest.mark.skip(reason=f.unsupported)) if f.unsupported
            else pytest.param(f, id=f.name) for f in fixtures]
