"""The analysis of one file: units -> frames of typed actions -> dataflow -> findings.

    module.Module        the file's units and their graphs (other files via the Workspace)
    resolve.plan         each root's events -> typed actions, once, helpers in place
    engine.run           the rules' hooks over the dataflow of one root
    frameworks           framework semantics on the same actions (Accelerate)

Every unit is analysed as a root; a helper is also analysed inside each root
that calls it, with the caller's facts flowing through it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Collection, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

from ..recognise import PER_BATCH_FUNCTIONS
from ..rules import ALL_RULES, Rule
from ..source import ParsedSource
from ..types import EventKind, Finding
from . import engine, frameworks, objects
from .module import Module, Workspace
from .resolve import plan
from .units import Call, Frame, Key

__all__ = ["Module", "RootFindings", "Workspace", "analyse", "analyse_roots", "merge_findings"]


@dataclass(frozen=True)
class RootFindings:
    """What one root found, and the units its analysis ran over (itself and every helper
    it reached): text outside those units cannot change what it finds."""

    key: Key
    reaches: FrozenSet[Key]
    findings: Tuple[Finding, ...]


def analyse(parsed: ParsedSource, workspace: Workspace, rules: Sequence[Rule] = ALL_RULES) -> List[Finding]:
    """Every finding of one parsed file, merged across the roots that reach it."""
    return merge_findings([f for root in analyse_roots(parsed, workspace, rules) for f in root.findings])


def analyse_roots(parsed: ParsedSource, workspace: Workspace, rules: Sequence[Rule] = ALL_RULES,
                  only: Optional[Collection[Key]] = None) -> List[RootFindings]:
    """The findings of each root of one parsed file (of those in `only`, if given), unmerged."""
    workspace.relative = not os.path.isabs(parsed.path)
    module = Module(parsed, workspace)
    workspace.own = module
    called = _called(module)
    out: List[RootFindings] = []
    for unit in list(module.units):
        if only is not None and unit.key not in only:
            continue
        # A function a framework calls once per batch, and nothing here calls, is the
        # body of an implicit training loop.
        implicit = (not unit.is_top_level and unit.parent is None and unit.key not in called
                    and unit.node.name.value in PER_BATCH_FUNCTIONS)
        resolved = plan(unit, implicit_loop=implicit)
        findings = engine.run(resolved, rules) + frameworks.accumulate_wipes(resolved.root)
        out.append(RootFindings(unit.key, _reaches(resolved.root), tuple(findings)))
    return out


def _reaches(root: Frame) -> FrozenSet[Key]:
    """The units of a root's frames: its own and every helper analysed in place."""
    seen: Dict[int, Frame] = {}
    todo = [root]
    while todo:
        frame = todo.pop()
        if id(frame) not in seen:
            seen[id(frame)] = frame
            todo.extend(a.frame for actions in frame.actions.values() for a in actions if isinstance(a, Call))
    return frozenset(frame.unit.key for frame in seen.values())


def _called(module: Module) -> Set[Key]:
    """The units some unit of this file calls."""
    called: Set[Key] = set()
    for unit in list(module.units):
        for events in module.graph(unit)[1].values():
            for event in events:
                if event.kind is EventKind.CALL:
                    callee = module.callee(event.target, unit)
                    method = objects.bound_method(module, event.target, unit) if callee is None else None
                    callee = method[0] if method is not None else callee
                    if callee is not None:
                        called.add(callee.key)
    return called


def merge_findings(findings: List[Finding]) -> List[Finding]:
    """One finding per (code, position), reached through however many roots."""
    merged: Dict[Tuple[str, object], Finding] = {}
    for finding in findings:
        key = (finding.code, finding.site.path, finding.site.span)
        old = merged.get(key)
        if old is None:
            merged[key] = finding
            continue
        related = old.related + tuple(r for r in finding.related if r not in old.related)
        # Reached directly from the function holding the loop by any root: the fix stays there.
        site = replace(old.site, root=old.site.root or finding.site.root)
        step = replace(old.step, root=old.step.root or finding.step.root)
        merged[key] = replace(old, site=site, step=step, related=related)
    return list(merged.values())
