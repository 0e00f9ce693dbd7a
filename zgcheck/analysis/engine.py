"""One root's dataflow: rule transfer functions over path-qualified facts.

The state is a set of (assumptions, fact) pairs. *Assumptions* are the
outcomes of tracked branch conditions (those tested at least twice) taken on
the way here; facts reached under contradicting assumptions never meet, so
`if c: zero ... if c: step` is analysed as two paths, not four. A class of
paths with no facts is kept alive by an ALIVE marker, since later events
create facts in every class. Without tracked conditions there is one class
and this is the plain may-analysis of DESIGN §3.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, FrozenSet, Iterable, List, Sequence, Set, Tuple

from ..rules import Rule
from ..rules.base import part_name
from ..types import Fact, Finding
from . import counters, dataflow
from .frames import optimizers
from .resolve import local_prefix
from .units import Backward, Call, Covers, Fresh, Frame, Plan, Reach, Step, Target, Window, Zero

ALIVE = Fact("", "alive", "")
START = frozenset({(frozenset(), ALIVE)})

# A state is a set of (assumptions, fact): the facts of each class of paths.
State = FrozenSet[Tuple[FrozenSet[Tuple[str, bool]], Fact]]


def split(state: State) -> Dict[FrozenSet, Set[Fact]]:
    classes: Dict[FrozenSet, Set[Fact]] = {}
    for assumptions, fact in state:
        facts = classes.setdefault(assumptions, set())
        if fact != ALIVE:
            facts.add(fact)
    return classes


def join(classes) -> State:
    return frozenset((a, f) for a, facts in classes.items() for f in (*facts, ALIVE))


def run(plan: Plan, rules: Sequence[Rule]) -> List[Finding]:
    """The findings of one root."""
    return RootRun(plan, rules).run()


class RootRun:
    """Transfer functions for one root's frames: rule hooks over path-qualified facts."""

    def __init__(self, plan: Plan, rules: Sequence[Rule]):
        root = self.root = plan.root
        self.rules = rules
        # An optimizer built from several modules' parameters is tracked per module
        # ("opt@model.body"), so zeroing one of them leaves the others' facts alone.
        self.parts: Dict[str, Tuple[str, ...]] = {}
        self.part_module: Dict[str, str] = {}
        for key, target in optimizers(root).items():
            self._parts(key, target)
        self.tracked = plan.tracked
        self.report = None  # set for the final, reporting pass
        self.cache: Dict[tuple, Tuple[Dict[int, State], State]] = {}  # (frame, entry) -> (ins, exit)
        self.reported: Set[tuple] = set()  # (frame, entry) whose findings the reporting pass made
        self.exits: Dict[int, FrozenSet[int]] = {}  # per frame: the join after each loop

    # -- optimizers --------------------------------------------------------
    def _parts(self, key: str, target: Target = None) -> Tuple[str, ...]:
        if key not in self.parts:
            tied: Tuple[str, ...] = ()
            if target is not None and target.binding is not None and target.binding.kind == "optimizer":
                tied = tuple(dict.fromkeys(target.modules))
            if len(tied) > 1:
                self.parts[key] = tuple(part_name(key, m) for m in tied)
                self.part_module.update(zip(self.parts[key], tied))
            else:
                self.parts[key] = (key,)
                if tied:
                    self.part_module[key] = tied[0]
        return self.parts[key]

    @property
    def universe(self) -> List[str]:
        return [p for parts in self.parts.values() for p in parts]

    def _covered(self, covers: Covers, facts: Iterable[Fact]) -> Set[str]:
        known = set(self.universe) | {f.optimizer for f in facts if f.optimizer}
        if covers.everything:
            return known
        if covers.optimizers or covers.containers:
            held = {p for p in known for c in covers.containers if p.startswith(c + "[")}
            return held | {part for key in covers.optimizers for part in self._parts(key)}
        out = set()
        for part in known:
            tied = self.part_module.get(part)
            # A module zero covers the parameters of that module and its submodules;
            # an optimizer that nothing ties to a module is taken to be covered.
            if tied is None or any(tied == m or tied.startswith(m + ".") for m in covers.modules):
                out.add(part)
        return out

    def _reached(self, reach: Reach) -> Tuple[List[str], FrozenSet[str]]:
        """The optimizer parts a backward may write into, and those it provably does."""
        def touches(keys, part) -> bool:
            tied = self.part_module.get(part)
            return tied is not None and any(k == tied or k.startswith(tied + ".") or tied.startswith(k + ".")
                                            for k in keys)

        universe = self.universe
        proven = frozenset(p for p in universe if touches(reach.must, p))
        if reach.may is None:
            return universe, proven
        # An optimizer tied to no known module may hold anything: it stays reached.
        return [p for p in universe if p not in self.part_module or touches(reach.may, p)], proven

    # -- conditions --------------------------------------------------------
    def branch(self, frame: Frame, node_id: int, state: State) -> State:
        branch = frame.branches[node_id]
        if branch.ruled_out:
            return frozenset()  # a parameter bound to a literal rules this edge out
        key = branch.condition
        if key is None or key not in self.tracked:
            return state
        holds = branch.holds
        counted = holds and counters.parse(key) is not None
        return frozenset((a | {(key, holds)}, f) for a, f in state
                         if (key, not holds) not in a and (not counted or counters.consistent(a, key, holds)))

    def forget(self, frame: Frame, node_id: int, state: State) -> State:
        """Drop assumptions about conditions whose names this node assigns."""
        assigned = frame.assigned.get(node_id)
        if not assigned:
            return state
        counted = frame.counted.get(node_id, ())
        if counted:  # a loop counter set or grown: its residues follow instead of being forgotten
            state = frozenset((b, f) for a, f in state for b in counters.update(a, counted, self.tracked))
        stale = {key for key, names in self.tracked.items()
                 if any(n == t or n.startswith(t + ".") for n in names for t in assigned)}
        stale -= counters.updated_keys(self.tracked, counted)
        if not stale:
            return state
        return frozenset((frozenset(x for x in a if x[0] not in stale), f) for a, f in state)

    # -- transfer ------------------------------------------------------------
    def transfer(self, frame: Frame, node, state: State) -> State:
        if not state:
            return state
        if node.branch is not None:
            state = self.branch(frame, node.id, state)
        if node.id in self._loop_exits(frame):  # any window a loop accumulated ends with it
            state = self.apply(Window(None, False), state)
        for action in frame.actions.get(node.id, ()):
            state = self.apply(action, state)
        if self.tracked:
            state = self.forget(frame, node.id, state)
        return state

    def _loop_exits(self, frame: Frame) -> FrozenSet[int]:
        found = self.exits.get(id(frame))
        if found is None:
            found = self.exits[id(frame)] = frozenset(loop.after for loop in frame.graph.loops
                                                      if loop.after is not None)
        return found

    def apply(self, action, state: State) -> State:
        if isinstance(action, Call):
            return self.call(action.frame, state)
        classes = split(state)
        for assumptions, facts in classes.items():
            classes[assumptions] = self._rule_step(action, frozenset(facts))
        return join(classes)

    def _rule_step(self, action, facts: FrozenSet[Fact]) -> FrozenSet[Fact]:
        if isinstance(action, Backward):
            reached, proven = self._reached(action.reach)
            for rule in self.rules:
                facts = rule.on_backward(facts, action.site, reached, proven)
        elif isinstance(action, Step):
            key = action.optimizer.key
            report = self._reporter(key)
            for part in self._parts(key, action.optimizer):
                for rule in self.rules:
                    facts = rule.on_step(facts, part, action.site, report)
        elif isinstance(action, Zero):
            covered = self._covered(action.covers, facts)
            for rule in self.rules:
                hook = rule.on_zero if action.wipes else rule.on_overwrite
                facts = hook(facts, covered, action.site)
        elif isinstance(action, Window):
            parts = set(self.universe) | {f.optimizer for f in facts if f.optimizer} if action.optimizers is None \
                else {p for key in action.optimizers for p in self._parts(key)}
            for rule in self.rules:
                facts = rule.on_window(facts, parts, action.into_next)
        elif isinstance(action, Fresh):  # a fresh optimizer: no rule holds anything about it yet
            parts = set(self._parts(action.optimizer))
            facts = frozenset(f for f in facts if f.optimizer not in parts)
        return facts

    def _reporter(self, key: str):
        if self.report is None:
            return _ignore
        return lambda finding: self.report(replace(finding, optimizer=key))

    def call(self, frame: Frame, state: State) -> State:
        """The state after a call of frame entered with state. A callee entered with the same
        state is solved once, and in the reporting pass reports once: the same facts flow
        through the same code to the same findings."""
        key = (frame, state)
        if key not in self.cache:
            report, self.report = self.report, None  # the fixpoint's own iterations never report
            try:
                ins, outs = dataflow.solve(frame.graph, lambda node, s: self.transfer(frame, node, s), state)
            finally:
                self.report = report
            # The callee's own locals die with it: forget what was assumed about them.
            prefix = local_prefix(frame.unit)
            result = frozenset((frozenset(x for x in a if not x[0].startswith(prefix)), f)
                               for a, f in outs.get(frame.graph.exit, frozenset()))
            self.cache[key] = (ins, result)
        ins, result = self.cache[key]
        if self.report is not None and key not in self.reported:
            self.reported.add(key)
            for node_id, node_state in ins.items():
                self.transfer(frame, frame.graph.nodes[node_id], node_state)
        return result

    def run(self) -> List[Finding]:
        root = self.root
        ins, _ = dataflow.solve(root.graph, lambda node, s: self.transfer(root, node, s), START)
        findings: List[Finding] = []
        self.report = findings.append
        for node_id, state in ins.items():
            self.transfer(root, root.graph.nodes[node_id], state)
        self.report = None
        return findings


def _ignore(_finding: Finding) -> None:
    pass
