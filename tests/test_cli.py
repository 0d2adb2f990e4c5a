"""The `crm` command as a user meets it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_help_lists_the_data_commands() -> None:
    result = runner.invoke(app, ["data", "--help"])
    assert result.exit_code == 0
    for command in ("generate", "import", "profile", "schema"):
        assert command in result.output


def test_generate_then_profile_json_and_html(crm_home: Path) -> None:
    result = runner.invoke(app, ["data", "generate", "--clients", "200", "--months", "3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert (crm_home / "raw" / "trades.parquet").exists()
    assert (crm_home / "ground_truth" / "churn_probabilities.parquet").exists()
    result = runner.invoke(app, ["data", "profile", "--json"])
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["rows"]["clients"] == 200
    assert "top5pct_asset_share" in profile["realism"]
    assert (crm_home / "reports" / "data_profile.html").read_text().count("<img") >= 3


def test_generate_with_an_action_plan_and_a_bad_plan(crm_home: Path, tmp_path: Path) -> None:
    plan = pd.DataFrame({"client_id": ["C0000003", "C0000004"],
                         "action": ["branch_manager_call", "free_lunch"],
                         "date": ["2024-02-01", "2024-02-02"]})
    plan.to_parquet(tmp_path / "bad.parquet")
    args = ["data", "generate", "--clients", "200", "--months", "3", "--seed", "1"]
    result = runner.invoke(app, [*args, "--actions", str(tmp_path / "bad.parquet")])
    assert result.exit_code == 2
    assert "action_plan_invalid" in result.output and "free_lunch" in result.output
    assert not (crm_home / "raw").exists()
    assert runner.invoke(app, args).exit_code == 0
    clients = pd.read_parquet(crm_home / "raw" / "clients.parquet")
    opened_before = pd.to_datetime(clients["opened_on"]) < pd.Timestamp("2024-01-01")
    open_all_along = clients[opened_before & clients["closed_on"].isna()]["client_id"]
    plan = plan.assign(client_id=open_all_along.iloc[:2].to_numpy(),
                       action=["branch_manager_call", "investor_education"])
    plan.to_parquet(tmp_path / "plan.parquet")
    result = runner.invoke(app, [*args, "--actions", str(tmp_path / "plan.parquet")])
    assert result.exit_code == 0, result.output
    contacts = pd.read_parquet(crm_home / "raw" / "contacts.parquet")
    assert sorted(contacts.loc[contacts["campaign"] == "plan", "client_id"]) == sorted(plan["client_id"])
    result = runner.invoke(app, ["data", "profile", "--json"])
    profile = json.loads(result.stdout)
    assert set(profile["cause_mix"]) == {"competitor", "service", "poor_trading"}
    assert isinstance(profile["campaign_effects"], list)


def test_import_rejection_exits_non_zero_and_names_the_fault(crm_home: Path, small_world: Path,
                                                            tmp_path: Path) -> None:
    source = tmp_path / "export"
    shutil.copytree(small_world / "raw", source)
    clients = pd.read_parquet(source / "clients.parquet")
    clients.loc[2, "risk_level"] = "C9"
    clients.to_parquet(source / "clients.parquet", index=False)
    result = runner.invoke(app, ["data", "import", str(source)])
    assert result.exit_code == 1
    assert "clients.risk_level: values outside the allowed set" in result.output
    assert "(rows 3)" in result.output
    assert not (crm_home / "raw").exists()


def test_profile_without_data_says_what_to_do(crm_home: Path) -> None:
    result = runner.invoke(app, ["data", "profile"])
    assert result.exit_code == 1
    assert "crm data generate" in result.output


def test_features_build_apply_materialize_catalog_and_reports(crm_home: Path, small_world: Path) -> None:
    shutil.copytree(small_world / "raw", crm_home / "raw")
    for command in (["features", "build"], ["features", "apply"], ["features", "materialize"],
                    ["features", "apply"], ["features", "materialize"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, (command, result.output)
    assert (crm_home / "features" / "online.db").exists()

    result = runner.invoke(app, ["features", "catalog", "--json"])
    catalog = json.loads(result.stdout)
    assert len(catalog) >= 60
    assert {"name", "family", "entity", "formula", "window", "unit", "zh"} <= set(catalog[0])
    assert {row["family"] for row in catalog} == {
        "broker_management", "client_category", "client_value", "account_info", "client_feedback", "client_flow",
        "branch", "risk_preference"}
    result = runner.invoke(app, ["features", "catalog"])
    assert result.exit_code == 0
    assert "market_timing_score_365d" in (crm_home / "reports" / "catalog.md").read_text()
    assert "择时能力" in (crm_home / "reports" / "catalog.html").read_text()

    result = runner.invoke(app, ["report", "branches", "--json"])
    branches = json.loads(result.stdout)
    assert [b["branch_rank_by_assets"] for b in branches] == sorted(b["branch_rank_by_assets"] for b in branches)
    result = runner.invoke(app, ["report", "brokers"])
    assert result.exit_code == 0 and "Broker scorecards" in result.output
    assert (crm_home / "reports" / "brokers.html").read_text().count("<img") == 2


def test_features_apply_without_build_fails_clearly(crm_home: Path) -> None:
    result = runner.invoke(app, ["features", "apply"])
    assert result.exit_code == 1
    assert "crm features build" in result.output


def test_models_commands_without_models_say_what_to_do(crm_home: Path) -> None:
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "no versions: run `crm train`" in result.output
    result = runner.invoke(app, ["models", "promote", "churn"])
    assert result.exit_code == 1 and "promotion_refused" in result.output
