"""[tool.zgcheck] configuration, end to end through the CLI."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from zgcheck.config import Config, ConfigError, load_config, resolve
from zgcheck.recognise import DEFAULT_TABLES

from cli_support import BUGGY, CLEAN, codes, run

ZG002 = textwrap.dedent("""\
    import torch
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in torch.randn(3, 4, 2):
        loss = model(x).sum()
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
    """)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(tmp_path):
    write(tmp_path / "buggy.py", BUGGY)
    write(tmp_path / "wipe.py", ZG002)
    write(tmp_path / "tests" / "test_train.py", BUGGY)
    return tmp_path


def check_json(*args):
    return run("--output-format", "json", *map(str, args))


def test_no_config_reports_everything(project):
    assert codes(check_json(project)) == [("ZG001", "buggy.py", 7), ("ZG001", "test_train.py", 7),
                                          ("ZG002", "wipe.py", 7)]


def test_select_ignore_and_per_file_ignores_from_pyproject(project):
    write(project / "pyproject.toml", """\
        [project]
        name = "demo"

        [tool.zgcheck]
        select = ["ZG0"]
        ignore = ["ZG002"]
        per-file-ignores = { "tests/*.py" = ["ZG001"] }
        """)
    assert codes(check_json(project)) == [("ZG001", "buggy.py", 7)]


def test_config_is_found_from_the_common_parent_upwards(project, monkeypatch):
    write(project / "pyproject.toml", '[tool.zgcheck]\nignore = ["ZG002"]\n')
    monkeypatch.chdir(project / "tests")
    assert codes(check_json(project / "wipe.py")) == []
    # From a subdirectory, with a relative path: still the project's file.
    assert codes(check_json("../wipe.py")) == []
    assert codes(check_json(".")) == [("ZG001", "test_train.py", 7)]


def test_a_pyproject_without_the_section_is_skipped(project):
    write(project / "pyproject.toml", '[tool.zgcheck]\nignore = ["ZG002"]\n')
    write(project / "tests" / "pyproject.toml", '[project]\nname = "inner"\n')
    assert codes(check_json(project / "tests", project / "wipe.py")) == [("ZG001", "test_train.py", 7)]


def test_cli_select_and_ignore_override_the_config(project):
    write(project / "pyproject.toml", '[tool.zgcheck]\nselect = ["ZG002"]\nignore = ["ZG001"]\n')
    assert codes(check_json(project / "buggy.py", project / "wipe.py")) == [("ZG002", "wipe.py", 7)]
    assert codes(check_json("--select", "ZG001", "--ignore", "ZG002", project / "buggy.py", project / "wipe.py")) == [
        ("ZG001", "buggy.py", 7)]


def test_explicit_config_file(project, tmp_path_factory):
    other = write(tmp_path_factory.mktemp("elsewhere") / "zg.toml", '[tool.zgcheck]\nselect = ["ZG002"]\n')
    assert codes(check_json("--config", other, project)) == [("ZG002", "wipe.py", 7)]
    missing = run("--config", str(project / "nope.toml"), str(project))
    assert missing.exit_code == 2 and "no such configuration file" in missing.output


def test_exclude_and_extend_exclude(project):
    write(project / "build" / "gen.py", BUGGY)
    write(project / "pyproject.toml", '[tool.zgcheck]\nextend-exclude = ["tests/"]\n')
    assert codes(check_json(project)) == [("ZG001", "buggy.py", 7), ("ZG002", "wipe.py", 7)]
    # `exclude` replaces the defaults: build/ is checked again.
    write(project / "pyproject.toml", '[tool.zgcheck]\nexclude = ["wipe.py"]\n')
    assert codes(check_json(project)) == [("ZG001", "buggy.py", 7), ("ZG001", "gen.py", 7),
                                          ("ZG001", "test_train.py", 7)]
    # --exclude adds to the configured excludes.
    assert codes(check_json("--exclude", "tests", project)) == [("ZG001", "buggy.py", 7), ("ZG001", "gen.py", 7)]


EXTENSIONS = [
    # (key, value, a script that is clean with default tables, expected codes with the key)
    ("extra-optimizer-names", ["updater"], """\
        import torch
        model = torch.nn.Linear(2, 1)
        updater = make_updater(model)
        for x in torch.randn(3, 4, 2):
            model(x).sum().backward()
            updater.step()
        """, ["ZG001"]),
    ("extra-optimizer-classes", ["Fancy"], """\
        import torch
        model = torch.nn.Linear(2, 1)
        updater = lib.Fancy(model.parameters())
        for x in torch.randn(3, 4, 2):
            model(x).sum().backward()
            updater.step()
        """, ["ZG001"]),
    ("extra-optimizer-factories", ["make_updater"], """\
        import torch
        model = torch.nn.Linear(2, 1)
        updater = make_updater(model)
        for x in torch.randn(3, 4, 2):
            model(x).sum().backward()
            updater.step()
        """, ["ZG001"]),
    ("extra-backward-methods", ["backprop"], """\
        import torch
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in torch.randn(3, 4, 2):
            model(x).sum().backprop()
            optimizer.step()
        """, ["ZG001"]),
]


@pytest.mark.parametrize("key,value,script,expected", EXTENSIONS, ids=[e[0] for e in EXTENSIONS])
def test_extra_recognition_names(tmp_path, key, value, script, expected):
    write(tmp_path / "train.py", script)
    assert codes(check_json(tmp_path)) == []
    write(tmp_path / "pyproject.toml", f"[tool.zgcheck]\n{key} = {value!r}\n".replace("'", '"'))
    assert [c for c, _, _ in codes(check_json(tmp_path))] == expected


def test_extra_zero_functions(tmp_path):
    write(tmp_path / "train.py", BUGGY.replace("    loss = model", "    clear_grads(model)\n    loss = model"))
    assert [c for c, _, _ in codes(check_json(tmp_path))] == ["ZG001"]
    write(tmp_path / "pyproject.toml", '[tool.zgcheck]\nextra-zero-functions = ["clear_grads"]\n')
    assert codes(check_json(tmp_path)) == []


def test_extra_model_names_extend_the_tables(tmp_path):
    config = load_config(write(tmp_path / "pyproject.toml", '[tool.zgcheck]\nextra-model-names = ["net_g"]\n'))
    assert "net_g" in config.tables.model_names
    assert config.tables.optimizer_classes == DEFAULT_TABLES.optimizer_classes


BAD = [
    ('bogus = 1', "unknown key 'bogus'"),
    ('select = "ZG001"', "select: expected a list of strings, got a string"),
    ('ignore = ["ZG777"]', "ignore: unknown rule code 'ZG777'"),
    ('extend-exclude = [1]', "extend-exclude: expected a list of strings"),
    ('per-file-ignores = ["x"]', "per-file-ignores: expected a table"),
    ('per-file-ignores = { "a.py" = ["nope"] }', "unknown rule code 'nope'"),
    ('extra-optimizer-names = ["not a name"]', "is not a (dotted) Python name"),
    ('select = [', "invalid TOML"),
]


@pytest.mark.parametrize("line,message", BAD, ids=[b[1] for b in BAD])
def test_bad_configuration_is_a_clear_error(project, line, message):
    pyproject = write(project / "pyproject.toml", f"[tool.zgcheck]\n{line}\n")
    result = run(str(project))
    assert result.exit_code == 2
    assert message in result.output and str(pyproject) in result.output
    assert "Traceback" not in result.output


def test_unknown_code_on_the_command_line_is_a_usage_error(project):
    result = run("--select", "ZG7", str(project))
    assert result.exit_code == 2 and "--select: unknown rule code 'ZG7'" in result.output


def test_stdin_filename_selects_per_file_ignores(project, monkeypatch):
    write(project / "pyproject.toml", '[tool.zgcheck]\nper-file-ignores = { "tests/**" = ["ZG001"] }\n')
    monkeypatch.chdir(project)
    assert run("-", "--stdin-filename", "tests/test_x.py", input=BUGGY).exit_code == 0
    result = run("-", "--stdin-filename", "src/train.py", input=BUGGY)
    assert result.exit_code == 1 and "src/train.py:7:5: ZG001" in result.output


def test_config_is_frozen_picklable_and_fingerprinted(project):
    write(project / "pyproject.toml", """\
        [tool.zgcheck]
        select = ["ZG001", "ZG002"]
        per-file-ignores = { "tests/*" = ["ZG001"] }
        extra-optimizer-names = ["updater"]
        """)
    config = resolve(None, [str(project)])
    assert pickle.loads(pickle.dumps(config)) == config
    with pytest.raises(Exception):
        config.select = None  # frozen
    same = load_config(project / "pyproject.toml")
    assert same.fingerprint() == config.fingerprint()
    assert len(config.fingerprint()) == 64
    # Set order does not matter; anything that changes results does.
    write(project / "pyproject.toml", """\
        [tool.zgcheck]
        select = ["ZG002", "ZG001"]
        per-file-ignores = { "tests/*" = ["ZG001"] }
        extra-optimizer-names = ["updater"]
        """)
    assert load_config(project / "pyproject.toml").fingerprint() == config.fingerprint()
    assert config.with_options(ignore=["ZG002"]).fingerprint() != config.fingerprint()
    assert Config().fingerprint() != config.fingerprint()


def test_config_error_is_an_exception_not_a_traceback(tmp_path):
    with pytest.raises(ConfigError):
        load_config(write(tmp_path / "pyproject.toml", "[tool.zgcheck]\nselect = 3\n"))


def test_clean_project_passes_with_config(tmp_path):
    write(tmp_path / "clean.py", CLEAN)
    write(tmp_path / "pyproject.toml", '[tool.zgcheck]\nselect = ["ZG"]\n')
    assert run(str(tmp_path)).exit_code == 0
