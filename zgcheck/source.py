"""Bytes -> parsed libcst module with positions; a file we cannot read is a Diagnostic."""

from __future__ import annotations

import ast
from contextlib import contextmanager
import io
import re
import tokenize
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst._position import CodePosition, CodeRange
from libcst.metadata import MetadataWrapper, PositionProvider

from .codes import CODES, DECODE_ERROR, FIX_ERROR, INTERNAL_ERROR, PARSE_ERROR, READ_ERROR  # noqa: F401
from .types import Diagnostic, Span


_NEWLINE = re.compile(r"\r\n?|\n")


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


def tool_diagnostic(code: str, path: str, message: str, line: int = 1, col: int = 1) -> Diagnostic:
    return Diagnostic(code, CODES[code].name, message, path, Span(line, col, line, col))


def decode(data: bytes, path: str) -> Union[Tuple[str, str], Diagnostic]:
    """(text, encoding) as Python would decode the file; a BOM gives 'utf-8-sig'."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding), encoding
    except (SyntaxError, LookupError, UnicodeDecodeError) as err:
        line = _decode_error_line(data, err)
        detail = err.msg if isinstance(err, SyntaxError) else str(err)
        return tool_diagnostic(DECODE_ERROR, path, f"cannot decode: {detail}", line, 1)


def parse(text: str, path: str) -> Union[ParsedSource, Diagnostic]:
    """Parse decoded source text; positions are over that text."""
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as err:
        line, col, detail = _python_syntax_error(text, path) or (
            err.raw_line, err.raw_column + 1, str(err.message).strip().splitlines()[0])
        return tool_diagnostic(PARSE_ERROR, path, f"cannot parse: {detail}", line, col)
    except RecursionError:
        return tool_diagnostic(PARSE_ERROR, path, "cannot parse: nesting too deep")
    try:
        return ParsedSource(path, module, positions_of(module))
    except RecursionError:
        return tool_diagnostic(PARSE_ERROR, path, "cannot analyse: expressions nested too deeply")


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
