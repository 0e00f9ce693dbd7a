"""Frozen values shared by every stage. Imports nothing else from zgcheck."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Tuple


@dataclass(frozen=True, order=True)
class Span:
    """A source range: 1-based lines, 1-based columns, end exclusive."""

    start_line: int
    start_col: int
    end_line: int
    end_col: int


@dataclass(frozen=True)
class Related:
    """A secondary location a diagnostic points at (the backward, the loop...)."""

    message: str
    path: str
    span: Span
    cell: Optional[int] = None  # notebooks: the span is relative to this cell, as Diagnostic.cell


class Applicability(enum.IntEnum):
    """Ruff's ordering: a higher value is safer to apply."""

    DISPLAY_ONLY = 0
    UNSAFE = 1
    SAFE = 2


@dataclass(frozen=True)
class Edit:
    """Replace the text between two (line, col) positions (1-based) with `content`."""

    start_line: int
    start_col: int
    end_line: int
    end_col: int
    content: str


@dataclass(frozen=True)
class Fix:
    title: str
    applicability: Applicability
    edits: Tuple[Edit, ...]


@dataclass(frozen=True)
class Diagnostic:
    code: str
    name: str
    message: str
    path: str
    span: Span
    related: Tuple[Related, ...] = ()
    fix: Optional[Fix] = None
    # Set for notebooks: the span is relative to this cell (1-based cell index).
    cell: Optional[int] = None
    # Free-form evidence (runtime diagnostics): e.g. parameters and magnitudes.
    evidence: Tuple[str, ...] = field(default=())

    def sort_key(self):
        return (self.path, self.cell or 0, self.span, self.code)


class EventKind(enum.Enum):
    BACKWARD = "backward"
    STEP = "step"  # S(o)
    ZERO = "zero"  # Z(o) or Z(module) or Z(all)
    OVERWRITE = "overwrite"  # gradients set to new values: leftovers gone, nothing wiped
    CALL = "call"  # call to a helper whose body is analysed in place
    NEW = "new"  # `opt = Optimizer(...)`: a fresh optimizer, nothing consumed yet


class TargetKind(enum.Enum):
    OPTIMIZER = "optimizer"
    MODULE = "module"
    PARAMS = "params"  # an iterable of parameters bound to a name
    FUNCTION = "function"  # a bare call `f()`: a step when f is bound to `opt.step`
    CONTAINER = "container"  # optimizers held in a list, tuple or dict (`for o in opts: o.zero_grad()`)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Event:
    """One backward / step / zero / helper call found in the code."""

    kind: EventKind
    span: Span
    text: str  # the call as written, e.g. "optimizer.step()"
    target: str = ""  # receiver text ("optimizer", "self.model") or callee name
    target_kind: TargetKind = TargetKind.UNKNOWN
    # For CALL: positional and keyword argument texts, for binding parameters.
    args: Tuple[str, ...] = ()
    kwargs: Tuple[Tuple[str, str], ...] = ()
    # For STEP with a closure argument: the closure's name, and for
    # `functools.partial(f, *a, **k)` the arguments it binds.
    closure: str = ""
    closure_args: Tuple[str, ...] = ()
    closure_kwargs: Tuple[Tuple[str, str], ...] = ()


# --- what the analysis hands the rules, and the rules hand the checker -------

@dataclass(frozen=True)
class Site:
    """Where an event happened."""

    path: str
    span: Span
    text: str  # the call as written
    root: bool = True  # inside the function being analysed (not an inlined helper)
    # For a step: the optimizer key, in the root's terms; for a zero: the receiver.
    target: str = ""
    # For a step, as written at the call: the optimizer (`opt` in `scaler.step(opt)`),
    # and the GradScaler that steps it, if any. A fix is built from these.
    receiver: str = ""
    scaler: str = ""
    # For `opt.step(closure)`: the closure's first statement, `receiver` the optimizer's
    # name as the closure can write it (where a fix puts the zero), when there is one.
    closure: Optional["Site"] = None

    def __hash__(self) -> int:
        """Computed once: the dataflow hashes each fact, and so its sites, at every step."""
        found = self.__dict__.get("_hash")
        if found is None:
            found = hash((self.path, self.span, self.text, self.root, self.target, self.receiver,
                          self.scaler, self.closure))
            object.__setattr__(self, "_hash", found)
        return found

    def __getstate__(self):
        """Without the cached hash: string hashes differ from process to process."""
        return {name: value for name, value in self.__dict__.items() if name != "_hash"}


@dataclass(frozen=True)
class Finding:
    code: str
    site: Site  # where the diagnostic is reported
    related: Tuple[Tuple[str, Site], ...]  # (role, site): "backward", "step", "previous step"
    optimizer: str  # the optimizer key the finding is about
    step: Site  # the step involved


class Fact(NamedTuple):
    """One dataflow fact. Each rule owns the facts carrying its code; the engine reads
    only `optimizer` (to know which optimizers a zero may cover)."""

    code: str  # the rule that owns it ("" for the engine's own markers)
    kind: str  # the rule's word for it: "consumed", "stale", "unapplied", "wiped"...
    optimizer: str  # the optimizer (part) it is about; "" when about none
    origin: object = None  # where it came from: a Site, or a tuple of Sites
