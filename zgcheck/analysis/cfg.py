"""Control-flow graph of one function body (or a module's top level).

One node per simple statement or compound-statement header, plus synthetic
join nodes. Frames record where each abrupt exit (break, continue, return,
raise) goes; a `finally` body is copied onto every way out that passes
through it, so facts flowing along a `return` see the finally's zero too.
Exceptions: every node inside a `try` body has an edge to each handler (and
to the raise route of its finally), unless an inner finally or catch-all
handler intercepts the exception first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import libcst as cst

BREAK, CONTINUE, RETURN, RAISE = "break", "continue", "return", "raise"
# Node kinds that stand for code (the rest are synthetic joins).
CODE_KINDS = frozenset({"stmt", "test", "for", "with", "match", "case", "except", "zero-loop", "def"})


@dataclass
class Node:
    id: int
    kind: str
    item: Optional[cst.CSTNode] = None  # what is evaluated here (events are found in it)
    succs: List[int] = field(default_factory=list)
    # On the two synthetic nodes after an `if` test: (the test, which way it went).
    branch: Optional[Tuple[cst.BaseExpression, bool]] = None
    # On a `for`/`with` header: the statement, whose targets it assigns.
    owner: Optional[cst.CSTNode] = None


@dataclass(frozen=True)
class Loop:
    """A loop's nodes: its header, the synthetic node every way round to the next
    iteration passes (end of body, `continue`), and the join after it."""

    head: int
    next: int
    after: Optional[int]  # None for the implicit per-batch loop, which is never left


@dataclass
class CFG:
    nodes: List[Node]
    entry: int
    exit: int
    raise_exit: int
    loops: List[Loop] = field(default_factory=list)

    def preds(self) -> Dict[int, List[int]]:
        out: Dict[int, List[int]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for s in n.succs:
                out[s].append(n.id)
        return out


@dataclass
class _Loop:
    cont: int
    brk: int


@dataclass
class _Handlers:
    entries: List[int]
    catch_all: bool


@dataclass
class _Finally:
    body: Sequence[cst.BaseStatement]
    routes: Dict[str, int] = field(default_factory=dict)


class _Builder:
    def __init__(self, is_zero_loop: Callable[[cst.For], bool], runs_once: Callable[[cst.For], bool]):
        self.runs_once = runs_once
        self.nodes: List[Node] = []
        self.frames: list = []
        self.scopes: List[tuple] = []  # the frames around each node when it was built
        self.is_zero_loop = is_zero_loop
        self.loops: List[Loop] = []
        self.entry = self.new("entry")
        self.exit = self.new("exit")
        self.raise_exit = self.new("raise")

    def new(self, kind: str, item: Optional[cst.CSTNode] = None) -> int:
        node = Node(len(self.nodes), kind, item)
        self.nodes.append(node)
        self.scopes.append(tuple(self.frames))
        return node.id

    def edge(self, a: Optional[int], b: int) -> None:
        if a is not None and b not in self.nodes[a].succs:
            self.nodes[a].succs.append(b)

    def then(self, cur: Optional[int], kind: str, item: Optional[cst.CSTNode] = None) -> int:
        node = self.new(kind, item)
        self.edge(cur, node)
        return node

    # -- abrupt exits ------------------------------------------------------
    def jump(self, kind: str, src: int, top: Optional[int] = None) -> None:
        i = len(self.frames) - 1 if top is None else top
        while i >= 0:
            frame = self.frames[i]
            if isinstance(frame, _Loop) and kind in (BREAK, CONTINUE):
                self.edge(src, frame.brk if kind == BREAK else frame.cont)
                return
            if isinstance(frame, _Finally):
                self.edge(src, self.finally_route(frame, i, kind))
                return
            if isinstance(frame, _Handlers) and kind == RAISE:
                for h in frame.entries:
                    self.edge(src, h)
                if frame.catch_all:
                    return
            i -= 1
        self.edge(src, self.exit if kind == RETURN else self.raise_exit)

    def raises_into(self, n: int, frame) -> bool:
        """Whether an exception at node n reaches `frame` first-hand: n was built
        inside it (a finally copy for an outer frame is not) and no finally or
        catch-all handler lies between."""
        scope = self.scopes[n]
        inner = [i for i, f in enumerate(scope) if f is frame]
        return bool(inner) and not any(
            isinstance(f, _Finally) or (isinstance(f, _Handlers) and f.catch_all)
            for f in scope[inner[0] + 1:])

    def finally_route(self, frame: _Finally, index: int, kind: str) -> int:
        """A copy of the finally body that ends by continuing `kind` outwards."""
        if kind not in frame.routes:
            saved, self.frames = self.frames, self.frames[:index]
            entry = self.new("finally")
            frame.routes[kind] = entry
            end = self.block(frame.body, entry)
            if end is not None:
                self.jump(kind, end)
            self.frames = saved
        return frame.routes[kind]

    # -- statements --------------------------------------------------------
    def block(self, stmts: Sequence[cst.CSTNode], cur: Optional[int]) -> Optional[int]:
        for stmt in stmts:
            if cur is None:  # unreachable code still gets nodes, with no predecessor
                cur = self.new("unreachable")
            cur = self.stmt(stmt, cur)
        return cur

    def suite(self, suite: cst.BaseSuite, cur: Optional[int]) -> Optional[int]:
        return self.block(suite.body, cur)

    def stmt(self, stmt: cst.CSTNode, cur: int) -> Optional[int]:
        if isinstance(stmt, cst.SimpleStatementLine):
            return self.block(stmt.body, cur)
        method = getattr(self, "visit_" + type(stmt).__name__, None)
        if method is not None:
            return method(stmt, cur)
        return self.then(cur, "stmt", stmt)

    def visit_Return(self, node: cst.Return, cur: int) -> None:
        self.jump(RETURN, self.then(cur, "stmt", node))

    def visit_Raise(self, node: cst.Raise, cur: int) -> None:
        self.jump(RAISE, self.then(cur, "stmt", node))

    def visit_Break(self, node: cst.Break, cur: int) -> None:
        self.jump(BREAK, self.then(cur, "stmt", node))

    def visit_Continue(self, node: cst.Continue, cur: int) -> None:
        self.jump(CONTINUE, self.then(cur, "stmt", node))

    def visit_FunctionDef(self, node: cst.FunctionDef, cur: int) -> int:
        return self.then(cur, "def", node)

    def visit_ClassDef(self, node: cst.ClassDef, cur: int) -> int:
        return self.then(cur, "def", node)

    def visit_If(self, node: cst.If, cur: int) -> int:
        test = self.then(cur, "test", node.test)
        after = self.new("join")
        taken, not_taken = self.then(test, "then"), self.then(test, "else")
        self.nodes[taken].branch = (node.test, True)
        self.nodes[not_taken].branch = (node.test, False)
        self.edge(self.suite(node.body, taken), after)
        if node.orelse is None:
            self.edge(not_taken, after)
        elif isinstance(node.orelse, cst.If):
            self.edge(self.visit_If(node.orelse, not_taken), after)
        else:
            self.edge(self.suite(node.orelse.body, not_taken), after)
        return after

    def _loop(self, head: int, body: cst.BaseSuite, orelse, infinite: bool, first: Optional[int] = None) -> int:
        """A loop at head; `first`, if given, enters the body once before head can exit."""
        after = self.new("join")
        nxt = self.new("next")
        self.edge(nxt, head)
        self.loops.append(Loop(head, nxt, after))
        self.frames.append(_Loop(cont=nxt, brk=after))
        entry = self.then(head, "body")
        self.edge(first, entry)
        self.edge(self.suite(body, entry), nxt)
        self.frames.pop()
        if not infinite:
            if orelse is not None:
                self.edge(self.suite(orelse.body, self.then(head, "else")), after)
            else:
                self.edge(head, after)
        return after

    def visit_While(self, node: cst.While, cur: int) -> int:
        head = self.then(cur, "test", node.test)
        return self._loop(head, node.body, node.orelse, _always_true(node.test))

    def visit_For(self, node: cst.For, cur: int) -> int:
        if self.is_zero_loop(node):
            return self.then(cur, "zero-loop", node)
        if self.runs_once(node):  # a data loop: its first iteration is not optional
            first = self.then(cur, "for", node.iter)
            head = self.new("for", node.iter)
            self.nodes[first].owner = self.nodes[head].owner = node
            return self._loop(head, node.body, node.orelse, False, first)
        head = self.then(cur, "for", node.iter)
        self.nodes[head].owner = node
        return self._loop(head, node.body, node.orelse, False)

    def visit_With(self, node: cst.With, cur: int) -> Optional[int]:
        for item in node.items:
            cur = self.then(cur, "with", item.item)
            self.nodes[cur].owner = item
        return self.suite(node.body, cur)

    def visit_Match(self, node: cst.Match, cur: int) -> int:
        test = self.then(cur, "match", node.subject)
        after = self.new("join")
        for case in node.cases:
            test = self.then(test, "case", case.pattern)
            self.edge(self.suite(case.body, self.then(test, "then")), after)
            if case.guard is None and _irrefutable(case.pattern):
                return after
        self.edge(test, after)
        return after

    def visit_Try(self, node, cur: int) -> int:
        after = self.new("join")
        fin = _Finally(node.finalbody.body.body) if node.finalbody is not None else None
        if fin is not None:
            self.frames.append(fin)
        first = len(self.nodes)
        entries = [self.new("except", h.type) for h in node.handlers]
        catch_all = any(h.type is None or _names_base_exception(h.type) for h in node.handlers)
        if entries:
            self.frames.append(_Handlers(entries, catch_all))
        body_start = len(self.nodes)
        end = self.suite(node.body, self.then(cur, "try"))
        if entries:
            handlers = self.frames.pop()
            for n in range(body_start, len(self.nodes)):
                if self.raises_into(n, handlers):
                    for h in entries:
                        self.edge(n, h)
        if node.orelse is not None:
            end = self.suite(node.orelse.body, end)
        ends = [end]
        for entry, handler in zip(entries, node.handlers):
            ends.append(self.suite(handler.body, entry))
        if fin is None:
            for e in ends:
                self.edge(e, after)
            return after
        built = len(self.nodes)
        raising = self.finally_route(fin, len(self.frames) - 1, RAISE)
        for n in range(first, built):  # an exception anywhere escapes through finally
            if self.raises_into(n, fin):
                self.edge(n, raising)
        self.frames.pop()
        join = self.new("finally")
        for e in ends:
            self.edge(e, join)
        self.edge(self.block(fin.body, join), after)
        return after

    visit_TryStar = visit_Try


def _always_true(test: cst.BaseExpression) -> bool:
    if isinstance(test, cst.Name):
        return test.value == "True"
    if isinstance(test, cst.Integer):
        return test.value not in ("0", "0x0")
    return False


def _irrefutable(pattern) -> bool:
    if isinstance(pattern, cst.MatchAs):
        return pattern.pattern is None or _irrefutable(pattern.pattern)
    if isinstance(pattern, cst.MatchOr):
        return any(_irrefutable(p.pattern) for p in pattern.patterns)
    return False


def _names_base_exception(type_: cst.BaseExpression) -> bool:
    names = [type_] if not isinstance(type_, cst.Tuple) else [e.value for e in type_.elements]
    return any(isinstance(n, cst.Name) and n.value in ("BaseException", "Exception") for n in names)


def nodes_in_cycles(graph: CFG) -> set:
    """Ids of the nodes that lie on a cycle (inside a loop), by Tarjan's SCCs, iteratively."""
    index: Dict[int, int] = {}
    low: Dict[int, int] = {}
    on_stack, stack, out = set(), [], set()
    counter = 0
    for root in range(len(graph.nodes)):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succs = graph.nodes[node].succs
            if i < len(succs):
                work.append((node, i + 1))
                nxt = succs[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.nodes[node].succs:
                    out.update(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def build(body: Sequence[cst.CSTNode], is_zero_loop: Callable[[cst.For], bool] = lambda _: False,
          implicit_loop: bool = False, runs_once: Callable[[cst.For], bool] = lambda _: False) -> CFG:
    """The CFG of a statement list; `implicit_loop` makes it the body of a per-batch loop.

    `runs_once(loop)` marks `for` loops whose body is taken at least once (zgcheck
    passes loops over data that hold a backward: an empty epoch is not a path worth
    a diagnostic)."""
    builder = _Builder(is_zero_loop, runs_once)
    start = builder.then(builder.entry, "start")
    end = builder.block(body, start)
    builder.edge(end, builder.exit)
    if implicit_loop:
        nxt = builder.then(builder.exit, "next")
        builder.edge(nxt, start)
        builder.loops.append(Loop(start, nxt, None))
    return CFG(builder.nodes, builder.entry, builder.exit, builder.raise_exit, builder.loops)
