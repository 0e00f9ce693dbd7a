"""Suppression comments: `# noqa`, `# noqa: ZG001`, `# zgcheck: ignore[ZG001]`, `# zgcheck: skip-file`.

Comments are found with `tokenize`, so a `# noqa` inside a string does not
count, and only for files that have diagnostics. A diagnostic is suppressed by
a directive on its first line, on the last line of its span, or on the last
line of the logical line (statement) it starts in, so a call spread over
several lines can carry its `# noqa` after the closing parenthesis. Codes are
matched as prefixes, as `--select` does (`# noqa: ZG0` covers ZG001 and ZG002).
Tool diagnostics (ZG9xx: unparseable, unreadable files) cannot be silenced by
`noqa`; `# zgcheck: skip-file` drops every diagnostic of the file.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence

from .screen import NEWLINE
from .reading import decode_for_display, read_bytes
from .types import Diagnostic

# flake8's grammar: codes after `noqa:` separated by commas or spaces; anything
# else after `noqa` (or no codes at all) makes it a blanket noqa.
NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
IGNORE = re.compile(r"#\s*zgcheck:\s*ignore\b(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
SKIP_FILE = re.compile(r"#\s*zgcheck:\s*skip-file\b", re.IGNORECASE)
CODE = re.compile(r"[A-Z]+[0-9]*", re.IGNORECASE)
ANY_DIRECTIVE = re.compile(r"noqa|zgcheck", re.IGNORECASE)  # without one, nothing to tokenize

ALL = None  # a directive without codes


@dataclass
class Directives:
    """Suppressions by line: None for every code, else the codes (prefixes) named."""

    by_line: Dict[int, Optional[FrozenSet[str]]] = field(default_factory=dict)
    logical_end: Dict[int, int] = field(default_factory=dict)  # line -> last line of its statement
    skip_file: bool = False

    def add(self, line: int, codes: Optional[FrozenSet[str]]) -> None:
        if line in self.by_line:
            old = self.by_line[line]
            codes = None if old is None or codes is None else old | codes
        self.by_line[line] = codes

    def suppresses(self, d: Diagnostic) -> bool:
        lines = {d.span.start_line, d.span.end_line, self.logical_end.get(d.span.start_line, d.span.start_line)}
        for line in lines:
            if line not in self.by_line:
                continue
            codes = self.by_line[line]
            if codes is None or any(d.code.startswith(c) for c in codes):
                return True
        return False


def suppressible(code: str) -> bool:
    return not code.startswith("ZG9")


def scan(text: str) -> Directives:
    """Every suppression directive in the comments of text."""
    found = Directives()
    start = None  # first line of the current logical line
    if ANY_DIRECTIVE.search(text) is None:
        return found
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if start is None and tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT,
                                                  tokenize.DEDENT, tokenize.ENCODING):
                start = tok.start[0]
            if tok.type == tokenize.COMMENT:
                _parse_comment(tok.string, tok.start[0], found)
            elif tok.type == tokenize.NEWLINE and start is not None:
                for line in range(start, tok.end[0] + 1):
                    found.logical_end[line] = tok.end[0]
                start = None
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Unparseable text: comment lines still count for skip-file.
        for lineno, line in enumerate(NEWLINE.split(text), 1):
            if line.lstrip().startswith("#") and SKIP_FILE.search(line):
                found.skip_file = True
    return found


def _parse_comment(comment: str, line: int, found: Directives) -> None:
    if SKIP_FILE.search(comment):
        found.skip_file = True
    for match in NOQA.finditer(comment):
        codes = match.group("codes")
        found.add(line, frozenset(c.upper() for c in CODE.findall(codes)) if codes else ALL)
    for match in IGNORE.finditer(comment):
        codes = match.group("codes")
        named = frozenset(c.upper() for c in CODE.findall(codes or ""))
        found.add(line, named if named else ALL)


def apply(diagnostics: Sequence[Diagnostic], text: str, path: Optional[str] = None,
          read: Optional[Callable[[str], Optional[str]]] = None) -> List[Diagnostic]:
    """The diagnostics that no comment suppresses.

    text is the source of `path`; a diagnostic reported in another file (a helper
    imported from it) is judged by that file's own comments, read with `read`.
    """
    if not diagnostics:
        return list(diagnostics)
    read = read or _read
    scans: Dict[str, Optional[Directives]] = {}
    out = []
    for d in diagnostics:
        where = d.path if path is not None else None
        if where not in scans:
            other = text if where is None or where == path else read(where)
            scans[where] = scan(other) if other is not None else None
        directives = scans[where]
        if directives is None:
            out.append(d)
        elif not directives.skip_file and not (suppressible(d.code) and directives.suppresses(d)):
            out.append(d)
    return out


def _read(path: str) -> Optional[str]:
    try:
        return decode_for_display(read_bytes(path))
    except OSError:
        return None


def skips_file(text: str) -> bool:
    return scan(text).skip_file
