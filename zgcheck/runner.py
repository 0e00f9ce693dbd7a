"""Files -> results: check or fix each file, in a process pool, through the cache."""

from __future__ import annotations

import difflib
import hashlib
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

from . import __version__, fixes
from . import source as sourcemod
from .checker import check_source, check_text
from .config import Config
from .types import Diagnostic
from .writer import write_atomically

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


def run(paths: Sequence[str], config: Config, mode: Mode, jobs: int) -> List[FileResult]:
    if jobs <= 1 or len(paths) < PARALLEL_THRESHOLD:
        return [process(p, config, mode) for p in paths]
    chunks = [list(paths[i::jobs * 4]) for i in range(jobs * 4)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = pool.map(_process_chunk, chunks, [config] * len(chunks), [mode] * len(chunks))
        merged = [r for chunk in results for r in chunk]
    order = {p: i for i, p in enumerate(paths)}
    return sorted(merged, key=lambda r: order[r.path])


def _process_chunk(paths: List[str], config: Config, mode: Mode) -> List[FileResult]:
    return [process(p, config, mode) for p in paths]


def process(path: str, config: Config, mode: Mode) -> FileResult:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return FileResult(path, [sourcemod.tool_diagnostic(
            sourcemod.READ_ERROR, path, f"cannot read: {err.strerror or err}")])
    if not sourcemod.may_hold_events(data):
        return FileResult(path)
    if mode.fix or mode.diff:
        return fix_source(path, data, config, mode)
    return FileResult(path, _cached_check(path, data, config, mode.cache_dir))


def fix_source(path: str, data: bytes, config: Config, mode: Mode, write: bool = True) -> FileResult:
    decoded = sourcemod.decode(data, path)
    if isinstance(decoded, Diagnostic):
        return FileResult(path, [decoded] if config.is_selected(decoded.code) else [])
    text, encoding = decoded
    outcome = fixes.fix_text(text, lambda t: check_text(t, path, config), unsafe=mode.unsafe)
    result = FileResult(path, outcome.remaining, len(outcome.fixed), conflicts=len(outcome.conflicts))
    if outcome.error:
        result.errors.append(sourcemod.tool_diagnostic(sourcemod.FIX_ERROR, path, f"not fixed: {outcome.error}"))
        return result
    if not outcome.changed:
        return result
    if mode.diff:
        result.diff = "".join(difflib.unified_diff(
            text.splitlines(keepends=True), outcome.text.splitlines(keepends=True), path, path))
        result.fixed = len(outcome.fixed)
        return result
    if write:
        error = write_atomically(path, data, outcome.text.encode(encoding))
        if error:
            result.errors.append(sourcemod.tool_diagnostic(sourcemod.FIX_ERROR, path, f"not fixed: {error}"))
            result.diagnostics = check_text(text, path, config)
            result.fixed = 0
    return result


def _cached_check(path: str, data: bytes, config: Config, cache_dir: Optional[str]) -> List[Diagnostic]:
    if cache_dir is None:
        return check_source(data, path, config)
    key = hashlib.sha256(b"\0".join((__version__.encode(), _fingerprint(config).encode(),
                                     os.path.abspath(path).encode(), data))).hexdigest()
    entry = Path(cache_dir) / key[:2] / key
    try:
        with open(entry, "rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        pass
    diagnostics = check_source(data, path, config)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            pickle.dump(diagnostics, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)
    except OSError:
        pass  # a read-only tree still gets checked, just not cached
    return diagnostics


def _fingerprint(config: Config) -> str:
    fingerprint = getattr(config, "fingerprint", None)
    return fingerprint() if callable(fingerprint) else repr(config)


def prepare_cache(root: str = ".") -> Optional[str]:
    """The cache directory under root, created with a .gitignore; None if not writable."""
    directory = Path(root) / CACHE_DIR
    try:
        directory.mkdir(exist_ok=True)
        ignore = directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Created by zgcheck\n*\n")
        tag = directory / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text("Signature: 8a477f597d28d172789f06886806bc55\n# zgcheck cache\n")
    except OSError:
        return None
    return str(directory)
