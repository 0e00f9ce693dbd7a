"""Branch conditions the dataflow can reason about: keyed, decided, forgotten.

Only *simple* conditions are used: names, attribute chains, literals, their
comparisons and `not`. They have no calls, so evaluating one twice gives the
same answer unless something it names is assigned in between. That is what
makes `if use_opt: opt.zero_grad() ... if use_opt: opt.step()` one path per
value of `use_opt` instead of four. Conditions on names mutated through calls
(`self.cfg.flag` changed inside a method) are assumed unchanged: documented.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Callable, FrozenSet, Optional, Tuple

import libcst as cst

from ..recognise import dotted
from . import counters

_OPERATORS = {
    cst.Equal: "==", cst.NotEqual: "!=", cst.Is: "is", cst.IsNot: "is not",
    cst.LessThan: "<", cst.LessThanEqual: "<=", cst.GreaterThan: ">", cst.GreaterThanEqual: ">=",
}
_LITERAL_NAMES = {"True": True, "False": False, "None": None}


_ARITHMETIC = {cst.Add: "+", cst.Subtract: "-", cst.Multiply: "*", cst.Modulo: "%", cst.FloorDivide: "//"}


@dataclass(frozen=True)
class Condition:
    key: str  # canonical text, names renamed into the root's terms
    names: FrozenSet[str]  # the (renamed) names it reads
    negated: bool = False  # the key states the opposite of the expression (`!=` on a counter)


def split_not(expr: cst.BaseExpression) -> Tuple[cst.BaseExpression, bool]:
    """`not not x` -> (x, True); `not x` -> (x, False)."""
    polarity = True
    while isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Not):
        expr, polarity = expr.expression, not polarity
    return expr, polarity


def condition(expr: cst.BaseExpression, rename: Callable[[str], object]) -> Optional[Condition]:
    """The key of a simple condition, or None when it is not simple. `rename` maps a name
    to its text in the root's terms, or to the Condition of the expression it stands for."""
    window = counters.window(expr, lambda e: _key(e, rename))
    if window is not None:
        return Condition(*window)
    parts = _key(expr, rename)
    if parts is None:
        return None
    text, names = parts
    return Condition(text, frozenset(names)) if names else None


def _key(expr: cst.BaseExpression, rename):
    literal = _literal_text(expr)
    if literal is not None:
        return literal, set()
    name = dotted(expr)
    if name is not None and not name.endswith("()"):
        renamed = rename(name)
        if isinstance(renamed, Condition):  # a parameter bound to `(i + 1) % k == 0`
            return renamed.key if not renamed.negated else f"not ({renamed.key})", set(renamed.names)
        return renamed, {renamed}
    if isinstance(expr, cst.BinaryOperation) and type(expr.operator) in _ARITHMETIC:
        left, right = _key(expr.left, rename), _key(expr.right, rename)
        if left is None or right is None:
            return None
        return f"({left[0]} {_ARITHMETIC[type(expr.operator)]} {right[0]})", left[1] | right[1]
    if isinstance(expr, cst.Comparison):
        left = _key(expr.left, rename)
        if left is None:
            return None
        text, names = left
        for target in expr.comparisons:
            op = _OPERATORS.get(type(target.operator))
            right = _key(target.comparator, rename)
            if op is None or right is None:
                return None
            text, names = f"{text} {op} {right[0]}", names | right[1]
        return text, names
    return None


def _literal_text(expr: cst.BaseExpression) -> Optional[str]:
    if isinstance(expr, cst.Name) and expr.value in _LITERAL_NAMES:
        return expr.value
    if isinstance(expr, (cst.Integer, cst.Float)):
        return expr.value
    if isinstance(expr, cst.SimpleString):
        try:
            return repr(ast.literal_eval(expr.value))
        except (ValueError, SyntaxError):
            return None
    return None


_NOT_LITERAL = object()


def decide(expr: cst.BaseExpression, literal_of: Callable[[str], object]) -> Optional[bool]:
    """The condition's truth when every name in it is bound to a literal, else None.

    `literal_of(name)` returns the literal a name is bound to (an argument such
    as `mode="train"`), or _NOT_LITERAL.
    """
    value = _value(expr, literal_of)
    return None if value is _NOT_LITERAL else bool(value)


def _value(expr, literal_of):
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Not):
        inner = _value(expr.expression, literal_of)
        return inner if inner is _NOT_LITERAL else (not inner)
    text = _literal_text(expr)
    if text is not None:
        return ast.literal_eval(text)
    name = dotted(expr)
    if name is not None:
        return literal_of(name)
    if isinstance(expr, cst.Comparison) and len(expr.comparisons) == 1:
        target = expr.comparisons[0]
        left, right = _value(expr.left, literal_of), _value(target.comparator, literal_of)
        if left is _NOT_LITERAL or right is _NOT_LITERAL:
            return _NOT_LITERAL
        if isinstance(target.operator, cst.Equal):
            return left == right
        if isinstance(target.operator, cst.NotEqual):
            return left != right
    return _NOT_LITERAL


def literal_from_text(text: str):
    """The Python literal an argument text denotes, or _NOT_LITERAL."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_LITERAL


NOT_LITERAL = _NOT_LITERAL


def assigned_texts(node) -> Tuple[str, ...]:
    """Names and attribute chains a CFG node's statement assigns."""
    item, owner = node.item, node.owner
    targets = []
    if isinstance(item, cst.Assign):
        targets = [t.target for t in item.targets]
    elif isinstance(item, (cst.AnnAssign, cst.AugAssign)):
        targets = [item.target]
    elif isinstance(owner, cst.For):
        targets = [owner.target]
    elif isinstance(owner, cst.WithItem) and owner.asname is not None:
        targets = [owner.asname.name]
    out = []
    for target in targets:
        stack = [target]
        while stack:
            t = stack.pop()
            if isinstance(t, (cst.Tuple, cst.List)):
                stack.extend(e.value for e in t.elements)
            elif isinstance(t, cst.StarredElement):
                stack.append(t.value)
            else:
                name = dotted(t)
                if name:
                    out.append(name)
    return tuple(out)


def counter_updates(node, entry: Optional[bool]) -> Tuple[Tuple[str, Optional[int], bool], ...]:
    """(name, value it is set to or None, whether it grows by one) for each counter a CFG
    node updates: `i = 0`, `i += 1`, `i = i + 1`, and the index of `for i, x in
    enumerate(...)` / `for i in range(...)`. A `for` header is the loop's entry (the index
    starts), a later iteration (it grows), or, when one node is both (entry None), either."""
    item, owner = node.item, node.owner
    if isinstance(item, cst.AugAssign) and isinstance(item.operator, cst.AddAssign) and _is_one(item.value):
        return tuple((name, None, True) for name in filter(None, [dotted(item.target)]))
    if isinstance(item, cst.Assign) and len(item.targets) == 1:
        name, value = dotted(item.targets[0].target), item.value
        if name and isinstance(value, cst.Integer):
            return ((name, int(value.value, 0), False),)
        if name and isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add) \
                and dotted(value.left) == name and _is_one(value.right):
            return ((name, None, True),)
    if isinstance(owner, cst.For) and isinstance(owner.iter, cst.Call):
        func, args, target = dotted(owner.iter.func), owner.iter.args, owner.target
        start = 0
        if func == "enumerate" and isinstance(target, cst.Tuple) and target.elements:
            target = target.elements[0].value
            given = [a.value for a in args[1:2]] + [a.value for a in args if a.keyword and a.keyword.value == "start"]
            start = int(given[0].value, 0) if given and isinstance(given[0], cst.Integer) else None
        elif func == "range" and 1 <= len(args) <= 2:
            first = args[0].value
            start = 0 if len(args) == 1 else (int(first.value, 0) if isinstance(first, cst.Integer) else None)
        else:
            return ()
        name = dotted(target)
        if name is None or (entry is not False and start is None):
            return ()  # an unknown start: forgotten as any assignment
        return ((name, None if entry is False else start, entry is not True),)
    return ()


def _is_one(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Integer) and expr.value == "1"
