"""Fixes: findings -> text edits; applying them until stable; proving them safe.

Edits are (line, col) ranges over the decoded text, so every byte outside
them survives: comments, blank lines, tabs, CRLF, BOM and encoding cookies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import libcst as cst

from .rules import Finding
from .source import ParsedSource
from .types import Applicability, Diagnostic, Edit, Fix, Span

MAX_ROUNDS = 10


# --- where statements are ---------------------------------------------------

@dataclass
class _Stmt:
    node: cst.BaseSmallStatement
    span: Span
    line: cst.CSTNode  # the SimpleStatementLine or SimpleStatementSuite holding it
    line_span: Span
    block: Sequence[cst.CSTNode]  # the statements of the enclosing block
    index: int  # of `line` in `block`


class StatementIndex:
    """Every small statement with its line and enclosing block, for locating edits."""

    def __init__(self, parsed: ParsedSource):
        self.parsed = parsed
        self.stmts: List[_Stmt] = []
        self._walk(parsed.module.body)
        self.lines = parsed.module.code.splitlines(keepends=True)

    def _walk(self, body: Sequence[cst.CSTNode]) -> None:
        for index, stmt in enumerate(body):
            if isinstance(stmt, cst.SimpleStatementLine):
                self._add_line(stmt, body, index)
                continue
            for child in stmt.children:
                self._visit_suites(child)

    def _visit_suites(self, node: cst.CSTNode) -> None:
        if isinstance(node, cst.IndentedBlock):
            self._walk(node.body)
        elif isinstance(node, cst.SimpleStatementSuite):
            self._add_line(node, [node], 0)
        elif isinstance(node, (cst.Else, cst.Finally, cst.ExceptHandler, cst.ExceptStarHandler,
                               cst.If, cst.MatchCase)) or hasattr(node, "body"):
            for child in node.children:
                self._visit_suites(child)

    def _add_line(self, line: cst.CSTNode, block: Sequence[cst.CSTNode], index: int) -> None:
        line_span = self.parsed.span(line)
        for small in line.body:
            self.stmts.append(_Stmt(small, self.parsed.span(small), line, line_span, block, index))

    def containing(self, span: Span) -> Optional[_Stmt]:
        best = None
        for stmt in self.stmts:
            s = stmt.span
            if (s.start_line, s.start_col) <= (span.start_line, span.start_col) and \
                    (s.end_line, s.end_col) >= (span.end_line, span.end_col):
                if best is None or best.span <= s:
                    best = stmt
        return best

    def indent_of(self, line_no: int) -> str:
        text = self.lines[line_no - 1] if line_no - 1 < len(self.lines) else ""
        return text[: len(text) - len(text.lstrip(" \t"))]


def _sole_on_its_line(stmt: _Stmt) -> bool:
    return isinstance(stmt.line, cst.SimpleStatementLine) and len(stmt.line.body) == 1


def _insert_after(index: StatementIndex, stmt: _Stmt, code: str) -> Edit:
    """An edit adding `code` as the next statement after stmt, in the same block."""
    newline = index.parsed.module.default_newline
    if isinstance(stmt.line, cst.SimpleStatementLine) and stmt.node is stmt.line.body[-1]:
        end = stmt.line_span.end_line
        indent = index.indent_of(stmt.line_span.start_line)
        if end < len(index.lines) or index.lines[-1].endswith(("\n", "\r")):
            return Edit(end + 1, 1, end + 1, 1, f"{indent}{code}{newline}")
        last = index.lines[-1]
        return Edit(end, len(last) + 1, end, len(last) + 1, f"{newline}{indent}{code}")
    # `if c: opt.step()` or `a; opt.step(); b`: stay on the same line.
    s = stmt.span
    return Edit(s.end_line, s.end_col, s.end_line, s.end_col, f"; {code}")


def _next_statement(stmt: _Stmt) -> Optional[cst.CSTNode]:
    line = stmt.line
    if stmt.node is not line.body[-1]:
        return line.body[list(line.body).index(stmt.node) + 1]
    if stmt.index + 1 < len(stmt.block):
        nxt = stmt.block[stmt.index + 1]
        if isinstance(nxt, cst.SimpleStatementLine):
            return nxt.body[0]
    return None


def _call_at(stmt: _Stmt, span: Span, parsed: ParsedSource) -> Optional[cst.Call]:
    found = []

    class Finder(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            if parsed.span(node) == span:
                found.append(node)

    stmt.node.visit(Finder())
    return found[0] if found else None


def _is_update_of(node: cst.CSTNode, scaler: str, parsed: ParsedSource) -> bool:
    if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
        func = node.value.func
        return isinstance(func, cst.Attribute) and func.attr.value == "update" \
            and parsed.text(func.value) == scaler
    return False


# --- fixes per rule --------------------------------------------------------

def make_fix(finding: Finding, parsed: ParsedSource, index: StatementIndex) -> Optional[Fix]:
    """The fix for a finding, with preliminary safety (re-analysis decides the rest)."""
    if finding.site.path != parsed.path:
        return None
    if finding.code == "ZG001":
        return _fix_missing_zero(finding, parsed, index)
    if finding.code == "ZG002":
        return _fix_zero_before_step(finding, parsed, index)
    return None


def _receiver(call: cst.Call, parsed: ParsedSource) -> Optional[Tuple[str, Optional[str]]]:
    """(optimizer text, scaler text or None) as written at the step call."""
    func = call.func
    if not isinstance(func, cst.Attribute):
        return None
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if func.attr.value == "optimizer_step" and positional:  # xm.optimizer_step(opt)
        return parsed.text(positional[0].value), None
    if func.attr.value == "step":
        receiver = parsed.text(func.value)
        if "scaler" in receiver.lower() and positional:
            return parsed.text(positional[0].value), receiver
        return receiver, None
    return None


def _fix_missing_zero(finding: Finding, parsed: ParsedSource, index: StatementIndex) -> Optional[Fix]:
    stmt = index.containing(finding.site.span)
    if stmt is None:
        return None
    call = _call_at(stmt, finding.site.span, parsed)
    found = _receiver(call, parsed) if call is not None else None
    if found is None:
        return None
    optimizer, scaler = found
    anchor = stmt
    nxt = _next_statement(stmt)
    if scaler is not None and nxt is not None and _is_update_of(nxt, scaler, parsed):
        anchor = next((s for s in index.stmts if s.node is nxt), stmt)
    code = f"{optimizer}.zero_grad()"
    edit = _insert_after(index, anchor, code)
    where = "after `scaler.update()`" if anchor is not stmt else f"after `{finding.site.text}`"
    return Fix(f"Insert `{code}` {where}", _preliminary(finding), (edit,))


def _fix_zero_before_step(finding: Finding, parsed: ParsedSource, index: StatementIndex) -> Optional[Fix]:
    zero = index.containing(finding.site.span)
    step = index.containing(finding.step.span)
    if zero is None or step is None or finding.step.path != parsed.path:
        return None
    # Only a zero that is a whole line of its own moves cleanly, and only out of a
    # block that keeps another statement (an emptied block would not parse).
    if not _sole_on_its_line(zero) or len(zero.block) < 2 or zero.line is step.line:
        return None
    if zero.span.start_line != zero.line_span.end_line or zero.line_span.end_line == 0:
        return None
    line = zero.line_span.start_line
    lines = index.lines
    if line >= len(lines) and not lines[-1].endswith(("\n", "\r")):
        return None
    text = parsed.text(zero.node).strip()
    comment = lines[line - 1][len(index.indent_of(line)) + len(text):].rstrip("\r\n")
    delete = Edit(line, 1, line + 1, 1, "")
    insert = _insert_after(index, step, text + (comment if comment.strip().startswith("#") else ""))
    if (insert.start_line, insert.start_col) == (delete.end_line, delete.end_col) or \
            delete.start_line <= insert.start_line < delete.end_line:
        return None
    return Fix(f"Move `{text}` after `{finding.step.text}`", _preliminary(finding),
               tuple(sorted((delete, insert), key=lambda e: (e.start_line, e.start_col))))


def _preliminary(finding: Finding) -> Applicability:
    """Safe only when the fix stays in the function holding the loop."""
    inside = finding.site.root and finding.step.root
    return Applicability.SAFE if inside else Applicability.UNSAFE


# --- applying edits --------------------------------------------------------

def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping edits (1-based line/col over `text`)."""
    lines = text.splitlines(keepends=True)
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
    after = check(apply_edits(text, fix.edits))
    if any(d.code.startswith("ZG9") for d in after):
        return Applicability.DISPLAY_ONLY
    remaining = [d.code for d in before if d is not diagnostic]
    for d in after:
        if d.code in remaining:
            remaining.remove(d.code)
        else:
            return Applicability.UNSAFE
    return Applicability.SAFE
