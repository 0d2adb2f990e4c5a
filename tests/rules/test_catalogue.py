"""The action catalogue and contact policy: part of the ruleset version, validated against the rules' actions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from features.raw.schema import CONTACT_CHANNELS
from rules.analysis import validate
from rules.catalogue import CHANNELS, ActionSpec
from rules.diff import CATALOGUE_CHANGED, diff_rulesets
from rules.findings import Kind
from rules.model import content_hash, load_ruleset, ruleset_from_canonical, write_ruleset
from tests.rules._factories import bundled, edited


def test_the_catalogue_channels_are_the_raw_contact_channels() -> None:
    assert CHANNELS == CONTACT_CHANNELS


def test_the_bundled_catalogue_describes_every_action_the_rules_can_recommend() -> None:
    spec = bundled()
    assert spec.catalogue is not None
    recommended = {v for ref in spec.decision.actions
                   for o in spec.table(ref.split(".")[0]).outputs if o.name == ref.split(".")[1] for v in o.values}
    assert recommended <= set(spec.catalogue.actions)
    assert validate(spec) == []


def test_validation_refuses_an_action_the_catalogue_lacks() -> None:
    spec = edited(lambda doc: doc["catalogue"]["actions"].pop("branch_manager_call"))
    findings = validate(spec)
    assert [(f.kind, f.table, f.rules) for f in findings] == [
        (Kind.CATALOGUE, "retention_actions", ("RET-SERVICE-CALL",))]
    assert "branch_manager_call" in findings[0].message


def test_the_catalogue_is_part_of_the_version_and_of_the_diff() -> None:
    def cheaper(doc: dict) -> None:
        doc["catalogue"]["actions"]["broker_retention_call"]["cost_yuan"] = 10.0
        doc["catalogue"]["contact_policy"]["max_contacts_per_channel_30d"] = 1

    changed = edited(cheaper)
    assert changed.version != bundled().version
    found = [c for c in diff_rulesets(bundled(), changed).changes if c.kind == CATALOGUE_CHANGED]
    assert [c.fields for c in found] == [("max_contacts_per_channel_30d",), ("cost_yuan",)]
    assert "broker_retention_call: cost_yuan 20.0 → 10.0" in found[1].describe()


def test_the_value_at_stake_is_part_of_the_version_and_of_the_diff() -> None:
    def commission(doc: dict) -> None:
        doc["catalogue"]["value_at_stake"] = "forward_commission"

    changed = edited(commission)
    assert changed.version != bundled().version
    found = [c for c in diff_rulesets(bundled(), changed).changes if c.kind == CATALOGUE_CHANGED]
    assert [c.fields for c in found] == [("value_at_stake",)]
    assert 'value at stake: "client_assets" → "forward_commission"' in found[0].describe()


def test_a_catalogue_valuing_clients_at_their_commission_keeps_the_version_it_had_before_the_choice() -> None:
    doc = bundled().canonical()
    doc["catalogue"].pop("value_at_stake")
    before = ruleset_from_canonical(doc)  # a catalogue stored before the choice existed
    assert before.catalogue is not None and before.catalogue.value_at_stake == "forward_commission"
    assert "value_at_stake" not in before.canonical()["catalogue"]
    assert before.version == content_hash(doc)


def test_a_ruleset_without_a_catalogue_keeps_the_version_it_had() -> None:
    doc = bundled().canonical()
    doc.pop("catalogue")
    spec = ruleset_from_canonical(doc)
    assert "catalogue" not in spec.canonical() and spec.version == ruleset_from_canonical(spec.canonical()).version


def test_written_and_read_back_the_catalogue_is_unchanged(tmp_path: Path) -> None:
    write_ruleset(bundled(), tmp_path / "copy")
    assert load_ruleset(tmp_path / "copy").version == bundled().version


@pytest.mark.parametrize(("change", "message"), [
    ({"channel": "pigeon"}, "channel 'pigeon'"),
    ({"effect": {"poor_trading": 0.1, "competitor": 0.1}}, "lacks a prior"),
    ({"effect": {"poor_trading": 1.5, "competitor": 0.1, "service": 0.1}}, "between 0 and 1"),
    ({"cost_yuan": -1}, "greater than or equal to 0"),
])
def test_a_malformed_action_is_refused_saying_what_is_wrong(change: dict, message: str) -> None:
    good = bundled().catalogue.actions["broker_retention_call"].model_dump(mode="json")
    with pytest.raises(ValidationError, match=message):
        ActionSpec.model_validate({**good, **change})
