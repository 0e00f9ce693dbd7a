"""A forward may-analysis over a CFG: join is union, iterate to a fixpoint.

Facts are frozensets of hashable tuples, so a join is a union and equality is
cheap. Results are returned in dicts, never written onto the graph.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Dict, FrozenSet, Hashable, Tuple

from .cfg import CFG, Node

Facts = FrozenSet[Hashable]
Transfer = Callable[[Node, Facts], Facts]


def solve(cfg: CFG, transfer: Transfer, entry: Facts = frozenset()) -> Tuple[Dict[int, Facts], Dict[int, Facts]]:
    """In- and out-facts of every node reachable from the entry."""
    preds = cfg.preds()
    order = reverse_postorder(cfg)
    rank = {n: i for i, n in enumerate(order)}
    ins: Dict[int, Facts] = {}
    outs: Dict[int, Facts] = {}
    pending = deque(order)
    queued = set(order)
    while pending:
        n = pending.popleft()
        queued.discard(n)
        facts = entry if n == cfg.entry else frozenset()
        for p in preds[n]:
            if p in outs:
                facts = facts | outs[p]
        ins[n] = facts
        out = transfer(cfg.nodes[n], facts)
        if outs.get(n) != out:
            outs[n] = out
            for s in sorted(cfg.nodes[n].succs, key=lambda s: rank.get(s, 0)):
                if s not in queued and s in rank:
                    pending.append(s)
                    queued.add(s)
    return ins, outs


def reverse_postorder(cfg: CFG):
    seen, post = set(), []
    stack = [(cfg.entry, iter(cfg.nodes[cfg.entry].succs))]
    seen.add(cfg.entry)
    while stack:
        node, succs = stack[-1]
        for s in succs:
            if s not in seen:
                seen.add(s)
                stack.append((s, iter(cfg.nodes[s].succs)))
                break
        else:
            stack.pop()
            post.append(node)
    return post[::-1]
