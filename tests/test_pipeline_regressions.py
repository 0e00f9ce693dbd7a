"""Bugs that came from how the analysis's parts were connected, each through the CLI."""

from __future__ import annotations

import json
import textwrap

from click.testing import CliRunner

from zgcheck.cli import main


def check(*args):
    result = CliRunner().invoke(main, ["check", "--output-format", "json", *args])
    assert result.exit_code in (0, 1), result.output
    return sorted((d["filename"].rsplit("/", 1)[-1], d["code"], d["location"]["row"])
                  for d in json.loads(result.stdout or "[]"))


def write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_helper_imported_under_the_callers_own_name_is_not_recursion(tmp_path, monkeypatch):
    # Unit names repeat across files: `train` in util.py is not `train` in main.py.
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/util.py": """\
            def train(optimizer):
                optimizer.zero_grad()
            """,
        "pkg/main.py": """\
            from .util import train as reset


            def train(model, optimizer, data):
                for x in data:
                    reset(optimizer)
                    model(x).sum().backward()
                    optimizer.step()
            """,
    })
    monkeypatch.chdir(tmp_path)
    assert check("--no-cache", "pkg/main.py") == []


def test_a_configured_backward_method_named_like_backward_is_checked(tmp_path, monkeypatch):
    write(tmp_path, {
        "pyproject.toml": '[tool.zgcheck]\nextra-backward-methods = ["my_backward"]\n',
        "train.py": """\
            def train(trainer, optimizer, data):
                for x in data:
                    trainer.my_backward(x)
                    optimizer.step()
            """,
    })
    monkeypatch.chdir(tmp_path)
    assert check("--no-cache", "train.py") == [("train.py", "ZG001", 4)]


def test_the_fix_for_a_scaler_not_named_scaler_zeroes_the_optimizer(tmp_path):
    path = tmp_path / "amp.py"
    write(tmp_path, {"amp.py": """\
        import torch
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        gs = torch.amp.GradScaler("cpu")
        for x in torch.randn(3, 4, 2):
            gs.scale(model(x).sum()).backward()
            gs.step(optimizer)
            gs.update()
        """})
    result = CliRunner().invoke(main, ["check", "--fix", "--no-cache", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_text().endswith("    gs.step(optimizer)\n    gs.update()\n    optimizer.zero_grad()\n")


def test_the_cache_follows_a_helper_imported_through_another_helper(tmp_path, monkeypatch):
    # b.py is checked first and loads engine.py without reaching util.py; a.py then
    # reaches util.py through the same (shared) engine.py: a.py's verdict depends on it.
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/util.py": """\
            def reset(optimizer):
                optimizer.zero_grad()
            """,
        "pkg/engine.py": """\
            from .util import reset


            def train_one_epoch(model, optimizer, data):
                for x in data:
                    reset(optimizer)
                    model(x).sum().backward()
                    optimizer.step()


            def evaluate(model, optimizer, x):
                model(x).sum().backward()
                optimizer.step()
            """,
        "pkg/b.py": """\
            from .engine import evaluate


            def main(model, optimizer, x):
                evaluate(model, optimizer, x)
            """,
        "pkg/a.py": """\
            from .engine import train_one_epoch


            def main(model, optimizer, data):
                for epoch in range(3):
                    train_one_epoch(model, optimizer, data)
            """,
    })
    monkeypatch.chdir(tmp_path)
    assert check("pkg/b.py", "pkg/a.py") == []
    (tmp_path / "pkg/util.py").write_text("def reset(optimizer):\n    return optimizer\n")
    # engine.py is not named: its finding is reported at a.py's call (issue 13)
    assert check("pkg/b.py", "pkg/a.py") == [("a.py", "ZG001", 6)]


def test_a_name_rebound_to_an_optimizer_of_its_own_parameters_is_analysed(tmp_path):
    # `model = Adam(model.parameters())` once sent name resolution round in a circle.
    write(tmp_path, {"t.py": """\
        import torch
        model = torch.nn.Linear(1, 1)
        model = torch.optim.Adam(model.parameters())
        for x in torch.randn(3, 1):
            torch.nn.Linear(1, 1)(x).sum().backward()
            model.step()
        """})
    assert check("--no-cache", str(tmp_path / "t.py")) == [("t.py", "ZG001", 6)]
