"""Every snippet in README.md does what the README says."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from zgcheck.cli import main
from zgcheck.config import KNOWN_KEYS, load_config

from cli_support import BUGGY, CLEAN, notebook, readme_block, readme_blocks, run

yaml = pytest.importorskip("yaml", reason="PyYAML comes with pre-commit, in the `test` extra")

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())


def test_configuration_block_is_valid_and_used(tmp_path):
    block = readme_block("toml", "[tool.zgcheck]")
    (tmp_path / "pyproject.toml").write_text(block)
    config = load_config(tmp_path / "pyproject.toml")
    assert config.ignore == {"ZG002"} and config.select == {"ZG"}
    documented = set(re.findall(r"^#?\s*([a-z-]+) = ", block, re.M))
    assert documented == set(KNOWN_KEYS)  # every key is shown, and only real keys

    (tmp_path / "tests").mkdir()
    (tmp_path / "legacy").mkdir()
    for name in ("train.py", "tests/test_train.py", "legacy/old.py", "model_pb2.py"):
        (tmp_path / name).write_text(BUGGY)
    (tmp_path / "wipe.py").write_text(BUGGY.replace("    optimizer.step()\n",
                                                    "    optimizer.zero_grad()\n    optimizer.step()\n"))
    (tmp_path / "custom.py").write_text(CLEAN.replace("optimizer = torch.optim.SGD", "updater = MyFancyAdam")
                                        .replace("optimizer.zero_grad()\n", "clear_grads(model)\n")
                                        .replace("loss.backward()", "loss.backprop()")
                                        .replace("optimizer.step()", "updater.step()"))
    result = run("--output-format", "json", str(tmp_path))
    found = sorted((Path(d["filename"]).name, d["code"]) for d in json.loads(result.stdout))
    # ZG002 ignored, tests/ per-file-ignored, legacy/ and *_pb2.py excluded; custom.py is clean
    # only because the extra names teach zgcheck its backward, optimizer and zero.
    assert found == [("train.py", "ZG001")]
    (tmp_path / "custom.py").write_text((tmp_path / "custom.py").read_text().replace("    clear_grads(model)\n", ""))
    result = run("--output-format", "json", str(tmp_path))
    assert sorted(Path(d["filename"]).name for d in json.loads(result.stdout)) == ["custom.py", "train.py"]


def test_suppression_examples(tmp_path):
    block = readme_block("python", "# noqa: ZG001")
    lines = [line for line in block.splitlines() if line.strip()]
    path = tmp_path / "train.py"
    for line in lines:
        if line.startswith("# zgcheck: skip-file"):
            path.write_text(line + "\n" + BUGGY)
        else:
            path.write_text(BUGGY.replace("    optimizer.step()\n", f"    {line}\n"))
        assert run(str(path)).exit_code == 0, line
    path.write_text(BUGGY)
    assert run(str(path)).exit_code == 1


def test_notebook_output_example(tmp_path, monkeypatch):
    example = readme_block("", "ipynb:cell").strip()
    prelude = "import torch\nmodel = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    loop = "for x in torch.randn(3, 4, 2):\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n"
    (tmp_path / "train.ipynb").write_text(notebook(("markdown", "# Training"), prelude, loop))
    monkeypatch.chdir(tmp_path)
    result = run("--output-format", "concise", "train.ipynb")
    assert result.stdout.startswith(example.rstrip(".").rstrip())


def test_pre_commit_snippet_names_real_hooks():
    config = yaml.safe_load(readme_block("yaml", "repos:"))
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    repo = config["repos"][0]
    assert repo["rev"] == "v0.1.0" and repo["repo"].startswith("https://")
    assert {h["id"] for h in repo["hooks"]} <= set(hooks)
    assert set(hooks) == {"zgcheck", "zgcheck-fix"}
    assert "zgcheck-fix" in (ROOT / "README.md").read_text(encoding="utf-8")
    for hook in hooks.values():
        assert hook["entry"].startswith("zgcheck check")
        assert hook["types_or"] == ["python", "jupyter"] and hook["require_serial"] is True
        assert hook["minimum_pre_commit_version"] == "3.0.0"
    assert "--fix" in hooks["zgcheck-fix"]["entry"] and "--fix" not in hooks["zgcheck"]["entry"]


def test_github_actions_job_runs_for_real(tmp_path):
    steps = yaml.safe_load(readme_block("yaml", "upload-sarif"))  # the job's steps, without the action
    command = next(s["run"] for s in steps if str(s.get("run", "")).startswith("zgcheck check"))
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    argv = shlex.split(command)
    report = argv[argv.index("--output-file") + 1]
    assert upload["with"]["sarif_file"] == report and upload.get("if") == "always()"

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BUGGY)
    (tmp_path / "clean.py").write_text(CLEAN)
    proc = subprocess.run([sys.executable, "-m", "zgcheck", *argv[1:]], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    log = json.loads((tmp_path / report).read_text())
    jsonschema.validate(log, SCHEMA)
    [result] = log["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "src/train.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == 7


def test_usage_block_lists_real_options():
    block = readme_block("", "zgcheck check [PATHS]")
    help_text = "".join(CliRunner().invoke(main, [*command, "--help"]).output
                        for command in (["check"], [], ["verify"]))
    for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", block):
        assert option in help_text, option
    formats = re.search(r"--output-format (\S+)", block).group(1).split("|")
    assert set(formats) == {"text", "concise", "json", "sarif", "github"}


def test_try_it_example_output():
    example = next(body for lang, body in readme_blocks() if lang == "" and body.startswith("fixtures/"))
    target = example.split(":", 1)[0]
    assert (ROOT / target).exists(), f"README's example {target} does not exist: update README.md"
    command = readme_block("bash", "zgcheck check fixtures/")
    assert command.split("zgcheck check ", 1)[1].split()[0] == target
    proc = subprocess.run([sys.executable, "-m", "zgcheck", "check", "--no-cache", target], cwd=ROOT,
                          capture_output=True, text=True)
    shown = [line.rstrip() for line in example.splitlines() if line.strip()]
    got = [line.rstrip() for line in proc.stdout.splitlines() if line.strip()]
    assert got[:len(shown)] == shown


def test_editor_snippets_start_the_server_and_name_its_actions():
    from zgcheck.server import FIX_ALL

    vscode = json.loads(readme_block("json", "glspc"))
    assert [vscode["glspc.server.command"], *vscode["glspc.server.commandArguments"]] == ["zgcheck", "server"]
    assert FIX_ALL in vscode["editor.codeActionsOnSave"]
    assert 'cmd = { "zgcheck", "server" }' in readme_block("lua", "vim.lsp.start")
    helix = readme_block("toml", "[language-server.zgcheck]")
    assert 'command = "zgcheck"' in helix and 'args = ["server"]' in helix
    assert FIX_ALL in (ROOT / "README.md").read_text(encoding="utf-8")
    assert CliRunner().invoke(main, ["server", "--help"]).exit_code == 0


def test_ci_runs_the_readme_test_command_and_pins_torch_outside_the_package():
    command = readme_block("bash", "python -m pytest").strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci.splitlines(), "README's test command and .ci/run must stay identical"
    constraints = (ROOT / ".ci" / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.M) and "-c .ci/constraints.txt" in command
    pyproject = (ROOT / "pyproject.toml").read_text()
    extras = re.search(r"^test = \[(.*)\]$", pyproject, re.M).group(1)
    assert "==" not in extras  # the test extra publishes no exact pin


def test_one_version_source():
    from zgcheck import __version__

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "zgcheck.__version__"' in pyproject
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version = ", project, re.M)
    proc = subprocess.run([sys.executable, "-m", "zgcheck", "--version"], capture_output=True, text=True)
    assert proc.stdout.strip().endswith(__version__)
