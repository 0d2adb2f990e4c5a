"""The synthetic world of a closed loop: simulated to the end of its history once, then continued month by month
for each policy from a copy of that paused state, delivering the policy's actions and keeping what it produced.

This is the only module of the closed loop that touches the generator: the engine reads the raw tables it writes
(:meth:`LoopWorld.write_raw`), never the world's state. The world's true response to an action
(:meth:`LoopWorld.true_uplift`) is ground truth, read only by the oracle policy and the evaluation.

The generator draws its market for the whole window at once (look-ahead signals included), so a world cannot be
appended to: the loop's world is the data's configuration (clients, seed, start) with the loop's months added,
simulated from day 0. Its first months are a world like the data's, not the data's rows.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.raw.schema import CONTACT_CHANNELS
from features.raw.store import write_table
from features.synthetic.actions import ACTION_SPECS, ACTIONS, PLAN_TAG, ActionPlan
from features.synthetic.simulate import ACTIVE, ACTIVE_ASSETS_MIN, LEAVING, NOT_OPEN
from features.synthetic.world import RowTables, WorldConfig, setup_world

# The raw tables the simulation streams month by month (complaints and report reads are kept to the end).
_STREAMED = ("trades", "cash_transfers", "account_snapshots", "positions", "contacts", "satisfaction_surveys",
             "ipo_subscriptions", "commission_rate_changes")
_DATED = {"daily_prices": "trade_date", "market_index": "trade_date", "research_reports": "published_on"}
HISTORY = "history"


class _MemoryTables(RowTables):
    """Keeps the simulation's raw rows in memory (as frames per table) instead of streaming them to parquet."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frames: dict[str, list[pd.DataFrame]] = {name: [] for name in _STREAMED}

    def __call__(self, name: str, a: dict[str, np.ndarray]) -> None:
        if name in self.frames:
            self.frames[name].append(getattr(self, f"_{name}")(a))

    def take(self) -> dict[str, pd.DataFrame]:
        out = {name: pd.concat(parts, ignore_index=True) for name, parts in self.frames.items() if parts}
        self.frames = {name: [] for name in _STREAMED}
        return out


@dataclass
class Outcome:
    """What a policy's months did to the clients active when the loop started."""

    clients_lost: int
    assets_kept_yuan: float
    actions_delivered: int
    cost_yuan: float
    per_month: list[dict] = field(default_factory=list)


class LoopWorld:
    """One world paused at a month-end; :meth:`fork` gives an independent copy to continue with a policy."""

    def __init__(self, config: WorldConfig, history_months: int, folder: Path) -> None:
        if history_months >= config.months:
            raise ValueError("the loop needs months after the history")
        self.config = config
        self.history_months = history_months
        self.folder = Path(folder)
        world = setup_world(config, self.folder, self.folder, tables_class=_MemoryTables)
        self.calendar = world.calendar
        self.population = world.population
        self.sim = world.simulation
        self.tables: _MemoryTables = world.tables  # type: ignore[assignment]
        self.ids = world.ids
        self.static = world.static
        self.sim.uplift_months = set()  # the loop asks for true effects only where the oracle needs them
        self.history_day = int(self.calendar.month_end_day[history_months])
        self.started: np.ndarray | None = None  # clients active when the loop started
        self.branch = "start"
        self.loop_frames: dict[str, list[pd.DataFrame]] = {n: [] for n in _STREAMED}
        self.seconds = 0.0

    # ------------------------------------------------------------------ the history
    def run_history(self, progress: Callable[[int], None] | None = None) -> None:
        """Simulate to the end of the history and write its raw tables once (every policy shares them)."""
        started = time.perf_counter()
        self.sim.start()
        self.sim.advance_to(self.history_day, progress)
        self.started = (self.sim.status == ACTIVE) & (self.sim.month_start_assets >= ACTIVE_ASSETS_MIN)
        history = self.folder / HISTORY
        for name, frame in self.tables.take().items():
            write_table(history, name, frame)
        reads = self.sim.reads_so_far()
        if reads is not None:
            write_table(history, "report_reads", self.tables._report_reads(reads))
        for name, frame in self.static.items():
            write_table(history, name, self._until(name, frame, self.history_day))
        write_table(history, "research_reports", self._until("research_reports", self.sim.reports,
                                                             self.history_day))
        self.seconds += time.perf_counter() - started

    def fork(self, name: str) -> LoopWorld:
        """An independent copy of this paused world that writes its own rows under ``folder/name``."""
        emit, self.sim.emit = self.sim.emit, None
        try:
            shared = {id(self.sim.mkt): self.sim.mkt, id(self.sim.pop): self.sim.pop, id(self.sim.cal): self.sim.cal}
            sim = copy.deepcopy(self.sim, shared)
        finally:
            self.sim.emit = emit
        other = copy.copy(self)
        other.sim = sim
        other.tables = copy.copy(self.tables)
        other.tables.frames = {n: [] for n in _STREAMED}
        other.tables.tags = sim.tags
        sim.emit = other.tables
        other.folder = self.folder
        other.branch = name
        other.loop_frames = {n: [] for n in _STREAMED}
        return other

    # ------------------------------------------------------------------ a month of the loop
    @property
    def today(self) -> dt.date:
        return self.calendar.days[self.sim.today]

    def months_left(self) -> int:
        return int(self.calendar.month_of_day[len(self.calendar) - 1] - self.calendar.month_of_day[self.sim.today])

    def deliver_next_month(self, plan: pd.DataFrame) -> None:
        """Schedule ``plan`` (client_id, action, channel, day index within the next month's trading days, from 0)
        over the next month and simulate that month; the world reaches clients with its own probabilities."""
        started = time.perf_counter()
        month = int(self.calendar.month_of_day[self.sim.today]) + 1
        first = self.sim.today + 1
        last = int(self.calendar.month_end_day[month])
        days = np.arange(first, last + 1)
        if len(plan):
            client = pd.Index(self.ids).get_indexer(plan["client_id"].astype(str))
            action = pd.Index(ACTIONS).get_indexer(plan["action"].astype(str))
            channel = pd.Index(CONTACT_CHANNELS).get_indexer(plan["channel"].astype(str))
            if (client < 0).any() or (action < 0).any() or (channel < 0).any():
                raise ValueError("a loop plan names an unknown client, action or channel")
            day = days[np.minimum(plan["day"].to_numpy(dtype=np.int64), days.size - 1)]
            order = np.lexsort((action, client, day))
            self.sim.schedule(ActionPlan(client=client[order].astype(np.int64), day=day[order].astype(np.int64),
                                         action=action[order].astype(np.int64),
                                         channel=channel[order].astype(np.int64),
                                         broker=np.full(order.size, -1, dtype=np.int64)))
        else:
            self.sim.schedule(ActionPlan.empty())
        self.sim.advance_to(last)
        for name, frame in self.tables.take().items():
            self.loop_frames[name].append(frame)
        self.seconds += time.perf_counter() - started

    def month_end(self) -> dt.date:
        """The month-end of the last simulated month (the indicators' as-of date)."""
        return self.calendar.month_ends[int(self.calendar.month_of_day[self.sim.today])]

    def trading_days_next_month(self) -> int:
        month = int(self.calendar.month_of_day[self.sim.today]) + 1
        return int(self.calendar.month_end_day[month] - self.sim.today)

    # ------------------------------------------------------------------ what the engine may read
    def write_raw(self) -> tuple[Path, Path]:
        """The raw tables as of today, as two folders for the indicators: the history's tables (with today's
        clients table) and this branch's rows since (with the whole complaints table as of today)."""
        started = time.perf_counter()
        base = self.folder / self.branch / "raw"
        rows = self.folder / self.branch / "rows"
        base.mkdir(parents=True, exist_ok=True)
        history = (self.folder / HISTORY).resolve()
        for path in history.glob("*.parquet"):
            link = base / path.name
            if path.stem not in ("clients", "complaints") and not link.exists():
                link.symlink_to(path)
        write_table(base, "clients", self.clients_today())
        for name, parts in self.loop_frames.items():
            if parts:
                write_table(rows, name, pd.concat(parts, ignore_index=True))
        write_table(rows, "complaints", self.tables._complaints(self.sim.complaints_so_far()))
        reads = self.sim.reads_so_far()
        if reads is not None:
            since = reads["day"] > self.history_day
            frame = self.tables._report_reads({k: v[since] for k, v in reads.items()})
            write_table(rows, "report_reads", frame)
        for name, frame in self.static.items():
            if name in _DATED:
                write_table(rows, name, self._between(name, frame))
        write_table(rows, "research_reports", self._between("research_reports", self.sim.reports))
        self.seconds += time.perf_counter() - started
        return base, rows

    def clients_today(self) -> pd.DataFrame:
        clients = self.population.clients.copy()
        closed = self.sim.closed_on.copy()
        closed[closed > np.datetime64(self.today)] = np.datetime64("NaT")
        clients["closed_on"] = pd.to_datetime(closed.astype("datetime64[ns]"))
        clients["commission_rate"] = self.sim.rate
        return clients

    def broker_of_clients(self) -> pd.Series:
        """Each client's broker (what the brokerage's own records say), by client id."""
        return self.population.clients.set_index("client_id")["broker_id"]

    def _until(self, name: str, frame: pd.DataFrame, day: int) -> pd.DataFrame:
        if name not in _DATED:
            return frame
        return frame[pd.to_datetime(frame[_DATED[name]]) <= pd.Timestamp(self.calendar.days[day])]

    def _between(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        when = pd.to_datetime(frame[_DATED[name]])
        return frame[(when > pd.Timestamp(self.calendar.days[self.history_day]))
                     & (when <= pd.Timestamp(self.today))]

    # ------------------------------------------------------------------ ground truth
    def true_uplift(self, client_ids: np.ndarray, action: str, channel: str) -> np.ndarray:
        """The world's true fall of each client's 90-day churn probability if ``action`` came by ``channel``
        now: what the oracle ranks by. Ground truth, for the oracle and the evaluation only."""
        who = pd.Index(self.ids).get_indexer(np.asarray(client_ids, dtype=object))
        return self.sim.true_uplift(who, action, channel)

    def outcome(self) -> Outcome:
        """Clients active when the loop started who have started to leave since, the assets those clients hold
        today, and the actions delivered with their cost (the world's cost of each attempt)."""
        if self.started is None:
            raise RuntimeError("run the history first")
        sim = self.sim
        lost = self.started & (sim.status != ACTIVE) & (sim.status != NOT_OPEN)
        t = sim.today
        who = np.flatnonzero(self.started)
        assets = sim.cash[who] + sim._market_value(t, who)
        contacts = (pd.concat(self.loop_frames["contacts"], ignore_index=True) if self.loop_frames["contacts"]
                    else pd.DataFrame(columns=["campaign", "action"]))
        delivered = contacts[contacts["campaign"] == PLAN_TAG]["action"]
        cost = float(sum(ACTION_SPECS[a].cost_yuan for a in delivered))
        return Outcome(clients_lost=int(lost.sum()), assets_kept_yuan=round(float(assets.sum()), 2),
                       actions_delivered=len(delivered), cost_yuan=round(cost, 2))

    def leaving(self) -> np.ndarray:
        return np.flatnonzero(self.sim.status == LEAVING)
