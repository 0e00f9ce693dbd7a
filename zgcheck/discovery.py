"""Which files to check: paths, default excludes, .gitignore (nested), excludes from config and CLI.

Exclude patterns are gitignore-style: a pattern without a slash matches a
name at any depth (`build`, `*_pb2.py`), one with a slash is anchored to the
directory it is relative to (`src/legacy/`, `/setup.py`), `**` spans
directories. Files named on the command line are always checked unless
`--force-exclude` is given.

`.gitignore` files are honoured as git does: every `.gitignore` from the
file's directory up to the repository root (the directory holding `.git`)
applies, a deeper file overrides a shallower one (so `!keep.py` in a nested
`.gitignore` re-includes what the parent ignored), and `.git/info/exclude`
counts as the shallowest. A file inside an ignored directory stays ignored.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:
    import pathspec

SUFFIXES = (".py", ".ipynb")
DEFAULT_EXCLUDES = (
    ".git", ".hg", ".svn", ".bzr", ".venv", "venv", ".env", "env", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".eggs", "build", "dist", "node_modules",
    "site-packages", ".ipynb_checkpoints", ".zgcheck_cache", "__pypackages__", "_build", "buck-out",
)


class DiscoveryError(Exception):
    """A path the user named does not exist (a usage error)."""


@dataclass
class Discovery:
    excludes: Sequence[str] = ()  # gitignore-style patterns, relative to root
    respect_gitignore: bool = True
    force_exclude: bool = False
    root: Path = field(default_factory=Path.cwd)
    defaults: Optional[Sequence[str]] = None  # None: DEFAULT_EXCLUDES; config `exclude` replaces them
    # More (directory, patterns) groups whose patterns are relative to their own
    # directory: --exclude is relative to the working directory, the config's to its file.
    extra: Sequence[Tuple[Path, Sequence[str]]] = ()

    def __post_init__(self):
        defaults = DEFAULT_EXCLUDES if self.defaults is None else tuple(self.defaults)
        self._groups: List[Tuple[Path, Patterns]] = [
            (Path(self.root).resolve(), Patterns(list(defaults) + list(self.excludes)))]
        for directory, patterns in self.extra:
            if patterns:
                self._groups.append((Path(directory).resolve(), Patterns(list(patterns))))
        self._gitignores: Dict[str, Optional[pathspec.GitIgnoreSpec]] = {}
        self._chains: Dict[str, List[Tuple[str, pathspec.GitIgnoreSpec]]] = {}
        self._by_config: Dict[object, "Discovery"] = {}

    # Per-file configuration: directory -> the Config that governs what is inside it. When
    # set, each path is judged by the excludes of its own directory's configuration.
    config_for: Optional[Callable[[str], object]] = None  # absolute directory -> its Config
    cli_excludes: Sequence[str] = ()

    @classmethod
    def for_config(cls, config, cli_excludes: Sequence[str] = (), respect_gitignore: bool = True,
                   force_exclude: bool = False, config_for=None) -> "Discovery":
        """Excludes from a Config (each pattern relative to the file that wrote it) plus
        --exclude (relative to the cwd); with config_for, each directory's own Config."""
        root = Path(config.root) if config.root else Path.cwd()
        own = tuple(config.extend_exclude)
        # `exclude` inherited from a base is relative to the base's directory, this file's
        # extend-exclude to its own: then they are two groups, else one (so `!` re-includes).
        apart = bool(config.exclude_root)
        return cls(excludes=() if apart else own, respect_gitignore=respect_gitignore,
                   force_exclude=force_exclude, root=Path(config.exclude_root) if apart else root,
                   defaults=config.exclude,
                   extra=[*([(root, own)] if apart else []),
                          *((Path(d), p) for d, p in config.inherited_excludes),
                          (Path.cwd(), tuple(cli_excludes))],
                   config_for=config_for, cli_excludes=tuple(cli_excludes))

    def _governing(self, path: Path) -> "Discovery":
        """The Discovery whose patterns judge path: its directory's configuration's."""
        return self._governing_directory(os.path.dirname(os.path.abspath(path)))

    def _governing_directory(self, directory: str) -> "Discovery":
        """The Discovery whose patterns judge the entries of an absolute directory."""
        if self.config_for is None:
            return self
        config = self.config_for(directory)
        if config not in self._by_config:
            self._by_config[config] = Discovery.for_config(config, self.cli_excludes, self.respect_gitignore,
                                                           self.force_exclude)
        return self._by_config[config]

    def files(self, paths: Sequence[str]) -> List[str]:
        out: List[str] = []
        for raw in paths:
            path = Path(raw)
            if not os.path.lexists(raw):
                raise DiscoveryError(f"{raw}: no such file or directory")
            if not path.is_dir():  # a FIFO or a symlink loop too: reading it reports it (ZG903)
                if not self.force_exclude or not self.excluded(path, with_parents=True):
                    out.append(raw)
                continue
            if self.force_exclude and self.excluded(path, is_dir=True, with_parents=True):
                continue
            out.extend(self._walk(path))
        return sorted(dict.fromkeys(out))

    def _walk(self, top: Path) -> Iterator[str]:
        """Every file to check under top (a symlinked directory is listed, not entered, as
        os.walk does); each directory's patterns and .gitignore chain are worked out once."""
        todo = [(str(top), os.path.abspath(top), _realpath(str(top)))]
        while todo:
            directory, absolute, real = todo.pop()
            try:
                with os.scandir(directory) as scan:
                    entries = list(scan)
            except OSError:
                continue
            prefix = "" if directory == "." else directory + os.sep  # as Path(".") / name spells it
            judge = self._judge(absolute, real)
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if not is_dir and not entry.name.endswith(SUFFIXES):
                    continue
                path = prefix + entry.name
                symlink = entry.is_symlink()
                if self.excluded(Path(path), is_dir) if symlink else judge(entry.name, is_dir):
                    continue
                if not is_dir:
                    yield path
                elif not symlink:
                    todo.append((path, absolute + os.sep + entry.name, real + os.sep + entry.name))

    def _judge(self, absolute: str, real: str) -> Callable[[str, bool], bool]:
        """excluded(), for the entries of one directory (absolute, and real: symlinks resolved)
        that are not symlinks themselves: every prefix is computed here once."""
        groups = []
        for root, patterns in self._governing_directory(absolute)._groups:
            base = _under(absolute, str(root))
            base = _under(real, str(root)) if base is None else base
            if patterns.under(base or ""):  # outside root (None): only the name is matched
                return lambda name, is_dir: True
            groups.append((base or "", patterns))
        chain = [(_under(real, parent), spec) for parent, spec in self._gitignore_chain(real)] \
            if self.respect_gitignore else []

        def judge(name: str, is_dir: bool) -> bool:
            suffix = "/" if is_dir else ""
            for base, patterns in groups:
                if patterns.entry(base, name, is_dir):
                    return True
            for base, spec in chain:
                verdict = _verdict(spec, base + name + suffix)
                if verdict is not None:
                    return verdict
            return False

        return judge

    def _gitignore_chain(self, real: str) -> List[Tuple[str, pathspec.GitIgnoreSpec]]:
        """(directory, spec) of every ignore file that judges entries of the real directory,
        nearest first: each .gitignore up to the repository root, then .git/info/exclude."""
        if real not in self._chains:
            chain = []
            here = self._gitignore(real)
            if here is not None:
                chain.append((real, here))
            if os.path.exists(os.path.join(real, ".git")):
                info = self._gitignore(os.path.join(real, ".git", "info"), "exclude")
                if info is not None:
                    chain.append((real, info))
            elif os.path.dirname(real) != real:
                chain.extend(self._gitignore_chain(os.path.dirname(real)))
            self._chains[real] = chain
        return self._chains[real]

    def excluded(self, path: Path, is_dir: bool = False, with_parents: bool = False) -> bool:
        """Whether an exclude pattern or .gitignore drops this path (or, with_parents, a directory above it)."""
        if self._excluded_by_patterns(path, is_dir):
            return True
        if self.respect_gitignore and self._ignored_by_git(path, is_dir):
            return True
        if with_parents:
            absolute = Path(os.path.abspath(path))
            for parent in absolute.parents:
                if parent == parent.parent:
                    break
                if self._excluded_by_patterns(parent, True) or (
                        self.respect_gitignore and self._ignored_by_git(parent, True)):
                    return True
        return False

    def _excluded_by_patterns(self, path: Path, is_dir: bool) -> bool:
        suffix = "/" if is_dir else ""
        for directory, spec in self._governing(path)._groups:
            rel = _relative(path, directory)
            if rel is None:  # outside the patterns' directory: only unanchored names can match
                if spec.match_file(path.name + suffix):
                    return True
            elif rel != "." and spec.match_file(rel + suffix):
                return True
        return False

    def _ignored_by_git(self, path: Path, is_dir: bool) -> bool:
        absolute = _resolve(path)
        suffix = "/" if is_dir else ""
        for parent in absolute.parents:  # nearest first: the deepest verdict wins
            spec = self._gitignore(parent)
            if spec is not None:
                verdict = _verdict(spec, absolute.relative_to(parent).as_posix() + suffix)
                if verdict is not None:
                    return verdict
            if (parent / ".git").exists():
                info = self._gitignore(parent / ".git" / "info", "exclude")
                if info is not None:
                    verdict = _verdict(info, absolute.relative_to(parent).as_posix() + suffix)
                    if verdict is not None:
                        return verdict
                break
        return False

    def _gitignore(self, directory: Union[str, Path], name: str = ".gitignore") -> Optional["pathspec.GitIgnoreSpec"]:
        key = os.path.join(directory, name)
        if key not in self._gitignores:
            spec = None
            if os.path.isfile(key):
                try:
                    with open(key, encoding="utf-8", errors="replace") as handle:
                        spec = _spec(handle.read().splitlines())
                except (OSError, ValueError):
                    spec = None
            self._gitignores[key] = spec
        return self._gitignores[key]


class Patterns:
    """Gitignore-style exclude patterns. Plain names (`build`, `.venv`, `dist/`: most
    excludes) are set lookups on a path's components, the others go to pathspec (imported
    only then); with a `!` re-include anywhere, order matters and pathspec judges them all."""

    _PLAIN = re.compile(r"^[A-Za-z0-9._+-]+/?$")

    def __init__(self, lines: Sequence[str]):
        self.lines = [line for line in lines if line.strip() and not line.startswith("#")]
        plain = [] if any(line.startswith("!") for line in self.lines) else \
            [line for line in self.lines if self._PLAIN.match(line) and line.strip("./")]
        self.names = frozenset(p for p in plain if not p.endswith("/"))
        self.dirs = self.names | frozenset(p[:-1] for p in plain if p.endswith("/"))
        rest = [line for line in self.lines if line not in plain]
        self.rest = _spec(rest) if rest else None
        self._spec = None

    def match_file(self, rel: str) -> bool:
        if self._spec is None:
            self._spec = _spec(self.lines)
        return self._spec.match_file(rel)

    def under(self, base: str) -> bool:
        """Whether a directory component of base ('a/b/') matches: then everything below does."""
        return bool(base) and (not self.dirs.isdisjoint(base.split("/")) or
                               (self.rest is not None and self.rest.match_file(base)))

    def entry(self, base: str, name: str, is_dir: bool) -> bool:
        """Whether the entry `name` of the directory `base` (not matched by `under`) matches."""
        if name in (self.dirs if is_dir else self.names):
            return True
        return self.rest is not None and self.rest.match_file(base + name + ("/" if is_dir else ""))


def _spec(lines: Sequence[str]) -> "pathspec.GitIgnoreSpec":
    import pathspec  # a tree with plain excludes and no .gitignore never needs it

    return pathspec.GitIgnoreSpec.from_lines(list(lines))


def _verdict(spec: pathspec.PathSpec, rel: str) -> Optional[bool]:
    """True (ignored), False (re-included by a `!pattern`) or None (no pattern matched): last match wins."""
    either = _either(spec)
    if either is not None:  # no `!pattern`: any match ignores
        return True if either.search(rel) else None
    verdict = None
    for pattern in spec.patterns:
        if pattern.include is not None and pattern.match_file(rel) is not None:
            verdict = pattern.include
    return verdict


# id(spec) -> (spec, one regex of all its patterns, or None if one re-includes or is not a regex)
_EITHER: Dict[int, Tuple[object, Optional["re.Pattern[str]"]]] = {}
_GROUP = re.compile(r"\(\?P<\w+>")


def _either(spec: pathspec.PathSpec) -> Optional["re.Pattern[str]"]:
    """A spec without `!patterns` as one regex: a path is tested once, not once per pattern
    (a .gitignore from a template holds a hundred)."""
    if id(spec) not in _EITHER:
        if len(_EITHER) > 4096:
            _EITHER.clear()
        used = [p for p in spec.patterns if p.include is not None]
        regexes = [getattr(p, "regex", None) for p in used]
        either = None
        if used and all(p.include for p in used) and all(isinstance(r, re.Pattern) for r in regexes):
            try:
                either = re.compile("|".join(f"(?:{_GROUP.sub('(?:', r.pattern)})" for r in regexes))
            except re.error:
                either = None
        _EITHER[id(spec)] = (spec, either)
    return _EITHER[id(spec)][1]


def _relative(path: Path, root: Path) -> Optional[str]:
    try:
        return Path(os.path.abspath(path)).relative_to(root).as_posix()
    except ValueError:
        try:
            return _resolve(path).relative_to(root).as_posix()
        except ValueError:
            return None


def _under(path: str, root: str) -> Optional[str]:
    """path relative to root, '/'-separated, with a trailing '/' to append a name to ("" for
    root itself); None outside root."""
    if path == root:
        return ""
    if path.startswith(root.rstrip(os.sep) + os.sep):
        return path[len(root.rstrip(os.sep)) + 1:].replace(os.sep, "/") + "/"
    return None


def _realpath(directory: str) -> str:
    return str(_resolve(Path(directory)))


def _resolve(path: Path) -> Path:
    """The real path; a symlink loop stays as named (it is reported when read)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: "Symlink loop" before Python 3.13
        return Path(os.path.abspath(path))
