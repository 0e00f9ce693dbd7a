"""Bindings: what a name was assigned from (an optimizer, a scaler, a partial, ...).

Collected per scope (function, class, module) from assignments, annotations and
the framework tuples we know (`deepspeed.initialize`, `accelerator.prepare`),
using recognise's tables. `analysis.resolve` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import libcst as cst

from . import treewalk
from .recognise import (CONFIG_CALLS, CONTEXT_OPTIMIZERS, OPTIMIZER_NAME, SCALER_CLASSES, SCHEDULER_HINTS, Tables,
                        callee_name, dotted, leaf, module_receivers, partial_parts)


@dataclass(frozen=True)
class Binding:
    kind: str  # optimizer | optimizers | engine | scheduler | scaler | config | params | partial | context | other
    modules: Tuple[str, ...] = ()  # modules whose parameters an optimizer/params holds
    alias: str = ""  # for `a = b`: the text of b; for a partial: the wrapped function
    args: Tuple[str, ...] = ()  # for a partial: the arguments it binds
    kwargs: Tuple[Tuple[str, str], ...] = ()
    index: int = -1  # `a, b = make()`: the position unpacked from the call's result
    cls: str = ""  # for an optimizer: the class (or factory) it was built by, as called
    call_args: Tuple[str, ...] = ()  # for a value a call made: its positional argument texts


def classify_value(value: cst.BaseExpression, tables: Tables) -> Binding:
    if isinstance(value, cst.Call):
        name = callee_name(value)
        last = leaf(name)
        lowered = name.lower()
        if last in CONTEXT_OPTIMIZERS:
            return Binding("context")
        positional = tuple(dotted(a.value) or cst.Module([]).code_for_node(a.value) for a in value.args
                           if a.keyword is None and not a.star)
        keywords = tuple((a.keyword.value, cst.Module([]).code_for_node(a.value)) for a in value.args
                         if a.keyword is not None)
        if last in tables.optimizer_classes or last in tables.optimizer_factories:
            # `Adam(params)`: the modules come from what `params` was bound to (see analysis).
            names = tuple(dotted(a.value) or "" for a in value.args[:1] if a.keyword is None) + tuple(
                dotted(a.value) or "" for a in value.args if a.keyword and a.keyword.value == "params")
            return Binding("optimizer", tuple(module_receivers(value)), args=tuple(n for n in names if n),
                           kwargs=keywords, cls=last, call_args=positional)
        parts = partial_parts(value)
        if parts is not None:
            return Binding("partial", alias=parts[0], args=parts[1], kwargs=parts[2])
        if last == "compile" and value.args and _step_method(value.args[0].value):
            return Binding("stepfn", alias=_step_method(value.args[0].value))  # torch.compile(opt.step)
        if last in SCALER_CLASSES:
            return Binding("scaler")
        if any(h in lowered for h in SCHEDULER_HINTS) or last.endswith("LR"):
            return Binding("scheduler")
        if last in CONFIG_CALLS:
            return Binding("config")
        if name == "self.optimizers":
            return Binding("optimizer")
        if last in ("parameters", "named_parameters"):
            return Binding("params", tuple(module_receivers(value)))
        if last in ("list", "filter", "chain") or last.endswith("parameters"):
            mods = module_receivers(value)
            if mods:
                return Binding("params", tuple(mods))
        return Binding("other", alias=name + "()", kwargs=keywords, call_args=positional)
    held = _held(value)
    if held and any(_makes_optimizer(e, tables) for e in held):  # [Adam(a), Adam(b)], {"g": opt_g, ...}
        return Binding("optimizers", args=tuple(filter(None, map(dotted, held))))
    if isinstance(value, cst.Subscript):
        base = value.value
        if isinstance(base, cst.Call) and callee_name(base) == "self.optimizers":
            return Binding("optimizer")
    if _step_method(value):  # step_fn = opt.step
        return Binding("stepfn", alias=_step_method(value))
    if not isinstance(value, (cst.Name, cst.Attribute)):  # list(a.parameters()) + list(b.parameters())
        mods = module_receivers(value)
        if mods:
            return Binding("params", tuple(mods))
    text = dotted(value)
    if text:
        return Binding("other", alias=text)
    return Binding("other")


def _held(value: cst.BaseExpression) -> List[cst.BaseExpression]:
    """The element expressions of a list/tuple/set/dict display or comprehension."""
    if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
        return [e.value for e in value.elements if isinstance(e, cst.Element)]
    if isinstance(value, cst.Dict):
        return [e.value for e in value.elements if isinstance(e, cst.DictElement)]
    if isinstance(value, (cst.ListComp, cst.SetComp, cst.GeneratorExp)):
        return [value.elt]
    if isinstance(value, cst.DictComp):
        return [value.value]
    return []


def _makes_optimizer(expr: cst.BaseExpression, tables: Tables) -> bool:
    if isinstance(expr, cst.Call):
        return leaf(callee_name(expr)) in tables.optimizer_classes | tables.optimizer_factories
    name = dotted(expr)
    return bool(name) and bool(OPTIMIZER_NAME.match(leaf(name)))


def _step_method(node: cst.BaseExpression) -> Optional[str]:
    """`opt` for the bound method `opt.step`, else None."""
    if isinstance(node, cst.Attribute) and node.attr.value == "step":
        return dotted(node.value)
    return None


def _targets(target: cst.BaseExpression) -> List[Optional[str]]:
    if isinstance(target, (cst.Tuple, cst.List)):
        out: List[Optional[str]] = []
        for el in target.elements:
            out.extend(_targets(el.value) if isinstance(el.value, (cst.Tuple, cst.List)) else [dotted(el.value)])
        return out
    return [dotted(target)]


def bind_assignment(targets: Sequence[cst.BaseExpression], value: cst.BaseExpression,
                    tables: Tables) -> Dict[str, Binding]:
    """Bindings made by `targets = value`, unpacking the framework tuples we know."""
    out: Dict[str, Binding] = {}
    name = callee_name(value) if isinstance(value, cst.Call) else ""
    for target in targets:
        names = _targets(target)
        if len(names) > 1 and isinstance(value, cst.Call):
            if "deepspeed" in name and leaf(name) == "initialize":
                kinds = ["engine", "optimizer"]
                for i, n in enumerate(names):
                    if n and i < 2:
                        out[n] = Binding(kinds[i])
                continue
            if leaf(name) == "prepare":
                for n, arg in zip(names, value.args):
                    if n:
                        out[n] = _prepared(arg.value, tables)
                continue
            if name == "self.optimizers":
                for n in names:
                    if n:
                        out[n] = Binding("optimizer")
                continue
        if len(names) > 1 and isinstance(value, (cst.Tuple, cst.List)):
            for n, el in zip(names, value.elements):
                if n:
                    out[n] = classify_value(el.value, tables)
            continue
        for i, n in enumerate(names):
            if n:
                if len(names) == 1 and isinstance(value, cst.Call) and leaf(name) == "prepare" and value.args:
                    out[n] = _prepared(value.args[0].value, tables)
                else:
                    out[n] = classify_value(value, tables)
                    if len(names) > 1 and out[n].kind == "other" and out[n].alias.endswith("()"):
                        out[n] = replace(out[n], index=i)  # decided by what the factory returns
    return out


def _prepared(arg: cst.BaseExpression, tables: Tables) -> Binding:
    """What `accelerator.prepare(x)` returns for x: x itself, so x's binding."""
    text = dotted(arg)
    if text:
        return Binding("other", alias=text)
    return classify_value(arg, tables)


class BindingCollector:
    """Assignments in one scope (nested functions and classes excluded)."""

    def __init__(self, tables: Tables, self_only: bool = False):
        self.tables = tables
        self.self_only = self_only
        self.bindings: Dict[str, Binding] = {}
        self.depth = 0

    def _add(self, found: Dict[str, Binding]) -> None:
        for name, binding in found.items():
            if self.self_only and not name.startswith("self."):
                continue
            # The most informative binding wins: a later `opt = other` does not
            # erase what an optimizer constructor told us.
            old = self.bindings.get(name)
            if old is None or old.kind == "other":
                self.bindings[name] = binding

    def visit_Assign(self, node: cst.Assign) -> None:
        self._add(bind_assignment([t.target for t in node.targets], node.value, self.tables))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        name = dotted(node.target)
        if name and "Optimizer" in (dotted(node.annotation.annotation) or ""):
            self._add({name: Binding("optimizer")})
        elif node.value is not None:
            self._add(bind_assignment([node.target], node.value, self.tables))

    def visit_Call(self, node: cst.Call) -> None:
        # `opt.add_param_group({"params": head.parameters()})`: opt now holds head's parameters too
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "add_param_group":
            name = dotted(func.value)
            old = self.bindings.get(name) if name else None
            if old is not None and (old.kind == "optimizer" or old.alias.endswith("()")):  # or a factory's
                self.bindings[name] = replace(old, modules=old.modules + tuple(module_receivers(node)))

    def visit_For(self, node: cst.For) -> None:
        # `for opt in optimizers:` / `for i, opt in enumerate(optimizers):`: an element of the container
        target, iter_ = node.target, node.iter
        if isinstance(iter_, cst.Call) and callee_name(iter_) == "enumerate" and iter_.args \
                and isinstance(target, cst.Tuple) and len(target.elements) == 2:
            target, iter_ = target.elements[1].value, iter_.args[0].value
        name, held = dotted(target), dotted(iter_)
        if name and held and isinstance(target, cst.Name):
            self._add({name: Binding("other", alias=f"{held}[*]")})

    def visit_Param(self, node: cst.Param) -> None:
        if node.annotation is not None and "Optimizer" in (dotted(node.annotation.annotation) or ""):
            self._add({node.name.value: Binding("optimizer")})


def collect_bindings(body: cst.CSTNode, tables: Tables, self_only: bool = False,
                     descend: bool = False) -> Dict[str, Binding]:
    """Bindings of a function (params included) or module; `descend` into methods for self.X."""
    collector = BindingCollector(tables, self_only)
    # Without `descend`, nested functions, classes and lambdas are other scopes.
    treewalk.visit(body, collector, skip=() if descend else (cst.FunctionDef, cst.ClassDef, cst.Lambda))
    return collector.bindings
