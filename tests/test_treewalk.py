"""treewalk.visit calls a visitor on the same nodes, in the same order, as libcst's own visit."""

from pathlib import Path

import libcst as cst
import pytest

from zgcheck import treewalk

ROOT = Path(__file__).resolve().parent.parent

# Shapes whose children libcst visits in an order other than their fields' (decorators
# before the name, parentheses, f-string format specs visited only when present, match).
SHAPES = '''
@decorate(a.b())
def f(x: int = g(), *args, y=lambda z: z.backward(), **kw) -> T[h()]:
    """doc"""
    with ctx(a) as (b, c), other():
        for i, opt in enumerate(opts):
            v = f"{x!r:>{width()}} {y=}" + f"{z}"
            w = [q() for q in qs if q.step() for r in q] or {k: v() for k, v in d.items()}
            loss.backward() if cond() else (yield from gen())
    try:
        pass
    except (A, B) as err:
        raise C() from err
    else:
        del x[1:2, ::3]
    finally:
        global G
    match cmd:
        case Point(x=0, y=yy) | [1, *rest] if guard():
            return {**d, "a": 1}
    async def inner():
        async for a in b():
            await c(a)
    return x if x else -y ** 2 @ z
class K(Base, metaclass=M):
    attr: Optional["Opt"] = None
    def m(self): self.x += 1; self.y = self.z = t()
'''


class _Recorder:
    def __init__(self):
        self.seen = []


for _name in dir(cst):
    _kind = getattr(cst, _name)
    if isinstance(_kind, type) and issubclass(_kind, cst.CSTNode) and not issubclass(_kind, treewalk.TRIVIA):
        setattr(_Recorder, f"visit_{_name}", lambda self, node: self.seen.append(("visit", node)))
        setattr(_Recorder, f"leave_{_name}", lambda self, node: self.seen.append(("leave", node)))


class _LibcstRecorder(cst.CSTVisitor):
    """libcst's own walk, minus trivia (which treewalk neither visits nor enters)."""

    def __init__(self):
        self.seen = []

    def on_visit(self, node):
        if isinstance(node, treewalk.TRIVIA):
            return False
        self.seen.append(("visit", node))
        return True

    def on_leave(self, node):
        if not isinstance(node, treewalk.TRIVIA):
            self.seen.append(("leave", node))


def _sources():
    yield "shapes", SHAPES
    for path in sorted((ROOT / "fixtures").rglob("*.py")):
        yield path.name, path.read_text(encoding="utf-8")
    yield "zgcheck/analysis/resolve.py", (ROOT / "zgcheck" / "analysis" / "resolve.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("name,text", list(_sources()), ids=lambda value: value if len(value) < 80 else "")
def test_the_walk_matches_libcsts_visit(name, text):
    module = cst.parse_module(text)
    expected, walked = _LibcstRecorder(), _Recorder()
    module.visit(expected)
    treewalk.visit(module, walked)
    assert [(what, type(node).__name__) for what, node in walked.seen] == \
        [(what, type(node).__name__) for what, node in expected.seen]
    assert all(a is b for (_, a), (_, b) in zip(walked.seen, expected.seen))


def test_a_false_visit_skips_children_but_still_leaves():
    class Outer:
        def __init__(self):
            self.calls, self.left = [], []

        def visit_FunctionDef(self, node):
            return False

        def leave_FunctionDef(self, node):
            self.left.append(node.name.value)

        def visit_Call(self, node):
            self.calls.append(cst.Module([]).code_for_node(node))

    outer = Outer()
    treewalk.visit(cst.parse_module("a()\ndef f():\n    b()\n"), outer)
    assert outer.calls == ["a()"] and outer.left == ["f"]


def test_skip_leaves_nested_scopes_out_below_the_root():
    class Calls:
        def __init__(self):
            self.found = []

        def visit_Call(self, node):
            self.found.append(cst.Module([]).code_for_node(node.func))

    fn = cst.parse_module("def f():\n    a()\n    def g():\n        b()\n    h = lambda: c()\n").body[0]
    calls = Calls()
    treewalk.visit(fn, calls, skip=(cst.FunctionDef, cst.Lambda))
    assert calls.found == ["a"]


def test_a_visitor_of_trivia_is_refused_rather_than_silently_never_called():
    class Commas:
        def visit_Comma(self, node):
            pass

    with pytest.raises(TypeError, match="Comma"):
        treewalk.visit(cst.parse_module("f(a, b)\n"), Commas())
