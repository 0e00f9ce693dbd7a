"""A read-only walk over a libcst tree, in libcst's own visiting order.

`node.visit(visitor)` in libcst rebuilds every node it passes (each node's
`_visit_and_replace_children` constructs and validates a copy) and calls the
visitor before and after every field of every node, whitespace included: on
training code that was half of zgcheck's time. Our visitors only read, so this
walk calls the same `visit_<Type>` / `leave_<Type>` methods on the same nodes
in the same order, and builds nothing.

Trivia (whitespace, comments, punctuation, operators) are neither visited nor
entered: nothing below them can be an event, a binding or a definition.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import libcst as cst

TRIVIA = (
    cst.BaseParenthesizableWhitespace, cst.TrailingWhitespace, cst.EmptyLine, cst.Comment, cst.Newline,
    cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual, cst.ImportStar,
    cst.LeftParen, cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket,
    cst.LeftCurlyBrace, cst.RightCurlyBrace,
    cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp,
)

Handlers = Tuple[Optional[Callable], Optional[Callable]]


def visit(node: cst.CSTNode, visitor: object, skip: Tuple[type, ...] = ()) -> None:
    """What `node.visit(visitor)` does for a visitor that only reads: `visit_<Type>(n)` (a
    False return skips n's children), n's children in lexical order, `leave_<Type>(n)`.
    Nodes below the root that are instances of `skip` are neither visited nor entered."""
    visitor_class = type(visitor)
    handlers = _handlers(visitor_class)
    fields = _FIELDS
    entered = _ENTERED.setdefault(skip, {})

    def enters(kind: type) -> bool:  # libcst's node classes are ABCs: test each type once
        if kind not in entered:
            entered[kind] = issubclass(kind, cst.CSTNode) and not issubclass(kind, TRIVIA + skip)
        return entered[kind]

    def walk(n: cst.CSTNode) -> None:
        kind = type(n)
        enter, leave = handlers.get(kind) or _bind(visitor_class, handlers, kind)
        if enter is None or enter(visitor, n) is not False:
            names = fields.get(kind)
            for name in names if names is not None else _record(n):
                value = getattr(n, name)
                value_kind = type(value)
                if value_kind is tuple or value_kind is list:
                    for item in value:
                        into = entered.get(type(item))
                        if into or into is None and enters(type(item)):
                            walk(item)
                else:
                    into = entered.get(value_kind)
                    if into or into is None and enters(value_kind):
                        walk(value)
        if leave is not None:
            leave(visitor, n)

    walk(node)


_HANDLERS: Dict[type, Dict[type, Handlers]] = {}
_FIELDS: Dict[type, Tuple[str, ...]] = {}
_ENTERED: Dict[Tuple[type, ...], Dict[type, bool]] = {}  # skip -> node type -> walked into


def _handlers(visitor_class: type) -> Dict[type, Handlers]:
    if visitor_class not in _HANDLERS:
        for attr in dir(visitor_class):  # a trivia handler would silently never run: refuse it
            kind = getattr(cst, attr.partition("_")[2], None) if attr.startswith(("visit_", "leave_")) else None
            if isinstance(kind, type) and issubclass(kind, TRIVIA):
                raise TypeError(f"{visitor_class.__name__}.{attr}: treewalk does not visit {kind.__name__}")
        _HANDLERS[visitor_class] = {}
    return _HANDLERS[visitor_class]


def _bind(visitor_class: type, handlers: Dict[type, Handlers], kind: type) -> Handlers:
    """The visitor's unbound visit_/leave_ methods for a node type (libcst's names)."""
    found = (getattr(visitor_class, f"visit_{kind.__name__}", None),
             getattr(visitor_class, f"leave_{kind.__name__}", None))
    handlers[kind] = found
    return found


class _FieldRecorder(cst.CSTVisitor):
    """Notes the fields libcst visits, in its order, without descending."""

    def __init__(self) -> None:
        self.fields: list = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.fields.append(attribute)


def _record(node: cst.CSTNode) -> Tuple[str, ...]:
    """The fields of node's type in libcst's visiting order, read once per type from libcst's
    own `_visit_and_replace_children`. A field it visits only when set (an f-string's
    format spec) comes last, where libcst visits it."""
    recorder = _FieldRecorder()
    node._visit_and_replace_children(recorder)
    order = list(dict.fromkeys(recorder.fields))
    order += [name for name in getattr(type(node), "__dataclass_fields__", {}) if name not in order]
    _FIELDS[type(node)] = tuple(order)
    return _FIELDS[type(node)]
