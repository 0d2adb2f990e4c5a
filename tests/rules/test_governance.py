"""Versions and maker-checker approval: who may do what, and tampering detected."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rules.errors import ActivationRefusedError, ApprovalRefusedError, HistoryTamperedError, VersionNotFoundError
from rules.governance import RulesHistory, Status
from rules.model import RulesetSpec, load_ruleset, ruleset_from_canonical


def candidate(tier_floor: int = 200_000) -> RulesetSpec:
    canonical = load_ruleset().canonical()
    canonical["tables"][0]["rules"][-1]["when"]["total_assets"] = f"< {tier_floor}"
    canonical["tables"][0]["rules"][-3]["when"]["total_assets"] = f"[{tier_floor}..1000000)"
    return ruleset_from_canonical(canonical)


@pytest.fixture
def history(tmp_path: Path) -> RulesHistory:
    store = RulesHistory(f"sqlite:///{tmp_path / 'rules.db'}")
    yield store
    store.close()


def test_submit_approve_activate(history: RulesHistory) -> None:
    spec = load_ruleset()
    history.submit(spec, "Wang Fang", "first policy")
    with pytest.raises(ActivationRefusedError, match="only an approved version"):
        history.activate(spec.version, "ops")
    history.approve(spec.version[:10], "Li Wei", "reviewed tier thresholds")
    history.activate(spec.version[:10], "ops")
    assert history.active_version() == spec.version
    state = history.state(spec.version)
    assert (state.status, state.author, state.decided_by, state.active) == (Status.APPROVED, "Wang Fang", "Li Wei",
                                                                           True)
    assert history.load(spec.version) == spec
    assert [e.action for e in history.events()] == ["submit", "approve", "activate"]
    assert history.verify() == []


def test_the_author_cannot_approve_or_reject(history: RulesHistory) -> None:
    spec = candidate()
    history.submit(spec, "Wang Fang", "lower medium tier")
    for act in (history.approve, history.reject):
        with pytest.raises(ApprovalRefusedError, match="maker-checker"):
            act(spec.version, " wang  fang ", "looks fine")  # same person, however spelled
    assert history.state(spec.version).status == Status.SUBMITTED


def test_a_decision_is_final_and_rejected_versions_cannot_be_activated(history: RulesHistory) -> None:
    spec = candidate(150_000)
    history.submit(spec, "Wang Fang", "lower medium tier")
    history.reject(spec.version, "Li Wei", "too many clients move up")
    with pytest.raises(ApprovalRefusedError, match="already rejected"):
        history.approve(spec.version, "Zhao Min")
    with pytest.raises(ActivationRefusedError, match="rejected"):
        history.activate(spec.version, "ops")
    history.submit(spec, "Wang Fang", "resubmitted with the impact study")  # a rejected version may come back
    assert history.state(spec.version).status == Status.SUBMITTED


def test_unknown_and_ambiguous_versions(history: RulesHistory) -> None:
    with pytest.raises(VersionNotFoundError):
        history.approve("abcdef", "Li Wei")
    with pytest.raises(VersionNotFoundError):
        history.state("ab")  # too short to name a version


def test_the_database_refuses_edits_and_the_chain_catches_what_bypasses_it(history: RulesHistory,
                                                                           tmp_path: Path) -> None:
    spec = load_ruleset()
    history.submit(spec, "Wang Fang", "first policy")
    history.approve(spec.version, "Li Wei", "ok")
    db = sqlite3.connect(tmp_path / "rules.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE ruleset_events SET actor = 'Wang Fang' WHERE action = 'approve'")
    db.execute("DROP TRIGGER ruleset_events_no_update")
    db.execute("UPDATE ruleset_events SET actor = 'Zhao Min' WHERE action = 'approve'")
    db.commit()
    db.close()
    assert any("altered" in p for p in history.verify())
    with pytest.raises(HistoryTamperedError, match="entry 2"):
        history.active_version()


def test_a_changed_stored_version_is_detected(history: RulesHistory, tmp_path: Path) -> None:
    spec = load_ruleset()
    history.submit(spec, "Wang Fang", "first policy")
    db = sqlite3.connect(tmp_path / "rules.db")
    db.execute("DROP TRIGGER ruleset_versions_no_update")
    db.execute("UPDATE ruleset_versions SET content = replace(content, '5_000_000', '9_000_000')")
    db.commit()
    db.close()
    assert any("no longer matches its content" in p for p in history.verify())
    with pytest.raises(HistoryTamperedError):
        history.load(spec.version)


def test_a_removed_entry_is_detected(history: RulesHistory, tmp_path: Path) -> None:
    spec = load_ruleset()
    history.submit(spec, "Wang Fang", "first policy")
    history.approve(spec.version, "Li Wei", "ok")
    history.activate(spec.version, "ops")
    db = sqlite3.connect(tmp_path / "rules.db")
    db.execute("DROP TRIGGER ruleset_events_no_delete")
    db.execute("DELETE FROM ruleset_events WHERE action = 'approve'")
    db.commit()
    db.close()
    assert history.verify()
