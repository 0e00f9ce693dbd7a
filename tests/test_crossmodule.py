"""Helpers imported from other files of the project, and the cache that depends on them."""

from __future__ import annotations

import json
import textwrap

import pytest


from cli_support import ENGINE, invoke

UTIL = textwrap.dedent("""\
    def zero_grad(params):
        for p in params:
            if p.grad is not None:
                p.grad.detach_()
                p.grad.zero_()
    """)
MAIN = textwrap.dedent("""\
    import torch
    from .engine import train_one_epoch
    from .util import zero_grad
    from . import util


    def main():
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(3):
            train_one_epoch(model, opt, torch.randn(3, 4, 2))


    def zeroed_by_imported_helper(model, opt, data):
        for x in data:
            zero_grad(model.parameters())
            model(x).sum().backward()
            opt.step()


    def zeroed_through_module_attribute(model, opt, data):
        for x in data:
            util.zero_grad(model.parameters())
            model(x).sum().backward()
            opt.step()
    """)


@pytest.fixture
def package(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "engine.py").write_text(ENGINE)
    (pkg / "util.py").write_text(UTIL)
    (pkg / "main.py").write_text(MAIN)
    monkeypatch.chdir(tmp_path)
    return pkg


def check(*args):
    result = invoke(["check", "--output-format", "json", *args])
    return result, json.loads(result.stdout or "[]")


def test_imported_zero_helpers_count_and_the_helper_bug_is_reported_once(package):
    result, found = check("--no-cache", "pkg")
    assert [(d["filename"], d["code"], d["location"]["row"]) for d in found] == [("pkg/engine.py", "ZG001", 5)]


def test_a_caller_without_backward_is_checked_through_its_helper(package):
    # main.py alone: the bug lives in engine.py, reached through the import. engine.py was
    # not named, so the finding is reported at main.py's call, with a note at the helper.
    result, found = check("--no-cache", "pkg/main.py")
    assert [(d["filename"], d["code"], d["location"]["row"]) for d in found] == [("pkg/main.py", "ZG001", 11)]
    helper = [r for r in found[0]["related"] if r["message"].startswith("helper: ")]
    assert [(r["filename"], r["location"]["row"]) for r in helper] == [("pkg/engine.py", 5)]
    assert found[0]["fix"] is None  # never edit another file while fixing this one
    # Both named: the finding stays in the helper, reported once.
    result, found = check("--no-cache", "pkg/main.py", "pkg/engine.py")
    assert [(d["filename"], d["code"], d["location"]["row"]) for d in found] == [("pkg/engine.py", "ZG001", 5)]


def test_a_script_whose_top_level_calls_the_helper_is_checked_through_it(package):
    # No function at all: the top level binds the model and optimizer and calls the helper.
    (package / "script.py").write_text(textwrap.dedent("""\
        import torch
        from .engine import train_one_epoch

        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(3):
            train_one_epoch(model, opt, torch.randn(3, 4, 2))
        """))
    result, found = check("--no-cache", "pkg/script.py")
    assert [(d["filename"], d["code"], d["location"]["row"]) for d in found] == [("pkg/script.py", "ZG001", 7)]


def test_helpers_whose_bytes_were_let_go_are_read_again_alike(package, monkeypatch):
    # A worker keeps only the last files' bytes; an older helper is read again when asked.
    from zgcheck.analysis import imports
    monkeypatch.setattr(imports, "HELD_BYTES", 1)
    result, found = check("--no-cache", "pkg/main.py")
    assert [(d["filename"], d["code"], d["location"]["row"]) for d in found] == [("pkg/main.py", "ZG001", 11)]
    result, found = check("--no-cache", "pkg")
    assert [(d["filename"], d["code"], d["location"]["row"]) for d in found] == [("pkg/engine.py", "ZG001", 5)]


def test_cache_entry_is_dropped_when_an_imported_helper_changes(package):
    assert check("pkg/main.py")[0].exit_code == 1
    assert check("pkg/main.py")[0].exit_code == 1  # served from the cache
    (package / "engine.py").write_text(ENGINE.replace(
        "        optimizer.step()\n", "        optimizer.step()\n        optimizer.zero_grad()\n"))
    result, found = check("pkg/main.py")
    assert result.exit_code == 0 and found == []


def test_methods_inherited_from_a_base_class_in_another_file(package):
    (package / "base.py").write_text(textwrap.dedent("""\
        class BaseTrainer:
            def step_batch(self, x):
                loss = self.model(x).sum()
                loss.backward()
                self.optimizer.step()
        """))
    (package / "trainer.py").write_text(textwrap.dedent("""\
        from .base import BaseTrainer


        class Trainer(BaseTrainer):
            def fit(self, data):
                for x in data:
                    self.optimizer.zero_grad()
                    self.step_batch(x)


        class Forgetful(BaseTrainer):
            def fit(self, data):
                for x in data:
                    self.step_batch(x)
        """))
    result, found = check("--no-cache", "pkg/trainer.py")  # at the call of the inherited method
    assert [(d["filename"], d["code"], d["location"]["row"]) for d in found] == [("pkg/trainer.py", "ZG001", 8)]
    result, found = check("--no-cache", "pkg/trainer.py", "pkg/base.py")
    assert [(d["filename"], d["code"], d["location"]["row"]) for d in found] == [("pkg/base.py", "ZG001", 5)]


def test_an_unresolvable_import_is_simply_unknown(package):
    (package / "main.py").write_text(MAIN.replace("from .util import zero_grad", "from .nowhere import zero_grad"))
    result, found = check("--no-cache", "pkg/main.py")
    assert result.exit_code == 1 and "Traceback" not in result.output
