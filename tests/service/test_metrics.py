"""Serving metrics: what /metrics exports after real decisions, and the dashboard and alert rules in deploy/ that
must name only exported metrics (checked by promtool where the machine has it, by their schema always)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.keys import Role
from tests.service.conftest import Api
from training.drift import ModelDrift, write_monitoring_file

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "crm-dashboard.json"
# Series Prometheus makes itself, not the API.
PROMETHEUS_OWN = {"up"}
METRIC = re.compile(r"\b(crm_[a-z0-9_]+|up)\b")


def _exported(text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ())
        names.update(family.name + suffix for suffix in suffixes)  # a labelled family before its first sample
    return names


def _rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def _dashboard_expressions() -> list[str]:
    return [t["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for t in panel["targets"]]


@pytest.fixture(scope="module")
def scraped(api: Api) -> str:
    """/metrics after a few real decisions and one drift report in CRM_HOME."""
    for client_id in api.client_ids[:5]:
        response = api.client.post("/v1/decisions", json={"client_id": client_id},
                                   headers=api.headers(Role.FRONT_OFFICE))
        assert response.status_code == 200, response.text
    path = api.settings.drift_report_path
    existed = path.exists()
    if not existed:
        write_monitoring_file(api.settings, [ModelDrift(
            model="churn", version=1, run_id="r", reference="test window", current="as of 2025-06-30",
            reference_rows=100, current_rows=10, score_psi=0.31, score_band="act",
            indicators={"commission_90d": 0.02})])
    try:
        return api.client.get("/metrics").text
    finally:
        if not existed:
            path.unlink()


def test_scores_tiers_actions_audit_and_drift_are_exported(scraped: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    decided = sum(s.value for s in families["crm_decisions"].samples if s.name == "crm_decisions_total")
    assert decided >= 5
    assert sum(s.value for s in families["crm_churn_probability"].samples
               if s.name == "crm_churn_probability_count") >= 1
    assert sum(s.value for s in families["crm_actions"].samples) >= 1, "the bundled rules propose actions"
    assert len(families["crm_audit_backlog"].samples) == 1
    assert next(s.value for s in families["crm_journal_bytes"].samples) > 0, "the current segment holds records"
    band = {s.labels["model"]: s.value for s in families["crm_model_drift_band"].samples}
    assert band and set(band.values()) <= {0, 1, 2}
    # Every decision counted once by its client's lifecycle stage and once by its experiment arm.
    for family, label, known in (("crm_decisions_by_stage", "stage", {"new", "active", "at_risk", "dormant", "lost"}),
                                 ("crm_decisions_by_arm", "arm", {"champion", "holdout", "challenger"})):
        counted = {s.labels[label]: s.value for s in families[family].samples if s.name == f"{family}_total"}
        assert set(counted) <= known and sum(counted.values()) == decided, (family, counted)
    offered = [s for s in families["crm_next_best_actions"].samples if s.name == "crm_next_best_actions_total"]
    assert all(s.labels["arm"] in {"champion", "holdout", "challenger"} and s.labels["action"] for s in offered)


def test_alert_rules_and_dashboard_name_only_exported_metrics(scraped: str) -> None:
    exported = _exported(scraped) | PROMETHEUS_OWN
    rules = _rule_expressions()
    assert {"CrmApiDown", "CrmDecisionLatencyP99AboveObjective", "CrmDegradedShareAbove1Percent",
            "CrmAuditBacklogGrowing", "CrmModelDriftAct", "CrmHoldoutEmpty"} <= set(rules)
    named = {m for expr in [*rules.values(), *_dashboard_expressions()] for m in METRIC.findall(expr)}
    assert named - exported == set(), f"named but not exported: {sorted(named - exported)}"
    assert {"crm_degraded_decisions_total", "crm_audit_backlog", "crm_model_drift_band",
            "crm_request_latency_seconds_bucket", "crm_decisions_by_stage_total", "crm_decisions_by_arm_total",
            "crm_next_best_actions_total"} <= named


def test_alert_rules_have_the_shape_prometheus_loads() -> None:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"] and rule["expr"].strip() and "summary" in rule["annotations"]
            assert re.fullmatch(r"\d+[smh]", str(rule.get("for", "0m"))), rule["for"]
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: `make promtool` installs Debian's prometheus package")
        pytest.skip("promtool is not installed (`make promtool`); the schema check above still ran")
    return found


def test_promtool_loads_the_rules_and_their_unit_tests_pass() -> None:
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_models_page_shows_the_drift_logged_on_the_champions_run(api: Api) -> None:
    from model_registry.registry import CHAMPION
    from training.drift import log_to_run

    registry = api.client.app.state.runtime.registry
    champion = registry.version("churn", registry.alias_version("churn", CHAMPION))
    log_to_run(registry, ModelDrift(
        model="churn", version=champion.version, run_id=champion.run_id, reference="test window",
        current="as of 2099-12-31", reference_rows=100, current_rows=10, score_psi=0.3, score_band="act",
        indicators={"commission_90d": 0.5, "total_assets": 0.01}))
    from service.ui.data import UiData

    cards = UiData(api.client.app.state.runtime).models()  # what the models page renders
    card = next(c for c in cards if c.name == "churn" and c.role == "champion")
    assert card.drift["psi_score"] == pytest.approx(0.3) and card.drift["indicators_act"] == 1
    assert "drift_psi.png" in card.plots
