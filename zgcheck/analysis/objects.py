"""Objects: which project class an instance is, and which method a call through it runs.

`agent = Agent(...)` (or a project factory whose body returns one), then
`agent.update(batch)`: the call runs `Agent.update` with `self` bound to `agent`;
`self.learner.update(...)` the same through an attribute; `loss_scaler(loss, opt)`
runs the class's `__call__`. Optimizer subclasses are never helpers: their `step`
is an optimizer step.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import TYPE_CHECKING, List, Optional, Tuple

import libcst as cst

from .. import recognise, treewalk
from ..bindings import Binding, classify_value, collect_bindings
from .units import Unit

if TYPE_CHECKING:
    from .module import Module


def bound_method(module: "Module", name: str, unit: Unit) -> Optional[Tuple[Unit, str]]:
    """(method, receiver) for `agent.update` / `self.learner.update` on an instance of a
    project class, or (`__call__`, name) for a called instance; else None."""
    receiver, _, attr = name.rpartition(".")
    if receiver == "self" or name.endswith("()"):
        return None  # the class's own methods: `callee`
    made = instance_class(module, receiver or name, unit)
    if made is None:
        return None
    found = made[0].method(made[1], attr if receiver else "__call__")
    return (found, receiver or name) if found is not None else None


def instance_class(module: "Module", text: str, unit: Unit) -> Optional[Tuple["Module", str]]:
    """(module, class) when text was assigned an instance of a project class: `Agent(...)`,
    or a project factory whose body returns one (`make_agent(cfg)`)."""
    binding = module.lookup(text, unit)
    if binding is None or binding.kind != "other" or not binding.alias.endswith("()"):
        return None
    made = made_class(module, binding.alias[:-2])
    if made is not None and is_optimizer_class(made[0], made[1]):
        return None  # `MyAdam(...).step()` is an optimizer step, not a helper
    return made


def is_optimizer_class(module: "Module", cls: str) -> bool:
    """A subclass of an optimizer (`class MyAdam(torch.optim.Optimizer)`), here or in a base."""
    bases = module.class_bases.get(cls, ()) + tuple(b for o, c in module.bases(cls) for b in o.class_bases.get(c, ()))
    return any(recognise.leaf(b) in ("Optimizer", *module.tables.optimizer_classes) for b in bases)


def made_class(module: "Module", maker: str, depth: int = 0) -> Optional[Tuple["Module", str]]:
    """(module, class) a call of maker makes: a class, or a factory returning one."""
    if maker in module.class_bases:
        return module, maker
    if depth < 3 and maker in module.factories:
        for made in module.factories[maker]:
            found = made_class(module, made, depth + 1)
            if found is not None:
                return found
        return None
    target = module.workspace.files.target(module.path, module.imports, maker)
    other = module.other(*target) if target is not None else None
    return (other, target[1]) if other is not None and target[1] in other.class_bases else None


def returned_element(module: "Module", maker: str, index: int) -> Optional[cst.BaseExpression]:
    """The index-th element of the tuple a project function of this file returns
    (`opt_g, opt_d = make_optimizers(...)`), or None."""
    found = returned(module, maker, index)
    return found[1] if found is not None else None


def returned(module: "Module", maker: str, index: int = -1):
    """(the function, what its first return returns) for a project function of this file;
    with index >= 0, that element of a returned tuple. None when there is no such return."""
    if maker not in module.def_names:
        return None
    key = ("returned", maker, index)
    if key not in module.memo:
        module.memo[key] = _returned(module, maker, index)
    return module.memo[key]


def _returned(module: "Module", maker: str, index: int):
    for stmt in module.parsed.module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == maker:
            for ret in _returns(stmt):
                if index < 0:
                    return stmt, ret
                if isinstance(ret, cst.Tuple) and index < len(ret.elements):
                    return stmt, ret.elements[index].value
    return None


def _returns(fn: cst.FunctionDef) -> List[cst.BaseExpression]:
    """The values fn's own `return` statements return (nested functions' are theirs)."""
    returns = _Returns()
    treewalk.visit(fn, returns, skip=(cst.FunctionDef,))
    return returns.found


class _Returns:
    def __init__(self) -> None:
        self.found: List[cst.BaseExpression] = []

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self.found.append(node.value)


def returned_calls(fn: cst.FunctionDef) -> Tuple[str, ...]:
    """What a factory's `return X(...)` statements call (X's dotted name), in order."""
    names = (recognise.dotted(r.func) for r in _returns(fn) if isinstance(r, cst.Call))
    return tuple(n for n in names if n)


def factory_made(module, binding: Binding) -> Optional[Binding]:
    """The optimizer a project factory of this file returns (`g_opt = build_opt(G, lr)`, or
    `g, d = make_optimizers(...)`), the modules it holds in the caller's terms: the factory's
    parameters replaced by the call's arguments (`model.parameters()` with model bound to G
    ties it to G). None when the call does not make an optimizer here."""
    maker = binding.alias[:-2] if binding.alias.endswith("()") else binding.cls
    found = returned(module, maker, binding.index)
    if found is None:
        return None
    fn, value = found
    made = classify_value(value, module.tables)
    if made.kind != "optimizer":
        return None
    params = [p.name.value for p in (*fn.params.posonly_params, *fn.params.params)]
    bound = dict(zip(params, binding.call_args))
    bound.update((k, v) for k, v in binding.kwargs if k in params)
    local = {p.name.value for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params)}

    def outside(name: str) -> Optional[str]:  # a name of the factory, as the caller writes it
        root, dot, rest = name.partition(".")
        if root in bound:
            return bound[root] + dot + rest
        return None if root in local or root in collect_assigned(fn) else name  # a global stays

    modules = tuple(m for m in map(outside, made.modules) if m)
    args = tuple(a for a in map(outside, made.args) if a)
    return replace(made, modules=modules + binding.modules, args=args, call_args=())


@functools.lru_cache(maxsize=256)
def collect_assigned(fn: cst.FunctionDef) -> frozenset:
    """Names a function assigns (its locals), by their first part."""
    return frozenset(k.split(".", 1)[0] for k in collect_bindings(fn, recognise.DEFAULT_TABLES))
