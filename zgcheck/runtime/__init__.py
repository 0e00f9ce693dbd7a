"""The reference trainer: runs a script on real PyTorch and reports, from what
actually happened to each parameter's gradient, the ZG001/ZG002 findings the
static checker should agree with (DESIGN.md §7).

Importing this package imports torch; the static linter never does.
"""

import torch  # noqa: F401  -- fail here, with torch's own ImportError, when it is missing

from zgcheck.runtime.runner import RuntimeResult, ScriptTimeout, run_script

__all__ = ["RuntimeResult", "ScriptTimeout", "run_script"]
