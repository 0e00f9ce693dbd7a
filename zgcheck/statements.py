"""The one statement walker: the statement lists inside compound statements.

Every walk over statements (where functions are defined, where a fix inserts
a line, where an `accumulate` block is) goes through `suites`, so `except`
bodies, `finally`, `match` cases and one-line suites are never forgotten.
They look at statements only, never into expressions, which keeps finding the
functions of a large file cheap.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import libcst as cst

_SIMPLE = (cst.SimpleStatementLine, cst.SimpleStatementSuite)


def suites(stmt: cst.CSTNode) -> Iterator[Sequence[cst.CSTNode]]:
    """The statement lists directly inside a compound statement, in source order.

    An `elif` comes as a one-statement list holding that `If`; a one-line suite
    (`if c: a(); b()`) as a one-item list holding the SimpleStatementSuite.
    """
    for name in ("body", "orelse", "finalbody"):
        part = getattr(stmt, name, None)
        if isinstance(part, (cst.Else, cst.Finally)):
            part = part.body
        if isinstance(part, cst.IndentedBlock):
            yield part.body
        elif isinstance(part, (cst.SimpleStatementSuite, cst.If)):
            yield [part]
        if name == "body":  # handlers come between the try body and its else
            for handler in getattr(stmt, "handlers", ()):
                yield from suites(handler)
            for case in getattr(stmt, "cases", ()):
                yield from suites(case)


def function_defs(body: Sequence[cst.CSTNode]) -> Iterator[cst.FunctionDef]:
    """Every function definition at any depth, walking statements only (never expressions)."""
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef):
            yield stmt
        if not isinstance(stmt, _SIMPLE):
            for suite in suites(stmt):
                yield from function_defs(suite)


def direct_defs(body: Sequence[cst.CSTNode]) -> Iterator[cst.FunctionDef]:
    """Functions defined in this body at any statement depth, but not inside another def or class."""
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef):
            yield stmt
        elif not isinstance(stmt, (cst.ClassDef, *_SIMPLE)):
            for suite in suites(stmt):
                yield from direct_defs(suite)


def flatten_top(body: Sequence[cst.CSTNode]) -> Iterator[cst.CSTNode]:
    """Statements of a body, looking into if/try/with blocks (defs under `if TYPE_CHECKING`,
    a fallback `def` in `except ImportError:`...), never into defs, classes or loops."""
    for stmt in body:
        if isinstance(stmt, (cst.If, cst.Try, cst.TryStar, cst.With)):
            for suite in suites(stmt):
                yield from flatten_top(suite)
        else:
            yield stmt
