"""Which definitions of a file the analysis needs, read off CPython's ast before libcst parses it.

CPython's parser is several times faster than libcst's, and most of a large file
can neither hold nor reach an event. So a file is outlined with `ast` first, and
every definition the analysis cannot use is blanked line for line (its first line
becomes `def name(): pass`, so the module still knows what it defines): libcst
then parses and visits only what the analysis looks at, at the same positions.

Kept, a superset of what `Module` turns into units: functions whose text holds an
event word (the gate's `relevant_text`) or names a kept function, class or
imported helper, to a fixpoint; every method of a class with such a method (its
bindings come from all of them) or with a base imported from a project file; the
top-level functions that kept code or top-level statements name (factories);
all top-level statements.

A file being checked (not one read as a helper) with no backward call and no use
of an imported helper that can hold an event cannot produce a finding: nothing of
it is parsed.
"""

from __future__ import annotations

import ast
import functools
import re
from typing import Callable, Dict, FrozenSet, Iterable, Iterator, List, Optional, Set, Tuple, TypeVar, Union

from ..screen import LINE, blank_statement, calls_any, is_call_to
from .imports import Files, Import

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `self.x = ...`, `self.x: T`, `self.x += ...`, `setattr(self, ...)`: a method that may bind an attribute.
_SELF_BINDING = re.compile(r"\bself\.[\w.]+\s*(?:[-+*/@%&|^]?=(?!=)|:)|\bsetattr\s*\(")
HOOK_TEXT = re.compile(r"register_(?:step_pre|step_post|post_accumulate_grad)_hook")

T = TypeVar("T")
_Def = Union[ast.FunctionDef, ast.AsyncFunctionDef]
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def imports_of(tree: ast.Module) -> Dict[str, Import]:
    """Local name -> what it imports, for a module's top-level imports (also under if/try)."""
    out: Dict[str, Import] = {}
    for stmt in tree.body if isinstance(tree, ast.Module) else tree:
        if isinstance(stmt, (ast.If, ast.Try, getattr(ast, "TryStar", ast.Try))):
            out.update(imports_of(stmt.body))
        elif isinstance(stmt, ast.ImportFrom):
            parts = tuple(p for p in (stmt.module or "").split(".") if p)
            for alias in stmt.names:
                if alias.name != "*":
                    out[alias.asname or alias.name] = Import(stmt.level or 0, parts, alias.name)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    out[alias.asname] = Import(0, tuple(alias.name.split(".")), None)
                else:
                    root = alias.name.split(".")[0]
                    out[root] = Import(0, (root,), None)
    return out


class Pruner:
    """Blanks what the analysis of one file cannot use; see the module docstring."""

    def __init__(self, relevant_text: "re.Pattern[str]", backward_attrs: FrozenSet[str], files: Files):
        self.relevant_text = relevant_text
        self.backward_attrs = backward_attrs
        self.files = files

    def __call__(self, path: str, text: str, tree: ast.Module, checked: bool,
                 wanted: Optional[str] = None) -> Optional[str]:
        """text with unneeded definitions blanked (same lines); None if nothing can be found.
        A helper's file read for its function or class `wanted` keeps what that can reach."""
        lines = LINE.findall(text)
        imports = imports_of(tree)
        helpers: Dict[str, Optional[Tuple[str, str]]] = {}  # name -> (file, name) if it may hold an event

        def imported_relevant(name: str) -> bool:  # an imported helper that may hold an event
            if name not in helpers:
                target = self.files.target(path, imports, name)
                helpers[name] = target if target is not None and self.files.may_define(*target) else None
            return helpers[name] is not None

        def reaches_backward(name: str) -> bool:  # ... and can reach a backward call
            return imported_relevant(name) and self.files.reaches_backward(*helpers[name])

        if checked and not self._may_find(tree, imports, reaches_backward):
            return None
        outline = _Outline(tree, lines)
        kept, reaching = self._kept(outline, path, imports, imported_relevant, reaches_backward if checked else None)
        if wanted:
            kept = _reachable(outline, {wanted}, within=kept)
        changed = False
        for node in outline.functions + outline.methods:
            if node not in kept:
                _blank(lines, node)
                changed = True
        if checked and not wanted:
            changed = self._blank_top_level(outline, kept, reaching, imports, reaches_backward) or changed
        return "".join(lines) if changed else text

    def _blank_top_level(self, outline: "_Outline", kept: Set[ast.AST], reaching: Set[str],
                         imports: Dict[str, Import], reaches_backward) -> bool:
        """In a checked file whose top level reaches no backward call, the top-level assignments that
        bind nothing kept code names, and the calls of nothing kept, become `pass`: the top
        level can only lend kept code its globals (a large file of test tables, say)."""
        simple = [stmt for stmt in _top_statements(outline.tree.body)
                  if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr))]
        top = outline.top_words
        if reaching & top or any(reaches_backward(word) for word in top & imports.keys()) or any(
                calls_any(stmt, self.backward_attrs) for stmt in _top_statements(outline.tree.body)
                if not isinstance(stmt, (*_DEFS, ast.ClassDef))):
            return False  # the top level is a root that can reach a backward call: all of it counts
        words = set().union(*(outline.identifiers(node) for node in kept))
        names = {node.name for node in kept} | {outline.owner[node].name for node in kept if node in outline.owner}
        changed = False
        for stmt in simple:
            if isinstance(stmt, ast.Expr):
                needed = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)} & names
            else:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                needed = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)} & words
            if not needed:
                changed = blank_statement(outline.lines, stmt) or changed
        return changed

    def _may_find(self, tree: ast.Module, imports: Dict[str, Import], reaches_backward) -> bool:
        """A backward call, or a use of an imported helper (`helper`, `module.helper`) that can
        reach one."""
        used: Set[str] = set()
        for node in ast.walk(tree):
            if is_call_to(node, self.backward_attrs):
                return True
            if isinstance(node, ast.Name) and node.id in imports:
                used.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imports:
                used.add(f"{node.value.id}.{node.attr}")
        return any(reaches_backward(name) for name in used)

    def _kept(self, outline: "_Outline", path: str, imports: Dict[str, Import], imported_relevant,
              reaches_backward=None) -> Tuple[Set[ast.AST], Set[str]]:
        """The definitions to keep, and the names of those that can reach a backward call (of a
        checked file; else none)."""
        idents = {node: outline.identifiers(node) for node in outline.functions + outline.methods}
        relevant = {node for node in idents if self.relevant_text.search(outline.text(node))
                    or HOOK_TEXT.search(outline.text(node))}
        names = {node.name for node in relevant}
        names |= {local for local in imports if imported_relevant(local)}
        whole: Set[ast.ClassDef] = set()
        for cls in outline.classes:  # a project base class in another file may hold the events
            inherited = set()
            for base in cls.bases:
                name = _dotted(base)
                if name and name.split(".")[0] in imports and imported_relevant(name):
                    inherited |= self.files.methods(*self.files.target(path, imports, name)) | {cls.name}
            if inherited:
                whole.add(cls)
                names |= inherited
        owner = outline.owner
        reaching: Set[str] = set()
        names_of = lambda node: (node.name, owner[node].name if node in owner else node.name)  # noqa: E731
        spread(idents, relevant, names, names_of)
        if reaches_backward is not None:
            # A checked file finds nothing but through a backward call: keep what can reach one
            # (callers, by their words), and the relevant definitions those name.
            seeds = {node for node in relevant if calls_any(node, self.backward_attrs)
                     or node in owner and owner[node] in whole
                     or any(reaches_backward(word) for word in idents[node] & imports.keys())}
            # Callers by the callee's own name; by its class's name only for what the class's
            # instances run unnamed (`Agent(...)` runs __init__, `scaler(loss)` runs __call__).
            spread(idents, seeds, reaching, lambda node: (node.name,) + (
                (owner[node].name,) if node in owner and node.name.startswith("__") else ()))
            relevant = seeds | _reachable(outline, outline.top_words.union(*(idents[n] for n in seeds)),
                                          classes=False, methods=True, within=relevant)
        whole |= {owner[node] for node in relevant if node in owner}
        kept: Set[ast.AST] = set(relevant)
        # A class's `self.x` bindings come from any of its methods.
        kept |= {m for m in outline.methods if owner[m] in whole and _SELF_BINDING.search(outline.text(m))}
        # Top-level functions that kept code or the top level names: factories, helpers.
        return kept | _reachable(outline, outline.top_words.union(*(idents[node] for node in kept)),
                                 classes=False), reaching


def spread(words: Dict[T, Set[str]], relevant: Set[T], names: Set[str],
           names_of: Callable[[T], Iterable[str]]) -> None:
    """Grow relevant (and names) by every definition whose words name a relevant one (its own
    name or its class's: `agent = Agent()` reaches Agent's methods), to a fixpoint."""
    names |= {name for node in relevant for name in names_of(node)}
    changed = True
    while changed:
        changed = False
        for node, found in words.items():
            if node not in relevant and found & names:
                relevant.add(node)
                names.update(names_of(node))
                changed = True


def _reachable(outline: "_Outline", names: Set[str], classes: bool = True, methods: bool = False,
               within: Optional[Set[ast.AST]] = None) -> Set[ast.AST]:
    """The top-level functions (with classes, the methods of classes; with methods, methods by
    their own name) that names name, and what those name in turn, by the words in their text;
    only through `within`."""
    by_name: Dict[str, List[ast.AST]] = {}
    for node in outline.functions + (outline.classes if classes else []) + (outline.methods if methods else []):
        by_name.setdefault(node.name, []).append(node)
    kept: Set[ast.AST] = set()
    todo = [names]
    while todo:
        for name in todo.pop():
            for node in by_name.pop(name, ()):
                if isinstance(node, ast.ClassDef):
                    for method in node.body:
                        if isinstance(method, _DEFS) and (within is None or method in within):
                            kept.add(method)
                            todo.append(outline.identifiers(method))
                elif within is None or node in within:
                    kept.add(node)
                    todo.append(outline.identifiers(node))
    return kept


class _Outline:
    """The blankable definitions of a module: top-level functions (also under if/try/loops) and
    the methods of top-level classes and of the classes nested in them; their lines and words."""

    def __init__(self, tree: ast.Module, lines: List[str]):
        self.tree = tree
        self.lines = lines
        self._text: Dict[ast.AST, str] = {}
        self._words: Dict[ast.AST, Set[str]] = {}
        self.functions: List[_Def] = []
        self.classes: List[ast.ClassDef] = []
        self.methods: List[_Def] = []
        self.owner: Dict[ast.AST, ast.ClassDef] = {}
        for stmt in _top_statements(tree.body):
            if isinstance(stmt, _DEFS):
                self.functions.append(stmt)
            elif isinstance(stmt, ast.ClassDef):
                self.classes.append(stmt)
                self._add_methods(stmt)

    def _add_methods(self, cls: ast.ClassDef) -> None:
        for item in cls.body:
            if isinstance(item, _DEFS):
                self.methods.append(item)
                self.owner[item] = cls
            elif isinstance(item, ast.ClassDef):  # a nested class: its methods are never units
                self._add_methods(item)

    def text(self, node: ast.AST) -> str:
        """The definition's source as written (read before anything is blanked)."""
        if node not in self._text:
            start, end = _lines(node)
            self._text[node] = "".join(self.lines[start - 1:end])
        return self._text[node]

    def identifiers(self, node: ast.AST) -> Set[str]:
        if node not in self._words:
            self._words[node] = set(IDENTIFIER.findall(self.text(node)))
        return self._words[node]

    @functools.cached_property
    def top_words(self) -> Set[str]:
        """Words of the lines outside every top-level function and class."""
        covered = bytearray(len(self.lines) + 2)
        for node in self.functions + self.classes:
            start, end = _lines(node)
            covered[start:end + 1] = b"\1" * (end + 1 - start)
        return set(IDENTIFIER.findall("".join(line for number, line in enumerate(self.lines, 1)
                                               if not covered[number])))


def _top_statements(body: List[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of the module at any statement depth, not inside a definition or class."""
    for stmt in body:
        yield stmt
        if not isinstance(stmt, (*_DEFS, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(stmt, field, ()) or ():
                    if isinstance(child, ast.stmt):
                        yield from _top_statements([child])
                    else:  # an except handler or a match case
                        yield from _top_statements(getattr(child, "body", []))


def _lines(node: ast.AST) -> Tuple[int, int]:
    decorators = getattr(node, "decorator_list", ())
    return min([node.lineno] + [d.lineno for d in decorators]), node.end_lineno


def _blank(lines: List[str], node: _Def) -> None:
    """The definition's lines emptied, its first line `def name(): pass` at its indentation."""
    start, end = _lines(node)
    first = lines[start - 1]
    indent = first[:len(first) - len(first.lstrip(" \t\f"))]
    lines[start - 1] = f"{indent}def {node.name}(): pass{_ending(first)}"
    for number in range(start + 1, end + 1):
        lines[number - 1] = _ending(lines[number - 1])


def _ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")):]


def _dotted(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None
