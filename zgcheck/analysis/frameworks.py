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

from typing import Iterator, List

import libcst as cst

from ..statements import suites
from ..types import Finding, Site, Span
from .frames import walk
from .units import Action, Call, Frame, Step, Zero


def accumulate_blocks(body) -> Iterator[cst.With]:
    """`with <accelerator>.accumulate(...)` statements, at any depth (not in nested defs)."""
    for stmt in body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef, cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            continue
        if isinstance(stmt, cst.With) and any(_is_accumulate(item.item) for item in stmt.items):
            yield stmt
        for suite in suites(stmt):
            yield from accumulate_blocks(suite)


def _is_accumulate(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
        and expr.func.attr.value == "accumulate"


def _inside(span: Span, outer: Span) -> bool:
    return (outer.start_line, outer.start_col) <= (span.start_line, span.start_col) and \
        (span.end_line, span.end_col) <= (outer.end_line, outer.end_col)


def _actions_within(root: Frame, span: Span) -> Iterator[Action]:
    """The root's actions at nodes inside span, and those of the helpers called there
    (`with accelerator.accumulate(policy): self.train_minibatch(batch)`)."""
    parsed = root.unit.module.parsed
    for node_id, acts in root.actions.items():
        item = root.graph.nodes[node_id].item
        if item is None or not _inside(parsed.span(item), span):
            continue
        for action in acts:
            yield action
            if isinstance(action, Call):
                yield from walk(action.frame)


def accumulate_wipes(root: Frame) -> List[Finding]:
    """ZG002 for module zeros inside Accelerate accumulate blocks of the root's own body."""
    unit = root.unit
    blocks = list(accumulate_blocks(unit.body))
    if not blocks:
        return []
    parsed = unit.module.parsed
    findings = []
    for block in blocks:
        block_span = parsed.span(block)
        header = Site(unit.path, parsed.span(block.items[0].item), parsed.text(block.items[0].item))
        inside = [a for a in _actions_within(root, block_span) if isinstance(a, (Step, Zero))]
        steps = [a for a in inside if isinstance(a, Step)]
        if not steps:
            continue
        step_site = Site(unit.path, steps[0].site.span, steps[0].site.text)
        for action in inside:
            # The prepared optimizer's own zero is gated by Accelerate; a module's is not.
            if isinstance(action, Zero) and action.wipes and not action.covers.optimizers and not action.covers.containers:
                site = Site(action.site.path, action.site.span, action.site.text)
                related = (("accumulate", header), ("step", step_site))
                findings.append(Finding("ZG002", site, related, action.site.text, step_site))
    return findings
