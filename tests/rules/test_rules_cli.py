"""`crm rules` as a compliance officer meets it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.main import app
from rules.model import BUNDLED

runner = CliRunner()


def candidate_folder(tmp_path: Path, edit=None) -> Path:
    """A copy of the bundled ruleset, with ``edit(service_tier_doc)`` applied to its tier table."""
    folder = tmp_path / "candidate"
    shutil.copytree(BUNDLED, folder)
    if edit is not None:
        path = folder / "service_tier.yaml"
        doc = yaml.safe_load(path.read_text())
        edit(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return folder


def test_validate_and_test_the_bundled_ruleset() -> None:
    result = runner.invoke(app, ["rules", "validate"])
    assert result.exit_code == 0, result.output
    assert "9 tables" in result.output and "valid" in result.output
    result = runner.invoke(app, ["rules", "test"])
    assert result.exit_code == 0 and "service_tier: 6/6 golden cases pass" in result.output


def test_a_broken_rule_file_is_rejected_naming_table_and_rule(tmp_path: Path) -> None:
    def drop_description(doc: dict) -> None:
        del doc["rules"][3]["description"]

    result = runner.invoke(app, ["rules", "validate", str(candidate_folder(tmp_path, drop_description))])
    assert result.exit_code == 1
    assert "service_tier.yaml (table service_tier)" in result.output
    assert "rule TIER-LARGE-VALUE description: Field required" in result.output


def test_a_gap_is_reported_with_a_witness(tmp_path: Path) -> None:
    def drop_small(doc: dict) -> None:
        doc["rules"] = [r for r in doc["rules"] if r["id"] != "TIER-SMALL"]
        doc["tests"] = []

    result = runner.invoke(app, ["rules", "validate", "--json", str(candidate_folder(tmp_path, drop_small))])
    assert result.exit_code == 1
    findings = json.loads(result.stdout)["findings"]
    gaps = [f for f in findings if f["kind"] == "gap"]
    assert gaps and all(f["table"] == "service_tier" for f in gaps)
    assert gaps[0]["witness"]["total_assets"] < 200_000


def new_key(role: str, name: str, *scope: str) -> str:
    """A key made with `crm keys create`, as an administrator hands it to an officer."""
    result = runner.invoke(app, ["keys", "create", "--role", role, "--name", name, *scope])
    assert result.exit_code == 0, result.output
    return result.output.strip().split("\n")[-1]


def test_submit_approve_activate_with_maker_checker(crm_home: Path, tmp_path: Path) -> None:
    def lower_premier(doc: dict) -> None:
        doc["rules"][0]["when"]["total_assets"] = ">= 3_000_000"
        doc["rules"][2]["when"]["total_assets"] = "[1_000_000..3_000_000)"

    wang, li = new_key("compliance", "Wang Fang"), new_key("compliance", "Li Wei")
    folder = candidate_folder(tmp_path, lower_premier)
    result = runner.invoke(app, ["rules", "submit", str(folder), "--key", wang, "--note", "premier from 3m"])
    assert result.exit_code == 0, result.output
    version = result.output.split()[1]
    refused = runner.invoke(app, ["rules", "approve", version[:12], "--key", wang])
    assert refused.exit_code == 1 and "approval_refused" in refused.output and "maker-checker" in refused.output
    early = runner.invoke(app, ["rules", "activate", version[:12]], env={"CRM_API_KEY": li})
    assert early.exit_code == 1 and "only an approved version" in early.output
    assert runner.invoke(app, ["rules", "approve", version[:12], "--key", li, "--note", "ok"]).exit_code == 0
    assert runner.invoke(app, ["rules", "activate", version[:12]], env={"CRM_API_KEY": li}).exit_code == 0
    history = json.loads(runner.invoke(app, ["rules", "history", "--json"]).stdout)
    assert history["verified"] and history["versions"][0]["active"]
    assert [e["action"] for e in history["events"]] == ["submit", "approve", "activate"]
    assert [e["actor"] for e in history["events"]] == ["Wang Fang", "Li Wei", "Li Wei"]  # the keys' names
    diff = runner.invoke(app, ["rules", "diff", "bundled", "active"])
    assert diff.exit_code == 0 and "TIER-PREMIER-ASSETS" in diff.output
    render = runner.invoke(app, ["rules", "render", "active"])
    assert render.exit_code == 0
    html, dmn = (Path(line.removeprefix("wrote ")) for line in render.output.split("\n")[:2])
    assert "TIER-PREMIER-ASSETS" in html.read_text() and "<decisionTable" in dmn.read_text()
    assert runner.invoke(app, ["rules", "verify"]).exit_code == 0


def test_approval_needs_a_valid_firm_wide_compliance_key(crm_home: Path, tmp_path: Path, small_world: Path) -> None:
    shutil.copytree(small_world / "raw", crm_home / "raw")  # the firm's branches, for a branch-scoped key
    author = new_key("compliance", "Wang Fang")
    result = runner.invoke(app, ["rules", "submit", str(candidate_folder(tmp_path)), "--key", author, "--note", "x"])
    version = result.output.split()[1]
    revoked = new_key("compliance", "Zhao Lei")
    assert runner.invoke(app, ["keys", "revoke", revoked.split("_")[1]]).exit_code == 0
    refusals = {
        "": "unauthenticated",  # no key at all
        "crm_nothing_wrong": "unauthenticated",
        revoked: "unauthenticated",
        new_key("front_office", "desk"): "forbidden",
        new_key("compliance", "branch officer", "--branch", "B001"): "forbidden",  # firm policy: firm-wide keys
    }
    for key, code in refusals.items():
        refused = runner.invoke(app, ["rules", "approve", version[:12], "--key", key], env={"CRM_API_KEY": ""})
        assert refused.exit_code == 1 and f"[{code}]" in refused.output, (key, refused.output)
    assert runner.invoke(app, ["rules", "approve", version[:12], "--by", "Li Wei"]).exit_code != 0  # no free text
    history = json.loads(runner.invoke(app, ["rules", "history", "--json"]).stdout)
    assert [e["action"] for e in history["events"]] == ["submit"]


def test_an_invalid_ruleset_cannot_be_submitted(crm_home: Path, tmp_path: Path) -> None:
    def overlap(doc: dict) -> None:
        doc["hit_policy"] = "UNIQUE"

    folder = candidate_folder(tmp_path, overlap)
    result = runner.invoke(app, ["rules", "submit", str(folder), "--key", new_key("compliance", "Wang Fang"),
                                 "--note", "unique"])
    assert result.exit_code == 1 and "[overlap]" in result.output and "not submitted" in result.output


def test_evaluate_prints_the_decision_and_trace(tmp_path: Path) -> None:
    from rules.vocabulary import load_vocabulary

    inputs = tmp_path / "client.json"
    inputs.write_text(json.dumps({**load_vocabulary().defaults(), "total_assets": 6e6}))
    result = runner.invoke(app, ["rules", "evaluate", str(inputs)])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["tier"] == "premier" and decision["trace"][0]["fired"] == ["TIER-PREMIER-ASSETS"]
