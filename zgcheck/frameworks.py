"""Framework semantics that are not plain B/S/Z dataflow.

Hugging Face Accelerate: inside `with accelerator.accumulate(model):` the
prepared optimizer's `step()` and `zero_grad()` only act on synchronising
steps, so calling both every iteration is correct (and the dataflow sees it
as such). A *module's* `zero_grad()` in that block is not gated: it runs on
every micro-batch and wipes the window being accumulated, so the step on the
synchronising batch applies one micro-batch's gradient. That is reported as
ZG002 at the zero.
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

import libcst as cst

from .rules import Finding, Site
from .types import EventKind, Span


def accumulate_blocks(body) -> Iterator[cst.With]:
    """`with <accelerator>.accumulate(...)` statements, at any depth (not in nested defs)."""
    for stmt in body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef, cst.SimpleStatementLine)):
            continue
        if isinstance(stmt, cst.With) and any(_is_accumulate(item.item) for item in stmt.items):
            yield stmt
        for child in _child_bodies(stmt):
            yield from accumulate_blocks(child)


def _is_accumulate(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
        and expr.func.attr.value == "accumulate"


def _child_bodies(stmt) -> Iterator[List[cst.CSTNode]]:
    for name in ("body", "orelse", "finalbody"):
        part = getattr(stmt, name, None)
        while part is not None and not isinstance(part, cst.IndentedBlock) and hasattr(part, "body"):
            part = part.body
        if isinstance(part, cst.IndentedBlock):
            yield part.body
    for handler in getattr(stmt, "handlers", ()):
        if isinstance(handler.body, cst.IndentedBlock):
            yield handler.body.body


def _inside(span: Span, outer: Span) -> bool:
    return (outer.start_line, outer.start_col) <= (span.start_line, span.start_col) and \
        (span.end_line, span.end_col) <= (outer.end_line, outer.end_col)


def accumulate_wipes(analysis) -> List[Finding]:
    """ZG002 for module zeros inside Accelerate accumulate blocks."""
    findings = []
    for unit in analysis.units:
        blocks = list(accumulate_blocks(unit.body))
        if not blocks:
            continue
        _, events = analysis.graph(unit)
        flat: List[Tuple] = [e for evs in events.values() for e in evs]
        from .analysis import Scope  # local: analysis imports this module

        scope = Scope(unit)
        for block in blocks:
            block_span = analysis.parsed.span(block)
            header = Site(unit.path, analysis.parsed.span(block.items[0].item),
                          analysis.parsed.text(block.items[0].item))
            inside = [e for e in flat if _inside(e.span, block_span)]
            steps = [e for e in inside if e.kind is EventKind.STEP and
                     any(action == "S" for action, _ in analysis.actions(e, scope))]
            for event in inside:
                if event.kind is not EventKind.ZERO:
                    continue
                target = analysis.resolve(event.target, scope)
                if analysis.is_optimizer(target) or not steps:
                    continue
                step = steps[0]
                step_site = Site(unit.path, step.span, step.text)
                site = Site(unit.path, event.span, event.text)
                related = (("accumulate", header), ("step", step_site))
                findings.append(Finding("ZG002", site, related, target.key, step_site))
    return findings
