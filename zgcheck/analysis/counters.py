"""Loop counters: conditions on `(i + c) % k` decided across iterations.

A condition `(i + c) % k == r` on a counter that grows by one per iteration
(the index of `enumerate`, `range`, `i += 1`) is keyed as the residue it states,
`i ≡ r - c (mod k)`. Two residues that differ by one can never hold together
(for any k >= 2; a literal k is computed exactly), and when the counter
advances, an assumption `i ≡ d` becomes `i ≡ d + 1` instead of being
forgotten. So a zero under `i % k == 0` runs on the iteration right after a
step under `(i + 1) % k == 0`: the two line up, and the windows are clean.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, FrozenSet, Iterable, Mapping, Optional, Tuple

import libcst as cst

_KEY = re.compile(r"^(?P<counter>.+) ≡ (?P<offset>-?\d+) \(mod (?P<modulus>.+)\)$")

Assumptions = FrozenSet[Tuple[str, bool]]


def key(counter: str, offset: int, modulus: str) -> str:
    if modulus.isdigit() and int(modulus) > 0:
        offset %= int(modulus)  # a literal window size: residues computed exactly
    return f"{counter} ≡ {offset} (mod {modulus})"


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Optional[Tuple[str, int, str]]:
    match = _KEY.match(text)
    return (match["counter"], int(match["offset"]), match["modulus"]) if match else None


def window(expr: cst.BaseExpression, key_of: Callable) -> Optional[tuple]:
    """(key, names, negated) for `(i + c) % k == r` / `!=`, else None (key_of gives a
    sub-expression's (text, names) in the root's terms, or None)."""
    if not (isinstance(expr, cst.Comparison) and len(expr.comparisons) == 1):
        return None
    test = expr.comparisons[0]
    if not isinstance(test.operator, (cst.Equal, cst.NotEqual)) or not isinstance(test.comparator, cst.Integer):
        return None
    mod = expr.left
    if not (isinstance(mod, cst.BinaryOperation) and isinstance(mod.operator, cst.Modulo)):
        return None
    offset, counter = int(test.comparator.value, 0), mod.left  # (i + c) % k == r: i ≡ r - c
    if isinstance(counter, cst.BinaryOperation) and isinstance(counter.operator, (cst.Add, cst.Subtract)) \
            and isinstance(counter.right, cst.Integer):
        shift = int(counter.right.value, 0)
        offset += -shift if isinstance(counter.operator, cst.Add) else shift
        counter = counter.left
    counted, modulus = key_of(counter), key_of(mod.right)
    if counted is None or modulus is None or len(counted[1]) != 1 or counted[0] not in counted[1]:
        return None  # the counter must be a plain name
    return key(counted[0], offset, modulus[0]), frozenset(counted[1] | modulus[1]), \
        isinstance(test.operator, cst.NotEqual)


def _distinct(a: int, b: int, modulus: str) -> bool:
    if modulus.isdigit():
        return int(modulus) > 0 and (a - b) % int(modulus) != 0
    return abs(a - b) == 1  # any k >= 2


def consistent(assumptions: Assumptions, text: str, holds: bool) -> bool:
    """Whether `text` may hold (or fail, per holds) given what was assumed of its counter."""
    this = parse(text)
    if this is None or not holds:
        return True
    return not any(h and k != text and (p := parse(k)) is not None and p[0] == this[0] and p[2] == this[2]
                   and _distinct(p[1], this[1], this[2]) for k, h in assumptions)


def update(assumptions: Assumptions, updates, tracked: Mapping[str, object]) -> Tuple[Assumptions, ...]:
    """The assumptions after a node updates counters ((name, set to, grows) each, see
    `conditions.counter_updates`): `i ≡ d` becomes `i ≡ d + 1` when i grows; when i is set
    to v, `i ≡ v` holds. A node that may do either gives both. Only residues tested
    somewhere are kept (the rest say nothing of use)."""
    out = [assumptions]
    for name, value, grows in updates:
        following = []
        for before in out:
            mine = [(p, h) for t, h in before if (p := parse(t)) is not None and p[0] == name]
            rest = frozenset((t, h) for t, h in before if (t, h) not in
                             {(key(*p), h) for p, h in mine})
            if grows:
                moved = {(key(name, p[1] + 1, p[2]), h) for p, h in mine}
                following.append(rest | {(t, h) for t, h in moved if t in tracked})
            if value is not None:
                following.append(rest | {(t, True) for t in tracked if (p := parse(t)) is not None
                                         and p[0] == name and t == key(name, value, p[2])})
        out = following
    return tuple(out)


def updated_keys(tracked: Iterable[str], updates) -> FrozenSet[str]:
    """Tracked counter keys that `update` carries over instead of forgetting."""
    names = {name for name, _, _ in updates}
    return frozenset(t for t in tracked if (p := parse(t)) is not None and p[0] in names)
