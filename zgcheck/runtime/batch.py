"""Runs many scripts in one interpreter (torch is imported once) and prints one
JSON line per script on stdout; the scripts' own output goes to stderr.

    python -m zgcheck.runtime.batch [--timeout SECONDS] SCRIPT...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional, TextIO

from zgcheck.runtime.runner import RuntimeResult, run_script


def result_to_json(result: RuntimeResult) -> dict:
    return {
        "path": result.path,
        "diagnostics": [
            {
                "code": d.code,
                "name": d.name,
                "path": d.path,
                "line": d.span.start_line,
                "col": d.span.start_col,
                "message": d.message,
                "evidence": list(d.evidence),
            }
            for d in result.diagnostics
        ],
        "exit_code": result.exit_code,
        "error": result.error,
        "internal_errors": list(result.internal_errors),
        "counts": dict(result.counts),
    }


def _private_stdout() -> TextIO:
    """A stream on the real stdout; fd 1 itself is pointed at stderr so that
    nothing a script prints (Python or C level) can corrupt the JSON lines."""
    sys.stdout.flush()
    results = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    return results


def main(args: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zgcheck.runtime.batch", description=__doc__)
    parser.add_argument("scripts", nargs="+")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per script")
    options = parser.parse_args(args)
    out = _private_stdout()
    for script in options.scripts:
        result = run_script(script, [], seed=0, timeout=options.timeout)
        out.write(json.dumps(result_to_json(result)) + "\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
