"""`zgcheck server`, driven over stdio by pygls's own LSP client, as an editor drives it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from cli_support import BUGGY, CLEAN

TIMEOUT = 60


class Editor:
    """An LSP client that records what the server publishes, the way an editor would."""

    def __init__(self):
        self.client = LanguageClient("zgcheck-tests", "1")
        self.published = {}
        self.messages = []
        self.changed = asyncio.Event()

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params: lsp.PublishDiagnosticsParams):
            self.published[params.uri] = params.diagnostics
            self.changed.set()

        @self.client.feature(lsp.WINDOW_SHOW_MESSAGE)
        def show(params: lsp.ShowMessageParams):
            self.messages.append(params.message)

    async def start(self, root: Path):
        await self.client.start_io(sys.executable, "-m", "zgcheck", "server", cwd=str(root))
        result = await self.client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), root_uri=from_fs_path(str(root)), process_id=None))
        self.client.initialized(lsp.InitializedParams())
        return result

    async def diagnostics(self, uri: str, count=None):
        """The next diagnostics published for uri (with `count` of them, if given)."""
        async def wait():
            while True:
                self.changed.clear()
                found = self.published.get(uri)
                if found is not None and (count is None or len(found) == count):
                    return found
                await self.changed.wait()
        return await asyncio.wait_for(wait(), TIMEOUT)

    async def stop(self):
        await asyncio.wait_for(self.client.shutdown_async(None), TIMEOUT)
        self.client.exit(None)
        server = self.client._server
        code = await asyncio.wait_for(server.wait(), TIMEOUT)
        await self.client.stop()
        return code


def apply(text: str, edits) -> str:
    """Apply LSP text edits (ASCII text: UTF-16 units are characters) the way an editor does."""
    lines = text.splitlines(keepends=True)

    def offset(p):
        return sum(len(line) for line in lines[:p.line]) + p.character

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[:offset(e.range.start)] + e.new_text + text[offset(e.range.end):]
    return text


def session(root: Path, body):
    async def main():
        editor = Editor()
        await editor.start(root)
        try:
            await body(editor)
        finally:
            code = await editor.stop()
        assert code == 0
    asyncio.run(main())


def open_doc(editor, path: Path, text: str, version=1):
    uri = from_fs_path(str(path))
    editor.published.pop(uri, None)
    editor.client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri, "python", version, text)))
    return uri


def change(editor, uri: str, text: str, version: int):
    editor.published.pop(uri, None)
    editor.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(version, uri),
        [lsp.TextDocumentContentChangeWholeDocument(text)]))


async def actions(editor, uri, diagnostic=None, only=None):
    where = diagnostic.range if diagnostic else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    return await editor.client.text_document_code_action_async(lsp.CodeActionParams(
        lsp.TextDocumentIdentifier(uri), where,
        lsp.CodeActionContext([diagnostic] if diagnostic else [], only=only))) or []


def test_open_fix_apply_change_close_and_exit(tmp_path):
    """The issue's 'done when': ZG001 of a buggy file, a quick fix that inserts the zero,
    no diagnostics after applying it, and a clean exit."""
    path = tmp_path / "train.py"
    path.write_text(CLEAN)  # on disk the file is clean: the server must read the unsaved text

    async def body(editor):
        uri = open_doc(editor, path, BUGGY)
        [diagnostic] = await editor.diagnostics(uri)
        assert diagnostic.code == "ZG001" and diagnostic.source == "zgcheck"
        assert (diagnostic.range.start.line, diagnostic.range.start.character) == (6, 4)
        assert diagnostic.code_description.href.endswith("docs/rules/ZG001.md")
        related = {r.message.split(":")[0]: r.location for r in diagnostic.related_information}
        assert related["backward"].uri == uri and related["backward"].range.start.line == 5

        [action] = [a for a in await actions(editor, uri, diagnostic) if a.kind == lsp.CodeActionKind.QuickFix]
        assert "zero_grad" in action.title and "unsafe" not in action.title and action.is_preferred
        [document_edit] = action.edit.document_changes
        fixed = apply(BUGGY, document_edit.edits)
        assert "    optimizer.step()\n    optimizer.zero_grad()\n" in fixed

        change(editor, uri, fixed, 2)
        assert len(await editor.diagnostics(uri)) == 0
        change(editor, uri, BUGGY, 3)  # broken again, then fixed by the source action
        await editor.diagnostics(uri, 1)
        [fix_all] = await actions(editor, uri, only=["source.fixAll"])
        assert fix_all.kind == "source.fixAll.zgcheck"
        assert apply(BUGGY, fix_all.edit.document_changes[0].edits) == fixed

        editor.published.pop(uri)
        editor.client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
        assert len(await editor.diagnostics(uri)) == 0

    session(tmp_path, body)


def test_helpers_from_disk_and_config_from_the_nearest_pyproject(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text('[tool.zgcheck]\nignore = ["ZG001"]\n')
    (tmp_path / "helpers.py").write_text("def clear(optimizer):\n    optimizer.zero_grad()\n")
    importer = BUGGY.replace("import torch\n", "import torch\nfrom helpers import clear\n").replace(
        "    optimizer.step()\n", "    optimizer.step()\n    clear(optimizer)\n")

    async def body(editor):
        uri = open_doc(editor, pkg / "quiet.py", BUGGY)
        assert len(await editor.diagnostics(uri)) == 0  # pkg/pyproject.toml ignores ZG001
        uri = open_doc(editor, tmp_path / "train.py", importer)
        assert len(await editor.diagnostics(uri)) == 0  # the helper on disk zeroes
        (tmp_path / "helpers.py").write_text("def clear(optimizer):\n    pass\n")
        editor.published.pop(uri)
        editor.client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
            [lsp.FileEvent(from_fs_path(str(tmp_path / "helpers.py")), lsp.FileChangeType.Changed)]))
        [diagnostic] = await editor.diagnostics(uri)
        assert diagnostic.code == "ZG001"

    session(tmp_path, body)


def test_notebook_cells(tmp_path):
    cells = ["import torch\nmodel = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(model.parameters())\n",
             "for x in torch.randn(3, 4, 2):\n    model(x).sum().backward()\n    opt.step()\n"]
    nb = from_fs_path(str(tmp_path / "nb.ipynb"))
    uris = [f"{nb}#cell{i}" for i in range(len(cells))]

    async def body(editor):
        editor.client.notebook_document_did_open(lsp.DidOpenNotebookDocumentParams(
            lsp.NotebookDocument(nb, "jupyter-notebook", 1,
                                 [lsp.NotebookCell(lsp.NotebookCellKind.Code, uri) for uri in uris]),
            [lsp.TextDocumentItem(uri, "python", 1, text) for uri, text in zip(uris, cells)]))
        [diagnostic] = await editor.diagnostics(uris[1])
        assert diagnostic.code == "ZG001" and diagnostic.range.start.line == 2
        assert len(await editor.diagnostics(uris[0])) == 0
        [action] = [a for a in await actions(editor, uris[1], diagnostic) if a.kind == lsp.CodeActionKind.QuickFix]
        [document_edit] = action.edit.document_changes
        assert document_edit.text_document.uri == uris[1]
        assert apply(cells[1], document_edit.edits).endswith("    opt.step()\n    opt.zero_grad()\n")
        [fix_all] = await actions(editor, uris[1], only=["source.fixAll"])
        [cell_edit] = fix_all.edit.document_changes  # only the cell that changes
        assert cell_edit.text_document.uri == uris[1]
        assert apply(cells[1], cell_edit.edits) == apply(cells[1], document_edit.edits)

    session(tmp_path, body)


def test_exit_without_shutdown_is_an_error(tmp_path):
    async def main():
        editor = Editor()
        await editor.start(tmp_path)
        editor.client.exit(None)
        code = await asyncio.wait_for(editor.client._server.wait(), TIMEOUT)
        await editor.client.stop()
        return code
    assert asyncio.run(main()) == 1


def test_unsafe_fixes_are_labelled_and_left_out_of_fix_all(tmp_path):
    source = (Path(__file__).resolve().parent.parent / "fixtures" / "missing_zero_in_helper_train_step.py").read_text()

    async def body(editor):
        uri = open_doc(editor, tmp_path / "train.py", source)
        [diagnostic] = await editor.diagnostics(uri)
        [action] = [a for a in await actions(editor, uri, diagnostic) if a.kind == lsp.CodeActionKind.QuickFix]
        assert "unsafe" in action.title and not action.is_preferred
        assert await actions(editor, uri, only=["source.fixAll"]) == []

    session(tmp_path, body)


def test_a_broken_configuration_is_shown_and_the_defaults_used(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.zgcheck]\nselcet = ["ZG001"]\n')

    async def body(editor):
        uri = open_doc(editor, tmp_path / "train.py", BUGGY)
        [diagnostic] = await editor.diagnostics(uri)
        assert diagnostic.code == "ZG001"
        assert any("pyproject.toml" in m and "selcet" in m for m in editor.messages)

    session(tmp_path, body)


def test_a_helpers_finding_is_shown_at_the_call_in_the_open_file(tmp_path):
    (tmp_path / "helpers.py").write_text("def step(optimizer):\n    optimizer.step()\n")
    caller = BUGGY.replace("import torch\n", "import torch\nfrom helpers import step\n").replace(
        "    optimizer.step()\n", "    step(optimizer)\n")

    async def body(editor):
        uri = open_doc(editor, tmp_path / "train.py", caller)
        [diagnostic] = await editor.diagnostics(uri)
        assert diagnostic.code == "ZG001" and diagnostic.range.start.line == 7  # `step(optimizer)`
        helper = next(r for r in diagnostic.related_information if r.message.startswith("helper"))
        assert helper.location.uri == from_fs_path(str(tmp_path / "helpers.py"))
        assert helper.location.range.start.line == 1

    session(tmp_path, body)


def test_an_unused_noqa_is_shown_with_a_quick_fix_that_removes_it(tmp_path):
    text = CLEAN.replace("    optimizer.step()\n", "    optimizer.step()  # noqa: ZG001\n")

    async def body(editor):
        uri = open_doc(editor, tmp_path / "train.py", text)
        [diagnostic] = await editor.diagnostics(uri)
        assert diagnostic.code == "ZG100" and diagnostic.code_description.href.endswith("docs/rules/ZG100.md")
        [action] = [a for a in await actions(editor, uri, diagnostic) if a.kind == lsp.CodeActionKind.QuickFix]
        assert apply(text, action.edit.document_changes[0].edits) == CLEAN

    session(tmp_path, body)
