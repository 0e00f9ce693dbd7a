"""Queries over a root's resolved frames: every action in order, the optimizers
stepped, the conditions tested. They read what `resolve.plan` built; nothing here
resolves a name.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, FrozenSet, Iterator, Tuple

from .units import Action, Call, Frame, Step, Target

MAX_TRACKED = 8  # conditions tracked per root: bounds the number of path classes


def tracked_conditions(root: Frame) -> Dict[str, FrozenSet[str]]:
    """Conditions tested at least twice (in a loop, or in a helper called again): the
    ones worth splitting paths on, most tested first."""
    counts: Counter = Counter()
    names: Dict[str, FrozenSet[str]] = {}
    for key, cond_names, repeats in tested_conditions(root):
        counts[key] += 2 if repeats else 1  # a test in a loop meets itself again
        names[key] = cond_names
    repeated = [key for key, n in counts.most_common() if n >= 2][:MAX_TRACKED]
    return {key: names[key] for key in repeated}


def walk(frame: Frame) -> Iterator[Action]:
    """Every action of the frame in order, a call's actions where the call is."""
    for acts in frame.actions.values():
        for action in acts:
            yield action
            if isinstance(action, Call):
                yield from walk(action.frame)


def optimizers(root: Frame) -> Dict[str, Target]:
    """Every optimizer stepped in the root and its helpers, by key (ZG002's universe)."""
    found: Dict[str, Target] = {}
    for action in walk(root):
        if isinstance(action, Step):
            found.setdefault(action.optimizer.key, action.optimizer)
    return found


def tested_conditions(root: Frame) -> Iterator[Tuple[str, FrozenSet[str], bool]]:
    """(key, names, tested again) of every simple `if` in the root and, per call, its helpers."""
    yield from root.conditions
    for action in walk(root):
        if isinstance(action, Call):
            yield from action.frame.conditions
