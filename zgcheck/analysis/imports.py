"""Where an import points, on bytes and paths only (no analysis state).

A loop that calls `train_one_epoch` imported from `.engine` is analysed through
that function's body. Modules are found the way Python would for code run from
its own tree: relative imports from the importing package, absolute ones from
the importing file's directory and from the root of its package hierarchy.
Nothing outside the project (site-packages) is ever parsed, and a target file is
only parsed when its bytes define the imported name *and* can hold an event.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import libcst as cst

from ..recognise import Tables, dotted, gate

MAX_MODULE_BYTES = 1_000_000


_IMPORT_LINE = re.compile(rb"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+\(?([\w, \t]+)|import[ \t]+([\w., \t]+))",
                          re.M)


def imports_project_helper(path: str, data: bytes, project: "Files") -> bool:
    """On bytes only: does this file import a name that another project file defines
    next to an event? Such a file is worth parsing though it holds no backward."""
    for match in _IMPORT_LINE.finditer(data):
        dots, module, names, plain = match.groups()
        if plain is not None:
            # `import pkg` names no helper: a module mentioning an event anywhere (even in a
            # doctest, as torch/__init__.py does) would send every importer to the parser.
            continue
        level = len(dots)
        parts = tuple(p for p in module.decode(errors="replace").split(".") if p)
        target = project.module_file(path, level, parts)
        for item in names.decode(errors="replace").split(","):
            name = item.split(" as ")[0].strip()
            if not name:
                continue
            if target and project.may_define(target, name):
                return True

    return False


def _block(data: bytes, name: str) -> bytes:
    """The source of every `def name` / `class name` in data: its line and the deeper-indented
    lines after it (a text approximation, good enough for a gate)."""
    out = []
    for match in re.finditer(rb"^([ \t]*)(?:async[ \t]+)?(?:def|class)[ \t]+" + re.escape(name.encode()) + rb"\b",
                             data, re.M):
        indent = len(match.group(1))
        start = data.find(b"\n", match.end()) + 1 or len(data)
        end = len(data)
        for line in re.finditer(rb"^([ \t]*)([^\s#])", data[start:], re.M):
            if len(line.group(1)) <= indent and line.group(2) not in b")]}":
                end = start + line.start()
                break
        out.append(data[match.start():end])
    return b"".join(out)


class Import:
    """`from <level dots><parts> import <name>` or `import <parts>`."""

    __slots__ = ("level", "parts", "name")

    def __init__(self, level: int, parts: Tuple[str, ...], name: Optional[str]):
        self.level, self.parts, self.name = level, parts, name


def collect_imports(body: Sequence[cst.CSTNode]) -> Dict[str, Import]:
    """Local name -> what it imports, for a module's top-level import statements."""
    out: Dict[str, Import] = {}
    for stmt in body:
        if isinstance(stmt, (cst.If, cst.Try)):
            out.update(collect_imports(stmt.body.body))
            continue
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                parts = tuple((dotted(small.module) or "").split(".")) if small.module else ()
                parts = tuple(p for p in parts if p)
                for alias in small.names:
                    name = dotted(alias.name)
                    local = dotted(alias.asname.name) if alias.asname else name
                    if name and local:
                        out[local] = Import(len(small.relative), parts, name)
            elif isinstance(small, cst.Import):
                for alias in small.names:
                    name = dotted(alias.name) or ""
                    if alias.asname:
                        out[dotted(alias.asname.name) or name] = Import(0, tuple(name.split(".")), None)
                    elif name:
                        out[name.split(".")[0]] = Import(0, (name.split(".")[0],), None)
    return out


def _stamp(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class Files:
    """The project's files as the import resolver sees them: bytes (read once), where
    a module lives, and whether a file defines a name next to an event."""

    def __init__(self, tables: Tables):
        self.event = gate(tables).event
        self._defines: Dict[Tuple[str, str], bool] = {}
        self.bytes: Dict[str, Optional[bytes]] = {}
        self._stamps: Dict[str, Optional[Tuple[int, int]]] = {}
        # Every path import resolution tried, and whether it was a file: a module created
        # later where one was missing can change where an import points (caches check these).
        self.probes: Dict[str, bool] = {}

    def read(self, path: str) -> Optional[bytes]:
        if path not in self.bytes:
            self._stamps[path] = _stamp(path)
            try:
                if os.path.getsize(path) > MAX_MODULE_BYTES:
                    raise OSError("too large")
                with open(path, "rb") as handle:
                    self.bytes[path] = handle.read()
            except OSError:
                self.bytes[path] = None
        return self.bytes[path]

    def unchanged(self) -> bool:
        """Whether every file read so far is still as it was (mtime and size)."""
        return all(_stamp(path) == stamp for path, stamp in self._stamps.items())

    def digests(self) -> Dict[str, str]:
        """sha256 of every file read so far, by absolute path."""
        return {os.path.abspath(p): hashlib.sha256(data).hexdigest() for p, data in self.bytes.items()
                if data is not None}

    def module_file(self, importer: str, level: int, parts: Tuple[str, ...]) -> Optional[str]:
        for base in self._search_dirs(importer, level):
            candidate = os.path.join(base, *parts) if parts else base
            for path in (candidate + ".py", os.path.join(candidate, "__init__.py")):
                if parts and "site-packages" not in path and self._isfile(path):
                    return path
            if not parts and self._isfile(os.path.join(base, "__init__.py")):
                return os.path.join(base, "__init__.py")
        return None

    def _isfile(self, path: str) -> bool:
        found = self.probes[path] = os.path.isfile(path)
        return found

    def _search_dirs(self, importer: str, level: int) -> List[str]:
        here = os.path.dirname(os.path.abspath(importer))
        if level > 0:
            for _ in range(level - 1):
                here = os.path.dirname(here)
            return [here]
        dirs = [here]
        top = here
        while self._isfile(os.path.join(top, "__init__.py")):
            top = os.path.dirname(top)
        if top != here:
            dirs.append(top)
        return dirs

    def target(self, importer: str, imports: Dict[str, Import], name: str) -> Optional[Tuple[str, str]]:
        """(file, name in that file) for a called name that an import brings in."""
        root, _, rest = name.partition(".")
        imp = imports.get(root)
        if imp is None:
            return None
        if imp.name is None:  # import pkg.mod [as m]; m.f() or pkg.mod.f()
            pieces = rest.split(".") if rest else []
            if not pieces:
                return None
            path = self.module_file(importer, 0, imp.parts + tuple(pieces[:-1]))
            return (path, pieces[-1]) if path else None
        if rest:  # from pkg import mod; mod.f()
            pieces = rest.split(".")
            path = self.module_file(importer, imp.level, imp.parts + (imp.name,) + tuple(pieces[:-1]))
            return (path, pieces[-1]) if path else None
        path = self.module_file(importer, imp.level, imp.parts)
        return (path, imp.name) if path else None

    def may_define(self, path: str, name: str) -> bool:
        """Cheap, on bytes: does the file define `name` with an event shape in its body?"""
        key = (path, name)
        if key not in self._defines:
            data = self.read(path)
            self._defines[key] = data is not None and self.event.search(_block(data, name)) is not None
        return self._defines[key]
