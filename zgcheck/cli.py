"""The command line: a thin click layer over discovery, checker, fixes and report."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import List, Optional, Sequence, Tuple

import click

from . import __version__
from .checker import check_file, check_source
from .config import Config, DEFAULT_CONFIG
from .discovery import Discovery, DiscoveryError
from .report import FORMATTERS, format_statistics
from .rules import ALL_RULES, RULES_BY_CODE
from .source import decode_for_display
from .types import Diagnostic

# Below this many files a process pool costs more than it saves.
PARALLEL_THRESHOLD = 16


def _codes(value: Optional[str]):
    if not value:
        return None
    return frozenset(code.strip().upper() for code in value.split(",") if code.strip())


def _use_color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def _check_many(paths: Sequence[str], config: Config, jobs: int) -> List[Diagnostic]:
    if jobs == 1 or len(paths) < PARALLEL_THRESHOLD:
        return [d for p in paths for d in check_file(p, config)]
    chunks = [list(paths[i::jobs * 4]) for i in range(jobs * 4)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = pool.map(_check_chunk, chunks, [config] * len(chunks))
        return [d for chunk in results for d in chunk]


def _check_chunk(paths: List[str], config: Config) -> List[Diagnostic]:
    return [d for p in paths for d in check_file(p, config)]


def _sources(diagnostics: Sequence[Diagnostic], stdin: Optional[Tuple[str, str]] = None):
    out = {}
    for d in diagnostics:
        if d.path in out:
            continue
        if stdin is not None and d.path == stdin[0]:
            out[d.path] = stdin[1]
            continue
        try:
            with open(d.path, "rb") as handle:
                out[d.path] = decode_for_display(handle.read())
        except OSError:
            out[d.path] = None
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="zgcheck")
def main() -> None:
    """Find missing and misplaced zero_grad() in PyTorch training code."""


@main.command()
@click.argument("paths", nargs=-1, type=str)
@click.option("--select", help="Comma-separated rule codes (or prefixes) to enable.")
@click.option("--ignore", help="Comma-separated rule codes (or prefixes) to disable.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when diagnostics remain.")
@click.option("--output-format", type=click.Choice(sorted(FORMATTERS)), default="text", show_default=True)
@click.option("--output-file", "-o", type=click.Path(dir_okay=False, writable=True), help="Write the report here.")
@click.option("--statistics", is_flag=True, help="Show counts per rule instead of each diagnostic.")
@click.option("--quiet", "-q", is_flag=True, help="Print diagnostics only, no summary.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Worker processes (default: CPU count).")
@click.option("--exclude", multiple=True, help="Gitignore-style pattern to skip (repeatable).")
@click.option("--no-respect-gitignore", is_flag=True, help="Check files that .gitignore excludes.")
@click.option("--force-exclude", is_flag=True, help="Apply excludes to explicitly named files too.")
@click.option("--stdin-filename", help="The name of the file read from '-' (for messages).")
def check(paths, select, ignore, exit_zero, output_format, output_file, statistics, quiet, jobs,
          exclude, no_respect_gitignore, force_exclude, stdin_filename):
    """Check PATHS (files or directories; default '.'; '-' reads stdin)."""
    config = Config(select=_codes(select), ignore=_codes(ignore) or frozenset(), tables=DEFAULT_CONFIG.tables)
    paths = paths or (".",)
    stdin = None
    diagnostics: List[Diagnostic] = []
    files: List[str] = []
    if "-" in paths:
        name = stdin_filename or "<stdin>"
        text = sys.stdin.buffer.read()
        diagnostics.extend(check_source(text, name, config))
        stdin = (name, decode_for_display(text))
        paths = tuple(p for p in paths if p != "-")
    if paths:
        discovery = Discovery(excludes=exclude, respect_gitignore=not no_respect_gitignore,
                              force_exclude=force_exclude)
        try:
            files = discovery.files(paths)
        except DiscoveryError as err:
            raise click.UsageError(str(err))
        diagnostics.extend(_check_many(files, config, jobs or os.cpu_count() or 1))
    diagnostics.sort(key=Diagnostic.sort_key)

    stream = open(output_file, "w", encoding="utf-8") if output_file else sys.stdout
    try:
        color = output_file is None and _use_color(sys.stdout)
        if statistics:
            stream.write(format_statistics(diagnostics))
        else:
            stream.write(FORMATTERS[output_format](diagnostics, _sources(diagnostics, stdin), color))
        if output_format in ("text", "concise") and not quiet and not statistics:
            checked = len(files) + (1 if stdin else 0)
            if diagnostics:
                click.echo(f"Found {len(diagnostics)} diagnostic{'s' if len(diagnostics) != 1 else ''} "
                           f"in {checked} file{'s' if checked != 1 else ''} checked.", err=output_file is None)
            else:
                click.echo(f"All checks passed ({checked} file{'s' if checked != 1 else ''} checked).",
                           err=output_file is None)
    finally:
        if output_file:
            stream.close()
    sys.exit(0 if exit_zero or not diagnostics else 1)


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
def rule(code, show_all):
    """Show the documentation of a rule (e.g. `zgcheck rule ZG001`)."""
    if show_all or not code:
        for r in ALL_RULES:
            click.echo(f"{r.code}  {r.name:<24} {r.summary}")
        return
    found = RULES_BY_CODE.get(code.upper()) or next((r for r in ALL_RULES if r.name == code), None)
    if found is None:
        raise click.UsageError(f"unknown rule {code!r}; known: {', '.join(RULES_BY_CODE)}")
    click.echo(render_rule(found))


def render_rule(r) -> str:
    def block(code: str) -> str:
        return "```python\n" + code + "```\n"

    return (f"# {r.name} ({r.code})\n\n"
            f"## What it does\n{r.what}\n\n## Why is this bad?\n{r.why}\n\n"
            f"## Example\n{block(r.example)}\n## Use instead:\n{block(r.use_instead)}\n"
            f"## Fix safety\n{r.fix_safety}\n")


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--output-format", type=click.Choice(sorted(FORMATTERS)), default="text", show_default=True)
def verify(script, args, output_format):
    """Run SCRIPT [ARGS]... under the runtime gradient checker (needs torch)."""
    try:
        from .runtime import run_script
    except ImportError as err:
        raise click.ClickException(
            f"`zgcheck verify` needs PyTorch ({err}). Install it with: pip install 'zgcheck[runtime]'")
    result = run_script(script, list(args))
    diagnostics = sorted(result.diagnostics, key=Diagnostic.sort_key)
    if result.error:
        click.echo("---- the script raised (its own traceback) ----", err=True)
        click.echo(result.error.rstrip("\n"), err=True)
        click.echo("---- zgcheck runtime report ----", err=True)
    sys.stdout.write(FORMATTERS[output_format](diagnostics, _sources(diagnostics), _use_color(sys.stdout)))
    if diagnostics:
        sys.exit(1)
    sys.exit(result.exit_code if result.exit_code else 0)
