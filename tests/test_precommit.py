"""The pre-commit hooks, for real: `pre-commit try-repo` on a copy of this working tree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import BUGGY, CLEAN, notebook, readme_block

pytest.importorskip("pre_commit", reason="pre-commit is in the `test` extra: pip install -e '.[test]'")
if shutil.which("git") is None:
    pytest.skip("pre-commit needs git", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
# What `pip install .` of the hook repository needs; the rest of the checkout is irrelevant.
PACKAGE = ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "zgcheck")
OFFLINE = ("Could not find a version", "No matching distribution", "Failed to establish a new connection",
           "Temporary failure in name resolution", "Network is unreachable", "ProxyError", "ConnectTimeout",
           "Read timed out")


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=zgcheck tests", "-c", "user.email=tests@invalid", "-c",
                    "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def hooks(tmp_path_factory):
    """A git repository holding the current working tree's package, committed (try-repo clones HEAD)."""
    repo = tmp_path_factory.mktemp("hooks-repo")
    for name in PACKAGE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, repo / name)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "zgcheck under test", cwd=repo)
    return repo, tmp_path_factory.mktemp("pre-commit-home")


def try_repo(hooks, project_dir: Path, hook: str):
    repo, home = hooks
    return _pre_commit(project_dir, home, "try-repo", str(repo), hook, "--all-files")


def _pre_commit(cwd: Path, home: Path, *args):
    env = dict(os.environ, PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never", NO_COLOR="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@invalid")
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([sys.executable, "-m", "pre_commit", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and "error has occurred" in output and any(m in output for m in OFFLINE):
        pytest.skip("pre-commit could not install the hook's dependencies from PyPI (no network?)")
    return proc.returncode, output


def project(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    git("init", "-q", cwd=tmp_path)
    git("add", "-A", cwd=tmp_path)
    return tmp_path


def test_try_repo_fails_on_a_missing_zero_grad(hooks, tmp_path):
    code, output = try_repo(hooks, project(tmp_path, **{"train.py": BUGGY, "clean.py": CLEAN}), "zgcheck")
    assert code == 1, output
    assert "train.py:7:5: ZG001" in output and "clean.py" not in output


def test_installed_hooks_check_fix_and_pass(hooks, tmp_path):
    """The README's .pre-commit-config.yaml, pointed at the copy: python and jupyter files, check then fix."""
    repo, _ = hooks
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    config = readme_block("yaml", "repos:")
    config = re.sub(r"repo: \S+", f"repo: {repo.as_posix()}", config)
    config = re.sub(r"rev: \S+", f"rev: {sha}", config)
    config += "      - id: zgcheck-fix\n        stages: [manual]\n"
    nb = notebook("import torch\nmodel = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(model.parameters())\n",
                  "for x in torch.randn(3, 4, 2):\n    model(x).sum().backward()\n    opt.step()\n")
    project(tmp_path, **{"train.py": BUGGY, "clean.py": CLEAN, "nb.ipynb": nb, ".pre-commit-config.yaml": config})

    code, output = run_hooks(hooks, tmp_path, "zgcheck")
    assert code == 1, output
    assert "train.py:7:5: ZG001" in output and "nb.ipynb:cell 2:3:5: ZG001" in output
    assert "clean.py" not in output

    code, output = run_hooks(hooks, tmp_path, "zgcheck-fix", "--hook-stage", "manual")
    assert code == 1, output  # pre-commit fails a hook that modified files
    assert "optimizer.step()\n    optimizer.zero_grad()\n" in (tmp_path / "train.py").read_text()

    code, output = run_hooks(hooks, tmp_path, "zgcheck")
    assert code == 0 and "Passed" in output, output


def run_hooks(hooks, project_dir: Path, hook: str, *extra):
    _, home = hooks
    return _pre_commit(project_dir, home, "run", hook, "--all-files", *extra)


HELPER = "def step(optimizer):\n    optimizer.step()\n"
CALLER = ("import torch\nfrom helpers import step\nmodel = torch.nn.Linear(2, 1)\n"
          "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
          "for x in torch.randn(3, 4, 2):\n    model(x).sum().backward()\n    step(optimizer)\n")


def test_a_helpers_finding_is_reported_once_at_the_call_site_of_the_named_file(hooks, tmp_path):
    repo, home = hooks
    project(tmp_path, **{"helpers.py": HELPER, "train.py": CALLER, "other.py": CALLER.replace("step(optimizer)\n",
                                                                                              "pass\n")})
    code, output = _pre_commit(tmp_path, home, "try-repo", str(repo), "zgcheck", "--files", "train.py")
    assert code == 1, output
    assert "train.py:7:5: ZG001" in output and "helper: `optimizer.step()` at helpers.py:2:5" in output
    assert "helpers.py:2:5: ZG001" not in output
    assert len(re.findall(r": ZG001 ", output)) == 1

    code, output = try_repo(hooks, tmp_path, "zgcheck")  # every file named: the helper's own line
    assert code == 1, output
    assert len(re.findall(r": ZG001 ", output)) == 1 and "helpers.py:2:5: ZG001" in output
