"""Writing fixed files: atomically, only if unchanged on disk, keeping the file mode."""

from __future__ import annotations

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
