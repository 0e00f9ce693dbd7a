"""One file's units and their graphs; the Workspace that holds other files' analyses.

`Module` collects the units of a parsed file (functions, methods, closures, the
top level) that can matter: those holding an event or calling one that does.
It builds each unit's CFG and events once, and finds which unit a called name
is, here or in an imported project file. It never resolves what a receiver
is (that is `resolve`) and never runs a dataflow (that is `engine`).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from .. import recognise
from .. import source as sourcemod
from ..bindings import Binding, collect_bindings
from ..recognise import Tables
from ..screen import NEWLINE
from ..source import ParsedSource
from ..statements import direct_defs, flatten_top, function_defs
from ..types import Event, EventKind
from . import cfg as cfgmod
from . import objects
from .imports import Files
from .prune import HOOK_TEXT, IDENTIFIER, Pruner, imports_of, spread
from .units import Unit

# Shared by every check in a worker process: (path, wanted, mtime, size, tables, relative) -> Module.
_STORE: Dict[tuple, "Module"] = {}
_STORE_LIMIT = 256


class Workspace:
    """The analyses of the project's files as one check sees them: the checked file's
    own (maybe unsaved) text over the files on disk, which are shared per process."""

    def __init__(self, tables: Tables, files: Optional[Files] = None, own: Optional["Module"] = None):
        self.tables = tables
        self.files = files or Files(tables)
        self.own = own
        self.relative = True  # set from the checked file: show other paths like it
        self.pruner = Pruner(recognise.gate(tables).relevant_text, tables.backward_attrs, self.files)

    def parse(self, text: str, path: str, checked: bool = True, wanted: Optional[str] = None):
        """source.parse of a file's text, blanking what the analysis of it cannot use (of a
        helper's file, what `wanted` cannot reach); None if a checked file can hold no finding."""
        return sourcemod.parse(text, path, lambda tree, kept: self.pruner(
            os.path.abspath(path), kept, tree, checked, wanted))

    def module(self, path: str, wanted: str) -> Optional["Module"]:
        """The Module of a project file on disk (absolute path) as far as its function or class
        `wanted` reaches, or None if unreadable."""
        if self.own is not None and os.path.abspath(self.own.path) == path:
            return self.own
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (path, wanted, st.st_mtime_ns, st.st_size, self.tables, self.relative)
        if key in _STORE and _STORE[key] is not None and not _STORE[key].current(set()):
            del _STORE[key]  # a file it read (a helper's helper) changed since
        if key not in _STORE:
            if len(_STORE) >= _STORE_LIMIT:
                _STORE.pop(next(iter(_STORE)))
            _STORE[key] = self._load(path, wanted)
        return _STORE[key]

    def _load(self, path: str, wanted: str) -> Optional["Module"]:
        shared = Workspace(self.tables)  # its own reads, so it can tell when they change
        shared.relative = self.relative
        data = shared.files.read(path)
        if data is None:
            return None
        shown = path  # named the way the user named the files they asked about
        if self.relative and not os.path.relpath(path).startswith(".."):
            shown = os.path.relpath(path)
        decoded = sourcemod.decode(data, shown)
        parsed = shared.parse(decoded[0], shown, checked=False, wanted=wanted) if isinstance(decoded, tuple) else None
        if not isinstance(parsed, ParsedSource):
            return None
        return Module(parsed, shared)

    def dependencies(self, root: "Module") -> List[Tuple[str, str]]:
        """(path, sha256) of every other file the root's verdict may depend on: what it
        read, what the modules it used read, and so on."""
        digests: Dict[str, str] = {}
        for files in _files_used(root):
            digests.update(files.digests())
        digests.pop(os.path.abspath(root.path), None)
        return sorted(digests.items())

    def probes(self, root: "Module") -> Dict[str, bool]:
        """Every path the root's import resolution tried (its own and its modules'), and
        whether it was a file: where a module appears or goes, the verdict may change."""
        out: Dict[str, bool] = {}
        for files in _files_used(root):
            out.update(files.probes)
        return out


def _files_used(root: "Module") -> List[Files]:
    """The Files of root and of every module it used, transitively."""
    out, seen, todo = [], set(), [root]
    while todo:
        module = todo.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        out.append(module.workspace.files)
        todo.extend(module.imported.values())
    return out


class Module:
    """The units of one parsed file, their graphs, and the names they can call."""

    def __init__(self, parsed: ParsedSource, workspace: Workspace):
        self.parsed = parsed
        self.path = parsed.path
        self.tables = workspace.tables
        self.workspace = workspace
        self.imports = imports_of(parsed.tree) if parsed.tree is not None else {}
        parsed.tree = None  # nothing else reads it; a helper's Module lives on in the store
        self.lines = NEWLINE.split(parsed.code)  # as CPython counts lines: no \f, \u2028
        self.gate = recognise.gate(self.tables)
        self.class_bases: Dict[str, Tuple[str, ...]] = {}
        self.factories: Dict[str, Tuple[str, ...]] = {}  # function -> the callees its returns call
        self.module_bindings: Dict[str, Binding] = {}
        self.class_nodes: Dict[str, cst.ClassDef] = {}  # classes with a relevant method
        self._class_bindings: Dict[str, Dict[str, Binding]] = {}
        self.functions: Dict[str, Unit] = {}
        self.methods: Dict[Tuple[str, str], Unit] = {}
        self.units: List[Unit] = []
        self.imported: Dict[str, "Module"] = {}  # other modules this one used, by path
        self.def_names: Set[str] = set()  # every function and class defined in the file
        self.memo: Dict[tuple, object] = {}  # per-unit facts derived once for every root (reach)
        self._foreign: Dict[str, Optional[Unit]] = {}
        self._collect()

    def current(self, seen: Set[int]) -> bool:
        """Whether every file this analysis read, and the analyses it used read, is unchanged."""
        if id(self) in seen:
            return True
        seen.add(id(self))
        return self.workspace.files.unchanged() and all(m.current(seen) for m in self.imported.values())

    # -- units -------------------------------------------------------------
    def _collect(self) -> None:
        module = self.parsed.module
        self.module_bindings = collect_bindings(module, self.tables)
        self.top = Unit("<module>", module, module.body, (), None, self)
        self.units.append(self.top)
        for stmt in flatten_top(module.body):
            if isinstance(stmt, cst.ClassDef):
                self.def_names.add(stmt.name.value)
                self.class_bases[stmt.name.value] = tuple(
                    filter(None, (recognise.dotted(b.value) for b in stmt.bases)))
            elif isinstance(stmt, cst.FunctionDef):
                made = objects.returned_calls(stmt)
                if made:
                    self.factories[stmt.name.value] = made
        self.relevant = self._relevant_defs()
        self.hooks = recognise.hook_registrations(module) if HOOK_TEXT.search(self.parsed.code) else {}
        for stmt in direct_defs(module.body):  # also those defined inside a top-level loop
            if stmt in self.relevant:
                self.functions[stmt.name.value] = self._unit(stmt, stmt.name.value, None, None)
        for stmt in flatten_top(module.body):
            if isinstance(stmt, cst.ClassDef):
                cls = stmt.name.value
                methods = [m for m in stmt.body.body if isinstance(m, cst.FunctionDef)]
                if not any(m in self.relevant for m in methods):
                    continue
                self.class_nodes[cls] = stmt
                for item in methods:
                    if item in self.relevant:
                        self.methods[(cls, item.name.value)] = self._unit(item, f"{cls}.{item.name.value}", cls, None)

    def source_of(self, unit: Unit) -> str:
        """The unit's source lines, as written."""
        return self.parsed.code if unit.is_top_level else self._text(unit.node)

    def _text(self, node: cst.CSTNode) -> str:
        span = self.parsed.span(node)
        return "\n".join(self.lines[span.start_line - 1:span.end_line])

    def _relevant_defs(self) -> Set[cst.FunctionDef]:
        """Functions that hold an event, or call one that does (by text, to a fixpoint).

        The rest can neither change nor report a fact, so they get no bindings, no
        CFG and no event walk: most of a large model file is skipped this way.
        """
        defs: Dict[cst.FunctionDef, Set[str]] = {}
        relevant: Set[cst.FunctionDef] = set()
        for node in function_defs(self.parsed.module.body):
            self.def_names.add(node.name.value)
            text = self._text(node)
            defs[node] = set(IDENTIFIER.findall(text))
            if self.gate.relevant_text.search(text):
                relevant.add(node)
        names = {d.name.value for d in relevant}
        # Imported helpers that can hold an event make their callers relevant too.
        names |= {local for local in self.imports if self._imported_relevant(local)}
        for cls in self.class_bases:  # methods inherited from a base class in another file
            for base in self.bases(cls):
                if base[0] is not self:
                    names |= set(base[0].methods_of(base[1]))
        # `agent = Agent()` reaches Agent's relevant methods: the class name counts too.
        owner = {m: stmt.name.value for stmt in flatten_top(self.parsed.module.body)
                 if isinstance(stmt, cst.ClassDef) for m in stmt.body.body if isinstance(m, cst.FunctionDef)}
        spread(defs, relevant, names, lambda node: (node.name.value, owner.get(node, node.name.value)))
        return relevant

    def _unit(self, node: cst.FunctionDef, name: str, cls: Optional[str], parent: Optional[Unit]) -> Unit:
        params = tuple(p.name.value for p in (*node.params.posonly_params, *node.params.params))
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else [node.body]
        unit = Unit(name, node, body, params, cls, self, parent)
        if isinstance(node.params.star_arg, cst.Param):
            unit.star = node.params.star_arg.name.value
        for stmt in direct_defs(unit.body):  # closures, also those defined inside a loop
            if stmt in self.relevant:
                unit.nested[stmt.name.value] = self._unit(stmt, f"{name}.{stmt.name.value}", cls, unit)
        self.units.append(unit)
        return unit

    def class_bindings(self, cls: str) -> Dict[str, Binding]:
        """`self.x` bindings of any method of a class with a relevant method (collected when asked)."""
        if cls not in self._class_bindings:
            node = self.class_nodes.get(cls)
            self._class_bindings[cls] = {} if node is None else \
                collect_bindings(node, self.tables, self_only=True, descend=True)
        return self._class_bindings[cls]

    def bindings_of(self, unit: Unit) -> Dict[str, Binding]:
        return self.module_bindings if unit.is_top_level else collect_bindings(unit.node, self.tables)

    def lookup(self, text: str, unit: Unit) -> Optional[Binding]:
        """What `text` was bound to, seen from unit: its own scope, enclosing ones, the class, the module."""
        for u in unit.enclosing():
            if text in u.bindings:
                return u.bindings[text]
        if text.startswith("self.") and unit.cls:
            found = self.class_bindings(unit.cls).get(text)
            if found is not None:
                return found
        return self.module_bindings.get(text)

    # -- graphs --------------------------------------------------------------
    def graph(self, unit: Unit, implicit_loop: bool = False):
        """The unit's CFG and the events of each node (cached unless an implicit loop)."""
        if unit.graph is not None and not implicit_loop:
            return unit.graph, unit.events
        graph = cfgmod.build(unit.body, lambda loop: recognise.zero_loop_target(loop) is not None,
                             implicit_loop=implicit_loop, runs_once=self._holds_backward)
        callables = _Callables(self, unit)
        span, text = self.parsed.span, self.parsed.text
        events: Dict[int, Tuple[Event, ...]] = {}
        for node in graph.nodes:
            if node.item is None:
                continue
            if node.kind == "zero-loop":
                target, kind, overwrite = recognise.zero_loop_target(node.item)
                header = f"for ... in {text(node.item.iter)}"
                event_kind = EventKind.OVERWRITE if overwrite else EventKind.ZERO
                events[node.id] = (Event(event_kind, span(node.item), header, target, kind),)
            elif node.kind != "def":
                found = recognise.events_in(node.item, span, text, callables, self.tables)
                if found:
                    events[node.id] = tuple(found)
        if not implicit_loop:
            unit.graph, unit.events = graph, events
        return graph, events

    def _holds_backward(self, loop: cst.For) -> bool:
        return self.gate.backward_text.search(self._text(loop.body)) is not None

    # -- which unit a called name is ---------------------------------------------
    def callee(self, name: str, unit: Unit) -> Optional[Unit]:
        """The unit `name` calls from unit: a closure, a method (inherited too), a
        function of this file, or one imported from another project file."""
        for u in unit.enclosing():
            if name in u.nested:
                return u.nested[name]
        if name.startswith("self.") and unit.cls and "." not in name[5:]:
            return self.method(unit.cls, name[5:])
        return self.functions.get(name) or self._imported(name)

    def method(self, cls: str, name: str) -> Optional[Unit]:
        """The method `name` of class cls defined here, or inherited from a project base."""
        found = self.methods.get((cls, name))
        for owner, base in self.bases(cls) if found is None else ():
            found = owner.methods_of(base).get(name)
            if found is not None:
                break
        return found

    def _imported_relevant(self, name: str) -> bool:
        found = self.workspace.files.target(self.path, self.imports, name)
        return found is not None and self.workspace.files.may_define(*found)

    def other(self, path: str, name: str) -> Optional["Module"]:
        """Another project file's Module, if it may define name next to an event."""
        if not self.workspace.files.may_define(path, name):
            return None
        other = self.workspace.module(os.path.abspath(path), name)
        if other is not None and other is not self:
            self.imported[other.path] = other
            return other
        return None

    def _imported(self, name: str) -> Optional[Unit]:
        """A function another project file defines and this one imports."""
        if name not in self._foreign:
            self._foreign[name] = None
            found = self.workspace.files.target(self.path, self.imports, name)
            other = self.other(*found) if found is not None else None
            if other is not None:
                self._foreign[name] = other.functions.get(found[1])
        return self._foreign[name]

    def bases(self, cls: str) -> List[Tuple["Module", str]]:
        """(module, class) of every base class of cls that the project defines, nearest first."""
        out: List[Tuple[Module, str]] = []
        todo: List[Tuple[Module, str]] = [(self, cls)]
        while todo and len(out) < 8:
            owner, name = todo.pop(0)
            for base in owner.class_bases.get(name, ()):
                found: Optional[Tuple[Module, str]] = None
                if base in owner.class_bases:
                    found = (owner, base)
                else:
                    target = owner.workspace.files.target(owner.path, owner.imports, base)
                    other = owner.other(*target) if target is not None else None
                    found = (other, target[1]) if other is not None else None
                if found is not None and found not in out:
                    out.append(found)
                    todo.append(found)
        return out

    def unit_named(self, name: str) -> Optional[Unit]:
        """A function or closure of this file by its own name (a hook registered elsewhere)."""
        return next((u for u in self.units if not u.is_top_level and u.node.name.value == name), None)

    def methods_of(self, cls: str) -> Dict[str, Unit]:
        return {m: u for (c, m), u in self.methods.items() if c == cls}

    def callable_names(self, unit: Unit) -> Set[str]:
        """Names a unit can call into without an import: closures, functions, methods, partials."""
        names = set(self.functions)
        for u in unit.enclosing():
            names.update(u.nested)
            names.update(n for n, b in u.bindings.items() if b.kind == "partial")
        names.update(n for n, b in self.module_bindings.items() if b.kind == "partial")
        if unit.cls:
            names.update(f"self.{m}" for (c, m) in self.methods if c == unit.cls)
            names.update(f"self.{m}" for owner, cls in self.bases(unit.cls) for m in owner.methods_of(cls))
        return names


class _Callables:
    """Names a unit can call into: local ones, plus imported helpers (checked lazily)."""

    def __init__(self, module: Module, unit: Unit):
        self.names, self.module, self.unit = frozenset(module.callable_names(unit)), module, unit

    def __contains__(self, name: str) -> bool:
        if name in self.names:
            return True
        if name.split(".", 1)[0] in self.module.imports and self.module._imported_relevant(name):
            return True
        return objects.bound_method(self.module, name, self.unit) is not None

    def maybe(self, name: str) -> bool:
        """A call through a parameter (`loss_scaler(loss, opt)`): an instance of a project
        class passed in, maybe; resolving it with the arguments decides."""
        params = self.unit.params
        own = params[1:] if self.unit.cls and params[:1] in (("self",), ("cls",)) else params
        return name.split(".", 1)[0] in own

