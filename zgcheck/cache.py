"""Cache entries: plain JSON with a checksum, never anything that can run code.

An entry is one file's diagnostics plus the other files (imported helpers) the
answer depended on, with their hashes. It is written as a SHA-256 line over a
JSON payload that names its own key; reading checks the checksum, the key and
the type of every field, and anything that fails is a miss, said once on
stderr. So a truncated, bit-flipped, stale or planted entry costs a re-check,
never a wrong answer or a crash, and a shared CI cache is as safe as the tree.

In front of those entries, one stat index (`StatIndex`) per cache directory
answers a run over an unchanged tree without reading, gating or hashing any
file: see its docstring.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .types import Applicability, Diagnostic, Edit, Fix, Related, Span

FORMAT = 2
Dependencies = List[Tuple[str, str]]
Probes = List[Tuple[str, bool]]


class Invalid(Exception):
    """The entry is not one this version wrote for this key."""


def load(entry: Path, key: str) -> Optional[Tuple[Dependencies, Probes, List[Diagnostic]]]:
    """The entry's (dependencies, import probes, diagnostics), or None: missing, or
    discarded with a note."""
    try:
        data = _read(entry)
        if data is None:
            return None
        _expect(data.get("format") == FORMAT, "unknown format")
        _expect(data.get("key") == key, "entry stored under another key")
        dependencies = [(_str(dep), _str(digest)) for dep, digest in _pairs(data.get("dependencies"))]
        probes = [(_str(probe), _bool(found)) for probe, found in _pairs(data.get("probes"))]
        return dependencies, probes, [_diagnostic(d) for d in _list(data.get("diagnostics"))]
    except (Invalid, ValueError, TypeError, RecursionError) as err:  # JSON errors are ValueErrors
        sys.stderr.write(f"zgcheck: discarded a bad cache entry {entry} ({err}); re-checking the file\n")
        sys.stderr.flush()  # a note, not a report: out before anything else is written
        return None


def store(entry: Path, key: str, dependencies: Sequence[Tuple[str, str]], probes: Sequence[Tuple[str, bool]],
          diagnostics: Sequence[Diagnostic]) -> None:
    """Write the entry atomically; a read-only tree is simply not cached."""
    _write(entry, {"format": FORMAT, "key": key, "dependencies": [list(d) for d in dependencies],
                   "probes": [list(p) for p in probes], "diagnostics": [_plain(d) for d in diagnostics]})


def _read(path: Path) -> Optional[dict]:
    """What `_write` wrote, or None if there is nothing; Invalid (or a ValueError, as JSON
    errors are) if it is damaged. The caller checks its format."""
    try:
        with open(path, "rb") as handle:
            blob = handle.read()
    except OSError:
        return None
    digest, _, payload = blob.partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise Invalid("checksum mismatch")
    data = json.loads(payload.decode("utf-8"))
    _expect(isinstance(data, dict), "not an object")
    return data


def _write(path: Path, data: dict) -> None:
    payload = json.dumps(data, separators=(",", ":")).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(tmp, path)
    except OSError:
        pass


# --- the stat index ---------------------------------------------------------------

INDEX = "index.json"
INDEX_FORMAT = 2
# A signature is trusted only when its mtime is this much older than the moment its file was
# read: a file written twice within the filesystem's timestamp granularity (2 s on FAT) keeps it.
RACY_NS = 2_000_000_000
# (mtime_ns, size, inode); None: no such path; (False,): a file import resolution looked for
# and did not find, in a directory whose own signature was too recent to trust.
Signature = Optional[Tuple[Any, ...]]


def signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class Basis:
    """What one file's verdict rests on: the other files it read, every path import
    resolution tried (and whether it was a file), the content entry holding its
    diagnostics (None: nothing to report), and when the check began reading (time_ns)."""

    files: Tuple[str, ...] = ()
    probes: Tuple[Tuple[str, bool], ...] = ()
    key: Optional[str] = None
    read_at: int = 0

    @classmethod
    def of(cls, files: Iterable[str], probes: Dict[str, bool], key: Optional[str] = None,
           read_at: int = 0) -> "Basis":
        found = {os.path.abspath(f) for f in files} | {p for p, was in probes.items() if was}
        return cls(tuple(sorted(found)), tuple(sorted(probes.items())), key, read_at)


class StatIndex:
    """(working directory, path as named) -> the basis of the file's last verdict, with the
    stat signature of the file and of every path in the basis, for one tool fingerprint.

    A file whose signatures all still match is answered without being read: from the
    content entry its basis names, or with nothing to report. One JSON file with a
    checksum, written atomically; a missing, corrupt or foreign index counts as empty.
    A directory import resolution searched counts by its stat or, when that changed, by the
    files looked for there and not found, by this entry or any other that saw the same stat
    (one list per directory keeps the index small; a match costs a re-check, never a wrong
    verdict): a module created under one of those names sends the file back, any other new
    entry (a log, an unrelated module) does not, and the directory's new stat is then stored
    so later runs need not look again. A file that was found is in the basis with its own
    stat. A signature is trusted only when its mtime is RACY_NS older than the moment the
    check began reading, so a file changed twice within one timestamp tick is never taken
    for unchanged; a directory changed that recently (the project root that just received
    .zgcheck_cache) counts by the probes made in it instead. Signatures are stored as
    (path, signature) versions: an entry keeps the versions its verdict saw.
    Writing the index drops the entries of files that no longer exist, wherever they are:
    such an entry can never match again, and runs on other parts of the tree share the index.
    """

    def __init__(self, path: Path, tool: str):
        self.path, self.tool = path, tool
        self.cwd = os.getcwd()
        self.started = time.time_ns()
        self._versions: List[Tuple[str, Signature]] = []
        self._ids: Dict[Tuple[str, Signature], int] = {}
        # (cwd, path) -> (config fingerprint, version ids with the file's own first, entry key)
        self._entries: Dict[Tuple[str, str], Tuple[str, List[int], Optional[str]]] = {}
        self._now: Dict[str, Signature] = {}  # this run's signatures, each path stat'ed once
        self._found: Dict[str, bool] = {}  # whether a path looked for is a file, each asked once
        self._holding: List[Optional[bool]] = []  # per version: does it still hold (None: not asked yet)
        self._looked: Dict[int, Set[str]] = {}  # a searched directory's version -> the files looked for there
        self._changed = False

    @classmethod
    def load(cls, directory: Path, tool: str) -> "StatIndex":
        index = cls(directory / INDEX, tool)
        try:
            data = _read(index.path)
            if data is None or data.get("format") != INDEX_FORMAT or data.get("tool") != tool:
                return index  # none yet, or another zgcheck's
            for i, (version, looked) in enumerate(_version(v) for v in _list(data.get("versions"))):
                index._versions.append(version)
                if looked is not None:
                    index._looked[i] = looked
            count = len(index._versions)
            for group in _list(data.get("groups")):  # the entries of one working directory and configuration
                cwd, config, entries = _fields(group, 3)
                cwd, config = _str(cwd), _str(config)
                for entry in _list(entries):
                    path, ids, key = _fields(entry, 3)
                    _expect(bool(_list(ids)) and all(type(i) is int and 0 <= i < count for i in ids), "bad ids")
                    index._entries[(cwd, _str(path))] = (config, ids, None if key is None else _str(key))
        except (Invalid, ValueError, TypeError, RecursionError) as err:
            sys.stderr.write(f"zgcheck: discarded a bad cache index {index.path} ({err}); rebuilding it\n")
            sys.stderr.flush()
            return cls(directory / INDEX, tool)
        index._ids = {version: i for i, version in enumerate(index._versions)}
        index._holding = [None] * len(index._versions)
        return index

    def _absolute(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.cwd, path))  # abspath, without a getcwd each time

    def current(self, path: str) -> Signature:
        if path not in self._now:
            self._now[path] = signature(path)
        return self._now[path]

    def lookup(self, path: str, config: str) -> Optional[Basis]:
        """The basis of path's recorded verdict if the file and everything in the basis are
        unchanged (and the configuration is the same); else None. Stats path either way,
        before anything reads it, for `record`."""
        own = self.current(self._absolute(path))
        entry = self._entries.get((self.cwd, path))
        if entry is None or entry[0] != config or own is None:
            return None
        holds = self._holding
        for i in entry[1]:
            if holds[i] is None:
                holds[i] = self._holds(i)
                self._refresh(i)
            if not holds[i]:
                return None
        return Basis(key=entry[2])

    def _refresh(self, i: int) -> None:
        """A directory whose stat changed while none of the files looked for there appeared:
        record the new stat (if old enough to trust), so later runs need not look again. The
        names are the version's, so it holds for every entry that has it."""
        path, sig = self._versions[i]
        now = self.current(path)
        if self._holding[i] and i in self._looked and now != sig and now is not None and \
                now[0] < self.started - RACY_NS:
            del self._ids[(path, sig)]
            self._versions[i] = (path, now)
            self._ids.setdefault(self._versions[i], i)  # an equal version recorded this run is merged on save
            self._changed = True

    def _holds(self, i: int) -> bool:
        path, sig = self._versions[i]
        if sig is not None and len(sig) == 1:
            return self._isfile(path) == sig[0]
        if self.current(path) == sig:
            return True
        # A searched directory whose stat changed: none of the files looked for there appeared.
        looked = self._looked.get(i)
        return looked is not None and not any(self._appeared(path, name) for name in looked)

    def _appeared(self, directory: str, name: str) -> bool:
        """Whether a file looked for in directory is there now. One looked for in a subdirectory
        that was missing: whether the subdirectory is, as what happens in it would not change
        this directory's stat."""
        head, inside, _ = name.partition(os.sep)
        return os.path.lexists(os.path.join(directory, head)) if inside else \
            self._isfile(os.path.join(directory, name))

    def _isfile(self, path: str) -> bool:
        if path not in self._found:
            self._found[path] = os.path.isfile(path)
        return self._found[path]

    def record(self, path: str, config: str, basis: Basis) -> None:
        """path's verdict rests on basis: remember it, unless a signature is too recent to trust."""
        trusted = (basis.read_at or self.started) - RACY_NS

        def recent(sig: Signature) -> bool:
            return sig is not None and sig[0] > trusted

        self._changed = True
        self._entries.pop((self.cwd, path), None)
        files = (self._absolute(path),) + basis.files
        versions = [(p, self.current(p)) for p in files]  # the file's own was taken before it was read
        if versions[0][1] is None or any(recent(sig) for _, sig in versions):
            return
        ids = [self._intern(v) for v in versions]
        missing: Dict[str, List[str]] = {}  # the files found are among basis.files
        for probe in (p for p, was in basis.probes if not was):  # a missing directory is created in its parent
            missing.setdefault(self._existing(os.path.dirname(probe)), []).append(probe)
        for directory, probes in missing.items():
            sig = self.current(directory)
            if sig is None or recent(sig):
                ids.extend(self._intern((p, (False,))) for p in probes)
                continue
            ids.append(self._intern((directory, sig)))
            cut = len(directory.rstrip(os.sep)) + 1
            self._looked.setdefault(ids[-1], set()).update(p[cut:] for p in probes)
        self._entries[(self.cwd, path)] = (config, list(dict.fromkeys(ids)), basis.key)

    def _existing(self, directory: str) -> str:
        """The directory, or its nearest ancestor that exists."""
        while self.current(directory) is None and os.path.dirname(directory) != directory:
            directory = os.path.dirname(directory)
        return directory

    def _intern(self, version: Tuple[str, Signature]) -> int:
        if version not in self._ids:
            self._ids[version] = len(self._versions)
            self._versions.append(version)
            self._holding.append(None)
        return self._ids[version]

    def save(self) -> None:
        """Write the index if this run changed it, without the entries of files that are gone,
        keeping only the versions entries use."""
        if not self._changed:
            return
        kept: Dict[Tuple[str, Signature], int] = {}
        looked: Dict[int, Set[str]] = {}
        groups: Dict[Tuple[str, str], list] = {}
        for (cwd, path), (config, ids, key) in self._entries.items():
            if self.current(os.path.normpath(os.path.join(cwd, path))) is None:
                continue
            new = [kept.setdefault(self._versions[i], len(kept)) for i in ids]
            for i, j in zip(ids, new):
                if i in self._looked:
                    looked.setdefault(j, set()).update(self._looked[i])
            groups.setdefault((cwd, config), []).append([path, new, key])
        versions = [[p] if sig is None else [p, *sig, *([sorted(looked[j])] if j in looked else [])]
                    for j, (p, sig) in enumerate(kept)]
        _write(self.path, {"format": INDEX_FORMAT, "tool": self.tool, "versions": versions,
                           "groups": [[cwd, config, entries] for (cwd, config), entries in groups.items()]})


def _version(value: Any) -> Tuple[Tuple[str, Signature], Optional[Set[str]]]:
    """[path], [path, false], [path, mtime, size, inode], or a searched directory's
    [path, mtime, size, inode, [name looked for, ...]]: (version, names or None)."""
    _expect(type(value) is list and len(value) in (1, 2, 4, 5) and type(value[0]) is str, "bad version")
    if len(value) == 2:
        return (value[0], (_bool(value[1]),)), None
    _expect(set(map(type, value[1:4])) <= {int}, "bad signature")
    looked = {_str(name) for name in _list(value[4])} if len(value) == 5 else None
    return (value[0], tuple(value[1:4]) or None), looked


def _plain(d: Diagnostic) -> dict:
    fix = None if d.fix is None else {"title": d.fix.title, "applicability": int(d.fix.applicability),
                                      "edits": [[e.start_line, e.start_col, e.end_line, e.end_col, e.content]
                                                for e in d.fix.edits]}
    return {"code": d.code, "name": d.name, "message": d.message, "path": d.path, "span": _span_plain(d.span),
            "related": [[r.message, r.path, _span_plain(r.span), r.cell] for r in d.related],
            "fix": fix, "cell": d.cell, "evidence": list(d.evidence)}


def _span_plain(s: Span) -> List[int]:
    return [s.start_line, s.start_col, s.end_line, s.end_col]


def _diagnostic(d: Any) -> Diagnostic:
    _expect(isinstance(d, dict), "diagnostic is not an object")
    fix = d.get("fix")
    if fix is not None:
        _expect(isinstance(fix, dict), "fix is not an object")
        applicability = fix.get("applicability")
        _expect(applicability in [int(a) for a in Applicability], "unknown applicability")
        fix = Fix(_str(fix.get("title")), Applicability(applicability),
                  tuple(_edit(e) for e in _list(fix.get("edits"))))
    return Diagnostic(_str(d.get("code")), _str(d.get("name")), _str(d.get("message")), _str(d.get("path")),
                      _span(d.get("span")), tuple(_related(r) for r in _list(d.get("related"))), fix,
                      _optional_int(d.get("cell")), tuple(_str(e) for e in _list(d.get("evidence"))))


def _related(r: Any) -> Related:
    message, path, span, cell = _fields(r, 4)
    return Related(_str(message), _str(path), _span(span), _optional_int(cell))


def _edit(e: Any) -> Edit:
    *position, content = _fields(e, 5)
    return Edit(*(_int(n) for n in position), _str(content))


def _span(s: Any) -> Span:
    return Span(*(_int(n) for n in _fields(s, 4)))


def _fields(value: Any, n: int) -> list:
    _expect(isinstance(value, list) and len(value) == n, f"expected a list of {n}")
    return value


def _pairs(value: Any) -> List[list]:
    return [_fields(v, 2) for v in _list(value)]


def _list(value: Any) -> list:
    _expect(isinstance(value, list), "expected a list")
    return value


def _str(value: Any) -> str:
    _expect(isinstance(value, str), "expected a string")
    return value


def _bool(value: Any) -> bool:
    _expect(isinstance(value, bool), "expected a boolean")
    return value


def _int(value: Any) -> int:
    _expect(isinstance(value, int) and not isinstance(value, bool) and value >= 0, "expected a position")
    return value


def _optional_int(value: Any) -> Optional[int]:
    return None if value is None else _int(value)


def _expect(condition: bool, why: str) -> None:
    if not condition:
        raise Invalid(why)
