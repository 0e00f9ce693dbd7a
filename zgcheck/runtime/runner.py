"""Runs one script as `python script.py ARGS` would, under the instrumentation,
and restores the interpreter afterwards so that many scripts can share it."""

from __future__ import annotations

import importlib.util
import os
import random
import runpy
import signal
import sys
import sysconfig
import threading
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Callable, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch

from zgcheck.runtime.hooks import Instrumentation
from zgcheck.runtime.processes import ChildReports
from zgcheck.runtime.tracker import Tracker
from zgcheck.types import Diagnostic


@dataclass(frozen=True)
class RuntimeResult:
    """What running one script under the runtime checker found."""

    path: str
    diagnostics: Tuple[Diagnostic, ...]
    exit_code: int
    error: Optional[str] = None  # the script's own traceback, if it raised
    # Tracebacks of the checker's own failures (the script ran on regardless).
    internal_errors: Tuple[str, ...] = ()
    # Events observed: {"backward": n, "step": n, "zero": n} (absent when none),
    # added up over the script's process and its instrumented children.
    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    optimizers: int = 0  # distinct optimizers seen
    children: int = 0  # child processes that reported a backward, step or zero
    started: bool = True  # False: no such script or module (`error` says which)


class ScriptTimeout(BaseException):
    """Raised inside a script that outlives its time limit (BaseException, so a
    script's `except Exception` cannot swallow it)."""


def run_script(
    path: str,
    argv: Optional[Sequence[str]] = None,
    *,
    seed: Optional[int] = None,
    timeout: Optional[float] = None,
) -> RuntimeResult:
    """Run `path` as `__main__` with `sys.argv == [path, *argv]` under the checker.

    `seed` seeds torch, `random` and numpy first (None leaves them alone);
    `timeout` (seconds, main thread only) stops a script that runs too long.
    """
    script = os.path.abspath(path)
    if not os.path.isfile(script):
        return RuntimeResult(script, (), 2, f"can't open file {path!r}: no such file", started=False)
    run = lambda: runpy.run_path(script, run_name="__main__")  # noqa: E731
    return _run(script, run, [path, *(argv or ())], os.path.dirname(script), seed, timeout)


def run_module(
    name: str,
    argv: Optional[Sequence[str]] = None,
    *,
    seed: Optional[int] = None,
    timeout: Optional[float] = None,
) -> RuntimeResult:
    """Run module `name` as `python -m name ARGV` would, under the checker."""
    cwd = os.getcwd()
    with _isolated(cwd, [name]):
        try:
            origin = _module_origin(name)
        except Exception as exc:  # what `python -m` says of it, on one line
            error = f"Error while finding module specification for {name!r} ({type(exc).__name__}: {exc})"
            return RuntimeResult(name, (), 2, error, started=False)
    if origin is None:
        return RuntimeResult(name, (), 2, f"No module named {name!r}", started=False)
    run = lambda: runpy.run_module(name, run_name="__main__", alter_sys=True)  # noqa: E731
    return _run(origin, run, [origin, *(argv or ())], cwd, seed, timeout)


def _module_origin(name: str) -> Optional[str]:
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations is not None:
        spec = importlib.util.find_spec(name + ".__main__")
    return spec.origin if spec is not None and spec.has_location else None


def _run(script: str, run: Callable[[], object], argv: List[str], path0: str,
         seed: Optional[int], timeout: Optional[float]) -> RuntimeResult:
    tracker = Tracker()
    instrumentation = Instrumentation(tracker)
    exit_code, error = 0, None
    with _isolated(path0, argv), ChildReports() as children:
        if seed is not None:
            _seed(seed)
        try:
            # The timer is innermost: it is off before the patches come out.
            with instrumentation, children.watching(tracker, instrumentation), _time_limit(timeout):
                run()
        except SystemExit as exc:
            exit_code = _exit_code(exc.code)
        except (Exception, ScriptTimeout) as exc:
            exit_code, error = 1, _format_error(exc, script)
        reports = children.collect()
    for report in reports:
        tracker.findings.merge(report.findings, report.origin)
    return RuntimeResult(
        path=script,
        diagnostics=tracker.findings.diagnostics(),
        exit_code=exit_code,
        error=error,
        internal_errors=tuple(instrumentation.errors) + tuple(e for r in reports for e in r.errors)
        + children.errors,
        counts=MappingProxyType(dict(sum((r.counts for r in reports), tracker.counts))),
        optimizers=tracker.optimizers_seen + sum(r.optimizers for r in reports),
        children=sum(1 for r in reports if r.counts),
    )


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what the interpreter does with sys.exit("message")
    return 1


def _format_error(exc: BaseException, script: str) -> str:
    # Drop the runner's and runpy's frames: start at the script's first frame.
    tb: Optional[TracebackType] = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)


_LIBRARY_DIRS = tuple(
    {os.path.join(os.path.realpath(p), "") for k, p in sysconfig.get_paths().items() if "lib" in k}
)


def _is_script_module(module: object) -> bool:
    """A module the script brought in from its own tree (not a library)."""
    if getattr(module, "__name__", "").startswith("zgcheck"):
        return False
    filename = getattr(module, "__file__", None)
    # A namespace package has no file, only directories.
    places = [filename] if filename else list(getattr(module, "__path__", None) or ())
    return any(not os.path.realpath(p).startswith(_LIBRARY_DIRS) for p in places)


@contextmanager
def _isolated(path0: str, argv: List[str]) -> Iterator[None]:
    """Sets argv, sys.path[0] and the cwd like the interpreter would; restores
    them, torch's global switches and the module table afterwards."""
    saved_argv, saved_path, saved_cwd = sys.argv[:], sys.path[:], os.getcwd()
    saved_modules = set(sys.modules)
    saved_torch = (
        torch.is_grad_enabled(),
        torch.get_default_dtype(),
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_anomaly_enabled(),
    )
    sys.argv = list(argv)
    sys.path[0:1] = [path0]
    try:
        with warnings.catch_warnings():
            yield
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(saved_cwd)
        # The next script may have a helper module of the same name.
        for name in set(sys.modules) - saved_modules:
            if _is_script_module(sys.modules[name]):
                del sys.modules[name]
        grad, dtype, threads, deterministic, anomaly = saved_torch
        torch.set_grad_enabled(grad)
        torch.set_default_dtype(dtype)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.autograd.set_detect_anomaly(anomaly)


@contextmanager
def _time_limit(seconds: Optional[float]) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise ScriptTimeout(f"the script ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
