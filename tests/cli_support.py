"""Shared by the CLI-level tests: a buggy and a clean training script, and a runner."""

from __future__ import annotations

import json
import textwrap

from click.testing import CliRunner

from zgcheck.cli import main

BUGGY = textwrap.dedent("""\
    import torch
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in torch.randn(3, 4, 2):
        loss = model(x).sum()
        loss.backward()
        optimizer.step()
    """)
CLEAN = BUGGY.replace("    loss = model", "    optimizer.zero_grad()\n    loss = model")
# A helper another file imports: it steps without ever zeroing.
ENGINE = textwrap.dedent("""\
    def train_one_epoch(model, optimizer, data):
        for x in data:
            loss = model(x).sum()
            loss.backward()
            optimizer.step()
    """)


def run(*args, input=None, env=None):
    return invoke(["check", "--no-cache", *args], input=input, env=env)


class _Separated:
    """click < 8.2 (the newest on Python 3.9) mixes stderr into stdout unless told not to;
    then `output` is both, as click >= 8.2 gives it, and `stdout` is stdout alone."""

    def __init__(self, result):
        self._result = result

    def __getattr__(self, name):
        return getattr(self._result, name)

    @property
    def output(self) -> str:
        return self._result.stdout + self._result.stderr


def cli_runner() -> CliRunner:
    """A CliRunner that keeps stderr apart from stdout on every click we support (8.1 mixes
    them unless told not to; 8.2 has no such switch and always keeps them apart)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2
        return CliRunner()


def invoke(args, **kwargs):
    """Run the CLI in-process with stdout and stderr apart, on every click we support;
    `output` is both, as click >= 8.2 gives it."""
    runner = cli_runner()
    result = runner.invoke(main, args, **kwargs)
    return _Separated(result) if getattr(runner, "mix_stderr", True) is False else result


def codes(result):
    """(code, file name, row) of each diagnostic in a JSON report."""
    return sorted((d["code"], d["filename"].replace("\\", "/").rsplit("/", 1)[-1], d["location"]["row"])
                  for d in json.loads(result.stdout))


def notebook(*cells, indent=1, **extra) -> str:
    """An nbformat-4 notebook: each cell is source text (code) or ("markdown", text)."""
    out = []
    for cell in cells:
        kind, text = cell if isinstance(cell, tuple) else ("code", cell)
        lines = text.splitlines(keepends=True)
        if lines and lines[-1].endswith("\n"):
            lines[-1] = lines[-1][:-1]  # nbformat keeps no final newline
        entry = {"cell_type": kind, "metadata": {}, "source": lines}
        if kind == "code":
            entry.update(execution_count=None, outputs=[])
        out.append(entry)
    data = {"cells": out, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                      "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5, **extra}
    return json.dumps(data, indent=indent, sort_keys=True, ensure_ascii=False) + "\n"


def readme_blocks():
    """(language, body) of every fenced block in README.md, in order."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks, language, body = [], None, []
    for line in readme.splitlines(keepends=True):
        if line.startswith("```"):
            if language is None:
                language, body = line[3:].strip(), []
            else:
                blocks.append((language, "".join(body)))
                language = None
        elif language is not None:
            body.append(line)
    return blocks


def readme_block(language: str, containing: str) -> str:
    """The first fenced ```language block of README.md that contains the given text."""
    for lang, body in readme_blocks():
        if lang == language and containing in body:
            return body
    raise AssertionError(f"README.md has no ```{language} block containing {containing!r}")
