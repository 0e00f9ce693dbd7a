"""Names -> typed actions, once per root, before any dataflow runs.

`plan(unit)` walks a root and every helper it calls (arguments bound,
depth-limited, recursion-safe) and turns each event into typed actions in
the scope where it runs: `opt.step()` becomes Step(the optimizer `opt` is in
the root's terms), `scaler.step(opt)` the same for `opt`, `model.zero_grad()`
a Zero covering the optimizers tied to `model`, a helper call a Call holding
the helper's own frame. Branch conditions are renamed into the root's terms
here too. The engine consumes the frames and never resolves a name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from typing import Dict, List, Optional, Tuple

import libcst as cst

from .. import recognise
from ..types import Event, EventKind, Site, TargetKind
from . import conditions, counters, hooks, objects
from .cfg import nodes_in_cycles
from ..bindings import Binding
from .frames import tracked_conditions
from .reach import Reacher
from .windows import Guards
from .units import (Action, Backward, Branch, Call, Covers, Fresh, Frame, Plan, Reach, Scope, Step, Target, Unit,
                    Window, Zero)

MAX_DEPTH = 4  # helpers inlined below a root
MAX_HOPS = 8  # argument and alias indirections followed for one name
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")


# --- receivers ------------------------------------------------------------------

def resolve(text: str, scope: Scope, hops: int = 0) -> Target:
    """What `text` denotes in scope, in the root's terms (parameters replaced by arguments)."""
    held = _subscript(text)
    if held is not None and hops < MAX_HOPS:
        return _element(resolve(held[0], scope, hops + 1), held[1], scope)
    root, dot, rest = text.partition(".")
    bound = scope.arg(root)
    if bound is not None and hops < MAX_HOPS:
        arg_text, caller = bound
        found = resolve(arg_text + (dot + rest if dot else ""), caller, hops + 1)
        if found.binding is None:  # what the callee itself knows: `self.opt` of a bound self, an annotation
            own = _local(text, scope, hops)
            if own.binding is not None:
                return Target(found.key, own.binding, own.modules)
        return found
    return _local(text, scope, hops)


def _subscript(text: str) -> Optional[Tuple[str, str]]:
    """(container, index) of `opts[i]` / `self.opts["g"]`, the index `*` unless a literal."""
    if not text.endswith("]"):
        return None
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {"]": 1, "[": -1}.get(text[i], 0)
        if depth == 0:
            base, index = text[:i], text[i + 1:-1].strip()
            if not base or base.endswith(("(", ",", "[")) or base[-1].isspace():
                return None  # a list display, not a subscript
            literal = conditions.literal_from_text(index)
            return base, repr(literal) if isinstance(literal, (int, str)) else "*"
    return None


def _element(container: Target, index: str, scope: Scope) -> Target:
    """An element of a container: an optimizer when the container holds optimizers."""
    binding = container.binding
    holds = (binding is not None and binding.kind == "optimizers") or container.key == "self.optimizers()" or (
        (binding is None or binding.kind == "other") and recognise.OPTIMIZERS_NAME.match(recognise.leaf(container.key)))
    return Target(f"{container.key}[{index}]", Binding("optimizer") if holds else None)


def _elements(text: str, scope: Scope, hops: int = 0) -> Tuple[Optional[Target], List[Target]]:
    """(the container, its elements as far as known) for a container text: a tuple display
    (`*optimizers` bound to `(opt_g, opt_d)`), a name bound to a display of names."""
    bound = scope.arg(text)
    if bound is not None and hops < MAX_HOPS:
        return _elements(bound[0], bound[1], hops + 1)
    expr = expression(text)
    if isinstance(expr, (cst.Tuple, cst.List)):
        return None, [resolve(cst.Module([]).code_for_node(e.value), scope) for e in expr.elements
                      if isinstance(e, cst.Element)]
    container = resolve(text, scope, hops)
    named = container.binding.args if container.binding is not None and container.binding.kind == "optimizers" else ()
    return container, [resolve(n, scope, hops + 1) for n in named]


def _local(text: str, scope: Scope, hops: int) -> Target:
    """What text denotes by the bindings of scope's own unit (and its class, its module)."""
    module = scope.unit.module
    binding = module.lookup(text, scope.unit)
    if binding is not None and (binding.alias.endswith("()") or binding.cls):
        binding = objects.factory_made(module, binding) or binding
    if binding is not None and binding.kind == "other" and binding.alias and hops < MAX_HOPS \
            and not binding.alias.endswith("()") and binding.alias != text:
        aliased = resolve(binding.alias, scope, hops + 1)
        if aliased.binding is not None:  # an element keeps its container's key: `for o in opts`
            return aliased if binding.alias.endswith("]") else Target(text, aliased.binding, aliased.modules)
    modules: Tuple[str, ...] = ()
    if binding is not None and binding.modules and hops < MAX_HOPS:
        modules = tuple(resolve(m, scope, hops + 1).key for m in binding.modules)
    if binding is not None and binding.kind == "optimizer" and binding.args and hops < MAX_HOPS:
        params = resolve(binding.args[0], scope, hops + 1)  # Adam(params)
        if params.binding is not None and params.binding.kind == "params":
            modules = params.modules + modules  # and any group added to it since
        elif params.binding is None and params.key != binding.args[0]:  # a parameter: `fit(net.parameters())`
            expr = expression(params.key)
            modules = tuple(recognise.module_receivers(expr) if expr is not None else ()) + modules
    return Target(text, binding, modules)


def _bound_through_args(name: str, scope: Scope):
    """(method, receiver) when the instance arrives as an argument: `loss_scaler(loss, opt)`
    in a helper that was passed the scaler. The receiver stays in the helper's terms."""
    receiver, _, attr = name.rpartition(".")
    text, where, hops = receiver or name, scope, 0
    while hops < MAX_HOPS:
        root, dot, rest = text.partition(".")
        bound = where.arg(root)
        if bound is None or root == "self":
            break
        text, where, hops = bound[0] + dot + rest, bound[1], hops + 1
    if hops == 0:
        return None
    found = objects.bound_method(where.unit.module, f"{text}.{attr}" if receiver else text, where.unit)
    return (found[0], receiver or name) if found is not None else None


def reevaluates(target: Target) -> bool:
    """Whether the optimizer's step(closure) evaluates the closure more than once per step."""
    binding = target.binding
    if binding is None or binding.kind != "optimizer" or binding.cls not in recognise.REEVALUATING_OPTIMIZERS:
        return False
    return conditions.literal_from_text(dict(binding.kwargs).get("max_iter", "20")) != 1


def closure_site(frame: Frame, optimizer: Target, receiver: str, caller: Scope) -> Optional[Site]:
    """Where a zero goes at the top of a step's closure: its first statement (after a
    docstring), and the optimizer's name there: a parameter bound to it
    (`partial(closure_fn, optimizer, x)`), or the step's own receiver when the closure
    sees that name (a closure nested in the function, or a global)."""
    unit = frame.unit
    if not isinstance(unit.node, cst.FunctionDef) or not unit.body:
        return None
    body = list(unit.body)
    if len(body) > 1 and _is_docstring(body[0]):
        body = body[1:]
    name = next((param for param, text, where in frame.scope.args
                 if where is not None and resolve(text, where).key == optimizer.key), None)
    root = receiver.split(".", 1)[0]
    if name is None and _sees(unit, root) and resolve(receiver, frame.scope).key == optimizer.key:
        name = receiver
    if name is None:
        return None
    first = body[0].body[0] if isinstance(body[0], cst.SimpleStatementLine) else body[0]
    parsed = unit.module.parsed
    return Site(unit.path, parsed.span(first), parsed.text(first), caller.depth == 0, optimizer.key, name)


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Expr) and \
        isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))


def _sees(unit: Unit, name: str) -> bool:
    """Whether `name` is visible in unit as the same variable its caller meant: bound in an
    enclosing function (its parameter or local) or at the module's top level."""
    if name == "self":
        return unit.cls is not None
    for u in unit.enclosing():
        if name in u.params or any(k.split(".", 1)[0] == name for k in u.bindings):
            return u is not unit  # the closure's own local is another variable
    return any(k.split(".", 1)[0] == name for k in unit.module.module_bindings)


def is_optimizer(target: Target, tables: recognise.Tables) -> bool:
    binding = target.binding
    if binding is not None and binding.kind == "optimizer":
        return True
    if binding is not None and binding.kind != "other":
        return False
    name = recognise.leaf(target.key)
    if target.key in tables.model_names or name in tables.model_names:
        return False  # configured as a model: never an optimizer, whatever its name
    if target.key in tables.optimizer_names or name in tables.optimizer_names:
        return True
    return "sched" not in target.key.lower() and bool(recognise.OPTIMIZER_NAME.match(name))


def _is_kind(target: Target, kind: str, name_pattern) -> bool:
    """A GradScaler / DeepSpeed engine: by its binding, else by its name."""
    binding = target.binding
    if binding is not None and binding.kind != "other":
        return binding.kind == kind
    return bool(name_pattern.search(recognise.leaf(target.key)))


def is_scaler(target: Target) -> bool:
    return _is_kind(target, "scaler", recognise.SCALER_NAME)


def is_engine(target: Target) -> bool:
    return _is_kind(target, "engine", recognise.ENGINE_NAME)


def covers(event: Event, scope: Scope) -> Covers:
    """The optimizers a zero event clears."""
    if event.target_kind is TargetKind.CONTAINER:
        container, held = _elements(event.target, scope)
        return Covers(optimizers=frozenset(t.key for t in held),
                      containers=(container.key,) if container is not None else ())
    target = resolve(event.target, scope)
    if event.target_kind is TargetKind.OPTIMIZER:
        return Covers(optimizers=frozenset({target.key}))
    if event.target_kind is TargetKind.UNKNOWN and (
            is_optimizer(target, scope.unit.module.tables) or is_engine(target)):
        return Covers(optimizers=frozenset({target.key}))
    key = target.key
    if event.target_kind is TargetKind.PARAMS:
        if key.endswith(".parameters()") or key.endswith(".named_parameters()"):
            key = key.rsplit(".", 1)[0]
        elif target.modules:
            return Covers(modules=target.modules)
        else:
            return Covers(everything=True)  # an unknown iterable of parameters
    return Covers(modules=(key,))


# --- events -> actions -----------------------------------------------------------

def model_key(name: str, scope: Scope, hops: int = 0) -> str:
    """A model's key in the root's terms, through local aliases (`net = model.module`)."""
    binding = scope.unit.module.lookup(name, scope.unit)
    if binding is not None and binding.kind == "other" and binding.alias and hops < MAX_HOPS \
            and not binding.alias.endswith("()") and binding.alias != name:
        return model_key(binding.alias, scope, hops + 1)
    return resolve(name, scope).key


def loss_of(event: Event, scope: Scope) -> Optional[str]:
    """The text of the tensor a backward event differentiates."""
    receiver = event.target
    if not receiver or recognise.BACKWARD_CALLERS.search(recognise.leaf(receiver)) or \
            is_engine(resolve(receiver, scope)):
        return event.args[0] if event.args else None  # accelerator.backward(loss), backward(loss)
    return receiver


class _Planner:
    """Builds one root's frames; identical calls (same helper, same arguments, same
    caller chain) share one frame, so the engine's call cache can share results."""

    def __init__(self) -> None:
        self.frames: Dict[tuple, Frame] = {}
        self.reacher = Reacher(model_key)

    def frame(self, scope: Scope, graph, events) -> Frame:
        actions: Dict[int, Tuple[Action, ...]] = {}
        for node_id, found in events.items():
            acts = tuple(a for event in found for a in self.actions(event, scope))
            if acts:
                actions[node_id] = acts
        branches: Dict[int, Branch] = {}
        tested: List[Tuple[str, frozenset, bool]] = []
        counted: Dict[int, Tuple[str, ...]] = {}
        looping = None
        guards = Guards(graph, actions)
        windows: List[int] = []  # branch edges on a loop counter (`i % k == r`)
        for node in graph.nodes:
            grown = tuple((cond_name(name, scope), value, grows) for name, value, grows
                          in conditions.counter_updates(node, loop_entry(graph, node)))
            if grown:
                counted[node.id] = grown
            if node.branch is None:
                continue
            test, taken = node.branch
            expr, polarity = conditions.split_not(test)
            holds = taken if polarity else not taken  # the truth of expr along this edge
            decided = conditions.decide(expr, lambda name: literal_of(name, scope))
            cond = conditions.condition(expr, lambda name: cond_term(name, scope))
            if cond is not None and cond.negated:
                holds = not holds
            branches[node.id] = Branch(decided is not None and decided != holds,
                                       cond.key if cond is not None else None, holds)
            if cond is not None and counters.parse(cond.key) is not None:
                windows.append(node.id)
            if cond is not None and taken and guards(node.id):
                if looping is None:
                    looping = nodes_in_cycles(graph)
                # Tested again on the next iteration (or the next call of a helper).
                tested.append((cond.key, cond.names, node.id in looping or scope.depth > 0))
        for join, skipped in guards.joins(windows).items():  # `if i % k == 0: step`, then on
            actions[join] = (Window(skipped, True),) + actions.get(join, ())
        for loop in graph.loops if windows else ():
            windowed = guards.windowed(loop, windows)
            if windowed:
                actions[loop.next] = (Window(windowed, True),) + actions.get(loop.next, ())
            if loop.after is None:  # the implicit per-batch loop: framework counters grow
                names = {counters.parse(branches[w].condition)[0] for w in windows}
                grown = tuple((n, None, True) for n in sorted(names) if recognise.ITERATION_COUNTERS.search(n))
                if grown:
                    counted[loop.next] = grown
        return Frame(scope, graph, actions, branches, tuple(tested), counted=counted)

    def all_frames(self) -> List[Frame]:
        return list(self.frames.values())

    @staticmethod
    def fill_assigned(frame: Frame) -> None:
        """What each node assigns, renamed as conditions are (a tracked condition on a
        name is forgotten where the name changes)."""
        for node in frame.graph.nodes:
            names = tuple(cond_name(t, frame.scope) for t in conditions.assigned_texts(node))
            names += tuple(name for name, _, _ in frame.counted.get(node.id, ()) if name not in names)
            if names:
                frame.assigned[node.id] = names

    def callee_frame(self, callee: Unit, args, kwargs, caller: Scope, receiver: str = "") -> Optional[Frame]:
        if callee.key in caller.stack or caller.depth >= MAX_DEPTH:
            return None  # recursion, or too deep: the call changes nothing
        params = list(callee.params)
        bound = []
        if callee.cls and params and params[0] in ("self", "cls"):
            if receiver:  # `agent.update(batch)`: self is agent
                bound.append((params[0], receiver, caller))
            params = params[1:]
        bound += [(p, a, caller) for p, a in zip(params, args)]
        bound += [(k, v, caller) for k, v in kwargs if k in params]
        if callee.star:  # def reset(*optimizers): the extra arguments, as a tuple
            bound.append((callee.star, "(" + "".join(a + ", " for a in args[len(params):]) + ")", caller))
        scope = Scope(callee, tuple(bound), caller.depth + 1, caller.stack + (callee.key,))
        memo = (callee.key, tuple((p, a, id(c)) for p, a, c in bound), scope.stack)
        if memo not in self.frames:
            graph, events = callee.module.graph(callee)
            self.frames[memo] = self.frame(scope, graph, events)
        return self.frames[memo]

    def call(self, name: str, args, kwargs, scope: Scope) -> Optional[Frame]:
        """The frame of a call of name, through functools.partial."""
        module = scope.unit.module
        callee = module.callee(name, scope.unit)
        if callee is not None:
            return self.callee_frame(callee, tuple(args), tuple(kwargs), scope)
        method = objects.bound_method(module, name, scope.unit) or _bound_through_args(name, scope)
        if method is not None:
            return self.callee_frame(method[0], tuple(args), tuple(kwargs), scope, method[1])
        binding = module.lookup(name, scope.unit)
        if binding is not None and binding.kind == "partial":
            callee = module.callee(binding.alias, scope.unit)
            if callee is not None:
                return self.callee_frame(callee, binding.args + tuple(args), binding.kwargs + tuple(kwargs), scope)
        return None

    def actions(self, event: Event, scope: Scope) -> Tuple[Action, ...]:
        """What an event does in scope."""
        site = Site(scope.unit.path, event.span, event.text, scope.depth == 0)
        kind = event.kind
        if kind is EventKind.BACKWARD:  # optimizer in backward: hooks step as gradients arrive
            reach = self.reacher.backward(loss_of(event, scope), scope)
            return (Backward(site, reach),) + self.hooks("accumulate", "", scope, reach)
        if kind is EventKind.ZERO or kind is EventKind.OVERWRITE:
            return (Zero(covers(event, scope), site, wipes=kind is EventKind.ZERO),)
        if kind is EventKind.NEW:
            return (Fresh(resolve(event.target, scope).key),)
        if kind is EventKind.CALL:
            frame = self.call(event.target, event.args, event.kwargs, scope)
            return (Call(frame),) if frame is not None else ()
        if kind is EventKind.STEP:
            return self._step(event, scope, site)
        return ()

    def _step(self, event: Event, scope: Scope, site: Site) -> Tuple[Action, ...]:
        tables = scope.unit.module.tables

        def step(target: Target, receiver: str = "", scaler: str = "", closure: Optional[Site] = None) -> Step:
            return Step(target, Site(site.path, site.span, site.text, site.root, target.key, receiver, scaler,
                                     closure))

        if event.target_kind is TargetKind.FUNCTION:  # step_fn() after step_fn = torch.compile(opt.step)
            binding = scope.unit.module.lookup(event.target, scope.unit)
            if binding is not None and binding.kind == "stepfn":
                stepped = resolve(binding.alias, scope)  # `env_step = env.step` is no optimizer's step
                return (step(stepped),) if is_optimizer(stepped, tables) else ()
            return ()
        if event.target_kind is TargetKind.OPTIMIZER:  # xm.optimizer_step(opt)
            return (step(resolve(event.target, scope), event.target),)
        target = resolve(event.target, scope)
        if is_scaler(target) and event.args:  # scaler.step(opt)
            return (step(resolve(event.args[0], scope), event.args[0], event.target),)
        if is_engine(target) and not is_optimizer(target, tables):  # DeepSpeed clears its own gradients
            return (step(target), Zero(Covers(optimizers=frozenset({target.key})), site))
        if is_optimizer(target, tables):
            out: Tuple[Action, ...] = ()
            where: Optional[Site] = None
            if event.closure:  # the closure runs before the step reads the gradients
                frame = self.call(event.closure, event.closure_args, event.closure_kwargs, scope)
                if frame is not None:
                    out, where = (Call(frame),), closure_site(frame, target, event.target, scope)
            # LBFGS evaluates it again after updating: closure, step, closure, step.
            evaluations = 2 if out and reevaluates(target) else 1
            return self.hooks("step_pre", event.target, scope) + \
                (out + (step(target, event.target, closure=where),)) * evaluations + \
                self.hooks("step_post", event.target, scope)
        return ()

    def hooks(self, kind: str, receiver: str, scope: Scope, reach: Optional[Reach] = None) -> Tuple[Action, ...]:
        """The registered hooks of this kind that run here, as calls (the optimizer bound to
        a step hook's first parameter); a step hook only for the optimizer it was registered
        on, a parameter's hook only at a backward that may reach that parameter's module."""
        module = scope.unit.module
        out: Tuple[Action, ...] = ()
        for registered, name, where in module.hooks.get(kind, ()):
            if receiver and hooks.registered_key(registered, where, scope) != resolve(receiver, scope).key:
                continue
            if reach is not None and reach.may is not None:
                hooked = hooks.hooked_module(registered, where, scope)
                if hooked is not None and not any(m == hooked or m.startswith(hooked + ".") or
                                                  hooked.startswith(m + ".") for m in reach.may):
                    continue
            callee = module.callee(name, scope.unit) or module.unit_named(name)
            frame = self.callee_frame(callee, (receiver,) if receiver else (), (), scope) if callee else None
            if frame is not None:
                out += (Call(frame),)
        return out


def loop_entry(graph, node) -> Optional[bool]:
    """For a `for` header: True on the loop's entry node, False on the node later iterations
    pass (a loop whose first iteration is not optional has both), None when one is both."""
    if not isinstance(node.owner, cst.For) or node.kind != "for":
        return None
    twins = [n.id for n in graph.nodes if n.owner is node.owner and n.kind == "for"]
    return None if len(twins) == 1 else node.id == min(twins)


def plan(unit: Unit, implicit_loop: bool = False) -> Plan:
    """The root frame of unit, every helper it reaches resolved in place."""
    graph, events = unit.module.graph(unit, implicit_loop)
    planner = _Planner()
    root = planner.frame(Scope(unit, (), 0, (unit.key,)), graph, events)
    tracked = tracked_conditions(root)
    if tracked:
        for frame in [root, *planner.all_frames()]:
            planner.fill_assigned(frame)
    return Plan(root, tracked)


# --- conditions, in the root's terms ------------------------------------------------

def cond_name(name: str, scope: Scope) -> str:
    """A name in a condition, in the root's terms: parameters replaced by their
    arguments, a helper's own locals prefixed with the helper's key."""
    root = name.split(".", 1)[0]
    if scope.arg(root) is not None:
        return resolve(name, scope).key
    if root == "self":
        return name
    # The unit that defines the name: a closure's free variable is its parent's local.
    owner: Optional[Unit] = scope.unit
    while owner is not None and not (root in owner.params or
                                     any(k.split(".", 1)[0] == root for k in owner.bindings)):
        owner = owner.parent
    if owner is None or owner.is_top_level or owner.key == scope.stack[0]:
        return name  # a global, or the root's own local
    return f"{local_prefix(owner)}{name}"


def cond_term(name: str, scope: Scope):
    """A name in a condition in the root's terms; a parameter bound to an expression
    (`update_grad=(i + 1) % k == 0`) stands for that expression's condition."""
    bound = scope.arg(name)
    if bound is not None and recognise_dotted(bound[0]) is None:
        expr = expression(bound[0])
        if expr is not None:
            inner, polarity = conditions.split_not(expr)
            cond = conditions.condition(inner, lambda n: cond_term(n, bound[1]))
            if cond is not None:
                return replace(cond, negated=cond.negated != (not polarity))
    return cond_name(name, scope)


def recognise_dotted(text: str):
    return text if _DOTTED.match(text) else None


@functools.lru_cache(maxsize=4096)
def expression(text: str):
    try:
        return cst.parse_expression(text)
    except cst.ParserSyntaxError:
        return None


def local_prefix(unit: Unit) -> str:
    """How a helper's own locals are named in conditions (they die when it returns)."""
    return f"{unit.path}::{unit.name}:"


def literal_of(name: str, scope: Scope):
    if scope.arg(name.split(".", 1)[0]) is None:
        return conditions.NOT_LITERAL
    return conditions.literal_from_text(resolve(name, scope).key)


