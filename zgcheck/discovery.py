"""Which files to check: paths, default excludes, .gitignore (nested), --exclude."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

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
    excludes: Sequence[str] = ()  # gitignore-style patterns, relative to the project root
    respect_gitignore: bool = True
    force_exclude: bool = False
    root: Path = field(default_factory=Path.cwd)

    def __post_init__(self):
        self._exclude = pathspec.GitIgnoreSpec.from_lines(list(DEFAULT_EXCLUDES) + list(self.excludes))
        self._gitignores: Dict[Path, Optional[pathspec.GitIgnoreSpec]] = {}

    def files(self, paths: Sequence[str]) -> List[str]:
        out: List[str] = []
        for raw in paths:
            path = Path(raw)
            if not path.exists():
                raise DiscoveryError(f"{raw}: no such file or directory")
            if path.is_file():
                if not self.force_exclude or not self.excluded(path):
                    out.append(raw)
                continue
            out.extend(self._walk(path))
        return sorted(dict.fromkeys(out))

    def _walk(self, top: Path) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(top):
            base = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not self.excluded(base / d, is_dir=True))
            for name in sorted(filenames):
                if name.endswith(SUFFIXES) and not self.excluded(base / name):
                    yield str(base / name)

    def excluded(self, path: Path, is_dir: bool = False) -> bool:
        rel = _relative(path, self.root)
        probe = rel + "/" if is_dir else rel
        if self._exclude.match_file(probe) or self._exclude.match_file(path.name + ("/" if is_dir else "")):
            return True
        return self.respect_gitignore and self._ignored_by_git(path, is_dir)

    def _ignored_by_git(self, path: Path, is_dir: bool) -> bool:
        absolute = path.resolve()
        for parent in absolute.parents:
            spec = self._gitignore(parent)
            if spec is not None:
                rel = absolute.relative_to(parent).as_posix() + ("/" if is_dir else "")
                if spec.match_file(rel):
                    return True
            if (parent / ".git").exists():
                break
        return False

    def _gitignore(self, directory: Path) -> Optional[pathspec.GitIgnoreSpec]:
        if directory not in self._gitignores:
            ignore = directory / ".gitignore"
            spec = None
            if ignore.is_file():
                try:
                    spec = pathspec.GitIgnoreSpec.from_lines(ignore.read_text(errors="replace").splitlines())
                except (OSError, ValueError):
                    spec = None
            self._gitignores[directory] = spec
        return self._gitignores[directory]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
