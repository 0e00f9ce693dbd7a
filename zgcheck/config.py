"""[tool.zgcheck] -> a frozen Config.

As Ruff does it: each file uses the nearest `pyproject.toml` holding a
`[tool.zgcheck]` table above it (or, for every file, the one `--config PATH`
names). `extend = "../pyproject.toml"` loads that file first and lays this one's
keys over it: `select`, `ignore`, `exclude` and `per-file-ignores` replace the
base's, `extend-exclude` and the `extra-*` names add to them. Relative patterns
are gitignore-style and relative to the directory of the file that wrote them,
so a base means the same whoever extends it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple, Union

from .codes import CODES
from .recognise import DEFAULT_TABLES, Tables

if TYPE_CHECKING:
    import pathspec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older interpreters only
    import tomli as tomllib

# [tool.zgcheck] key -> the Tables field it extends.
TABLE_KEYS = {
    "extra-optimizer-names": "optimizer_names",
    "extra-optimizer-classes": "optimizer_classes",
    "extra-optimizer-factories": "optimizer_factories",
    "extra-backward-methods": "backward_attrs",
    "extra-zero-functions": "zero_functions",
    "extra-model-names": "model_names",
}
CODE_KEYS = ("select", "ignore")
GLOB_KEYS = ("exclude", "extend-exclude")
KNOWN_KEYS = ("extend",) + CODE_KEYS + GLOB_KEYS + ("per-file-ignores",) + tuple(TABLE_KEYS)
# Tool diagnostics (ZG9xx) are numbered as they are added; accept any of them.
TOOL_CODE = re.compile(r"^ZG9\d{0,2}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\(\))?$")


class ConfigError(Exception):
    """A configuration file or option that cannot be used (exit code 2)."""


@dataclass(frozen=True)
class Config:
    select: Optional[FrozenSet[str]] = None  # None: every rule
    ignore: FrozenSet[str] = frozenset()
    tables: Tables = DEFAULT_TABLES
    exclude: Optional[Tuple[str, ...]] = None  # None: discovery's default excludes
    extend_exclude: Tuple[str, ...] = ()
    per_file_ignores: Tuple[Tuple[str, FrozenSet[str]], ...] = ()  # (glob, codes)
    root: str = ""  # absolute directory that patterns are relative to; "" = the working directory
    source: str = ""  # the file this came from, for messages
    # Patterns inherited through `extend`, relative to the base file that wrote them.
    exclude_root: str = ""  # the directory `exclude` is relative to ("" = root)
    per_file_ignores_root: str = ""  # likewise for per-file-ignores
    inherited_excludes: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()  # (directory, extend-exclude)

    def is_selected(self, code: str, path: Optional[str] = None) -> bool:
        if _matches(code, self.ignore):
            return False
        if path is not None and self.per_file_ignores and _matches(code, self.ignored_in(path)):
            return False
        return self.select is None or _matches(code, self.select)

    def ignored_in(self, path: str) -> FrozenSet[str]:
        """Codes that `per-file-ignores` switches off for this path."""
        rel = relative_to_root(path, self.per_file_ignores_root or self.root)
        out: FrozenSet[str] = frozenset()
        for glob, codes in self.per_file_ignores:
            if _spec((glob,)).match_file(rel):
                out |= codes
        return out

    def fingerprint(self) -> str:
        """A stable digest of everything that changes a file's diagnostics (for cache keys)."""
        canonical = {
            "select": sorted(self.select) if self.select is not None else None,
            "ignore": sorted(self.ignore),
            "tables": {f.name: sorted(getattr(self.tables, f.name)) for f in fields(self.tables)},
            "per_file_ignores": [[glob, sorted(codes)] for glob, codes in self.per_file_ignores],
            "root": (self.per_file_ignores_root or self.root) if self.per_file_ignores else "",
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    def with_options(self, select: Optional[Iterable[str]] = None,
                     ignore: Optional[Iterable[str]] = None,
                     extend_select: Optional[Iterable[str]] = None) -> "Config":
        """Command-line options on top: --select and --ignore replace the configured lists,
        --extend-select adds to the selection (configured or given).

        (--exclude adds to the excludes; discovery takes it, relative to the working directory.)
        """
        changes: Dict[str, Any] = {}
        if select is not None:
            changes["select"] = frozenset(check_codes(select, "--select"))
        if extend_select is not None:
            base = changes.get("select", self.select)
            extra = frozenset(check_codes(extend_select, "--extend-select"))
            if base is not None:  # None selects every rule already
                changes["select"] = base | extra
        if ignore is not None:
            changes["ignore"] = frozenset(check_codes(ignore, "--ignore"))
        return replace(self, **changes)


DEFAULT_CONFIG = Config()


def _matches(code: str, prefixes: Iterable[str]) -> bool:
    return any(code.startswith(prefix) for prefix in prefixes)


@functools.lru_cache(maxsize=256)
def _spec(patterns: Tuple[str, ...]) -> "pathspec.PathSpec":
    import pathspec  # only per-file-ignores need it here

    return pathspec.GitIgnoreSpec.from_lines(patterns)


def relative_to_root(path: str, root: str) -> str:
    """The path relative to root, '/'-separated; outside root, the path as given."""
    absolute = os.path.abspath(path)
    base = os.path.abspath(root or os.getcwd())
    try:
        rel = os.path.relpath(absolute, base)
    except ValueError:  # another drive on Windows
        return Path(path).as_posix()
    if rel == ".." or rel.startswith(".." + os.sep):
        return Path(path).as_posix()
    return Path(rel).as_posix()


# --- loading ----------------------------------------------------------------

def known_code(code: str) -> bool:
    """A rule code or a prefix of one (`ZG`, `ZG00`, `ZG001`, `ZG9`)."""
    return any(full.startswith(code) for full in CODES) or bool(TOOL_CODE.match(code))


def check_codes(codes: Iterable[str], where: str) -> List[str]:
    out = []
    for code in codes:
        upper = code.strip().upper()
        if not upper or not known_code(upper):
            raise ConfigError(f"{where}: unknown rule code {code!r}")
        out.append(upper)
    return out


def find_config(start: Path) -> Optional[Path]:
    """The nearest pyproject.toml with a [tool.zgcheck] table, from start upwards."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and _has_section(candidate):
            return candidate
    return None


def _has_section(path: Path) -> bool:
    try:
        data = _read_toml(path)
    except ConfigError:
        # A broken pyproject.toml is only our business when it mentions us.
        try:
            return "tool.zgcheck" in path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    return isinstance(data.get("tool"), dict) and "zgcheck" in data["tool"]


def _read_toml(path: Path) -> Dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def load_config(path: Path, _seen: Tuple[Path, ...] = ()) -> Config:
    """The Config of one pyproject.toml (or any TOML file with a [tool.zgcheck] table),
    laid over the file it `extend`s."""
    data = _read_toml(path)
    section = data.get("tool", {}).get("zgcheck", {}) if isinstance(data.get("tool"), dict) else {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.zgcheck] must be a table")
    base = DEFAULT_CONFIG
    if "extend" in section:
        where = f"{path}: [tool.zgcheck] extend"
        if not isinstance(section["extend"], str):
            raise ConfigError(f"{where}: expected a path, got {_describe(section['extend'])}")
        target = (path.parent / os.path.expandvars(os.path.expanduser(section["extend"]))).resolve()
        if target in _seen + (path.resolve(),):
            raise ConfigError(f"{where}: {section['extend']!r} extends itself (a cycle)")
        if not target.is_file():
            raise ConfigError(f"{where}: {section['extend']!r}: no such file")
        base = load_config(target, _seen + (path.resolve(),))
    return config_from_table(section, path, base)


def config_from_table(section: Dict[str, Any], path: Path, base: "Config" = None) -> Config:
    where = f"{path}: [tool.zgcheck]"
    unknown = sorted(set(section) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(KNOWN_KEYS)})")
    base = base or DEFAULT_CONFIG
    root = str(path.resolve().parent)
    changes: Dict[str, Any] = {"root": root, "source": str(path), "extend_exclude": ()}
    # What the base wrote stays relative to the base's directory.
    if base.root:
        changes["exclude_root"] = base.exclude_root or base.root
        changes["per_file_ignores_root"] = base.per_file_ignores_root or base.root
        inherited = ((base.root, base.extend_exclude),) if base.extend_exclude else ()
        changes["inherited_excludes"] = base.inherited_excludes + inherited
    for key in CODE_KEYS:
        if key in section:
            changes[key] = frozenset(check_codes(_strings(section[key], key, where), f"{where} {key}"))
    if "exclude" in section:
        changes["exclude"] = tuple(_patterns(section["exclude"], "exclude", where))
        changes["exclude_root"] = ""
    if "extend-exclude" in section:
        changes["extend_exclude"] = tuple(_patterns(section["extend-exclude"], "extend-exclude", where))
    if "per-file-ignores" in section:
        changes["per_file_ignores"] = _per_file_ignores(section["per-file-ignores"], where)
        changes["per_file_ignores_root"] = ""
    extra = {}
    for key, table_field in TABLE_KEYS.items():
        if key in section:
            names = _strings(section[key], key, where)
            for name in names:
                if not IDENTIFIER.match(name):
                    raise ConfigError(f"{where} {key}: {name!r} is not a (dotted) Python name")
            extra[table_field] = names
    if extra:
        changes["tables"] = base.tables.extend(**extra)
    return replace(base, **changes)


def _patterns(value: Any, key: str, where: str) -> List[str]:
    """Gitignore-style patterns: '/'-separated on every platform, so a backslash is an error."""
    patterns = _strings(value, key, where)
    for pattern in patterns:
        if "\\" in pattern:
            raise ConfigError(f"{where} {key}: {pattern!r} contains a backslash; patterns are "
                              f"gitignore-style and separate directories with '/' on every platform")
    return patterns


def _strings(value: Any, key: str, where: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} {key}: expected a list of strings, got {_describe(value)}")
    return list(value)


def _per_file_ignores(value: Any, where: str) -> Tuple[Tuple[str, FrozenSet[str]], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} per-file-ignores: expected a table of glob = [codes], got {_describe(value)}")
    out = []
    for glob, codes in value.items():
        key = f"per-file-ignores {glob!r}"
        _patterns([glob], "per-file-ignores", where)
        out.append((glob, frozenset(check_codes(_strings(codes, key, where), f"{where} {key}"))))
    return tuple(out)


def _describe(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return f"{names.get(type(value), type(value).__name__)} ({value!r})"


def resolve(config_path: Optional[str], paths: Sequence[str]) -> Config:
    """--config PATH, or the nearest [tool.zgcheck] above the common parent of paths."""
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"{config_path}: no such configuration file")
        return load_config(path)
    found = find_config(common_parent(paths))
    if found is None:
        return replace(DEFAULT_CONFIG, root=os.getcwd())
    return load_config(found)


class Resolver:
    """Each file's configuration: the nearest [tool.zgcheck] above it (cached per directory),
    or the one `--config` names for every file; command-line --select/--ignore on top."""

    def __init__(self, config_path: Optional[str] = None, select: Optional[Iterable[str]] = None,
                 ignore: Optional[Iterable[str]] = None, extend_select: Optional[Iterable[str]] = None):
        self.options = {"select": select, "ignore": ignore, "extend_select": extend_select}
        self.fixed = resolve(config_path, []).with_options(**self.options) if config_path else None
        self._found: Dict[str, Optional[Path]] = {}  # directory -> its nearest configuration file
        self._loaded: Dict[Optional[Path], Config] = {}

    def for_file(self, path: str) -> Config:
        return self.for_directory(os.path.dirname(os.path.abspath(path)))

    def for_directory(self, directory: Union[str, Path]) -> Config:
        """The configuration of the files in an absolute directory."""
        if self.fixed is not None:
            return self.fixed
        found = self._nearest(os.fspath(directory))
        if found not in self._loaded:
            config = load_config(found) if found else replace(DEFAULT_CONFIG, root=os.getcwd())
            self._loaded[found] = config.with_options(**self.options)
        return self._loaded[found]

    def _nearest(self, directory: str) -> Optional[Path]:
        if directory not in self._found:
            candidate = os.path.join(directory, "pyproject.toml")
            parent = os.path.dirname(directory)
            if os.path.isfile(candidate) and _has_section(Path(candidate)):
                self._found[directory] = Path(candidate)
            elif parent == directory:
                self._found[directory] = None
            else:
                self._found[directory] = self._nearest(parent)
        return self._found[directory]


def config_for_file(path: str) -> Config:
    """The configuration of one file: the nearest [tool.zgcheck] above it (Ruff's rule)."""
    return Resolver().for_file(path)


def common_parent(paths: Sequence[str]) -> Path:
    """The deepest directory holding every path (the working directory for none)."""
    absolute = [os.path.abspath(p) for p in paths if p and p != "-"]
    if not absolute:
        return Path.cwd()
    try:
        common = Path(os.path.commonpath(absolute))
    except ValueError:  # different drives
        return Path.cwd()
    while not common.is_dir() and common != common.parent:
        common = common.parent
    return common
