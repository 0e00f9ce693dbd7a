"""Jupyter notebooks: code cells -> one virtual Python module, and back.

The code cells are concatenated in order into one module, so a loop in one
cell sees the optimizer built in another. IPython syntax is masked line for
line (line numbers stay identical): a line magic, shell escape or help line
becomes `pass` at the same indentation, its backslash continuations become
comments, and a cell magic masks the whole cell, except the magics that run
their cell as Python (`%%time`, `%%capture`, ...), which mask only their
first line. Cells are numbered as Ruff does: 1-based among *all* cells,
markdown included, so `cell 3` is the third cell a reader sees.

For the fix engine: `virtual_source` gives the module and a `NotebookMap`;
`apply_fixed_source` writes a fixed module back into the notebook's JSON,
replacing only the `source` values of the cells that changed, so every other
byte (layout, key order, escapes, outputs, trailing newline) stays as it was.
"""

from __future__ import annotations

import ast
import difflib
import functools
import io
import json
import re
import tokenize
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .notebook_json import LayoutError, encode_source, list_items, source_spans, split_lines, uses_ascii_escapes
from .codes import CODES, INVALID_NOTEBOOK, PARSE_ERROR
from .types import Diagnostic, Edit, Related, Span

MASK = "pass  # masked IPython magic"
MASK_CONTINUATION = "# masked IPython magic"
# Cell magics whose body is Python that runs as usual.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "python", "python3",
                                "memit", "mprun"})
ASSIGNED_MAGIC = re.compile(r"^\s*[\w.\[\], ()*]+\s*=\s*[%!]")
HELP = re.compile(r"^\s*(?:\?{1,2}[\w.%]*|[\w.\[\]()]+\?{1,2})\s*$")


class NotebookError(Exception):
    """The file is not a notebook we can read: ZG904 at (line, col)."""

    def __init__(self, message: str, line: int = 1, col: int = 1):
        super().__init__(message)
        self.line = line
        self.col = col


@dataclass(frozen=True)
class CodeCell:
    index: int  # 1-based among all cells
    first_line: int  # its first line in the virtual module (1-based)
    lines: Tuple[str, ...]  # the cell's own lines, endings kept
    masked: Tuple[int, ...]  # 0-based numbers of the lines that were masked
    ends_with_newline: bool
    virtual: Tuple[str, ...] = ()  # the lines as they stand in the virtual module


@dataclass(frozen=True)
class NotebookMap:
    """Where each line of the virtual module comes from."""

    cells: Tuple[CodeCell, ...]
    broken: Tuple[Tuple[int, int, int, str], ...] = ()  # (cell, line, col, why) of cells that do not parse

    @property
    def line_count(self) -> int:
        return sum(len(c.lines) for c in self.cells)

    def cell_of(self, line: int) -> Optional[CodeCell]:
        """The code cell holding virtual line `line` (clamped to the module)."""
        found = None
        for cell in self.cells:
            if not cell.lines:
                continue
            if found is not None and cell.first_line > line:
                break
            found = cell
        return found

    def locate(self, line: int) -> Tuple[int, int]:
        """(cell index, line within the cell) of a virtual line."""
        cell = self.cell_of(line)
        if cell is None:
            return 1, 1
        within = min(max(line - cell.first_line + 1, 1), len(cell.lines))
        return cell.index, within


# --- reading ---------------------------------------------------------------

def _load(text: str) -> dict:
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as err:
        raise NotebookError(f"invalid notebook: not JSON: {err.msg}", err.lineno, err.colno) from None
    except RecursionError:
        raise NotebookError("invalid notebook: nesting too deep") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError("invalid notebook: no `cells` list (nbformat 4 expected)")
    return data


def _cell_text(cell, number: int) -> Optional[str]:
    if not isinstance(cell, dict):
        raise NotebookError(f"invalid notebook: cell {number} is not an object")
    if cell.get("cell_type") != "code":
        return None
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    if isinstance(source, str):
        return source
    raise NotebookError(f"invalid notebook: cell {number} has a `source` that is neither text nor a list of lines")


def _is_python(data: dict) -> bool:
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return True
    info = metadata.get("language_info")
    if isinstance(info, dict) and isinstance(info.get("name"), str):
        return info["name"].lower() in ("python", "ipython", "python3")
    kernel = metadata.get("kernelspec")
    if isinstance(kernel, dict) and isinstance(kernel.get("language"), str):
        return kernel["language"].lower() in ("python", "ipython", "python3")
    return True


def code_cells(text: str) -> List[Tuple[int, str]]:
    """(index among all cells, source text) of each code cell; raises NotebookError."""
    data = _load(text)
    if not _is_python(data):
        return []
    out = []
    for number, cell in enumerate(data["cells"], 1):
        source = _cell_text(cell, number)
        if source is not None:
            out.append((number, source))
    return out


def virtual_source(notebook_text: str) -> Tuple[str, NotebookMap]:
    """The code cells as one Python module (magics masked) and the map back to cells."""
    parts: List[str] = []
    cells: List[CodeCell] = []
    broken: List[Tuple[int, int, int, str]] = []
    line = 1
    for index, source in code_cells(notebook_text):
        lines = split_lines(source)
        masked_lines, masked = _mask(lines)
        error = _syntax_error("".join(masked_lines))
        if error is not None:  # Jupyter compiles each cell alone: leave this one out, keep the rest
            broken.append((index, *error))
            masked_lines, masked = [MASK_CONTINUATION + _ending(text) for text in lines], list(range(len(lines)))
        ends = not lines or lines[-1].endswith(("\n", "\r"))
        if masked_lines and not ends:
            masked_lines[-1] += "\n"
        cells.append(CodeCell(index, line, tuple(lines), tuple(masked), ends, tuple(masked_lines)))
        parts.extend(masked_lines)
        line += len(lines)
    return "".join(parts), NotebookMap(tuple(cells), tuple(broken))


def _syntax_error(text: str) -> Optional[Tuple[int, int, str]]:
    """(line, col, why) when one cell's (masked) code is not Python, else None."""
    try:
        compile(text, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as err:
        return err.lineno or 1, err.offset or 1, err.msg
    except (ValueError, RecursionError, MemoryError) as err:
        return 1, 1, str(err) or type(err).__name__
    return None


def _mask(lines: Sequence[str]) -> Tuple[List[str], List[int]]:
    """The lines with IPython syntax masked, and the 0-based numbers of those masked."""
    out = list(lines)
    masked: List[int] = []
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        words = lines[first].strip()[2:].split(None, 1)
        if not words or words[0] not in PYTHON_CELL_MAGICS:  # %%bash, %%writefile...: not Python
            return [MASK_CONTINUATION + _ending(line) for line in lines], list(range(len(lines)))
        out[first] = _indent(lines[first]) + MASK + _ending(lines[first])
        masked.append(first)
    candidates: List[int] = []
    i = 0
    while i < len(lines):
        if i not in masked and _is_magic(lines[i]):
            out[i] = _indent(lines[i]) + MASK + _ending(lines[i])
            candidates.append(i)
            while lines[i].rstrip("\r\n").endswith("\\") and i + 1 < len(lines):
                i += 1
                out[i] = MASK_CONTINUATION + _ending(lines[i])
                candidates.append(i)
        i += 1
    # A "magic" line inside a multi-line string is string content: put it back.
    inside = _lines_inside_strings("".join(out))
    for i in candidates:
        if i in inside:
            out[i] = lines[i]
        else:
            masked.append(i)
    return out, sorted(masked)


def _is_magic(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    return (stripped[0] in "%!" or stripped.startswith("?") or bool(HELP.match(line))
            or bool(ASSIGNED_MAGIC.match(line)))


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


def _ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")):]


def _lines_inside_strings(text: str) -> set:
    """0-based numbers of lines that lie wholly inside a multi-line string token."""
    inside = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0], tok.end[0]))  # 1-based start+1 .. end == 0-based start .. end-1
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return inside


def cell_sources(notebook_text: str) -> Dict[int, str]:
    """Each code cell's own text by cell index (for showing lines); {} if unreadable."""
    try:
        return dict(code_cells(notebook_text))
    except NotebookError:
        return {}


@dataclass(frozen=True)
class NotebookSource:
    """A notebook as the reports need it: its raw JSON text and each code cell's text."""

    text: str
    cells: Dict[int, str]

    @classmethod
    def read(cls, text: str) -> "NotebookSource":
        return cls(text, cell_sources(text))

    @functools.cached_property
    def _spans(self) -> Dict[int, Tuple[int, int]]:
        try:
            return source_spans(self.text)
        except (ValueError, IndexError):
            return {}

    def json_line(self, cell: int, line: int) -> Optional[int]:
        """The line of the .ipynb file where a cell's line is written (for SARIF, GitHub)."""
        if cell not in self._spans:
            return None
        start, _ = self._spans[cell]
        if self.text[start] == "[":
            seen = 0
            for item_start, item_end in list_items(self.text, start):
                seen += max(1, len(split_lines(json.loads(self.text[item_start:item_end]))))
                start = item_start
                if seen >= line:
                    break
        return self.text.count("\n", 0, start) + 1


# --- diagnostics -----------------------------------------------------------

def map_diagnostic(d: Diagnostic, mapping: NotebookMap, path: Optional[str] = None) -> Diagnostic:
    """Virtual-module positions -> cell and cell-relative positions.

    Given the notebook's path, a diagnostic reported in another file (a helper
    imported from it) is returned as it is.
    """
    if path is not None and d.path != path:
        return d
    cell, start = mapping.locate(d.span.start_line)
    end_cell, end = mapping.locate(d.span.end_line)
    end_col = d.span.end_col
    if end_cell != cell:  # a span never crosses cells in practice; clamp to the start line
        end, end_col = start, d.span.start_col
    span = Span(start, d.span.start_col, end, end_col)
    related = tuple(_map_related(r, mapping, d.path) for r in d.related)
    fix = d.fix
    if fix is not None:
        edits = []
        for e in fix.edits:
            start_pos = _edit_position(mapping, cell, e.start_line, e.start_col)
            end_pos = _edit_position(mapping, cell, e.end_line, e.end_col)
            if start_pos is None or end_pos is None:
                fix = None  # not expressible in one cell's coordinates; --fix still applies it
                break
            edits.append(Edit(start_pos, e.start_col, end_pos, e.end_col, e.content))
        else:
            fix = replace(fix, edits=tuple(edits))
    message = LINE_REFERENCE.sub(lambda m: _cell_line(mapping, int(m.group(1)), cell), d.message)
    return replace(d, message=message, span=span, related=related, fix=fix, cell=cell)


# Messages name other lines as "(line N)"; in a notebook N must be a cell's line.
LINE_REFERENCE = re.compile(r"\(line (\d+)\)")


def _cell_line(mapping: NotebookMap, line: int, cell: int) -> str:
    found, within = mapping.locate(line)
    return f"(line {within})" if found == cell else f"(cell {found}, line {within})"


def _edit_position(mapping: NotebookMap, cell: int, line: int, col: int) -> Optional[int]:
    """The cell-relative line of an edit position in `cell`; None if it lies in another cell."""
    holder = mapping.cell_of(line)
    if holder is not None and holder.index == cell and holder.first_line <= line < holder.first_line + len(holder.lines):
        return line - holder.first_line + 1
    previous = mapping.cell_of(line - 1)
    if (col == 1 and previous is not None and previous.index == cell
            and line == previous.first_line + len(previous.lines)):
        return len(previous.lines) + 1  # just past the cell's last line: an insertion at its end
    return None


def _map_related(r: Related, mapping: NotebookMap, path: str) -> Related:
    if r.path != path:
        return r
    cell, start = mapping.locate(r.span.start_line)
    end_cell, end = mapping.locate(r.span.end_line)
    if end_cell != cell:
        end = start
    return replace(r, span=Span(start, r.span.start_col, end, r.span.end_col), cell=cell)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise NotebookError(f"invalid notebook: not UTF-8: {err.reason}",
                            data.count(b"\n", 0, err.start) + 1) from None


def check(data: bytes, path: str, check_text: Callable[[str, str], List[Diagnostic]]) -> List[Diagnostic]:
    """Diagnostics of a notebook's bytes; check_text checks the virtual module."""
    try:
        source, mapping = virtual_source(decode(data))
    except NotebookError as err:
        return [Diagnostic(INVALID_NOTEBOOK, CODES[INVALID_NOTEBOOK].name, str(err), path,
                           Span(err.line, err.col, err.line, err.col))]
    # A finding in a helper imported from another file is reported there, with its own lines.
    return parse_errors(mapping, path) + [map_diagnostic(d, mapping, path) for d in check_text(source, path)]


def parse_errors(mapping: NotebookMap, path: str) -> List[Diagnostic]:
    """ZG901 for each cell left out of the virtual module because it does not parse."""
    return [Diagnostic(PARSE_ERROR, CODES[PARSE_ERROR].name, f"cannot parse: {why}", path,
                       Span(line, col, line, col), cell=cell) for cell, line, col, why in mapping.broken]


# --- writing back ----------------------------------------------------------

def fixed_cells(fixed_virtual_source: str, mapping: NotebookMap) -> Dict[int, str]:
    """Each code cell's text after the fix, magics restored (cell index -> text)."""
    original = [line for cell in mapping.cells for line in cell.virtual]
    owner = [cell for cell in mapping.cells for _ in cell.lines]
    fixed = split_lines(fixed_virtual_source)
    # Lines of the fixed module, attributed to cells by aligning them with the original.
    per_cell: Dict[int, List[str]] = {cell.index: [] for cell in mapping.cells}
    matcher = difflib.SequenceMatcher(None, original, fixed, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                cell = owner[i1 + k]
                within = i1 + k - (cell.first_line - 1)
                line = fixed[j1 + k]
                if within in cell.masked:  # put the magic back, keeping the module's line ending
                    line = cell.lines[within].rstrip("\r\n") + _ending(line)
                per_cell[cell.index].append(line)
            continue
        for i in range(i1, i2):
            cell = owner[i]
            if (i - (cell.first_line - 1)) in cell.masked:
                raise NotebookError(f"a fix would change an IPython magic line in cell {cell.index}")
        if j2 > j1:
            # Inserted lines join the cell of the line before them (a statement added
            # after the last statement of a cell stays in that cell).
            anchor = i1 if tag == "replace" else i1 - 1
            if anchor < 0:
                anchor = 0
            if not owner:
                raise NotebookError("a fix added code to a notebook without code cells")
            per_cell[owner[min(anchor, len(owner) - 1)].index].extend(fixed[j1:j2])
    out = {}
    for cell in mapping.cells:
        text = "".join(per_cell[cell.index])
        if not cell.ends_with_newline:
            text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith(("\n", "\r")) else text
        out[cell.index] = text
    return out


def apply_fixed_source(notebook_text: str, fixed_virtual_source: str, mapping: NotebookMap) -> str:
    """The notebook with each changed code cell's `source` replaced, every other byte kept."""
    new_cells = fixed_cells(fixed_virtual_source, mapping)
    changed = {cell.index: new_cells[cell.index] for cell in mapping.cells
               if new_cells[cell.index] != "".join(cell.lines)}
    if not changed:
        return notebook_text
    try:
        spans = source_spans(notebook_text)
    except (LayoutError, ValueError, IndexError) as err:
        raise NotebookError(f"invalid notebook: {err}") from None
    ascii_only = uses_ascii_escapes(notebook_text)
    out = []
    last = 0
    for index in sorted(changed):
        start, end = spans[index]
        out.append(notebook_text[last:start])
        out.append(encode_source(notebook_text, start, end, changed[index], ascii_only))
        last = end
    out.append(notebook_text[last:])
    return "".join(out)
