"""A file's bytes and its text, as Python would read them; what cannot be read or
decoded is a Diagnostic. Imports no parser: a run that parses nothing needs only this."""

from __future__ import annotations

import io
import os
import stat
import tokenize
from typing import Optional, Tuple, Union

from .codes import CODES, DECODE_ERROR
from .types import Diagnostic, Span


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


def decode_for_display(data: bytes) -> Optional[str]:
    """Best-effort text for showing source lines in reports."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return data.decode("utf-8", errors="replace")


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
