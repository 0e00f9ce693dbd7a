"""source -> events -> CFG -> dataflow -> rules -> diagnostics, for one file."""

from __future__ import annotations

import traceback
from typing import Dict, List, Optional, Tuple, Union

from . import source as sourcemod
from .analysis import ModuleAnalysis
from .config import Config, DEFAULT_CONFIG
from .rules import RULES_BY_CODE, Finding
from .types import Diagnostic, Related


def findings_to_diagnostics(findings: List[Finding], path: str) -> List[Diagnostic]:
    """One diagnostic per (code, position); related locations merged."""
    merged: Dict[Tuple[str, object], Finding] = {}
    for finding in findings:
        key = (finding.code, finding.site.span)
        old = merged.get(key)
        if old is None:
            merged[key] = finding
        else:  # same place reached through several roots: keep every related site once
            related = old.related + tuple(r for r in finding.related if r not in old.related)
            merged[key] = Finding(old.code, old.site, related, old.optimizer, old.step)
    out = []
    for finding in merged.values():
        rule = RULES_BY_CODE[finding.code]
        related = tuple(Related(f"{role}: `{site.text}`", site.path, site.span)
                        for role, site in finding.related)
        out.append(Diagnostic(rule.code, rule.name, rule.message(finding), path, finding.site.span, related))
    return sorted(out, key=Diagnostic.sort_key)


def analyse(parsed: sourcemod.ParsedSource, config: Config) -> List[Finding]:
    return ModuleAnalysis(parsed, config.tables).run()


def check_source(data: Union[bytes, str], path: str, config: Config = DEFAULT_CONFIG) -> List[Diagnostic]:
    """Diagnostics for one file's contents, already filtered by the config's selection."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not sourcemod.may_hold_events(raw):
        return []
    try:
        parsed = sourcemod.parse(data, path)
        if isinstance(parsed, Diagnostic):
            return [parsed] if config.is_selected(parsed.code) else []
        diagnostics = findings_to_diagnostics(analyse(parsed, config), path)
    except RecursionError:
        diagnostics = [sourcemod.tool_diagnostic(sourcemod.PARSE_ERROR, path, "cannot analyse: nesting too deep")]
    except Exception as err:  # a crash on one file is a diagnostic for that file
        where = traceback.extract_tb(err.__traceback__)[-1]
        message = f"internal error: {type(err).__name__}: {err} (at {where.filename}:{where.lineno}); please report it"
        diagnostics = [sourcemod.tool_diagnostic(sourcemod.INTERNAL_ERROR, path, message)]
    return [d for d in diagnostics if config.is_selected(d.code)]


def check_file(path: str, config: Config = DEFAULT_CONFIG) -> List[Diagnostic]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return [sourcemod.tool_diagnostic(sourcemod.READ_ERROR, path, f"cannot read: {err.strerror or err}")]
    return check_source(data, path, config)
