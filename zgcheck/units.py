"""Statement-level walks over libcst bodies: where functions are defined.

They look at statements only, never into expressions, which is what keeps
finding the functions of a large file cheap.
"""

from __future__ import annotations

from typing import Sequence

import libcst as cst


def function_defs(body: Sequence[cst.CSTNode]):
    """Every function definition at any depth, walking statements only (never expressions)."""
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef):
            yield stmt
        if isinstance(stmt, cst.SimpleStatementLine):
            continue
        for suite in suites(stmt):
            yield from function_defs(suite)


def direct_defs(body: Sequence[cst.CSTNode]):
    """Functions defined in this body at any statement depth, but not inside another def or class."""
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef):
            yield stmt
        elif not isinstance(stmt, (cst.ClassDef, cst.SimpleStatementLine)):
            for suite in suites(stmt):
                yield from direct_defs(suite)


def suites(stmt: cst.CSTNode):
    """The statement lists directly inside a compound statement."""
    for name in ("body", "orelse", "finalbody"):
        part = getattr(stmt, name, None)
        if isinstance(part, cst.IndentedBlock):
            yield part.body
        elif isinstance(part, (cst.Else, cst.Finally)) and isinstance(part.body, cst.IndentedBlock):
            yield part.body.body
        elif isinstance(part, cst.If):
            yield [part]
    for handler in getattr(stmt, "handlers", ()):
        if isinstance(handler.body, cst.IndentedBlock):
            yield handler.body.body
    for case in getattr(stmt, "cases", ()):
        if isinstance(case.body, cst.IndentedBlock):
            yield case.body.body


def flatten_top(body: Sequence[cst.CSTNode]):
    """Statements of a body, looking into if/try/with blocks (defs under `if TYPE_CHECKING` etc.)."""
    for stmt in body:
        if isinstance(stmt, (cst.If, cst.Try, cst.With)):
            yield from flatten_top(stmt.body.body)
            orelse = getattr(stmt, "orelse", None)
            if orelse is not None and hasattr(orelse, "body"):
                inner = orelse.body.body if hasattr(orelse.body, "body") else []
                yield from flatten_top(inner)
        else:
            yield stmt
