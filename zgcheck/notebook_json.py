"""A notebook's JSON text, edited in place: find each cell's `source` value and replace it.

Only the replaced values change; the writer's layout (indent, key order,
escapes, line endings, trailing newline) is read off the file and reused.
"""

from __future__ import annotations

import io
import json
import re
from json.decoder import scanstring
from typing import Dict, List, Tuple


class LayoutError(ValueError):
    """The text is not the JSON object we expected."""


def split_lines(text: str) -> List[str]:
    """Lines with their endings, split where Python splits (\\n, \\r\\n, \\r)."""
    return io.StringIO(text, newline="").readlines()


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def source_spans(text: str) -> Dict[int, Tuple[int, int]]:
    """cell index (1-based, all cells) -> (start, end) offsets of its `source` value in text."""
    spans: Dict[int, Tuple[int, int]] = {}
    i = _skip(text, 1 if text.startswith("\ufeff") else 0)
    for key, value_start in _members(text, i):
        if key != "cells":
            continue
        j = _expect(text, value_start, "[")
        number = 0
        while True:
            j = _skip(text, j)
            if text[j] == "]":
                break
            number += 1
            if text[j] == "{":
                for cell_key, cell_value in _members(text, j):
                    if cell_key == "source":
                        spans[number] = (cell_value, _DECODER.raw_decode(text, cell_value)[1])
            j = _skip(text, _DECODER.raw_decode(text, j)[1])
            if text[j] == ",":
                j += 1
    return spans


def _members(text: str, i: int):
    """(key, offset of its value) for each member of the object starting at text[i]."""
    i = _expect(text, i, "{")
    i = _skip(text, i)
    if text[i] == "}":
        return
    while True:
        i = _expect(text, _skip(text, i), '"')
        key, i = scanstring(text, i)
        i = _skip(text, _expect(text, _skip(text, i), ":"))
        yield key, i
        i = _skip(text, _DECODER.raw_decode(text, i)[1])
        if text[i] == "}":
            return
        i = _expect(text, i, ",")


def _skip(text: str, i: int) -> int:
    return _WS.match(text, i).end()


def _expect(text: str, i: int, char: str) -> int:
    if text[i] != char:
        raise LayoutError(f"expected {char!r} at offset {i}")
    return i + 1


def uses_ascii_escapes(text: str) -> bool:
    """Whether the writer escaped non-ASCII characters (json.dump's ensure_ascii=True)."""
    if any(ord(ch) > 127 for ch in text.lstrip("\ufeff")):
        return False
    return re.search(r"(?<!\\)\\u(?!00[0-7])[0-9a-fA-F]{4}", text) is not None


def encode_source(text: str, start: int, end: int, new: str, ascii_only: bool) -> str:
    dump = lambda s: json.dumps(s, ensure_ascii=ascii_only)  # noqa: E731
    if text[start] == '"':
        return dump(new)
    lines = split_lines(new)
    if not lines:
        return "[]"
    items = [m for m in list_items(text, start)]
    newline = "\r\n" if "\r\n" in text else "\n"
    if items:
        open_ws = text[start + 1:items[0][0]]
        close_ws = text[items[-1][1]:end - 1]
        sep = text[items[0][1]:items[1][0]] if len(items) > 1 else "," + open_ws
    else:
        key_indent = _line_indent(text, start)
        unit = _indent_unit(text)
        open_ws = newline + key_indent + unit
        close_ws = newline + key_indent
        sep = "," + open_ws
    return "[" + open_ws + sep.join(dump(line) for line in lines) + close_ws + "]"


def list_items(text: str, start: int) -> List[Tuple[int, int]]:
    items = []
    i = _skip(text, start + 1)
    while text[i] != "]":
        item_end = _DECODER.raw_decode(text, i)[1]
        items.append((i, item_end))
        i = _skip(text, item_end)
        if text[i] == ",":
            i = _skip(text, i + 1)
    return items


def _line_indent(text: str, offset: int) -> str:
    line_start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    line = text[line_start:offset]
    return line[:len(line) - len(line.lstrip(" \t"))]


def _indent_unit(text: str) -> str:
    match = re.search(r"\{[ \t]*\r?\n([ \t]+)\"", text)
    return match.group(1) if match else " "
