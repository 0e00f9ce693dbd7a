"""[tool.zgcheck] -> a frozen Config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, Optional

from .recognise import DEFAULT_TABLES, Tables


@dataclass(frozen=True)
class Config:
    select: Optional[FrozenSet[str]] = None  # None: every rule
    ignore: FrozenSet[str] = frozenset()
    tables: Tables = DEFAULT_TABLES

    def is_selected(self, code: str) -> bool:
        if any(code.startswith(prefix) for prefix in self.ignore):
            return False
        if self.select is None:
            return True
        return any(code.startswith(prefix) for prefix in self.select)


DEFAULT_CONFIG = Config()
