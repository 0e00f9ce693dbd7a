"""Child processes of the script report what they found to the parent.

How a child gets instrumented:
- The parent makes a temporary directory for the run, writes a small
  `sitecustomize.py` into `<dir>/site`, puts that first on PYTHONPATH and sets
  ZGCHECK_RUNTIME_REPORTS=<dir>. Every Python the script starts with the same
  interpreter (multiprocessing spawn and forkserver, torch.multiprocessing.spawn,
  `subprocess.run([sys.executable, ...])`, and their own children) runs it at
  start-up: it runs the interpreter's own sitecustomize too, and instruments
  the child once it imports torch, so a child that never does pays nothing.
- A forked child (multiprocessing fork, os.fork) inherits the installed hooks
  and the tracker: an at-fork handler starts a fresh record for it.
- A child writes `<dir>/<pid>.json` as it ends: at interpreter exit (atexit)
  or at `os._exit`, which is how multiprocessing's fork and forkserver
  children end. Its checker errors go there too (and the parent exits 2).
- After the script, the parent joins the non-daemon multiprocessing children
  it left running (as the interpreter would at exit), reads the reports, adds
  each finding with the child's rank (torch.distributed, else $RANK) and pid,
  stops the forkserver if the run started one (it would hand this run's
  environment to the next run's children), and removes the directory.

Plain files rather than a pipe or a socket: nothing to keep open across fork,
exec or a crash of the parent, and a child killed mid-run only loses its own
report.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from zgcheck.runtime import boot
from zgcheck.runtime.hooks import Instrumentation
from zgcheck.runtime.tracker import Tracker

# Children report ZG003 too when this is "1".

# The directory that holds the zgcheck package, for a child that cannot import it.
_ZGCHECK_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SITECUSTOMIZE = f"""\
# Written by zgcheck verify: instruments this child for the parent's run.
import os
import sys
boot = None
try:
    try:
        from zgcheck.runtime import boot
    except ImportError:
        sys.path.append({_ZGCHECK_ROOT!r})
        from zgcheck.runtime import boot
    boot.startup()
except Exception:  # the parent reports it as an error of the checker
    import traceback
    with open(os.path.join(os.environ[{boot.REPORT_DIR_ENV!r}], f"error-{{os.getpid()}}-boot.txt"), "a") as f:
        f.write(f"starting zgcheck in a child failed (pid {{os.getpid()}}):\\n" + traceback.format_exc())
if boot is not None:  # the interpreter's own sitecustomize, whose errors are its own
    boot.chain_sitecustomize(os.path.dirname(__file__))
"""


@dataclass(frozen=True)
class ChildReport:
    origin: str  # "rank 1, pid 4242"
    findings: list
    counts: Counter
    optimizers: int
    errors: Tuple[str, ...]


# What an at-fork handler hands to the child: the live tracker of this process.
_watched: Optional[Tuple[Tracker, Instrumentation, str]] = None
_session: Optional["_ChildSession"] = None
_fork_handler_installed = False


class ChildReports:
    """`with ChildReports() as children:` for one run of a script."""

    def __init__(self) -> None:
        self.directory = ""
        self.errors: Tuple[str, ...] = ()
        self._saved_env: Dict[str, Optional[str]] = {}

    def __enter__(self) -> "ChildReports":
        self.directory = tempfile.mkdtemp(prefix="zgcheck-verify-")
        site = os.path.join(self.directory, "site")
        os.mkdir(site)
        with open(os.path.join(site, "sitecustomize.py"), "w", encoding="utf-8") as handle:
            handle.write(_SITECUSTOMIZE)
        path = os.environ.get("PYTHONPATH")
        self._set_env("PYTHONPATH", site + (os.pathsep + path if path else ""))
        self._set_env(boot.REPORT_DIR_ENV, self.directory)
        return self

    def __exit__(self, *exc) -> None:
        _stop_forkserver()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(self.directory, ignore_errors=True)

    def _set_env(self, name: str, value: str) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    @contextmanager
    def watching(self, tracker: Tracker, instrumentation: Instrumentation) -> Iterator[None]:
        """While the script runs, a forked child continues with a record of its own."""
        global _watched
        _install_fork_handler()
        _watched = (tracker, instrumentation, self.directory)
        try:
            yield
        finally:
            _watched = None

    def collect(self) -> List[ChildReport]:
        _join_children()
        reports, errors = [], []
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            if name.startswith("error-"):
                with open(path, encoding="utf-8") as handle:
                    errors.append(handle.read())
            elif name.endswith(".json"):
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
                reports.append(ChildReport(_origin(data), data["findings"], Counter(data["counts"]),
                                           data["optimizers"], tuple(data["errors"])))
        self.errors = tuple(errors)
        return reports


def _stop_forkserver() -> None:
    """multiprocessing keeps one forkserver per process, and its children get
    the environment it started with: the next run must start its own."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_pid", None) is not None and hasattr(server, "_stop"):
        server._stop()


def _origin(data: dict) -> str:
    rank = data.get("rank")
    return f"rank {rank}, pid {data['pid']}" if rank is not None else f"pid {data['pid']}"


def _join_children() -> None:
    """The interpreter joins non-daemon multiprocessing children at exit; the
    script's exit is now, so that its children's reports are in."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None:
        return
    for child in multiprocessing.active_children():
        if not child.daemon:
            child.join()


def _rank() -> Optional[int]:
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except Exception:  # a half torn-down process group: fall back on the environment
        pass
    rank = os.environ.get("RANK")
    return int(rank) if rank and rank.isdigit() else None


class _ChildSession:
    """The record of one child process, written out when it ends."""

    def __init__(self, tracker: Tracker, instrumentation: Instrumentation, directory: str) -> None:
        self.tracker = tracker
        self.instrumentation = instrumentation
        self.directory = directory
        self.pid = os.getpid()
        self.rank: Optional[int] = None
        tracker.on_report = self._note_rank  # while the process group is still up

    def _note_rank(self) -> None:
        self.rank = _rank()

    def write(self) -> None:
        if os.getpid() != self.pid or not os.path.isdir(self.directory):
            return  # an inherited copy in a forked grandchild, or a run long over
        try:
            self._write()
        except Exception:
            boot.report_internal_error(self.directory, "writing a child's report failed")

    def _write(self) -> None:
        rank = _rank()
        data = {
            "pid": self.pid,
            "rank": rank if rank is not None else self.rank,
            "findings": self.tracker.findings.to_json(),
            "counts": dict(self.tracker.counts),
            "optimizers": self.tracker.optimizers_seen,
            "errors": list(self.instrumentation.errors),
        }
        path = os.path.join(self.directory, f"{self.pid}.json")
        with open(path + ".part", "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(path + ".part", path)


def _begin_session(tracker: Tracker, instrumentation: Instrumentation, directory: str) -> None:
    global _session, _watched
    _watched = (tracker, instrumentation, directory)
    _session = _ChildSession(tracker, instrumentation, directory)
    atexit.register(_session.write)
    if getattr(os._exit, "__module__", None) != __name__:
        os._exit = _exit_after_report(os._exit)


def _exit_after_report(original_exit):
    def _exit(code: int) -> None:
        if _session is not None:
            _session.write()
        original_exit(code)

    return _exit


def _after_fork_in_child() -> None:
    watched = _watched
    if watched is None:
        return
    tracker, instrumentation, directory = watched
    try:
        tracker.reset_record()
        instrumentation.errors = []
        _begin_session(tracker, instrumentation, directory)
    except Exception:
        boot.report_internal_error(directory, "instrumenting a forked child failed")


def _install_fork_handler() -> None:
    global _fork_handler_installed
    if not _fork_handler_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_handler_installed = True


def start_child(directory: str) -> None:
    """Instruments this (fresh) child process for the rest of its life."""
    tracker = Tracker()
    instrumentation = Instrumentation(tracker)
    instrumentation.__enter__()
    _install_fork_handler()
    _begin_session(tracker, instrumentation, directory)
