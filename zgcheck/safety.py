"""Proving fixes safe: each fix judged as if applied alone (`fixes.verdict`), with as few
re-analyses as that can be done exactly.

A root's findings are a function of the text of the units it reaches (`RootFindings.reaches`)
and of what the file defines and binds. A *local* fix only inserts or moves
`<name>.zero_grad(...)` statements inside one function F, adding no word to F that the
file defines, binds or imports, in a file that defines no `zero_grad` of its own: it adds
no binding, definition, return, backward or call into this file, so only F's events
change and only the roots that reach F can find anything else (its *affected* roots).
Two consequences, both exact:

- A fix is proven by re-analysing just its affected roots; every other root's findings
  are those of the unfixed text, moved past the edits.
- Local fixes whose affected roots are disjoint are proven by one analysis of the text
  with all of them applied: each root reaches the edits of at most one of them, so each
  root finds in the combined text exactly what it finds with that one fix alone. A
  combined run can hide a per-fix problem only through a root that reaches two of the
  fixes (fix A alone adds a finding that fix B removes); such fixes never share a run.

Anything else (a fix at the top level or across functions, a file whose units do not
line up after the edits, a re-analysis that breaks) is proven the old way: the whole file
re-checked with that fix alone.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from . import fixes
from .analysis import Module, RootFindings, Workspace, analyse_roots
from .analysis.prune import IDENTIFIER
from .analysis.units import Key, Unit
from .config import Config
from .screen import NEWLINE
from .source import ParsedSource
from .types import Applicability, Diagnostic, Edit, Finding

# A statement a local fix may add or move: one zero_grad call, maybe after `;`, maybe commented.
_ZERO_STATEMENT = re.compile(r"\s*;?\s*[A-Za-z_][\w.]*\.zero_grad\([^()]*\)\s*;?\s*(?:#[^\r\n]*)?")

Recheck = Callable[[str], List[Diagnostic]]


def verify(text: str, path: str, config: Config, diagnostics: List[Diagnostic], module: Optional[Module],
           roots: Sequence[RootFindings], recheck: Recheck) -> List[Diagnostic]:
    """diagnostics with each SAFE fix's applicability proven (see `fixes.verdict`)."""
    todo = [d for d in diagnostics if d.fix is not None and d.fix.applicability >= Applicability.SAFE]
    judged: Dict[int, Applicability] = {}
    batches, alone = _batches(text, todo, module, roots)
    for batch in batches:
        judged.update(_judge_batch(text, path, config, batch, diagnostics, roots) or {})
    for d in alone + [d for batch in batches for d, _ in batch if id(d) not in judged]:
        judged[id(d)] = fixes.verified_applicability(text, d, diagnostics, recheck)
    return [replace(d, fix=replace(d.fix, applicability=judged[id(d)])) if id(d) in judged else d
            for d in diagnostics]


# --- which roots a fix can change ------------------------------------------------

def _batches(text: str, todo: List[Diagnostic], module: Optional[Module], roots: Sequence[RootFindings]):
    """Local fixes grouped so that no root reaches two fixes of a group, with each fix's
    affected roots; and the fixes that are not local."""
    alone: List[Diagnostic] = []
    batches: List[List[Tuple[Diagnostic, FrozenSet[Key]]]] = []
    units = _units_by_key(module) if module is not None else None
    for d in todo:
        unit = _local_unit(text, d.fix.edits, module, units) if units is not None else None
        if unit is None:
            alone.append(d)
            continue
        affected = frozenset(r.key for r in roots if unit.key in r.reaches)
        for batch in batches:
            if all(not (affected & other) and not fixes.overlaps(d.fix, o.fix) for o, other in batch):
                batch.append((d, affected))
                break
        else:
            batches.append([(d, affected)])
    return batches, alone


def _units_by_key(module: Module) -> Optional[Dict[Key, Unit]]:
    """The module's units by key; None when two share one (a name defined twice), since
    then a unit of the fixed text could not be matched to its original."""
    out = {u.key: u for u in module.units}
    return out if len(out) == len(module.units) else None


def _local_unit(text: str, edits: Sequence[Edit], module: Module, units: Dict[Key, Unit]) -> Optional[Unit]:
    """The one function every edit lies in, if the fix is local (see the module docstring)."""
    lines: Set[int] = set()
    added = ""
    for edit in edits:
        removed = _between(text, edit) if (edit.start_line, edit.start_col) != (edit.end_line, edit.end_col) else ""
        if not all(_ZERO_STATEMENT.fullmatch(part) for part in (edit.content, removed) if part.strip()):
            return None
        added += edit.content
        if removed or edit.start_col > 1:
            last = edit.end_line - 1 if edit.end_col == 1 and edit.end_line > edit.start_line else edit.end_line
            lines.update(range(edit.start_line, last + 1))
        else:  # an insertion at a line's start belongs with the line above
            lines.add(edit.start_line - 1)
    owners = {_innermost(module, units.values(), line) for line in lines}
    if len(owners) != 1:
        return None
    unit = owners.pop()
    if unit is None or unit.is_top_level:
        return None
    own = set(IDENTIFIER.findall(module.source_of(unit)))
    new = set(IDENTIFIER.findall(added)) - own
    # A new word that names something of the file could make the pruner keep, or the
    # module bind, what it did not before; a `zero_grad` the file defines could be called.
    named = module.def_names | module.imports.keys() | module.module_bindings.keys() | module.class_bases.keys()
    return None if (new | {"zero_grad"}) & named else unit


def _between(text: str, edit: Edit) -> str:
    """The text an edit replaces."""
    marker = "\0"
    marked = fixes.apply_edits(text, (Edit(edit.end_line, edit.end_col, edit.end_line, edit.end_col, marker),
                                      Edit(edit.start_line, edit.start_col, edit.start_line, edit.start_col, marker)))
    return marked.split(marker)[1] if marked.count(marker) == 2 else ""


def _innermost(module: Module, units: Iterable[Unit], line: int) -> Optional[Unit]:
    best, size = None, None
    for unit in units:
        span = module.parsed.span(unit.node)
        if span.start_line <= line <= span.end_line and (size is None or span.end_line - span.start_line < size):
            best, size = unit, span.end_line - span.start_line
    return best


# --- one re-analysis for a batch ----------------------------------------------------

def _judge_batch(text: str, path: str, config: Config, batch, before: Sequence[Diagnostic],
                 roots: Sequence[RootFindings]) -> Optional[Dict[int, Applicability]]:
    """Each fix's verdict from one analysis of the text with the whole batch applied, of
    just the roots the batch affects; None when that cannot be trusted (then each fix
    is re-checked alone)."""
    edits = [e for d, _ in batch for e in d.fix.edits]
    affected = frozenset().union(*(a for _, a in batch))
    after = _reanalyse(fixes.apply_edits(text, edits), path, config, affected, {r.key for r in roots})
    if after is None:
        return None
    # In the coordinates of the text with the whole batch applied: what each root finds
    # there (if the batch affects it) and in the unfixed text.
    fresh = {r.key: r.findings for r in after}
    unfixed = {r.key: [_moved(f, path, edits) for f in r.findings] for r in roots}
    out = {}
    for d, own in batch:
        found = [f for key in own for f in fresh[key]] + \
            [f for key, findings in unfixed.items() if key not in own for f in findings]
        out[id(d)] = fixes.verdict(d, before, _merged_codes(found))
    return out


def _reanalyse(text: str, path: str, config: Config, only: FrozenSet[Key],
               units: Set[Key]) -> Optional[List[RootFindings]]:
    """The findings of the roots `only` in text; None unless the text still has the same
    units (each named once) and parses."""
    try:
        workspace = Workspace(config.tables)
        parsed = workspace.parse(text, path)
        if not isinstance(parsed, ParsedSource):
            return None
        found = analyse_roots(parsed, workspace, only=only)
        module = workspace.own
        if _units_by_key(module) is None or {u.key for u in module.units} != units:
            return None
        return found
    except Exception:  # noqa: BLE001 -- the whole-file re-check reports it
        return None


def _merged_codes(findings: Iterable[Finding]) -> List[str]:
    """The codes of the diagnostics these findings make (one per code and position, as
    `merge_findings` makes them)."""
    return [code for code, _, _ in {(f.code, f.site.path, f.site.span) for f in findings}]


def _moved(finding: Finding, path: str, edits: Sequence[Edit]) -> Finding:
    """A finding of the unfixed text where it lies once the edits are applied."""
    if finding.site.path != path:
        return finding
    span = finding.site.span
    start = _position((span.start_line, span.start_col), edits)
    end = _position((span.end_line, span.end_col), edits)
    if start is None or end is None:  # inside a replaced range: a position of its own
        return replace(finding, site=replace(finding.site, path=f"\0{path}"))
    return replace(finding, site=replace(finding.site, span=replace(span, start_line=start[0], start_col=start[1],
                                                                       end_line=end[0], end_col=end[1])))


def _position(pos: Tuple[int, int], edits: Sequence[Edit]) -> Optional[Tuple[int, int]]:
    """(line, col) of the unfixed text in the fixed one; None inside a replaced range."""
    line, col = pos
    for edit in sorted(edits, key=lambda e: (e.start_line, e.start_col), reverse=True):
        start, end = (edit.start_line, edit.start_col), (edit.end_line, edit.end_col)
        if start <= (line, col) < end:
            return None
        if (line, col) < end:
            continue
        parts = NEWLINE.split(edit.content)
        added = len(parts) - 1
        if line == edit.end_line:
            col = (edit.start_col if added == 0 else 1) + len(parts[-1]) + col - edit.end_col
            line = edit.start_line + added
        else:
            line += added - (edit.end_line - edit.start_line)
    return line, col
