"""Unit tests of the control-flow graph builder on its own.

Nodes are selected by the source text of what they evaluate (a statement, an
`if`/`while` test, a `for` iterable, a `with` item, a `match` subject, a
`case` pattern, an `except` type) and facts are asserted between code nodes
*through* synthetic nodes, so the tests do not depend on how many join nodes
the builder makes.
"""

from __future__ import annotations

import textwrap
from collections import deque
from typing import Iterable, Optional, Set, Union

import libcst
import pytest

from zgcheck.analysis import cfg as cfgmod

ENTRY, EXIT, RAISE = "<entry>", "<exit>", "<raise>"

Selector = Union[str, int, Iterable[int]]


class Graph:
    """A CFG built from a snippet, with nodes addressed by their source text.

    Labels: the normalised source of a code node's item; `def name` / `class
    name` for definitions; `except:` for a bare handler; ENTRY, EXIT and
    RAISE for the three terminal nodes.  A selector is a label (all nodes
    carrying it: a `finally` body has several copies), a node id, or a
    collection of ids.
    """

    def __init__(self, src: str, function: Optional[str] = None, **kwargs):
        self.module = libcst.parse_module(textwrap.dedent(src))
        body = self.module.body
        if function is not None:
            (fn,) = [s for s in body if isinstance(s, libcst.FunctionDef) and s.name.value == function]
            body = fn.body.body
        self.cfg = cfgmod.build(body, **kwargs)
        self.nodes = self.cfg.nodes

    # -- selection ---------------------------------------------------------
    def label(self, n: int) -> Optional[str]:
        node = self.nodes[n]
        terminal = {self.cfg.entry: ENTRY, self.cfg.exit: EXIT, self.cfg.raise_exit: RAISE}
        if n in terminal:
            return terminal[n]
        if node.kind not in cfgmod.CODE_KINDS:
            return None
        if node.kind == "def":
            keyword = "class" if isinstance(node.item, libcst.ClassDef) else "def"
            return f"{keyword} {node.item.name.value}"
        if node.kind == "except" and node.item is None:
            return "except:"
        return self.module.code_for_node(node.item).strip().rstrip(";").strip()

    def ids(self, sel: Selector) -> Set[int]:
        if isinstance(sel, int):
            return {sel}
        if not isinstance(sel, str):
            return set(sel)
        found = {n.id for n in self.nodes if self.label(n.id) == sel}
        assert found, f"no node labelled {sel!r}; labels: {sorted(self.labels())}"
        return found

    def one(self, sel: Selector) -> int:
        found = self.ids(sel)
        assert len(found) == 1, f"{sel!r} selects {len(found)} nodes"
        return next(iter(found))

    def edge(self, a: Selector, b: Selector) -> bool:
        """A direct edge from some node of a to some node of b."""
        targets = self.ids(b)
        return any(s in targets for n in self.ids(a) for s in self.nodes[n].succs)

    def has(self, label: str) -> bool:
        return any(self.label(n.id) == label for n in self.nodes)

    def labels(self) -> Set[str]:
        return {lab for lab in (self.label(n.id) for n in self.nodes) if lab is not None}

    def copy(self, label: str, then: Selector) -> int:
        """The one copy of `label` (a finally body's statement) that flows on to `then`."""
        found = [n for n in self.ids(label) if self.flows(n, then)]
        assert len(found) == 1, f"{len(found)} copies of {label!r} flow to {then!r}"
        return found[0]

    # -- paths ---------------------------------------------------------------
    def _search(self, a: Selector, b: Selector, through_code: bool) -> bool:
        targets = self.ids(b)
        todo = deque(s for n in self.ids(a) for s in self.nodes[n].succs)
        seen: Set[int] = set()
        while todo:
            n = todo.popleft()
            if n in targets:
                return True
            if n in seen:
                continue
            seen.add(n)
            if through_code or self.nodes[n].kind not in cfgmod.CODE_KINDS:
                todo.extend(self.nodes[n].succs)
        return False

    def flows(self, a: Selector, b: Selector) -> bool:
        """Some path from (some node of) a to (some node of) b passes only synthetic nodes."""
        return self._search(a, b, through_code=False)

    def reaches(self, a: Selector, b: Selector) -> bool:
        """Some path of one or more edges leads from a to b."""
        return self._search(a, b, through_code=True)

    def reachable(self, b: Selector) -> bool:
        return self.reaches(ENTRY, b)

    def next(self, a: Selector) -> Set[str]:
        """Labels of the code and terminal nodes that `a` flows to directly."""
        out: Set[str] = set()
        todo = deque(s for n in self.ids(a) for s in self.nodes[n].succs)
        seen: Set[int] = set()
        while todo:
            n = todo.popleft()
            if n in seen:
                continue
            seen.add(n)
            lab = self.label(n)
            if lab is not None:
                out.add(lab)
            if self.nodes[n].kind not in cfgmod.CODE_KINDS:
                todo.extend(self.nodes[n].succs)
        return out


def graph(src: str, **kwargs) -> Graph:
    return Graph(src, **kwargs)


# -- the graph itself ------------------------------------------------------


def test_structure_is_well_formed():
    g = graph("""
        a()
        if c:
            b()
        for x in xs:
            continue
        try:
            d()
        except ValueError:
            e()
        finally:
            f()
    """)
    ids = [n.id for n in g.nodes]
    assert ids == list(range(len(g.nodes)))
    for n in g.nodes:
        assert all(0 <= s < len(g.nodes) for s in n.succs)
        assert len(n.succs) == len(set(n.succs)), "duplicate edge"
        if n.kind in cfgmod.CODE_KINDS and n.kind != "except":
            assert n.item is not None
    assert g.nodes[g.cfg.exit].succs == []
    assert g.nodes[g.cfg.raise_exit].succs == []
    assert g.cfg.preds()[g.cfg.entry] == []


def test_empty_body_flows_from_entry_to_exit():
    g = graph("")
    assert g.next(ENTRY) == {EXIT}


# -- sequence --------------------------------------------------------------


def test_sequence_one_node_per_simple_statement():
    g = graph("""
        a()
        b(); c()
        x = 1
    """)
    assert g.next(ENTRY) == {"a()"}
    assert g.next("a()") == {"b()"}
    assert g.next("b()") == {"c()"}
    assert g.next("c()") == {"x = 1"}
    assert g.next("x = 1") == {EXIT}
    assert not g.flows("a()", "c()")
    assert g.reaches("a()", "x = 1")
    assert not g.reaches("c()", "a()")
    assert not g.reaches("x = 1", RAISE)


# -- if / elif / else ------------------------------------------------------


def test_if_else_branches_join():
    g = graph("""
        if c:
            a()
        else:
            b()
        d()
    """)
    assert g.nodes[g.one("c")].kind == "test"
    assert g.next(ENTRY) == {"c"}
    assert g.next("c") == {"a()", "b()"}
    assert g.next("a()") == {"d()"}
    assert g.next("b()") == {"d()"}
    assert not g.reaches("a()", "b()")
    assert not g.reaches("b()", "a()")


def test_if_without_else_falls_through_from_test():
    g = graph("""
        if c:
            a()
        d()
    """)
    assert g.next("c") == {"a()", "d()"}
    assert g.next("a()") == {"d()"}


def test_elif_chain():
    g = graph("""
        if c1:
            a()
        elif c2:
            b()
        elif c3:
            e()
        else:
            f()
        g()
    """)
    assert g.next("c1") == {"a()", "c2"}
    assert g.next("c2") == {"b()", "c3"}
    assert g.next("c3") == {"e()", "f()"}
    for body in ("a()", "b()", "e()", "f()"):
        assert g.next(body) == {"g()"}
    assert not g.reaches("a()", "c2")
    assert not g.reaches("b()", "f()")
    assert not g.flows("c1", "g()")


def test_elif_without_else_falls_through_from_last_test():
    g = graph("""
        if c1:
            a()
        elif c2:
            b()
        g()
    """)
    assert g.next("c1") == {"a()", "c2"}
    assert g.next("c2") == {"b()", "g()"}


def test_nested_if_and_one_line_suite():
    g = graph("""
        if c:
            if d: a()
            b()
        e()
    """)
    assert g.next("c") == {"d", "e()"}
    assert g.next("d") == {"a()", "b()"}
    assert g.next("a()") == {"b()"}
    assert g.next("b()") == {"e()"}


# -- loops -----------------------------------------------------------------


def test_for_loop_back_edge_and_exit_edge():
    g = graph("""
        for x in xs:
            a()
            b()
        c()
    """)
    head = g.one("xs")
    assert g.nodes[head].kind == "for"
    assert g.next(ENTRY) == {"xs"}
    assert g.next("xs") == {"a()", "c()"}
    assert g.next("a()") == {"b()"}
    assert g.next("b()") == {"xs"}  # back edge
    assert not g.flows("b()", "c()")  # leaving goes through the header
    assert g.reaches("b()", "a()")
    assert not g.reaches("c()", "xs")


def test_while_loop_back_edge_and_exit_edge():
    g = graph("""
        while cond:
            a()
        b()
    """)
    assert g.nodes[g.one("cond")].kind == "test"
    assert g.next("cond") == {"a()", "b()"}
    assert g.next("a()") == {"cond"}
    assert not g.reaches("b()", "cond")


@pytest.mark.parametrize("test", ["True", "1"])
def test_while_true_has_no_exit_edge(test):
    g = graph(f"""
        while {test}:
            a()
        b()
    """)
    assert g.next(test) == {"a()"}
    assert g.next("a()") == {test}
    assert not g.reachable("b()")
    assert not g.reachable(EXIT)


def test_while_true_is_left_only_by_break():
    g = graph("""
        while True:
            if done:
                break
            a()
        b()
    """)
    assert g.next("True") == {"done"}
    assert g.next("done") == {"break", "a()"}
    assert g.next("break") == {"b()"}
    assert g.next("a()") == {"True"}
    assert g.reachable("b()")
    assert not g.flows("True", "b()")


def test_while_false_is_not_treated_as_infinite():
    g = graph("""
        while 0:
            a()
        b()
    """)
    assert g.next("0") == {"a()", "b()"}


def test_nested_loops():
    g = graph("""
        for i in outer:
            while c:
                a()
            b()
        d()
    """)
    assert g.next("outer") == {"c", "d()"}
    assert g.next("c") == {"a()", "b()"}
    assert g.next("a()") == {"c"}
    assert g.next("b()") == {"outer"}


# -- loop else -------------------------------------------------------------


def test_for_else_runs_on_normal_exit_not_after_break():
    g = graph("""
        for x in xs:
            if p:
                break
            a()
        else:
            e()
        after()
    """)
    assert g.next("xs") == {"p", "e()"}
    assert g.next("e()") == {"after()"}
    assert g.next("break") == {"after()"}
    assert not g.reaches("break", "e()")
    assert not g.flows("xs", "after()")  # a normal exit always runs the else
    assert g.reachable("after()")


def test_while_else_runs_on_normal_exit_not_after_break():
    g = graph("""
        while cond:
            if p:
                break
            a()
        else:
            e()
        after()
    """)
    assert g.next("cond") == {"p", "e()"}
    assert g.next("e()") == {"after()"}
    assert g.next("break") == {"after()"}
    assert not g.reaches("break", "e()")


def test_while_true_else_never_runs():
    g = graph("""
        while True:
            if p:
                break
        else:
            e()
        after()
    """)
    assert not (g.has("e()") and g.reachable("e()"))
    assert g.next("break") == {"after()"}


def test_break_and_continue_in_loop_else_belong_to_the_outer_loop():
    g = graph("""
        for i in outer:
            for j in inner:
                a()
            else:
                continue
            b()
        c()
    """)
    assert g.next("inner") == {"a()", "continue"}
    assert g.next("continue") == {"outer"}
    assert not g.reachable("b()")  # the inner loop never breaks: its else always continues
    assert g.next("outer") == {"inner", "c()"}


# -- break / continue --------------------------------------------------------


def test_break_leaves_only_the_innermost_loop():
    g = graph("""
        for i in outer:
            for j in inner:
                if p:
                    break
                x()
            a()
        b()
    """)
    assert g.next("break") == {"a()"}
    assert g.next("a()") == {"outer"}
    assert not g.flows("break", "b()")
    assert not g.flows("break", "inner")


def test_continue_goes_to_the_loop_header():
    g = graph("""
        for x in xs:
            if skip:
                continue
            a()
        b()
    """)
    assert g.next("continue") == {"xs"}
    assert g.next("skip") == {"continue", "a()"}
    assert not g.flows("continue", "a()")
    assert not g.flows("continue", "b()")


def test_continue_in_while_reevaluates_the_test():
    g = graph("""
        while cond:
            continue
            dead()
        b()
    """)
    assert g.next("continue") == {"cond"}
    assert g.has("dead()")  # unreachable code still gets a node ...
    assert not g.reachable("dead()")  # ... with no way in
    assert g.next("cond") == {"continue", "b()"}


def test_code_after_break_is_unreachable():
    g = graph("""
        for x in xs:
            break
            dead()
        b()
    """)
    assert not g.reachable("dead()")
    assert g.next("break") == {"b()"}


# -- return ----------------------------------------------------------------


def test_return_goes_to_exit_and_code_after_it_is_unreachable():
    g = graph("""
        a()
        return x
        dead()
    """)
    assert g.next("return x") == {EXIT}
    assert g.has("dead()")
    assert not g.reachable("dead()")
    assert not g.reaches("return x", "dead()")


def test_return_inside_a_loop_leaves_the_loop():
    g = graph("""
        for x in xs:
            if found:
                return x
            a()
        b()
    """)
    assert g.next("return x") == {EXIT}
    assert not g.reaches("return x", "xs")
    assert g.reachable("b()")


def test_return_in_every_branch_makes_the_join_unreachable():
    g = graph("""
        def f(c):
            if c:
                return 1
            else:
                return
            dead()
    """, function="f")
    assert g.next("return 1") == {EXIT}
    assert g.next("return") == {EXIT}
    assert not g.reachable("dead()")


def test_return_in_one_branch_only():
    g = graph("""
        if c:
            return 1
        d()
    """)
    assert g.next("c") == {"return 1", "d()"}
    assert g.reachable("d()")
    assert not g.reaches("return 1", "d()")


# -- raise -------------------------------------------------------------------


def test_raise_goes_to_raise_exit():
    g = graph("""
        a()
        raise ValueError()
        dead()
    """)
    assert g.next("raise ValueError()") == {RAISE}
    assert not g.reaches("raise ValueError()", EXIT)
    assert not g.reachable("dead()")
    assert g.reachable(RAISE)


def test_raise_inside_try_goes_to_the_handler_and_past_it():
    g = graph("""
        try:
            raise ValueError()
        except ValueError:
            h()
        after()
    """)
    # Whether the handler matches is not known statically: both ways.
    assert g.next("raise ValueError()") == {"ValueError", RAISE}
    assert g.next("ValueError") == {"h()"}
    assert g.next("h()") == {"after()"}


def test_raise_inside_a_handler_propagates_outwards():
    g = graph("""
        try:
            a()
        except ValueError:
            raise
        b()
    """)
    assert g.next("raise") == {RAISE}
    assert not g.reaches("raise", "ValueError")


def test_raise_inside_a_loop_does_not_reach_the_loop():
    g = graph("""
        while c:
            raise E
        b()
    """)
    assert g.next("raise E") == {RAISE}
    assert not g.reaches("raise E", "c")


# -- try / except ------------------------------------------------------------


def test_try_except_edges_from_every_statement_and_from_before_the_first():
    g = graph("""
        before()
        try:
            a()
            b()
        except ValueError:
            h1()
        except KeyError:
            h2()
        after()
    """)
    handlers = {"ValueError", "KeyError"}
    assert {g.nodes[g.one(h)].kind for h in handlers} == {"except"}
    assert g.next("before()") == {"a()"} | handlers  # the first statement may raise
    assert g.next("a()") == {"b()"} | handlers
    assert g.next("b()") == {"after()"} | handlers
    assert g.next("ValueError") == {"h1()"}
    assert g.next("KeyError") == {"h2()"}
    assert g.next("h1()") == {"after()"}
    assert g.next("h2()") == {"after()"}
    # handler bodies are not protected by their own try, nor lead back into it
    assert not g.flows("h1()", "KeyError")
    assert not g.reaches("h1()", "a()")
    assert not g.reaches("h1()", "h2()")
    assert not g.flows("after()", "ValueError")


def test_try_except_covers_nested_compound_statements():
    g = graph("""
        try:
            if c:
                a()
            for x in xs:
                b()
            with ctx:
                d()
        except ValueError:
            h()
        after()
    """)
    for node in ("c", "a()", "xs", "b()", "ctx", "d()"):
        assert g.flows(node, "ValueError"), node
    assert g.next("xs") == {"b()", "ctx", "ValueError"}


def test_try_except_else():
    g = graph("""
        try:
            a()
        except ValueError:
            h()
        else:
            e()
        after()
    """)
    assert g.next("a()") == {"e()", "ValueError"}
    assert g.next("e()") == {"after()"}  # the else body is not protected by the handlers
    assert g.next("h()") == {"after()"}
    assert not g.reaches("h()", "e()")
    assert not g.flows("a()", "after()")


def test_exception_in_else_body_goes_to_an_outer_handler():
    g = graph("""
        try:
            try:
                a()
            except KeyError:
                h1()
            else:
                e()
        except ValueError:
            h2()
    """)
    assert g.flows("e()", "ValueError")
    assert not g.flows("e()", "KeyError")
    assert g.flows("h1()", "ValueError")
    assert g.next("a()") == {"e()", "KeyError", "ValueError"}


def test_bare_except_and_catch_all_stop_propagation():
    g = graph("""
        try:
            raise E()
        except:
            h()
        after()
    """)
    assert g.next("raise E()") == {"except:"}
    assert not g.reaches("raise E()", RAISE)
    assert g.next("h()") == {"after()"}


@pytest.mark.parametrize("caught", ["Exception", "BaseException", "(KeyError, Exception)"])
def test_except_exception_stops_propagation(caught):
    g = graph(f"""
        try:
            raise E()
        except {caught}:
            h()
    """)
    assert g.next("raise E()") == {caught}
    assert not g.reaches("raise E()", RAISE)


@pytest.mark.parametrize("caught", ["ValueError", "(KeyError, ValueError)", "errors.Boom"])
def test_specific_except_lets_the_exception_propagate(caught):
    g = graph(f"""
        try:
            raise E()
        except {caught}:
            h()
    """)
    assert g.next("raise E()") == {caught, RAISE}


def test_raise_propagates_through_nested_handlers_until_a_catch_all():
    g = graph("""
        try:
            try:
                raise E()
            except KeyError:
                h1()
        except ValueError:
            h2()
    """)
    assert g.next("raise E()") == {"KeyError", "ValueError", RAISE}
    assert g.flows("h1()", "ValueError")
    assert not g.flows("h1()", "KeyError")

    g = graph("""
        try:
            try:
                raise E()
            except KeyError:
                h1()
        except:
            h2()
    """)
    assert g.next("raise E()") == {"KeyError", "except:"}
    assert not g.reaches("raise E()", RAISE)


def test_return_and_break_inside_try_except_skip_the_handlers():
    g = graph("""
        for x in xs:
            try:
                if p:
                    break
                return x
            except ValueError:
                h()
        after()
    """)
    assert g.next("return x") == {EXIT, "ValueError"}  # the returned expression may raise
    assert EXIT not in g.next("ValueError") | g.next("h()")
    assert "after()" in g.next("break")


def test_try_star():
    g = graph("""
        try:
            a()
        except* ValueError:
            h()
        after()
    """)
    assert g.next("a()") == {"after()", "ValueError"}
    assert g.next("ValueError") == {"h()"}
    assert g.next("h()") == {"after()"}


# -- try / finally -----------------------------------------------------------


def test_finally_on_normal_exit_and_on_exception():
    g = graph("""
        before()
        try:
            a()
            b()
        finally:
            f()
        after()
    """)
    normal = g.copy("f()", then="after()")
    raising = g.copy("f()", then=RAISE)
    assert g.ids("f()") == {normal, raising}
    assert g.next(normal) == {"after()"}
    assert g.next(raising) == {RAISE}
    assert g.flows("b()", normal)
    assert not g.flows("a()", normal)
    for stmt in ("a()", "b()"):
        assert g.flows(stmt, raising)
    assert not g.flows("b()", "after()")  # never around the finally
    assert not g.reaches(normal, RAISE)


def test_finally_runs_when_the_first_statement_of_the_try_raises():
    # Like the edge to a handler "from before the first statement": the
    # state in which the finally runs may be the one before `a()` completed.
    g = graph("""
        before()
        try:
            a()
        finally:
            f()
    """)
    raising = g.copy("f()", then=RAISE)
    assert g.flows("before()", raising)


def test_return_inside_try_runs_finally_then_exits():
    g = graph("""
        try:
            a()
            if c:
                return r
            b()
        finally:
            f()
        after()
    """)
    ret = g.copy("f()", then=EXIT)
    normal = g.copy("f()", then="after()")
    assert g.flows("return r", ret)
    assert not g.flows("return r", EXIT)  # never around the finally
    assert not g.flows("return r", normal)
    assert g.next(ret) == {EXIT}  # the finally runs once, not again on its raise route
    assert not g.reaches(ret, "after()")
    assert not g.reaches(ret, "f()")
    assert g.flows("b()", normal)
    assert not g.flows("b()", ret)


def test_raise_inside_try_runs_finally_then_raise_exit():
    g = graph("""
        try:
            raise E()
        finally:
            f()
        after()
    """)
    (copy,) = g.ids("f()") - {g.copy("f()", then="after()")}
    assert g.next("raise E()") == {"f()"}
    assert g.flows("raise E()", copy)
    assert g.next(copy) == {RAISE}
    assert not g.reaches(copy, copy)  # no cycle through the finally
    assert not g.reachable("after()")


def test_break_and_continue_inside_try_finally_in_a_loop():
    g = graph("""
        for x in xs:
            try:
                if p:
                    break
                if q:
                    continue
                a()
            finally:
                f()
            b()
        after()
    """)
    brk = g.copy("f()", then="after()")
    cont = g.copy("f()", then="xs")
    normal = g.copy("f()", then="b()")
    raising = g.copy("f()", then=RAISE)
    assert len({brk, cont, normal, raising}) == 4
    assert g.next(brk) == {"after()"}
    assert g.next(cont) == {"xs"}
    assert g.next(normal) == {"b()"}
    assert g.next(raising) == {RAISE}
    assert g.flows("break", brk)
    assert not g.flows("break", "after()")
    assert not g.flows("break", cont) and not g.flows("break", normal)
    assert g.flows("continue", cont)
    assert not g.flows("continue", "xs")
    assert not g.flows("continue", brk)
    assert g.flows("a()", normal)
    assert not g.flows("a()", brk)


def test_try_except_finally():
    g = graph("""
        try:
            a()
        except ValueError:
            h()
        else:
            e()
        finally:
            f()
        after()
    """)
    normal = g.copy("f()", then="after()")
    raising = g.copy("f()", then=RAISE)
    assert g.next("a()") == {"e()", "ValueError", "f()"}
    assert g.flows("a()", raising)
    assert g.flows("e()", normal)
    assert g.flows("h()", normal)
    # an exception in the handler or the else body still runs the finally
    assert g.flows("h()", raising)
    assert g.flows("e()", raising)
    assert g.flows("ValueError", raising)
    # exceptions in the finally are not caught by the same try's handlers
    assert not g.reaches(normal, "ValueError")
    assert not g.reaches(raising, "ValueError")


def test_return_in_try_except_finally_finally_is_outside_the_handlers():
    g = graph("""
        try:
            return g()
        except ValueError:
            h()
        finally:
            f()
        after()
    """)
    ret = g.copy("f()", then=EXIT)
    assert g.next("return g()") == {"ValueError", "f()"}
    assert g.next(ret) == {EXIT}
    assert not g.reaches(ret, "ValueError")


def test_raise_with_specific_handler_and_finally():
    g = graph("""
        try:
            raise E()
        except ValueError:
            h()
        finally:
            f()
        after()
    """)
    raising = g.copy("f()", then=RAISE)
    normal = g.copy("f()", then="after()")
    assert g.next("raise E()") == {"ValueError", "f()"}
    assert g.flows("raise E()", raising)
    assert not g.flows("raise E()", normal)
    assert g.next(raising) == {RAISE}
    assert g.flows("h()", normal)


def test_return_through_nested_finallies_runs_inner_then_outer():
    g = graph("""
        try:
            try:
                return r
            finally:
                f1()
        finally:
            f2()
        after()
    """)
    outer_ret = g.copy("f2()", then=EXIT)
    inner = g.copy("f1()", then=outer_ret)
    assert g.flows("return r", inner)
    assert not g.flows("return r", outer_ret)  # never around the inner finally
    assert not g.edge("return r", "f2()")
    assert g.flows(inner, outer_ret)
    assert g.next(outer_ret) == {EXIT}
    # the inner finally is inside the outer try: if it raises, the outer finally runs
    assert g.flows(inner, g.copy("f2()", then=RAISE))
    for copy in g.ids("f2()"):
        assert not g.reaches(copy, "f1()")
        assert not g.reaches(copy, "f2()")


def test_outer_finally_copy_is_not_protected_by_an_inner_handler():
    g = graph("""
        for x in xs:
            try:
                try:
                    break
                except ValueError:
                    h()
            finally:
                f()
        after()
    """)
    brk = g.copy("f()", then="after()")
    assert g.flows("break", brk)
    assert g.next(brk) == {"after()"}
    assert not g.reaches(brk, "ValueError")


def test_inner_finally_copy_is_protected_by_an_outer_handler():
    g = graph("""
        for x in xs:
            try:
                try:
                    break
                finally:
                    f()
            except ValueError:
                h()
        after()
    """)
    brk = g.copy("f()", then="after()")
    assert g.flows("break", brk)
    assert g.next(brk) == {"after()", "ValueError"}


def test_inner_catch_all_shields_the_outer_handlers():
    g = graph("""
        try:
            try:
                a()
            except:
                h1()
        except ValueError:
            h2()
    """)
    # An exception in a() is caught by the bare except; only what follows it
    # (the handler, the point after the inner try) can raise into ValueError.
    assert g.edge("a()", "except:")
    assert not g.edge("a()", "ValueError")
    assert g.edge("h1()", "ValueError")  # the handler's own body is not shielded


def test_catch_all_handler_intercepts_before_the_finally():
    g = graph("""
        try:
            a()
        except Exception:
            h()
        finally:
            f()
        after()
    """)
    raising = g.copy("f()", then=RAISE)
    normal = g.copy("f()", then="after()")
    assert g.next("a()") == {"Exception", "f()"}
    assert g.flows("a()", normal)
    assert not g.flows("a()", raising)  # caught first: the handler runs, then the finally
    assert g.flows("h()", raising)
    assert g.flows("h()", normal)


def test_inner_finally_runs_before_an_outer_handler():
    g = graph("""
        try:
            try:
                a()
            finally:
                f()
        except ValueError:
            h()
    """)
    raising = g.copy("f()", then=RAISE)
    assert g.flows("a()", raising)
    assert g.edge(raising, "ValueError")  # the inner finally is inside the outer try
    assert not g.edge("a()", "ValueError")  # an exception in a() runs the inner finally first


# -- try nested in loops -----------------------------------------------------


def test_try_except_in_loop_with_continue_in_handler():
    g = graph("""
        for b in batches:
            try:
                step()
            except ValueError:
                continue
            log()
        done()
    """)
    assert g.next("step()") == {"log()", "ValueError"}
    assert g.next("continue") == {"batches"}
    assert g.next("log()") == {"batches"}
    assert g.next("batches") == {"step()", "ValueError", "done()"}


def test_loop_inside_try_break_stays_inside_the_try():
    g = graph("""
        try:
            for x in xs:
                break
            a()
        finally:
            f()
        after()
    """)
    assert g.next("break") == {"a()", "f()"}  # "f()": the raise route
    assert g.flows("break", "a()")
    assert g.flows("a()", g.copy("f()", then="after()"))


def test_continue_in_handler_with_finally_in_loop():
    g = graph("""
        while c:
            try:
                step()
            except ValueError:
                continue
            finally:
                f()
            log()
    """)
    cont = g.copy("f()", then="c")
    normal = g.copy("f()", then="log()")
    assert g.flows("continue", cont)
    assert not g.flows("continue", normal)
    assert g.flows("step()", normal)


# -- with ------------------------------------------------------------------


def test_with_items_in_order_then_body():
    g = graph("""
        with open(p) as fh, lock:
            a()
        b()
    """)
    assert g.nodes[g.one("open(p)")].kind == "with"
    assert g.next(ENTRY) == {"open(p)"}
    assert g.next("open(p)") == {"lock"}
    assert g.next("lock") == {"a()"}
    assert g.next("a()") == {"b()"}


def test_async_with_and_return_inside_with():
    g = graph("""
        async def f():
            async with session() as s:
                if done:
                    return s
                a()
            b()
    """, function="f")
    assert g.next(ENTRY) == {"session()"}
    assert g.next("session()") == {"done"}
    assert g.next("return s") == {EXIT}
    assert g.next("a()") == {"b()"}


# -- async for -------------------------------------------------------------


def test_async_for_is_a_loop():
    g = graph("""
        async def f():
            async for x in stream:
                if x:
                    break
                a()
            else:
                e()
            b()
    """, function="f")
    assert g.nodes[g.one("stream")].kind == "for"
    assert g.next("stream") == {"x", "e()"}
    assert g.next("a()") == {"stream"}
    assert g.next("break") == {"b()"}
    assert not g.reaches("break", "e()")


# -- match -----------------------------------------------------------------


def test_match_without_irrefutable_case_can_fall_through():
    g = graph("""
        match cmd:
            case "go":
                a()
            case [x, y]:
                b()
        after()
    """)
    assert g.nodes[g.one("cmd")].kind == "match"
    assert g.nodes[g.one('"go"')].kind == "case"
    assert g.next("cmd") == {'"go"'}
    assert g.next('"go"') == {"a()", "[x, y]"}
    assert g.next("[x, y]") == {"b()", "after()"}
    assert g.next("a()") == {"after()"}
    assert g.next("b()") == {"after()"}
    assert not g.reaches("a()", "b()")


@pytest.mark.parametrize("last", ["_", "other", "1 | _", "(_ as whole)"])
def test_match_with_irrefutable_last_case_cannot_fall_through(last):
    g = graph(f"""
        match cmd:
            case "go":
                a()
            case {last}:
                b()
        after()
    """)
    assert g.next('"go"') == {"a()", last}
    assert g.next(last) == {"b()"}
    assert not g.flows('"go"', "after()")


def test_match_guard_falls_through_to_the_next_case():
    g = graph("""
        match cmd:
            case x if x > 0:
                a()
            case _ if flag:
                b()
        after()
    """)
    assert g.next("x") == {"a()", "_"}
    assert g.next("_") == {"b()", "after()"}  # a guarded wildcard is refutable


def test_match_case_bodies_with_abrupt_exits():
    g = graph("""
        for item in items:
            match item:
                case None:
                    continue
                case 0:
                    break
                case _:
                    return item
            a()
        b()
    """)
    assert g.next("continue") == {"items"}
    assert g.next("break") == {"b()"}
    assert g.next("return item") == {EXIT}
    assert not g.reachable("a()")


# -- nested definitions -----------------------------------------------------


def test_nested_function_and_class_are_one_node_each():
    g = graph("""
        a()
        @decorator
        def helper(x):
            inner()
            return x
        class K:
            field = 1
            def method(self):
                return 2
        async def coro():
            raise E
        b()
    """)
    for name in ("def helper", "class K", "def coro"):
        assert g.nodes[g.one(name)].kind == "def"
    assert g.next("a()") == {"def helper"}
    assert g.next("def helper") == {"class K"}
    assert g.next("class K") == {"def coro"}
    assert g.next("def coro") == {"b()"}
    for hidden in ("inner()", "return x", "field = 1", "return 2", "raise E", "def method"):
        assert not g.has(hidden), hidden
    assert g.cfg.preds()[g.cfg.exit] == [g.one("b()")]
    assert not g.reachable(RAISE)


def test_function_body_graph_ignores_the_enclosing_module():
    g = graph("""
        before()
        def f():
            a()
            return 1
        after()
    """, function="f")
    assert g.labels() == {ENTRY, EXIT, RAISE, "a()", "return 1"}
    assert g.next(ENTRY) == {"a()"}


# -- zero loops --------------------------------------------------------------


def test_zero_loop_is_a_single_node():
    def is_zero_loop(loop: libcst.For) -> bool:
        return isinstance(loop.iter, libcst.Call) and "parameters" in libcst.Module([]).code_for_node(loop.iter)

    g = graph("""
        for p in model.parameters():
            p.grad = None
        for x in xs:
            a()
    """, is_zero_loop=is_zero_loop)
    (zero,) = [n.id for n in g.nodes if n.kind == "zero-loop"]
    assert isinstance(g.nodes[zero].item, libcst.For)
    assert not g.has("p.grad = None")
    assert g.flows(ENTRY, zero)
    assert g.next(zero) == {"xs"}
    assert not g.reaches(zero, zero)


# -- implicit loop -----------------------------------------------------------


def test_implicit_loop_flows_from_exit_back_to_start():
    src = """
        a()
        if c:
            return
        b()
    """
    g = graph(src, implicit_loop=True)
    assert g.next("b()") == {EXIT, "a()"}
    assert g.flows("return", "a()")
    assert g.reaches("b()", "c")
    assert not g.flows("a()", "b()")

    g = graph(src)
    assert g.next("b()") == {EXIT}
    assert not g.reaches("b()", "a()")
    assert not g.reaches("return", "a()")


def test_implicit_loop_does_not_restart_after_raise():
    g = graph("""
        a()
        raise E
    """, implicit_loop=True)
    assert g.next("raise E") == {RAISE}
    assert not g.reaches("raise E", "a()")
