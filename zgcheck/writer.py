"""Writing fixed files: atomically, only if unchanged on disk, keeping the file mode; or,
for --diff, the patch that would write them."""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from typing import Optional


def write_atomically(path: str, original: bytes, data: bytes) -> Optional[str]:
    """Replace path's contents with data; return an error message instead of raising.

    The file is left untouched when it changed on disk since it was read, when it
    is read-only, or when anything fails before the final rename.
    """
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            if handle.read() != original:
                return "changed on disk while being fixed; left untouched"
        if not os.access(path, os.W_OK) or not (st.st_mode & stat.S_IWUSR):
            return "is read-only; left untouched"
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".zgcheck-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.replace(tmp, os.path.realpath(path))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as err:
        return f"cannot be written ({err.strerror or err}); left untouched"
    return None


def unified_patch(old: str, new: str, path: str) -> str:
    """A patch `git apply` (and `patch -p1`) accepts: `a/` and `b/` headers with the path
    relative to the working directory, every line ended, a missing final newline marked."""
    rel = os.path.relpath(path) if os.path.isabs(path) and not os.path.relpath(path).startswith("..") else path
    rel = rel.replace(os.sep, "/").lstrip("/")  # outside the working directory: relative to /
    rel = rel[2:] if rel.startswith("./") else rel
    out = []
    for line in difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                     f"a/{rel}", f"b/{rel}"):
        if not line.endswith("\n"):  # the file's last line, without its newline
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)
