"""Files -> results: check or fix each file, in a process pool, through the cache.

A run with the cache first asks the stat index (cache.StatIndex), in this process:
a file that is unchanged, and whose verdict's dependencies are unchanged, is
answered without being read, and the pool is started only for the others. So is
a --fix or --diff run: a file whose findings hold nothing to fix is reported as a
check reports it. This module imports no parser: the checker is imported where a
file is checked.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from . import __version__, cache, notebook
from .config import Config
from .codes import FIX_ERROR, INTERNAL_ERROR, PARSE_ERROR, READ_ERROR, is_tool
from .reading import decode, read_bytes, tool_diagnostic
from .types import Diagnostic

if TYPE_CHECKING:
    from .analysis import Workspace

# Below this many files a process pool costs more than it saves.
PARALLEL_THRESHOLD = 16
CACHE_DIR = ".zgcheck_cache"


@dataclass(frozen=True)
class Mode:
    fix: bool = False
    unsafe: bool = False
    diff: bool = False  # show what --fix would change, write nothing
    add_noqa: bool = False  # write `# noqa: CODE` on every reported line instead
    cache_dir: Optional[str] = None


@dataclass
class FileResult:
    path: str
    diagnostics: List[Diagnostic] = field(default_factory=list)  # what remains
    fixed: int = 0
    diff: str = ""
    errors: List[Diagnostic] = field(default_factory=list)  # fixes that could not be written
    conflicts: int = 0
    fixed_text: Optional[str] = None  # the file's text after fixing, when it changed
    fixed_bytes: Optional[bytes] = None  # fixed_text encoded as the file was (BOM, coding cookie)
    fixed_codes: Tuple[str, ...] = ()  # the codes of the fixed diagnostics (when fixed > 0)
    basis: Optional[cache.Basis] = None  # what a cached verdict rests on (for the stat index)
    noqa_added: int = 0  # --add-noqa: the lines that got (or extended) a `# noqa`


def open_index(mode: Mode) -> Optional[cache.StatIndex]:
    """The stat index of the mode's cache directory (None without a cache)."""
    if mode.cache_dir is None:
        return None
    return cache.StatIndex.load(Path(mode.cache_dir), _tool_fingerprint())


def run(paths: Sequence[str], config: Config, mode: Mode, jobs: int,
        progress: Optional[Callable[[int], None]] = None,
        index: Optional[cache.StatIndex] = None) -> List[FileResult]:
    """Results in the order of paths; progress(n) is told as each n files are done.

    With a cache, the stat index answers unchanged files here; without `index`, the
    run opens and saves its own."""
    tick = progress or (lambda n: None)
    own_index = index is None
    if own_index:
        index = open_index(mode)
    done: Dict[str, FileResult] = {}
    todo = list(paths)
    if index is not None:
        fingerprint = config.fingerprint()
        todo = []
        for path in paths:
            result = _indexed(path, index, fingerprint, mode)
            if result is None:
                todo.append(path)
            else:
                done[path] = result
        tick(len(done))
    done.update(_run(todo, config, mode, jobs, tick))
    if index is not None:
        for path in todo:
            if done[path].basis is not None:
                index.record(path, fingerprint, done[path].basis)
        if own_index:
            index.save()
    return [done[p] for p in paths]


def _indexed(path: str, index: cache.StatIndex, fingerprint: str, mode: Mode) -> Optional[FileResult]:
    """The result the stat index holds for an unchanged file, or None (a miss)."""
    basis = index.lookup(path, fingerprint)
    if basis is None:
        return None
    if basis.key is None:
        return FileResult(path, basis=basis)
    found = cache.load(_entry(mode.cache_dir, basis.key), basis.key)
    if found is None or _may_fix(path, found[2], mode):
        return None
    return FileResult(path, found[2], basis=basis)


def _may_fix(path: str, diagnostics: List[Diagnostic], mode: Mode) -> bool:
    """Whether --fix or --diff could report this verdict otherwise than a check: a fix the
    mode applies, a notebook's finding of a rule (a fix no cell can show is applied all the
    same; a cell that does not parse has none), or, with --fix, a helper's finding (the
    helper may be rewritten in this run)."""
    if not (mode.fix or mode.diff) or not diagnostics:
        return False
    if path.endswith(".ipynb") and not all(is_tool(d.code) for d in diagnostics):
        return True
    if mode.fix and any(d.path != path for d in diagnostics):
        return True
    if all(d.fix is None for d in diagnostics):
        return False
    from .fixes import applicable  # the parser's stack: only for a file with a fix

    return any(applicable(d, mode.unsafe) for d in diagnostics)


def _run(paths: List[str], config: Config, mode: Mode, jobs: int, tick) -> Dict[str, FileResult]:
    if jobs <= 1 or len(paths) < PARALLEL_THRESHOLD:
        out = {}
        for p in paths:
            out[p] = process(p, config, mode)
            tick(1)
        return out
    from concurrent.futures import ProcessPoolExecutor, as_completed

    chunks = [list(paths[i::jobs * 4]) for i in range(jobs * 4)]
    done: Dict[str, FileResult] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_process_chunk, chunk, config, mode) for chunk in chunks]
        try:
            for future in as_completed(futures):
                for result in future.result():
                    done[result.path] = result
                tick(len(chunks[futures.index(future)]))
        except Exception:  # a worker died (BrokenProcessPool): what it held is retried alone
            for future in futures:
                if future.done() and not future.cancelled() and future.exception() is None:
                    done.update((r.path, r) for r in future.result() if r.path not in done)
    left = [p for p in paths if p not in done]
    if left:
        done.update(_isolated(left, config, mode, jobs, tick))
    return done


def _process_chunk(paths: List[str], config: Config, mode: Mode) -> List[FileResult]:
    return [process(p, config, mode) for p in paths]


def _isolated(paths: List[str], config: Config, mode: Mode, jobs: int, tick) -> Dict[str, FileResult]:
    """Each file in a one-worker pool of its own lane: a file that kills its worker is ZG999."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    queue = list(reversed(paths))
    out: Dict[str, FileResult] = {}

    def lane() -> None:
        pool = None
        while queue:
            try:
                path = queue.pop()
            except IndexError:
                return
            pool = pool or ProcessPoolExecutor(max_workers=1)
            try:
                out[path] = pool.submit(process, path, config, mode).result()
            except Exception as err:  # BrokenProcessPool: this file killed its worker
                pool.shutdown(wait=False)
                pool = None
                why = "died (a crash or out of memory)" if isinstance(err, BrokenProcessPool) else \
                    f"failed ({type(err).__name__}: {err})"
                out[path] = FileResult(path, [tool_diagnostic(
                    INTERNAL_ERROR, path,
                    f"internal error: the process checking this file {why}; the file was not checked; "
                    "please report it")])
            tick(1)
        if pool is not None:
            pool.shutdown()

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(paths)))) as lanes:
        for future in [lanes.submit(lane) for _ in range(max(1, min(jobs, len(paths))))]:
            future.result()
    return out


def process(path: str, config: Config, mode: Mode) -> FileResult:
    """One file's result; whatever goes wrong becomes a diagnostic for that file."""
    from .source import with_deep_stack

    try:
        return with_deep_stack(_process, path, config, mode)
    except Exception as err:  # never a traceback for the run: report it and go on
        where = traceback.extract_tb(err.__traceback__)[-1]
        return FileResult(path, [tool_diagnostic(
            INTERNAL_ERROR, path,
            f"internal error: {type(err).__name__}: {err} (at {where.filename}:{where.lineno}); please report it")])


def _process(path: str, config: Config, mode: Mode) -> FileResult:
    from .checker import may_hold_findings

    read_at = time.time_ns()  # before reading anything: how recent a stat the index may trust
    try:
        data = read_bytes(path)
    except OSError as err:
        return FileResult(path, [tool_diagnostic(READ_ERROR, path, f"cannot read: {err.strerror or err}")])
    files = _gate_workspace(config).files
    files.probes.clear()  # shared by the files of this process: keep this file's own
    keep = may_hold_findings(data, path, config, _gate_workspace(config))
    gated = dict(files.probes)
    if mode.add_noqa:
        return add_noqa_source(path, data, config) if keep else FileResult(path)
    if not keep:
        return FileResult(path, basis=cache.Basis.of([], gated, read_at=read_at))
    if (mode.fix or mode.diff) and mode.cache_dir is None:
        return fix_source(path, data, config, mode)
    # With a cache, --fix and --diff check first too: the verdict is what the stat index
    # records, and most files have nothing to fix.
    diagnostics, key, dependencies, probes = _cached_check(path, data, config, mode.cache_dir)
    basis = None if key is None else cache.Basis.of(dependencies, {**gated, **probes},
                                                     key if diagnostics else None, read_at)
    if not _may_fix(path, diagnostics, mode):
        return FileResult(path, diagnostics, basis=basis)
    result = fix_source(path, data, config, mode)
    if not (mode.fix and result.fixed_bytes is not None and not result.errors):
        result.basis = basis  # not rewritten: the verdict still holds (a rewritten file's stat is too new to trust)
    return result


def fix_source(path: str, data: bytes, config: Config, mode: Mode, write: bool = True) -> FileResult:
    from . import fixes
    from .checker import check_decoded, check_source
    from .writer import unified_patch, write_atomically

    if path.endswith(".ipynb"):
        return fix_notebook(path, data, config, mode, write)
    decoded = decode(data, path)
    if isinstance(decoded, Diagnostic):  # nothing to fix: what a check reports (`skip-file` too)
        return FileResult(path, check_source(data, path, config, gate=False))
    text, encoding = decoded
    outcome = fixes.fix_text(text, lambda t: check_decoded(t, path, config), unsafe=mode.unsafe)
    result = FileResult(path, outcome.remaining, len(outcome.fixed), conflicts=len(outcome.conflicts),
                        fixed_codes=tuple(d.code for d in outcome.fixed))
    if outcome.error:
        result.errors.append(tool_diagnostic(FIX_ERROR, path, f"not fixed: {outcome.error}"))
        return result
    if not outcome.changed:
        return result
    result.fixed_text, result.fixed_bytes = outcome.text, outcome.text.encode(encoding)
    if mode.diff:
        result.diff = unified_patch(text, outcome.text, path)
        result.fixed = len(outcome.fixed)
        return result
    if write:
        error = write_atomically(path, data, result.fixed_bytes)
        if error:
            result.errors.append(tool_diagnostic(FIX_ERROR, path, f"not fixed: {error}"))
            result.diagnostics = check_decoded(text, path, config)
            result.fixed = 0
    return result


def fix_notebook(path: str, data: bytes, config: Config, mode: Mode, write: bool = True) -> FileResult:
    """Fix the notebook's virtual module; write back only the cells that changed."""
    from . import fixes
    from .checker import check_decoded, check_source
    from .writer import unified_patch, write_atomically

    try:
        text = notebook.decode(data)
        source, mapping = notebook.virtual_source(text)
    except notebook.NotebookError:
        return FileResult(path, check_source(data, path, config, gate=False))
    outcome = fixes.fix_text(source, lambda t: check_decoded(t, path, config), unsafe=mode.unsafe)
    # Cells left out of the virtual module because they do not parse stay as they are: their
    # ZG901s are reported with whatever the fix leaves (fixing must not hide them).
    broken = [d for d in notebook.parse_errors(mapping, path) if config.is_selected(d.code, d.path)]
    result = FileResult(path, broken + [notebook.map_diagnostic(d, mapping, path) for d in outcome.remaining],
                        len(outcome.fixed), conflicts=len(outcome.conflicts),
                        fixed_codes=tuple(d.code for d in outcome.fixed))
    if outcome.error:
        result.errors.append(tool_diagnostic(FIX_ERROR, path, f"not fixed: {outcome.error}"))
        return result
    if not outcome.changed:
        return result
    try:
        new_text = notebook.apply_fixed_source(text, outcome.text, mapping)
    except notebook.NotebookError as err:
        result.errors.append(tool_diagnostic(FIX_ERROR, path, f"not fixed: {err}"))
        result.diagnostics = check_source(data, path, config, gate=False)
        result.fixed = 0
        return result
    result.fixed_text, result.fixed_bytes = new_text, new_text.encode("utf-8")
    new_mapping = notebook.virtual_source(new_text)[1]
    result.diagnostics = broken + [notebook.map_diagnostic(d, new_mapping, path) for d in outcome.remaining]
    if mode.diff:
        result.diff = unified_patch(text, new_text, path)  # the .ipynb itself: a patch git applies
        return result
    if write:
        error = write_atomically(path, data, result.fixed_bytes)
        if error:
            result.errors.append(tool_diagnostic(FIX_ERROR, path, f"not fixed: {error}"))
            result.diagnostics = check_source(data, path, config, gate=False)
            result.fixed = 0
    return result


def add_noqa_source(path: str, data: bytes, config: Config) -> FileResult:
    """`--add-noqa`: a `# noqa: CODE` for every diagnostic reported in this file (a notebook:
    on its cell's line), written atomically; what remains is what noqa cannot silence."""
    from . import suppress
    from .checker import check_decoded, check_source
    from .writer import write_atomically

    if path.endswith(".ipynb"):
        try:
            notebook_text = notebook.decode(data)
            text, mapping = notebook.virtual_source(notebook_text)
        except notebook.NotebookError:
            return FileResult(path, check_source(data, path, config, gate=False))

        def report(found: List[Diagnostic]) -> List[Diagnostic]:
            return notebook.parse_errors(mapping, path) + [notebook.map_diagnostic(d, mapping, path) for d in found]

        def encode(new_text: str) -> bytes:
            return notebook.apply_fixed_source(notebook_text, new_text, mapping).encode("utf-8")
    else:
        decoded = decode(data, path)
        if isinstance(decoded, Diagnostic):
            return FileResult(path, [decoded] if config.is_selected(decoded.code, path) else [])
        text, encoding = decoded
        report = list

        def encode(new_text: str) -> bytes:
            return new_text.encode(encoding)
    found = check_decoded(text, path, config, with_fixes=False)
    new_text, added = suppress.add_noqa(text, [d for d in found if d.path == path])
    if not added:
        return FileResult(path, report(found))
    after = check_decoded(new_text, path, config, with_fixes=False)
    error = "the result would not parse" if any(d.code == PARSE_ERROR for d in after) else None
    if error is None:
        try:
            error = write_atomically(path, data, encode(new_text))
        except notebook.NotebookError as err:  # the line is an IPython magic's
            error = str(err)
    if error:
        return FileResult(path, report(found), errors=[tool_diagnostic(
            FIX_ERROR, path, f"noqa not added: {error}")])
    return FileResult(path, report(after), noqa_added=added)


def _entry(cache_dir: str, key: str) -> Path:
    return Path(cache_dir) / key[:2] / key


def _cached_check(path: str, data: bytes, config: Config, cache_dir: Optional[str]):
    """Check through a content-addressed cache: tool version + config + path + bytes ->
    (diagnostics, key, dependencies, probes); key None without a cache.

    An entry also records the other files the analysis read (imported helpers) with
    their hashes, and the paths import resolution tried; it is used only while all of
    them are as they were."""
    from .analysis import Workspace
    from .checker import check_source

    if cache_dir is None:
        return check_source(data, path, config, gate=False), None, [], {}
    # The path as named (and, if relative, from where): the diagnostics spell paths that way.
    where = "" if os.path.isabs(path) else os.getcwd()
    key = hashlib.sha256(b"\0".join((_tool_fingerprint().encode(), config.fingerprint().encode(),
                                     os.fsencode(os.path.abspath(path)), os.fsencode(path),
                                     os.fsencode(where), data))).hexdigest()
    found = cache.load(_entry(cache_dir, key), key)
    if found is not None and all(_sha256(dep) == digest for dep, digest in found[0]) and \
            all(os.path.isfile(probe) == was for probe, was in found[1]):
        return found[2], key, [dep for dep, _ in found[0]], dict(found[1])
    workspace = Workspace(config.tables)
    diagnostics = check_source(data, path, config, workspace=workspace, gate=False)
    own = workspace.own
    dependencies = workspace.dependencies(own) if own is not None else []
    probes = workspace.probes(own) if own is not None else {}
    cache.store(_entry(cache_dir, key), key, dependencies, sorted(probes.items()), diagnostics)
    return diagnostics, key, [dep for dep, _ in dependencies], probes


_TOOL: List[str] = []
# The interpreter decides verdicts too (3.9 cannot parse `match`; nesting limits differ):
# virtualenvs of several Pythons share a project's cache without reading each other's entries.
INTERPRETER = f"{sys.implementation.name}-{platform.python_version()}"


def _tool_fingerprint() -> str:
    """The version plus the size and mtime of zgcheck's own modules: an edited
    (editable) install never reads results an older analysis cached."""
    if not _TOOL:
        here = Path(__file__).resolve().parent
        stats = sorted((str(p.relative_to(here)), p.stat().st_size, p.stat().st_mtime_ns)
                       for p in here.rglob("*.py") if "runtime" not in p.parts)
        _TOOL.append(hashlib.sha256(repr((__version__, INTERPRETER, stats)).encode()).hexdigest())
    return _TOOL[0]


def _sha256(path: str) -> Optional[str]:
    try:
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except OSError:
        return None


_GATE: Dict[str, "Workspace"] = {}


def _gate_workspace(config: Config) -> "Workspace":
    """A per-process Workspace for the import gate: it only reads bytes, so it is shared."""
    from .analysis import Workspace

    key = config.fingerprint()
    if key not in _GATE:
        _GATE.clear()
        _GATE[key] = Workspace(config.tables)
    return _GATE[key]


def prepare_cache(root: str = ".", directory: Optional[str] = None) -> Optional[str]:
    """The cache directory (under root, or the one given), created with a .gitignore; None
    if not writable."""
    directory = Path(directory) if directory else Path(root) / CACHE_DIR
    try:
        directory.mkdir(parents=True, exist_ok=True)
        ignore = directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Created by zgcheck\n*\n")
        tag = directory / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text("Signature: 8a477f597d28d172789f06886806bc55\n# zgcheck cache\n")
    except OSError:
        return None
    return str(directory)
