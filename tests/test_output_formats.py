"""Report formats: SARIF (validated against the 2.1.0 schema), GitHub annotations, --output-file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from zgcheck.rules import ALL_RULES

from cli_support import BUGGY, CLEAN, notebook, run

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
PRELUDE = "import torch\nmodel = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
LOOP = "for x in torch.randn(3, 4, 2):\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "buggy.py").write_text(BUGGY)
    (tmp_path / "clean.py").write_text(CLEAN)
    (tmp_path / "broken.py").write_text("loss.backward()\ndef f(:\n")
    (tmp_path / "nb.ipynb").write_text(notebook(("markdown", "# Train"), PRELUDE, LOOP))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sarif(*args):
    result = run("--output-format", "sarif", *args)
    assert result.exit_code == 1, result.output
    log = json.loads(result.stdout)
    jsonschema.validate(log, SCHEMA)
    return log


def test_sarif_validates_and_describes_the_tool(project):
    log = sarif(".")
    assert log["version"] == "2.1.0"
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "zgcheck" and driver["version"] and driver["informationUri"].startswith("https://")
    rules = {r["id"]: r for r in driver["rules"]}
    for rule in ALL_RULES:
        descriptor = rules[rule.code]
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["fullDescription"]["text"]
        assert rule.example in descriptor["help"]["markdown"] and rule.use_instead in descriptor["help"]["markdown"]
        assert rule.example in descriptor["help"]["text"]
        assert descriptor["defaultConfiguration"]["level"] == "error"
    assert {"ZG901", "ZG904"} <= set(rules)


def test_sarif_results(project):
    log = sarif(".")
    run_ = log["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    results = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]): r
               for r in run_["results"]}
    assert set(results) == {("ZG001", "src/buggy.py"), ("ZG901", "broken.py"), ("ZG001", "nb.ipynb")}
    for result in run_["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == "error"
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    buggy = results[("ZG001", "src/buggy.py")]
    assert buggy["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 7, "startColumn": 5, "endLine": 7, "endColumn": 21}
    related = buggy["relatedLocations"]
    assert [r["id"] for r in related] == list(range(1, len(related) + 1))
    assert related[0]["physicalLocation"]["region"]["startLine"] == 6 and "backward" in related[0]["message"]["text"]
    fix = buggy["fixes"][0]
    replacement = fix["artifactChanges"][0]["replacements"][0]
    assert replacement["insertedContent"]["text"] == "    optimizer.zero_grad()\n"
    assert replacement["deletedRegion"]["startLine"] == 8
    assert fix["artifactChanges"][0]["artifactLocation"]["uri"] == "src/buggy.py"


def test_sarif_points_notebook_results_at_the_json_line_of_the_cell(project):
    result = [r for r in sarif("nb.ipynb")["runs"][0]["results"]][0]
    location = result["locations"][0]
    assert location["properties"] == {"cell": 3, "cellRegion": {
        "startLine": 4, "startColumn": 5, "endLine": 4, "endColumn": 21}}
    assert location["logicalLocations"] == [{"name": "cell 3"}]
    line = location["physicalLocation"]["region"]["startLine"]
    assert '"    optimizer.step()"' in (project / "nb.ipynb").read_text().splitlines()[line - 1]
    assert "cell" not in result["message"]["text"]  # the cell is in the location, not the message
    [backward] = [r for r in result["relatedLocations"] if r["message"]["text"].startswith("backward")]
    assert backward["properties"]["cell"] == 3 and backward["properties"]["cellRegion"]["startLine"] == 3


def test_sarif_uris_are_relative_to_the_git_top_level(project, monkeypatch):
    (project / ".git").mkdir()
    monkeypatch.chdir(project / "src")
    run_ = sarif("buggy.py")["runs"][0]
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.as_uri() + "/"
    location = run_["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": "src/buggy.py", "uriBaseId": "%SRCROOT%"}


def test_sarif_fingerprints_survive_unrelated_edits(project):
    def fingerprints():
        return sorted(r["partialFingerprints"]["zgcheck/v1"] for r in sarif(".")["runs"][0]["results"])

    before = fingerprints()
    assert len(set(before)) == len(before) == 3
    buggy = project / "src" / "buggy.py"
    buggy.write_text("# a comment and a blank line above everything\n\n" + buggy.read_text())
    (project / "other.py").write_text(BUGGY)  # the same code in another file is another finding
    after = fingerprints()
    assert set(before) < set(after) and len(after) == 4
    buggy.write_text(BUGGY + BUGGY.split("import torch\n", 1)[1])  # the same bug twice in one file
    assert len(set(fingerprints())) == 5


def test_sarif_rules_link_to_their_generated_pages(project):
    from zgcheck import codes

    root = Path(__file__).resolve().parent.parent
    for rule in sarif(".")["runs"][0]["tool"]["driver"]["rules"]:
        page = rule["helpUri"].rsplit("/docs/rules/", 1)[1]
        assert (root / "docs" / "rules" / page).read_text(encoding="utf-8") == codes.render(codes.CODES[rule["id"]])


def test_docs_rules_are_generated_from_the_codes_table():
    """docs/rules/ is what `python -m zgcheck.codes` writes: run it after changing a rule's docs."""
    from zgcheck import codes

    directory = Path(__file__).resolve().parent.parent / "docs" / "rules"
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in directory.glob("*.md")}
    assert on_disk == codes.pages()


def test_sarif_paths_outside_the_working_directory_are_absolute_uris(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "t.py"
    outside.write_text(BUGGY)
    result = sarif(str(outside))["runs"][0]["results"][0]
    location = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"] == outside.as_uri() and "uriBaseId" not in location


def test_sarif_with_no_results_still_validates(project):
    result = run("--output-format", "sarif", "clean.py")
    assert result.exit_code == 0
    log = json.loads(result.stdout)
    jsonschema.validate(log, SCHEMA)
    assert log["runs"][0]["results"] == []


def test_github_annotations(project):
    out = run("--output-format", "github", ".").stdout.splitlines()
    assert "::error title=zgcheck (ZG001),file=src/buggy.py,line=7,col=5,endLine=7,endColumn=21::ZG001 " \
           "`optimizer.step()` applies" in "\n".join(out)
    nb = next(line for line in out if "nb.ipynb" in line)
    assert ",line=" in nb and "::ZG001 cell 3:4:5: " not in nb and "::cell 3:4:5: ZG001 " in nb


@pytest.mark.parametrize("fmt", ["text", "concise", "json", "sarif", "github"])
def test_output_file_for_every_format(project, fmt):
    out = project / f"report.{fmt}"
    result = run("--output-format", fmt, "--output-file", str(out), ".")
    assert result.exit_code == 1
    text = out.read_text()
    assert "ZG001" in text and "src/buggy.py" in text
    assert "ZG001" not in result.stdout
    if fmt == "sarif":
        jsonschema.validate(json.loads(text), SCHEMA)


def test_text_shows_notebook_cells_and_their_lines(project):
    result = run("nb.ipynb")
    assert "nb.ipynb:cell 3:4:5: ZG001" in result.output
    assert "4 |     optimizer.step()" in result.output
    assert "at nb.ipynb:cell 3:3:5" in result.output  # the related backward, in its cell
