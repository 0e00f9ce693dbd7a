"""Runs the rules' dataflow over every function of a module, through its helpers.

A *unit* is a function, a method or the module's top level. Each unit is
analysed as a root; a call to another unit of the same module (a helper
`train_step(model, opt, batch)`, a method `self.train_step(batch)`, an LBFGS
closure) is analysed in place: the callee's CFG is solved with the caller's
facts at the call as its entry facts and its parameters bound to the call's
arguments, and its exit facts flow on. That is exact inlining, depth-limited
and recursion-safe, without copying graphs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

import libcst as cst

from . import cfg as cfgmod
from . import conditions, frameworks, recognise
from .engine import RootRun
from .project import Project, collect_imports
from .units import direct_defs, flatten_top, function_defs
from .recognise import Binding, Tables
from .rules import ALL_RULES, Finding, Rule
from . import source as sourcemod
from .source import ParsedSource
from .types import Event, EventKind, TargetKind

MAX_DEPTH = 4
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _event_words(tables: Tables):
    words = ["backward", "step", "zero_grad", r"\.grad\b", "param_groups",
             *map(re.escape, tables.backward_attrs), *map(re.escape, tables.zero_functions)]
    return re.compile("|".join(words))
# Functions a framework calls once per batch: when nothing in the module calls
# them, their body is analysed as the body of an implicit training loop.
PER_BATCH_NAMES = frozenset({"training_step", "train_step", "train_batch", "train_on_batch",
                             "training_step_fn", "train_step_fn", "train_iter", "train_iteration"})


@dataclass(eq=False)  # identity: units are hashed into scopes and caches
class Unit:
    name: str  # qualified: "main", "Trainer.fit", "<module>"
    node: cst.CSTNode
    body: Sequence[cst.CSTNode]
    params: Tuple[str, ...]
    cls: Optional[str]
    parent: Optional["Unit"] = None  # enclosing unit, for closures
    path: str = ""  # the file the unit is in
    owner: Optional["ModuleAnalysis"] = None  # the analysis of that file
    nested: Dict[str, "Unit"] = field(default_factory=dict)
    bindings: Dict[str, Binding] = field(default_factory=dict)
    graph: Optional[cfgmod.CFG] = None
    events: Dict[int, List[Event]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """How names in a unit resolve: its bindings, its bound parameters, its caller."""

    unit: Unit
    args: Tuple[Tuple[str, str, Optional["Scope"]], ...] = ()  # (param, argument text, caller scope)
    depth: int = 0
    stack: Tuple[str, ...] = ()

    def arg(self, name: str):
        for param, text, caller in self.args:
            if param == name:
                return text, caller
        return None


@dataclass(frozen=True)
class Target:
    key: str  # canonical receiver text, in the root's terms
    binding: Optional[Binding]
    modules: Tuple[str, ...] = ()


class ModuleAnalysis:
    def __init__(self, parsed: ParsedSource, tables: Tables = recognise.DEFAULT_TABLES,
                 rules: Sequence[Rule] = ALL_RULES, project: Optional[Project] = None):
        self.parsed = parsed
        self.path = parsed.path
        self.tables = tables
        self.rules = rules
        self.project = project if project is not None else Project(tables)
        if not self.project.analyses:
            self.project.relative = not os.path.isabs(self.path)
        self.project.analyses.setdefault(os.path.abspath(self.path), self)
        self.imports = collect_imports(parsed.module.body)
        self.lines = parsed.module.code.splitlines()
        self.class_bases: Dict[str, Tuple[str, ...]] = {}
        self._foreign: Dict[str, Optional[Unit]] = {}
        self.module_bindings: Dict[str, Binding] = {}
        self.class_bindings: Dict[str, Dict[str, Binding]] = {}
        self.functions: Dict[str, Unit] = {}
        self.methods: Dict[Tuple[str, str], Unit] = {}
        self.units: List[Unit] = []
        self.called: Set[str] = set()
        self.max_depth = MAX_DEPTH
        self._collect()

    # -- units -------------------------------------------------------------
    def _collect(self) -> None:
        module = self.parsed.module
        top = Unit("<module>", module, module.body, (), None, path=self.path, owner=self)
        self.module_bindings = recognise.collect_bindings(module, self.tables)
        top.bindings = self.module_bindings
        self.units.append(top)
        for stmt in flatten_top(module.body):
            if isinstance(stmt, cst.ClassDef):
                self.class_bases[stmt.name.value] = tuple(
                    filter(None, (recognise.dotted(b.value) for b in stmt.bases)))
        self.relevant = self._relevant_defs()
        for stmt in direct_defs(module.body):  # also those defined inside a top-level loop
            if stmt in self.relevant:
                self.functions[stmt.name.value] = self._unit(stmt, stmt.name.value, None, None)
        for stmt in flatten_top(module.body):
            if isinstance(stmt, cst.ClassDef):
                cls = stmt.name.value
                methods = [m for m in stmt.body.body if isinstance(m, cst.FunctionDef)]
                if not any(m in self.relevant for m in methods):
                    continue
                self.class_bindings[cls] = recognise.collect_bindings(stmt, self.tables, self_only=True, descend=True)
                for item in methods:
                    if item in self.relevant:
                        self.methods[(cls, item.name.value)] = self._unit(item, f"{cls}.{item.name.value}", cls, None)

    def _relevant_defs(self) -> Set[cst.FunctionDef]:
        """Functions that hold an event, or call one that does (by text, to a fixpoint).

        The rest can neither change nor report a fact, so they get no bindings, no
        CFG and no event walk: most of a large model file is skipped this way.
        """
        lines = self.lines
        defs: Dict[cst.FunctionDef, Set[str]] = {}
        relevant: Set[cst.FunctionDef] = set()
        keywords = _event_words(self.tables)

        for node in function_defs(self.parsed.module.body):
            span = self.parsed.span(node)
            text = "\n".join(lines[span.start_line - 1:span.end_line])
            defs[node] = set(_IDENTIFIER.findall(text))
            if keywords.search(text):
                relevant.add(node)
        names = {d.name.value for d in relevant}
        # Imported helpers that can hold an event make their callers relevant too.
        names |= {local for local in self.imports if self._imported_relevant(local)}
        for cls in self.class_bases:  # methods inherited from a base class in another file
            for base in self._bases(cls):
                if base[0] is not self:
                    names |= set(self._methods_of(base))
        changed = True
        while changed:
            changed = False
            for node, idents in defs.items():
                if node not in relevant and idents & names:
                    relevant.add(node)
                    names.add(node.name.value)
                    changed = True
        return relevant

    def _unit(self, node: cst.FunctionDef, name: str, cls: Optional[str], parent: Optional[Unit]) -> Unit:
        params = tuple(p.name.value for p in (*node.params.posonly_params, *node.params.params))
        unit = Unit(name, node, node.body.body if isinstance(node.body, cst.IndentedBlock) else [node.body],
                    params, cls, parent, path=self.path, owner=self)
        unit.bindings = recognise.collect_bindings(node, self.tables)
        for stmt in direct_defs(unit.body):  # closures, also those defined inside a loop
            if stmt in self.relevant:
                unit.nested[stmt.name.value] = self._unit(stmt, f"{name}.{stmt.name.value}", cls, unit)
        self.units.append(unit)
        return unit

    def _holds_backward(self, loop: cst.For) -> bool:
        span = self.parsed.span(loop.body)
        text = "\n".join(self.lines[span.start_line - 1:span.end_line])
        return sourcemod.BACKWARD_TEXT.search(text) is not None

    def _imported_relevant(self, name: str) -> bool:
        found = self.project.target(self.path, self.imports, name)
        return found is not None and self.project.may_define(*found)

    def _callables(self, unit: Unit):
        names = set(self.functions)
        u: Optional[Unit] = unit
        while u is not None:
            names.update(u.nested)
            u = u.parent
        if unit.cls:
            names.update(f"self.{m}" for (c, m) in self.methods if c == unit.cls)
        u = unit
        while u is not None:  # names bound to functools.partial(helper, ...)
            names.update(n for n, b in u.bindings.items() if b.kind == "partial")
            u = u.parent
        names.update(n for n, b in self.module_bindings.items() if b.kind == "partial")
        if unit.cls:  # methods inherited from base classes, here or in other files
            names.update(f"self.{m}" for base in self._bases(unit.cls) for m in self._methods_of(base))
        return _Callables(frozenset(names), self)

    def graph(self, unit: Unit, implicit_loop: bool = False):
        """The unit's CFG and the events of each node (cached unless an implicit loop)."""
        if unit.graph is None or implicit_loop:
            graph = cfgmod.build(unit.body, lambda loop: recognise.zero_loop_target(loop) is not None,
                                 implicit_loop=implicit_loop, runs_once=self._holds_backward)
            callables = self._callables(unit)
            span, text = self.parsed.span, self.parsed.text
            events: Dict[int, List[Event]] = {}
            for node in graph.nodes:
                if node.item is None:
                    continue
                if node.kind == "zero-loop":
                    target, kind = recognise.zero_loop_target(node.item)
                    header = f"for ... in {text(node.item.iter)}"
                    events[node.id] = [Event(EventKind.ZERO, span(node.item), header, target, kind)]
                elif node.kind != "def":
                    found = recognise.events_in(node.item, span, text, callables, self.tables)
                    if found:
                        events[node.id] = found
            if implicit_loop:
                return graph, events
            unit.graph, unit.events = graph, events
        return unit.graph, unit.events

    # -- name resolution ---------------------------------------------------
    def resolve(self, text: str, scope: Scope, hops: int = 0) -> Target:
        if scope.unit.owner is not self and scope.unit.owner is not None:
            return scope.unit.owner.resolve(text, scope, hops)
        root, dot, rest = text.partition(".")
        bound = scope.arg(root)
        if bound is not None and hops < 8:
            arg_text, caller = bound
            return caller.unit.owner.resolve(arg_text + (dot + rest if dot else ""), caller, hops + 1)
        binding = self.lookup(text, scope.unit)
        if binding is not None and binding.kind == "other" and binding.alias and hops < 8 \
                and not binding.alias.endswith("()") and binding.alias != text:
            aliased = self.resolve(binding.alias, scope, hops + 1)
            if aliased.binding is not None:
                return Target(text, aliased.binding, aliased.modules)
        modules: Tuple[str, ...] = ()
        if binding is not None and binding.modules:
            modules = tuple(self.resolve(m, scope, hops + 1).key for m in binding.modules)
        elif binding is not None and binding.kind == "optimizer" and binding.args and hops < 8:
            params = self.resolve(binding.args[0], scope, hops + 1)  # Adam(params)
            if params.binding is not None and params.binding.kind == "params":
                modules = params.modules
        return Target(text, binding, modules)

    def lookup(self, text: str, unit: Unit) -> Optional[Binding]:
        u: Optional[Unit] = unit
        while u is not None:
            if text in u.bindings:
                return u.bindings[text]
            u = u.parent
        if text.startswith("self.") and unit.cls:
            found = self.class_bindings.get(unit.cls, {}).get(text)
            if found is not None:
                return found
        return self.module_bindings.get(text)

    def is_optimizer(self, target: Target) -> bool:
        binding = target.binding
        if binding is not None and binding.kind == "optimizer":
            return True
        if binding is not None and binding.kind not in ("other",):
            return False
        name = recognise.leaf(target.key)
        if target.key in self.tables.model_names or name in self.tables.model_names:
            return False  # configured as a model: never an optimizer, whatever its name
        if target.key in self.tables.optimizer_names or name in self.tables.optimizer_names:
            return True
        return "sched" not in target.key.lower() and bool(recognise.OPTIMIZER_NAME.match(name))

    def _kind_of(self, target: Target, pattern) -> bool:
        binding = target.binding
        kind = {recognise.ENGINE_NAME: "engine", recognise.SCALER_NAME: "scaler"}[pattern]
        if binding is not None and binding.kind != "other":
            return binding.kind == kind
        return bool(pattern.search(recognise.leaf(target.key)))

    # -- events -> actions -------------------------------------------------
    def actions(self, event: Event, scope: Scope):
        """What an event does here: a list of ("B"|"S"|"Z"|"CALL", payload)."""
        if scope.unit.owner is not self and scope.unit.owner is not None:
            return scope.unit.owner.actions(event, scope)
        kind = event.kind
        if kind is EventKind.BACKWARD:
            return [("B", None)]
        if kind is EventKind.STEP:
            if event.target_kind is TargetKind.FUNCTION:  # step_fn() after step_fn = torch.compile(opt.step)
                binding = self.lookup(event.target, scope.unit)
                if binding is not None and binding.kind == "stepfn":
                    return [("S", self.resolve(binding.alias, scope))]
                return []
            if event.target_kind is TargetKind.OPTIMIZER:  # xm.optimizer_step(opt)
                return [("S", self.resolve(event.target, scope))]
            target = self.resolve(event.target, scope)
            if self._kind_of(target, recognise.SCALER_NAME) and event.args:
                return [("S", self.resolve(event.args[0], scope))]
            if self._kind_of(target, recognise.ENGINE_NAME) and not self.is_optimizer(target):
                return [("S", target), ("Z", {target.key})]  # DeepSpeed clears its own gradients
            if self.is_optimizer(target):
                out = []
                if event.closure:
                    call = self._call(event.closure, event.closure_args, event.closure_kwargs, scope)
                    if call is not None:
                        out.append(("CALL", call))
                return out + [("S", target)]
            return []
        if kind is EventKind.ZERO:
            return [("Z", self._zeroed(event, scope))]
        if kind is EventKind.NEW:
            return [("N", self.resolve(event.target, scope).key)]
        if kind is EventKind.CALL:
            call = self._call(event.target, event.args, event.kwargs, scope)
            if call is not None:
                return [("CALL", call)]
        return []

    def _call(self, name: str, args, kwargs, scope: Scope):
        """(callee, args, kwargs, caller scope) for a call of name, through functools.partial."""
        callee = self._callee(name, scope)
        if callee is not None:
            return callee, tuple(args), tuple(kwargs), scope
        binding = self.lookup(name, scope.unit)
        if binding is not None and binding.kind == "partial":
            callee = self._callee(binding.alias, scope)
            if callee is not None:
                return callee, binding.args + tuple(args), binding.kwargs + tuple(kwargs), scope
        return None

    def _callee(self, name: str, scope: Scope) -> Optional[Unit]:
        u: Optional[Unit] = scope.unit
        while u is not None:
            if name in u.nested:
                return u.nested[name]
            u = u.parent
        if name.startswith("self.") and scope.unit.cls:
            method = name[5:]
            found = self.methods.get((scope.unit.cls, method))
            for base in self._bases(scope.unit.cls) if found is None else ():
                found = self._methods_of(base).get(method)
                if found is not None:
                    break
            return found
        return self.functions.get(name) or self._imported(name)

    def _imported(self, name: str) -> Optional[Unit]:
        """A function another project file defines and this one imports."""
        if name not in self._foreign:
            self._foreign[name] = None
            found = self.project.target(self.path, self.imports, name)
            if found is not None and self.project.may_define(*found):
                other = self.project.analysis(os.path.abspath(found[0]))
                if other is not None and other is not self:
                    self._foreign[name] = other.functions.get(found[1])
        return self._foreign[name]

    def _bases(self, cls: str) -> List[Tuple["ModuleAnalysis", str]]:
        """(analysis, class) of every base class of cls that the project defines, nearest first."""
        out: List[Tuple[ModuleAnalysis, str]] = []
        todo = [(self, cls)]
        while todo and len(out) < 8:
            owner, name = todo.pop(0)
            for base in owner.class_bases.get(name, ()):
                if base in owner.class_bases:
                    found = (owner, base)
                else:
                    target = owner.project.target(owner.path, owner.imports, base)
                    other = None
                    if target is not None and owner.project.may_define(*target):
                        other = owner.project.analysis(os.path.abspath(target[0]))
                    found = (other, target[1]) if other is not None else None
                if found is not None and found not in out:
                    out.append(found)
                    todo.append(found)
        return out

    @staticmethod
    def _methods_of(base) -> Dict[str, Unit]:
        owner, cls = base
        return {m: u for (c, m), u in owner.methods.items() if c == cls}

    def _zeroed(self, event: Event, scope: Scope):
        """The optimizers a zero covers: a set of keys, or ALL (None) for an untied module."""
        if event.target_kind is TargetKind.OPTIMIZER:
            return {self.resolve(event.target, scope).key}
        target = self.resolve(event.target, scope)
        if event.target_kind is TargetKind.UNKNOWN and (
                self.is_optimizer(target) or self._kind_of(target, recognise.ENGINE_NAME)):
            return {target.key}
        key = target.key
        if event.target_kind is TargetKind.PARAMS:
            if key.endswith(".parameters()") or key.endswith(".named_parameters()"):
                key = key.rsplit(".", 1)[0]
            elif target.modules:
                return ("modules", target.modules)
            else:
                return None  # an unknown iterable of parameters: assume it is all of them
        return ("modules", (key,))

    # -- dataflow ----------------------------------------------------------
    def optimizers_in(self, unit: Unit, scope: Scope, seen: Set[str], events=None) -> Dict[str, Target]:
        """Every optimizer stepped in unit and its callees, by key (ZG002's universe)."""
        if unit.name in seen or scope.depth > MAX_DEPTH:
            return {}
        seen = seen | {unit.name}
        if events is None:
            events = unit.owner.graph(unit)[1]
        found: Dict[str, Target] = {}
        for node_events in events.values():
            for event in node_events:
                for action, payload in self.actions(event, scope):
                    if action == "S":
                        found.setdefault(payload.key, payload)
                    elif action == "CALL":
                        for key, target in self.optimizers_in(payload[0], self.bind(payload, scope), seen).items():
                            found.setdefault(key, target)
        return found

    def bind(self, payload, scope: Scope) -> Scope:
        callee, args, kwargs, caller = payload
        params = list(callee.params)
        if callee.cls and params and params[0] in ("self", "cls"):
            params = params[1:]
        bound = [(p, a, caller) for p, a in zip(params, args)]
        bound += [(k, v, caller) for k, v in kwargs if k in params]
        return Scope(callee, tuple(bound), scope.depth + 1, scope.stack + (callee.name,))

    def analyse_root(self, unit: Unit, implicit_loop: bool = False) -> List[Finding]:
        scope = Scope(unit, (), 0, (unit.name,))
        graph, events = self.graph(unit, implicit_loop)
        run = RootRun(self, self.optimizers_in(unit, scope, set(), events), scope)
        return run.run(graph, events, scope)

    # -- conditions (for correlated branches) ---------------------------------
    def conditions_in(self, unit: Unit, scope: Scope, seen: Set[str]):
        """Every simple `if` condition in unit and its callees, keyed in the root's terms."""
        if unit.name in seen or scope.depth > MAX_DEPTH:
            return
        seen = seen | {unit.name}
        graph, events = unit.owner.graph(unit)
        looping = cfgmod.nodes_in_cycles(graph)
        for node in graph.nodes:
            if node.branch is not None and node.branch[1]:
                expr, _ = conditions.split_not(node.branch[0])
                cond = conditions.condition(expr, lambda name: self.cond_name(name, scope))
                if cond is not None:
                    # Tested again on the next iteration (or the next call of a helper).
                    yield cond, node.id in looping or scope.depth > 0
        for node_events in events.values():
            for event in node_events:
                for action, payload in self.actions(event, scope):
                    if action == "CALL":
                        yield from self.conditions_in(payload[0], self.bind(payload, scope), seen)

    def cond_name(self, name: str, scope: Scope) -> str:
        """A name in a condition, in the root's terms: parameters replaced by their
        arguments, a helper's own locals prefixed with the helper's name."""
        root = name.split(".", 1)[0]
        if scope.arg(root) is not None:
            return self.resolve(name, scope).key
        if root == "self":
            return name
        # The unit that defines the name: a closure's free variable is its parent's local.
        owner: Optional[Unit] = scope.unit
        while owner is not None and not (root in owner.params or
                                         any(k.split(".", 1)[0] == root for k in owner.bindings)):
            owner = owner.parent
        if owner is None or owner.parent is None and owner.node is self.parsed.module or \
                owner.name == scope.stack[0]:
            return name  # a global, or the root's own local
        return f"{owner.name}:{name}"

    def literal_of(self, name: str, scope: Scope):
        if scope.arg(name.split(".", 1)[0]) is None:
            return conditions.NOT_LITERAL
        return conditions.literal_from_text(self.resolve(name, scope).key)

    def run(self) -> List[Finding]:
        self._note_calls()
        findings: List[Finding] = []
        for unit in list(self.units):
            implicit = (unit.node is not self.parsed.module and unit.node.name.value in PER_BATCH_NAMES
                        and unit.name not in self.called and unit.parent is None)
            findings.extend(self.analyse_root(unit, implicit_loop=implicit))
        return findings + frameworks.accumulate_wipes(self)

    def _note_calls(self) -> None:
        for unit in list(self.units):
            for events in self.graph(unit)[1].values():
                for event in events:
                    if event.kind is EventKind.CALL:
                        callee = self._callee(event.target, Scope(unit))
                        if callee is not None:
                            self.called.add(callee.name)


class _Callables:
    """Names a unit can call into: local ones, plus imported helpers (checked lazily)."""

    def __init__(self, names: FrozenSet[str], owner: "ModuleAnalysis"):
        self.names, self.owner = names, owner

    def __contains__(self, name: str) -> bool:
        if name in self.names:
            return True
        return name.split(".", 1)[0] in self.owner.imports and self.owner._imported_relevant(name)
