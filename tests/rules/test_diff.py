"""Rule-level differences between two ruleset versions, as a reviewer approving the new one reads them."""

from __future__ import annotations

import json
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.diff import (
    CASES_CHANGED,
    DECISION_CHANGED,
    RULE_ADDED,
    RULE_CHANGED,
    RULE_MOVED,
    RULE_REMOVED,
    TABLE_ADDED,
    TABLE_CHANGED,
    TABLE_MOVED,
    TABLE_REMOVED,
    diff_rulesets,
)
from tests.rules._factories import bundled, edited, rule_doc, table_doc


def set_entry(table_id: str, rule_id: str, input_name: str, entry: object) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        rule_doc(doc, table_id, rule_id)["when"][input_name] = entry

    return edit


def combined(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        for one in edits:
            one(doc)

    return edit


def test_a_ruleset_has_no_difference_with_itself() -> None:
    spec = bundled()
    diff = diff_rulesets(spec, spec)
    assert diff.empty
    assert diff.describe() == []
    assert diff.old_version == diff.new_version == spec.version
    assert diff.as_dict() == {"old_version": spec.version, "new_version": spec.version, "empty": True, "changes": []}


def test_rewriting_an_entry_in_another_form_is_no_change() -> None:
    old = bundled()
    new = edited(combined(
        set_entry("service_tier", "TIER-PREMIER-ASSETS", "total_assets", ">= 5000000"),
        set_entry("service_tier", "TIER-LARGE-ASSETS", "total_assets", "[1000000 .. 5000000)"),
        set_entry("service_tier", "TIER-LARGE-INSTITUTION", "client_type", '"institution"'),
        set_entry("service_package", "PKG-LARGE", "churn_band", 'not( "high" )'),
        set_entry("product_offers", "OFFER-STAR-MARKET", "stated_risk_level", "= 5"),
        set_entry("service_tier", "TIER-SMALL", "value_percentile", "-"),  # written out "any" is omitted "any"
    ))
    assert new.version != old.version  # the text changed...
    assert diff_rulesets(old, new).empty  # ...but no rule decides differently


def grouped(n: int) -> str:
    """``n`` written with ``_`` between groups of three digits, as rule authors write large amounts."""
    return f"{n:,}".replace(",", "_")


@settings(max_examples=50, deadline=None)
@given(threshold=st.integers(min_value=0, max_value=10**12), operator=st.sampled_from(["<", "<=", ">", ">="]))
def test_digit_grouping_never_makes_a_change(threshold: int, operator: str) -> None:
    plain = edited(set_entry("service_tier", "TIER-SMALL", "total_assets", f"{operator} {threshold}"))
    grouped_form = edited(set_entry("service_tier", "TIER-SMALL", "total_assets", f"{operator}{grouped(threshold)}"))
    assert diff_rulesets(plain, grouped_form).empty


def test_changing_an_entry_is_one_rule_change() -> None:
    old = bundled()
    new = edited(set_entry("service_tier", "TIER-SMALL", "total_assets", "< 150_000"))
    diff = diff_rulesets(old, new)
    assert len(diff.changes) == 1
    change = diff.changes[0]
    assert (change.kind, change.table, change.rule, change.fields) == (
        RULE_CHANGED, "service_tier", "TIER-SMALL", ("when.total_assets",))
    assert (change.before, change.after) == ({"when.total_assets": "< 200000"}, {"when.total_assets": "< 150000"})
    assert diff.describe() == ['table service_tier, rule TIER-SMALL changed: total_assets "< 200000" → "< 150000"']


def test_a_rule_change_names_every_changed_field() -> None:
    def edit(doc: dict) -> None:
        rule = rule_doc(doc, "service_package", "PKG-MEDIUM")
        rule["when"]["churn_band"] = "low"
        rule["then"]["package"] = "self_service"
        rule["description"] = "Calm medium clients serve themselves."

    diff = diff_rulesets(bundled(), edited(edit))
    assert [c.kind for c in diff.changes] == [RULE_CHANGED]
    change = diff.changes[0]
    assert set(change.fields) == {"when.churn_band", "then.package", "description"}
    assert change.before["then.package"] == "group_advisory"
    assert change.after["then.package"] == "self_service"
    line = diff.describe()[0]
    assert line.startswith("table service_package, rule PKG-MEDIUM changed: ")
    assert "churn_band \"-\" → '\"low\"'" in line
    assert 'then package "group_advisory" → "self_service"' in line


def test_adding_a_rule() -> None:
    def edit(doc: dict) -> None:
        table_doc(doc, "broker_alerts")["rules"].append(
            {"id": "BRK-DORMANT", "description": "No trade for a year.", "when": {"tier": "small"},
             "then": {"alert": "valuable_client_not_contacted_90d"}})

    diff = diff_rulesets(bundled(), edited(edit))
    assert len(diff.changes) == 1
    change = diff.changes[0]
    assert (change.kind, change.table, change.rule) == (RULE_ADDED, "broker_alerts", "BRK-DORMANT")
    assert change.after["then"] == {"alert": "valuable_client_not_contacted_90d"}
    assert diff.describe() == ["table broker_alerts, rule BRK-DORMANT added as rule 5: No trade for a year."]


def test_inserting_a_rule_in_the_middle_moves_nothing() -> None:
    def edit(doc: dict) -> None:
        table_doc(doc, "service_tier")["rules"].insert(
            0, {"id": "TIER-NEW", "description": "New.", "when": {}, "then": {"tier": "small"}})

    diff = diff_rulesets(bundled(), edited(edit))
    assert [(c.kind, c.rule) for c in diff.changes] == [(RULE_ADDED, "TIER-NEW")]


def test_removing_a_rule() -> None:
    def edit(doc: dict) -> None:
        table = table_doc(doc, "service_package")
        table["rules"] = [r for r in table["rules"] if r["id"] != "PKG-LARGE-AT-RISK"]

    diff = diff_rulesets(bundled(), edited(edit))
    assert len(diff.changes) == 1
    change = diff.changes[0]
    assert (change.kind, change.table, change.rule) == (RULE_REMOVED, "service_package", "PKG-LARGE-AT-RISK")
    assert change.before["id"] == "PKG-LARGE-AT-RISK"
    assert "removed (was rule 2)" in diff.describe()[0]


def test_changing_the_hit_policy() -> None:
    new = edited(lambda d: table_doc(d, "service_tier").update(hit_policy="FIRST"))
    diff = diff_rulesets(bundled(), new)
    assert len(diff.changes) == 1
    change = diff.changes[0]
    assert (change.kind, change.table, change.rule, change.fields) == (
        TABLE_CHANGED, "service_tier", None, ("hit_policy",))
    assert (change.before, change.after) == ("PRIORITY", "FIRST")
    assert diff.describe() == ['table service_tier changed hit_policy: "PRIORITY" → "FIRST"']


def test_swapping_two_rules_is_one_move() -> None:
    def edit(doc: dict) -> None:
        rules = table_doc(doc, "broker_alerts")["rules"]
        rules[0], rules[1] = rules[1], rules[0]

    diff = diff_rulesets(bundled(), edited(edit))
    assert len(diff.changes) == 1
    change = diff.changes[0]
    assert change.kind == RULE_MOVED
    assert change.table == "broker_alerts"
    assert change.rule in ("BRK-NO-CONTACT-90D", "BRK-VALUABLE-AT-RISK")
    assert "RULE ORDER: results are listed in rule order" in change.detail


def test_moving_the_last_rule_first_reports_that_rule() -> None:
    def edit(doc: dict) -> None:
        table = table_doc(doc, "service_tier")
        table["hit_policy"] = "FIRST"
        table["rules"].insert(0, table["rules"].pop())

    diff = diff_rulesets(bundled(), edited(edit))
    moves = diff.of_kind(RULE_MOVED)
    assert [(c.rule, c.before, c.after) for c in moves] == [("TIER-SMALL", 8, 1)]
    assert "the first matching rule wins" in moves[0].detail
    assert len(diff.changes) == 2  # and the hit policy


def test_changing_output_values_and_default() -> None:
    def edit(doc: dict) -> None:
        table = table_doc(doc, "service_package")
        table["outputs"][0]["values"] = ["group_advisory", "one_to_one_advisor", "self_service"]
        table["default"] = {"package": "self_service"}

    diff = diff_rulesets(bundled(), edited(edit))
    assert [(c.kind, c.fields) for c in diff.changes] == [(TABLE_CHANGED, ("output package values",)),
                                                          (TABLE_CHANGED, ("default",))]
    assert diff.changes[1].after == {"package": "self_service"}


def test_adding_and_removing_tables() -> None:
    old = bundled()

    def edit(doc: dict) -> None:
        broker = table_doc(doc, "broker_alerts")
        doc["tables"] = [t for t in doc["tables"] if t["id"] != "broker_alerts"]
        copy = {**broker, "id": "branch_alerts", "name": "Branch alerts"}
        doc["tables"].append(copy)
        doc["decision"]["alerts"] = ["suitability_alerts.alert", "branch_alerts.alert"]

    diff = diff_rulesets(old, edited(edit))
    assert [(c.kind, c.table) for c in diff.changes] == [
        (DECISION_CHANGED, None), (TABLE_REMOVED, "broker_alerts"), (TABLE_ADDED, "branch_alerts")]
    assert diff.changes[0].before == ("suitability_alerts.alert", "broker_alerts.alert", "event_alerts.alert")
    assert diff.describe()[0] == ('decision changed alerts: ["suitability_alerts.alert", "broker_alerts.alert", '
                                  '"event_alerts.alert"] → ["suitability_alerts.alert", "branch_alerts.alert"]')


def test_reordering_tables() -> None:
    def edit(doc: dict) -> None:
        doc["tables"].append(doc["tables"].pop(2))  # retention_actions evaluated last

    diff = diff_rulesets(bundled(), edited(edit))
    assert [(c.kind, c.table, c.before, c.after) for c in diff.changes] == [
        (TABLE_MOVED, "retention_actions", 3, 9)]


def test_golden_cases_added_and_removed_are_counted() -> None:
    def edit(doc: dict) -> None:
        tests = table_doc(doc, "service_tier")["tests"]
        tests.pop()
        tests.append({"description": "A 2-million-yuan client is large.",
                      "given": {"total_assets": 2_000_000, "value_percentile": 10, "client_type": "individual"},
                      "expect": {"tier": "large"}})
        tests.append({"description": "A 3-million-yuan client is large.",
                      "given": {"total_assets": 3_000_000, "value_percentile": 10, "client_type": "individual"},
                      "expect": {"tier": "large"}})

    diff = diff_rulesets(bundled(), edited(edit))
    assert len(diff.changes) == 1
    change = diff.changes[0]
    assert (change.kind, change.table, change.before, change.after) == (CASES_CHANGED, "service_tier", 6, 7)
    assert diff.describe() == ["table service_tier golden cases changed: 2 added, 1 removed (6 → 7)"]


def test_as_dict_is_json_ready() -> None:
    new = edited(combined(set_entry("service_tier", "TIER-SMALL", "total_assets", "< 150_000"),
                          lambda d: table_doc(d, "service_package")["rules"].pop(),
                          lambda d: d["decision"].update(actions=["marketing.action"])))
    diff = diff_rulesets(bundled(), new)
    doc = json.loads(json.dumps(diff.as_dict(), ensure_ascii=False))
    assert doc["old_version"] == bundled().version
    assert doc["new_version"] == new.version
    assert doc["empty"] is False
    assert [c["kind"] for c in doc["changes"]] == [DECISION_CHANGED, RULE_CHANGED, RULE_REMOVED]
    assert doc["changes"][0]["after"] == ["marketing.action"]
    assert doc["changes"][1]["fields"] == ["when.total_assets"]
