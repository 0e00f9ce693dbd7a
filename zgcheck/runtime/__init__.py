"""The reference trainer: runs a script on real PyTorch and reports, from what
actually happened to each parameter's gradient, the ZG001/ZG002 findings the
static checker should agree with (DESIGN.md §7).

This package itself is torch-free, so that the bootstrap of child processes
(`zgcheck.runtime.boot`) can load without torch; the names below import torch on
first use and raise ImportError when it is missing or older than MIN_TORCH.
"""

from __future__ import annotations

import re
from typing import Any, Tuple

__all__ = ["RuntimeResult", "ScriptTimeout", "run_module", "run_script", "MIN_TORCH"]

# Global optimizer step hooks that may replace the step's arguments (2.0) and
# torch.compiler.disable (2.1).
MIN_TORCH: Tuple[int, int] = (2, 1)


def torch_version(text: str) -> Tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def require_torch() -> None:
    """ImportError, with what to do about it, when torch is missing or too old."""
    import torch

    found = getattr(torch, "__version__", "unknown")
    if torch_version(str(found)) < MIN_TORCH:
        wanted = ".".join(map(str, MIN_TORCH))
        raise ImportError(f"torch {found} is too old: the runtime checker needs torch>={wanted}")


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_torch()
    from zgcheck.runtime import runner

    return getattr(runner, name)
