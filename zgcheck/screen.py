"""What CPython accepts, and the copy of it that libcst parses.

`refusal` screens source with CPython's own compiler, so what `python file.py`
refuses (a NUL byte, more than 200 nested brackets, nesting past the recursion
limit) is ZG901 before libcst sees it, and libcst never crashes on it.
`libcst_copy` gives libcst the same lines, changed where libcst reads differently
from CPython or pays for what cannot hold an event: form feeds, long runs of blank
or comment lines, call-free statements nested deeper than SHALLOW. Imports nothing
from zgcheck.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
import warnings
from typing import Dict, FrozenSet, List, Optional, Tuple

NEWLINE = re.compile(r"\r\n?|\n")
LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+$")  # a line as CPython counts them, ending kept

# `python file.py` compiles at the default recursion limit.
CPYTHON_RECURSION_LIMIT = max(1000, sys.getrecursionlimit())
# A run of this many blank or comment lines between two statements reaches libcst as
# one string statement over the same lines: cost follows the code, not the file's size.
QUIET_RUN = 64
# Statements libcst cannot parse although CPython compiles them, left out before giving up.
LEFT_OUT = 3
# Source that nests deeper than this (CPython's compiler counts about three levels a frame)
# has its call-free statements that deep left out of what libcst parses.
SHALLOW = 100
_QUIET_RUN = re.compile(r"(?:^[ \t\f]*(?:#[^\r\n]*)?(?:\r\n?|\n)){%d}" % QUIET_RUN, re.M)
# A form feed in the indentation of a line that starts a statement: CPython resets
# the indentation column there, libcst does not.
_FORM_FEED_INDENT = re.compile(r"^[ \t\f]*\f[ \t\f]*[^ \t\f#\r\n]", re.M)


def refusal(text: str, probe: bool = False) -> Tuple[Optional[Tuple[int, int, str]], bool]:
    """(line, column, message) if CPython refuses to compile the source, as `python file.py`
    would, and (with probe) whether it nests deeper than SHALLOW: compiled under a lower
    limit first, so a file that nests as usual is compiled once. The recursion limit is the
    interpreter's, so probe only where no other thread runs meanwhile."""
    source = text[1:] if text.startswith("\ufeff") else text
    if "\0" in source:  # CPython's message for it has no position
        line, col = _position(source, source.find("\0"))
        return (line, col, "source code cannot contain null bytes"), False
    old_limit, deep = sys.getrecursionlimit(), False
    try:
        limits = ((_stack_depth() + SHALLOW,) if probe else ()) + (CPYTHON_RECURSION_LIMIT,)
        for tried, limit in enumerate(limits, 1):
            sys.setrecursionlimit(limit)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # SyntaxWarnings are the user's business
                    compile(source, "<screen>", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
                if probe and not deep and not _compile_counts_nesting():
                    deep = _nests_deeper(source, SHALLOW)
                return None, deep
            except RecursionError:
                if tried == len(limits):
                    raise
                deep = True
    except SyntaxError as err:
        return (err.lineno or 1, err.offset or 1, err.msg), deep
    except (RecursionError, MemoryError, ValueError):
        return (1, 1, "nested too deeply for CPython to compile it"), deep
    finally:
        sys.setrecursionlimit(old_limit)
    return None, deep


def outline(text: str) -> Optional[ast.Module]:
    """CPython's ast of the source, or None where its parser refuses it (`refusal` says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compile(text[1:] if text.startswith("\ufeff") else text, "<outline>", "exec",
                           ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def calls_any(tree: ast.AST, attrs: FrozenSet[str]) -> bool:
    """Whether the tree calls `x.attr(...)` or `attr(...)` for one of attrs."""
    return any(is_call_to(node, attrs) for node in ast.walk(tree))


def is_call_to(node: ast.AST, attrs: FrozenSet[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return isinstance(func, ast.Attribute) and func.attr in attrs or isinstance(func, ast.Name) and func.id in attrs


_COUNTS: List[bool] = []


def _compile_counts_nesting() -> bool:
    """Whether this CPython's compiler counts nesting against the recursion limit, as 3.10 and
    3.11 do. 3.9 does not count it at all, and 3.12 counts C frames against a fixed limit of
    its own, so the probe above never sees a deep file there: then its nesting is measured on
    the syntax tree. Asked once, on the deep-stack thread (the limit is the interpreter's)."""
    if not _COUNTS:
        old_limit = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(_stack_depth() + SHALLOW)
            compile("x = " + "-" * (4 * SHALLOW) + "1", "<probe>", "exec", dont_inherit=True)
            _COUNTS.append(False)
        except RecursionError:
            _COUNTS.append(True)
        except (SyntaxError, MemoryError, ValueError):
            _COUNTS.append(False)
        finally:
            sys.setrecursionlimit(old_limit)
    return _COUNTS[0]


def _nests_deeper(source: str, limit: int) -> bool:
    todo = [(_ast_of(source), 1)]
    while todo:
        node, depth = todo.pop()
        if node is None:
            continue
        if depth > limit:
            return True
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return False


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _position(text: str, offset: int) -> Tuple[int, int]:
    before = text[:offset]
    return len(NEWLINE.findall(before)) + 1, offset - max(before.rfind("\n"), before.rfind("\r"))


def libcst_copy(text: str, deep: bool = False) -> Tuple[str, Dict[int, Tuple[int, int]]]:
    """The text libcst parses, and {line: (columns dropped, line length)} for lines whose
    statement starts after a form feed (their positions are shifted back)."""
    shifts: Dict[int, Tuple[int, int]] = {}
    quiet = _QUIET_RUN.search(text) is not None
    if "\f" not in text and not quiet:
        return (_without_deep_statements(text) if deep else text), shifts
    lines = LINE.findall(text)
    if "\f" in text:
        starts = _statement_starts(text) if _FORM_FEED_INDENT.search(text) else set()
        for number in starts:
            line = lines[number - 1]
            body = line.rstrip("\r\n")
            indent = len(body) - len(body.lstrip(" \t\f"))
            if "\f" not in body[:indent]:
                continue
            dropped = body.rfind("\f", 0, indent) + 1
            content = body[dropped:].replace("\f", " ")
            pad = " " * dropped
            content = content[:-1] + pad + "\\" if content.endswith("\\") else content + pad
            lines[number - 1] = content + line[len(body):]
            shifts[number] = (dropped, len(body))
        lines = [line.replace("\f", " ") for line in lines]
    if quiet:
        _quiet_runs_as_strings(text, lines)
    copy = "".join(lines)
    return (_without_deep_statements(copy) if deep else copy), shifts


def without_statement_at(copy: str, line: int) -> Optional[str]:
    """copy with the simple statement holding `line` replaced by `pass` (same lines), if that
    statement holds no call and has its lines to itself; else None."""
    tree, lines = _ast_of(copy), LINE.findall(copy)
    found = [stmt for stmt in _simple_statements(tree) if stmt.lineno <= line <= stmt.end_lineno]
    if len(found) != 1 or _depth_and_call(found[0])[1] or not blank_statement(lines, found[0]):
        return None
    return "".join(lines)


def _without_deep_statements(copy: str) -> str:
    """copy with every simple statement that nests deeper than SHALLOW and holds no call (a
    generated table, `1 + 1 + ...`) replaced by `pass`: libcst's cost grows with the square
    of the nesting, and no event can hide there."""
    lines = LINE.findall(copy)
    for stmt in _simple_statements(_ast_of(copy)):
        depth, call = _depth_and_call(stmt)
        if depth > SHALLOW and not call:
            blank_statement(lines, stmt)
    return "".join(lines)


def _ast_of(copy: str) -> Optional[ast.Module]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compile(copy, "<copy>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                           dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While,
             ast.With, ast.AsyncWith, ast.Try) + ((ast.Match,) if hasattr(ast, "Match") else ())


def _simple_statements(tree: Optional[ast.Module]) -> List[ast.stmt]:
    out, todo = [], [tree] if tree is not None else []
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _COMPOUND) or isinstance(child, (ast.excepthandler, getattr(ast, "match_case", ()))):
                todo.append(child)
            elif isinstance(child, ast.stmt):
                out.append(child)
    return out


def _depth_and_call(node: ast.AST) -> Tuple[int, bool]:
    deepest, call, todo = 0, False, [(node, 1)]
    while todo:
        node, depth = todo.pop()
        deepest, call = max(deepest, depth), call or isinstance(node, ast.Call)
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest, call


def blank_statement(lines: List[str], stmt: ast.stmt) -> bool:
    """Replace stmt by `pass` on its first line and nothing on the others, if it has its lines to itself."""
    first, last = lines[stmt.lineno - 1], lines[stmt.end_lineno - 1]
    after = last.encode("utf-8")[stmt.end_col_offset:].decode("utf-8", "replace").strip()
    if first[:stmt.col_offset].strip() or (after and not after.startswith("#")):
        return False
    lines[stmt.lineno - 1:stmt.end_lineno] = [line[len(line.rstrip("\r\n")):]
                                               for line in lines[stmt.lineno - 1:stmt.end_lineno]]
    lines[stmt.lineno - 1] = first[:stmt.col_offset] + "pass" + lines[stmt.lineno - 1]
    return True


def _statement_starts(text: str) -> set:
    """Numbers of the lines where a logical line (a statement or clause) starts."""
    starts, depth, ready = set(), 0, True
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text, newline=None).readline):
            if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
                continue
            if tok.type == tokenize.NEWLINE:
                ready = True
                continue
            if ready and depth == 0:
                starts.add(tok.start[0])
            ready = False
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth = max(0, depth - 1)
    except (tokenize.TokenError, SyntaxError):
        return set()
    return starts


def _quiet_runs_as_strings(text: str, lines: List[str]) -> None:
    """Each run of QUIET_RUN or more blank or comment lines between two statements of one
    block (or after the last statement) becomes a string statement over the same lines."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = compile(text, "<screen>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                           dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    def start(stmt: ast.stmt) -> int:
        return min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", ())])

    gaps = []  # (first line, last line, the statement after them) -- lines 1-2 may hold a coding cookie
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if not isinstance(block, list) or not block or not isinstance(block[0], ast.stmt):
                continue
            gaps.extend((before.end_lineno + 1, start(after) - 1, start(after)) for before, after in zip(block, block[1:]))
    if tree.body:
        gaps.append((3, start(tree.body[0]) - 1, start(tree.body[0])))
        gaps.append((tree.body[-1].end_lineno + 1, len(lines), None))
    for first, last, following in gaps:
        # Only comments and blank lines lie between two statements, unless a backslash
        # continues the line before into them.
        if last - first + 1 < QUIET_RUN or lines[first - 2].rstrip("\r\n").endswith("\\"):
            continue
        indent = ""
        if following is not None:
            line = lines[following - 1]
            indent = line[: len(line) - len(line.lstrip(" \t"))]
        lines[first - 1:last] = [line[len(line.rstrip("\r\n")):] for line in lines[first - 1:last]]
        lines[first - 1] = indent + '"""' + lines[first - 1]
        lines[last - 1] = indent + '"""' + lines[last - 1]
