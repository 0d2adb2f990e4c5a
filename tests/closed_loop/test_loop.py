"""The closed loop: the world continues exactly, the engine sees no future, and the policies behave."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from closed_loop.engine import POLICIES, Engine
from closed_loop.loop import LoopRun, run_loop
from closed_loop.world import HISTORY, LoopWorld
from config import Settings
from features.synthetic.world import WorldConfig, generate_world
from rules.engine import build
from rules.model import load_ruleset
from rules.vocabulary import load_vocabulary

TINY = WorldConfig(clients=300, months=4, seed=13, uplift_months=0)


def _table(folders: list[Path], name: str) -> pd.DataFrame:
    parts = [pd.read_parquet(f / f"{name}.parquet") for f in folders if (f / f"{name}.parquet").exists()]
    return pd.concat(parts, ignore_index=True)


def test_a_world_paused_at_a_month_end_continues_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    generate_world(TINY, tmp_path / "whole" / "raw", tmp_path / "whole" / "truth")
    world = LoopWorld(TINY, history_months=2, folder=tmp_path / "loop")
    world.run_history()
    branch = world.fork("none")
    for _ in range(2):
        branch.deliver_next_month(pd.DataFrame(columns=["client_id", "action", "channel", "day"]))
    base, rows = branch.write_raw()
    for name, key in (("trades", "trade_id"), ("contacts", "contact_id"), ("account_snapshots", None),
                      ("cash_transfers", "transfer_id")):
        whole = pd.read_parquet(tmp_path / "whole" / "raw" / f"{name}.parquet")
        continued = _table([base, rows], name)
        order = [key] if key else ["client_id", "snapshot_date"]
        pd.testing.assert_frame_equal(whole.sort_values(order, ignore_index=True),
                                      continued.sort_values(order, ignore_index=True))


def test_the_engine_reads_nothing_after_the_month_end_it_decides_at(tmp_path: Path) -> None:
    world = LoopWorld(TINY, history_months=2, folder=tmp_path)
    world.run_history()
    branch = world.fork("none")
    branch.deliver_next_month(pd.DataFrame(columns=["client_id", "action", "channel", "day"]))
    today = pd.Timestamp(branch.month_end())  # snapshots are dated at the month-end, after its last trading day
    base, rows = branch.write_raw()
    dated = {"trades": "trade_date", "contacts": "contact_date", "cash_transfers": "transfer_date",
             "account_snapshots": "snapshot_date", "daily_prices": "trade_date", "market_index": "trade_date",
             "research_reports": "published_on", "report_reads": "read_on", "complaints": "filed_on",
             "commission_rate_changes": "effective_on", "satisfaction_surveys": "surveyed_on"}
    for name, column in dated.items():
        frame = _table([base, rows] if name != "complaints" else [rows], name)
        assert (pd.to_datetime(frame[column]) <= today).all(), name
    complaints = pd.read_parquet(rows / "complaints.parquet")
    assert (pd.to_datetime(complaints["resolved_on"]).dropna() <= today).all()
    clients = pd.read_parquet(base / "clients.parquet")
    assert (pd.to_datetime(clients["closed_on"]).dropna() <= today).all()
    assert (base / "trades.parquet").resolve().parent == (tmp_path / HISTORY).resolve()


@pytest.fixture(scope="module")
def engine(model_home: Settings) -> Engine:
    vocabulary = load_vocabulary()
    return Engine.load(model_home, build(load_ruleset(), vocabulary), vocabulary)


@pytest.fixture(scope="module")
def loop_run(model_home: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> LoopRun:
    return run_loop(model_home, engine, months=2, capacity=6, policies=POLICIES,
                    folder=tmp_path_factory.mktemp("loop"))


def test_the_json_has_exactly_the_documented_shape(loop_run: LoopRun) -> None:
    result = loop_run.as_json()
    assert list(result) == ["months", "capacity", "policies", "uplift_share_of_oracle", "rules_share_of_oracle"]
    assert (result["months"], result["capacity"]) == (2, 6)
    assert list(result["policies"]) == list(POLICIES)
    for figures in result["policies"].values():
        assert list(figures) == ["clients_lost", "assets_kept_yuan", "actions_delivered", "cost_yuan",
                                 "net_gain_vs_none_yuan"]
    assert result["policies"]["none"]["actions_delivered"] == 0
    assert result["policies"]["none"]["net_gain_vs_none_yuan"] == 0


def test_every_policy_stays_within_each_brokers_capacity_and_one_action_per_client(loop_run: LoopRun) -> None:
    for policy, plan in loop_run.plans.items():
        if policy == "none":
            assert plan.empty
            continue
        assert not plan.empty, policy
        per_broker = plan.groupby(["decided_on", "broker_id"]).size()
        assert per_broker.max() <= 6, policy
        assert not plan.duplicated(["decided_on", "client_id"]).any(), policy
        delivered = loop_run.outcomes[policy].actions_delivered
        assert 0 < delivered <= len(plan), policy


def test_every_policy_respects_the_contact_policy(loop_run: LoopRun, engine: Engine) -> None:
    policy = engine.arbiter.catalogue.contact_policy
    for name, plan in loop_run.plans.items():
        if plan.empty:
            continue
        contacts = _contacts_seen(loop_run, name)
        for row in plan.itertuples():
            decided = pd.Timestamp(row.decided_on)
            own = contacts[contacts["client_id"] == row.client_id]
            age = (decided - own["contact_date"]).dt.days
            recent = own[(age >= 0) & (age < 30) & (own["outcome"] != "no_answer") & (own["channel"] == row.channel)]
            assert len(recent) < policy.max_contacts_per_channel_30d, (name, row)
            days = engine.arbiter.terms[row.action].suppression_days
            declined = own[(own["action"] == row.action) & (own["outcome"] == "declined") & (age >= 0)
                           & (age < days)]
            assert declined.empty, (name, row)


def _contacts_seen(run: LoopRun, policy: str) -> pd.DataFrame:
    folder = Path(run.world["folder"])
    parts = [pq.read_table(folder / HISTORY / "contacts.parquet").to_pandas()]
    rows = folder / policy / "rows" / "contacts.parquet"
    if rows.exists():
        parts.append(pq.read_table(rows).to_pandas())
    frame = pd.concat(parts, ignore_index=True)
    frame["contact_date"] = pd.to_datetime(frame["contact_date"])
    return frame


def test_the_oracle_beats_random_targeting(loop_run: LoopRun) -> None:
    policies = loop_run.as_json()["policies"]
    assert policies["oracle"]["net_gain_vs_none_yuan"] > policies["random"]["net_gain_vs_none_yuan"]
    assert policies["oracle"]["clients_lost"] <= policies["none"]["clients_lost"]


def test_the_loop_is_deterministic_for_a_seed(loop_run: LoopRun, model_home: Settings, engine: Engine,
                                              tmp_path: Path) -> None:
    again = run_loop(model_home, engine, months=2, capacity=6, policies=("random", "uplift"), folder=tmp_path)
    for policy in ("random", "uplift"):
        assert again.outcomes[policy] == loop_run.outcomes[policy]
        pd.testing.assert_frame_equal(again.plans[policy], loop_run.plans[policy])


def test_the_command_refuses_a_home_without_a_generated_world(crm_home: Path) -> None:
    from cli.main import app

    result = CliRunner().invoke(app, ["simulate", "policies", "--months", "1", "--json"])
    assert result.exit_code == 1
    assert "closed_loop_invalid" in result.output


def test_a_month_of_the_loop_lands_on_its_trading_days(tmp_path: Path) -> None:
    world = LoopWorld(TINY, history_months=2, folder=tmp_path)
    world.run_history()
    branch = world.fork("rules")
    client = str(world.ids[np.flatnonzero(world.started)[0]])
    branch.deliver_next_month(pd.DataFrame({"client_id": [client], "action": ["broker_retention_call"],
                                            "channel": ["phone"], "day": [0]}))
    contacts = pd.concat(branch.loop_frames["contacts"])
    mine = contacts[(contacts["client_id"] == client) & (contacts["campaign"] == "plan")]
    assert len(mine) == 1
    assert mine["contact_date"].iloc[0] > pd.Timestamp(world.calendar.month_ends[2])
    assert pd.Timestamp(mine["contact_date"].iloc[0]).date() <= dt.date(2024, 3, 31)


def test_the_html_report_shows_every_policy_side_by_side(loop_run: LoopRun, tmp_path: Path) -> None:
    from closed_loop.report import write_report

    html = write_report(loop_run, tmp_path / "loop.html").read_text()
    assert "data:image/png;base64," in html
    for policy in POLICIES:
        assert f"<td>{policy}</td>" in html


def test_the_oracles_effect_is_the_ground_truths_uplift(tmp_path: Path) -> None:
    from features.synthetic.actions import ACTION_SPECS
    from features.synthetic.ground_truth import read_truth_table

    config = TINY.model_copy(update={"uplift_months": 2})
    generate_world(config, tmp_path / "whole" / "raw", tmp_path / "whole" / "truth")
    truth = read_truth_table(tmp_path / "whole" / "truth", "action_uplift")
    world = LoopWorld(config, history_months=3, folder=tmp_path / "loop")
    world.run_history()
    at = truth[pd.to_datetime(truth["month_end"]) == pd.Timestamp(world.month_end())]
    assert len(at)
    for action, part in at.groupby("action"):
        oracle = world.true_uplift(part["client_id"].to_numpy(), str(action), ACTION_SPECS[str(action)].channel)
        np.testing.assert_allclose(oracle, part["uplift"].to_numpy(), rtol=1e-9, atol=1e-12)
