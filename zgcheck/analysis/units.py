"""The analysis's own types: units, scopes, resolved targets and typed actions.

A *unit* is a function, a method or a module's top level, identified by its
file and qualified name (`Unit.key`): names alone repeat across files. A
*frame* is a unit as one root reaches it, every event already resolved to
typed actions in that frame's scope; the engine runs over frames and never
resolves a name itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, FrozenSet, Iterator, Optional, Sequence, Tuple, Union

import libcst as cst

from ..bindings import Binding
from ..types import Event, Site
from .cfg import CFG

if TYPE_CHECKING:  # the module that owns a unit; only for annotations
    from .module import Module

Key = Tuple[str, str]  # (file, qualified name)


@dataclass(eq=False)  # identity: units are hashed into scopes and caches
class Unit:
    name: str  # qualified: "main", "Trainer.fit", "<module>"
    node: cst.CSTNode
    body: Sequence[cst.CSTNode]
    params: Tuple[str, ...]
    cls: Optional[str]
    module: "Module"  # the analysis of the file the unit is in
    parent: Optional["Unit"] = None  # enclosing unit, for closures
    nested: Dict[str, "Unit"] = field(default_factory=dict)
    graph: Optional[CFG] = None
    events: Dict[int, Tuple[Event, ...]] = field(default_factory=dict)
    star: Optional[str] = None  # the `*args` parameter, bound to the extra arguments as a tuple

    @property
    def path(self) -> str:
        return self.module.path

    @functools.cached_property
    def bindings(self) -> Dict[str, Binding]:
        """What its names were bound to; collected when first asked (most units of a helper's
        file are never reached)."""
        return self.module.bindings_of(self)

    @property
    def key(self) -> Key:
        return (self.module.path, self.name)

    def enclosing(self) -> Iterator["Unit"]:
        """This unit, then each unit it is nested in (a closure sees its parents' names)."""
        u: Optional[Unit] = self
        while u is not None:
            yield u
            u = u.parent

    @property
    def is_top_level(self) -> bool:
        return self.parent is None and isinstance(self.node, cst.Module)


@dataclass(frozen=True)
class Scope:
    """How names in a unit resolve: its bindings, its bound parameters, its callers."""

    unit: Unit
    args: Tuple[Tuple[str, str, Optional["Scope"]], ...] = ()  # (param, argument text, caller scope)
    depth: int = 0
    stack: Tuple[Key, ...] = ()  # the root first, then each callee down to this unit

    def arg(self, name: str):
        for param, text, caller in self.args:
            if param == name:
                return text, caller
        return None


@dataclass(frozen=True)
class Target:
    """A receiver resolved in the root's terms."""

    key: str  # canonical receiver text, in the root's terms
    binding: Optional[Binding]
    modules: Tuple[str, ...] = ()  # for an optimizer: the modules whose parameters it holds


# --- typed actions ------------------------------------------------------------

@dataclass(frozen=True)
class Covers:
    """The optimizers a zero clears."""

    optimizers: FrozenSet[str] = frozenset()  # exactly these optimizer keys
    modules: Tuple[str, ...] = ()  # optimizers tied to these modules (or to no module)
    everything: bool = False  # an unknown iterable of parameters: assume all of them
    containers: Tuple[str, ...] = ()  # every optimizer held in these (`opts[0]`, `opts["g"]`, `opts[*]`)


@dataclass(frozen=True)
class Reach:
    """The models (keys in the root's terms) whose parameters a backward reaches."""

    must: FrozenSet[str] = frozenset()  # provably
    may: Optional[FrozenSet[str]] = frozenset()  # possibly; None: any model at all

    def __or__(self, other: "Reach") -> "Reach":
        may = None if self.may is None or other.may is None else self.may | other.may
        return Reach(self.must | other.must, may)


NOTHING = Reach()
UNKNOWN = Reach(frozenset(), None)


@dataclass(frozen=True)
class Backward:
    site: Site
    reach: Reach = UNKNOWN


@dataclass(frozen=True)
class Step:
    optimizer: Target
    site: Site  # its `target` is the optimizer's key; receiver/scaler as written


@dataclass(frozen=True)
class Zero:
    covers: Covers
    site: Site
    wipes: bool = True  # False for an overwrite (`p.grad = t`): leftovers gone, nothing wiped


@dataclass(frozen=True)
class Window:
    """The loop goes round (`into_next`) or is left, and the steps of these optimizers in it
    run only in some iterations, on a counter (`if (i + 1) % k == 0: opt.step()`): what a
    backward left unapplied is accumulated for a later iteration's step."""

    optimizers: Optional[FrozenSet[str]]  # None: every optimizer (a loop is left)
    into_next: bool


@dataclass(frozen=True)
class Fresh:
    """`opt = Adam(...)`: a new optimizer, about which nothing holds yet."""

    optimizer: str


@dataclass(frozen=True)
class Call:
    """A helper analysed in place: its frame, arguments bound."""

    frame: "Frame"


Action = Union[Backward, Step, Zero, Fresh, Call, Window]


@dataclass(frozen=True)
class Branch:
    """An edge out of an `if` test, as the engine needs it."""

    ruled_out: bool  # a parameter bound to a literal makes this edge impossible
    condition: Optional[str]  # the condition's key in the root's terms, if it is simple
    holds: bool  # whether the condition is true along this edge


@dataclass(eq=False)  # identity: frames key the engine's call cache
class Frame:
    """A unit as a root reaches it: its graph and, per node, what happens there."""

    scope: Scope
    graph: CFG
    actions: Dict[int, Tuple[Action, ...]]
    branches: Dict[int, Branch]
    conditions: Tuple[Tuple[str, FrozenSet[str], bool], ...] = ()  # (key, names, tested again)
    # Names each node assigns, in condition terms; filled only when the root tracks conditions.
    assigned: Dict[int, Tuple[str, ...]] = field(default_factory=dict)
    counted: Dict[int, Tuple[Tuple[str, Optional[int], bool], ...]] = field(default_factory=dict)  # loop counters

    @property
    def unit(self) -> Unit:
        return self.scope.unit


@dataclass(frozen=True)
class Plan:
    """A root, resolved: its frame, and the conditions its dataflow tracks per path."""

    root: Frame
    tracked: Dict[str, FrozenSet[str]]  # condition key -> the names it reads
