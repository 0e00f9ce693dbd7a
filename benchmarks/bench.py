"""Speed and memory of zgcheck against named peers on the same files, as ratios.

    python benchmarks/bench.py --corpus torch=/path/to/site-packages/torch --copy torch \\
        --corpus realworld=/path/to/repos --scale torch=25,50,100 \\
        --zgcheck /venv/bin/zgcheck --ruff /venv/bin/ruff --tools zgcheck,ruff \\
        --repeat 1 --repeat-for ruff=3 --repeat-for zgcheck.jobs1=0 --markdown results.md

benchmarks/README.md has the commands used, the settings of each peer and results.

The report opens with one row per corpus against ruff, in CPU seconds: zgcheck
cold (`--no-cache`), zgcheck warm (cache on, second run), ruff, cold/ruff,
warm/ruff and max RSS zgcheck/ruff. The full table per corpus follows.

`--scale NAME=25,50,100` adds a scaling series for corpus NAME: zgcheck cold and
ruff on nested subsets of its files. A subset is the first P% of the files, in
the order of the sha1 of each file's path relative to the corpus root. That order
is the same on every machine and spreads each subset over the whole tree, and
25% is inside 50%, which is inside 100%. 100% reuses the full run. For a copied
corpus each subset is copied alone, so it is a project of just those files.

Bytes that pass zgcheck's gate (`checker.may_hold_findings`, what the runner
checks before parsing a file) are asked of the zgcheck under test, in its own
interpreter: the shebang of the zgcheck script, or --zgcheck-python. The
scaling table gives CPU seconds per gated MB and a least-squares line through
the points, so it shows whether cold time grows linearly with those bytes.

Standard library only; every tool runs as a fresh subprocess (found on PATH or
given by flag; a tool that is not found is skipped and listed as such).

Same files for every tool: the benchmark walks each corpus itself (`.py`
files, skipping the directories zgcheck skips by default: `.git`, virtualenvs,
`__pycache__`, `build`, `dist`, `site-packages`, ...; `.gitignore` is *not*
honoured) and passes the same sorted list of absolute paths to every tool, so
no tool's own discovery changes the workload. Every run happens in a fresh
empty temporary working directory, so caches (`.zgcheck_cache`) never land in a
corpus or in this repository.

`--copy NAME` runs a corpus on a temporary copy of those files (same relative
layout, nothing else: no `.gitignore`, no `pyproject.toml`), outside any git
repository. Needed where a tool would skip files it is named explicitly:
fixit (trailrunner) applies the enclosing repository's `.gitignore` even to
explicit paths, and `/root/.pyenv/.gitignore` lists `/versions`, so in place
fixit checks none of a pyenv standard library. Not neutral for zgcheck under
`site-packages`: zgcheck never follows imports into a path containing
`site-packages`, and a copy of such a package is checked as a project, with
cross-module analysis.

Measured per run:
- wall time (perf_counter around spawn..reap); every number is the median over
  the runs of that row (--repeat, or --repeat-for per tool/variant);
- CPU time (user+sys) of the tool and every descendant it reaped, from
  `os.wait4` on the tool's process;
- peak RSS of the largest single process in the tree (`ru_maxrss` from
  `os.wait4`: Linux reports the maximum over the process and its reaped
  descendants, not their sum; `getrusage(RUSAGE_CHILDREN)` deltas cannot give
  a per-run peak, since that value only ever grows);
- peak memory of the whole tree: the sum of PSS
  (`/proc/PID/smaps_rollup`) over the tool and all its descendants, sampled
  every --sample-interval seconds (default 0.2; Linux only; PSS splits pages shared after
  fork, so workers are not double counted; short peaks between samples can be
  missed, and runs shorter than three samples show none). This is the number
  to compare for multi-process tools (zgcheck's process pool, torchfix's and
  fixit's worker pools); ruff's threads live in one process.

The benchmark makes itself a child subreaper (Linux), so a worker that its
parent did not reap is still reaped here and its rusage folded into the run.

Variants of zgcheck: `--no-cache` (the reference every ratio divides by),
`--no-cache --jobs 1`, and the cache: a cold run with the cache on, then a warm
run in the same working directory (the warm one is the "warm cache" row; the
cold run's time is shown beside it).

Status: a nonzero exit is normal for linters that find things. A run that
exceeds --timeout is killed (its whole session) and shown as TIMEOUT with its
numbers as lower bounds (≥). A run is a *crash* when it is killed by a signal,
prints a Python traceback that is not a per-file report, or exits with a code
that tool never uses for findings (zgcheck/ruff 2, ...). Per-file failures a
tool reports itself (torchfix exit 1, fixit exit 2/3 and its "EXCEPTION"
tracebacks, ZG9xx, ruff's and pyflakes' syntax errors) are counted, not called
crashes. zgcheck's ZG999 (internal error) diagnostics are listed. The script
exits 1 if any run crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

SKIP_DIRS = frozenset((
    ".git", ".hg", ".svn", ".bzr", ".venv", "venv", ".env", "env", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".eggs", "build", "dist", "node_modules",
    "site-packages", ".ipynb_checkpoints", ".zgcheck_cache", "__pypackages__", "_build", "buck-out",
))

REFERENCE = "zgcheck.nocache"
TOOLS = ("zgcheck", "ruff", "torchfix", "pyflakes", "fixit")
TRACEBACK = "Traceback (most recent call last)"


# --------------------------------------------------------------------------- corpus

def corpus_files(root: str) -> List[str]:
    """Every .py file under root (absolute, sorted), skipping SKIP_DIRS and virtualenvs."""
    out = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS
                         and not os.path.exists(os.path.join(directory, d, "pyvenv.cfg")))
        out.extend(os.path.join(directory, f) for f in files if f.endswith(".py"))
    return sorted(os.path.abspath(p) for p in out if os.path.isfile(p))


def corpus_stats(files: Sequence[str]) -> Dict[str, int]:
    """Sizes, and how many files pass each tool's cheap byte gate. Reading every
    file also warms the page cache before the first timed run."""
    stats = Counter(files=len(files))
    for path in files:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            stats["unreadable"] += 1
            continue
        stats["bytes"] += len(data)
        stats["lines"] += data.count(b"\n")
        # zgcheck's real byte gate is tighter (call shapes), but also lets through importers of helpers
        stats["mention_backward"] += b"backward" in data
        stats["mention_torch"] += b"torch" in data  # torchfix parses only these
    return dict(stats)


def subset(files: Sequence[str], root: str, percent: float) -> List[str]:
    """The first `percent`% of files in a fixed order (sha1 of each path relative to root),
    sorted again. The order is the same on every machine and for a copy, spreads a subset over
    the whole tree, and nests the subsets: 25% is inside 50%, which is inside 100%."""
    def rank(path: str) -> str:
        return hashlib.sha1(os.path.relpath(path, root).replace(os.sep, "/").encode()).hexdigest()
    n = max(1, round(len(files) * percent / 100))
    return sorted(sorted(files, key=rank)[:n])


# Runs in zgcheck's own interpreter: which of the files on stdin pass the gate the runner
# applies before parsing (`checker.may_hold_findings`, each file under its own configuration).
GATE_PROBE = """
import json, sys
from zgcheck import checker, config
try:
    from zgcheck.runner import _gate_workspace as workspace
except ImportError:
    workspace = lambda _: None
resolver = config.Resolver()
passed = []
for path in json.load(sys.stdin):
    with open(path, "rb") as handle:
        data = handle.read()
    file_config = resolver.for_file(path)
    if checker.may_hold_findings(data, path, file_config, workspace(file_config)):
        passed.append(path)
json.dump(passed, sys.stdout)
"""


def interpreter_of(exe: str) -> Optional[List[str]]:
    """The Python command in a console script's shebang (a venv's bin/zgcheck), else None."""
    try:
        with open(exe, "rb") as handle:
            first = handle.readline(512).decode("utf-8", "replace")
    except OSError:
        return None
    words = shlex.split(first[2:]) if first.startswith("#!") else []
    return words if any(os.path.basename(w).startswith("python") for w in words) else None


def gate_stats(python: Optional[List[str]], files: Sequence[str], log) -> Dict[str, Optional[int]]:
    """Files and bytes that pass zgcheck's gate, asked of the zgcheck under test; None when
    it cannot be asked (no interpreter, or the gate's functions moved)."""
    if not python:
        return {"gate_files": None, "gate_bytes": None}
    with tempfile.TemporaryDirectory(prefix="zgbench-gate-") as cwd:
        try:
            out = subprocess.run(python + ["-c", GATE_PROBE], input=json.dumps(list(files)), cwd=cwd,
                                 capture_output=True, text=True, timeout=3600)
            passed = json.loads(out.stdout) if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, ValueError):
            out, passed = None, None
    if passed is None:
        why = (out.stderr.strip().splitlines() or ["?"])[-1][:200] if out else "could not run it"
        log(f"gate probe failed ({why}); bytes passing zgcheck's gate are not reported")
        return {"gate_files": None, "gate_bytes": None}
    return {"gate_files": len(passed), "gate_bytes": sum(os.path.getsize(p) for p in passed)}


# --------------------------------------------------------------------------- tools

def tool_commands(name: str, exe: str, files: Sequence[str]) -> List[Tuple[str, str, List[List[str]]]]:
    """(key, label, commands) per variant; a variant with two commands runs both in
    one working directory and measures the last (the warm cache)."""
    if name == "zgcheck":
        base = [exe, "check", "--output-format", "concise"]
        return [
            ("zgcheck.nocache", "--no-cache", [base + ["--no-cache", *files]]),
            ("zgcheck.jobs1", "--no-cache --jobs 1", [base + ["--no-cache", "--jobs", "1", *files]]),
            ("zgcheck.warm", "warm cache", [base + list(files), base + list(files)]),
        ]
    if name == "ruff":
        # --isolated: ignore every pyproject/ruff.toml (the corpora carry their own), so the
        # default rule set applies everywhere; concise output like zgcheck's.
        return [("ruff", "default rules", [[exe, "check", "--isolated", "--no-cache", "--output-format", "concise",
                                            *files]])]
    if name == "torchfix":
        return [("torchfix", "default rules", [[exe, *files]])]
    if name == "pyflakes":
        return [("pyflakes", "", [[exe, *files]])]
    if name == "fixit":
        return [("fixit", "1 rule (NoRedundantFString)",
                 [[exe, "--rules", "fixit.rules:NoRedundantFString", "lint", *files]])]
    raise ValueError(name)


def tool_version(exe: str, name: str) -> str:
    args = [exe, "--version"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        text = (out.stdout.strip() or out.stderr.strip()).splitlines()[0]
        return re.sub(r"^(%s),? (version )?" % re.escape(name), "", text)
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


NORMAL_EXIT = {"zgcheck": {0, 1}, "ruff": {0, 1}, "torchfix": {0, 1}, "pyflakes": {0, 1}, "fixit": {0, 1, 2, 3}}

_ZG = re.compile(r": (ZG\d{3}) ")
_RUFF = re.compile(r"^.+?:\d+:\d+: ([A-Za-z][\w-]*)", re.M)
_TOR = re.compile(r"^.+?:\d+:\d+: (TOR\d+) ", re.M)
_FIXIT = re.compile(r"^\S.*@\d+:\d+ (\w+): ", re.M)
_LOCATED = re.compile(r"^.+?:\d+:\d+:? ", re.M)


def parse_output(name: str, rc: int, out: str, err: str, nfiles: int) -> Dict:
    """Files processed and diagnostics, as far as each tool's output tells."""
    info: Dict = {"codes": {}, "diagnostics": None, "files_processed": None, "file_failures": 0}
    if name == "zgcheck":
        codes = Counter(m.group(1) for line in out.splitlines() for m in [_ZG.search(line)] if m)
        info["codes"] = dict(sorted(codes.items()))
        info["diagnostics"] = sum(codes.values())
        m = re.search(r"\((\d+) files? checked\)|in (\d+) files? checked", err)
        info["files_processed"] = int(m.group(1) or m.group(2)) if m else None
        info["internal_errors"] = [line for line in out.splitlines() if " ZG999 " in line]
        info["lines"] = [line for line in out.splitlines() if _ZG.search(line)][:1000]
        info["file_failures"] = sum(n for c, n in codes.items() if c.startswith("ZG9"))
    elif name == "ruff":
        codes = Counter(_RUFF.findall(out))
        info["codes"] = dict(codes.most_common(10))
        info["diagnostics"] = sum(codes.values())
        info["files_processed"] = nfiles
        info["file_failures"] = codes.get("SyntaxError", 0) + codes.get("invalid-syntax", 0)
    elif name == "torchfix":
        codes = Counter(_TOR.findall(out))
        info["codes"] = dict(sorted(codes.items()))
        info["diagnostics"] = sum(codes.values())
        m = re.search(r"Finished checking (\d+) files", err)
        # No summary at all: no file mentioned "torch", torchfix returned before parsing any.
        info["files_processed"] = int(m.group(1)) if m else (0 if rc == 0 and not out.strip() else None)
        info["file_failures"] = 1 if rc == 1 else 0  # torchfix only says "some file failed"
    elif name == "pyflakes":
        info["diagnostics"] = len(_LOCATED.findall(out))
        info["file_failures"] = len(_LOCATED.findall(err))  # syntax / decoding errors
        info["files_processed"] = nfiles
    elif name == "fixit":
        codes = Counter(_FIXIT.findall(out))
        info["codes"] = dict(sorted(codes.items()))
        info["diagnostics"] = sum(codes.values())
        m = re.search(r"(\d+) files? (?:checked|clean)", err)
        info["files_processed"] = int(m.group(1)) if m else None
        # fixit prints "path: EXCEPTION: ..." and that file's traceback for a file it cannot
        # lint (exit code bit 2); those tracebacks are per-file reports, not a crash.
        # A chained exception prints several tracebacks for one file, so any number is expected then.
        info["file_failures"] = len(re.findall(r": EXCEPTION: ", err + out))
        info["expected_tracebacks"] = 10 ** 9 if info["file_failures"] else 0
    return info


# --------------------------------------------------------------------------- measuring

def _become_subreaper() -> bool:
    """PR_SET_CHILD_SUBREAPER: orphaned grandchildren are reparented to us, not init."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid: int) -> List[int]:
    """Direct children of pid, from /proc/PID/task/*/children (cheap: no scan of /proc)."""
    out: List[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                out.extend(int(x) for x in handle.read().split())
        except (OSError, ValueError):
            pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler(threading.Thread):
    """Peak of sum(PSS) and of the process count over root's descendants (and any
    orphans reparented to this process)."""

    def __init__(self, root: int, interval: float):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_kb, self.peak_procs, self.samples = 0, 0, 0
        self._stop_event = threading.Event()

    def run(self):
        me = os.getpid()
        while not self._stop_event.is_set():
            pids, todo = set(), [self.root] + [p for p in _children(me) if p != self.root]
            while todo:
                pid = todo.pop()
                if pid not in pids:
                    pids.add(pid)
                    todo.extend(_children(pid))
            total = sum(_pss_kb(p) for p in pids)
            self.peak_kb = max(self.peak_kb, total)
            self.peak_procs = max(self.peak_procs, len(pids))
            self.samples += 1
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()


def run_once(cmd: List[str], cwd: str, timeout: float, sample: Optional[float]) -> Dict:
    """Spawn cmd, reap it with wait4: wall, CPU and max RSS of the tree."""
    env = dict(os.environ, NO_COLOR="1", TERM="dumb")
    with tempfile.TemporaryFile("w+", errors="replace") as out, \
            tempfile.TemporaryFile("w+", errors="replace") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, start_new_session=True)
        sampler = TreeSampler(proc.pid, sample) if sample and os.path.isdir("/proc") else None
        if sampler:
            sampler.start()
        timed_out = False
        deadline = start + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    timed_out = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.005)
        except BaseException:  # interrupted: leave nothing of the tool running
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from reaping again
        if sampler:
            sampler.stop()
        cpu = usage.ru_utime + usage.ru_stime
        maxrss = usage.ru_maxrss
        # Whatever the tool left behind in its session (workers after a timeout) is
        # killed; as a subreaper we then reap every orphan into this run's rusage.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        reap_until = time.perf_counter() + 30
        while True:
            try:
                opid, _, ousage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not opid:
                if time.perf_counter() > reap_until:
                    break
                time.sleep(0.01)
                continue
            cpu += ousage.ru_utime + ousage.ru_stime
            maxrss = max(maxrss, ousage.ru_maxrss)
        out.seek(0)
        err.seek(0)
        return {
            "rc": proc.returncode, "wall": wall, "cpu": cpu, "maxrss_kb": maxrss,
            # Fewer than 3 samples: the run was too short for the sampler to see its peak.
            "tree_pss_kb": sampler.peak_kb if sampler and sampler.samples >= 3 else None,
            "tree_procs": sampler.peak_procs if sampler else None,
            "timed_out": timed_out, "stdout": out.read(), "stderr": err.read(),
        }


def classify(name: str, result: Dict, expected_tracebacks: int = 0) -> Optional[str]:
    """None for a normal run, else why it counts as a crash."""
    if result["timed_out"]:
        return "timeout"
    if result["rc"] < 0:
        return f"killed by signal {-result['rc']}"
    if (result["stderr"] + result["stdout"]).count(TRACEBACK) > expected_tracebacks:
        lines = [line for line in (result["stderr"] + result["stdout"]).splitlines() if line.strip()]
        last = next((line for line in reversed(lines) if re.match(r"^\w+(\.\w+)*(Error|Exception)\b", line)),
                    lines[-1])
        return f"traceback (rc={result['rc']}): {last.strip()[:200]}"
    if result["rc"] not in NORMAL_EXIT[name]:
        tail = result["stderr"].strip().splitlines()[-1:] or [""]
        return f"exit {result['rc']}: {tail[0][:200]}"
    return None


# --------------------------------------------------------------------------- driver

def copy_corpus(root: str, files: Sequence[str], into: str) -> List[str]:
    """The selected files copied to the same relative paths under `into`."""
    out = []
    for path in files:
        target = os.path.join(into, os.path.relpath(path, root))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(path, target)
        out.append(target)
    return out


@contextlib.contextmanager
def tree(root: str, files: Sequence[str], label: str, copy: bool) -> Iterator[Tuple[List[str], Optional[Tuple]]]:
    """(the files to run on, (copy root, corpus root) or None): the files themselves, or a
    temporary copy of just these files."""
    if not copy:
        yield list(files), None
        return
    with tempfile.TemporaryDirectory(prefix=f"zgbench-{label}-") as tmp:
        into = os.path.join(tmp, os.path.basename(root))
        yield copy_corpus(root, files, into), (into, root)


def bench_corpus(label: str, root: str, tools: Dict[str, str], repeats: Dict[str, int], timeout: float,
                 sample: Optional[float], log, copy: bool = False, scale: Sequence[float] = (),
                 gate_python: Optional[List[str]] = None) -> Dict:
    root = os.path.abspath(root)
    files = corpus_files(root)
    stats = corpus_stats(files)
    log(f"[{label}] {root}: {stats['files']} files, {stats.get('bytes', 0) / 1e6:.1f} MB")
    with tree(root, files, label, copy) as (run_files, copy_of):
        stats.update(gate_stats(gate_python, run_files, log))
        result = _bench_files(label, root, run_files, stats, copy_of, tools, repeats, timeout, sample, log)
    if scale:
        result["scaling"] = bench_scaling(label, root, files, scale, result, tools, repeats, timeout, sample,
                                          log, copy, gate_python)
    return result


SCALED = ("zgcheck.nocache", "ruff")


def bench_scaling(label: str, root: str, files: Sequence[str], percents: Sequence[float], full: Dict,
                  tools: Dict[str, str], repeats: Dict[str, int], timeout: float, sample: Optional[float],
                  log, copy: bool, gate_python: Optional[List[str]]) -> List[Dict]:
    """zgcheck cold and ruff on nested subsets of the corpus (see `subset`); a copied corpus
    copies each subset alone, so it is a project of those files. 100% is the full run."""
    only = {name: exe for name, exe in tools.items() if name in ("zgcheck", "ruff")}
    cold_only = dict(repeats, **{"zgcheck.jobs1": 0, "zgcheck.warm": 0})
    points = []
    for percent in sorted(set(percents)):
        part = subset(files, root, percent)
        if len(part) == len(files):
            stats, rows = full["stats"], full["rows"]
        else:
            stats = corpus_stats(part)
            name = f"{label} {percent:g}%"
            log(f"[{name}] {stats['files']} files, {stats.get('bytes', 0) / 1e6:.1f} MB")
            with tree(root, part, label, copy) as (run_files, copy_of):
                stats.update(gate_stats(gate_python, run_files, log))
                rows = _bench_files(name, root, run_files, stats, copy_of, only, cold_only, timeout, sample,
                                    log)["rows"]
        points.append({"percent": percent, "stats": stats, "full_run": rows is full["rows"],
                       "rows": [r for r in rows if r["key"] in SCALED]})
    return points


def _bench_files(label, root, files, stats, copy_of, tools, repeats, timeout, sample, log) -> Dict:
    rows: Dict[str, Dict] = {}
    plan = []
    for name, exe in tools.items():
        for key, variant, commands in tool_commands(name, exe, files):
            n = repeats.get(key, repeats.get(name, repeats[""]))
            if n <= 0:
                continue
            rows[key] = {"key": key, "tool": name, "variant": variant, "runs": [], "repeat": n,
                         "command": " ".join(commands[-1][:len(commands[-1]) - len(files)] + ["<files>"])}
            plan.append((key, name, variant, commands, n))
    for r in range(max((p[-1] for p in plan), default=0)):  # round-robin: drifting load spreads over all tools
        for key, name, variant, commands, n in plan:
            if r >= n:
                continue
            row = rows[key]
            with tempfile.TemporaryDirectory(prefix="zgbench-") as cwd:
                for i, cmd in enumerate(commands):
                    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
                    res = run_once(cmd, cwd, timeout, sample)
                    info = parse_output(name, res["rc"], res["stdout"], res["stderr"], len(files))
                    if copy_of:  # name the files as they are in the corpus, not in the copy
                        info = json.loads(json.dumps(info).replace(json.dumps(copy_of[0])[1:-1],
                                                                   json.dumps(copy_of[1])[1:-1]))
                    crash = classify(name, res, info.pop("expected_tracebacks", 0))
                    if i < len(commands) - 1:  # the cold run that fills the cache
                        row.setdefault("cold_runs", []).append({"wall": res["wall"], "cpu": res["cpu"],
                                                                "rc": res["rc"], "crash": crash})
                        if crash:
                            row["runs"].append({"rc": res["rc"], "wall": None, "cpu": None, "maxrss_kb": None,
                                                "tree_pss_kb": None, "tree_procs": None, "crash": "cold run: " + crash,
                                                "stderr_tail": res["stderr"][-3000:]})
                            break
                        continue
                    run = {k: res[k] for k in ("rc", "wall", "cpu", "maxrss_kb", "tree_pss_kb", "tree_procs")}
                    run.update(crash=None if res["timed_out"] else crash, timed_out=res["timed_out"], load=load, **info)
                    if crash:
                        run["stderr_tail"] = res["stderr"][-3000:]
                    row["runs"].append(run)
                    log(f"[{label}] {r + 1}/{n} {name} {variant}: {res['wall']:.2f}s "
                        f"cpu {res['cpu']:.1f}s rss {res['maxrss_kb'] / 1024:.0f}MB rc={res['rc']} "
                        f"load {load or 0:.1f}"
                        + (f" CRASH {crash}" if crash else ""))
    summary = []
    for row in rows.values():
        runs = row["runs"]
        if not runs:
            continue

        def med(key, runs=runs):
            vals = [x[key] for x in runs if x.get(key) is not None]
            return statistics.median(vals) if vals else None
        last = next((x for x in reversed(runs) if not x["crash"]), runs[-1])
        row.update(wall=med("wall"), cpu=med("cpu"), maxrss_kb=med("maxrss_kb"), tree_pss_kb=med("tree_pss_kb"),
                   tree_procs=max((x["tree_procs"] or 0) for x in runs), load=med("load"),
                   files_processed=last.get("files_processed"), diagnostics=last.get("diagnostics"),
                   codes=last.get("codes"), file_failures=last.get("file_failures"),
                   crashes=[x["crash"] for x in runs if x["crash"]],
                   timed_out=any(x.get("timed_out") for x in runs),
                   internal_errors=last.get("internal_errors"), lines=last.get("lines"))
        if row.get("cold_runs"):
            row["cold_wall"] = statistics.median(x["wall"] for x in row["cold_runs"])
            row["cold_cpu"] = statistics.median(x["cpu"] for x in row["cold_runs"])
        row["files_per_s"] = stats["files"] / row["wall"] if row["wall"] else None
        summary.append(row)
    ref = rows.get(REFERENCE)
    for row in summary:
        for key in ("wall", "cpu", "maxrss_kb", "tree_pss_kb"):
            base = ref.get(key) if ref else None
            row[f"{key}_ratio"] = (row[key] / base) if base and row.get(key) is not None else None
    return {"label": label, "root": root, "copied": bool(copy_of), "stats": stats, "rows": summary}


def _fmt(value, spec=".2f", suffix=""):
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _gate_words(stats: Dict) -> str:
    if stats.get("gate_files") is None:
        return ""
    return f"{stats['gate_files']} ({stats['gate_bytes'] / 1e6:.2f} MB) pass zgcheck's gate, "


def _times(value: Optional[float]) -> str:
    """A ratio to two significant figures or so: 64x, 2.1x, 0.05x."""
    if value is None:
        return "—"
    return f"{value:.0f}x" if value >= 10 else f"{value:.1f}x" if value >= 1 else f"{value:.2g}x"


def _value(row: Optional[Dict], key: str) -> Tuple[Optional[float], str]:
    """A row's median and "≥" when a run timed out (the number is then a lower bound)."""
    if not row or row.get(key) is None:
        return None, ""
    return row[key], "≥" if row.get("timed_out") else ""


def _secs(value: Optional[float]) -> str:
    return _fmt(value, ".2f" if value is not None and value < 1 else ".1f")


def _over(a: Tuple[Optional[float], str], b: Tuple[Optional[float], str]) -> str:
    if a[0] is None or not b[0]:
        return "—"
    return (a[1] if not b[1] else "?") + _times(a[0] / b[0])


SITE_PACKAGES = "site-packages"
COPIED = {True: "checked as a project from a copy outside site-packages", False: "a temporary copy"}
# Issue 15's targets against ruff: cold CPU, warm CPU, max RSS of the largest process.
TARGETS = (("cold", 3.0), ("warm", 0.1), ("RSS", 2.0))


def summary_markdown(corpora: Sequence[Dict]) -> str:
    """One row per corpus: zgcheck cold and warm against ruff, in CPU seconds and max RSS."""
    lines = ["| tree | zgcheck cold (CPU s) | zgcheck warm (CPU s) | ruff (CPU s) | cold/ruff | warm/ruff "
             "| max RSS zgcheck / ruff (MB) | within " + ", ".join(f"{t:g}x {n}" for n, t in TARGETS) + " |",
             "|---|--:|--:|--:|--:|--:|--:|---|"]
    for c in corpora:
        rows = {r["key"]: r for r in c["rows"]}
        cold, warm, ruff = (rows.get(k) for k in ("zgcheck.nocache", "zgcheck.warm", "ruff"))
        cpu = {n: _value(r, "cpu") for n, r in (("cold", cold), ("warm", warm), ("ruff", ruff))}
        rss = {n: _value(r, "maxrss_kb") for n, r in (("cold", cold), ("ruff", ruff))}
        ratios = {"cold": (cpu["cold"], cpu["ruff"]), "warm": (cpu["warm"], cpu["ruff"]),
                  "RSS": (rss["cold"], rss["ruff"])}
        verdicts = []
        for name, target in TARGETS:
            (a, low), (b, _) = ratios[name]
            ok = "?" if a is None or not b else "✗" if a / b > target else "?" if low else "✓"
            verdicts.append(f"{name} {ok}")
        s = c["stats"]
        mb = s.get("bytes", 0) / 1e6
        name = (f"{c['label']} ({s['files']:,} files, {mb:.{0 if mb >= 10 else 1}f} MB"
                + (", " + COPIED[SITE_PACKAGES in c["root"]] if c.get("copied") else "") + ")")
        memory = " / ".join(_fmt(v / 1024 if v else None, ".0f") for v, _ in (rss["cold"], rss["ruff"]))
        lines.append("| " + " | ".join([
            name, *(low + _secs(v) for v, low in (cpu["cold"], cpu["warm"], cpu["ruff"])),
            _over(cpu["cold"], cpu["ruff"]), _over(cpu["warm"], cpu["ruff"]),
            f"{memory} ({_over(rss['cold'], rss['ruff'])})", ", ".join(verdicts)]) + " |")
    return "\n".join(lines) + "\n"


def _fit(points: Sequence[Tuple[float, float]]) -> Optional[Tuple[float, float, float]]:
    """Least squares y = a + b*x: (a, b, the largest |residual|)."""
    if len(points) < 3:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if not sxx:
        return None
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    a = my - b * mx
    return a, b, max(abs(y - a - b * x) for x, y in points)


def scaling_markdown(corpus: Dict) -> str:
    """zgcheck cold and ruff on the nested subsets: cold CPU should grow with the gated bytes."""
    points = corpus["scaling"]
    gated = all(p["stats"].get("gate_bytes") is not None for p in points)
    how = "each subset copied alone to a temporary directory" if corpus.get("copied") else "in place"
    lines = [f"### Scaling: {corpus['label']} ({how})", "",
             "Nested subsets: the first N% of the files in the order of the sha1 of their relative paths. "
             "zgcheck cold is `--no-cache`; ruff has default rules and no cache. "
             + ("100% is the full run above." if any(p["full_run"] for p in points) else ""), "",
             "| files | % | MB | pass zgcheck's gate | gated MB | zgcheck cold (CPU s) | CPU s per MB "
             "| CPU s per gated MB | ruff (CPU s) | ruff CPU s per MB | cold/ruff | max RSS zgcheck / ruff (MB) |",
             "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    fit = []
    for p in points:
        s = p["stats"]
        rows = {r["key"]: r for r in p["rows"]}
        cold, ruff = _value(rows.get("zgcheck.nocache"), "cpu"), _value(rows.get("ruff"), "cpu")
        rss = [_value(rows.get(k), "maxrss_kb")[0] for k in SCALED]
        mb, gmb = s.get("bytes", 0) / 1e6, (s["gate_bytes"] / 1e6 if gated else None)
        if cold[0] is not None and not cold[1]:
            fit.append((gmb if gated else mb, cold[0]))

        def per(v, size):
            return v[1] + _fmt(v[0] / size, ".2f") if v[0] is not None and size else "—"
        lines.append("| " + " | ".join([
            f"{s['files']:,}", f"{p['percent']:g}", f"{mb:.1f}", _fmt(s.get("gate_files"), "d"), _fmt(gmb, ".2f"),
            cold[1] + _secs(cold[0]), per(cold, mb), per(cold, gmb), ruff[1] + _secs(ruff[0]),
            per(ruff, mb), _over(cold, ruff),
            " / ".join(_fmt(v / 1024 if v else None, ".0f") for v in rss)]) + " |")
    line = _fit(fit)
    if line:
        a, b, worst = line
        unit = "gated MB" if gated else "MB"
        lines += ["", f"Least squares over these points: zgcheck cold CPU ≈ {a:.1f} s + {b:.2f} s per {unit}; "
                      f"no point is more than {worst:.1f} s off that line."]
    return "\n".join(lines) + "\n"


def markdown(corpus: Dict) -> str:
    s = corpus["stats"]
    copied = " (run on a temporary copy)" if corpus.get("copied") else ""
    lines = [f"### {corpus['label']} — `{corpus['root']}`{copied}", "",
             f"{s['files']} `.py` files, {s.get('bytes', 0) / 1e6:.1f} MB, {s.get('lines', 0):,} lines; "
             + _gate_words(s) + f"{s.get('mention_backward', 0)} mention `backward`, "
             f"{s.get('mention_torch', 0)} mention `torch` (torchfix parses only those).", "",
             "| tool | variant | runs | wall (s) | wall tool/zgcheck | files/s | CPU (s) | CPU tool/zgcheck "
             "| max RSS, largest process (MB) | RSS ratio | peak tree PSS (MB) | PSS ratio | procs "
             "| files processed | diagnostics | load | status |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in corpus["rows"]:
        status = "ok"
        low = "≥" if r.get("timed_out") else ""  # a timed-out run only bounds the time from below
        if r.get("timed_out"):
            status = f"TIMEOUT (killed at {r['wall']:.0f}s; time, CPU and memory are lower bounds)"
        elif r["crashes"]:
            status = f"CRASH x{len(r['crashes'])}: {r['crashes'][0]}"
        elif r.get("file_failures"):
            status = "ok (some files failed to parse)" if r["tool"] == "torchfix" else \
                f"ok ({r['file_failures']} file failures)"
        variant = r["variant"]
        if r.get("cold_wall") is not None:
            variant += f" (cold run: {r['cold_wall']:.2f}s wall, {r['cold_cpu']:.1f}s CPU)"
        lines.append("| " + " | ".join([
            r["tool"], variant, str(len(r["runs"])), low + _fmt(r["wall"]), low + _fmt(r["wall_ratio"], ".2f", "x"),
            ("≤" if low else "") + _fmt(r["files_per_s"], ".0f"),
            low + _fmt(r["cpu"], ".1f"), low + _fmt(r["cpu_ratio"], ".2f", "x"),
            _fmt(r["maxrss_kb"] / 1024 if r["maxrss_kb"] else None, ".0f"), _fmt(r["maxrss_kb_ratio"], ".2f", "x"),
            _fmt(r["tree_pss_kb"] / 1024 if r["tree_pss_kb"] else None, ".0f"),
            _fmt(r["tree_pss_kb_ratio"], ".2f", "x"),
            str(r["tree_procs"] or "—"), _fmt(r["files_processed"], "d"), _fmt(r["diagnostics"], "d"),
            _fmt(r["load"], ".1f"), status,
        ]) + " |")
    return "\n".join(lines) + "\n"


def repo_commit() -> Optional[str]:
    """The commit of the repository this script lives in, "+dirty" if zgcheck/ has local changes."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "zgcheck"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty else "")) or None


def machine() -> Dict:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    info = {"platform": platform.platform(), "cpu": model, "cpus": os.cpu_count(),
            "python": sys.version.split()[0]}
    try:
        with open("/proc/meminfo") as handle:
            info["mem_gb"] = round(int(handle.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", required=True, metavar="[NAME=]DIR",
                        help="a directory of Python files (repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and variant (median reported)")
    parser.add_argument("--repeat-for", action="append", default=[], metavar="KEY=N",
                        help="runs for one tool or zgcheck variant (zgcheck.nocache, zgcheck.jobs1, zgcheck.warm, "
                             "ruff, torchfix, pyflakes, fixit); 0 skips it; repeatable")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    parser.add_argument("--sample-interval", type=float, default=0.2,
                        help="seconds between process-tree PSS samples; 0 disables")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    for name in TOOLS:
        parser.add_argument(f"--{name}", metavar="PATH", help=f"the {name} executable (default: on PATH)")
    parser.add_argument("--copy", action="append", default=[], metavar="NAME",
                        help="run this corpus (its label, or 'all') on a temporary copy of its selected files, "
                             "outside any git repository (repeatable); see the module docstring")
    parser.add_argument("--scale", action="append", default=[], metavar="NAME=P,P,...",
                        help="also run zgcheck cold and ruff on P%% of corpus NAME's files, for each P "
                             "(nested subsets; 100 reuses the full run), e.g. torch=25,50,100; repeatable")
    parser.add_argument("--zgcheck-python", metavar="COMMAND",
                        help="the Python that imports the zgcheck under test, to count the bytes passing its "
                             "gate (default: the zgcheck script's shebang; e.g. 'env PYTHONPATH=DIR "
                             "/venv/bin/python' for a frozen copy); 'none' skips the count")
    parser.add_argument("--zgcheck-commit", metavar="TEXT",
                        help="what to record as zgcheck's commit (default: this repository's HEAD)")
    parser.add_argument("--json", metavar="PATH", help="write all measurements as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables to this file")
    args = parser.parse_args(argv)

    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    tools, missing, versions = {}, [], {}
    for name in wanted:
        if name not in TOOLS:
            parser.error(f"unknown tool {name!r}")
        exe = getattr(args, name) or shutil.which(name)
        if exe and os.path.exists(exe):
            tools[name] = os.path.abspath(exe)
            versions[name] = tool_version(tools[name], name)
        else:
            missing.append(name)
    if "zgcheck" not in tools:
        parser.error("zgcheck not found (put it on PATH or pass --zgcheck PATH)")
    repeats = {"": args.repeat}
    for spec in args.repeat_for:
        key, _, n = spec.rpartition("=")
        if not key or not n.isdigit():
            parser.error(f"--repeat-for {spec!r}: expected KEY=N")
        repeats[key] = int(n)
    if repeats.get("zgcheck.nocache", repeats.get("zgcheck", args.repeat)) <= 0:
        parser.error("zgcheck.nocache is the reference: it needs at least one run")
    scales: Dict[str, List[float]] = {}
    for spec in args.scale:
        label, _, percents = spec.partition("=")
        try:
            values = [float(x) for x in percents.split(",") if x.strip()]
        except ValueError:
            values = []
        if not label or not values or not all(0 < v <= 100 for v in values):
            parser.error(f"--scale {spec!r}: expected NAME=P,P,... with 0 < P <= 100")
        scales.setdefault(label, []).extend(values)
    if args.zgcheck_python:
        gate_python = None if args.zgcheck_python == "none" else shlex.split(args.zgcheck_python)
    else:
        gate_python = interpreter_of(tools["zgcheck"])
        if not gate_python:
            print(f"{tools['zgcheck']} is not a Python console script: bytes passing zgcheck's gate are not "
                  "reported (pass --zgcheck-python)", file=sys.stderr)
    _become_subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through run_once's cleanup

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    commit = args.zgcheck_commit or repo_commit()
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    specs = []
    for spec in args.corpus:
        label, _, root = spec.rpartition("=")
        if not os.path.isdir(root):
            parser.error(f"{root}: not a directory")
        specs.append((label or os.path.basename(os.path.normpath(root)), root))
    unknown = set(scales) - {label for label, _ in specs}
    if unknown:
        parser.error(f"--scale names no --corpus: {', '.join(sorted(unknown))}")
    corpora = []
    for label, root in specs:
        corpora.append(bench_corpus(label, root, tools, repeats,
                                    args.timeout, args.sample_interval or None, log,
                                    copy=bool({"all", label} & set(args.copy)), scale=scales.get(label, ()),
                                    gate_python=gate_python))
    result = {
        "date": started.isoformat(timespec="seconds"), "duration_s": round(
            (datetime.datetime.now().astimezone() - started).total_seconds(), 1),
        "machine": machine(), "load_before": load_before,
        "load_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "repeat": repeats, "zgcheck_commit": commit, "tools": tools, "versions": versions, "missing": missing,
        "corpora": corpora,
    }
    m = result["machine"]
    loads = [_fmt(x[0] if x else None) for x in (load_before, result["load_after"])]
    text = [f"zgcheck benchmark, {result['date']}, {m['cpus']} CPUs ({m['cpu']}), {m.get('mem_gb', '?')} GB, "
            f"Python {m['python']}; median of the runs shown; load average before/after: {loads[0]} / {loads[1]}",
            "", "Versions: " + ", ".join(f"{k} {v}" + (f" (commit {commit})" if k == "zgcheck" and commit else "")
                                         for k, v in versions.items())
            + (f"; not found: {', '.join(missing)}" if missing else ""), ""]
    text += ["### Against ruff, in CPU seconds (user+sys of the process tree)", "", summary_markdown(corpora)]
    text += [markdown(c) for c in corpora]
    text += [scaling_markdown(c) for c in corpora if c.get("scaling")]
    crashes = [(c["label"], r["tool"], r["variant"], x) for c in corpora for r in c["rows"] for x in r["crashes"]]
    internal = [(c["label"], line) for c in corpora for r in c["rows"]
                if r["key"] == REFERENCE for line in (r.get("internal_errors") or [])]
    timeouts = [(c["label"], r["tool"], r["variant"]) for c in corpora for r in c["rows"] if r.get("timed_out")]
    if timeouts:
        text += [f"Timed out (--timeout {args.timeout:.0f}s):", ""]
        text += [f"- {c} {t} ({v})" for c, t, v in timeouts] + [""]
    if crashes:
        text += ["Crashes:", ""] + [f"- {c} {t} ({v}): {x}" for c, t, v, x in crashes] + [""]
    if internal:
        text += ["zgcheck internal errors (ZG999):", ""] + [f"- [{c}] {line}" for c, line in internal] + [""]
    report = "\n".join(text)
    print(report)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
