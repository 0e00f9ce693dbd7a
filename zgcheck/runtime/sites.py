"""Where in the user's code an event happened: the first frame outside torch,
zgcheck and the standard library."""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
from dataclasses import dataclass
from itertools import islice
from types import FrameType
from typing import Dict, Optional, Tuple

import torch

from zgcheck.types import Span


def _dir(path: str) -> str:
    return os.path.join(os.path.realpath(path), "")


_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
# Frames in these directories are machinery, never the user's call site.
_MACHINERY = (
    _dir(os.path.dirname(torch.__file__)),
    _dir(os.path.dirname(_RUNTIME_DIR)),  # zgcheck/
)
_THIRD_PARTY = tuple({_dir(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")})
_STDLIB = tuple({_dir(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")})
_user_file_cache: Dict[str, bool] = {}


def _classify(filename: str) -> bool:
    if filename.startswith("<frozen"):
        return False
    real = os.path.realpath(filename)
    if real.startswith(_MACHINERY):
        return False
    # site-packages can sit inside the stdlib directory: test it first.
    if real.startswith(_THIRD_PARTY):
        return True
    return not real.startswith(_STDLIB)


def is_user_file(filename: str) -> bool:
    known = _user_file_cache.get(filename)
    if known is None:
        known = _user_file_cache[filename] = _classify(filename)
    return known


def user_frame() -> Optional[FrameType]:
    """The innermost frame of the user's code on the current stack."""
    frame = sys._getframe(1)
    while frame is not None and not is_user_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


@dataclass(frozen=True)
class Site:
    """A call in the user's code: file, 1-based line and the call's columns."""

    path: str
    line: int
    col: int = 1
    end_line: int = 0
    end_col: int = 1

    @property
    def span(self) -> Span:
        return Span(self.line, self.col, self.end_line or self.line, self.end_col)

    @property
    def key(self) -> Tuple[str, int]:
        return (self.path, self.line)

    def text(self) -> str:
        """The call as written when it fits on one line, else the line itself."""
        linecache.checkcache(self.path)
        source = linecache.getline(self.path, self.line)
        if self.end_line == self.line and self.end_col > self.col:
            return source[self.col - 1 : self.end_col - 1]
        return source.strip()


def site_of(frame: FrameType) -> Site:
    code = frame.f_code
    path, line = code.co_filename, frame.f_lineno
    positions = getattr(code, "co_positions", None)  # Python >= 3.11
    if positions is not None and frame.f_lasti >= 0:
        pos = next(islice(positions(), frame.f_lasti // 2, None), None)
        if pos and pos[0] == line and pos[2] is not None and pos[3] is not None:
            return Site(path, line, pos[2] + 1, pos[1] or line, pos[3] + 1)
    return Site(path, line or 0)


def current_site() -> Optional[Site]:
    frame = user_frame()
    return site_of(frame) if frame is not None else None
