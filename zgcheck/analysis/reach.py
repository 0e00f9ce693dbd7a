"""Which models' parameters a backward reaches: the loss followed back to model calls.

A loss is followed through the assignments of its unit (and, for a helper's
parameter, through the caller's argument) to the calls that produced it. A
call of something that is not a known tensor function (`torch.*`, `F.*`, a
`...Loss()` object, a builtin, a tensor method) is a *model call*, keyed by
its receiver in the root's terms (`netG`, `self.model.encoder`).
`.detach()`, `.data`, `.item()` and `torch.no_grad()` blocks stop the walk.

Two answers come back. `must`: model calls the loss provably depends on
(ZG003 needs proof). `may`: every model call it may depend on, or None when
something is unknown (a helper function's result, a parameter, a global): a
backward that provably does not reach an optimizer's models cannot make its
gradients stale, but only a known `may` proves that.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple

import libcst as cst

from ..recognise import dotted, leaf
from ..statements import suites
from .units import NOTHING, UNKNOWN, Reach, Scope, Unit

# Calls whose result depends only on their arguments (no parameters of their own).
_TENSOR_ROOTS = frozenset({"torch", "F", "functional", "math", "np", "numpy", "einops", "operator"})
_BUILTINS = frozenset({"sum", "min", "max", "abs", "float", "int", "len", "list", "tuple", "sorted",
                       "zip", "round", "pow", "dict", "map", "reversed", "enumerate"})
_STOP_METHODS = frozenset({"detach", "item", "tolist", "numpy", "detach_"})
_NO_GRAD = frozenset({"no_grad", "inference_mode", "enable_grad", "set_grad_enabled"})
_FREEZE_WORDS = ("requires_grad", "toggle_optimizer", "freeze")


def _either(options: List[Reach]) -> Reach:
    """One of several values: proven only what all prove, possible what any may."""
    if not options:
        return UNKNOWN
    must = frozenset.intersection(*(o.must for o in options))
    may: Optional[FrozenSet[str]] = frozenset()
    for o in options:
        may = None if may is None or o.may is None else may | o.may
    return Reach(must, may)


class _Assignments:
    """name -> the values assigned to it in one unit (None for a value made under no_grad)."""

    def __init__(self, unit: Unit):
        self.values: Dict[str, List[Optional[cst.BaseExpression]]] = {}
        self.loop_targets: Dict[str, cst.BaseExpression] = {}
        self._walk(unit.body, no_grad=False)

    def _walk(self, body, no_grad: bool) -> None:
        for stmt in body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                continue
            if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
                for small in stmt.body:
                    self._small(small, no_grad)
                continue
            inner = no_grad or (isinstance(stmt, cst.With) and any(_is_no_grad(i.item) for i in stmt.items))
            if isinstance(stmt, cst.For):
                for name in _names(stmt.target):
                    self.loop_targets[name] = stmt.iter
            for suite in suites(stmt):
                self._walk(suite, inner)

    def _small(self, small, no_grad: bool) -> None:
        if isinstance(small, cst.Assign):
            for target in small.targets:
                for name in _names(target.target):
                    self.values.setdefault(name, []).append(None if no_grad else small.value)
        elif isinstance(small, (cst.AnnAssign, cst.AugAssign)) and small.value is not None:
            for name in _names(small.target):
                self.values.setdefault(name, []).append(None if no_grad else small.value)


def _names(target: cst.BaseExpression) -> List[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in _names(el.value)]
    if isinstance(target, cst.StarredElement):
        return _names(target.value)
    name = dotted(target)
    return [name] if name else []


def _is_no_grad(expr: cst.BaseExpression) -> bool:
    if not isinstance(expr, cst.Call):
        return False
    name = leaf(dotted(expr.func) or "")
    if name == "set_grad_enabled":  # set_grad_enabled(False) only
        return bool(expr.args) and dotted(expr.args[0].value) == "False"
    return name in _NO_GRAD - {"enable_grad", "set_grad_enabled"}


class Reacher:
    """Reach of expressions within one root (caches each unit's assignments)."""

    def __init__(self, key_of: Callable[[str, Scope], str]) -> None:
        self.key_of = key_of  # a model's key in the root's terms
        # A name's reach depends on the walk so far only through which of the names it
        # consults are being visited (those count as NOTHING): each result is kept with
        # the names it consulted and which of them were cut, and reused where they match.
        # Without it, names that share values (`a = f(x); b = g(a, a)`) are walked once
        # per path, exponentially.
        # (Each entry holds its scope, so that no scope's id is reused while keys name it.)
        self._known: Dict[tuple, List[Tuple[FrozenSet[tuple], FrozenSet[tuple], Reach, Scope]]] = {}
        self._consulted: List[Set[tuple]] = [set()]

    def backward(self, loss_text: Optional[str], scope: Scope) -> Reach:
        """What the backward of the loss written `loss_text` reaches, seen from scope."""
        if loss_text is None or self._freezes(scope):
            return UNKNOWN  # parameters frozen somewhere on the way: nothing is proven
        return self._text(loss_text, scope, set())

    def _freezes(self, scope: Scope) -> bool:
        """A unit that freezes parameters (`requires_grad_(False)`, `toggle_optimizer`)."""
        s: Optional[Scope] = scope
        while s is not None:
            unit = s.unit
            key = ("freezes", unit.name)
            if key not in unit.module.memo:
                text = unit.module.source_of(unit)
                unit.module.memo[key] = any(word in text for word in _FREEZE_WORDS)
            if unit.module.memo[key]:
                return True
            s = next((caller for _, _, caller in s.args), None)
        return False

    def _text(self, text: str, scope: Scope, visiting: Set) -> Reach:
        expr = _expression(text)
        return UNKNOWN if expr is None else self._expr(expr, scope, visiting)

    @staticmethod
    def _assigned(unit: Unit) -> _Assignments:
        key = ("assignments", unit.name)
        if key not in unit.module.memo:
            unit.module.memo[key] = _Assignments(unit)
        return unit.module.memo[key]

    def _name(self, name: str, scope: Scope, visiting: Set) -> Reach:
        """The value of a name: its assignments in the unit (or an enclosing one), a bound
        parameter's argument, or unknown."""
        key = (scope.unit.key, id(scope), name)
        self._consulted[-1].add(key)
        if key in visiting:
            return NOTHING  # `loss = loss + x` in a loop: the fixpoint adds nothing new
        for consulted, cut, reach, _ in self._known.get(key, ()):
            if consulted & visiting == cut:
                self._consulted[-1] |= consulted
                return reach
        self._consulted.append({key})
        try:
            reach = self._value(name, scope, visiting | {key})
        finally:
            consulted = frozenset(self._consulted.pop())
        self._consulted[-1] |= consulted
        self._known.setdefault(key, []).append((consulted, consulted & visiting, reach, scope))
        return reach

    def _value(self, name: str, scope: Scope, visiting: Set) -> Reach:
        root = name.split(".", 1)[0]
        for unit in scope.unit.enclosing():
            found = self._assigned(unit)
            if name in found.values:
                return _either([NOTHING if v is None else self._expr(v, scope, visiting)
                                for v in found.values[name]])
            if name in found.loop_targets:  # batches of data, unless it iterates model outputs
                reach = self._expr(found.loop_targets[name], scope, visiting)
                return reach if reach.may is not None else NOTHING
            if root in unit.params:
                break
        bound = scope.arg(root)
        if bound is not None:
            arg_text, caller = bound
            return self._text(arg_text + name[len(root):], caller, visiting)
        return UNKNOWN

    def _expr(self, expr: cst.BaseExpression, scope: Scope, visiting: Set) -> Reach:
        if isinstance(expr, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString,
                             cst.ConcatenatedString, cst.Lambda)):
            return NOTHING
        if isinstance(expr, cst.Call):
            return self._call(expr, scope, visiting)
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("data", "grad", "shape"):
            return NOTHING
        name = dotted(expr)
        if name is not None:
            if name in ("True", "False", "None"):
                return NOTHING
            return self._name(name, scope, visiting)
        if isinstance(expr, cst.Attribute):  # `model(x).logits`
            return self._expr(expr.value, scope, visiting)
        if isinstance(expr, cst.Subscript):
            return self._expr(expr.value, scope, visiting)
        if isinstance(expr, cst.IfExp):
            return _either([self._expr(expr.body, scope, visiting), self._expr(expr.orelse, scope, visiting)])
        return self._parts(_children(expr), scope, visiting)

    def _parts(self, parts, scope: Scope, visiting: Set) -> Reach:
        out = NOTHING
        for part in parts:
            out = out | self._expr(part, scope, visiting)
        return out

    def _call(self, call: cst.Call, scope: Scope, visiting: Set) -> Reach:
        args = self._parts([a.value for a in call.args], scope, visiting)
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in _STOP_METHODS:
            return NOTHING
        name = dotted(func)
        if isinstance(func, cst.Attribute) and name is None:  # `model(x).mean()`
            return self._expr(func.value, scope, visiting) | args
        if name is None:  # `models[i](x)`, `make()(x)`
            return UNKNOWN
        if name.split(".", 1)[0] in _TENSOR_ROOTS or name in _BUILTINS or self._is_loss(name, scope):
            return args
        receiver = dotted(func.value) if isinstance(func, cst.Attribute) else None
        if receiver is not None and self._defined_value(receiver, scope):
            return self._name(receiver, scope, visiting) | args  # a tensor's method: `out.mean()`
        if self._is_function(name, scope):
            return UNKNOWN  # a helper's result: what it reaches is not followed (yet)
        key = self.key_of(name, scope)
        called = Reach(frozenset({key}), frozenset({key})) | args
        if receiver is not None and not self._is_model(receiver, scope):
            # A parameter or attribute: a model's method or a tensor's, either way.
            called = called | self._name(receiver, scope, visiting)
        return called

    def _defined_value(self, name: str, scope: Scope) -> bool:
        """A name assigned a value in the unit (a tensor), not a model built there."""
        for unit in scope.unit.enclosing():
            values = self._assigned(unit).values.get(name)
            if values is not None:
                return not any(isinstance(v, cst.Call) and self._constructor(v, scope) for v in values
                               if v is not None)
            if name in self._assigned(unit).loop_targets:
                return True
        return False

    @staticmethod
    def _constructor(call: cst.Call, scope: Scope) -> bool:
        """`Net(...)` builds a model; `G(z)` with `G` a variable calls one."""
        name = dotted(call.func) or ""
        return leaf(name)[:1].isupper() and scope.unit.module.lookup(name, scope.unit) is None

    def _is_model(self, name: str, scope: Scope) -> bool:
        binding = scope.unit.module.lookup(name, scope.unit)
        return binding is not None and binding.kind == "other" and binding.alias.endswith("()") and \
            leaf(binding.alias[:-2])[:1].isupper()

    def _is_loss(self, name: str, scope: Scope) -> bool:
        """`criterion(out, y)` with `criterion = nn.MSELoss()` or `= F.mse_loss`."""
        binding = scope.unit.module.lookup(name, scope.unit)
        if binding is None or binding.kind != "other":
            return False  # known by what it was bound to, never by its name
        alias = binding.alias  # a loss module, or a tensor function bound to a name
        return alias.endswith("Loss()") or (not alias.endswith("()") and alias.split(".", 1)[0] in _TENSOR_ROOTS)

    def _is_function(self, name: str, scope: Scope) -> bool:
        module = scope.unit.module
        if module.callee(name, scope.unit) is not None or leaf(name) in module.def_names:
            return True
        root = name.split(".", 1)[0]
        imported = module.imports.get(root)
        if imported is not None:
            return True  # a project helper or a library function
        return module.lookup(name, scope.unit) is not None and \
            module.lookup(name, scope.unit).kind == "partial"


@functools.lru_cache(maxsize=4096)
def _expression(text: str) -> Optional[cst.BaseExpression]:
    """A loss's or argument's text as an expression (texts recur: parsed once), None if not one."""
    try:
        return cst.parse_expression(text)
    except (cst.ParserSyntaxError, RecursionError):
        return None


def _children(expr: cst.CSTNode):
    """Sub-expressions of an operator, container or comprehension."""
    out = []
    for child in expr.children:
        if isinstance(child, cst.BaseExpression):
            out.append(child)
        elif isinstance(child, (cst.Element, cst.DictElement, cst.Arg)) or hasattr(child, "value"):
            value = getattr(child, "value", None)
            if isinstance(value, cst.BaseExpression):
                out.append(value)
            if isinstance(child, cst.DictElement):
                out.append(child.key)
    return out
