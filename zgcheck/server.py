"""`zgcheck server`: the language server over stdio, a thin layer over checker + report.

What the editor gets, per open Python file or notebook:
- diagnostics on open, change and save, from the unsaved text (imported helpers are read
  from disk, as `zgcheck check` reads them), with related locations and each rule's page;
- a quick fix per fixable diagnostic (the edits `--fix` would make; unsafe ones labelled);
- `source.fixAll.zgcheck`: every safe fix, re-checked until stable, as `--fix` does;
- configuration from the nearest `pyproject.toml` with `[tool.zgcheck]` above the file.

Positions: zgcheck counts columns in characters; the client is answered in the position
encoding it negotiated (UTF-16 unless it offers another), through pygls's codec.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from . import __version__, fixes, runner
from .checker import check_decoded, check_source, check_text
from .config import DEFAULT_CONFIG, Config, ConfigError, config_for_file
from .report import at_call_sites, help_uri
from .types import Applicability, Diagnostic, Edit, Span

SOURCE = "zgcheck"
FIX_ALL = "source.fixAll.zgcheck"
NOTEBOOK = "jupyter-notebook"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checked:
    """One check of a document (or a notebook) at one version: what code actions reuse."""

    version: Optional[int]
    path: str
    diagnostics: Tuple[Diagnostic, ...]
    cells: Tuple[str, ...] = ()  # a notebook's cell URIs, in order (cell N is cells[N-1])


class ZgcheckServer(LanguageServer):
    def __init__(self):
        super().__init__(SOURCE, __version__, notebook_document_sync=lsp.NotebookDocumentSyncOptions(
            notebook_selector=[lsp.NotebookDocumentFilterWithCells(
                notebook=NOTEBOOK, cells=[lsp.NotebookCellLanguage(language="python")])],
            save=True))
        self.checked: Dict[str, Checked] = {}  # document or notebook URI -> last check
        self.config_errors: Dict[str, str] = {}  # configuration file -> error already shown
        self.shut_down = False

    # -- configuration ------------------------------------------------------------
    def config(self, path: str) -> Config:
        """The configuration of the file; a broken one is shown once and the defaults used."""
        try:
            config = config_for_file(path)
        except ConfigError as err:
            message = str(err)
            if self.config_errors.get(path) != message:
                self.config_errors[path] = message
                self.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Error, f"zgcheck: {message}"))
            return DEFAULT_CONFIG
        self.config_errors.pop(path, None)
        return config

    # -- checking -----------------------------------------------------------------
    def check_document(self, uri: str) -> None:
        document = self.workspace.get_text_document(uri)
        notebook = self.workspace.get_notebook_document(cell_uri=uri)
        if notebook is not None:
            return self.check_notebook(notebook.uri)
        path = _path(uri)
        if path is None or not path.endswith((".py", ".pyi")) and document.language_id != "python":
            return
        found = at_call_sites(check_text(document.source, path, self.config(path)), [path])
        self.checked[uri] = Checked(document.version, path, tuple(found))
        self.publish(uri, [d for d in found if _same(d.path, path)])

    def check_notebook(self, uri: str) -> None:
        notebook = self.workspace.get_notebook_document(notebook_uri=uri)
        path = _path(uri)
        if notebook is None or path is None:
            return
        cells = tuple(c.document for c in notebook.cells)
        found = at_call_sites(check_source(self.notebook_json(notebook), path, self.config(path)), [path])
        self.checked[uri] = Checked(notebook.version, path, tuple(found), cells)
        for index, cell_uri in enumerate(cells, 1):
            self.publish(cell_uri, [d for d in found if d.cell == index and _same(d.path, path)])

    def notebook_json(self, notebook: lsp.NotebookDocument) -> str:
        """The notebook as nbformat JSON, as `zgcheck check` reads one (cells in order)."""
        cells = []
        for cell in notebook.cells:
            kind = "code" if cell.kind == lsp.NotebookCellKind.Code else "markdown"
            cells.append({"cell_type": kind, "metadata": {},
                          "source": self.workspace.get_text_document(cell.document).source})
        return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})

    def publish(self, uri: str, found: Sequence[Diagnostic]) -> None:
        version = self.workspace.get_text_document(uri).version
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri, [self.to_lsp(uri, d) for d in found], version))

    def forget(self, uri: str, cells: Sequence[str] = ()) -> None:
        self.checked.pop(uri, None)
        for target in cells or (uri,):
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(target, []))

    def recheck_all(self) -> None:
        """A saved file may be another open file's helper: check every open document again."""
        for uri in list(self.checked):
            if uri in self.workspace.notebook_documents:
                self.check_notebook(uri)
            elif uri in self.workspace.text_documents:
                self.check_document(uri)

    # -- zgcheck -> LSP -----------------------------------------------------------
    def lsp_range(self, uri: str, span: Span) -> lsp.Range:
        """Characters (1-based) -> the client's units (0-based), on the document's own lines."""
        start, end = lsp.Position(span.start_line - 1, span.start_col - 1), lsp.Position(span.end_line - 1, span.end_col - 1)
        lines = self._lines(uri)
        if lines is None:
            return lsp.Range(start, end)
        codec = self.workspace.position_codec
        return codec.range_to_client_units(lines, lsp.Range(start, end))

    def _lines(self, uri: str) -> Optional[List[str]]:
        if uri in self.workspace.text_documents:
            return self.workspace.get_text_document(uri).lines
        path = _path(uri)
        try:
            with open(path or "", encoding="utf-8") as handle:
                return handle.read().splitlines(keepends=True)
        except (OSError, UnicodeDecodeError):
            return None

    def uri_of(self, path: str, cell: Optional[int], checked: Optional[Checked]) -> str:
        if cell and checked is not None and checked.cells and _same(path, checked.path):
            return checked.cells[cell - 1]
        return from_fs_path(os.path.abspath(path)) or path

    def to_lsp(self, uri: str, d: Diagnostic) -> lsp.Diagnostic:
        checked = self._checked_for(uri)
        related = [lsp.DiagnosticRelatedInformation(
            lsp.Location(self.uri_of(r.path, r.cell, checked), self.lsp_range(self.uri_of(r.path, r.cell, checked), r.span)),
            r.message) for r in d.related]
        tool = d.code.startswith("ZG9")
        return lsp.Diagnostic(
            range=self.lsp_range(uri, d.span), message=d.message, source=SOURCE, code=d.code,
            code_description=lsp.CodeDescription(href=help_uri(d.code)),
            severity=lsp.DiagnosticSeverity.Error if tool else lsp.DiagnosticSeverity.Warning,
            related_information=related or None,
            data={"fixable": d.fix is not None})

    def _checked_for(self, uri: str) -> Optional[Checked]:
        if uri in self.checked:
            return self.checked[uri]
        notebook = self.workspace.get_notebook_document(cell_uri=uri)
        return self.checked.get(notebook.uri) if notebook is not None else None

    def text_edits(self, uri: str, edits: Sequence[Edit]) -> List[lsp.TextEdit]:
        return [lsp.TextEdit(self.lsp_range(uri, Span(e.start_line, e.start_col, e.end_line, e.end_col)), e.content)
                for e in edits]

    def document_edit(self, uri: str, edits: List[lsp.TextEdit]) -> lsp.WorkspaceEdit:
        version = self.workspace.get_text_document(uri).version
        return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(
            lsp.OptionalVersionedTextDocumentIdentifier(uri, version), edits)])

    # -- code actions -------------------------------------------------------------
    def code_actions(self, params: lsp.CodeActionParams) -> List[lsp.CodeAction]:
        uri = params.text_document.uri
        checked = self._current(uri)
        if checked is None:
            return []
        wanted = params.context.only
        actions: List[lsp.CodeAction] = []
        if _wants(wanted, lsp.CodeActionKind.QuickFix):
            actions.extend(self.quick_fixes(uri, checked, params.range))
        if _wants(wanted, FIX_ALL) and any(d.fix is not None for d in checked.diagnostics):
            action = self.fix_all(uri, checked)
            if action is not None:
                actions.append(action)
        return actions

    def _current(self, uri: str) -> Optional[Checked]:
        """The check of the document's current version (checking again if it is stale)."""
        notebook = self.workspace.get_notebook_document(cell_uri=uri)
        key, version = (notebook.uri, notebook.version) if notebook is not None else \
            (uri, self.workspace.get_text_document(uri).version)
        if key not in self.checked or self.checked[key].version != version:
            self.check_notebook(key) if notebook is not None else self.check_document(uri)
        return self.checked.get(key)

    def quick_fixes(self, uri: str, checked: Checked, where: lsp.Range) -> List[lsp.CodeAction]:
        out = []
        for d in checked.diagnostics:
            if d.fix is None or not d.fix.edits or self.uri_of(d.path, d.cell, checked) != uri:
                continue
            shown = self.to_lsp(uri, d)
            if not _touches(shown.range, where):
                continue
            safe = d.fix.applicability is Applicability.SAFE
            out.append(lsp.CodeAction(
                title=f"{d.fix.title} ({d.code})" if safe else f"{d.fix.title} ({d.code}, unsafe fix)",
                kind=lsp.CodeActionKind.QuickFix, diagnostics=[shown], is_preferred=safe,
                edit=self.document_edit(uri, self.text_edits(uri, d.fix.edits))))
        return out

    def fix_all(self, uri: str, checked: Checked) -> Optional[lsp.CodeAction]:
        """Every safe fix, as `zgcheck check --fix` applies them, as line edits."""
        config = self.config(checked.path)
        if checked.cells:
            notebook = self.workspace.get_notebook_document(cell_uri=uri)
            result = runner.fix_source(checked.path, self.notebook_json(notebook).encode("utf-8"), config,
                                       runner.Mode(fix=True), write=False)
            if result.fixed_text is None:
                return None
            new_cells = json.loads(result.fixed_text)["cells"]
            changes = []
            for cell_uri, cell in zip(checked.cells, new_cells):
                old = self.workspace.get_text_document(cell_uri).source
                new = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                if new != old:
                    changes.append(self.document_edit(cell_uri, _line_edits(old, new)).document_changes[0])
            edit = lsp.WorkspaceEdit(document_changes=changes)
        else:
            text = self.workspace.get_text_document(uri).source
            outcome = fixes.fix_text(text, lambda t: check_decoded(t, checked.path, config))
            if not outcome.changed:
                return None
            edit = self.document_edit(uri, _line_edits(text, outcome.text))
        return lsp.CodeAction(title="zgcheck: fix all safe fixes", kind=FIX_ALL, edit=edit)


def _path(uri: str) -> Optional[str]:
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return os.path.abspath(path) if path else None


def _same(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _wants(only: Optional[Sequence[str]], kind: str) -> bool:
    """Whether the client's `only` filter admits an action of this kind (prefixes count)."""
    return not only or any(kind == k or kind.startswith(k + ".") for k in only)


def _touches(a: lsp.Range, b: lsp.Range) -> bool:
    key = lambda p: (p.line, p.character)  # noqa: E731
    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def _line_edits(old: str, new: str) -> List[lsp.TextEdit]:
    """Whole-line replacements turning old into new (columns 0: no encoding to convert)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    edits = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            edits.append(lsp.TextEdit(lsp.Range(lsp.Position(i1, 0), lsp.Position(i2, 0)), "".join(b[j1:j2])))
    if edits and a and not a[-1].endswith(("\n", "\r")) and edits[-1].range.end.line == len(a):
        # The last line has no newline, so "the start of the line after it" does not exist.
        edits[-1].range.end = lsp.Position(len(a) - 1, len(a[-1]))
    return edits


# What each notification does; every handler is (server, params) -> None.
HANDLERS = {
    lsp.TEXT_DOCUMENT_DID_OPEN: lambda ls, p: ls.check_document(p.text_document.uri),
    lsp.TEXT_DOCUMENT_DID_CHANGE: lambda ls, p: ls.check_document(p.text_document.uri),
    lsp.TEXT_DOCUMENT_DID_SAVE: lambda ls, p: ls.recheck_all(),
    lsp.TEXT_DOCUMENT_DID_CLOSE: lambda ls, p: ls.forget(p.text_document.uri),
    lsp.NOTEBOOK_DOCUMENT_DID_OPEN: lambda ls, p: ls.check_notebook(p.notebook_document.uri),
    lsp.NOTEBOOK_DOCUMENT_DID_CHANGE: lambda ls, p: ls.check_notebook(p.notebook_document.uri),
    lsp.NOTEBOOK_DOCUMENT_DID_SAVE: lambda ls, p: ls.recheck_all(),
    lsp.NOTEBOOK_DOCUMENT_DID_CLOSE: lambda ls, p: ls.forget(p.notebook_document.uri,
                                                             [c.uri for c in p.cell_text_documents]),
    lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES: lambda ls, p: ls.recheck_all(),
    lsp.SHUTDOWN: lambda ls, p: setattr(ls, "shut_down", True),
}


def build() -> ZgcheckServer:
    server = ZgcheckServer()
    for method, handler in HANDLERS.items():
        server.feature(method)(handler)
    server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=False))(
        lambda ls, params: ls.code_actions(params))
    return server


def serve() -> None:
    """Serve over stdin/stdout until the client says exit: exit code 0 after a shutdown
    request, 1 otherwise, as the protocol says (pygls itself always ends with 0)."""
    server = build()
    server.start_io()
    sys.exit(0 if server.shut_down else 1)
