"""Which calls are backward (B), optimizer steps (S) and zeros (Z): tables plus one walker.

Recognition is deliberately split in two. The walker (`events_in`) finds call
*shapes* (`x.backward()`, `x.step(...)`, `x.zero_grad()`, helper calls) and
knows nothing about scopes. `analysis.resolve` then decides, with the
bindings in scope, whether `x` is an optimizer, a GradScaler, a DeepSpeed
engine or something else entirely (a scheduler, an environment). The byte
and text gates (`gate(tables)`) are built from the same tables, so a name a
user configures is recognised and gated alike. No rule logic here.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from dataclasses import dataclass, replace
from typing import FrozenSet, Iterable, List, NamedTuple, Optional

from .types import Event, EventKind, TargetKind


def _lazy(name: str):
    """The module `name`, executed at its first attribute access: every run reads the
    tables below, only a run that parses something needs the walker's libcst."""
    if name not in sys.modules:
        spec = importlib.util.find_spec(name)
        spec.loader = importlib.util.LazyLoader(spec.loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cst = _lazy("libcst")
treewalk = _lazy("zgcheck.treewalk")

# --- tables ---------------------------------------------------------------

OPTIMIZER_CLASSES = frozenset({
    # torch.optim
    "SGD", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "ASGD",
    "LBFGS", "NAdam", "RAdam", "RMSprop", "Rprop", "SparseAdam", "Muon",
    # common third-party optimizers
    "AdamW8bit", "Adam8bit", "PagedAdamW", "PagedAdamW8bit", "Lion", "Lion8bit",
    "Lamb", "LAMB", "FusedAdam", "FusedLAMB", "FusedSGD", "FusedNovoGrad",
    "DeepSpeedCPUAdam", "Adafactor", "AdaBelief", "Ranger", "RangerLars",
    "Lookahead", "Novograd", "NovoGrad", "MADGRAD", "Shampoo", "SophiaG",
    "Prodigy", "ScheduleFreeAdamW", "AdamWScheduleFree", "SGDScheduleFree",
    "ZeroRedundancyOptimizer", "LARS", "Adan", "AdamP", "SGDP",
})
# Optimizers whose gradients live in a distributed-autograd context, created
# afresh per iteration: nothing to zero, so their steps are not S events.
CONTEXT_OPTIMIZERS = frozenset({"DistributedOptimizer"})
# Receivers of `.backward(...)` that write into such a context, not `.grad`.
CONTEXT_BACKWARDS = frozenset({"dist_autograd", "torch.distributed.autograd", "distributed.autograd"})
# Optimizers whose `step(closure)` evaluates the closure several times per step (LBFGS,
# unless `max_iter=1`): a closure that does not zero adds onto what the last evaluation used.
REEVALUATING_OPTIMIZERS = frozenset({"LBFGS"})
PARTIAL_CALLS = frozenset({"partial", "functools.partial"})
OPTIMIZER_FACTORIES = frozenset({
    "create_optimizer", "build_optimizer", "get_optimizer", "make_optimizer",
    "create_optimizer_v2", "init_optimizer", "setup_optimizer", "configure_optimizer",
})
SCHEDULER_HINTS = ("sched", "lr_", "warmup")
SCALER_CLASSES = frozenset({"GradScaler", "ShardedGradScaler"})
CONFIG_CALLS = frozenset({"parse_args", "parse_known_args", "Namespace", "EasyDict", "edict",
                          "OmegaConf", "load_config", "get_config", "ArgumentParser"})
BACKWARD_ATTRS = frozenset({"backward", "manual_backward"})
ZERO_ATTRS = frozenset({"zero_grad"})
# Free functions that step the optimizer passed as their first argument.
STEP_FUNCTIONS = frozenset({"optimizer_step"})  # torch_xla: xm.optimizer_step(opt)
# Leaves of an optimizer's name: optimizer, optimiser, opt, optim, with a short
# qualifier (opt_g, optimizerD, d_opt, gen_optim); never `opts`/`option`.
OPTIMIZER_NAME = re.compile(
    r"^(?:[a-z0-9]+_)*(?:optimi[sz]er[a-z0-9_]*|optim(?:_[a-z0-9]+|[a-z]|\d+)?|opt(?:_[a-z0-9]+|[a-rt-z]|\d+)?)$",
    re.IGNORECASE,
)
# A call through a variable that holds an optimizer class or factory: `optim_cls(params)`.
OPTIMIZER_MAKER = re.compile(r"optim.*(cls|class|factory|fn|ctor|type)$|^(make|build|create|new)_optim", re.I)
# Functions a framework calls once per batch: when nothing in the module calls
# them, their body is analysed as the body of an implicit training loop.
PER_BATCH_FUNCTIONS = frozenset({"training_step", "train_step", "train_batch", "train_on_batch",
                                 "training_step_fn", "train_step_fn", "train_iter", "train_iteration"})
# Counters a framework advances by one before each call of a per-batch function
# (ignite's `engine.state.iteration`): they grow round the implicit loop.
ITERATION_COUNTERS = re.compile(r"(?:^|\.)state\.iteration$")
# Containers of optimizers by name: `optimizers[i]`, `self.opts["g"]`, `for o in optims:`.
OPTIMIZERS_NAME = re.compile(r"^(?:[a-z0-9]+_)*(?:optimi[sz]ers|opts|optims|optimi[sz]er_(?:list|dict))$",
                             re.IGNORECASE)
ENGINE_NAME = re.compile(r"(^|_)engine$|^model_engine$", re.IGNORECASE)
# Receivers of `.backward(loss)` that differentiate their argument, not themselves.
BACKWARD_CALLERS = re.compile(r"accelerat|fabric|engine|trainer|^self$|autograd|^torch$", re.IGNORECASE)
SCALER_NAME = re.compile(r"scaler", re.IGNORECASE)


@dataclass(frozen=True)
class Tables:
    """The recognition tables; `[tool.zgcheck]` extends them."""

    optimizer_classes: FrozenSet[str] = OPTIMIZER_CLASSES
    optimizer_factories: FrozenSet[str] = OPTIMIZER_FACTORIES
    optimizer_names: FrozenSet[str] = frozenset()  # exact receiver texts
    backward_attrs: FrozenSet[str] = BACKWARD_ATTRS
    zero_functions: FrozenSet[str] = frozenset()  # free functions that zero their argument
    model_names: FrozenSet[str] = frozenset()

    def extend(self, **extra: Iterable[str]) -> "Tables":
        changes = {key: getattr(self, key) | frozenset(values) for key, values in extra.items()}
        return replace(self, **changes)


DEFAULT_TABLES = Tables()


# --- gates: what bytes or text can hold, from the same tables ----------------

@dataclass(frozen=True)
class Gate:
    """Cheap screens, compiled once per Tables, configured names included.

    `backward`: a backward call in a file's bytes (or an import of `backward`).
    A file without one cannot produce a finding on its own, so it is never
    parsed; prose and docstrings that merely say "backward" don't count.
    `event`: an event *call* in a definition's bytes (can a function that
    another file imports backward, step or zero?). Calls only: `def backward`
    in every autograd Function must not send its importers to the parser.
    `relevant_text`: the words that make a function worth a CFG (events, and
    names like `step_fn` that may alias a step), searched in its text.
    """

    backward: "re.Pattern[bytes]"
    event: "re.Pattern[bytes]"
    backward_text: "re.Pattern[str]"
    relevant_text: "re.Pattern[str]"


@functools.lru_cache(maxsize=16)
def gate(tables: Tables) -> Gate:
    backward = "|".join(map(re.escape, sorted(tables.backward_attrs)))
    zeros = "|".join(map(re.escape, sorted(tables.zero_functions)))
    backward_call = rf"\.\s*(?:{backward})\s*\("
    backward_pattern = rf"{backward_call}|import[^\n]*\bbackward\b"
    event_pattern = rf"{backward_call}|\.step\s*\(|zero_grad\s*\(|\.grad\b|param_groups"
    relevant = rf"{backward}|step|zero_grad|\.grad\b|param_groups"
    if zeros:
        event_pattern += rf"|\b(?:{zeros})\s*\("
        relevant += f"|{zeros}"
    return Gate(re.compile(backward_pattern.encode()), re.compile(event_pattern.encode()),
                re.compile(backward_pattern), re.compile(relevant))


# --- text helpers ---------------------------------------------------------

def dotted(node: cst.CSTNode) -> Optional[str]:
    """`a.b.c` for a Name/Attribute chain, `a.b()` for a trailing no-arg call; else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    if isinstance(node, cst.Call) and not node.args:
        base = dotted(node.func)
        return f"{base}()" if base else None
    return None


def leaf(text: str) -> str:
    return text.rsplit(".", 1)[-1]


def callee_name(call: cst.Call) -> str:
    return dotted(call.func) or ""


def module_receivers(node: cst.CSTNode) -> List[str]:
    """Receivers of every `.parameters()` / `.named_parameters()` call below node."""
    finder = _ReceiverFinder()
    treewalk.visit(node, finder)
    return finder.found


class _ReceiverFinder:
    def __init__(self) -> None:
        self.found: List[str] = []

    def visit_Call(self, call: cst.Call) -> None:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("parameters", "named_parameters"):
            recv = dotted(func.value)
            if recv:
                self.found.append(recv)


def partial_parts(call: cst.Call, text_of=None):
    """(function, positional texts, keyword texts) of `functools.partial(f, ...)`, else None."""
    if callee_name(call) not in PARTIAL_CALLS or not call.args or call.args[0].keyword is not None:
        return None
    text_of = text_of or (lambda node: dotted(node) or cst.Module([]).code_for_node(node))
    func = dotted(call.args[0].value)
    if func is None:
        return None
    rest = call.args[1:]
    args = tuple(text_of(a.value) for a in rest if a.keyword is None and not a.star)
    kwargs = tuple((a.keyword.value, text_of(a.value)) for a in rest if a.keyword is not None)
    return func, args, kwargs


# --- events ---------------------------------------------------------------

class EventFinder:
    """Backward/step/zero/helper-call shapes under one CFG item, in evaluation order
    (a visitor for `treewalk.visit`)."""

    def __init__(self, span_of, text_of, callables: FrozenSet[str], tables: Tables):
        self.span_of = span_of
        self.text_of = text_of
        self.callables = callables
        self.tables = tables
        self.events: List[Event] = []

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def _tensor_write(self, node: cst.CSTNode, target: cst.BaseExpression) -> None:
        """`w.grad = t`, `w.grad = None`, `w.grad *= 0` on one tensor: the step applies what
        the statement put there, not what w.grad held (an overwrite: never judged a wipe)."""
        written = _GRAD_VIEWS.match(dotted(target) or "")["grad"]
        if written.endswith(".grad") and (_is_overwrite(node, written) or _is_clear(node, written)):
            self.events.append(Event(EventKind.OVERWRITE, self.span_of(node), self.text_of(node),
                                     written[:-len(".grad")], TargetKind.MODULE))

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        self._tensor_write(node, node.target)

    def leave_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1:
            self._tensor_write(node, node.targets[0].target)
        # Constructors and factories make a fresh optimizer; `self.optimizers()` does not.
        maker = leaf(callee_name(node.value)) if isinstance(node.value, cst.Call) else ""
        if maker in self.tables.optimizer_classes or maker in self.tables.optimizer_factories or \
                (OPTIMIZER_MAKER.search(maker) and maker != "optimizers"):
            for target in node.targets:
                name = dotted(target.target)
                if name:
                    self.events.append(Event(EventKind.NEW, self.span_of(node), self.text_of(node.value), name))

    def leave_Call(self, call: cst.Call) -> None:  # post-order: arguments first
        event = self.classify(call)
        if event is not None:
            self.events.append(event)

    def classify(self, call: cst.Call) -> Optional[Event]:
        func = call.func
        name = dotted(func) or ""
        args = tuple(self.text_of(a.value) for a in call.args if a.keyword is None and not a.star)
        kwargs = tuple((a.keyword.value, self.text_of(a.value)) for a in call.args if a.keyword is not None)
        make = lambda kind, target="", **kw: Event(  # noqa: E731
            kind, self.span_of(call), self.text_of(call), target, args=args, kwargs=kwargs, **kw)
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            receiver = dotted(func.value) or self.text_of(func.value)
            if attr in self.tables.backward_attrs:
                if receiver in CONTEXT_BACKWARDS:
                    return None
                return make(EventKind.BACKWARD, receiver)
            if attr == "step" and name in self.callables:  # the class's own `def step(self, batch)`
                return make(EventKind.CALL, name)
            if attr == "step":
                closure_node = next((a.value for a in call.args if a.keyword is None or a.keyword.value == "closure"),
                                    None)
                parts = partial_parts(closure_node, self.text_of) if isinstance(closure_node, cst.Call) else None
                if parts is not None:
                    return make(EventKind.STEP, receiver, closure=parts[0], closure_args=parts[1],
                                closure_kwargs=parts[2])
                closure = self.text_of(closure_node) if closure_node is not None else ""
                return make(EventKind.STEP, receiver, closure=closure)
            if attr in STEP_FUNCTIONS and args:
                return make(EventKind.STEP, args[0], target_kind=TargetKind.OPTIMIZER)
            if attr in ZERO_ATTRS:
                return make(EventKind.ZERO, receiver)
            written = overwritten_grad(call) or cleared_grad(call)
            if written is not None:  # `w.grad.fill_(v)`, `w.grad.copy_(t)`, `w.grad.zero_()`
                return make(EventKind.OVERWRITE, written[:-len(".grad")], target_kind=TargetKind.MODULE)
        if name in self.tables.zero_functions:
            return make(EventKind.ZERO, args[0] if args else "", target_kind=TargetKind.PARAMS)
        if name in self.callables or getattr(self.callables, "maybe", lambda _: False)(name):
            return make(EventKind.CALL, name)
        if name == "backward":  # from torch.autograd import backward
            return make(EventKind.BACKWARD, "")
        if name and not name.endswith("()") and (isinstance(func, cst.Name) or name.startswith("self.")):
            return make(EventKind.STEP, name, target_kind=TargetKind.FUNCTION)  # maybe a step alias
        return None


def events_in(node: cst.CSTNode, span_of, text_of, callables: FrozenSet[str],
              tables: Tables = DEFAULT_TABLES) -> List[Event]:
    finder = EventFinder(span_of, text_of, callables, tables)
    treewalk.visit(node, finder)
    return finder.events


# --- hooks: code that runs at every step of an optimizer, or every backward ----

HOOK_KINDS = {"register_step_pre_hook": "step_pre", "register_step_post_hook": "step_post",
              "register_post_accumulate_grad_hook": "accumulate"}


def hook_registrations(module: cst.Module):
    """kind -> ((receiver, hook function, the def registering it or None at the top level), ...)
    for `opt.register_step_post_hook(fn)`, `register_step_pre_hook` and
    `p.register_post_accumulate_grad_hook(fn)`."""
    finder = _HookFinder()
    treewalk.visit(module, finder)
    return {kind: tuple(regs) for kind, regs in finder.found.items()}


class _HookFinder:
    def __init__(self) -> None:
        self.found: dict = {}
        self.defs: List[cst.FunctionDef] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.defs.append(node)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.defs.pop()

    def visit_Call(self, call: cst.Call) -> None:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in HOOK_KINDS and call.args:
            receiver, hook = dotted(func.value), dotted(call.args[0].value)
            if receiver and hook:
                where = self.defs[-1] if self.defs else None
                self.found.setdefault(HOOK_KINDS[func.attr.value], []).append((receiver, hook, where))


# --- loops that clear every parameter's gradient --------------------------

class LoopWrite(NamedTuple):
    """A loop that writes every parameter's gradient: whose, and whether it overwrites
    some of them with new values (then it clears no step's leftovers but wipes nothing)."""

    target: str
    kind: TargetKind
    overwrite: bool = False


def zero_loop_target(loop: cst.For) -> Optional[LoopWrite]:
    """`for p in m.parameters(): p.grad = None` -> ("m", MODULE); None if not such a loop.

    Also `for g in opt.param_groups: for p in g["params"]: ...` -> ("opt", OPTIMIZER),
    and `for p in params:` -> ("params", PARAMS) for a helper's parameter. A loop that
    sets each gradient to a new value (`p.grad = g`, `p.grad.fill_(v)`, `p.grad.copy_(t)`)
    is one too, with `overwrite` set.
    """
    var = _loop_var(loop.target)
    if var is None or loop.orelse is not None:
        return None
    iter_ = loop.iter
    if _zeroes_each(loop, var):  # for o in (opt_g, opt_d): o.zero_grad()
        text = dotted(iter_) or cst.Module([]).code_for_node(iter_)
        return LoopWrite(text, TargetKind.CONTAINER)
    if isinstance(iter_, cst.Attribute) and iter_.attr.value == "param_groups":
        inner = [s for s in _statements(loop.body)]
        if len(inner) == 1 and isinstance(inner[0], cst.For):
            inner_loop = inner[0]
            written = _grad_writes(inner_loop)
            if isinstance(inner_loop.iter, cst.Subscript) and dotted(inner_loop.iter.value) == var and written:
                owner = dotted(iter_.value)
                return LoopWrite(owner, TargetKind.OPTIMIZER, written == OVERWRITE) if owner else None
        return None
    written = _grad_writes(loop)
    if written is None:
        return None
    mods = module_receivers(iter_)
    if mods:
        return LoopWrite(mods[0], TargetKind.MODULE, written == OVERWRITE)
    text = dotted(iter_)
    if text:
        return LoopWrite(text, TargetKind.PARAMS, written == OVERWRITE)
    return None


def _zeroes_each(loop: cst.For, var: str) -> bool:
    """The loop's body only calls `var.zero_grad(...)`: a zero of every optimizer iterated."""
    body = _statements(loop.body)
    return bool(body) and isinstance(loop.target, cst.Name) and all(
        isinstance(s, cst.Expr) and isinstance(s.value, cst.Call) and isinstance(s.value.func, cst.Attribute)
        and s.value.func.attr.value in ZERO_ATTRS and dotted(s.value.func.value) == var for s in body)


def _loop_var(target: cst.BaseExpression) -> Optional[str]:
    if isinstance(target, cst.Name):
        return target.value
    if isinstance(target, cst.Tuple) and target.elements:  # for name, p in named_parameters()
        last = target.elements[-1].value
        return last.value if isinstance(last, cst.Name) else None
    return None


def _statements(body: cst.BaseSuite) -> List[cst.CSTNode]:
    out: List[cst.CSTNode] = []
    for stmt in body.body:
        out.extend(stmt.body if isinstance(stmt, cst.SimpleStatementLine) else [stmt])
    return out


CLEAR, OVERWRITE = "clear", "overwrite"


def _grad_writes(loop: cst.For) -> Optional[str]:
    """CLEAR when the loop's body clears its variable's gradient, OVERWRITE when it sets
    it to new values (or clears some and overwrites others), None otherwise. For
    `for p, g in zip(params, grads): p.grad = g` the variable is the one whose grad is set."""
    for var in _loop_vars(loop.target):
        found = _writes_of(loop, var)
        if found is not None:
            return found
    return None


def _writes_of(loop: cst.For, var: str) -> Optional[str]:
    grad = f"{var}.grad"
    kinds = set()
    for stmt in _statements(loop.body):
        if isinstance(stmt, cst.If):  # `if p.grad is not None:` guard, about the gradient only
            if stmt.orelse is not None or not _guards_grad(stmt.test, var):
                return None
            for inner in _statements(stmt.body):
                if _is_continue(inner):
                    continue
                kind = _write(inner, grad)
                if kind is None:
                    return None
                kinds.add(kind)
            continue
        if _is_continue(stmt) or isinstance(stmt, cst.Pass):
            continue
        kind = _write(stmt, grad)
        if kind is None:
            return None
        kinds.add(kind)
    if not kinds:
        return None
    return OVERWRITE if OVERWRITE in kinds else CLEAR


def _write(stmt: cst.CSTNode, grad: str) -> Optional[str]:
    if _is_clear(stmt, grad):
        return CLEAR
    if _is_overwrite(stmt, grad):
        return OVERWRITE
    return None


def _loop_vars(target: cst.BaseExpression) -> List[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, cst.Tuple):
        return [e.value.value for e in target.elements if isinstance(e.value, cst.Name)][::-1]
    return []


def _guards_grad(test: cst.BaseExpression, var: str) -> bool:
    """`p.grad is not None`, `p.grad`, `p.requires_grad` (and `and` of those): a test that
    skips only parameters without a gradient, not a subset of the parameters."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return _guards_grad(test.left, var) and _guards_grad(test.right, var)
    if isinstance(test, cst.Comparison):
        return dotted(test.left) == f"{var}.grad" and all(
            isinstance(c.operator, (cst.IsNot, cst.NotEqual)) and dotted(c.comparator) == "None"
            for c in test.comparisons)
    return dotted(test) in (f"{var}.grad", f"{var}.requires_grad")


def _is_continue(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.Continue)


# In-place calls that leave a gradient all zero: `zero_()`, `fill_(0)`, `mul_(0)`.
_CLEARING_CALLS = {"zero_": 0, "fill_": 1, "mul_": 1}
# Views of a gradient that share its storage: clearing one clears the gradient.
_GRAD_VIEWS = re.compile(r"^(?P<grad>.*?)(?:\.data|\.detach_\(\)|\.detach\(\))*$")


def _mentions(expr: cst.CSTNode, grad: str) -> bool:
    """Whether expr reads `grad` (a value derived from the old gradient keeps its leftovers)."""
    return re.search(rf"(?<![\w.]){re.escape(grad)}\b", cst.Module([]).code_for_node(expr)) is not None


def _is_overwrite(stmt: cst.CSTNode, grad: str) -> bool:
    """`g = t`, `g.fill_(v)`, `g.copy_(t)` for the gradient g (or a view of it), with a value
    that does not read g: the step then applies that value, not what was left in g."""
    if isinstance(stmt, cst.Assign) and len(stmt.targets) == 1:
        return dotted(stmt.targets[0].target) in (grad, grad + ".data") and not _mentions(stmt.value, grad) \
            and not (isinstance(stmt.value, cst.Name) and stmt.value.value == "None")
    if isinstance(stmt, cst.Expr) and isinstance(stmt.value, cst.Call):
        return overwritten_grad(stmt.value) == grad
    return False


def overwritten_grad(call: cst.Call) -> Optional[str]:
    """`x.grad` for `x.grad.fill_(v)` / `x.grad.data.copy_(t)` with a value that does not read
    `x.grad` (a zero fill is a clear, not an overwrite); else None."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value not in ("fill_", "copy_") or len(call.args) < 1:
        return None
    grad = _GRAD_VIEWS.match(dotted(func.value) or "")["grad"]
    if not grad.endswith(".grad") or call.args[0].keyword is not None:
        return None
    value = call.args[0].value
    if _mentions(value, grad) or (func.attr.value == "fill_" and _is_zero_literal(value)):
        return None
    return grad


def cleared_grad(call: cst.Call) -> Optional[str]:
    """`x.grad` for `x.grad.zero_()`, `x.grad.data.fill_(0)`, `x.grad.mul_(0)`; else None."""
    func = call.func
    if not isinstance(func, cst.Attribute) or _CLEARING_CALLS.get(func.attr.value) != len(call.args):
        return None
    grad = _GRAD_VIEWS.match(dotted(func.value) or "")["grad"]
    if not grad.endswith(".grad") or not all(_is_zero_literal(a.value) for a in call.args):
        return None
    return grad


def _is_zero_literal(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.Integer, cst.Float)) and float(expr.value) == 0


def _is_clear(stmt: cst.CSTNode, grad: str) -> bool:
    if isinstance(stmt, cst.AugAssign) and isinstance(stmt.operator, cst.MultiplyAssign):
        return _GRAD_VIEWS.match(dotted(stmt.target) or "")["grad"] == grad and _is_zero_literal(stmt.value)
    if isinstance(stmt, cst.Assign) and len(stmt.targets) == 1:
        if dotted(stmt.targets[0].target) in (grad, grad + ".data"):
            value = stmt.value
            if isinstance(value, cst.Name) and value.value == "None":
                return True
            if isinstance(value, cst.Call) and leaf(callee_name(value)) in ("zeros_like", "zeros"):
                return True
        return False
    if isinstance(stmt, cst.Expr) and isinstance(stmt.value, cst.Call):
        call = stmt.value
        func = call.func
        if isinstance(func, cst.Attribute):
            receiver = _GRAD_VIEWS.match(dotted(func.value) or "")["grad"]
            if receiver == grad and func.attr.value in ("detach_", "requires_grad_"):
                return True  # kept with the clearing statement beside it (`p.grad.detach_()`)
            arity = _CLEARING_CALLS.get(func.attr.value)
            if receiver == grad and arity is not None and len(call.args) == arity:
                return all(_is_zero_literal(a.value) for a in call.args)
    return False
