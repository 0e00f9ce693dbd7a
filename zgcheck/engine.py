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

from collections import Counter
from dataclasses import replace
from typing import Dict, FrozenSet, Set, Tuple

from . import conditions, dataflow
from .rules import Finding, Site

ALIVE = ("alive",)
START = frozenset({(frozenset(), ALIVE)})
MAX_TRACKED = 8  # conditions tracked per root: bounds the number of path classes


def split(state) -> Dict[FrozenSet, Set]:
    classes: Dict[FrozenSet, Set] = {}
    for assumptions, fact in state:
        facts = classes.setdefault(assumptions, set())
        if fact != ALIVE:
            facts.add(fact)
    return classes


def join(classes) -> frozenset:
    return frozenset((a, f) for a, facts in classes.items() for f in (*facts, ALIVE))


class RootRun:
    """Transfer functions for one root, through the helpers it calls."""

    def __init__(self, analysis, optimizers, root_scope):
        self.a = analysis
        # An optimizer built from several modules' parameters is tracked per module
        # ("opt@model.body"), so zeroing one of them leaves the others' facts alone.
        self.parts: Dict[str, Tuple[str, ...]] = {}
        self.part_module: Dict[str, str] = {}
        for key, target in optimizers.items():
            self._parts(key, target)
        self.tracked = self._tracked(root_scope)
        self.report = None  # set for the final, reporting pass
        self.cache: Dict[tuple, frozenset] = {}

    # -- optimizers --------------------------------------------------------
    def _parts(self, key: str, target=None) -> Tuple[str, ...]:
        if key not in self.parts:
            tied = ()
            if target is not None and target.binding is not None and target.binding.kind == "optimizer":
                tied = tuple(dict.fromkeys(target.modules))
            if len(tied) > 1:
                self.parts[key] = tuple(f"{key}@{m}" for m in tied)
                self.part_module.update(zip(self.parts[key], tied))
            else:
                self.parts[key] = (key,)
                if tied:
                    self.part_module[key] = tied[0]
        return self.parts[key]

    @property
    def universe(self):
        return [p for parts in self.parts.values() for p in parts]

    def _covered(self, zeroed, facts) -> Set[str]:
        known = set(self.universe) | {f[2] for f in facts if len(f) > 2 and isinstance(f[2], str)}
        if zeroed is None:
            return known
        if isinstance(zeroed, set):
            return {part for key in zeroed for part in self._parts(key)}
        _, modules = zeroed
        out = set()
        for part in known:
            tied = self.part_module.get(part)
            # A module zero covers the parameters of that module and its submodules;
            # an optimizer that nothing ties to a module is taken to be covered.
            if tied is None or any(tied == m or tied.startswith(m + ".") for m in modules):
                out.add(part)
        return out

    # -- conditions --------------------------------------------------------
    def _tracked(self, scope) -> Dict[str, conditions.Condition]:
        counts: Counter = Counter()
        found: Dict[str, conditions.Condition] = {}
        for cond, repeats in scope.unit.owner.conditions_in(scope.unit, scope, set()):
            counts[cond.key] += 2 if repeats else 1  # a test in a loop meets itself again
            found[cond.key] = cond
        repeated = [key for key, n in counts.most_common() if n >= 2][:MAX_TRACKED]
        return {key: found[key] for key in repeated}

    def branch(self, node, state, scope):
        test, taken = node.branch
        expr, polarity = conditions.split_not(test)
        want = taken if polarity else not taken  # the truth of expr along this edge
        decided = conditions.decide(expr, lambda name: scope.unit.owner.literal_of(name, scope))
        if decided is not None and decided != want:
            return frozenset()  # a parameter bound to a literal rules this edge out
        cond = conditions.condition(expr, lambda name: scope.unit.owner.cond_name(name, scope))
        if cond is None or cond.key not in self.tracked:
            return state
        return frozenset((a | {(cond.key, want)}, f) for a, f in state if (cond.key, not want) not in a)

    def forget(self, node, state, scope):
        """Drop assumptions about conditions whose names this node assigns."""
        assigned = [scope.unit.owner.cond_name(t, scope) for t in conditions.assigned_texts(node)]
        if not assigned:
            return state
        stale = {key for key, cond in self.tracked.items()
                 if any(n == t or n.startswith(t + ".") for n in cond.names for t in assigned)}
        if not stale:
            return state
        return frozenset((frozenset(x for x in a if x[0] not in stale), f) for a, f in state)

    # -- transfer ------------------------------------------------------------
    def transfer(self, node, state, scope, events) -> frozenset:
        if not state:
            return state
        if node.branch is not None:
            state = self.branch(node, state, scope)
        for event in events.get(node.id, ()):
            state = self.apply(event, state, scope)
        if self.tracked:
            state = self.forget(node, state, scope)
        return state

    def apply(self, event, state, scope) -> frozenset:
        site = Site(scope.unit.path, event.span, event.text, scope.depth == 0)
        for action, payload in self.a.actions(event, scope):
            if action == "CALL":
                state = self.call(payload, state, scope)
                continue
            classes = split(state)
            for assumptions, facts in classes.items():
                classes[assumptions] = self._rule_step(action, payload, frozenset(facts), site)
            state = join(classes)
        return state

    def _rule_step(self, action, payload, facts, site):
        rules = self.a.rules
        if action == "B":
            for rule in rules:
                facts = rule.on_backward(facts, site, self.universe)
        elif action == "S":
            key = payload.key
            step_site = Site(site.path, site.span, site.text, site.root, key)
            report = self._reporter(key)
            for part in self._parts(key, payload):
                for rule in rules:
                    facts = rule.on_step(facts, part, step_site, report)
        elif action == "Z":
            covered = self._covered(payload, facts)
            for rule in rules:
                facts = rule.on_zero(facts, covered, site)
        elif action == "N":  # a fresh optimizer: no rule holds anything about it yet
            parts = set(self._parts(payload))
            facts = frozenset(f for f in facts if not (len(f) > 2 and f[2] in parts))
        return facts

    def _reporter(self, key: str):
        if self.report is None:
            return _ignore
        return lambda finding: self.report(replace(finding, optimizer=key))

    def call(self, payload, state, scope) -> frozenset:
        callee = payload[0]
        if callee.name in scope.stack or scope.depth >= self.a.max_depth:
            return state
        inner = self.a.bind(payload, scope)
        key = (callee.name, inner.args, state)
        if self.report is None and key in self.cache:
            return self.cache[key]
        graph, events = callee.owner.graph(callee)
        ins, outs = dataflow.solve(graph, lambda node, s: self.transfer(node, s, inner, events), state)
        if self.report is not None:
            for node_id, node_state in ins.items():
                self.transfer(graph.nodes[node_id], node_state, inner, events)
        # The callee's own locals die with it: forget what was assumed about them.
        prefix = f"{callee.name}:"
        result = frozenset((frozenset(x for x in a if not x[0].startswith(prefix)), f)
                           for a, f in outs.get(graph.exit, frozenset()))
        self.cache[key] = result
        return result

    def run(self, graph, events, scope):
        ins, _ = dataflow.solve(graph, lambda node, s: self.transfer(node, s, scope, events), START)
        findings = []
        self.report = findings.append
        for node_id, state in ins.items():
            self.transfer(graph.nodes[node_id], state, scope, events)
        self.report = None
        return findings


def _ignore(_finding: Finding) -> None:
    pass
