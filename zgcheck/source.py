"""Decoded text -> parsed libcst module with positions (reading and decoding are in reading.py)."""

from __future__ import annotations

import ast
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, TypeVar, Union

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import MetadataWrapper, PositionProvider

from . import screen as cpython
from .codes import DECODE_ERROR, FIX_ERROR, INTERNAL_ERROR, PARSE_ERROR, READ_ERROR  # noqa: F401
# Reading and decoding import no parser; they are re-exported here for the stages that parse.
from .reading import decode, decode_for_display, read_bytes, tool_diagnostic  # noqa: F401
from .screen import NEWLINE as _NEWLINE
from .types import Diagnostic, Span


# What `python file.py` refuses is screened with CPython's compiler (screen.py) before
# libcst sees it; what it accepts is parsed and analysed on a thread with room for the
# few thousand levels of nesting that this allows.
DEEP_RECURSION_LIMIT = 60_000
DEEP_STACK_BYTES = 256 * 1024 * 1024
DEEP_THREAD = "zgcheck-deep"


Position = Tuple[int, int, int, int]  # (line, column, end line, end column); lines from 1, columns from 0
# Kept for every node, so stored as one int, 32 bits a number: about 40 bytes where a tuple
# and its ints take about 130 (this pays for the id(node) key).
_BITS = 32
_POINT = (1 << 2 * _BITS) - 1  # (line, column) as line << _BITS | column
_NUMBER = (1 << _BITS) - 1


def _pack(line: int, column: int, end_line: int, end_column: int) -> int:
    return (((line << _BITS | column) << _BITS | end_line) << _BITS) | end_column


def _unpack(packed: int) -> Position:
    return (packed >> 3 * _BITS, packed >> 2 * _BITS & _NUMBER, packed >> _BITS & _NUMBER, packed & _NUMBER)


@dataclass
class ParsedSource:
    path: str
    module: cst.Module
    positions: Dict[int, int]  # id(node) -> its Position, packed (_pack)
    code: str = ""  # what libcst parsed (module.code, without generating it again)
    tree: Optional[ast.Module] = None  # CPython's ast of the text, for whoever reads it first

    def span(self, node: cst.CSTNode) -> Span:
        line, column, end_line, end_column = _unpack(self.positions[id(node)])
        return Span(line, column + 1, end_line, end_column + 1)

    def text(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)


T = TypeVar("T")


def with_deep_stack(fn: Callable[..., T], *args) -> T:
    """fn(*args) on a thread with a large stack and recursion limit: libcst and the analysis
    recurse once per nesting level, and code that CPython compiles can nest thousands deep."""
    if threading.current_thread().name == DEEP_THREAD:
        return fn(*args)
    outcome: List[tuple] = []

    def target() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as err:  # handed to the caller's thread
            outcome.append((False, err))

    old_limit = sys.getrecursionlimit()
    old_size = threading.stack_size()
    try:
        threading.stack_size(DEEP_STACK_BYTES)
        thread = threading.Thread(target=target, name=DEEP_THREAD, daemon=True)
        sys.setrecursionlimit(max(old_limit, DEEP_RECURSION_LIMIT))
        thread.start()
    except (ValueError, RuntimeError, MemoryError):  # no big stacks here: run as we are
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
        return fn(*args)
    threading.stack_size(old_size)
    try:
        thread.join()
    finally:
        sys.setrecursionlimit(old_limit)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


# (tree, text) -> the text libcst should parse (same lines), or None: nothing there to analyse.
Prune = Callable[[ast.Module, str], Optional[str]]


def parse(text: str, path: str, prune: Optional[Prune] = None) -> Union[ParsedSource, Diagnostic, None]:
    """Parse decoded source text; positions are over that text. None: `prune` found nothing
    there that the analysis could use.

    Source CPython refuses is ZG901 before libcst sees it. libcst parses a copy of
    the text with the same lines (screen.libcst_copy): `prune` blanks definitions the
    analysis cannot use, form feeds become spaces (a statement's indentation keeps
    only what follows its last form feed, as CPython counts it, and the line's
    positions are mapped back), long blank or comment runs become one string,
    call-free statements that nest very deep become `pass`."""
    tree = cpython.outline(text)
    kept = text
    if tree is not None and prune is not None:
        kept = prune(tree, text)
        if kept is None:
            return None
    refused, deep = cpython.refusal(text, probe=threading.current_thread().name == DEEP_THREAD)
    if refused is not None:
        return tool_diagnostic(PARSE_ERROR, path, f"cannot parse: {refused[2]}", refused[0], refused[1])
    copy, shifts = cpython.libcst_copy(kept, deep)
    for attempt in range(cpython.LEFT_OUT + 1):
        try:
            module = cst.parse_module(copy)
            break
        except cst.ParserSyntaxError as err:
            # CPython compiles it, libcst cannot (5,000 adjacent string literals, new syntax):
            # a statement without a call cannot hold an event, so it may be left out.
            smaller = cpython.without_statement_at(copy, err.raw_line) if attempt < cpython.LEFT_OUT else None
            if smaller is None:
                line, col, detail = _python_syntax_error(text, path) or (
                    err.raw_line, err.raw_column + 1, str(err.message).strip().splitlines()[0])
                return tool_diagnostic(PARSE_ERROR, path, f"cannot parse: {detail}", line, col)
            copy = smaller
        except RecursionError:
            return tool_diagnostic(PARSE_ERROR, path, "cannot parse: nesting too deep")
    try:
        return ParsedSource(path, module, _shifted(positions_of(module), shifts), copy, tree)
    except RecursionError:
        return tool_diagnostic(PARSE_ERROR, path, "cannot analyse: expressions nested too deeply")


def _shifted(positions: Dict[int, int], shifts: Dict[int, Tuple[int, int]]):
    """Positions over the copy -> positions over the text, on lines that dropped columns."""
    if not shifts:
        return positions

    def move(line: int, column: int) -> int:
        if line not in shifts:
            return column
        dropped, length = shifts[line]
        return min(column + dropped, length)

    out = {}
    for key, packed in positions.items():
        line, column, end_line, end_column = _unpack(packed)
        out[key] = _pack(line, move(line, column), end_line, move(end_line, end_column))
    return out


def positions_of(module: cst.Module) -> Dict[int, int]:
    """libcst's syntactic positions by id(node), from one lean codegen pass (2-3x faster than
    the metadata machinery); falls back to PositionProvider if libcst's internals change.
    Keyed by id: a CSTNode's __hash__ is a Python call, and the pass does one per node."""
    out: Dict[int, int] = {}
    try:
        module._codegen(_PositionState(module, out))
        return out
    except RecursionError:
        raise  # too deep for any codegen pass; the caller reports it
    except Exception:  # pragma: no cover - depends on the libcst version
        found = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        return {id(node): _pack(r.start.line, r.start.column, r.end.line, r.end.column) for node, r in found.items()}


class _PositionState(CodegenState):
    """The codegen state libcst's PositionProvider uses, minus per-token regexes and
    generator-based context managers (a node's position is recorded in a few dict writes)."""

    def __init__(self, module: cst.Module, out: Dict[int, int]):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line, self.column, self.out, self.stack = 1, 0, out, []

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        if "\n" not in value and "\r" not in value:
            self.column += len(value)
            return
        segments = _NEWLINE.split(value)
        self.line += len(segments) - 1
        self.column = len(segments[-1])

    def before_codegen(self, node: cst.CSTNode) -> None:
        self.stack.append(self.line << _BITS | self.column)

    def after_codegen(self, node: cst.CSTNode) -> None:
        # A node that recorded its syntactic position keeps it.
        start, key = self.stack.pop(), id(node)
        if key not in self.out:
            self.out[key] = ((start << _BITS | self.line) << _BITS) | self.column

    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        return _Syntactic(self, node, start_node, end_node)


class _Syntactic:
    """`with state.record_syntactic_position(node)`: the node's position without its
    surrounding whitespace, or from start_node's start to end_node's end."""

    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: _PositionState, node, start_node, end_node):
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = self.state.line << _BITS | self.state.column

    def __exit__(self, *exc) -> None:
        state, out = self.state, self.state.out
        start = out[id(self.start_node)] >> 2 * _BITS if self.start_node is not None else self.start
        end = out[id(self.end_node)] & _POINT if self.end_node is not None else state.line << _BITS | state.column
        out[id(self.node)] = start << 2 * _BITS | end


def _python_syntax_error(text: str, path: str):
    """CPython's own message and position: clearer than libcst's for most errors."""
    try:
        compile(text.lstrip("\ufeff"), path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as err:
        return (err.lineno or 1, err.offset or 1, err.msg)
    except (ValueError, RecursionError, MemoryError):
        return None
    return None  # libcst rejects what CPython accepts: keep libcst's words
