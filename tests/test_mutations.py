"""A seeded mutation run over the fixtures (issue 14): statements wrapped, moved and
duplicated, tabs, CRLF, BOM and form feeds. Whatever comes in, the run exits 0 or 1
without a traceback, code CPython compiles gets no ZG9xx, fixed files still compile,
and a second --fix changes nothing."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = 14
MUTANTS = 48


def _simple_lines(source: str):
    """(line index, indentation) of single-line simple statements, with their siblings' block."""
    tree = ast.parse(source)
    blocks = []
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                blocks.append([s.lineno - 1 for s in block if s.lineno == s.end_lineno and not
                               isinstance(s, (ast.FunctionDef, ast.ClassDef, ast.If, ast.For, ast.While, ast.With,
                                              ast.Try, ast.AsyncFor, ast.AsyncWith, ast.AsyncFunctionDef))])
    return [b for b in blocks if b]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def wrap(lines, blocks, rng):
    i = rng.choice(rng.choice(blocks))
    pad = _indent(lines[i])
    head = rng.choice(["if True:", "try:", "with open(__file__):", "for _ in range(1):"])
    tail = [pad + "finally:\n", pad + "    pass\n"] if head == "try:" else []
    lines[i:i + 1] = [pad + head + "\n", "    " + lines[i]] + tail


def move(lines, blocks, rng):
    block = rng.choice(blocks)
    a, b = rng.sample(block, 2) if len(block) > 1 else (block[0], block[0])
    lines[a], lines[b] = lines[b], lines[a]


def duplicate(lines, blocks, rng):
    i = rng.choice(rng.choice(blocks))
    lines.insert(i + 1, lines[i])


def form_feed(lines, blocks, rng):
    i = rng.choice(rng.choice(blocks))
    lines[i] = rng.choice(["\f", "\f\n" + _indent(lines[i]), " \f"]) + lines[i] if rng.random() < 0.7 \
        else lines[i]
    lines.insert(rng.randrange(len(lines) + 1), "\f\n")


STRUCTURAL = [wrap, move, duplicate, form_feed]


def mutate(source: str, rng: random.Random) -> bytes:
    for _ in range(rng.randint(1, 3)):
        blocks = _simple_lines(source)
        lines = source.splitlines(keepends=True)
        if blocks:
            rng.choice(STRUCTURAL)(lines, blocks, rng)
        candidate = "".join(lines)
        try:
            ast.parse(candidate)
        except SyntaxError:
            continue  # keep mutating valid code; the damaged mutant is still written below
        source = candidate
    if rng.random() < 0.3:
        source = "".join(("\t" * ((len(line) - len(line.lstrip(" "))) // 4)) + line.lstrip(" ")
                         if line.startswith("    ") else line for line in source.splitlines(keepends=True))
    if rng.random() < 0.3:
        source = source.replace("\r\n", "\n").replace("\n", "\r\n")
    data = source.encode("utf-8")
    if rng.random() < 0.3:
        data = b"\xef\xbb\xbf" + data
    return data


def _compiles(data: bytes) -> bool:
    try:
        compile(data, "<mutant>", "exec", dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _zgcheck(*args):
    proc = subprocess.run([sys.executable, "-m", "zgcheck", "check", "--no-cache", "--jobs", "4", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def test_seeded_mutants_never_crash_and_fix_to_a_fixed_point(tmp_path):
    rng = random.Random(SEED)
    sources = sorted(p for p in FIXTURES.glob("*.py") if not p.name.endswith(".fixed.py"))
    written = {}
    for n in range(MUTANTS):
        original = rng.choice(sources)
        path = tmp_path / f"m{n:03}_{original.name}"
        path.write_bytes(mutate(original.read_text(encoding="utf-8"), rng))
        written[path.name] = path.read_bytes()
    compiling = {name for name, data in written.items() if _compiles(data)}
    assert len(compiling) > MUTANTS // 2  # the mutants are mostly valid code

    report = json.loads(_zgcheck("--output-format", "json", str(tmp_path)).stdout)
    tool = sorted({(Path(d["filename"]).name, d["code"], d["message"]) for d in report
                   if d["code"].startswith("ZG9") and Path(d["filename"]).name in compiling})
    assert tool == []

    _zgcheck("--fix", str(tmp_path))
    fixed = {name: (tmp_path / name).read_bytes() for name in written}
    assert sum(fixed[name] != written[name] for name in written) >= MUTANTS // 4  # fixes were applied
    broken = sorted(name for name in compiling if not _compiles(fixed[name]))
    assert broken == []
    for name, data in fixed.items():  # BOM and line endings survive
        assert data.startswith(b"\xef\xbb\xbf") == written[name].startswith(b"\xef\xbb\xbf")
        assert (b"\r\n" in data) == (b"\r\n" in written[name])

    _zgcheck("--fix", str(tmp_path))
    assert sorted(n for n in written if (tmp_path / n).read_bytes() != fixed[n]) == []
