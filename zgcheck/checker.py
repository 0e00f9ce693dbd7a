"""source -> events -> CFG -> dataflow -> rules -> diagnostics (+ fixes), for one file."""

from __future__ import annotations

import os
import traceback
from dataclasses import replace
from typing import List, Optional, Tuple, Union

from . import fixes, notebook, safety, suppress
from . import source as sourcemod
from .analysis import Module, RootFindings, Workspace, analyse_roots, merge_findings
from .analysis.imports import imports_project_helper
from .codes import UNUSED_NOQA, is_tool
from .config import Config, DEFAULT_CONFIG
from .recognise import gate
from .report import CALL_ROLE, HELPER_ROLE
from .rules import RULES_BY_CODE
from .types import Diagnostic, EventKind, Finding, Related, Site, Span

# Proving a fix safe re-analyses (part of) the file, up to once per fixable diagnostic;
# past this many in one file, fixes keep their preliminary safety.
MAX_VERIFIED_FIXES = 25


MAX_CALL_DEPTH = 8


def to_diagnostic(finding: Finding, edits: Optional[fixes.SourceEdits], module=None) -> Diagnostic:
    rule = RULES_BY_CODE[finding.code]
    related = tuple(Related(f"{role}: `{site.text}`", site.path, site.span) for role, site in finding.related)
    call = _call_site(module, finding.site) if module is not None else None
    related = tuple(dict.fromkeys(related))  # one root or many reached it: each note once
    if call is not None:  # both notes: `at_call_sites` keeps the one that is not the primary location
        related = (Related(f"{CALL_ROLE}: `{call[0]}`", module.path, call[1]),
                   Related(f"{HELPER_ROLE}: `{finding.site.text}`", finding.site.path, finding.site.span)) + related
    # A finding inside a helper imported from another file is reported there, without a fix.
    fix = rule.fix(finding, edits) if edits is not None and finding.site.path == edits.parsed.path else None
    return Diagnostic(rule.code, rule.name, rule.message(finding), finding.site.path, finding.site.span, related, fix)


def diagnose(text: str, path: str, config: Config, with_fixes: bool = True,
             workspace: Optional[Workspace] = None) -> List[Diagnostic]:
    """Every diagnostic of one decoded source (unfiltered); crashes become ZG999.

    `workspace` holds the other files the analysis reads (imported helpers) and
    records them, so a cached result can be invalidated when one changes."""
    return _diagnose(text, path, config, with_fixes, workspace)[0]


def _diagnose(text: str, path: str, config: Config, with_fixes: bool = True, workspace: Optional[Workspace] = None
              ) -> Tuple[List[Diagnostic], Optional[Module], List[RootFindings]]:
    """diagnose, with the file's Module and what each of its roots found (for proving fixes)."""
    try:
        workspace = workspace or Workspace(config.tables)
        parsed = workspace.parse(text, path)
        if parsed is None:  # nothing there can reach a backward call
            return [], None, []
        if isinstance(parsed, Diagnostic):
            return [parsed], None, []
        roots = analyse_roots(parsed, workspace)
        findings = merge_findings([f for root in roots for f in root.findings])
        edits = fixes.SourceEdits(parsed) if with_fixes and findings else None
        found = sorted((to_diagnostic(f, edits, workspace.own) for f in findings), key=Diagnostic.sort_key)
        return found, workspace.own, roots
    except RecursionError:  # the parser's own limits were met in source.parse: this is ours
        return [sourcemod.tool_diagnostic(sourcemod.INTERNAL_ERROR, path,
                                          "internal error: the analysis recursed too deeply; please report it")], None, []
    except Exception as err:  # a crash on one file is a diagnostic for that file
        where = traceback.extract_tb(err.__traceback__)[-1]
        message = (f"internal error: {type(err).__name__}: {err} "
                   f"(at {where.filename}:{where.lineno}); please report it")
        return [sourcemod.tool_diagnostic(sourcemod.INTERNAL_ERROR, path, message)], None, []


def _call_site(module, site: Site) -> Optional[Tuple[str, Span]]:
    """(text, span) of the call in module's own code through which the analysis reached a
    site in another file (an imported helper's step); None for a site in the module."""
    if _same_file(site.path, module.path):
        return None

    def calls(unit):
        for events in unit.module.graph(unit)[1].values():
            for event in events:
                if event.kind is EventKind.CALL:
                    yield event, unit.module.callee(event.target, unit)

    def reaches(unit, depth: int, seen: set) -> bool:
        if _same_file(unit.path, site.path) and _within(site.span, unit.module.parsed.span(unit.node)):
            return True
        if depth == 0 or unit.key in seen:
            return False
        seen.add(unit.key)
        return any(callee is not None and reaches(callee, depth - 1, seen) for _, callee in calls(unit))

    for unit in list(module.units):
        for event, callee in calls(unit):
            if callee is not None and reaches(callee, MAX_CALL_DEPTH, set()):
                return event.text, event.span
    return None


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _within(inner: Span, outer: Span) -> bool:
    return (outer.start_line, outer.start_col) <= (inner.start_line, inner.start_col) and \
        (inner.end_line, inner.end_col) <= (outer.end_line, outer.end_col)


def _verify_fixes(text: str, path: str, config: Config, diagnostics: List[Diagnostic], module: Optional[Module],
                  roots: List[RootFindings]) -> List[Diagnostic]:
    fixable = [d for d in diagnostics if d.fix is not None]
    if not fixable or len(fixable) > MAX_VERIFIED_FIXES:
        return diagnostics
    recheck = lambda candidate: diagnose(candidate, path, config, with_fixes=False)  # noqa: E731
    return safety.verify(text, path, config, diagnostics, module, roots, recheck)


def may_hold_findings(data: bytes, path: str, config: Config, workspace: Optional[Workspace] = None) -> bool:
    """The byte gate, run once per file: a backward call, or an import of a project helper
    whose own body holds an event. Anything else is never parsed."""
    return gate(config.tables).backward.search(data) is not None or \
        imports_project_helper(path, data, (workspace or Workspace(config.tables)).files)


def check_decoded(text: str, path: str, config: Config = DEFAULT_CONFIG, with_fixes: bool = True,
                  workspace: Optional[Workspace] = None) -> List[Diagnostic]:
    """Selected diagnostics of decoded source that already passed the gate (the fix loop's
    re-checks, a notebook's virtual module), fixes proven safe or marked unsafe."""
    found, module, roots = _diagnose(text, path, config, with_fixes, workspace)
    if with_fixes:
        found = _verify_fixes(text, path, config, found, module, roots)
    diagnostics = suppress.apply(found, text, path)  # noqa comments, zgcheck: skip-file
    if config.is_selected(UNUSED_NOQA, path) and not any(is_tool(d.code) for d in found):
        diagnostics += suppress.unused(found, text, path, lambda code: config.is_selected(code, path),
                                       gate(config.tables).backward_text)
    return [d for d in diagnostics if config.is_selected(d.code, d.path)]


def check_text(text: str, path: str, config: Config = DEFAULT_CONFIG, with_fixes: bool = True,
               workspace: Optional[Workspace] = None) -> List[Diagnostic]:
    """Selected diagnostics of decoded source text (gated like a file's bytes)."""
    if not may_hold_findings(text.encode("utf-8", "surrogateescape"), path, config, workspace):
        return []
    return check_decoded(text, path, config, with_fixes, workspace)


def check_source(data: Union[bytes, str], path: str, config: Config = DEFAULT_CONFIG,
                 with_fixes: bool = True, workspace: Optional[Workspace] = None,
                 gate: bool = True) -> List[Diagnostic]:
    """Diagnostics for one file's contents (bytes are decoded as Python would; .ipynb as a
    notebook). `gate=False` when the caller already ran `may_hold_findings`."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if gate and not may_hold_findings(data, path, config, workspace):
        return []
    if path.endswith(".ipynb"):
        found = notebook.check(data, path, lambda text, name: check_decoded(text, name, config, with_fixes, workspace))
        return [d for d in found if config.is_selected(d.code, d.path)]
    decoded = sourcemod.decode(data, path)
    if isinstance(decoded, Diagnostic):
        if suppress.skips_file(sourcemod.decode_for_display(data) or ""):
            return []
        return [decoded] if config.is_selected(decoded.code, path) else []
    return check_decoded(decoded[0], path, config, with_fixes, workspace)


def check_file(path: str, config: Config = DEFAULT_CONFIG, with_fixes: bool = True) -> List[Diagnostic]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return [sourcemod.tool_diagnostic(sourcemod.READ_ERROR, path, f"cannot read: {err.strerror or err}")]
    return check_source(data, path, config, with_fixes)
