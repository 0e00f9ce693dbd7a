"""Edit machinery: statements located by span, edits applied until stable, fixes proven safe.

Each rule builds its own fix (`Rule.fix`) from these operations.

Edits are (line, col) ranges over the decoded text, so every byte outside
them survives: comments, blank lines, tabs, CRLF, BOM and encoding cookies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import libcst as cst

from .screen import LINE
from .source import ParsedSource
from .statements import suites
from .types import Applicability, Diagnostic, Edit, Fix, Span

MAX_ROUNDS = 10


# --- where statements are, and edits relative to them -----------------------

@dataclass
class _Stmt:
    node: cst.BaseSmallStatement
    span: Span
    line: cst.CSTNode  # the SimpleStatementLine or SimpleStatementSuite holding it
    line_span: Span
    block: Sequence[cst.CSTNode]  # the statements of the enclosing block
    index: int  # of `line` in `block`


class SourceEdits:
    """Every small statement of a parsed file with its line and enclosing block: what a
    rule's fix needs to insert or move a statement (see `rules.base.Edits`)."""

    def __init__(self, parsed: ParsedSource):
        self.parsed = parsed
        self.stmts: List[_Stmt] = []
        self._walk(parsed.module.body)
        self.lines = LINE.findall(parsed.module.code)

    def _walk(self, body: Sequence[cst.CSTNode]) -> None:
        for index, stmt in enumerate(body):
            if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
                self._add_line(stmt, body, index)
            else:
                for suite in suites(stmt):
                    self._walk(suite)

    def _add_line(self, line: cst.CSTNode, block: Sequence[cst.CSTNode], index: int) -> None:
        line_span = self.parsed.span(line)
        for small in line.body:
            self.stmts.append(_Stmt(small, self.parsed.span(small), line, line_span, block, index))

    def _containing(self, span: Span) -> Optional[_Stmt]:
        best = None
        for stmt in self.stmts:
            s = stmt.span
            if (s.start_line, s.start_col) <= (span.start_line, span.start_col) and \
                    (s.end_line, s.end_col) >= (span.end_line, span.end_col):
                if best is None or best.span <= s:
                    best = stmt
        return best

    def _indent_of(self, line_no: int) -> str:
        text = self.lines[line_no - 1] if line_no - 1 < len(self.lines) else ""
        return text[: len(text) - len(text.lstrip(" \t"))]

    # -- what rules call ---------------------------------------------------------
    def insert_after(self, span: Span, code: str) -> Optional[Edit]:
        """An edit adding `code` as the next statement after the one holding span."""
        stmt = self._containing(span)
        return self._insert_after(stmt, code) if stmt is not None else None

    def next_statement(self, span: Span) -> Optional[Tuple[str, Span]]:
        """(text, span) of the statement right after the one holding span, in its block."""
        stmt = self._containing(span)
        if stmt is None:
            return None
        nxt: Optional[cst.CSTNode] = None
        line = stmt.line
        if stmt.node is not line.body[-1]:
            nxt = line.body[list(line.body).index(stmt.node) + 1]
        elif stmt.index + 1 < len(stmt.block) and isinstance(stmt.block[stmt.index + 1], cst.SimpleStatementLine):
            nxt = stmt.block[stmt.index + 1].body[0]
        return (self.parsed.text(nxt).strip(), self.parsed.span(nxt)) if nxt is not None else None

    def insert_before(self, span: Span, code: str) -> Optional[Edit]:
        """An edit adding `code` as the statement just before the one holding span (or the
        compound statement starting at span)."""
        stmt = self._containing(span)
        newline = self.parsed.module.default_newline
        if stmt is None:
            line = span.start_line
            text = self.lines[line - 1] if line - 1 < len(self.lines) else ""
            if len(text) - len(text.lstrip(" \t")) + 1 != span.start_col:
                return None  # not the first thing on its line
            return Edit(line, 1, line, 1, f"{self._indent_of(line)}{code}{newline}")
        if isinstance(stmt.line, cst.SimpleStatementLine) and stmt.node is stmt.line.body[0]:
            line = stmt.line_span.start_line
            return Edit(line, 1, line, 1, f"{self._indent_of(line)}{code}{newline}")
        s = stmt.span  # `a; loss.backward()` or `if c: loss.backward()`: stay on the line
        return Edit(s.start_line, s.start_col, s.start_line, s.start_col, f"{code}; ")

    def move_after(self, span: Span, anchor: Span) -> Optional[Tuple[Edit, ...]]:
        """Edits moving the statement holding span (with its trailing comment) to just
        after the one holding anchor; None when that cannot be done cleanly."""
        moved, target = self._containing(span), self._containing(anchor)
        if moved is None or target is None:
            return None
        # Only a statement that is a whole line of its own moves cleanly, and only out of
        # a block that keeps another statement (an emptied block would not parse).
        if not _sole_on_its_line(moved) or len(moved.block) < 2 or moved.line is target.line:
            return None
        if moved.span.start_line != moved.line_span.end_line or moved.line_span.end_line == 0:
            return None
        line = moved.line_span.start_line
        lines = self.lines
        if line >= len(lines) and not lines[-1].endswith(("\n", "\r")):
            return None
        text = self.parsed.text(moved.node).strip()
        comment = lines[line - 1][len(self._indent_of(line)) + len(text):].rstrip("\r\n")
        delete = Edit(line, 1, line + 1, 1, "")
        insert = self._insert_after(target, text + (comment if comment.strip().startswith("#") else ""))
        if (insert.start_line, insert.start_col) == (delete.start_line, delete.start_col) and \
                insert.content.endswith(("\n", "\r")):
            # `if c: step` then the zero on the next line: it moves into the block, re-indented.
            return (Edit(delete.start_line, 1, delete.end_line, 1, insert.content),)
        if (insert.start_line, insert.start_col) == (delete.end_line, delete.end_col) or \
                delete.start_line <= insert.start_line < delete.end_line:
            return None
        return tuple(sorted((delete, insert), key=lambda e: (e.start_line, e.start_col)))

    def _insert_after(self, stmt: _Stmt, code: str) -> Edit:
        newline = self.parsed.module.default_newline
        if isinstance(stmt.line, cst.SimpleStatementLine) and stmt.node is stmt.line.body[-1]:
            end = stmt.line_span.end_line
            indent = self._indent_of(stmt.line_span.start_line)
            if end < len(self.lines) or self.lines[-1].endswith(("\n", "\r")):
                return Edit(end + 1, 1, end + 1, 1, f"{indent}{code}{newline}")
            last = self.lines[-1]
            return Edit(end, len(last) + 1, end, len(last) + 1, f"{newline}{indent}{code}")
        # `if c: opt.step()` or `a; opt.step(); b`: stay on the same line.
        s = stmt.span
        return Edit(s.end_line, s.end_col, s.end_line, s.end_col, f"; {code}")


def _sole_on_its_line(stmt: _Stmt) -> bool:
    return isinstance(stmt.line, cst.SimpleStatementLine) and len(stmt.line.body) == 1


# --- applying edits --------------------------------------------------------

def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping edits (1-based line/col over `text`)."""
    lines = LINE.findall(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(line: int, col: int) -> int:
        if line - 1 >= len(lines):
            return len(text)
        return starts[line - 1] + col - 1

    out = text
    for edit in sorted(edits, key=lambda e: (e.start_line, e.start_col), reverse=True):
        a, b = offset(edit.start_line, edit.start_col), offset(edit.end_line, edit.end_col)
        out = out[:a] + edit.content + out[b:]
    return out


def _range(edit: Edit):
    return (edit.start_line, edit.start_col), (edit.end_line, edit.end_col)


def overlaps(a: Fix, b: Fix) -> bool:
    for x in a.edits:
        for y in b.edits:
            (xs, xe), (ys, ye) = _range(x), _range(y)
            if xs < ye and ys < xe or xs == ys:
                return True
    return False


# --- the fix loop ----------------------------------------------------------

Checker = Callable[[str], List[Diagnostic]]


@dataclass
class FixOutcome:
    text: str
    fixed: List[Diagnostic] = field(default_factory=list)
    remaining: List[Diagnostic] = field(default_factory=list)
    # Fixes not applied because they overlapped another and did not converge.
    conflicts: List[Diagnostic] = field(default_factory=list)
    error: Optional[str] = None  # the fixed text would not parse: nothing applied

    @property
    def changed(self) -> bool:
        return bool(self.fixed)


def applicable(diagnostic: Diagnostic, unsafe: bool) -> bool:
    fix = diagnostic.fix
    if fix is None:
        return False
    threshold = Applicability.UNSAFE if unsafe else Applicability.SAFE
    return fix.applicability >= threshold


def fix_text(text: str, check: Checker, unsafe: bool = False) -> FixOutcome:
    """Apply applicable fixes, re-checking after each round, until nothing changes."""
    outcome = FixOutcome(text)
    deferred: List[Diagnostic] = []
    for _ in range(MAX_ROUNDS):
        diagnostics = check(outcome.text)
        if any(d.code.startswith("ZG9") for d in diagnostics):
            outcome.remaining = diagnostics  # unparseable to begin with: report, touch nothing
            break
        todo = [d for d in diagnostics if applicable(d, unsafe)]
        chosen: List[Diagnostic] = []
        deferred = []
        for d in todo:
            if any(overlaps(d.fix, c.fix) for c in chosen):
                deferred.append(d)
            else:
                chosen.append(d)
        if not chosen:
            outcome.remaining = diagnostics
            break
        candidate = apply_edits(outcome.text, [e for d in chosen for e in d.fix.edits])
        after = check(candidate)
        if any(d.code == "ZG901" for d in after):
            outcome.error = "a fix produced code that does not parse; nothing was written"
            outcome.remaining = diagnostics
            break
        if len(after) >= len(diagnostics):
            # The round removed nothing: applying it again would only stack the same edit.
            outcome.remaining = diagnostics
            deferred = chosen + deferred
            break
        outcome.text = candidate
        outcome.fixed.extend(chosen)
    else:
        outcome.remaining = check(outcome.text)
    outcome.conflicts = [d for d in deferred if d in outcome.remaining]
    return outcome


def verified_applicability(text: str, diagnostic: Diagnostic, before: Sequence[Diagnostic],
                           check: Checker) -> Applicability:
    """Keep SAFE only if applying this fix alone leaves strictly fewer diagnostics and none new."""
    fix = diagnostic.fix
    if fix is None or fix.applicability < Applicability.SAFE:
        return fix.applicability if fix else Applicability.DISPLAY_ONLY
    return verdict(diagnostic, before, [d.code for d in check(apply_edits(text, fix.edits))])


def verdict(diagnostic: Diagnostic, before: Sequence[Diagnostic], after: Sequence[str]) -> Applicability:
    """The applicability of a SAFE fix, from the codes of every diagnostic of the text with
    this fix alone applied: DISPLAY_ONLY if that broke the file, SAFE if those codes are
    the ones of `before` less this diagnostic's (or fewer), else UNSAFE."""
    if any(code.startswith("ZG9") for code in after):
        return Applicability.DISPLAY_ONLY
    remaining = [d.code for d in before if d is not diagnostic]
    for code in after:
        if code in remaining:
            remaining.remove(code)
        else:
            return Applicability.UNSAFE
    return Applicability.SAFE
