"""Retention actions and how the synthetic world answers them: reach by channel, cost, and effect sizes.

The actions are the ones the bundled retention rules recommend. An action plan (a parquet file with the columns
``client_id``, ``action``, ``date``, ``channel``, ``broker_id``) is applied by the simulation on its dates; every
attempt is written to ``contacts`` and every commission change to ``commission_rate_changes``. The world also runs
randomized retention campaigns of its own (a share of active clients each quarter), tagged in ``contacts``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.raw.schema import CONTACT_CHANNELS

ACTIONS = (
    "senior_advisor_visit",
    "review_commission_rate",
    "broker_retention_call",
    "investment_advisory_session",
    "investor_education",
    "branch_manager_call",
    "resolve_open_complaints",
)
PLAN_COLUMNS = ("client_id", "action", "date", "channel", "broker_id")
PLAN_TAG = "plan"  # campaign tag of contacts made by an action plan


@dataclass(frozen=True)
class ActionSpec:
    """How an action is delivered: the channel used unless the plan names one, and what one attempt costs."""

    channel: str
    cost_yuan: float
    meaning: str


ACTION_SPECS: dict[str, ActionSpec] = {
    "senior_advisor_visit": ActionSpec("visit", 600.0, "A senior advisor visits the client."),
    "review_commission_rate": ActionSpec("phone", 50.0, "The commission rate is reviewed and lowered."),
    "broker_retention_call": ActionSpec("phone", 30.0, "The client's broker calls about the client's concerns."),
    "investment_advisory_session": ActionSpec("visit", 200.0, "The client attends an investment advisory session."),
    "investor_education": ActionSpec("wechat", 120.0, "The client follows the investor-education course."),
    "branch_manager_call": ActionSpec("phone", 80.0, "The branch manager calls about the service received."),
    "resolve_open_complaints": ActionSpec("phone", 150.0, "The client's open complaints are worked and closed."),
}

# Of the attempts made on each channel, the share that reaches the client and the share the client declines
# (the rest go unanswered).
REACH_PROBABILITY = {"phone": 0.62, "wechat": 0.45, "visit": 0.85, "sms": 0.30}
DECLINE_PROBABILITY = {"phone": 0.12, "wechat": 0.10, "visit": 0.08, "sms": 0.05}


@dataclass(frozen=True)
class Effects:
    """Every effect size of the world's answer to actions, in one place."""

    # A commission review lowers the client's rate by this fraction from its date on, whether or not the client
    # is reached (the rate is changed in the system) ...
    commission_cut: float = 0.35
    # ... but never below this floor, the lowest rate the brokerage charges anyone.
    commission_floor: float = 0.0001
    # A reached call or visit lifts the client's satisfaction (1-5 scale) by this much times the client's service
    # sensitivity (0-1): service-sensitive clients feel looked after, indifferent ones hardly notice.
    satisfaction_lift: tuple[tuple[str, float], ...] = (
        ("broker_retention_call", 1.2), ("branch_manager_call", 1.8), ("senior_advisor_visit", 1.8))
    # A senior advisor's visit to a premier client (top 5% of assets) counts this many times as much.
    premier_visit_factor: float = 1.8
    # A reached call or visit surfaces the client's open complaint and gets it resolved with this probability.
    complaint_surfaced: tuple[tuple[str, float], ...] = (
        ("broker_retention_call", 0.5), ("branch_manager_call", 0.85), ("senior_advisor_visit", 0.7))
    # An attended advisory session lowers the poor-trading pressure by this fraction, scaled by
    # 0.4 + 0.6 × the client's information dependence (clients who follow advice profit most) ...
    advisory_relief: float = 0.6
    # ... for this many trading days (about three months).
    advisory_days: int = 63
    # Investor education lowers the poor-trading pressure less, with the same scaling, but for longer.
    education_relief: float = 0.45
    education_days: int = 126
    # Contacts (any attempt, the brokerage's own included) beyond this many within the last 21 trading days ...
    contact_tolerance: int = 2
    contact_window_days: int = 21
    # ... raise the service gap by this much per extra contact, times the client's dislike of being called (0-1).
    over_contact_gap: float = 0.9

    def lift(self, action: str) -> float:
        return dict(self.satisfaction_lift).get(action, 0.0)

    def surfaced(self, action: str) -> float:
        return dict(self.complaint_surfaced).get(action, 0.0)


EFFECTS = Effects()

# Randomized campaigns the brokerage ran in the past: at each quarter's first trading day this share of active
# clients gets one retention action drawn at random (uniformly over ACTIONS), by its default channel.
CAMPAIGN_SHARE = 0.05
CAMPAIGN_MONTHS = (1, 4, 7, 10)


class ActionPlanError(ValueError):
    """An action plan that cannot be applied, with what is wrong in it."""

    code = "action_plan_invalid"


@dataclass
class ActionPlan:
    """Plan rows as index arrays over the simulation's clients, days, actions, channels and brokers."""

    client: np.ndarray
    day: np.ndarray
    action: np.ndarray
    channel: np.ndarray
    broker: np.ndarray  # index into brokers, -1 for the client's own broker

    @classmethod
    def empty(cls) -> ActionPlan:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, z)

    def __len__(self) -> int:
        return self.client.size


def read_plan(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise ActionPlanError(f"action plan {path} does not exist")
    try:
        frame = pd.read_parquet(path) if path.suffix != ".csv" else pd.read_csv(path, dtype=str)
    except Exception as error:
        raise ActionPlanError(f"cannot read action plan {path}: {error}") from error
    return frame


def resolve_plan(frame: pd.DataFrame, client_ids: np.ndarray, broker_ids: np.ndarray, dates: np.ndarray,
                 end: dt.date) -> ActionPlan:
    """Check a plan against the world and turn it into index arrays; each action lands on the first trading
    day on or after its date."""
    missing = [c for c in ("client_id", "action", "date") if c not in frame.columns]
    if missing:
        raise ActionPlanError(f"action plan lacks column(s) {', '.join(missing)}; expected {', '.join(PLAN_COLUMNS)}")
    unknown = sorted(set(frame.columns) - set(PLAN_COLUMNS))
    if unknown:
        raise ActionPlanError(f"action plan has unknown column(s) {', '.join(unknown)}; "
                              f"expected {', '.join(PLAN_COLUMNS)}")
    n = len(frame)
    client_index = pd.Index(client_ids)
    client = client_index.get_indexer(frame["client_id"].astype(str))
    if (client < 0).any():
        bad = frame["client_id"][client < 0].astype(str).unique()[:5]
        raise ActionPlanError(f"action plan names unknown client(s) {', '.join(bad)}")
    action_index = pd.Index(ACTIONS)
    action = action_index.get_indexer(frame["action"].astype(str))
    if (action < 0).any():
        bad = frame["action"][action < 0].astype(str).unique()[:5]
        raise ActionPlanError(f"action plan names unknown action(s) {', '.join(bad)}; known: {', '.join(ACTIONS)}")
    when = pd.to_datetime(frame["date"], errors="coerce")
    if when.isna().any():
        raise ActionPlanError(f"action plan has {int(when.isna().sum())} row(s) without a valid date")
    when = when.dt.normalize().to_numpy().astype("datetime64[D]")
    outside = (when <= dates[0]) | (when > np.datetime64(end))
    if outside.any():
        raise ActionPlanError(f"action plan has {int(outside.sum())} date(s) outside the world's window "
                              f"{dates[1]} to {end}, e.g. {when[outside][0]}")
    day = np.searchsorted(dates, when, side="left")
    late = day >= dates.size
    if late.any():
        raise ActionPlanError(f"action plan has {int(late.sum())} date(s) after the last trading day {dates[-1]}")
    default_channel = np.array([CONTACT_CHANNELS.index(ACTION_SPECS[a].channel) for a in ACTIONS])[action]
    channel = default_channel
    if "channel" in frame.columns:
        given = frame["channel"].astype(object).where(frame["channel"].notna(), None)
        named = given.notna().to_numpy()
        index = pd.Index(CONTACT_CHANNELS).get_indexer(given[named].astype(str))
        if (index < 0).any():
            bad = given[named][index < 0].astype(str).unique()[:5]
            raise ActionPlanError(f"action plan names unknown channel(s) {', '.join(bad)}; "
                                  f"known: {', '.join(CONTACT_CHANNELS)}")
        channel = channel.copy()
        channel[named] = index
    broker = np.full(n, -1, dtype=np.int64)
    if "broker_id" in frame.columns:
        given = frame["broker_id"]
        named = given.notna().to_numpy()
        index = pd.Index(broker_ids).get_indexer(given[named].astype(str))
        if (index < 0).any():
            bad = given[named][index < 0].astype(str).unique()[:5]
            raise ActionPlanError(f"action plan names unknown broker(s) {', '.join(bad)}")
        broker[named] = index
    order = np.lexsort((action, client, day))
    return ActionPlan(client=client[order].astype(np.int64), day=day[order].astype(np.int64),
                      action=action[order].astype(np.int64), channel=np.asarray(channel)[order].astype(np.int64),
                      broker=broker[order])
