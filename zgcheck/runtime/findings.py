"""Aggregates what the tracker observed into one Diagnostic per (code, path, line),
over the script's process and the child processes that report to it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from zgcheck.runtime.sites import Site
from zgcheck.codes import CODES
from zgcheck.types import Diagnostic, Related

MISSING = ("ZG001", CODES["ZG001"].name)
WIPED = ("ZG002", CODES["ZG002"].name)
FOREIGN = ("ZG003", CODES["ZG003"].name)
_RULES = {rule[0]: rule for rule in (MISSING, WIPED, FOREIGN)}

# Parameters named in a diagnostic's evidence; the rest are counted.
_MAX_NAMED = 8


@dataclass
class _Finding:
    rule: Tuple[str, str]
    site: Site
    step: Site
    backward: Optional[Site]
    known_wiper: bool
    count: int = 0
    norm: float = math.nan  # the largest total magnitude seen at one occurrence
    params: Dict[str, float] = field(default_factory=dict)  # name -> largest magnitude
    # Child processes that saw it ("rank 1, pid 4242"); `local`: this process did.
    origins: List[str] = field(default_factory=list)
    local: bool = True
    first: Optional[Site] = None  # ZG003: the backward whose gradients were applied twice

    def absorb(self, count: int, norm: float, params: Dict[str, float]) -> None:
        self.count += count
        if not math.isnan(norm):
            self.norm = norm if math.isnan(self.norm) else max(self.norm, norm)
        for name, magnitude in params.items():
            old = self.params.get(name, math.nan)
            self.params[name] = magnitude if math.isnan(old) else max(old, magnitude)


def _site_json(site: Optional[Site]) -> Optional[list]:
    return None if site is None else [site.path, site.line, site.col, site.end_line, site.end_col]


def _total(magnitudes: Sequence[Tuple[str, float]]) -> float:
    return math.sqrt(sum(m * m for _, m in magnitudes))


def _fmt(value: float) -> str:
    return "unknown" if math.isnan(value) else f"{value:.3g}"


def _where(site: Optional[Site]) -> str:
    return f"`{site.text()}` (line {site.line})" if site is not None else "a backward"


class Findings:
    def __init__(self) -> None:
        self._by_key: Dict[Tuple[str, str, int], _Finding] = {}

    def add_stale(self, step: Site, leftovers: Sequence[Tuple[str, float]], backward: Optional[Site]) -> None:
        """`step` applied `leftovers` (name, norm) that a previous step had already used."""
        self._add(MISSING, step, step, backward, True, leftovers)

    def add_wiped(
        self, zero: Optional[Site], step: Site, wiped: Sequence[Tuple[str, float]], backward: Optional[Site]
    ) -> None:
        """`zero` (None when unknown) cleared gradients `backward` produced for `step`."""
        self._add(WIPED, zero or step, step, backward, zero is not None, wiped)

    def add_foreign(self, step: Site, names: Sequence[str], first: Optional[Site], other_step: Optional[Site],
                    later: Optional[Site]) -> None:
        """`step` applied, in `names`, gradients of backward `first` that `other_step`
        (another optimizer's) had already applied, with `later` added to them."""
        finding = self._add(FOREIGN, step, other_step or step, later, True, [(n, math.nan) for n in names])
        finding.first = first

    def _add(self, rule, site, step, backward, known_wiper, magnitudes) -> "_Finding":
        key = (rule[0],) + site.key
        finding = self._by_key.get(key)
        if finding is None:
            finding = self._by_key[key] = _Finding(rule, site, step, backward, known_wiper)
        finding.absorb(1, _total(magnitudes), dict(magnitudes))
        return finding

    def to_json(self) -> List[Dict[str, Any]]:
        """Plain data for a child process's report (NaN norms included)."""
        return [
            {"rule": list(f.rule), "site": _site_json(f.site), "step": _site_json(f.step),
             "backward": _site_json(f.backward), "known_wiper": f.known_wiper, "count": f.count,
             "norm": f.norm, "params": f.params, "first": _site_json(f.first)}
            for f in self._by_key.values()
        ]

    def merge(self, data: List[Dict[str, Any]], origin: str) -> None:
        """Adds what a child process (`origin`) reported, in `to_json` form."""
        for item in data:
            rule = _RULES[item["rule"][0]]
            site = Site(*item["site"])
            key = (rule[0],) + site.key
            finding = self._by_key.get(key)
            if finding is None:
                backward = Site(*item["backward"]) if item["backward"] else None
                finding = self._by_key[key] = _Finding(
                    rule, site, Site(*item["step"]), backward, item["known_wiper"], local=False,
                    first=Site(*item["first"]) if item.get("first") else None)
            finding.absorb(item["count"], item["norm"], item["params"])
            finding.origins.append(origin)

    def diagnostics(self) -> Tuple[Diagnostic, ...]:
        found = (_diagnostic(f) for f in self._by_key.values())
        return tuple(sorted(found, key=Diagnostic.sort_key))


def _message(f: _Finding) -> str:
    n = len(f.params)
    params = f"{n} parameter{'s' if n != 1 else ''}"
    times = f", {f.count} times" if f.count > 1 else ""
    if f.rule is MISSING:
        return (
            f"`{f.site.text()}` at runtime applied gradients left over from its previous step: "
            f"nothing cleared them before {_where(f.backward)} added to them "
            f"({params}, stale norm {_fmt(f.norm)}{times})"
        )
    if f.rule is FOREIGN:
        return (
            f"`{f.site.text()}` at runtime applied again gradients of {_where(f.first)} that another "
            f"optimizer's {_where(f.step)} had already applied: nothing cleared them before "
            f"{_where(f.backward)} added to them ({params}{times})"
        )
    if f.known_wiper:
        return (
            f"`{f.site.text()}` at runtime wiped the gradients {_where(f.backward)} produced "
            f"before {_where(f.step)} could apply them ({params}, norm {_fmt(f.norm)}{times})"
        )
    return (
        f"`{f.site.text()}` at runtime found the gradients {_where(f.backward)} produced already "
        f"cleared by code that is not a zero_grad() call ({params}{times})"
    )


def _processes(f: _Finding) -> str:
    return "; ".join((["the script's own process"] if f.local else []) + f.origins)


def _evidence(f: _Finding) -> Tuple[str, ...]:
    what = {MISSING: "stale norm", WIPED: "wiped norm"}.get(f.rule, "norm")
    ranked = sorted(f.params.items(), key=lambda item: 0.0 if math.isnan(item[1]) else -item[1])
    lines: List[str] = [f"occurrences: {f.count}"]
    if f.origins:
        lines.append(f"in: {_processes(f)}")
    lines += [
        name if math.isnan(value) else f"{name}: {what} {_fmt(value)}" for name, value in ranked[:_MAX_NAMED]
    ]
    if len(ranked) > _MAX_NAMED:
        lines.append(f"... and {len(ranked) - _MAX_NAMED} more parameters")
    return tuple(lines)


def _related(f: _Finding) -> Tuple[Related, ...]:
    related: List[Related] = []
    if f.rule is FOREIGN:
        for label, site in (("backward whose gradients were applied twice", f.first),
                            ("another optimizer's step that applied them first", f.step),
                            ("backward that added to them", f.backward)):
            if site is not None:
                related.append(Related(label, site.path, site.span))
        return tuple(related)
    if f.backward is not None:
        label = "backward that met the leftover gradients" if f.rule is MISSING else "backward whose gradients were lost"
        related.append(Related(label, f.backward.path, f.backward.span))
    if f.rule is WIPED and f.known_wiper:
        related.append(Related("step that found them cleared", f.step.path, f.step.span))
    return tuple(related)


def _diagnostic(f: _Finding) -> Diagnostic:
    code, name = f.rule
    where = f" [in {_processes(f)}]" if f.origins else ""
    return Diagnostic(
        code=code,
        name=name,
        message=_message(f) + where,
        path=f.site.path,
        span=f.site.span,
        related=_related(f),
        evidence=_evidence(f),
    )
