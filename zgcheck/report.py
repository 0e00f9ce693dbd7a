"""Pure formatters: diagnostics (+ source text for context) -> a string."""

from __future__ import annotations

import json
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence

from .types import Applicability, Diagnostic

Sources = Dict[str, Optional[str]]  # path -> text, for showing the offending line


def _where(d: Diagnostic) -> str:
    cell = f"cell {d.cell}:" if d.cell else ""
    return f"{d.path}:{cell}{d.span.start_line}:{d.span.start_col}"


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
        line = _line(sources.get(d.path), d.span.start_line)
        if line is not None:
            width = len(str(d.span.end_line))
            out.append(f"{' ' * width} |")
            out.append(f"{d.span.start_line:>{width}} | {line}")
            length = (d.span.end_col - d.span.start_col) if d.span.end_line == d.span.start_line else 1
            out.append(f"{' ' * width} | {' ' * (d.span.start_col - 1)}{s('^' * max(1, length), '1;31')}")
        for rel in d.related:
            out.append(f"  {s('note', '1;36')}: {rel.message} at {rel.path}:{rel.span.start_line}:{rel.span.start_col}")
        for ev in d.evidence:
            out.append(f"  {s('evidence', '1;36')}: {ev}")
        if d.fix is not None:
            kind = "fix" if d.fix.applicability is Applicability.SAFE else "unsafe fix"
            out.append(f"  {s('help', '1;32')}: {d.fix.title} ({kind})")
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def _line(text: Optional[str], lineno: int) -> Optional[str]:
    if text is None:
        return None
    lines = text.splitlines()
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1].expandtabs(4) if "\t" not in lines[lineno - 1][:1] else lines[lineno - 1]
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
        "related": [{"message": r.message, "filename": r.path,
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
        props = (f"title={_escape_property('zgcheck (' + d.code + ')')},file={_escape_property(d.path)},"
                 f"line={d.span.start_line},col={d.span.start_col},"
                 f"endLine={d.span.end_line},endColumn={d.span.end_col}")
        out.append(f"::error {props}::{_escape_data(f'{d.code} {d.message}')}\n")
    return "".join(out)


def format_statistics(diagnostics: Sequence[Diagnostic]) -> str:
    counts = Counter((d.code, d.name) for d in diagnostics)
    fixable = Counter(d.code for d in diagnostics if d.fix is not None
                      and d.fix.applicability is Applicability.SAFE)
    lines = [f"{n:>5}\t{code}\t{'[*] ' if fixable[code] else ''}{name}"
             for (code, name), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join(lines) + ("\n" if lines else "")


FORMATTERS: Dict[str, Callable[..., str]] = {
    "text": format_text,
    "concise": format_concise,
    "json": format_json,
    "github": format_github,
}
