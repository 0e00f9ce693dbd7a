"""What a rule is: its documentation plus three transfer hooks over dataflow facts.

The analysis engine walks events (B, S(o), Z(o)) in control-flow order and
hands each to every rule; a rule keeps its own facts (tuples that start with
its code) in the shared fact set and reports through a callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, FrozenSet, Hashable, Iterable, Tuple

from ..types import Span

Facts = FrozenSet[Hashable]


@dataclass(frozen=True)
class Site:
    """Where an event happened."""

    path: str
    span: Span
    text: str  # the call as written
    root: bool = True  # inside the function being analysed (not an inlined helper)
    # For a step: the optimizer key; for a zero: the receiver; for a backward: ''.
    target: str = ""


@dataclass(frozen=True)
class Finding:
    code: str
    site: Site  # where the diagnostic is reported
    related: Tuple[Tuple[str, Site], ...]  # (role, site): "backward", "step", "previous step"
    optimizer: str  # the optimizer key the finding is about
    step: Site  # the step involved


Report = Callable[[Finding], None]


class Rule:
    code = ""
    name = ""
    summary = ""
    # Documentation, Ruff style; `zgcheck rule CODE` prints it.
    what = ""
    why = ""
    example = ""
    use_instead = ""
    fix_safety = ""

    def message(self, finding: Finding) -> str:
        raise NotImplementedError

    def on_backward(self, facts: Facts, site: Site, optimizers: Iterable[str]) -> Facts:
        return facts

    def on_step(self, facts: Facts, optimizer: str, site: Site, report: Report) -> Facts:
        return facts

    def on_zero(self, facts: Facts, optimizers: Iterable[str], site: Site) -> Facts:
        return facts


def drop(facts: Facts, code: str, kind: str, optimizers) -> Facts:
    """Facts without (code, kind, o, ...) for every o in optimizers."""
    optimizers = set(optimizers)
    return frozenset(f for f in facts if not (f[0] == code and f[1] == kind and f[2] in optimizers))


def select(facts: Facts, code: str, kind: str, optimizer: str):
    """The origins recorded for (code, kind, optimizer)."""
    return [f[3] for f in facts if f[0] == code and f[1] == kind and f[2] == optimizer]


def line_of(site: Site) -> int:
    return site.span.start_line
