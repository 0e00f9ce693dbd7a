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
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Set, Tuple


from .. import screen
from ..recognise import Tables, gate

MAX_MODULE_BYTES = 1_000_000
HELD_BYTES = 8_000_000
# Per process: (path, stamp, backward pattern) -> whether that file can reach a backward call.
_REACHES: Dict[tuple, Tuple[bool, Dict[str, bool]]] = {}  # -> (answer, the paths it probed)
_REACHES_LIMIT = 10_000
_HEADER = re.compile(rb"(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)")
_CODE_LINE = re.compile(rb"^([ \t]*)([^\s#])", re.M)
_CALLED = re.compile(rb"(?:(?<![\w.])|(?<=\bself\.))([A-Za-z_]\w*)\s*\(")
_DEF_NAME = re.compile(rb"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", re.M)


_IMPORT_LINE = re.compile(rb"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+\(?([\w, \t]+)|import[ \t]+([\w., \t]+))",
                          re.M)


def imports_project_helper(path: str, data: bytes, project: "Files") -> bool:
    """On bytes: does this file import a name that another project file defines next to an
    event, from a file that can reach a backward call? Such a file is worth parsing though
    it holds no backward itself; without one reachable, nothing it calls can find anything."""
    for target, names in _from_imports(path, data, project):
        if any(project.may_define(target, name) and project.reaches_backward(target, name) for name, _ in names):
            return True
    return False


def _from_imports(path: str, data: bytes, project: "Files") -> Iterator[Tuple[str, List[Tuple[str, bytes]]]]:
    """(project file, [(name, local name)] imported from it) of each `from ... import ...` line."""
    for match in _IMPORT_LINE.finditer(data):
        dots, module, names, plain = match.groups()
        if plain is not None:
            # `import pkg` names no helper: a module mentioning an event anywhere (even in a
            # doctest, as torch/__init__.py does) would send every importer to the parser.
            continue
        parts = tuple(p for p in module.decode(errors="replace").split(".") if p)
        target = project.module_file(path, len(dots), parts)
        if target:
            pairs = [(item.split(b" as ")[0].strip(), item.split(b" as ")[-1].strip()) for item in names.split(b",")]
            yield target, [(name.decode(errors="replace"), local) for name, local in pairs if name]


def _blocks(data: bytes) -> Dict[bytes, List[Tuple[int, int]]]:
    """name -> spans of its `def` / `class` blocks: the header line and the deeper-indented
    lines after it (a text approximation, good enough for a gate), for every header at once."""
    out: Dict[bytes, List[Tuple[int, int]]] = {}
    open_: List[Tuple[int, bytes, int]] = []  # (indent, name, start) of blocks not yet closed
    for line in _CODE_LINE.finditer(data):
        indent = len(line.group(1))
        if line.group(2) not in b")]}":
            while open_ and indent <= open_[-1][0]:
                depth, name, start = open_.pop()
                out.setdefault(name, []).append((start, line.start()))
        header = _HEADER.match(data, line.start(2))
        if header is not None:
            open_.append((indent, header.group(1), line.start()))
    for _, name, start in open_:
        out.setdefault(name, []).append((start, len(data)))
    return out


class Import:
    """`from <level dots><parts> import <name>` or `import <parts>`."""

    __slots__ = ("level", "parts", "name")

    def __init__(self, level: int, parts: Tuple[str, ...], name: Optional[str]):
        self.level, self.parts, self.name = level, parts, name


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
        self.backward = gate(tables).backward
        self.backward_attrs = tables.backward_attrs
        self._block_index: Dict[str, Dict[bytes, List[Tuple[int, int]]]] = {}
        self._imported: Dict[str, Dict[bytes, Tuple[str, str]]] = {}  # path -> local -> (file, name)
        self._module_files: Dict[tuple, Tuple[Optional[str], Dict[str, bool]]] = {}
        self._defines: Dict[Tuple[str, str], bool] = {}
        # The bytes of the files read last (up to HELD_BYTES; a worker's Files reads every helper
        # of a tree): an older one is read again when asked. Digests and stamps stay for all.
        self._bytes: "OrderedDict[str, Optional[bytes]]" = OrderedDict()
        self._held = 0
        self._digests: Dict[str, Optional[str]] = {}
        self._stamps: Dict[str, Optional[Tuple[int, int]]] = {}
        # Every path import resolution tried, and whether it was a file: a module created
        # later where one was missing can change where an import points (caches check these).
        self.probes: Dict[str, bool] = {}

    def read(self, path: str) -> Optional[bytes]:
        if path in self._bytes:
            self._bytes.move_to_end(path)
            return self._bytes[path]
        stamp = _stamp(path)
        if path in self._stamps and self._stamps[path] != stamp:  # changed since its first read
            self._forget(path)
        self._stamps[path] = stamp
        try:
            if os.path.getsize(path) > MAX_MODULE_BYTES:
                raise OSError("too large")
            with open(path, "rb") as handle:
                data: Optional[bytes] = handle.read()
        except OSError:
            data = None
        self._digests[path] = hashlib.sha256(data).hexdigest() if data is not None else None
        self._bytes[path] = data
        self._held += len(data or b"")
        while self._held > HELD_BYTES and len(self._bytes) > 1:
            _, dropped = self._bytes.popitem(last=False)
            self._held -= len(dropped or b"")
        return data

    def _forget(self, path: str) -> None:
        """What was derived from a file's earlier bytes."""
        self._block_index.pop(path, None)
        self._imported.pop(path, None)
        for key in [key for key in self._defines if key[0] == path]:
            del self._defines[key]

    def unchanged(self) -> bool:
        """Whether every file read so far is still as it was (mtime and size)."""
        return all(_stamp(path) == stamp for path, stamp in self._stamps.items())

    def digests(self) -> Dict[str, str]:
        """sha256 of every file read so far, by absolute path."""
        return {os.path.abspath(p): digest for p, digest in self._digests.items() if digest is not None}

    def module_file(self, importer: str, level: int, parts: Tuple[str, ...]) -> Optional[str]:
        key = (os.path.dirname(os.path.abspath(importer)), level, parts)
        if key not in self._module_files:  # files importing from one directory ask alike
            outer, self.probes = self.probes, {}
            try:
                found = self._module_file(importer, level, parts)
            finally:
                probes, self.probes = self.probes, outer
            self._module_files[key] = (found, probes)
        found, probes = self._module_files[key]
        self.probes.update(probes)  # every asker's verdict rests on the same probes
        return found

    def _module_file(self, importer: str, level: int, parts: Tuple[str, ...]) -> Optional[str]:
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

    def reaches_backward(self, path: str, name: str) -> bool:
        """Whether `name` (a function or class of the file) can reach a backward call: one in
        its source that CPython's ast confirms (not a docstring's), or in what it names, in
        this file or imported from another project file, transitively. On bytes otherwise."""
        self.read(path)
        key = (path, self._stamps[path], name, self.backward.pattern)
        if key not in _REACHES:
            if len(_REACHES) >= _REACHES_LIMIT:
                _REACHES.clear()
            _REACHES[key] = (False, {})  # a cycle back here adds nothing
            outer, self.probes = self.probes, {}
            try:
                reaches = self._reaches_backward(path, name)
            finally:
                probes, self.probes = self.probes, outer
            _REACHES[key] = (reaches, probes)
        reaches, probes = _REACHES[key]
        self.probes.update(probes)  # what the answer rests on, however often it is reused
        return reaches

    def _reaches_backward(self, path: str, name: str) -> bool:
        data = self.read(path)
        if data is None:
            return False
        blocks = self._blocks(path, data)
        if path not in self._imported:
            self._imported[path] = {local: (target, imported) for target, names in _from_imports(path, data, self)
                                    for imported, local in names}
        imported = self._imported[path]
        todo, seen = [name.encode()], {name.encode()}
        while todo:
            for start, end in blocks.get(todo.pop(), ()):
                block = data[start:end]
                # Followed as the analysis follows calls: `f(...)`, `Class(...)`, `self.m(...)`.
                for ident in set(_CALLED.findall(block)) - seen:
                    seen.add(ident)
                    if ident in blocks:
                        todo.append(ident)
                    elif ident in imported and self.reaches_backward(*imported[ident]):
                        return True
                if self.backward.search(block) and self._calls_backward(data, block):
                    return True
        return False

    def _block(self, path: str, name: str) -> bytes:
        """The source of every `def name` / `class name` in the file."""
        data = self.read(path)
        if data is None:
            return b""
        return b"".join(data[start:end] for start, end in self._blocks(path, data).get(name.encode(), ()))

    def _blocks(self, path: str, data: bytes) -> Dict[bytes, List[Tuple[int, int]]]:
        """name -> (start, end) of every `def name` / `class name` in data, in one pass."""
        if path not in self._block_index:
            self._block_index[path] = _blocks(data)
        return self._block_index[path]

    def _calls_backward(self, data: bytes, block: bytes) -> bool:
        tree = screen.outline(block.decode("utf-8", "replace"))
        if tree is None:  # a block cut out of its file may not parse alone: the whole file decides
            tree = screen.outline(data.decode("utf-8", "replace"))
        return tree is None or screen.calls_any(tree, self.backward_attrs)

    def methods(self, path: str, name: str) -> Set[str]:
        """Names of the functions in the source of `def name` / `class name` (bytes only)."""
        return {m.decode() for m in _DEF_NAME.findall(self._block(path, name))}

    def may_define(self, path: str, name: str) -> bool:
        """Cheap, on bytes: does the file define `name` with an event shape in its body?"""
        key = (path, name)
        if key not in self._defines:
            data = self.read(path)  # most files hold no event at all: no need to find the block
            self._defines[key] = data is not None and self.event.search(data) is not None and \
                self.event.search(self._block(path, name)) is not None
        return self._defines[key]
