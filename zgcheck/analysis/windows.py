"""Which `if` tests guard an action, and counter windows: where the steps of an optimizer
are taken only on some values of a loop counter, so that what a backward leaves unapplied
is accumulated for a later step (`analysis.resolve` places the Window actions).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from .dataflow import reverse_postorder
from .frames import walk
from .units import Call, Step


class Guards:
    """Whether an `if` guards an action: some node with actions lies on one of its arms and
    not the other (loop back edges left out). Only such conditions are worth tracking: a
    flag that guards setup code would double the path classes for nothing."""

    def __init__(self, graph, actions):
        self.graph, self.actions = graph, actions
        self.rank: Dict[int, int] = {}
        self.arms: Dict[int, Dict[bool, int]] = {}
        self.preds: Optional[Dict[int, List[int]]] = None

    def __call__(self, node_id: int) -> bool:
        if not self.rank:
            self.rank = {n: i for i, n in enumerate(reverse_postorder(self.graph))}
            for node in self.graph.nodes:
                if node.branch is not None:
                    self.arms.setdefault(id(node.branch[0]), {})[node.branch[1]] = node.id
        arms = self.arms.get(id(self.graph.nodes[node_id].branch[0]), {})
        if len(arms) < 2:
            return True
        return any(n in self.actions for n in self._ahead(arms[True]) ^ self._ahead(arms[False]))

    def windowed(self, loop, windows: List[int]) -> frozenset:
        """Optimizers whose steps in loop only some iterations take: a counter edge inside
        the loop leads to them and the other edge of the same test does not."""
        inside = self._inside(loop)
        stepped = {n: _stepped(self.actions[n]) for n in inside if n in self.actions}
        found = set()
        for edge in windows:
            if edge not in inside or not self(edge):
                continue
            other_arm = self.arms.get(id(self.graph.nodes[edge].branch[0]), {}).get(not self.graph.nodes[edge].branch[1])
            if other_arm is None:
                continue
            this, other = self._ahead(edge) & inside, self._ahead(other_arm) & inside
            for n in other - this:
                found |= stepped.get(n, set())
        return frozenset(found)

    def joins(self, windows: List[int]) -> Dict[int, frozenset]:
        """Where the two edges of a counter test meet again, and the optimizers whose steps
        only one of them takes: past that point, what the other left unapplied is being
        accumulated (`if (i + 1) % k == 0: opt.step()` followed by a zero wipes the window)."""
        out: Dict[int, frozenset] = {}
        for edge in windows:
            node = self.graph.nodes[edge]
            if not node.branch[1] or not self(edge):  # each test once, from its taken edge
                continue
            other = self.arms.get(id(node.branch[0]), {}).get(False)
            if other is None:
                continue
            taken, skipped = self._ahead(edge), self._ahead(other)
            common = taken & skipped
            if not common:
                continue
            join = min(common, key=lambda n: self.rank.get(n, 0))
            before = self.rank.get(join, 0)
            stepped = set()
            for n in taken ^ skipped:
                if self.rank.get(n, 0) < before and n in self.actions:
                    stepped |= _stepped(self.actions[n])
            if stepped:
                out[join] = out.get(join, frozenset()) | frozenset(stepped)
        return out

    def _inside(self, loop) -> set:
        """The nodes of one iteration: those that reach the loop's next node without its head."""
        if self.preds is None:
            self.preds = self.graph.preds()
        preds = self.preds
        seen, todo = {loop.next}, [loop.next]
        while todo:
            for p in preds[todo.pop()]:
                if p not in seen and p != loop.head:
                    seen.add(p)
                    todo.append(p)
        return seen

    def _ahead(self, start: int) -> set:
        seen, todo = {start}, [start]
        while todo:
            n = todo.pop()
            for s in self.graph.nodes[n].succs:
                if s not in seen and self.rank.get(s, -1) > self.rank.get(n, -1):
                    seen.add(s)
                    todo.append(s)
        return seen


def _stepped(acts) -> set:
    """The optimizers stepped by these actions, in helpers too."""
    out = set()
    for action in acts:
        if isinstance(action, Step):
            out.add(action.optimizer.key)
        elif isinstance(action, Call):
            out |= {a.optimizer.key for a in walk(action.frame) if isinstance(a, Step)}
    return out
