"""Bytes -> parsed libcst module with positions; a file we cannot read is a Diagnostic."""

from __future__ import annotations

import ast
from contextlib import contextmanager
import io
import os
import re
import stat
import sys
import threading
import tokenize
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple, TypeVar, Union

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst._position import CodePosition, CodeRange
from libcst.metadata import MetadataWrapper, PositionProvider

from .types import Diagnostic, Span

PARSE_ERROR = ("ZG901", "syntax-error")
DECODE_ERROR = ("ZG902", "undecodable-file")
READ_ERROR = ("ZG903", "unreadable-file")
FIX_ERROR = ("ZG905", "fix-not-applied")
INTERNAL_ERROR = ("ZG999", "internal-error")

# What a backward call looks like in bytes: `.backward(`, `.manual_backward(`
# (`loss.backward(`, `accelerator.backward(`, `torch.autograd.backward(`) or an
# import of `backward`. A file without one cannot produce a finding on its own,
# so it is never parsed; prose and docstrings that merely say "backward" don't count.
BACKWARD_BYTES = re.compile(rb"\.\s*(?:manual_)?backward\s*\(|import[^\n]*\bbackward\b")
BACKWARD_TEXT = re.compile(BACKWARD_BYTES.pattern.decode())
_NEWLINE = re.compile(r"\r\n?|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+$")  # a line as CPython counts them, ending kept

# What `python file.py` refuses is screened with CPython's compiler at its default
# recursion limit before libcst sees it; what it accepts is parsed and analysed on a
# thread with room for the few thousand levels of nesting that this allows.
CPYTHON_RECURSION_LIMIT = max(1000, sys.getrecursionlimit())
DEEP_RECURSION_LIMIT = 60_000
DEEP_STACK_BYTES = 256 * 1024 * 1024
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


def may_hold_events(data: Union[bytes, str], backward_names: Iterable[str] = ()) -> bool:
    """Whether the bytes (or text) mention `backward` or a configured extra backward method."""
    backward_names = [name for name in backward_names if "backward" not in name]
    if isinstance(data, str):
        return BACKWARD_TEXT.search(data) is not None or any(name in data for name in backward_names)
    return BACKWARD_BYTES.search(data) is not None or any(name.encode() in data for name in backward_names)


@dataclass
class ParsedSource:
    path: str
    module: cst.Module
    positions: Dict[cst.CSTNode, object]  # node -> libcst CodeRange

    def span(self, node: cst.CSTNode) -> Span:
        rng = self.positions[node]
        return Span(rng.start.line, rng.start.column + 1, rng.end.line, rng.end.column + 1)

    def text(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)


def tool_diagnostic(kind, path: str, message: str, line: int = 1, col: int = 1) -> Diagnostic:
    code, name = kind
    return Diagnostic(code, name, message, path, Span(line, col, line, col))


def decode(data: bytes, path: str) -> Union[Tuple[str, str], Diagnostic]:
    """(text, encoding) as Python would decode the file; a BOM gives 'utf-8-sig'."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding), encoding
    except (SyntaxError, LookupError, UnicodeDecodeError) as err:
        line = _decode_error_line(data, err)
        detail = err.msg if isinstance(err, SyntaxError) else str(err)
        return tool_diagnostic(DECODE_ERROR, path, f"cannot decode: {detail}", line, 1)


def read_bytes(path: str) -> bytes:
    """A file's bytes; OSError for anything but a regular file (reading a FIFO would block)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
                else "a socket" if stat.S_ISSOCK(mode) else "a directory" if stat.S_ISDIR(mode) else "special"
            raise OSError(0, f"not a regular file ({kind})")
        return handle.read()


T = TypeVar("T")


def with_deep_stack(fn: Callable[..., T], *args) -> T:
    """fn(*args) on a thread with a large stack and recursion limit: libcst and the analysis
    recurse once per nesting level, and code that CPython compiles can nest thousands deep."""
    if threading.current_thread().name == "zgcheck-deep":
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
        thread = threading.Thread(target=target, name="zgcheck-deep", daemon=True)
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


def screen(text: str, path: str) -> Optional[Diagnostic]:
    """ZG901 for source that CPython refuses to compile (syntax, NUL bytes, nesting past its
    limits), as `python file.py` would report it; None for source it accepts."""
    return _screen(text, path)[0]


def _screen(text: str, path: str) -> Tuple[Optional[Diagnostic], bool]:
    """screen(), and whether the source nests deeper than SHALLOW (compiled under a lower
    limit first, so a file that nests as usual is compiled once)."""
    source = text[1:] if text.startswith("\ufeff") else text
    if "\0" in source:  # CPython's message for it has no position
        line, col = _position(source, source.find("\0"))
        return tool_diagnostic(PARSE_ERROR, path, "cannot parse: source code cannot contain null bytes",
                               line, col), False
    old_limit, deep = sys.getrecursionlimit(), False
    try:
        for limit in (_stack_depth() + SHALLOW, CPYTHON_RECURSION_LIMIT):
            sys.setrecursionlimit(limit)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # SyntaxWarnings are the user's business
                    compile(source, path, "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
                return None, deep
            except RecursionError:
                if deep:
                    raise
                deep = True
    except SyntaxError as err:
        return tool_diagnostic(PARSE_ERROR, path, f"cannot parse: {err.msg}", err.lineno or 1, err.offset or 1), deep
    except (RecursionError, MemoryError, ValueError):
        return tool_diagnostic(PARSE_ERROR, path, "cannot parse: nested too deeply for CPython to compile it"), deep
    finally:
        sys.setrecursionlimit(old_limit)
    return None, deep


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _position(text: str, offset: int) -> Tuple[int, int]:
    before = text[:offset]
    return len(_NEWLINE.findall(before)) + 1, offset - max(before.rfind("\n"), before.rfind("\r"))


def parse(text: str, path: str) -> Union[ParsedSource, Diagnostic]:
    """Parse decoded source text; positions are over that text.

    Source CPython refuses is ZG901 before libcst sees it. libcst parses a copy of
    the text with the same lines: form feeds become spaces (a statement's indentation
    keeps only what follows its last form feed, as CPython counts it, and the line's
    positions are mapped back), long blank or comment runs become one string."""
    refused, deep = _screen(text, path)
    if refused is not None:
        return refused
    copy, shifts = _libcst_copy(text)
    if deep:
        copy = _without_deep_statements(copy)
    for attempt in range(LEFT_OUT + 1):
        try:
            module = cst.parse_module(copy)
            break
        except cst.ParserSyntaxError as err:
            # CPython compiles it, libcst cannot (5,000 adjacent string literals, new syntax):
            # a statement without a call cannot hold an event, so it may be left out.
            smaller = _without_statement_at(copy, err.raw_line) if attempt < LEFT_OUT else None
            if smaller is None:
                line, col, detail = _python_syntax_error(text, path) or (
                    err.raw_line, err.raw_column + 1, str(err.message).strip().splitlines()[0])
                return tool_diagnostic(PARSE_ERROR, path, f"cannot parse: {detail}", line, col)
            copy = smaller
        except RecursionError:
            return tool_diagnostic(PARSE_ERROR, path, "cannot parse: nesting too deep")
    try:
        return ParsedSource(path, module, _shifted(positions_of(module), shifts))
    except RecursionError:
        return tool_diagnostic(PARSE_ERROR, path, "cannot analyse: expressions nested too deeply")


def _libcst_copy(text: str) -> Tuple[str, Dict[int, Tuple[int, int]]]:
    """The text libcst parses, and {line: (columns dropped, line length)} for lines whose
    statement starts after a form feed (their positions are shifted back)."""
    shifts: Dict[int, Tuple[int, int]] = {}
    quiet = _QUIET_RUN.search(text) is not None
    if "\f" not in text and not quiet:
        return text, shifts
    lines = _LINE.findall(text)
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
    return "".join(lines), shifts


def _without_statement_at(copy: str, line: int) -> Optional[str]:
    """copy with the simple statement holding `line` replaced by `pass` (same lines), if that
    statement holds no call and has its lines to itself; else None."""
    tree, lines = _ast_of(copy), _LINE.findall(copy)
    found = [stmt for stmt in _simple_statements(tree) if stmt.lineno <= line <= stmt.end_lineno]
    if len(found) != 1 or _depth_and_call(found[0])[1] or not _blank_statement(lines, found[0]):
        return None
    return "".join(lines)


def _without_deep_statements(copy: str) -> str:
    """copy with every simple statement that nests deeper than SHALLOW and holds no call (a
    generated table, `1 + 1 + ...`) replaced by `pass`: libcst's cost grows with the square
    of the nesting, and no event can hide there."""
    lines = _LINE.findall(copy)
    for stmt in _simple_statements(_ast_of(copy)):
        depth, call = _depth_and_call(stmt)
        if depth > SHALLOW and not call:
            _blank_statement(lines, stmt)
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


def _blank_statement(lines: List[str], stmt: ast.stmt) -> bool:
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


def _shifted(positions: Dict[cst.CSTNode, CodeRange], shifts: Dict[int, Tuple[int, int]]):
    """Positions over the copy -> positions over the text, on lines that dropped columns."""
    if not shifts:
        return positions

    def move(pos: CodePosition) -> CodePosition:
        if pos.line not in shifts:
            return pos
        dropped, length = shifts[pos.line]
        return CodePosition(pos.line, min(pos.column + dropped, length))

    return {node: CodeRange(move(rng.start), move(rng.end)) for node, rng in positions.items()}


def positions_of(module: cst.Module) -> Dict[cst.CSTNode, CodeRange]:
    """libcst's syntactic positions, from one lean codegen pass (2-3x faster than the
    metadata machinery); falls back to PositionProvider if libcst's internals change."""
    out: Dict[cst.CSTNode, CodeRange] = {}
    try:
        module._codegen(_PositionState(module, out))
        return out
    except RecursionError:
        raise  # too deep for any codegen pass; the caller reports it
    except Exception:  # pragma: no cover - depends on the libcst version
        return dict(MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider))


class _PositionState(CodegenState):
    """The codegen state libcst's PositionProvider uses, minus per-token regexes."""

    def __init__(self, module: cst.Module, out: Dict[cst.CSTNode, CodeRange]):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line, self.column, self.out, self.stack = 1, 0, out, []

    def add_indent_tokens(self) -> None:
        self.tokens.extend(self.indent_tokens)
        for token in self.indent_tokens:
            self._advance(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self._advance(value)

    def _advance(self, value: str) -> None:
        if "\n" not in value and "\r" not in value:
            self.column += len(value)
            return
        segments = _NEWLINE.split(value)
        self.line += len(segments) - 1
        self.column = len(segments[-1])

    def before_codegen(self, node: cst.CSTNode) -> None:
        self.stack.append(CodePosition(self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self.stack.pop()
        if node not in self.out:
            self.out[node] = CodeRange(start, CodePosition(self.line, self.column))

    @contextmanager
    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        start = CodePosition(self.line, self.column)
        try:
            yield
        finally:
            end = CodePosition(self.line, self.column)
            start = self.out[start_node].start if start_node is not None else start
            end = self.out[end_node].end if end_node is not None else end
            self.out[node] = CodeRange(start, end)


def _python_syntax_error(text: str, path: str):
    """CPython's own message and position: clearer than libcst's for most errors."""
    try:
        compile(text.lstrip("\ufeff"), path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as err:
        return (err.lineno or 1, err.offset or 1, err.msg)
    except (ValueError, RecursionError, MemoryError):
        return None
    return None  # libcst rejects what CPython accepts: keep libcst's words


def _decode_error_line(data, err) -> int:
    if isinstance(data, bytes):
        if not isinstance(err, UnicodeDecodeError):
            try:
                encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            except SyntaxError:  # undecodable bytes in the first two lines
                encoding = "utf-8"
            try:
                data.decode(encoding)
            except UnicodeDecodeError as found:
                err = found
            except LookupError:
                return 1
        if isinstance(err, UnicodeDecodeError):
            return data.count(b"\n", 0, err.start) + 1
    return 1


def decode_for_display(data: bytes) -> Optional[str]:
    """Best-effort text for showing source lines in reports."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return data.decode("utf-8", errors="replace")
