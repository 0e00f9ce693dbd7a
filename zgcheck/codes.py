"""Every code zgcheck reports, in one table: the rules' codes and the tool's own (ZG9xx).

The CLI (`zgcheck rule`), the reporters (SARIF rule descriptors), configuration
(`select`/`ignore` validation) and the runtime checker all read this table.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

from .rules import ALL_RULES

# Tool diagnostics: a file zgcheck could not read, parse or fix. Never suppressed by noqa.
PARSE_ERROR = "ZG901"
DECODE_ERROR = "ZG902"
READ_ERROR = "ZG903"
INVALID_NOTEBOOK = "ZG904"
FIX_ERROR = "ZG905"
INTERNAL_ERROR = "ZG999"
TOOL_PREFIX = "ZG9"
# Suppression comments (ZG1xx): what `zgcheck/suppress.py` reports about them.
UNUSED_NOQA = "ZG100"


@dataclass(frozen=True)
class Code:
    code: str
    name: str
    summary: str
    doc: str  # Markdown, Ruff's sections for a rule


def _rule_doc(rule) -> str:
    """Ruff's sections, from a Rule (or anything with its documentation attributes)."""
    def block(code: str) -> str:
        return "```python\n" + code + "```\n"

    return (f"## What it does\n{rule.what}\n\n## Why is this bad?\n{rule.why}\n\n"
            f"## Example\n{block(rule.example)}\n## Use instead:\n{block(rule.use_instead)}\n"
            f"## Fix safety\n{rule.fix_safety}\n")


class UnusedNoqa:
    """ZG100's documentation. Not a dataflow rule: suppress.py judges the comments."""

    code = UNUSED_NOQA
    name = "unused-noqa"
    summary = "a `# noqa` or `# zgcheck: ignore` names a zgcheck code that it does not suppress"
    what = ("Reports a suppression comment that names one of zgcheck's codes (`# noqa: ZG001`,\n"
            "`# zgcheck: ignore[ZG002]`) on a line where that code reports nothing, as Ruff's RUF100.\n"
            "Codes of other tools (`# noqa: E501`) are not judged, nor is a bare `# noqa` (every\n"
            "linter reads it); a bare `# zgcheck: ignore` is reported when it suppresses nothing.\n"
            "A code is judged only when every rule it names is selected for the file, and only\n"
            "where the file alone decides the finding: module-level code, and the loops of a\n"
            "function that calls `backward` itself (elsewhere, an imported helper's finding may\n"
            "come from a caller in another file). `# noqa: ZG100` on the line keeps a directive.")
    why = ("A suppression that suppresses nothing hides the next real finding on that line: once\n"
           "the code it was written for is fixed, a new missing `zero_grad()` there would be silent.")
    example = ("for x, y in loader:\n"
               "    optimizer.zero_grad()\n"
               "    loss_fn(model(x), y).backward()\n"
               "    optimizer.step()  # noqa: ZG001\n")
    use_instead = ("for x, y in loader:\n"
                   "    optimizer.zero_grad()\n"
                   "    loss_fn(model(x), y).backward()\n"
                   "    optimizer.step()\n")
    fix_safety = ("The fix is safe: it removes only the codes that suppress nothing (the whole comment\n"
                  "when nothing else is left in it), so no diagnostic appears or disappears.")


def _tool(code: str, name: str, summary: str, what: str) -> Code:
    return Code(code, name, summary, f"## What it does\n{what}\n\nTool diagnostics are never "
                                     "suppressed by `# noqa`; the run goes on with the other files.\n")


TOOL_CODES = (
    _tool(PARSE_ERROR, "syntax-error", "the file cannot be parsed",
          "Reports a file (or a notebook cell) that is not valid Python, at the position CPython\n"
          "gives. A notebook's other cells are still analysed."),
    _tool(DECODE_ERROR, "undecodable-file", "the file's bytes do not decode in its declared encoding",
          "Reports a file whose bytes do not decode in the encoding its coding cookie or BOM declares."),
    _tool(READ_ERROR, "unreadable-file", "the file cannot be read",
          "Reports a file that cannot be read (permissions, a broken symlink, not a regular file)."),
    _tool(INVALID_NOTEBOOK, "invalid-notebook", "the notebook is not nbformat 4 JSON",
          "Reports an `.ipynb` file that is not valid JSON or has no `cells` list."),
    _tool(FIX_ERROR, "fix-not-applied", "a fix could not be applied or written",
          "Reports a fix that was not written: the file is read-only, changed on disk meanwhile,\n"
          "or the fixed code would not parse. The file is left untouched."),
    _tool(INTERNAL_ERROR, "internal-error", "zgcheck itself failed on this file",
          "Reports a failure of zgcheck itself on one file (please report it with the file)."),
)

CODES: Dict[str, Code] = {
    **{r.code: Code(r.code, r.name, r.summary, _rule_doc(r)) for r in (*ALL_RULES, UnusedNoqa)},
    **{c.code: c for c in TOOL_CODES},
}


def is_tool(code: str) -> bool:
    return code.startswith(TOOL_PREFIX)


def lookup(code_or_name: str):
    """The Code for `ZG001` or `missing-zero-grad` (any case), else None."""
    key = code_or_name.strip()
    return CODES.get(key.upper()) or next((c for c in CODES.values() if c.name == key.lower()), None)


def render(code: Code) -> str:
    """The documentation `zgcheck rule CODE` prints."""
    return f"# {code.name} ({code.code})\n\n{code.doc}"


def pages() -> Dict[str, str]:
    """docs/rules/: a page per code (what `zgcheck rule CODE` prints) and an index table."""
    rows = "".join(f"| [{c.code}]({c.code}.md) | `{c.name}` | {c.summary} |\n" for c in CODES.values())
    index = ("# Rules\n\nGenerated from `zgcheck/codes.py` by `python -m zgcheck.codes`; "
             "do not edit by hand.\n\n| Code | Name | Summary |\n|------|------|---------|\n" + rows)
    return {"README.md": index, **{f"{c.code}.md": render(c) for c in CODES.values()}}


if __name__ == "__main__":  # python -m zgcheck.codes [DIRECTORY]: (re)write docs/rules/
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/rules")
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*.md"):
        stale.unlink()
    for name, text in pages().items():
        (target / name).write_text(text, encoding="utf-8")
