"""Bytes -> parsed libcst module with positions; a file we cannot read is a Diagnostic."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .types import Diagnostic, Span

PARSE_ERROR = ("ZG901", "syntax-error")
DECODE_ERROR = ("ZG902", "undecodable-file")
READ_ERROR = ("ZG903", "unreadable-file")
FIX_ERROR = ("ZG905", "fix-not-applied")
INTERNAL_ERROR = ("ZG999", "internal-error")

# What a backward call looks like in bytes: `.backward(`, `manual_backward(`,
# `autograd.backward(` and `from torch.autograd import backward`. A file
# without it cannot produce a finding on its own, so it is never parsed.
BACKWARD_BYTES = re.compile(rb"backward")


def may_hold_events(data: bytes) -> bool:
    return BACKWARD_BYTES.search(data) is not None


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
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    return ParsedSource(path, module, positions)


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
