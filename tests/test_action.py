"""The composite GitHub Action (action.yml), its shell steps run for real as a runner would.

The runner's expression language is reduced to what action.yml uses: `${{ inputs.x }}`,
`${{ github.action_path }}` and `${{ steps.id.outputs.x }}` in `env:` values. The
upload step (another action) is not run; its condition is checked instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from cli_support import BUGGY, CLEAN, readme_block

yaml = pytest.importorskip("yaml", reason="PyYAML comes with pre-commit, in the `test` extra")
if shutil.which("bash") is None:
    pytest.skip("the action's steps are bash", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(inputs|github|steps)\.([\w-]+)(?:\.outputs\.([\w-]+))?\s*\}\}")


@pytest.fixture(scope="module")
def action_path(tmp_path_factory):
    """The action's checkout: what `uses: zgcheck/zgcheck@<ref>` puts in github.action_path."""
    path = tmp_path_factory.mktemp("action")
    for name in ("action.yml", "pyproject.toml", "README.md", "LICENSE", "zgcheck"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, path / name)
    return path


@pytest.fixture(scope="module")
def installed(action_path, tmp_path_factory):
    """The install step, run once: (RUNNER_TEMP, its outputs); later runs reuse its virtualenv."""
    runner_temp = tmp_path_factory.mktemp("runner-temp")
    outputs, _ = run_steps(action_path, runner_temp, tmp_path_factory.mktemp("work"), {}, only="install")
    return runner_temp, outputs


def run_steps(action_path: Path, runner_temp: Path, workspace: Path, inputs: dict, only=None, prior=None):
    """Run the action's bash steps in order (all but the install step when `prior` holds
    its outputs); returns ({step id: outputs, with its stdout}, the last step's exit code)."""
    values = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    values.update(inputs)
    outputs = dict(prior or {})
    code = 0

    def expand(match) -> str:
        scope, name, key = match.groups()
        if scope == "inputs":
            return values[name]
        if scope == "github":
            return {"action_path": str(action_path)}[name]
        return outputs.get(name, {}).get(key, "")

    for step in ACTION["runs"]["steps"]:
        sid = step.get("id", step["name"])
        if "run" not in step or (only and sid != only) or sid in outputs:
            continue
        assert "${{" not in step["run"], "inputs reach scripts through env, never pasted into them"
        output_file = runner_temp / f"output-{sid}"
        output_file.write_text("")
        env = dict(os.environ, RUNNER_TEMP=str(runner_temp), GITHUB_OUTPUT=str(output_file))
        env.update({k: EXPRESSION.sub(expand, str(v)) for k, v in step.get("env", {}).items()})
        proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=900)
        outputs[sid] = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        outputs[sid]["stdout"] = proc.stdout
        code = proc.returncode
        assert code == 0 or sid == "Verdict", proc.stdout + proc.stderr
    return outputs, code


def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BUGGY)
    (tmp_path / "my notes.py").write_text(BUGGY)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def test_install_uses_the_actions_own_source(installed):
    _, outputs = installed
    assert outputs["install"]["zgcheck"].endswith("/bin/zgcheck")
    assert "zgcheck, version" in outputs["install"]["stdout"]


def test_annotations_and_failing_verdict(action_path, installed, tmp_path):
    runner_temp, prior = installed
    work = project(tmp_path)

    def run(**inputs):
        return run_steps(action_path, runner_temp, work, inputs, prior=prior)

    outputs, code = run(paths="src 'my notes.py' clean.py")
    annotations = outputs["check"]["stdout"].splitlines()
    assert sorted(a.split(",")[1] for a in annotations) == ["file=my notes.py", "file=src/train.py"]
    assert all(a.startswith("::error title=zgcheck (ZG001)") for a in annotations)
    assert outputs["check"]["exit-code"] == "1" and code == 1

    outputs, code = run(paths="src", args="--select ZG002")
    assert outputs["check"]["exit-code"] == "0" and code == 0
    outputs, code = run(paths="src", **{"fail-on-findings": "false"})
    assert outputs["check"]["exit-code"] == "1" and code == 0  # reported, not failed
    outputs, code = run(args="--select NOPE", **{"fail-on-findings": "false"})
    assert outputs["check"]["exit-code"] == "2" and code == 2  # errors always fail


def test_sarif_is_written_for_the_upload_step(action_path, installed, tmp_path):
    runner_temp, prior = installed
    work = project(tmp_path)
    (work / ".git").mkdir()  # the repository root: SARIF paths are relative to it
    outputs, code = run_steps(action_path, runner_temp, work / "src", {"output-format": "sarif"}, prior=prior)
    assert code == 1 and outputs["check"]["sarif-file"] == "zgcheck.sarif"
    log = json.loads((work / "src" / "zgcheck.sarif").read_text())
    jsonschema.validate(log, SCHEMA)
    [result] = log["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/train.py"
    upload = next(s for s in ACTION["runs"]["steps"] if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert "always()" in upload["if"] and "inputs.output-format == 'sarif'" in upload["if"]
    assert upload["with"]["sarif_file"] == "${{ inputs.sarif-file }}"


def test_readme_shows_both_workflows():
    annotations = yaml.safe_load(readme_block("yaml", "output-format: github"))
    scanning = yaml.safe_load(readme_block("yaml", "output-format: sarif"))
    for workflow in (annotations, scanning):
        [job] = workflow["jobs"].values()
        step = next(s for s in job["steps"] if s.get("uses", "").startswith("zgcheck/zgcheck@"))
        assert set(step.get("with", {})) <= set(ACTION["inputs"])
    [job] = scanning["jobs"].values()
    assert job["permissions"]["security-events"] == "write"
