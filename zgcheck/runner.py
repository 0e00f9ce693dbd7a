"""Files -> results: check or fix each file, in a process pool, through the cache."""

from __future__ import annotations

import hashlib
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import __version__, cache, fixes, notebook
from . import source as sourcemod
from .checker import check_decoded, check_source, may_hold_findings
from .config import Config
from .analysis import Workspace
from .types import Diagnostic
from .writer import unified_patch, write_atomically

# Below this many files a process pool costs more than it saves.
PARALLEL_THRESHOLD = 16
CACHE_DIR = ".zgcheck_cache"


@dataclass(frozen=True)
class Mode:
    fix: bool = False
    unsafe: bool = False
    diff: bool = False  # show what --fix would change, write nothing
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


def run(paths: Sequence[str], config: Config, mode: Mode, jobs: int,
        progress: Optional[Callable[[int], None]] = None) -> List[FileResult]:
    """Results in the order of paths; progress(n) is told as each n files are done."""
    tick = progress or (lambda n: None)
    if jobs <= 1 or len(paths) < PARALLEL_THRESHOLD:
        out = []
        for p in paths:
            out.append(process(p, config, mode))
            tick(1)
        return out
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
    return [done[p] for p in paths]


def _process_chunk(paths: List[str], config: Config, mode: Mode) -> List[FileResult]:
    return [process(p, config, mode) for p in paths]


def _isolated(paths: List[str], config: Config, mode: Mode, jobs: int, tick) -> Dict[str, FileResult]:
    """Each file in a one-worker pool of its own lane: a file that kills its worker is ZG999."""
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
                out[path] = FileResult(path, [sourcemod.tool_diagnostic(
                    sourcemod.INTERNAL_ERROR, path,
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
    try:
        return sourcemod.with_deep_stack(_process, path, config, mode)
    except Exception as err:  # never a traceback for the run: report it and go on
        where = traceback.extract_tb(err.__traceback__)[-1]
        return FileResult(path, [sourcemod.tool_diagnostic(
            sourcemod.INTERNAL_ERROR, path,
            f"internal error: {type(err).__name__}: {err} (at {where.filename}:{where.lineno}); please report it")])


def _process(path: str, config: Config, mode: Mode) -> FileResult:
    try:
        data = sourcemod.read_bytes(path)
    except OSError as err:
        return FileResult(path, [sourcemod.tool_diagnostic(
            sourcemod.READ_ERROR, path, f"cannot read: {err.strerror or err}")])
    if not may_hold_findings(data, path, config, _gate_workspace(config)):
        return FileResult(path)
    if mode.fix or mode.diff:
        return fix_source(path, data, config, mode)
    return FileResult(path, _cached_check(path, data, config, mode.cache_dir))


def fix_source(path: str, data: bytes, config: Config, mode: Mode, write: bool = True) -> FileResult:
    if path.endswith(".ipynb"):
        return fix_notebook(path, data, config, mode, write)
    decoded = sourcemod.decode(data, path)
    if isinstance(decoded, Diagnostic):
        return FileResult(path, [decoded] if config.is_selected(decoded.code, path) else [])
    text, encoding = decoded
    outcome = fixes.fix_text(text, lambda t: check_decoded(t, path, config), unsafe=mode.unsafe)
    result = FileResult(path, outcome.remaining, len(outcome.fixed), conflicts=len(outcome.conflicts),
                        fixed_codes=tuple(d.code for d in outcome.fixed))
    if outcome.error:
        result.errors.append(sourcemod.tool_diagnostic(sourcemod.FIX_ERROR, path, f"not fixed: {outcome.error}"))
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
            result.errors.append(sourcemod.tool_diagnostic(sourcemod.FIX_ERROR, path, f"not fixed: {error}"))
            result.diagnostics = check_decoded(text, path, config)
            result.fixed = 0
    return result


def fix_notebook(path: str, data: bytes, config: Config, mode: Mode, write: bool = True) -> FileResult:
    """Fix the notebook's virtual module; write back only the cells that changed."""
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
        result.errors.append(sourcemod.tool_diagnostic(sourcemod.FIX_ERROR, path, f"not fixed: {outcome.error}"))
        return result
    if not outcome.changed:
        return result
    try:
        new_text = notebook.apply_fixed_source(text, outcome.text, mapping)
    except notebook.NotebookError as err:
        result.errors.append(sourcemod.tool_diagnostic(sourcemod.FIX_ERROR, path, f"not fixed: {err}"))
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
            result.errors.append(sourcemod.tool_diagnostic(sourcemod.FIX_ERROR, path, f"not fixed: {error}"))
            result.diagnostics = check_source(data, path, config, gate=False)
            result.fixed = 0
    return result


def _cached_check(path: str, data: bytes, config: Config, cache_dir: Optional[str]) -> List[Diagnostic]:
    """Check through a content-addressed cache: tool version + config + path + bytes.

    An entry also records the other files the analysis read (imported helpers)
    with their hashes; it is used only while all of them are unchanged."""
    if cache_dir is None:
        return check_source(data, path, config, gate=False)
    key = hashlib.sha256(b"\0".join((_tool_fingerprint().encode(), config.fingerprint().encode(),
                                     os.path.abspath(path).encode(), data))).hexdigest()
    entry = Path(cache_dir) / key[:2] / key
    found = cache.load(entry, key)
    if found is not None and all(_sha256(dep) == digest for dep, digest in found[0]):
        return found[1]
    workspace = Workspace(config.tables)
    diagnostics = check_source(data, path, config, workspace=workspace, gate=False)
    dependencies = workspace.dependencies(workspace.own) if workspace.own is not None else []
    cache.store(entry, key, dependencies, diagnostics)
    return diagnostics


_TOOL: List[str] = []


def _tool_fingerprint() -> str:
    """The version plus the size and mtime of zgcheck's own modules: an edited
    (editable) install never reads results an older analysis cached."""
    if not _TOOL:
        here = Path(__file__).resolve().parent
        stats = sorted((str(p.relative_to(here)), p.stat().st_size, p.stat().st_mtime_ns)
                       for p in here.rglob("*.py") if "runtime" not in p.parts)
        _TOOL.append(hashlib.sha256(repr((__version__, stats)).encode()).hexdigest())
    return _TOOL[0]


def _sha256(path: str) -> Optional[str]:
    try:
        return hashlib.sha256(sourcemod.read_bytes(path)).hexdigest()
    except OSError:
        return None


_GATE: Dict[str, Workspace] = {}


def _gate_workspace(config: Config) -> Workspace:
    """A per-process Workspace for the import gate: it only reads bytes, so it is shared."""
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
