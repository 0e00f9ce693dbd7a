"""Suppression comments: `# noqa`, `# noqa: ZG001`, `# zgcheck: ignore[ZG001]`, `# zgcheck: skip-file`.

Comments are found with `tokenize`, so a `# noqa` inside a string does not
count, and only for files that have diagnostics. A diagnostic is suppressed by
a directive on its first line, on the last line of its span, or on the last
line of the logical line (statement) it starts in, so a call spread over
several lines can carry its `# noqa` after the closing parenthesis. Codes are
matched as prefixes, as `--select` does (`# noqa: ZG0` covers ZG001 and ZG002).
Tool diagnostics (ZG9xx: unparseable, unreadable files) cannot be silenced by
`noqa`; `# zgcheck: skip-file` drops every diagnostic of the file.

The noqa tooling lives here too: `add_noqa` (`check --add-noqa`) and `unused`
(ZG100, Ruff's RUF100: a directive naming a code of ours that suppresses nothing).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .codes import CODES, UNUSED_NOQA, is_tool
from .fixes import apply_edits
from .reading import decode_for_display, read_bytes
from .screen import LINE, NEWLINE
from .types import Applicability, Diagnostic, Edit, Fix, Span

# flake8's grammar: codes after `noqa:` separated by commas or spaces; anything
# else after `noqa` (or no codes at all) makes it a blanket noqa.
NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
IGNORE = re.compile(r"#\s*zgcheck:\s*ignore\b(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
SKIP_FILE = re.compile(r"#\s*zgcheck:\s*skip-file\b", re.IGNORECASE)
CODE = re.compile(r"[A-Z]+[0-9]*", re.IGNORECASE)
ANY_DIRECTIVE = re.compile(r"noqa|zgcheck", re.IGNORECASE)  # without one, nothing to tokenize
OURS = "ZG"  # the codes a directive names that zgcheck judges (`# noqa: E501` is another tool's)


@dataclass(frozen=True)
class Directive:
    """One `# noqa[: codes]` or `# zgcheck: ignore[[codes]]` in a comment; columns are
    0-based offsets into its line."""

    line: int
    codes: Optional[Tuple[str, ...]]  # None: every code
    shared: bool  # `# noqa`, read by every linter; `# zgcheck: ignore` is zgcheck's alone
    start: int
    end: int
    codes_start: int  # where the code list is (-1 without one)
    codes_end: int
    comment_start: int
    comment_end: int


@dataclass
class Directives:
    """Suppressions by line, and where each statement ends."""

    by_line: Dict[int, List[Directive]] = field(default_factory=dict)
    logical_end: Dict[int, int] = field(default_factory=dict)  # line -> last line of its statement
    skip_file: bool = False

    def lines_of(self, d: Diagnostic) -> Iterable[int]:
        return {d.span.start_line, d.span.end_line, self.logical_end.get(d.span.start_line, d.span.start_line)}

    def covering(self, d: Diagnostic) -> List[Tuple[Directive, Optional[str]]]:
        """(directive, code) pairs that suppress d; code None for a directive without codes."""
        out = []
        for line in self.lines_of(d):
            for directive in self.by_line.get(line, ()):
                if directive.codes is None:
                    out.append((directive, None))
                out.extend((directive, c) for c in directive.codes or () if d.code.startswith(c))
        return out

    def suppresses(self, d: Diagnostic) -> bool:
        return bool(self.covering(d))


def suppressible(code: str) -> bool:
    return not is_tool(code)


def scan(text: str, always: bool = False) -> Directives:
    """Every suppression directive in the comments of text (and, with `always` or when
    there is one, where each statement ends)."""
    found = Directives()
    start = None  # first line of the current logical line
    if not always and ANY_DIRECTIVE.search(text) is None:
        return found
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if start is None and tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT,
                                                  tokenize.DEDENT, tokenize.ENCODING):
                start = tok.start[0]
            if tok.type == tokenize.COMMENT:
                _parse_comment(tok, found)
            elif tok.type == tokenize.NEWLINE and start is not None:
                for line in range(start, tok.end[0] + 1):
                    found.logical_end[line] = tok.end[0]
                start = None
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Unparseable text: comment lines still count for skip-file.
        for lineno, line in enumerate(NEWLINE.split(text), 1):
            if line.lstrip().startswith("#") and SKIP_FILE.search(line):
                found.skip_file = True
    return found


def _parse_comment(tok: tokenize.TokenInfo, found: Directives) -> None:
    comment, (line, col) = tok.string, tok.start
    if SKIP_FILE.search(comment):
        found.skip_file = True
    for pattern, shared in ((NOQA, True), (IGNORE, False)):
        for match in pattern.finditer(comment):
            listed = match.group("codes")
            named = tuple(dict.fromkeys(c.upper() for c in CODE.findall(listed or "")))
            a, b = match.span("codes") if listed is not None else (-1, -1)
            found.by_line.setdefault(line, []).append(Directive(
                line, named or None, shared, col + match.start(), col + match.end(),
                col + a if a >= 0 else -1, col + b if b >= 0 else -1, col, col + len(comment)))


def apply(diagnostics: Sequence[Diagnostic], text: str, path: Optional[str] = None,
          read: Optional[Callable[[str], Optional[str]]] = None) -> List[Diagnostic]:
    """The diagnostics that no comment suppresses.

    text is the source of `path`; a diagnostic reported in another file (a helper
    imported from it) is judged by that file's own comments, read with `read`.
    """
    if not diagnostics:
        return list(diagnostics)
    read = read or _read
    scans: Dict[Optional[str], Optional[Directives]] = {}
    out = []
    for d in diagnostics:
        where = d.path if path is not None else None
        if where not in scans:
            other = text if where is None or where == path else read(where)
            scans[where] = scan(other) if other is not None else None
        directives = scans[where]
        if directives is None:
            out.append(d)
        elif not directives.skip_file and not (suppressible(d.code) and directives.suppresses(d)):
            out.append(d)
    return out


def _read(path: str) -> Optional[str]:
    try:
        return decode_for_display(read_bytes(path))
    except OSError:
        return None


def skips_file(text: str) -> bool:
    return scan(text).skip_file


# --- ZG100: directives that suppress nothing --------------------------------

def unused(diagnostics: Sequence[Diagnostic], text: str, path: str, is_selected: Callable[[str], bool],
           events: "re.Pattern[str]") -> List[Diagnostic]:
    """ZG100 for each directive of text (the file at `path`) naming a code of ours that
    suppressed none of `diagnostics` (every diagnostic of the file, before suppression).

    Only the lines `judged_lines` names are looked at (`events` finds an event call in a
    function's text): elsewhere a finding may come from a caller this file does not show.
    A code is judged only when every rule it names is selected for this file; a bare
    `# noqa` is every linter's and is never judged, a bare `# zgcheck: ignore` is judged
    when it suppresses nothing at all. A directive naming ZG100 (or a prefix of it) is kept.
    """
    directives = scan(text)
    if directives.skip_file or not directives.by_line:
        return []
    judged = judged_lines(text, events)
    used = set()
    for d in diagnostics:
        if d.path == path and suppressible(d.code):
            used.update((id(directive), code) for directive, code in directives.covering(d))
    lines = LINE.findall(text)
    out = []
    for line, found in sorted(directives.by_line.items()):
        if not judged(line):
            continue
        for directive in found:
            if any(other is not directive and _covers_unused(other) for other in found):
                continue  # `# noqa: ZG001  # noqa: ZG100`: ZG100 is suppressed on this line
            verdict = _verdict(directive, used, is_selected)
            if verdict:
                out.append(_unused_diagnostic(directive, verdict, path, lines[line - 1]))
    return out


def _verdict(directive: Directive, used: set, is_selected: Callable[[str], bool]) -> Dict[str, str]:
    """The directive's codes that suppress nothing, each with why ("unused", "unknown", ...)."""
    rules = [c for c in CODES if suppressible(c)]
    if directive.codes is None:
        if directive.shared or (id(directive), None) in used or not all(is_selected(c) for c in rules):
            return {}
        return {"": "unused"}
    if _covers_unused(directive):
        return {}
    out = {}
    for code in directive.codes:
        if not code.startswith(OURS):
            continue
        named = [c for c in CODES if c.startswith(code)]
        if not named:
            out[code] = "unknown"
        elif not any(suppressible(c) for c in named):
            out[code] = "never suppressed"  # tool diagnostics (ZG9xx) ignore noqa
        elif all(is_selected(c) for c in named if suppressible(c)) and (id(directive), code) not in used:
            out[code] = "unused"
    return out


def _covers_unused(directive: Directive) -> bool:
    return directive.codes is None or any(UNUSED_NOQA.startswith(c) for c in directive.codes)


def _unused_diagnostic(directive: Directive, verdict: Dict[str, str], path: str, line_text: str) -> Diagnostic:
    written = line_text[directive.start:directive.end]
    if "" in verdict:
        detail = "it suppresses nothing on this line"
    else:
        detail = "; ".join(f"{why}: {', '.join(f'`{c}`' for c in verdict if verdict[c] == why)}"
                           for why in dict.fromkeys(verdict.values()))
    kept = [c for c in directive.codes or () if c not in verdict]
    title = f"Remove unused {', '.join(c for c in verdict if c) or 'directive'}" if kept else \
        f"Remove `{written}`"
    fix = Fix(title, Applicability.SAFE, _removal(directive, kept, line_text))
    span = Span(directive.line, directive.start + 1, directive.line, directive.end + 1)
    return Diagnostic(UNUSED_NOQA, CODES[UNUSED_NOQA].name, f"Unused suppression `{written}` ({detail})",
                      path, span, fix=fix)


def _removal(directive: Directive, kept: Sequence[str], line_text: str) -> Tuple[Edit, ...]:
    """Edits keeping only `kept` of the directive's codes, or removing the directive (with
    its comment when nothing else is in it, the line when nothing else is on it)."""
    row = directive.line
    if kept:
        return (Edit(row, directive.codes_start + 1, row, directive.codes_end + 1, ", ".join(kept)),)
    body = line_text.rstrip("\r\n")
    rest = body[directive.end:directive.comment_end]
    before = body[:directive.start]
    if directive.start == directive.comment_start and rest.strip():
        return (Edit(row, directive.start + 1, row, directive.end + 1, "#"),)  # `# noqa: ZG001 why` -> `# why`
    if not before.strip() and not rest.strip() and directive.comment_end == len(body):  # a comment line
        ended = len(body) < len(line_text)
        return (Edit(row, 1, row + 1, 1, "") if ended else Edit(row, 1, row, len(body) + 1, ""),)
    cut = len(before.rstrip(" \t"))
    if directive.start > directive.comment_start:  # `# type: ignore  # noqa: ZG001`: keep the first
        cut = max(cut, directive.comment_start + 1)
    return (Edit(row, cut + 1, row, directive.end + 1 + (len(rest) if not rest.strip() else 0), ""),)


def judged_lines(text: str, events: re.Pattern) -> Callable[[int], bool]:
    """Lines where this file alone decides every finding: module-level code, and the loops
    of a function whose own body holds an event (`events` finds one in its text). A line
    outside those may hold a finding that only a caller in another file brings out."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return lambda line: False
    lines = LINE.findall(text)
    spans: List[Tuple[int, int]] = []  # function bodies: lines not judged
    loops: List[Tuple[int, int, int]] = []  # (first, last, its function's line): judged again

    def visit(node: ast.AST, in_function: Optional[ast.AST]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                spans.append((child.lineno, child.end_lineno or child.lineno))
                visit(child, child)
                continue
            if in_function is not None and isinstance(child, (ast.For, ast.AsyncFor, ast.While)):
                first, last = in_function.lineno, in_function.end_lineno or in_function.lineno
                if events.search("".join(lines[first - 1:last])):
                    loops.append((child.lineno, child.end_lineno or child.lineno, first))
            visit(child, in_function)

    visit(tree, None)

    def judged(line: int) -> bool:
        inner = max((s for s in spans if s[0] <= line <= s[1]), default=None)
        if inner is None:
            return True
        return any(a <= line <= b and owner == inner[0] for a, b, owner in loops)

    return judged


# --- --add-noqa ------------------------------------------------------------

def add_noqa(text: str, diagnostics: Sequence[Diagnostic]) -> Tuple[str, int]:
    """text with `# noqa: CODE` on the line that suppresses each diagnostic (the last line
    of its statement), merged into a `# noqa: X` already there; and how many lines changed.

    Every other byte is kept. Tool diagnostics (which noqa cannot silence) and ZG100 (whose
    remedy is removing the directive) are left as they are."""
    wanted: Dict[int, List[str]] = {}
    directives = scan(text, always=True)
    for d in diagnostics:
        if suppressible(d.code) and d.code != UNUSED_NOQA and not directives.suppresses(d):
            line = directives.logical_end.get(d.span.start_line, d.span.start_line)
            wanted.setdefault(line, [])
            if d.code not in wanted[line]:
                wanted[line].append(d.code)
    if not wanted:
        return text, 0
    lines = LINE.findall(text)
    edits = []
    for row, new in sorted(wanted.items()):
        line_text = lines[row - 1] if row - 1 < len(lines) else ""
        listed = next((d for d in directives.by_line.get(row, ()) if d.shared and d.codes is not None), None)
        if listed is not None:  # `# noqa: E501` -> `# noqa: E501, ZG001`
            edits.append(Edit(row, listed.codes_end + 1, row, listed.codes_end + 1, "".join(f", {c}" for c in new)))
        else:
            end = len(line_text.rstrip("\r\n"))
            edits.append(Edit(row, end + 1, row, end + 1, f"  # noqa: {', '.join(new)}"))
    return apply_edits(text, edits), len(edits)
