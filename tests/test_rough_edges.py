"""The rough edges a new user hits (issue 13, item 7), each through the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zgcheck.cli import main

from cli_support import BUGGY, CLEAN, notebook, run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
UNSAFE = (FIXTURES / "missing_zero_in_helper_train_step.py").read_text()  # its only fix is unsafe
NB_PRELUDE = "import torch\nmodel = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(model.parameters())\n"
NB_LOOP = "for x in torch.randn(3, 4, 2):\n    model(x).sum().backward()\n    opt.step()\n"


def zgcheck(*args, cwd=None, input=None, env=None):
    """The real command in a subprocess: stdout and stderr apart, as a shell sees them."""
    return subprocess.run([sys.executable, "-m", "zgcheck", *args], cwd=cwd, input=input, env=env,
                          capture_output=True, text=True, timeout=300)


def test_fix_stdin_writes_only_the_fixed_source_to_stdout(tmp_path):
    fixed = zgcheck("check", "--no-cache", "--fix", "-", "--stdin-filename", "train.py", input=BUGGY)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout == BUGGY.replace("    optimizer.step()\n", "    optimizer.step()\n    optimizer.zero_grad()\n")
    assert "Fixed 1 diagnostic" in fixed.stderr

    left = zgcheck("check", "--no-cache", "--fix", "-", "--stdin-filename", "train.py", input=UNSAFE)
    assert left.returncode == 1 and left.stdout == UNSAFE  # unchanged: the only fix is unsafe
    assert "train.py:11:5: ZG001" in left.stderr  # what remains is reported, on stderr

    as_json = zgcheck("check", "--no-cache", "--fix", "--output-format", "json", "-", input=UNSAFE)
    assert as_json.stdout == UNSAFE and json.loads(as_json.stderr)[0]["code"] == "ZG001"


def project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "train.py").write_text(BUGGY.rstrip("\n"))  # no newline at the end
    (root / "crlf.py").write_bytes(BUGGY.replace("\n", "\r\n").encode())
    (root / "unsafe.py").write_text(UNSAFE)
    (root / "clean.py").write_text(CLEAN)
    (root / "nb.ipynb").write_text(notebook(("markdown", "# Train"), NB_PRELUDE, NB_LOOP))
    return root


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_diff_is_a_patch_git_applies_and_counts_like_fix(tmp_path):
    diffed, fixed = project(tmp_path / "diffed"), project(tmp_path / "fixed")
    for args in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=diffed, check=True)

    patch = zgcheck("check", "--no-cache", "--diff", ".", cwd=diffed)
    assert patch.returncode == 1
    assert "--- a/src/train.py\n+++ b/src/train.py\n" in patch.stdout
    assert "\\ No newline at end of file\n" in patch.stdout
    assert "--- a/nb.ipynb\n+++ b/nb.ipynb\n" in patch.stdout  # the notebook is its own unit
    assert "ZG001" not in patch.stdout  # the report goes to stderr: stdout is the patch alone
    raw = subprocess.run([sys.executable, "-m", "zgcheck", "check", "--no-cache", "--diff", "."], cwd=diffed,
                         capture_output=True).stdout  # bytes: CRLF lines keep their CR
    assert b"\r\n" in raw
    applied = subprocess.run(["git", "apply", "-v"], cwd=diffed, input=raw, capture_output=True)
    assert applied.returncode == 0, applied.stderr

    done = zgcheck("check", "--no-cache", "--fix", ".", cwd=fixed)
    for path in ("src/train.py", "crlf.py", "unsafe.py", "clean.py", "nb.ipynb"):
        assert (diffed / path).read_bytes() == (fixed / path).read_bytes(), path
    would = patch.stderr.strip().splitlines()[-1]
    did = done.stderr.strip().splitlines()[-1]
    assert would.replace("Would fix", "Fixed") == did, (would, did)
    assert did.startswith("Fixed 3 diagnostics; 1 diagnostic remaining")
    assert zgcheck("check", "--no-cache", "--diff", ".", cwd=diffed).stdout == ""  # nothing left to patch


def test_output_file_creates_missing_directories(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    target = tmp_path / "reports" / "deep" / "zgcheck.json"
    result = run("--output-format", "json", "--output-file", str(target), str(tmp_path / "train.py"))
    assert result.exit_code == 1 and json.loads(target.read_text())[0]["code"] == "ZG001"


def test_statistics_honour_json(tmp_path):
    (tmp_path / "a.py").write_text(BUGGY)
    (tmp_path / "b.py").write_text(BUGGY)
    (tmp_path / "c.py").write_text(UNSAFE)
    result = run("--statistics", "--output-format", "json", str(tmp_path))
    assert json.loads(result.stdout) == [{"code": "ZG001", "name": "missing-zero-grad", "count": 3, "fixable": True}]
    assert "ZG001" in run("--statistics", str(tmp_path)).stdout


def test_extend_select_adds_to_the_configured_selection(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.zgcheck]\nselect = ["ZG002"]\n')
    (tmp_path / "train.py").write_text(BUGGY)
    assert run(str(tmp_path / "train.py")).exit_code == 0
    result = run("--extend-select", "ZG001", "--output-format", "json", str(tmp_path / "train.py"))
    assert [d["code"] for d in json.loads(result.stdout)] == ["ZG001"]
    assert run("--extend-select", "ZG7", str(tmp_path)).exit_code == 2


def test_show_fixes_lists_what_was_fixed(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "unsafe.py").write_text(UNSAFE)
    result = zgcheck("check", "--no-cache", "--diff", "--show-fixes", ".", cwd=tmp_path)
    assert "Would fix 1 diagnostic:\n- train.py:\n    1 \u00d7 ZG001 (missing-zero-grad)\n" in result.stderr
    result = zgcheck("check", "--no-cache", "--fix", "--show-fixes", ".", cwd=tmp_path)
    assert "Fixed 1 diagnostic:\n- train.py:\n" in result.stderr and "unsafe.py:\n" not in result.stderr


@pytest.mark.parametrize("args, env, coloured", [
    ([], {}, False),  # not a terminal
    (["--color", "always"], {"NO_COLOR": "1"}, True),
    (["--color", "never"], {"FORCE_COLOR": "1"}, False),
    ([], {"FORCE_COLOR": "1"}, True),
    (["--color", "auto"], {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
])
def test_color_option_and_environment(tmp_path, args, env, coloured):
    (tmp_path / "train.py").write_text(BUGGY)
    clean_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    result = zgcheck("check", "--no-cache", *args, "train.py", cwd=tmp_path, env={**clean_env, **env})
    assert ("\x1b[" in result.stdout) is coloured


def test_cache_lives_at_the_project_root_or_where_asked(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.zgcheck]\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "train.py").write_text(BUGGY)
    assert zgcheck("check", "train.py", cwd=tmp_path / "pkg").returncode == 1
    assert (tmp_path / ".zgcheck_cache").is_dir() and not (tmp_path / "pkg" / ".zgcheck_cache").exists()

    elsewhere = tmp_path / "caches" / "zg"
    assert zgcheck("check", "--cache-dir", str(elsewhere), "train.py", cwd=tmp_path / "pkg").returncode == 1
    assert any(p.is_file() and len(p.name) == 64 for p in elsewhere.rglob("*"))
    from_env = tmp_path / "from-env"
    env = dict(os.environ, ZGCHECK_CACHE_DIR=str(from_env))
    assert zgcheck("check", "train.py", cwd=tmp_path / "pkg", env=env).returncode == 1
    assert any(len(p.name) == 64 for p in from_env.rglob("*"))


def test_cache_goes_to_the_git_top_level_without_a_configuration(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BUGGY)
    assert zgcheck("check", "train.py", cwd=tmp_path / "src").returncode == 1
    assert (tmp_path / ".zgcheck_cache").is_dir() and not (tmp_path / "src" / ".zgcheck_cache").exists()


def test_help_shows_whole_one_line_summaries():
    out = CliRunner().invoke(main, ["--help"]).output
    listed = out.split("Commands:", 1)[1].strip().splitlines()
    assert {line.split()[0] for line in listed} == set(main.commands)
    for line in listed:
        name, summary = line.split(None, 1)
        assert not summary.endswith("...") and summary == main.commands[name].short_help, line


def test_a_diagnostics_notes_are_printed_once(tmp_path):
    source = FIXTURES / "missing_zero_in_epoch_loop_only.py"
    result = run(str(source))
    notes = [line for line in result.output.splitlines() if line.strip().startswith("note:")]
    assert notes and len(notes) == len(set(notes))
    related = json.loads(run("--output-format", "json", str(source)).stdout)[0]["related"]
    assert len(related) == len({json.dumps(r, sort_keys=True) for r in related})
