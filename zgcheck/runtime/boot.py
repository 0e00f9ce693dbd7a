"""Torch-free start-up pieces of the runtime checker.

- `after_import(name, callback)` runs a callback once module `name` has been
  imported (at once when it already is): the hooks shield themselves from
  torch.compile only when torch._dynamo is loaded (importing it costs 1.5 s),
  and a child process is instrumented only when it imports torch.
- `startup()` and `chain_sitecustomize()` are what the generated
  `sitecustomize.py` of a child process calls (see zgcheck.runtime.processes
  for the whole mechanism).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import traceback
from typing import Callable, Dict, List

# The directory children write their reports to; set by the parent for its run.
REPORT_DIR_ENV = "ZGCHECK_RUNTIME_REPORTS"

_lock = threading.RLock()


class _NotifyingLoader:
    """Forwards everything to the real loader, and runs the callbacks once the
    module has executed."""

    def __init__(self, loader, name: str, watcher: "_ImportWatcher") -> None:
        self._loader = loader
        self._name = name
        self._watcher = watcher

    def __getattr__(self, attr):
        return getattr(self._loader, attr)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._watcher.fire(self._name)


class _ImportWatcher(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.callbacks: Dict[str, List[Callable[[], None]]] = {}

    def find_spec(self, name, path, target=None):
        if name not in self.callbacks:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _NotifyingLoader(spec.loader, name, self)
                return spec
        return None

    def fire(self, name: str) -> None:
        with _lock:
            callbacks = self.callbacks.pop(name, [])
            if not self.callbacks and self in sys.meta_path:
                sys.meta_path.remove(self)
        for callback in callbacks:
            callback()


_watcher = _ImportWatcher()


def after_import(name: str, callback: Callable[[], None]) -> None:
    """Run `callback()` once `name` is imported: now if it already is."""
    with _lock:
        if name not in sys.modules:
            _watcher.callbacks.setdefault(name, []).append(callback)
            if _watcher not in sys.meta_path:
                sys.meta_path.insert(0, _watcher)
            return
    callback()


def cancel_after_import(name: str, callback: Callable[[], None]) -> None:
    """Forget a callback that has not run yet."""
    with _lock:
        callbacks = _watcher.callbacks.get(name, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            _watcher.callbacks.pop(name, None)
        if not _watcher.callbacks and _watcher in sys.meta_path:
            sys.meta_path.remove(_watcher)


def report_internal_error(directory: str, what: str) -> None:
    """Leaves the current exception's traceback where the parent collects it."""
    path = os.path.join(directory, f"error-{os.getpid()}-{threading.get_ident()}.txt")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{what} (pid {os.getpid()}):\n{traceback.format_exc()}")


def _instrument_child(directory: str) -> None:
    try:
        from zgcheck.runtime import require_torch

        require_torch()
        from zgcheck.runtime.processes import start_child

        start_child(directory)
    except Exception:
        report_internal_error(directory, "instrumenting a child process failed")


def startup() -> None:
    """Called from the generated sitecustomize.py in every Python child."""
    directory = os.environ.get(REPORT_DIR_ENV)
    if directory and os.path.isdir(directory):
        after_import("torch", lambda: _instrument_child(directory))


def chain_sitecustomize(site_dir: str) -> None:
    """Ours shadows the interpreter's own sitecustomize (Debian's, a venv's):
    run that one too, as if ours were not there, and leave sys.path as it was."""
    here = os.path.realpath(site_dir)
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)
