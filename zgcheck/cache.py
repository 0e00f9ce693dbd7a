"""Cache entries: plain JSON with a checksum, never anything that can run code.

An entry is one file's diagnostics plus the other files (imported helpers) the
answer depended on, with their hashes. It is written as a SHA-256 line over a
JSON payload that names its own key; reading checks the checksum, the key and
the type of every field, and anything that fails is a miss, said once on
stderr. So a truncated, bit-flipped, stale or planted entry costs a re-check,
never a wrong answer or a crash, and a shared CI cache is as safe as the tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from .types import Applicability, Diagnostic, Edit, Fix, Related, Span

FORMAT = 1
Dependencies = List[Tuple[str, str]]


class Invalid(Exception):
    """The entry is not one this version wrote for this key."""


def load(entry: Path, key: str) -> Optional[Tuple[Dependencies, List[Diagnostic]]]:
    """The entry's (dependencies, diagnostics), or None: missing, or discarded with a note."""
    try:
        with open(entry, "rb") as handle:
            blob = handle.read()
    except OSError:
        return None
    try:
        digest, _, payload = blob.partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            raise Invalid("checksum mismatch")
        data = json.loads(payload.decode("utf-8"))
        _expect(isinstance(data, dict) and data.get("format") == FORMAT, "unknown format")
        _expect(data.get("key") == key, "entry stored under another key")
        dependencies = [(_str(dep), _str(digest)) for dep, digest in _pairs(data.get("dependencies"))]
        return dependencies, [_diagnostic(d) for d in _list(data.get("diagnostics"))]
    except (Invalid, ValueError, TypeError, RecursionError) as err:  # JSON errors are ValueErrors
        sys.stderr.write(f"zgcheck: discarded a bad cache entry {entry} ({err}); re-checking the file\n")
        sys.stderr.flush()  # a note, not a report: out before anything else is written
        return None


def store(entry: Path, key: str, dependencies: Sequence[Tuple[str, str]], diagnostics: Sequence[Diagnostic]) -> None:
    """Write the entry atomically; a read-only tree is simply not cached."""
    payload = json.dumps({"format": FORMAT, "key": key, "dependencies": [list(d) for d in dependencies],
                          "diagnostics": [_plain(d) for d in diagnostics]}, separators=(",", ":")).encode()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(tmp, entry)
    except OSError:
        pass


def _plain(d: Diagnostic) -> dict:
    fix = None if d.fix is None else {"title": d.fix.title, "applicability": int(d.fix.applicability),
                                      "edits": [[e.start_line, e.start_col, e.end_line, e.end_col, e.content]
                                                for e in d.fix.edits]}
    return {"code": d.code, "name": d.name, "message": d.message, "path": d.path, "span": _span_plain(d.span),
            "related": [[r.message, r.path, _span_plain(r.span), r.cell] for r in d.related],
            "fix": fix, "cell": d.cell, "evidence": list(d.evidence)}


def _span_plain(s: Span) -> List[int]:
    return [s.start_line, s.start_col, s.end_line, s.end_col]


def _diagnostic(d: Any) -> Diagnostic:
    _expect(isinstance(d, dict), "diagnostic is not an object")
    fix = d.get("fix")
    if fix is not None:
        _expect(isinstance(fix, dict), "fix is not an object")
        applicability = fix.get("applicability")
        _expect(applicability in [int(a) for a in Applicability], "unknown applicability")
        fix = Fix(_str(fix.get("title")), Applicability(applicability),
                  tuple(_edit(e) for e in _list(fix.get("edits"))))
    return Diagnostic(_str(d.get("code")), _str(d.get("name")), _str(d.get("message")), _str(d.get("path")),
                      _span(d.get("span")), tuple(_related(r) for r in _list(d.get("related"))), fix,
                      _optional_int(d.get("cell")), tuple(_str(e) for e in _list(d.get("evidence"))))


def _related(r: Any) -> Related:
    message, path, span, cell = _fields(r, 4)
    return Related(_str(message), _str(path), _span(span), _optional_int(cell))


def _edit(e: Any) -> Edit:
    *position, content = _fields(e, 5)
    return Edit(*(_int(n) for n in position), _str(content))


def _span(s: Any) -> Span:
    return Span(*(_int(n) for n in _fields(s, 4)))


def _fields(value: Any, n: int) -> list:
    _expect(isinstance(value, list) and len(value) == n, f"expected a list of {n}")
    return value


def _pairs(value: Any) -> List[list]:
    return [_fields(v, 2) for v in _list(value)]


def _list(value: Any) -> list:
    _expect(isinstance(value, list), "expected a list")
    return value


def _str(value: Any) -> str:
    _expect(isinstance(value, str), "expected a string")
    return value


def _int(value: Any) -> int:
    _expect(isinstance(value, int) and not isinstance(value, bool) and value >= 0, "expected a position")
    return value


def _optional_int(value: Any) -> Optional[int]:
    return None if value is None else _int(value)


def _expect(condition: bool, why: str) -> None:
    if not condition:
        raise Invalid(why)
