"""The command line: a thin click layer over discovery, checker, fixes and report."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import click

from . import __version__
from . import runner
from .config import Config, ConfigError, Resolver
from .discovery import Discovery, DiscoveryError
from .notebook import NotebookSource
from .report import FORMATTERS, at_call_sites, format_statistics, source_root
from . import codes
from .reading import decode_for_display, read_bytes
from .types import Diagnostic

def _codes(value: Optional[str]):
    if not value:
        return None
    return frozenset(code.strip().upper() for code in value.split(",") if code.strip())


def _use_color(stream, choice: str = "auto") -> bool:
    """--color always/never decide; auto: NO_COLOR turns it off, FORCE_COLOR on, else a terminal."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    return stream.isatty()


# Past this many files, a run on a terminal shows a progress bar on stderr.
PROGRESS_THRESHOLD = 50


class ConfigProblem(click.ClickException):
    """A configuration error: exit code 2, like a usage error, and no traceback."""

    exit_code = 2


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _sources(diagnostics: Sequence[Diagnostic], stdin: Optional[Tuple[str, str]] = None):
    out = {}
    for d in diagnostics:
        if d.path in out:
            continue
        if stdin is not None and d.path == stdin[0]:
            text: Optional[str] = stdin[1]
        else:
            try:
                text = decode_for_display(read_bytes(d.path))
            except OSError:
                text = None
        out[d.path] = NotebookSource.read(text) if text is not None and d.path.endswith(".ipynb") else text
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="zgcheck")
def main() -> None:
    """Find missing and misplaced zero_grad() in PyTorch training code."""


@main.command(short_help="Check files for missing and misplaced zero_grad(); fix them.")
@click.argument("paths", nargs=-1, type=str)
@click.option("--fix", is_flag=True, help="Apply safe fixes.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix or --diff, apply unsafe fixes too.")
@click.option("--diff", is_flag=True, help="Print the fixes as a patch (git apply accepts it); write nothing.")
@click.option("--add-noqa", is_flag=True,
              help="Add `# noqa: CODE` to every line with a diagnostic (merged into an existing `# noqa:`).")
@click.option("--show-fixes", is_flag=True, help="With --fix or --diff, list what was (or would be) fixed.")
@click.option("--select", help="Comma-separated rule codes (or prefixes) to enable.")
@click.option("--extend-select", help="Comma-separated rule codes (or prefixes) to enable on top of the selection.")
@click.option("--ignore", help="Comma-separated rule codes (or prefixes) to disable.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when diagnostics remain.")
@click.option("--output-format", type=click.Choice(sorted(FORMATTERS)), default="text", show_default=True)
@click.option("--output-file", "-o", type=click.Path(dir_okay=False), help="Write the report here (directories are created).")
@click.option("--statistics", is_flag=True, help="Show counts per rule instead of each diagnostic.")
@click.option("--quiet", "-q", is_flag=True, help="Print diagnostics only, no summary.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the text report: auto is on a terminal unless NO_COLOR is set (FORCE_COLOR forces it).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Worker processes (default: CPU count).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option("--cache-dir", envvar="ZGCHECK_CACHE_DIR", type=click.Path(file_okay=False),
              help="The cache directory [default: .zgcheck_cache at the project root; env: ZGCHECK_CACHE_DIR].")
@click.option("--exclude", multiple=True, help="Gitignore-style pattern to skip (repeatable).")
@click.option("--no-respect-gitignore", is_flag=True, help="Check files that .gitignore excludes.")
@click.option("--force-exclude", is_flag=True, help="Apply excludes to explicitly named files too.")
@click.option("--stdin-filename", help="The name of the file read from '-' (for messages and per-file-ignores).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Read [tool.zgcheck] from this file for every file, instead of each file's nearest pyproject.toml.")
def check(paths, fix, unsafe_fixes, diff, add_noqa, show_fixes, select, extend_select, ignore, exit_zero, output_format,
          output_file, statistics, quiet, color, jobs, no_cache, cache_dir, exclude, no_respect_gitignore,
          force_exclude, stdin_filename, config_path):
    """Check PATHS (files or directories; default '.'; '-' reads stdin)."""
    try:  # each file's own configuration (the nearest [tool.zgcheck] above it), as Ruff does
        configs = Resolver(config_path, select=_codes(select), ignore=_codes(ignore),
                           extend_select=_codes(extend_select))
        config = configs.for_file(stdin_filename) if stdin_filename else configs.for_directory(Path.cwd())
    except ConfigError as err:
        raise ConfigProblem(str(err))
    if add_noqa and (fix or diff or "-" in paths):
        raise click.UsageError("--add-noqa writes files: it cannot be combined with --fix, --diff or '-' (stdin)")
    mode = runner.Mode(fix=fix and not diff, unsafe=unsafe_fixes, diff=diff, add_noqa=add_noqa,
                       cache_dir=None if (no_cache or add_noqa) else _cache(cache_dir, config))
    paths = paths or (".",)
    stdin = None
    results: List[runner.FileResult] = []
    if "-" in paths:
        result, text = _check_stdin(stdin_filename or "<stdin>", config, mode)
        results.append(result)
        stdin = (result.path, text)
        paths = tuple(p for p in paths if p != "-")
    files: List[str] = []
    if paths:
        discovery = Discovery.for_config(config, exclude, respect_gitignore=not no_respect_gitignore,
                                         force_exclude=force_exclude, config_for=configs.for_directory)
        try:
            files = discovery.files(paths)
            groups = _by_config(files, configs)
        except DiscoveryError as err:
            raise click.UsageError(str(err))
        except ConfigError as err:
            raise ConfigProblem(str(err))
        index = runner.open_index(mode)  # one stat index for every configuration's files
        for group_config, group in groups.items():
            results.extend(_run(group, group_config, mode, jobs or os.cpu_count() or 1, index))
        if index is not None:
            index.save()
        order = {path: i for i, path in enumerate(files)}
        results.sort(key=lambda r: order.get(r.path, -1))

    named = files + ([stdin[0]] if stdin else [])
    diagnostics = _unique(at_call_sites((d for r in results for d in r.diagnostics + r.errors), named))
    fixed = sum(r.fixed for r in results)
    # stdout carries one thing: the patch (--diff), the fixed source (--fix -), or the report.
    report_to_stderr = diff or (stdin is not None and mode.fix)
    if output_file:
        Path(output_file).parent.mkdir(parents=True, exist_ok=True)
    stream = open(output_file, "w", encoding="utf-8") if output_file else sys.stderr if report_to_stderr else sys.stdout
    try:
        if diff:
            sys.stdout.write("".join(r.diff for r in results))
        if statistics:
            stream.write(format_statistics(diagnostics, output_format))
        else:
            stream.write(FORMATTERS[output_format](diagnostics, _sources(diagnostics, stdin),
                                                   not output_file and _use_color(stream, color)))
        if add_noqa:
            added = sum(r.noqa_added for r in results)
            click.echo(f"Added {added} noqa directive{'s' if added != 1 else ''}.", err=True)
        if show_fixes and (fix or diff):
            click.echo(_fixed_list(results, diff), err=True, nl=False)
        if output_format in ("text", "concise") and not quiet and not statistics:
            click.echo(_summary(diagnostics, len(files) + (1 if stdin else 0), fixed, diff, results),
                       err=output_file is None)
    finally:
        if output_file:
            stream.close()
    would_change = diff and any(r.diff for r in results)
    sys.exit(0 if exit_zero or not (diagnostics or would_change) else 1)


def _cache(cache_dir: Optional[str], config: Config) -> Optional[str]:
    """--cache-dir (or ZGCHECK_CACHE_DIR), else .zgcheck_cache at the project root: the
    directory of the configuration file, else the git top level, else the working directory."""
    if cache_dir:
        return runner.prepare_cache(directory=cache_dir)
    root = os.path.dirname(os.path.abspath(config.source)) if config.source else str(source_root())
    return runner.prepare_cache(root)


def _fixed_list(results, diff: bool) -> str:
    """Ruff's --show-fixes: per file, how many of each code were (or would be) fixed."""
    lines = []
    for r in results:
        if r.fixed and r.fixed_codes:
            lines.append(f"- {r.path}:")
            for code, n in sorted(Counter(r.fixed_codes).items()):
                lines.append(f"    {n} \u00d7 {code} ({codes.CODES[code].name if code in codes.CODES else code})")
    if not lines:
        return ""
    total = sum(r.fixed for r in results if r.fixed_codes)
    head = f"{'Would fix' if diff else 'Fixed'} {total} diagnostic{'s' if total != 1 else ''}:"
    return "\n".join([head, *lines]) + "\n"


def _by_config(files: List[str], configs: Resolver) -> Dict[Config, List[str]]:
    """Files grouped by the configuration that governs each (one group without a monorepo)."""
    groups: Dict[Config, List[str]] = {}
    by_directory: Dict[str, Config] = {}  # the files of one directory share their configuration
    for path in files:
        directory = os.path.dirname(path)
        if directory not in by_directory:
            by_directory[directory] = configs.for_file(path)
        groups.setdefault(by_directory[directory], []).append(path)
    return groups


def _unique(diagnostics) -> List[Diagnostic]:
    """Sorted, one per (file, cell, position, code): a helper's finding can be reached from
    several checked files, and the one carrying a fix wins."""
    best = {}
    for d in diagnostics:
        key = (os.path.normpath(d.path), d.cell, d.span, d.code)
        if key not in best or (best[key].fix is None and d.fix is not None):
            best[key] = d
    return sorted(best.values(), key=Diagnostic.sort_key)


def _run(files: List[str], config: Config, mode: runner.Mode, jobs: int, index) -> List[runner.FileResult]:
    if len(files) <= PROGRESS_THRESHOLD or not _stderr_is_tty():
        return runner.run(files, config, mode, jobs, index=index)
    with click.progressbar(length=len(files), label="Checking", file=sys.stderr,
                           show_pos=True, show_eta=False) as bar:
        return runner.run(files, config, mode, jobs, progress=bar.update, index=index)


def _check_stdin(name: str, config: Config, mode: runner.Mode) -> Tuple[runner.FileResult, str]:
    """The result for stdin, and its text for showing lines in the report."""
    from .checker import check_source  # the parser's stack: imported when something is checked
    from .source import with_deep_stack

    data = sys.stdin.buffer.read()
    text = decode_for_display(data) or ""
    if mode.fix or mode.diff:
        result = with_deep_stack(runner.fix_source, name, data, config, mode, False)
        if mode.fix:  # the fixed source goes to stdout, byte for byte what came in if nothing changed
            sys.stdout.flush()
            sys.stdout.buffer.write(result.fixed_bytes if result.fixed_bytes is not None else data)
            sys.stdout.buffer.flush()
        return result, text
    return runner.FileResult(name, with_deep_stack(check_source, data, name, config)), text


def _summary(diagnostics, checked: int, fixed: int, diff: bool, results) -> str:
    files = f"{checked} file{'s' if checked != 1 else ''} checked"
    parts = []
    if fixed:
        parts.append(f"{'Would fix' if diff else 'Fixed'} {fixed} diagnostic{'s' if fixed != 1 else ''}")
    if diagnostics:
        n = len(diagnostics)
        fixable = sum(1 for d in diagnostics if d.fix is not None and d.fix.applicability.name == "SAFE")
        unsafe = sum(1 for d in diagnostics if d.fix is not None and d.fix.applicability.name == "UNSAFE")
        noun = f"{n} diagnostic{'s' if n != 1 else ''}"
        parts.append(f"{noun} remaining" if fixed else f"Found {noun}")
        hints = []
        if fixable:
            hints.append(f"{fixable} fixable with --fix")
        if unsafe:
            hints.append(f"{unsafe} more with --unsafe-fixes")
        if hints:
            parts[-1] += f" ({', '.join(hints)})"
        conflicts = sum(r.conflicts for r in results)
        if conflicts:
            parts.append(f"{conflicts} fix{'es' if conflicts != 1 else ''} overlapped another and were not applied")
        return "; ".join(parts) + f" in {files}."
    if fixed:
        return "; ".join(parts) + f"; nothing left to report ({files})."
    return f"All checks passed ({files})."


@main.command(short_help="Show the documentation of a rule (e.g. `zgcheck rule ZG001`).")
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
def rule(code, show_all):
    """Show the documentation of a rule (e.g. `zgcheck rule ZG001`)."""
    if show_all or not code:
        for c in codes.CODES.values():
            click.echo(f"{c.code}  {c.name:<24} {c.summary}")
        return
    found = codes.lookup(code)
    if found is None:
        raise click.UsageError(f"unknown rule {code!r}; known: {', '.join(codes.CODES)}")
    click.echo(codes.render(found))


@main.command(short_help="Run the language server over stdio (for editors).")
def server():
    """Run the language server over stdio (for editors)."""
    from .server import serve

    serve()


def run() -> None:
    """The console entry point: click's own errors as usual, anything else one line, exit 2."""
    try:
        main(prog_name="zgcheck")
    except Exception as err:  # never a traceback for the user
        click.echo(f"zgcheck: internal error: {type(err).__name__}: {err}; please report it", err=True)
        sys.exit(2)


def _as_typed(d: Diagnostic) -> Diagnostic:
    """Frames give absolute paths; show those under the working directory relative to it."""
    from dataclasses import replace

    def short(path: str) -> str:
        rel = os.path.relpath(path) if os.path.isabs(path) else path
        return path if rel.startswith("..") else rel

    related = tuple(replace(r, path=short(r.path)) for r in d.related)
    return replace(d, path=short(d.path), related=related)


@main.command(short_help="Run a script under the runtime gradient checker (needs torch).",
              context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-m", "module", metavar="MODULE", help="Run library module MODULE as a script, like python -m.")
@click.option("--seed", type=int, default=None,
              help="Seed torch, random and numpy with N before the script starts (default: not seeded).")
@click.option("--output-format", type=click.Choice(sorted(FORMATTERS)), default="text", show_default=True)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="SCRIPT [ARGS]...")
def verify(module, seed, output_format, args):
    """Run SCRIPT [ARGS]... (or -m MODULE [ARGS]...) under the runtime gradient checker (needs torch).

    Options go before SCRIPT or MODULE; everything after them is the script's.
    """
    if module is None and not args:
        raise click.UsageError("give a SCRIPT to run, or -m MODULE")
    if module is None and not os.path.isfile(args[0]):
        raise click.UsageError(f"no such file: {args[0]!r}")
    try:
        from .runtime import run_module, run_script
    except ImportError as err:
        raise ConfigProblem(f"`zgcheck verify` needs PyTorch ({err}). Install it with: pip install 'zgcheck[runtime]'")
    if module is not None:
        result = run_module(module, list(args), seed=seed)
    else:
        result = run_script(args[0], list(args[1:]), seed=seed)
    if not result.started:
        raise click.UsageError(result.error)
    diagnostics = sorted((_as_typed(d) for d in result.diagnostics), key=Diagnostic.sort_key)
    if result.error:
        click.echo("---- the script raised (its own traceback) ----", err=True)
        click.echo(result.error.rstrip("\n"), err=True)
        click.echo("---- zgcheck runtime report ----", err=True)
    sys.stdout.write(FORMATTERS[output_format](diagnostics, _sources(diagnostics), _use_color(sys.stdout)))
    sys.stdout.flush()  # the report before the summary, when both go to one terminal
    for error in result.internal_errors:
        click.echo("zgcheck verify: internal error of the checker (please report it):", err=True)
        click.echo(error.rstrip("\n"), err=True)
    for warning in _verify_warnings(result):
        click.echo(f"zgcheck verify: warning: {warning}", err=True)
    click.echo(_verify_summary(result, diagnostics, seed), err=True)
    if result.internal_errors:
        sys.exit(2)
    if diagnostics:
        sys.exit(1)
    sys.exit(result.exit_code if result.exit_code else 0)


def _plural(n: int, noun: str, plural: str = "") -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _verify_warnings(result) -> List[str]:
    if result.error and not result.counts:
        return []  # the script failed before training: its traceback says why
    warnings = []
    if not result.counts.get("backward"):
        warnings.append("no backward() was observed: nothing was checked (is training in code"
                        " that does not run here, e.g. another interpreter or a C++ extension?)")
    elif not result.counts.get("step"):
        warnings.append("no optimizer step was observed: ZG001/ZG002 cannot occur without one")
    return warnings


def _verify_summary(result, diagnostics, seed) -> str:
    counts = result.counts
    seen = [_plural(counts.get("backward", 0), "backward call"), _plural(counts.get("step", 0), "step"),
            _plural(counts.get("zero", 0), "zero_grad call"), _plural(result.optimizers, "optimizer")]
    summary = ", ".join(seen)
    if result.children:
        summary += f"; {_plural(result.children, 'child process', 'child processes')} reported"
    if result.internal_errors:
        verdict = "internal error"
    elif diagnostics:
        codes = sorted({d.code for d in diagnostics})
        verdict = f"{_plural(len(diagnostics), 'finding')} ({', '.join(codes)})"
    else:
        verdict = "clean"
    seeded = f"seed {seed}" if seed is not None else "not seeded"
    return f"zgcheck verify: {summary}; verdict: {verdict}; {seeded}"
