"""Generates a whole synthetic brokerage world: raw tables through the contract, ground truth beside them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.raw.schema import COMPLAINT_CATEGORIES, CONTACT_CHANNELS, CONTACT_OUTCOMES, IPO_STATUSES
from features.raw.store import TableWriter, replace_directory, row_counts, write_table
from features.synthetic.actions import ACTIONS, ActionPlan, read_plan, resolve_plan
from features.synthetic.calendar import Calendar
from features.synthetic.ground_truth import MANIFEST, write_truth_table
from features.synthetic.market import build_market
from features.synthetic.population import build_population, client_ids
from features.synthetic.simulate import CAUSES, Simulation
from features.synthetic.streams import ClientStreams

WORLD_MANIFEST = "_world.json"
_STREAMED = (
    "trades", "cash_transfers", "account_snapshots", "positions", "contacts", "complaints",
    "satisfaction_surveys", "report_reads", "ipo_subscriptions", "commission_rate_changes",
)
_TRUTH_STREAMS = ("truth_probabilities", "action_effects", "action_uplift")


class WorldConfig(BaseModel):
    """What defines a synthetic world; the same config gives byte-identical tables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clients: int = Field(20_000, ge=10, le=5_000_000)
    months: int = Field(24, ge=1, le=120)
    seed: int = Field(7, ge=0)
    start: dt.date = dt.date(2024, 1, 1)
    branches: int = Field(15, ge=1, le=200)
    securities: int = Field(800, ge=50, le=5_000)
    # Month-ends (the last ones of the window) at which the true effect of every action on every active client
    # is kept in the ground truth: they cover the models' test windows.
    uplift_months: int = Field(6, ge=0, le=120)

    @property
    def world_id(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class RowTables:
    """Turns the simulation's index arrays into raw-table rows and streams them to parquet."""

    def __init__(self, raw_dir: Path, truth_dir: Path, calendar: Calendar, codes: np.ndarray, ids: np.ndarray,
                 broker_ids: np.ndarray, branch_ids: np.ndarray, report_ids: np.ndarray) -> None:
        self.raw_dir = raw_dir
        self.truth_dir = truth_dir
        self.cal = calendar
        self.codes = codes
        self.ids = ids
        self.broker_ids = broker_ids
        self.branch_ids = branch_ids
        self.report_ids = report_ids
        self.month_ends = np.array(calendar.month_ends, dtype="datetime64[D]").astype("datetime64[ns]")
        self.dates = calendar.dates.astype("datetime64[ns]")
        self.writers: dict[str, TableWriter] = {}
        self.truth_parts: dict[str, list[pd.DataFrame]] = {name: [] for name in _TRUTH_STREAMS}
        self.tags: list[str] = ["", "plan"]  # the simulation's campaign tags, shared once it exists
        self.all_broker_ids = np.empty(0, dtype=object)  # every broker, for contacts made by a named broker

    def __call__(self, name: str, a: dict[str, np.ndarray]) -> None:
        if name in _TRUTH_STREAMS:
            self.truth_parts[name].append(getattr(self, f"_{name}")(a))
            return
        frame = getattr(self, f"_{name}")(a)
        if name not in self.writers:
            self.writers[name] = TableWriter(self.raw_dir, name)
        self.writers[name].write(frame)

    def close(self) -> None:
        for name in _STREAMED:
            if name not in self.writers:
                self.writers[name] = TableWriter(self.raw_dir, name)
        for writer in self.writers.values():
            writer.close()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()

    def _trades(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "trade_id": a["trade_id"], "client_id": self.ids[a["client"]], "security_id": self.codes[a["security"]],
            "trade_date": self.dates[a["day"]], "side": np.where(a["buy"], "buy", "sell"),
            "quantity": a["quantity"], "price": a["price"], "amount": a["amount"],
            "commission": a["commission"], "stamp_duty": a["stamp_duty"],
        })

    def _cash_transfers(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "transfer_id": a["transfer_id"], "client_id": self.ids[a["client"]], "transfer_date": self.dates[a["day"]],
            "direction": np.where(a["incoming"], "in", "out"), "amount": a["amount"],
        })

    def _account_snapshots(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "client_id": self.ids[a["client"]], "snapshot_date": self.month_ends[a["month"]], "cash": a["cash"],
            "market_value": a["market_value"], "total_assets": a["total_assets"],
        })

    def _positions(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "client_id": self.ids[a["client"]], "snapshot_date": self.month_ends[a["month"]],
            "security_id": self.codes[a["security"]], "quantity": a["quantity"], "cost_price": a["cost_price"],
            "market_value": a["market_value"], "first_bought_on": a["first_bought"].astype("datetime64[ns]"),
        })

    def _contacts(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        broker = a["broker"]
        tags = np.array([t or None for t in self.tags], dtype=object)
        actions = np.array([*ACTIONS, None], dtype=object)
        return pd.DataFrame({
            "contact_id": a["contact_id"], "client_id": self.ids[a["client"]],
            "broker_id": np.where(broker >= 0, self.all_broker_ids[np.maximum(broker, 0)],
                                  self.broker_ids[a["client"]]),
            "contact_date": self.dates[a["day"]],
            "channel": np.array(CONTACT_CHANNELS)[a["channel"]], "outcome": np.array(CONTACT_OUTCOMES)[a["outcome"]],
            "campaign": tags[a["tag"]], "action": actions[a["action"]],
        })

    def _commission_rate_changes(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "change_id": a["change_id"], "client_id": self.ids[a["client"]], "effective_on": self.dates[a["day"]],
            "old_rate": a["old"], "new_rate": a["new"], "reason": np.full(a["client"].size, "retention_review"),
        })

    def _truth_probabilities(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "client_id": self.ids[a["client"]],
            "month_end": self.month_ends[a["month"]],
            "true_churn_probability_90d": a["probability"],
            "hazard_poor_trading": a["poor_trading"],
            "hazard_competitor": a["competitor"],
            "hazard_service": a["service"],
        })

    def _action_effects(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "client_id": self.ids[a["client"]], "action_date": self.dates[a["day"]],
            "action": np.array(ACTIONS)[a["action"]], "campaign": np.array(self.tags, dtype=object)[a["tag"]],
            "outcome": np.array(CONTACT_OUTCOMES)[a["outcome"]],
            "churn_probability_90d_without": a["without"], "churn_probability_90d_with": a["with_"],
        })

    def _action_uplift(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "client_id": self.ids[a["client"]], "month_end": self.month_ends[a["month"]],
            "action": np.array(ACTIONS)[a["action"]],
            "churn_probability_90d_without": a["without"], "churn_probability_90d_with": a["expected"],
            "uplift": a["without"] - a["expected"],
        })

    def _complaints(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        resolved = a["resolved_day"]
        inside = resolved < len(self.dates)
        return pd.DataFrame({
            "complaint_id": a["complaint_id"], "client_id": self.ids[a["client"]],
            "branch_id": self.branch_ids[a["client"]], "filed_on": self.dates[a["day"]],
            "category": np.array(COMPLAINT_CATEGORIES)[a["category"]],
            "resolved_on": np.where(inside, self.dates[np.minimum(resolved, len(self.dates) - 1)],
                                    np.datetime64("NaT")),
        })

    def _satisfaction_surveys(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "survey_id": a["survey_id"], "client_id": self.ids[a["client"]], "surveyed_on": self.dates[a["day"]],
            "score": a["score"],
        })

    def _report_reads(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "client_id": self.ids[a["client"]], "report_id": self.report_ids[a["report"]],
            "read_on": self.dates[a["day"]],
            "rating": pd.array(np.where(a["rating"] > 0, a["rating"], None), dtype="Int64"),
        })

    def _ipo_subscriptions(self, a: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({
            "subscription_id": a["subscription_id"], "client_id": self.ids[a["client"]],
            "security_id": self.codes[a["security"]], "subscribed_on": self.dates[a["day"]],
            "applied_quantity": a["applied"], "allotted_quantity": a["allotted"], "ipo_price": a["price"],
            "paid_amount": a["paid"], "status": np.array(IPO_STATUSES)[a["status"]],
        })


def generate_world(
    config: WorldConfig,
    raw_dir: Path,
    truth_dir: Path,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    actions: Path | pd.DataFrame | None = None,
) -> dict[str, int]:
    """Generate a world into staging folders and swap them into place; returns rows per raw table.

    ``progress(label, total)`` returns a callback advanced once per simulated day. ``actions`` is an action
    plan (a parquet file or a frame with client_id, action, date, channel, broker_id) applied on its dates.
    """
    raw_dir, truth_dir = Path(raw_dir), Path(truth_dir)
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    truth_dir.parent.mkdir(parents=True, exist_ok=True)
    raw_stage = Path(tempfile.mkdtemp(prefix=".raw-generate-", dir=raw_dir.parent))
    truth_stage = Path(tempfile.mkdtemp(prefix=".truth-generate-", dir=truth_dir.parent))
    try:
        plan = read_plan(Path(actions)) if isinstance(actions, (str, Path)) else actions
        counts = _generate(config, raw_stage, truth_stage, progress, plan)
        replace_directory(raw_stage, raw_dir)
        replace_directory(truth_stage, truth_dir)
        return counts
    except BaseException:
        shutil.rmtree(raw_stage, ignore_errors=True)
        shutil.rmtree(truth_stage, ignore_errors=True)
        raise


@dataclass
class WorldSetup:
    """A world ready to simulate: its calendar, market, people, the paused simulation and the table writer."""

    calendar: Calendar
    market: object
    population: object
    simulation: Simulation
    tables: RowTables
    ids: np.ndarray
    plan: ActionPlan
    static: dict[str, pd.DataFrame]  # raw tables known before the first day (organisation, market)


def setup_world(config: WorldConfig, raw_dir: Path, truth_dir: Path, plan_frame: pd.DataFrame | None = None,
                tables_class: type[RowTables] | None = None) -> WorldSetup:
    """Draw the market and the people of ``config`` and build its simulation (not started), its rows handed to
    an instance of ``tables_class`` (the parquet writer by default)."""
    seeds = np.random.SeedSequence(config.seed).spawn(3)
    market_rng, people_rng, sim_rng = (np.random.default_rng(s) for s in seeds)
    calendar = Calendar(config.start, config.months)
    market = build_market(calendar, config.securities, market_rng)
    population = build_population(calendar, config.clients, config.branches, people_rng)
    static = {"branches": population.branches, "brokers": population.brokers, "securities": market.securities,
              "daily_prices": market.daily_prices, "market_index": market.market_index}
    ids = client_ids(config.clients)
    codes = market.securities["security_id"].to_numpy(dtype=object)
    all_broker_ids = population.brokers["broker_id"].to_numpy(dtype=object)
    plan = (ActionPlan.empty() if plan_frame is None
            else resolve_plan(plan_frame, ids, all_broker_ids, calendar.dates, calendar.end))
    months = len(calendar.month_ends)
    uplift_months = tuple(range(max(months - config.uplift_months, 1), months))
    simulation = Simulation(calendar, market, population, sim_rng, emit=lambda name, arrays: None,
                            streams=ClientStreams(config.seed), plan=plan, uplift_months=uplift_months)
    tables = (tables_class or RowTables)(
        raw_dir, truth_dir, calendar, codes, ids,
        broker_ids=population.brokers["broker_id"].to_numpy(dtype=object)[population.client_broker],
        branch_ids=population.branches["branch_id"].to_numpy(dtype=object)[population.client_branch],
        report_ids=simulation.reports["report_id"].to_numpy(dtype=object),
    )
    tables.tags = simulation.tags
    tables.all_broker_ids = all_broker_ids
    simulation.emit = tables
    return WorldSetup(calendar, market, population, simulation, tables, ids, plan, static)


def _generate(config: WorldConfig, raw_dir: Path, truth_dir: Path,
              progress: Callable[[str, int], Callable[[int], None]] | None,
              plan_frame: pd.DataFrame | None = None) -> dict[str, int]:
    world = setup_world(config, raw_dir, truth_dir, plan_frame)
    for name, frame in world.static.items():
        write_table(raw_dir, name, frame)
    calendar, population, simulation, tables, ids, plan = (world.calendar, world.population, world.simulation,
                                                           world.tables, world.ids, world.plan)
    advance = progress("simulating trading days", len(calendar) - 1) if progress else None
    try:
        result = simulation.run(advance)
        tables.close()
    except BaseException:
        tables.abort()
        raise

    clients = population.clients.copy()
    clients["closed_on"] = pd.to_datetime(result.closed_on.astype("datetime64[ns]"))
    clients["commission_rate"] = simulation.rate  # the rate in force at the end; earlier ones in the changes
    write_table(raw_dir, "clients", clients)
    write_table(raw_dir, "research_reports", result.research_reports)

    _write_truth(config, truth_dir, calendar, population, result, tables, ids)
    manifest = {"source": "synthetic", "world_id": config.world_id, **json.loads(config.model_dump_json())}
    if len(plan):
        digest = hashlib.sha256(pd.util.hash_pandas_object(plan_frame, index=False).to_numpy().tobytes())
        manifest["world_id"] = hashlib.sha256((config.world_id + digest.hexdigest()).encode()).hexdigest()[:16]
        manifest["action_plan"] = {"actions": len(plan), "digest": digest.hexdigest()[:16]}
    (raw_dir / WORLD_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (truth_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return row_counts(raw_dir)


def _write_truth(config: WorldConfig, truth_dir: Path, calendar: Calendar, population, result, tables: RowTables,
                 ids: np.ndarray) -> None:
    traits = population.traits.copy()
    traits.insert(1, "branch_service_quality", population.branch_quality[population.client_branch])
    traits.insert(2, "broker_diligence", population.broker_diligence[population.client_broker])
    write_truth_table(truth_dir, "client_traits", traits)
    write_truth_table(truth_dir, "branch_traits", pd.DataFrame({
        "branch_id": population.branches["branch_id"], "service_quality": population.branch_quality}))
    write_truth_table(truth_dir, "broker_traits", pd.DataFrame({
        "broker_id": population.brokers["broker_id"], "diligence": population.broker_diligence}))
    parts = tables.truth_parts
    probabilities = (pd.concat(parts["truth_probabilities"], ignore_index=True) if parts["truth_probabilities"]
                     else pd.DataFrame(columns=["client_id", "month_end", "true_churn_probability_90d"]))
    write_truth_table(truth_dir, "churn_probabilities", probabilities)
    empty = {"action_effects": tables._action_effects, "action_uplift": tables._action_uplift}
    for name in ("action_effects", "action_uplift"):
        frame = (pd.concat(parts[name], ignore_index=True) if parts[name] else empty[name]({
            "client": np.zeros(0, dtype=np.int64), "day": np.zeros(0, dtype=np.int64),
            "month": np.zeros(0, dtype=np.int64), "action": np.zeros(0, dtype=np.int64),
            "tag": np.zeros(0, dtype=np.int64), "outcome": np.zeros(0, dtype=np.int64), "without": np.zeros(0),
            "with_": np.zeros(0), "expected": np.zeros(0)}))
        write_truth_table(truth_dir, name, frame)
    events = result.churn_events
    dates = calendar.dates.astype("datetime64[ns]")
    end_day = events["end_day"].to_numpy(dtype="float64")
    write_truth_table(truth_dir, "churn_events", pd.DataFrame({
        "client_id": ids[events["client"].to_numpy()],
        "churn_started_on": dates[events["start_day"].to_numpy()],
        "assets_gone_on": np.where(np.isnan(end_day), np.datetime64("NaT"),
                                   dates[np.nan_to_num(end_day, nan=0).astype(np.int64)]),
        "cause": np.array(CAUSES)[events["cause"].to_numpy()],
        "account_closed_on": result.closed_on[events["client"].to_numpy()].astype("datetime64[ns]"),
    }))
    cities = sorted(set(population.branches["city"]))
    campaigns = result.campaigns
    month_ends = np.array(calendar.month_ends, dtype="datetime64[ns]")
    write_truth_table(truth_dir, "competitor_campaigns", pd.DataFrame({
        "city": np.array(cities)[campaigns["city"].to_numpy()],
        "month_end": month_ends[campaigns["month"].to_numpy()],
        "intensity": campaigns["intensity"].to_numpy(),
    }))
