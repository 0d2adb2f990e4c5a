"""Retention actions change the world exactly for the clients they touch, in the direction they are meant to."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.indicators.context import duckdb_context
from features.profile import CAUSE_RANGES, build_profile
from features.raw.importer import load_directory
from features.raw.store import read_table
from features.synthetic.actions import ACTIONS, EFFECTS, ActionPlanError
from features.synthetic.calendar import Calendar
from features.synthetic.ground_truth import read_truth_table
from features.synthetic.market import build_market
from features.synthetic.population import build_population
from features.synthetic.simulate import ACTIVE, HAZARD_SERVICE, MARKET_RATE, Simulation
from features.synthetic.streams import ClientStreams
from features.synthetic.world import WorldConfig, generate_world

CONFIG = WorldConfig(clients=400, months=5, seed=17)
TOUCHED = "C0000007"
PLAN = pd.DataFrame({
    "client_id": [TOUCHED] * 3,
    "action": ["review_commission_rate", "broker_retention_call", "investment_advisory_session"],
    "date": pd.to_datetime(["2024-02-05", "2024-02-05", "2024-03-04"]),
    "channel": [None, "visit", None],
    "broker_id": [None, "K00001", None],
})


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("plan_worlds")
    generate_world(CONFIG, home / "without" / "raw", home / "without" / "truth")
    generate_world(CONFIG, home / "with" / "raw", home / "with" / "truth", actions=PLAN)
    return home / "without", home / "with"


def _others(frame: pd.DataFrame) -> pd.DataFrame:
    rest = frame[frame["client_id"] != TOUCHED]
    return rest.sort_values(list(rest.columns)).reset_index(drop=True)


def test_a_plan_changes_nothing_for_clients_it_does_not_touch(worlds: tuple[Path, Path]) -> None:
    without, with_plan = worlds
    tables = sorted(p.name for p in (without / "raw").glob("*.parquet"))
    assert tables == sorted(p.name for p in (with_plan / "raw").glob("*.parquet"))
    changed_for_touched = []
    for name in tables:
        a, b = pd.read_parquet(without / "raw" / name), pd.read_parquet(with_plan / "raw" / name)
        if "client_id" not in a.columns:
            assert a.equals(b), f"{name} changed with a plan that touches one client"
            continue
        pd.testing.assert_frame_equal(_others(a), _others(b), check_exact=True, obj=name)
        mine_a, mine_b = a[a["client_id"] == TOUCHED], b[b["client_id"] == TOUCHED]
        if not mine_a.reset_index(drop=True).equals(mine_b.reset_index(drop=True)):
            changed_for_touched.append(name)
    assert {"contacts.parquet", "commission_rate_changes.parquet"} <= set(changed_for_touched)


def test_planned_actions_land_in_the_raw_tables_and_pass_the_contract(worlds: tuple[Path, Path]) -> None:
    _, with_plan = worlds
    _, _, findings = load_directory(with_plan / "raw")
    assert findings == []
    contacts = read_table(with_plan / "raw", "contacts")
    planned = contacts[contacts["campaign"] == "plan"].sort_values("contact_date")
    assert planned["action"].tolist() == PLAN["action"].tolist()
    assert planned["channel"].tolist() == ["phone", "visit", "visit"]
    assert planned["broker_id"].iloc[1] == "K00001"
    assert set(planned["outcome"]) <= {"reached", "no_answer", "declined"}
    changes = read_table(with_plan / "raw", "commission_rate_changes")
    mine = changes[changes["client_id"] == TOUCHED].sort_values("effective_on")
    review = mine[pd.to_datetime(mine["effective_on"]) == pd.Timestamp("2024-02-05")]
    assert len(review) == 1
    assert review["new_rate"].iloc[0] == pytest.approx(
        max(review["old_rate"].iloc[0] * (1 - EFFECTS.commission_cut), EFFECTS.commission_floor))
    clients = read_table(with_plan / "raw", "clients").set_index("client_id")
    assert clients.loc[TOUCHED, "commission_rate"] == pytest.approx(mine["new_rate"].iloc[-1])
    effects = read_truth_table(with_plan / "truth", "action_effects")
    assert (effects["campaign"] == "plan").sum() == 3


def test_trades_pay_the_rate_in_force_and_indicators_see_it_point_in_time(worlds: tuple[Path, Path]) -> None:
    _, with_plan = worlds
    raw = with_plan / "raw"
    change = read_table(raw, "commission_rate_changes")
    change = change[change["client_id"] == TOUCHED].iloc[0]
    trades = read_table(raw, "trades")
    mine = trades[trades["client_id"] == TOUCHED]
    after = mine[pd.to_datetime(mine["trade_date"]) >= pd.Timestamp(change["effective_on"])]
    before = mine[pd.to_datetime(mine["trade_date"]) < pd.Timestamp(change["effective_on"])]
    for rows, rate in ((before, change["old_rate"]), (after, change["new_rate"])):
        expected = np.round(np.maximum(5.0, rows["amount"] * rate), 2)
        assert np.allclose(rows["commission"], expected)
    con, ctx = duckdb_context(raw, [dt.date(2024, 1, 31), dt.date(2024, 3, 31)])
    try:
        population = ctx.population().execute()
    finally:
        con.disconnect()
    mine = population[population["client_id"] == TOUCHED]
    rates = dict(zip(pd.to_datetime(mine["as_of"]), mine["commission_rate"], strict=True))
    assert rates[pd.Timestamp("2024-01-31")] == pytest.approx(change["old_rate"])
    assert rates[pd.Timestamp("2024-03-31")] == pytest.approx(change["new_rate"])


@pytest.mark.parametrize(("frame", "message"), [
    (PLAN.assign(client_id="C9999999"), "unknown client"),
    (PLAN.assign(action="free_lunch"), "unknown action"),
    (PLAN.assign(channel="pigeon"), "unknown channel"),
    (PLAN.assign(broker_id="K99999"), "unknown broker"),
    (PLAN.assign(date=pd.Timestamp("2031-01-01")), "outside the world's window"),
    (PLAN.drop(columns="date"), "lacks column"),
])
def test_a_bad_plan_is_refused_with_what_is_wrong(tmp_path: Path, frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ActionPlanError, match=message):
        generate_world(WorldConfig(clients=50, months=4, seed=1), tmp_path / "raw", tmp_path / "truth", actions=frame)
    assert not (tmp_path / "raw").exists()


def test_an_import_without_the_new_table_and_columns_still_passes(small_world: Path, tmp_path: Path) -> None:
    source = tmp_path / "export"
    source.mkdir()
    for path in (small_world / "raw").glob("*.parquet"):
        if path.stem == "commission_rate_changes":
            continue
        frame = pd.read_parquet(path)
        if path.stem == "contacts":
            frame = frame.drop(columns=["campaign", "action"])
        frame.to_parquet(source / path.name)
    frames, _, findings = load_directory(source)
    assert findings == []
    assert frames["commission_rate_changes"].empty
    assert frames["contacts"]["campaign"].isna().all()


# ------------------------------------------------------- effects on the hazard
@pytest.fixture(scope="module")
def simulation() -> Simulation:
    """A simulated world stopped at its end, to ask what each action would do to its clients' hazards."""
    calendar = Calendar(dt.date(2024, 1, 1), 8)
    seeds = np.random.SeedSequence(23).spawn(3)
    market = build_market(calendar, 200, np.random.default_rng(seeds[0]))
    population = build_population(calendar, 1_500, 6, np.random.default_rng(seeds[1]))
    sim = Simulation(calendar, market, population, np.random.default_rng(seeds[2]), emit=lambda name, arrays: None,
                     streams=ClientStreams(23))
    sim.run()
    return sim


def _what_if(sim: Simulation, action: str, who: np.ndarray, *, reached: bool = True,
             surfaced: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Cause hazards of ``who`` now and after the action (month and day: the world's last)."""
    month, t = len(sim.cal.month_ends) - 1, len(sim.cal) - 1
    a = ACTIONS.index(action)
    ones = np.ones(who.size, dtype=bool)
    state = sim._effect(a, who, t, ones & reached, ones, ones & surfaced)
    # Judge each action without the contact it brings (over-contact is tested on its own below).
    state["contact_days"] = sim.contact_days[who]
    return sim._parts(who, month, t), sim._parts(who, month, t, **state)


POOR, COMPETITOR, SERVICE = 0, 1, 2


def _active(sim: Simulation) -> np.ndarray:
    return np.flatnonzero(sim.status == ACTIVE)


def test_a_commission_review_lowers_competitor_pressure_and_never_goes_below_the_floor(simulation) -> None:
    sim = simulation
    who = _active(sim)
    before, after = _what_if(sim, "review_commission_rate", who)
    lured = (sim.rate[who] > MARKET_RATE) & (sim.fee_sensitivity[who] > 0.3)
    assert lured.sum() > 20
    assert (after[lured, COMPETITOR] < before[lured, COMPETITOR]).all()
    assert (after[:, COMPETITOR] <= before[:, COMPETITOR] + 1e-15).all()
    state = sim._effect(ACTIONS.index("review_commission_rate"), who, len(sim.cal) - 1,
                        np.ones(who.size, bool), np.ones(who.size, bool), np.ones(who.size, bool))
    assert (state["rate"] >= np.minimum(EFFECTS.commission_floor, sim.rate[who])).all()
    assert (state["rate"] <= sim.rate[who]).all()


@pytest.mark.parametrize("action", ["broker_retention_call", "branch_manager_call", "senior_advisor_visit"])
def test_a_reached_call_or_visit_lowers_service_pressure_for_neglected_unhappy_clients(simulation, action) -> None:
    sim = simulation
    t = len(sim.cal) - 1
    who = _active(sim)
    sim_state = (sim.last_contact.copy(), sim.satisfaction.copy(), sim.complaint_open_until.copy())
    try:
        # Unhappy, neglected clients with an open complaint: the situation a call is for.
        sim.satisfaction[who] = 2.0
        sim.last_contact[who] = t - 200
        sim.complaint_open_until[who] = t + 30
        before, after = _what_if(sim, action, who)
        sensitive = sim.service_sens[who] > 0.3
        assert (after[sensitive, SERVICE] < before[sensitive, SERVICE]).all()
        _, unreached = _what_if(sim, action, who, reached=False)
        assert np.allclose(unreached, before)
    finally:
        sim.last_contact[:], sim.satisfaction[:], sim.complaint_open_until[:] = sim_state


def test_a_senior_visit_helps_premier_clients_more(simulation) -> None:
    sim = simulation
    t = len(sim.cal) - 1
    who = _active(sim)[:200]
    saved = (sim.satisfaction.copy(), sim.premier.copy())
    try:
        sim.satisfaction[who] = 1.5
        sim.premier[who] = False
        plain = _what_if(sim, "senior_advisor_visit", who, surfaced=False)
        sim.premier[who] = True
        premier = _what_if(sim, "senior_advisor_visit", who, surfaced=False)
        helped = plain[0][:, SERVICE] - plain[1][:, SERVICE]
        helped_premier = premier[0][:, SERVICE] - premier[1][:, SERVICE]
        assert (helped_premier >= helped - 1e-15).all()
        assert (helped_premier > helped).sum() > 20
    finally:
        sim.satisfaction[:], sim.premier[:] = saved
    del t


def test_resolving_complaints_closes_them_and_lowers_service_pressure(simulation) -> None:
    sim = simulation
    t = len(sim.cal) - 1
    who = _active(sim)
    saved = sim.complaint_open_until.copy()
    try:
        sim.complaint_open_until[who] = t + 40
        before, after = _what_if(sim, "resolve_open_complaints", who)
        state = sim._effect(ACTIONS.index("resolve_open_complaints"), who, t, np.ones(who.size, bool),
                            np.ones(who.size, bool), np.ones(who.size, bool))
        assert (state["complaint_open_until"] <= t).all()
        assert (after[:, SERVICE] < before[:, SERVICE]).all()
    finally:
        sim.complaint_open_until[:] = saved


@pytest.mark.parametrize("action", ["investment_advisory_session", "investor_education"])
def test_advice_and_education_lower_poor_trading_pressure_more_for_information_dependent_clients(
        simulation, action) -> None:
    sim = simulation
    who = _active(sim)
    before, after = _what_if(sim, action, who)
    losing = (before[:, POOR] > 0) & (sim.relief_until[who] <= len(sim.cal) - 1)  # not already helped
    assert losing.sum() > 20
    assert (after[losing, POOR] < before[losing, POOR]).all()
    relief = 1 - after[losing, POOR] / before[losing, POOR]
    info = sim.info[who][losing]
    assert np.corrcoef(relief, info)[0, 1] > 0.9
    _, unreached = _what_if(sim, action, who, reached=False)
    assert np.allclose(unreached, before)


def test_contacts_beyond_the_tolerance_raise_service_pressure_for_clients_who_dislike_them(simulation) -> None:
    sim = simulation
    t = len(sim.cal) - 1
    month = len(sim.cal.month_ends) - 1
    who = _active(sim)
    saved = sim.contact_days.copy()
    try:
        sim.contact_days[who] = -10_000
        sim.contact_days[who, -EFFECTS.contact_tolerance:] = t - 1  # at the tolerance: no effect yet
        at_tolerance = sim._parts(who, month, t)
        state = sim._effect(ACTIONS.index("investor_education"), who, t, np.zeros(who.size, bool),
                            np.ones(who.size, bool), np.zeros(who.size, bool))
        beyond = sim._parts(who, month, t, **state)
        averse = sim.aversion[who] > 0.2
        cap = HAZARD_SERVICE * (0.1 + 0.9 * sim.service_sens[who] ** 1.5) * 2 * sim.frailty[who]
        room = at_tolerance[:, SERVICE] < cap - 1e-12  # the service gap is not at its cap yet
        assert (beyond[averse & room, SERVICE] > at_tolerance[averse & room, SERVICE]).all()
        assert (beyond[:, SERVICE] >= at_tolerance[:, SERVICE]).all()
        sim.contact_days[who] = -10_000
        quiet = sim._parts(who, month, t)
        state = sim._effect(ACTIONS.index("investor_education"), who, t, np.zeros(who.size, bool),
                            np.ones(who.size, bool), np.zeros(who.size, bool))
        assert np.allclose(sim._parts(who, month, t, **state), quiet)
    finally:
        sim.contact_days[:] = saved


def test_the_truth_keeps_every_actions_uplift_for_active_clients_at_the_last_month_ends(worlds) -> None:
    without, _ = worlds
    uplift = read_truth_table(without / "truth", "action_uplift")
    probabilities = read_truth_table(without / "truth", "churn_probabilities")
    month_ends = sorted(uplift["month_end"].unique())
    assert len(month_ends) == min(CONFIG.uplift_months, CONFIG.months)
    last = probabilities[probabilities["month_end"] == month_ends[-1]]
    mine = uplift[uplift["month_end"] == month_ends[-1]]
    assert len(mine) == len(last) * len(ACTIONS)
    merged = mine.merge(last, on=["client_id", "month_end"])
    assert np.allclose(merged["churn_probability_90d_without"], merged["true_churn_probability_90d"])
    assert np.allclose(merged["uplift"], merged["churn_probability_90d_without"] - merged["churn_probability_90d_with"])
    by_action = uplift.groupby("action")["uplift"].mean()
    assert by_action["review_commission_rate"] > 0
    effects = read_truth_table(without / "truth", "action_effects")
    assert effects["campaign"].str.startswith("retention-").all() and len(effects) > 0


# -------------------------------------------------------------- the cause mix
@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 29])
def test_competitors_cause_most_churn_at_5000_clients(seed: int, realism_world: Path,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    if seed == 11:
        home = realism_world
    else:
        home = tmp_path_factory.mktemp(f"cause_mix_{seed}")
        generate_world(WorldConfig(clients=5_000, months=24, seed=seed), home / "raw", home / "ground_truth")
    profile = build_profile(home / "raw", home / "ground_truth")
    assert profile.cause_mix is not None
    for cause, (low, high) in CAUSE_RANGES.items():
        assert low <= profile.cause_mix[cause] <= high, (cause, profile.cause_mix)
    outside = {f.name: f.value for f in profile.figures if not f.within}
    assert not outside, f"realism figures out of range: {outside}"
    assert {e.action for e in profile.campaign_effects} == set(ACTIONS)
    for e in profile.campaign_effects:
        assert e.low <= e.effect <= e.high and e.treated > 0
