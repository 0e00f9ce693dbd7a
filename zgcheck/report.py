"""Where a diagnostic is shown (`at_call_sites`), then pure formatters: diagnostics
(+ source text for context) -> a string. Imports no parser."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union
from urllib.parse import quote

from . import __version__
from .codes import CODES, Code, is_tool
from .screen import NEWLINE
from .notebook import NotebookSource
from .types import Applicability, Diagnostic, Related, Span

# path -> text, for showing the offending line; a notebook's entry holds its cells.
Sources = Dict[str, Union[None, str, NotebookSource]]
CALL_ROLE = "call"  # a related location: the call in the checked file that reached a helper's finding
HELPER_ROLE = "helper"


def at_call_sites(diagnostics: Iterable[Diagnostic], named: Iterable[str]) -> List[Diagnostic]:
    """A finding inside a file that was not named (an imported helper) is reported at the call
    in the named file that reached it, with a note pointing at the helper: a commit is then
    blocked only by the code it touches. Findings in named files stay where they are."""
    out, absolute = [], None
    for d in diagnostics:
        call = next((r for r in d.related if r.message.startswith(CALL_ROLE + ": ")), None)
        if call is None:
            out.append(d)
            continue
        if absolute is None:  # only when a finding was reached through a call
            absolute = {os.path.normcase(os.path.abspath(p)) for p in named}
        if os.path.normcase(os.path.abspath(d.path)) in absolute:  # stays in the helper
            out.append(replace(d, related=tuple(r for r in d.related if not r.message.startswith(HELPER_ROLE + ": "))))
        else:
            out.append(replace(d, path=call.path, span=call.span, cell=call.cell, fix=None,
                               related=tuple(r for r in d.related if r is not call)))
    return out


def _where(d: Union[Diagnostic, Related], span: Optional[Span] = None) -> str:
    span = span or d.span
    cell = f"cell {d.cell}:" if d.cell else ""
    return f"{d.path}:{cell}{span.start_line}:{span.start_col}"


def _fix_marker(d: Diagnostic) -> str:
    if d.fix is None:
        return ""
    return " [*]" if d.fix.applicability is Applicability.SAFE else " [-]"


class _Style:
    def __init__(self, color: bool):
        self.color = color

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text


def format_concise(diagnostics: Sequence[Diagnostic], sources: Sources, color: bool = False) -> str:
    s = _Style(color)
    return "".join(f"{s(_where(d), '1')}: {s(d.code, '1;31')}{_fix_marker(d)} {d.message}\n"
                   for d in diagnostics)


def format_text(diagnostics: Sequence[Diagnostic], sources: Sources, color: bool = False) -> str:
    s = _Style(color)
    out: List[str] = []
    for d in diagnostics:
        out.append(f"{s(_where(d), '1')}: {s(d.code, '1;31')}{_fix_marker(d)} {d.message}")
        line = _line(_text_of(sources.get(d.path), d.cell), d.span.start_line)
        if line is not None:
            width = len(str(d.span.start_line))
            indent = len(line[:d.span.start_col - 1].expandtabs(4))
            shown = line.expandtabs(4)
            length = (d.span.end_col - d.span.start_col) if d.span.end_line == d.span.start_line else len(shown) - indent
            gutter = s(" " * width + " |", "1;34")
            number = s(f"{d.span.start_line:>{width}} |", "1;34")
            out.append(gutter)
            out.append(f"{number} {shown}")
            out.append(f"{gutter} {' ' * indent}{s('^' * max(1, length), '1;31')}")
        for rel in d.related:
            out.append(f"  {s('note', '1;36')}: {rel.message} at {_where(rel)}")
        for ev in d.evidence:
            out.append(f"  {s('evidence', '1;36')}: {ev}")
        if d.fix is not None:
            kind = "fix" if d.fix.applicability is Applicability.SAFE else "unsafe fix"
            out.append(f"  {s('help', '1;32')}: {d.fix.title} ({kind})")
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def _text_of(source: Union[None, str, NotebookSource], cell: Optional[int]) -> Optional[str]:
    if isinstance(source, NotebookSource):
        return source.cells.get(cell) if cell else None
    return source


def _line(text: Optional[str], lineno: int) -> Optional[str]:
    """The raw line (tabs kept, so columns still count characters)."""
    if text is None:
        return None
    lines = NEWLINE.split(text)
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1]
    return None


def _position(line: int, col: int) -> Dict[str, int]:
    return {"row": line, "column": col}


def diagnostic_to_dict(d: Diagnostic) -> dict:
    fix = None
    if d.fix is not None:
        fix = {
            "applicability": d.fix.applicability.name.lower(),
            "message": d.fix.title,
            "edits": [{"content": e.content, "location": _position(e.start_line, e.start_col),
                       "end_location": _position(e.end_line, e.end_col)} for e in d.fix.edits],
        }
    return {
        "code": d.code,
        "name": d.name,
        "message": d.message,
        "filename": d.path,
        "cell": d.cell,
        "location": _position(d.span.start_line, d.span.start_col),
        "end_location": _position(d.span.end_line, d.span.end_col),
        "related": [{"message": r.message, "filename": r.path, "cell": r.cell,
                     "location": _position(r.span.start_line, r.span.start_col),
                     "end_location": _position(r.span.end_line, r.span.end_col)} for r in d.related],
        "evidence": list(d.evidence),
        "fix": fix,
    }


def format_json(diagnostics: Sequence[Diagnostic], sources: Sources, color: bool = False) -> str:
    return json.dumps([diagnostic_to_dict(d) for d in diagnostics], indent=2) + "\n"


def _escape_property(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A").replace(":", "%3A").replace(",", "%2C")


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def format_github(diagnostics: Sequence[Diagnostic], sources: Sources, color: bool = False) -> str:
    """GitHub Actions workflow commands: one `::error` annotation per diagnostic."""
    out = []
    for d in diagnostics:
        props = f"title={_escape_property('zgcheck (' + d.code + ')')},file={_escape_property(d.path)}"
        message = f"{d.code} {d.message}"
        if d.cell:  # GitHub shows the .ipynb's JSON: point at the line holding the cell's code
            line = _json_line(sources, d)
            props += f",line={line}" if line else ""
            message = f"cell {d.cell}:{d.span.start_line}:{d.span.start_col}: {message}"
        else:
            props += (f",line={d.span.start_line},col={d.span.start_col},"
                      f"endLine={d.span.end_line},endColumn={d.span.end_col}")
        out.append(f"::error {props}::{_escape_data(message)}\n")
    return "".join(out)


def _json_line(sources: Sources, d: Union[Diagnostic, Related], line: Optional[int] = None) -> Optional[int]:
    source = sources.get(d.path)
    if isinstance(source, NotebookSource) and d.cell:
        return source.json_line(d.cell, line or d.span.start_line)
    return None


# --- SARIF 2.1.0 (GitHub code scanning) ------------------------------------

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/zgcheck/zgcheck"
# docs/rules/<code>.md, generated from zgcheck/codes.py (`python -m zgcheck.codes`).
RULES_URI = INFORMATION_URI + "/blob/main/docs/rules/"


def help_uri(code: str) -> str:
    """The page documenting a code (its rule docs, as `zgcheck rule CODE` prints them)."""
    return f"{RULES_URI}{code}.md"


def _sarif_rules(diagnostics: Sequence[Diagnostic]) -> List[dict]:
    """A descriptor for every code in the table, and for any code it does not know yet."""
    known = dict(CODES)
    for d in diagnostics:
        known.setdefault(d.code, Code(d.code, d.name, d.name.replace("-", " "), d.name.replace("-", " ")))
    return [_descriptor(c) for c in known.values()]


def _descriptor(code: Code) -> dict:
    return {
        "id": code.code,
        "name": code.name,
        "shortDescription": {"text": code.summary},
        "fullDescription": {"text": code.summary},
        "help": {"text": code.doc, "markdown": code.doc},
        "helpUri": help_uri(code.code),
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["tool" if is_tool(code.code) else "correctness"]},
    }


def source_root(start: Optional[str] = None) -> Path:
    """The repository root (the git top level: a directory holding `.git`, a worktree's
    `.git` file included) above start, else start itself (the working directory)."""
    here = Path(os.path.abspath(start or os.getcwd()))
    for directory in (here, *here.parents):
        if (directory / ".git").exists():
            return directory
    return here


def _artifact(path: str, root: Path) -> dict:
    """A URI relative to the repository root (%SRCROOT%), as GitHub code scanning wants;
    a file outside it gets an absolute file URI."""
    if path.startswith("<"):  # <stdin>
        return {"uri": quote(path), "uriBaseId": "%SRCROOT%"}
    absolute = Path(os.path.abspath(path))
    try:
        rel = absolute.relative_to(root)
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": quote(rel.as_posix()), "uriBaseId": "%SRCROOT%"}


def _region(span: Span) -> dict:
    return {"startLine": span.start_line, "startColumn": span.start_col,
            "endLine": span.end_line, "endColumn": max(span.end_col, 1)}


def _sarif_location(sources: Sources, d: Union[Diagnostic, Related], root: Path) -> dict:
    location: dict = {}
    if d.cell:  # the artifact is the .ipynb's JSON: point at the lines that hold the cell's code
        start = _json_line(sources, d, d.span.start_line)
        end = _json_line(sources, d, d.span.end_line)
        region = {"startLine": start, "endLine": max(end or start, start)} if start else {"startLine": 1}
        # ...and say which cell, and where in it, as the location's own data (not in the message).
        location["logicalLocations"] = [{"name": f"cell {d.cell}"}]
        location["properties"] = {"cell": d.cell, "cellRegion": _region(d.span)}
    else:
        region = _region(d.span)
    location["physicalLocation"] = {"artifactLocation": _artifact(d.path, root), "region": region}
    return location


def _fingerprint(d: Diagnostic, root: Path, sources: Sources, seen: Counter) -> str:
    """Stable across unrelated edits: the rule, the file, and the stripped text of the
    reported line (never its number), plus which occurrence of that text in the file."""
    line = _line(_text_of(sources.get(d.path), d.cell), d.span.start_line)
    artifact = _artifact(d.path, root)["uri"]
    key = "\0".join((d.code, artifact, (line or "").strip() or d.message))
    seen[key] += 1
    return hashlib.sha256(f"{key}\0{seen[key]}".encode()).hexdigest()[:32]


def _sarif_result(d: Diagnostic, index: int, sources: Sources, root: Path, seen: Counter) -> dict:
    result = {
        "ruleId": d.code,
        "ruleIndex": index,
        "level": "error",
        "message": {"text": d.message},
        "locations": [_sarif_location(sources, d, root)],
        "partialFingerprints": {"zgcheck/v1": _fingerprint(d, root, sources, seen)},
    }
    if d.related:
        result["relatedLocations"] = [dict(_sarif_location(sources, r, root), id=i, message={"text": r.message})
                                      for i, r in enumerate(d.related, 1)]
    if d.fix is not None and d.fix.edits and not d.cell:
        result["fixes"] = [{
            "description": {"text": d.fix.title},
            "artifactChanges": [{
                "artifactLocation": _artifact(d.path, root),
                "replacements": [{
                    "deletedRegion": {"startLine": e.start_line, "startColumn": e.start_col,
                                      "endLine": e.end_line, "endColumn": e.end_col},
                    "insertedContent": {"text": e.content},
                } for e in d.fix.edits],
            }],
            "properties": {"applicability": d.fix.applicability.name.lower()},
        }]
    return result


def format_sarif(diagnostics: Sequence[Diagnostic], sources: Sources, color: bool = False) -> str:
    """A SARIF 2.1.0 log: rules with their documentation, one result per diagnostic, paths
    relative to the repository root."""
    rules = _sarif_rules(diagnostics)
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    root = source_root()
    seen: Counter = Counter()
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "zgcheck",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri().rstrip("/") + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": [_sarif_result(d, index[d.code], sources, root, seen) for d in diagnostics],
        }],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def format_statistics(diagnostics: Sequence[Diagnostic], output_format: str = "text") -> str:
    """Counts per rule, most frequent first: a table, or with output_format "json" a list of
    {code, name, count, fixable} as Ruff prints it."""
    counts = Counter((d.code, d.name) for d in diagnostics)
    fixable = Counter(d.code for d in diagnostics if d.fix is not None
                      and d.fix.applicability is Applicability.SAFE)
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if output_format == "json":
        return json.dumps([{"code": code, "name": name, "count": n, "fixable": fixable[code] > 0}
                           for (code, name), n in rows], indent=2) + "\n"
    lines = [f"{n:>5}\t{code}\t{'[*] ' if fixable[code] else ''}{name}" for (code, name), n in rows]
    return "\n".join(lines) + ("\n" if lines else "")


FORMATTERS: Dict[str, Callable[..., str]] = {
    "text": format_text,
    "concise": format_concise,
    "json": format_json,
    "github": format_github,
    "sarif": format_sarif,
}
