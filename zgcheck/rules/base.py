"""What a rule is: its documentation, three transfer hooks over dataflow facts, and its fix.

The engine walks typed actions (backward, step of an optimizer, zero) in
control-flow order and hands each to every rule. A rule keeps its own facts
(`Fact`s carrying its code) in the shared fact set, reports through a
callback, and builds the fix for its findings from what the finding's sites
recorded at the event (the step's receiver and scaler as written).
"""

from __future__ import annotations

from typing import Callable, FrozenSet, Iterable, Optional, Protocol, Tuple

from ..types import Applicability, Edit, Fact, Finding, Fix, Site, Span

Facts = FrozenSet[Fact]
Report = Callable[[Finding], None]


class Edits(Protocol):
    """The edit machinery a rule's fix uses (`fixes.SourceEdits`): statements located by span."""

    def insert_after(self, span: Span, code: str) -> Optional[Edit]: ...

    def next_statement(self, span: Span) -> Optional[Tuple[str, Span]]: ...

    def move_after(self, span: Span, anchor: Span) -> Optional[Tuple[Edit, ...]]: ...

    def insert_before(self, span: Span, code: str) -> Optional[Edit]: ...


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

    def on_backward(self, facts: Facts, site: Site, optimizers: Iterable[str],
                    proven: FrozenSet[str] = frozenset()) -> Facts:
        """`optimizers`: the optimizer parts the backward may write into; `proven`:
        those it provably writes into (its loss depends on their models)."""
        return facts

    def on_step(self, facts: Facts, optimizer: str, site: Site, report: Report) -> Facts:
        return facts

    def on_zero(self, facts: Facts, optimizers: Iterable[str], site: Site) -> Facts:
        return facts

    def on_window(self, facts: Facts, optimizers: Iterable[str], into_next: bool) -> Facts:
        """The loop goes round to its next iteration (`into_next`) or is left, and these
        optimizers step only in the iterations a counter picks: gradients not applied yet
        are being accumulated for a later step."""
        return facts

    def on_overwrite(self, facts: Facts, optimizers: Iterable[str], site: Site) -> Facts:
        """The gradients were set to new values (`p.grad = t`, `p.grad.fill_(v)`): what they
        held is gone, but nothing a backward produced was cleared for the step's sake."""
        return facts

    def fix(self, finding: Finding, edits: Edits) -> Optional[Fix]:
        """The fix for one finding in the file being checked, with preliminary safety
        (re-analysing the fixed text decides the rest); None when there is none."""
        return None


def preliminary(finding: Finding) -> Applicability:
    """Safe only when the fix stays in the function holding the loop."""
    inside = finding.site.root and finding.step.root
    return Applicability.SAFE if inside else Applicability.UNSAFE


def part_name(optimizer: str, module: str) -> str:
    """The dataflow tracks an optimizer built from several modules per module: `opt@model.body`."""
    return f"{optimizer}@{module}"


def optimizer_of(part: str) -> str:
    """The optimizer a tracked part belongs to (the inverse of `part_name`)."""
    return part.partition("@")[0]


def drop(facts: Facts, code: str, kind: str, optimizers) -> Facts:
    """Facts without (code, kind, o, ...) for every o in optimizers."""
    optimizers = set(optimizers)
    doomed = [f for f in facts if f.code == code and f.kind == kind and f.optimizer in optimizers]
    # Most calls drop nothing; a difference reuses the stored hashes of what stays.
    return facts.difference(doomed) if doomed else facts


def select(facts: Facts, code: str, kind: str, optimizer: str):
    """The origins recorded for (code, kind, optimizer)."""
    return [f.origin for f in facts if f.code == code and f.kind == kind and f.optimizer == optimizer]


def line_of(site: Site) -> int:
    return site.span.start_line
