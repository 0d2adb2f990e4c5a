"""The raw tables as Ibis expressions, the as-of dates, and the point-in-time joins every family shares.

Every join to the as-of table keeps only raw rows dated on or before the as-of date, so no indicator can
look into the future. The same expressions run on DuckDB (default) and on Spark (:func:`open_context`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.indicators.engine import DEFAULT_SPARK_MASTER, ENGINES, Engine
from features.raw.schema import OPTIONAL_TABLES, RAW_TABLES
from features.raw.validation import arrow_schema

DUCKDB_MEMORY_LIMIT = "3GB"
# One thread: DuckDB's parallel aggregates add floats in an order that changes from run to run, so sums differed in
# their last bits between two builds of one world; a flat account's return came out as ±1e-16 instead of 0, and
# the models, split at 0, differed (churn AUC 0.686-0.703 between builds of one seed). With one thread two builds
# are byte-identical. CRM_DUCKDB_THREADS trades that for speed on a larger machine.
DUCKDB_THREADS = 1
RAW_NEEDED = (
    "branches", "brokers", "clients", "securities", "daily_prices", "market_index", "trades", "cash_transfers",
    "account_snapshots", "positions", "contacts", "complaints", "satisfaction_surveys", "research_reports",
    "report_reads", "ipo_subscriptions", "commission_rate_changes",
)


def days(n: int) -> ir.IntervalScalar:
    return ibis.interval(days=n)


def month_end_as_of_dates(snapshot_dates: Sequence[dt.date], latest: dt.date) -> list[dt.date]:
    """Every month-end snapshot date after the opening one, and the latest date of the data."""
    dates = sorted(set(snapshot_dates))
    chosen = dates[1:] if len(dates) > 1 else dates
    if latest not in chosen and (not chosen or latest > chosen[-1]):
        chosen.append(latest)
    return chosen


def as_of_frame(as_of_dates: Sequence[dt.date], snapshot_dates: Sequence[dt.date]) -> pd.DataFrame:
    """For each as-of date: the latest month-end snapshot on or before it, and those 3 and 12 months earlier."""
    snaps = sorted(set(snapshot_dates))
    rows = []
    for as_of in sorted(set(as_of_dates)):
        before = [d for d in snaps if d <= as_of]
        if not before:
            raise ValueError(f"no account snapshot on or before the as-of date {as_of}")
        snap = before[-1]

        def months_back(n: int, snap: dt.date = snap, before: list[dt.date] = before) -> dt.date:
            target = (pd.Timestamp(snap) - pd.DateOffset(months=n)).date()
            earlier = [d for d in before if d <= target]
            # With a shorter history, the window starts at the first snapshot.
            return earlier[-1] if earlier else before[0]

        rows.append({"as_of": as_of, "snap_date": snap, "start_3m": months_back(3), "start_6m": months_back(6),
                     "start_12m": months_back(12)})
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame


@dataclass
class Context:
    """Raw tables on one Ibis backend plus the as-of table."""

    tables: dict[str, ir.Table]
    as_of: ir.Table
    cache: dict[str, ir.Table] = field(default_factory=dict)
    as_of_rows: pd.DataFrame | None = None  # the as-of table's rows (as_of_frame), to compute a subset of dates

    @property
    def as_of_dates(self) -> list[dt.date]:
        if self.as_of_rows is None:
            raise ValueError("this context was built without its as-of rows")
        return list(self.as_of_rows["as_of"])

    def for_dates(self, dates: Sequence[dt.date]) -> Context:
        """The same raw tables with only some of the as-of dates (a context of its own, with its own cache).
        Every indicator of an as-of date depends on that date's row alone, so a subset computes the same rows."""
        wanted = set(dates)
        if wanted >= set(self.as_of_dates):
            return self
        rows = self.as_of_rows[self.as_of_rows["as_of"].isin(wanted)].reset_index(drop=True)  # type: ignore[index]
        return Context(tables=self.tables, as_of=_as_of_table(rows), as_of_rows=rows)

    def __getattr__(self, name: str) -> ir.Table:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    def windowed(self, table: ir.Table, date_column: str, window_days: int) -> ir.Table:
        """Rows of ``table`` paired with each as-of date they fall in: (as_of - window, as_of]."""
        a = self.as_of
        date = table[date_column]
        return table.join(a, [date <= a.as_of, date > a.as_of - days(window_days)])

    def up_to(self, table: ir.Table, date_column: str) -> ir.Table:
        """Rows of ``table`` paired with every as-of date on or after them (whole history)."""
        a = self.as_of
        return table.join(a, table[date_column] <= a.as_of)

    def branch_assets(self) -> ir.Table:
        """Total assets of each branch's clients at the as-of snapshot."""
        s, a = self.account_snapshots, self.as_of
        j = s.join(a, s.snapshot_date == a.snap_date).join(self.clients.select("client_id", "branch_id"),
                                                            "client_id")
        return j.group_by(["branch_id", "as_of"]).aggregate(branch_assets=j.total_assets.sum())

    def population(self) -> ir.Table:
        """Clients whose account is open at each as-of date, with their static attributes."""
        if "population" not in self.cache:
            c, a = self.clients, self.as_of
            joined = c.join(a, [c.opened_on <= a.as_of, c.closed_on.isnull() | (c.closed_on > a.as_of)])
            rate = self.commission_rate_in_force()
            joined = joined.left_join(rate, ["client_id", "as_of"])
            self.cache["population"] = joined.select(
                "client_id", "client_type", "branch_id", "broker_id", "opened_on",
                commission_rate=joined.rate_in_force.fill_null(joined.commission_rate),
                risk_level="risk_level", risk_assessed_on="risk_assessed_on", as_of="as_of", snap_date="snap_date",
                start_3m="start_3m", start_6m="start_6m", start_12m="start_12m",
            )
        return self.cache["population"]

    def commission_rate_in_force(self) -> ir.Table:
        """Per client with rate changes and as-of date: the rate in force then. It is the new rate of the last
        change on or before the as-of date, or, before the first change, that change's old rate (the clients
        table holds today's rate, which may come from a later change)."""
        ch, a = self.commission_rate_changes, self.as_of
        j = ch.join(a, ibis.literal(True))
        before = j.effective_on <= j.as_of
        # Order by date; two changes on one day count in the order they lowered the rate (rates are < 1).
        day = j.effective_on.cast("timestamp").epoch_seconds() / 86_400
        agg = j.group_by(["client_id", "as_of"]).aggregate(
            last_new=j.new_rate.argmax(day - j.new_rate, where=before),
            first_old=j.old_rate.argmin(day - j.old_rate, where=~before),
        )
        return agg.select("client_id", "as_of", rate_in_force=agg.last_new.fill_null(agg.first_old))

    def assets(self) -> ir.Table:
        """Per client and as-of: assets at the as-of snapshot and at the starts of the 3- and 12-month windows."""
        if "assets" not in self.cache:
            s, a = self.account_snapshots, self.as_of
            j = s.join(a, [s.snapshot_date <= a.snap_date, s.snapshot_date >= a.start_12m])
            in_3m = j.snapshot_date >= j.start_3m
            in_6m = j.snapshot_date >= j.start_6m
            agg = j.group_by(["client_id", "as_of"]).aggregate(
                assets=j.total_assets.max(where=j.snapshot_date == j.snap_date),
                cash=j.cash.max(where=j.snapshot_date == j.snap_date),
                market_value=j.market_value.max(where=j.snapshot_date == j.snap_date),
                first_12m=j.snapshot_date.min(),
                assets_first_12m=j.total_assets.argmin(j.snapshot_date),
                first_3m=j.snapshot_date.min(where=in_3m),
                assets_first_3m=j.total_assets.argmin(j.snapshot_date, where=in_3m),
                first_6m=j.snapshot_date.min(where=in_6m),
                assets_first_6m=j.total_assets.argmin(j.snapshot_date, where=in_6m),
            )
            self.cache["assets"] = agg
        return self.cache["assets"]


def _sources(raw_dir: Path, name: str, events_raw_dir: Path | None) -> list[str]:
    """The parquet files of one raw table: the raw file, and the events' rows of it when there are any (a
    complaints table there is whole, resolutions applied, and replaces the raw one)."""
    base = str(Path(raw_dir) / f"{name}.parquet")
    extra = Path(events_raw_dir) / f"{name}.parquet" if events_raw_dir is not None else None
    if extra is None or not extra.exists():
        return [base]
    return [str(extra)] if name == "complaints" else [base, str(extra)]


def duckdb_context(raw_dir: Path, as_of_dates: Sequence[dt.date] | None = None,
                   con: ibis.BaseBackend | None = None, memory_limit: str = DUCKDB_MEMORY_LIMIT,
                   events_raw_dir: Path | None = None, latest_at_least: dt.date | None = None,
                   threads: int = DUCKDB_THREADS) -> tuple[ibis.BaseBackend, Context]:
    """Open the raw parquet tables on DuckDB (with the client events' rows from ``events_raw_dir``) and build the
    context for the given (or default) as-of dates; the default latest date is at least ``latest_at_least``."""
    # DuckDB would take most of the machine's memory for its joins; cap it and let it spill to disk.
    con = con or ibis.duckdb.connect(memory_limit=memory_limit, preserve_insertion_order=False, threads=threads)
    tables = {}
    for name in RAW_NEEDED:
        if name in OPTIONAL_TABLES and not (Path(raw_dir) / f"{name}.parquet").exists():
            continue
        sources = _sources(raw_dir, name, events_raw_dir)
        # By column name: a raw file written before an optional column existed lacks it (then empty).
        tables[name] = (con.read_parquet(sources, table_name=f"raw_{name}", union_by_name=True) if len(sources) > 1
                        else con.read_parquet(sources[0], table_name=f"raw_{name}"))
    return con, build_context(con, _with_optional(tables), as_of_dates, latest_at_least)


def spark_context(raw_dir: Path, as_of_dates: Sequence[dt.date] | None = None,
                  master: str = DEFAULT_SPARK_MASTER) -> tuple[ibis.BaseBackend, Context]:
    """Open the raw parquet tables on Spark (the process's session for ``master``) and build the context."""
    from features.indicators.engine import spark_session

    con = ibis.pyspark.connect(spark_session(master))
    # Temporary views are global to the session: a name of its own keeps two contexts (two worlds) apart.
    token = uuid.uuid4().hex[:8]
    tables = {name: con.read_parquet(str(Path(raw_dir).resolve() / f"{name}.parquet"),
                                     table_name=f"raw_{name}_{token}")
              for name in RAW_NEEDED if name not in OPTIONAL_TABLES or (Path(raw_dir) / f"{name}.parquet").exists()}
    return con, build_context(con, _with_optional(tables), as_of_dates)


def _with_optional(tables: dict[str, ir.Table]) -> dict[str, ir.Table]:
    """Raw folders written before a table was added to the contract lack it: such tables are then empty."""
    for name in OPTIONAL_TABLES:
        if name not in tables:
            tables[name] = ibis.memtable(arrow_schema(RAW_TABLES[name]).empty_table())
    return tables


def open_context(engine: Engine, raw_dir: Path, as_of_dates: Sequence[dt.date] | None = None,
                 spark_master: str = DEFAULT_SPARK_MASTER, duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT,
                 events_raw_dir: Path | None = None, latest_at_least: dt.date | None = None,
                 duckdb_threads: int = DUCKDB_THREADS) -> tuple[ibis.BaseBackend, Context]:
    """The context on the chosen engine: DuckDB (a connection of its own) or Spark (the shared session)."""
    if engine == "spark":
        for name in RAW_NEEDED:
            if name not in OPTIONAL_TABLES and not (Path(raw_dir) / f"{name}.parquet").exists():
                raise FileNotFoundError(f"raw table {name} is missing in {raw_dir}")
        if events_raw_dir is not None and any(Path(events_raw_dir).glob("*.parquet")):
            raise ValueError("client events are merged by the DuckDB build only; build with --engine duckdb")
        return spark_context(raw_dir, as_of_dates, spark_master)
    if engine != "duckdb":
        raise ValueError(f"unknown compute engine {engine!r}; use one of {', '.join(ENGINES)}")
    return duckdb_context(raw_dir, as_of_dates, memory_limit=duckdb_memory_limit, events_raw_dir=events_raw_dir,
                          latest_at_least=latest_at_least, threads=duckdb_threads)


def build_context(con: ibis.BaseBackend, tables: dict[str, ir.Table],
                  as_of_dates: Sequence[dt.date] | None, latest_at_least: dt.date | None = None) -> Context:
    snaps = con.execute(tables["account_snapshots"].snapshot_date.name("d").as_table().distinct())["d"]
    snapshot_dates = sorted(pd.to_datetime(snaps).dt.date)
    if not snapshot_dates:
        raise ValueError("the raw data has no account snapshots; indicators need at least one month-end")
    if as_of_dates is None:
        latest = con.execute(tables["trades"].trade_date.max())
        latest = max(pd.Timestamp(latest).date() if latest is not None else snapshot_dates[-1], snapshot_dates[-1])
        if latest_at_least is not None:
            latest = max(latest, latest_at_least)
        as_of_dates = month_end_as_of_dates(snapshot_dates, latest)
    frame = as_of_frame(as_of_dates, snapshot_dates)
    return Context(tables=tables, as_of=_as_of_table(frame), as_of_rows=frame)


def _as_of_table(frame: pd.DataFrame) -> ir.Table:
    return ibis.memtable(frame, schema={"as_of": "date", "snap_date": "date", "start_3m": "date",
                                        "start_6m": "date", "start_12m": "date"})
