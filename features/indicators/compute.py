"""Computes every indicator family at every as-of date and writes one parquet table per feature view."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.indicators import (
    account_info,
    client_category,
    client_feedback,
    client_flow,
    client_value,
    risk_preference,
)
from features.indicators.context import DUCKDB_MEMORY_LIMIT, DUCKDB_THREADS, Context, build_context, open_context
from features.indicators.definitions import ENTITY_KEY, Family, Indicator
from features.indicators.engine import DEFAULT_SPARK_MASTER, Engine
from features.indicators.organisation import (
    BRANCH_INDICATORS,
    BROKER_INDICATORS,
    branch_indicators,
    broker_indicators,
)
from features.raw.store import replace_directory

TIMEZONE = "Asia/Shanghai"
CLIENT_FAMILIES: dict[Family, ModuleType] = {
    Family.CLIENT_CATEGORY: client_category,
    Family.CLIENT_VALUE: client_value,
    Family.ACCOUNT_INFO: account_info,
    Family.CLIENT_FEEDBACK: client_feedback,
    Family.CLIENT_FLOW: client_flow,
    Family.RISK_PREFERENCE: risk_preference,
}


@dataclass(frozen=True)
class View:
    """One feature view: a family's indicators for one entity, stored as one offline table."""

    name: str
    family: Family
    entity: str
    indicators: tuple[Indicator, ...]

    @property
    def key(self) -> str:
        return ENTITY_KEY[self.entity]


def views() -> list[View]:
    """The feature views, one per family, in catalog order."""
    out = [View(family.value, family, "client", tuple(module.INDICATORS)) for family, module in CLIENT_FAMILIES.items()]
    out.append(View(Family.BROKER_MANAGEMENT.value, Family.BROKER_MANAGEMENT, "broker", tuple(BROKER_INDICATORS)))
    out.append(View(Family.BRANCH.value, Family.BRANCH, "branch", tuple(BRANCH_INDICATORS)))
    return out


def catalog() -> list[Indicator]:
    """Every indicator, in view order."""
    return [ind for view in views() for ind in view.indicators]


def view_path(offline_dir: Path, view: str) -> Path:
    return Path(offline_dir) / f"{view}.parquet"


def with_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """Feast's event timestamp: the as-of date at midnight, Asia/Shanghai (data of that day are included).

    Stored in microseconds: Spark (Feast's Spark offline store) refuses parquet timestamps in nanoseconds."""
    stamp = pd.to_datetime(frame["as_of"]).dt.tz_localize(TIMEZONE).dt.as_unit("us")
    frame.insert(2, "event_timestamp", stamp)
    frame.insert(3, "created_timestamp", stamp)
    return frame


def _execute(con: ibis.BaseBackend, expr: ir.Table, view: View) -> pd.DataFrame:
    frame = con.execute(expr.order_by(["as_of", view.key]))
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    names = [view.key, "as_of", *(i.name for i in view.indicators)]
    missing = set(names) - set(frame.columns)
    if missing:
        raise RuntimeError(f"view {view.name} did not compute {sorted(missing)}")
    frame = frame[names]
    for ind in view.indicators:
        if ind.type == "float64":
            frame[ind.name] = frame[ind.name].astype("float64")
        elif ind.type == "int64":
            frame[ind.name] = frame[ind.name].astype("int64")
        elif ind.type == "bool":
            frame[ind.name] = frame[ind.name].astype("bool")
    return frame


def compute_views(con: ibis.BaseBackend, ctx: Context, sink: Callable[[str, pd.DataFrame], None],
                  progress: Callable[[str], None] | None = None) -> None:
    """Compute every view and hand each frame (entity key, as_of, indicators) to ``sink`` as soon as it is done,
    keeping only the few client columns the broker and branch views need."""
    slim: pd.DataFrame | None = None
    for view in views():
        started = time.perf_counter()
        if view.entity == "client":
            frame = _execute(con, CLIENT_FAMILIES[view.family].compute(ctx), view)
            keep = [c for c in ("total_assets", "return_12m") if c in frame.columns]
            if keep:
                part = frame[["client_id", "as_of", *keep]]
                slim = part if slim is None else slim.merge(part, on=["client_id", "as_of"])
        else:
            build = broker_indicators if view.entity == "broker" else branch_indicators
            frame = _execute(con, build(ctx, ibis.memtable(slim)), view)
        sink(view.name, frame)
        if progress:
            progress(f"{view.name}: {len(frame):,} rows in {time.perf_counter() - started:.1f}s")
        del frame


def compute_frames(con: ibis.BaseBackend, ctx: Context,
                   progress: Callable[[str], None] | None = None) -> dict[str, pd.DataFrame]:
    """Every view as a frame, all in memory (for small data and tests)."""
    frames: dict[str, pd.DataFrame] = {}
    compute_views(con, ctx, frames.__setitem__, progress)
    return frames


# Client rows times as-of dates computed in one pass. The joins to the as-of dates grow with both: a million-client
# world computed in one pass needed about 20 GB; a pass of this size stays within a few GB whatever the world.
CLIENT_DATES_PER_PASS = 2_000_000


def _arrow_schema(view: View):
    """The offline table's columns: key, as-of date, Feast's timestamps (microseconds), indicators by type."""
    import pyarrow as pa

    kinds = {"float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_(), "string": pa.string()}
    stamp = pa.timestamp("us", tz=TIMEZONE)
    return pa.schema([(view.key, pa.string()), ("as_of", pa.date32()), ("event_timestamp", stamp),
                      ("created_timestamp", stamp), *((i.name, kinds[i.type]) for i in view.indicators)])


def as_of_passes(dates: Sequence[dt.date], clients: int, per_pass: int = CLIENT_DATES_PER_PASS
                 ) -> list[list[dt.date]]:
    """Consecutive groups of as-of dates, each covering at most ``per_pass`` client-dates (at least one date)."""
    size = max(1, per_pass // max(clients, 1))
    ordered = sorted(dates)
    return [ordered[k:k + size] for k in range(0, len(ordered), size)]


def compute_indicators(raw_dir: Path, offline_dir: Path, as_of_dates: Sequence[dt.date] | None = None,
                       progress: Callable[[str], None] | None = None, engine: Engine = "duckdb",
                       spark_master: str = DEFAULT_SPARK_MASTER,
                       duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT, duckdb_threads: int = DUCKDB_THREADS,
                       client_dates_per_pass: int = CLIENT_DATES_PER_PASS, events_raw_dir: Path | None = None,
                       latest_at_least: dt.date | None = None) -> dict[str, int]:
    """Compute all views on ``engine`` (DuckDB in process, or Spark at ``spark_master``), writing each as it is
    done, and swap them into ``offline_dir`` at once; returns rows per view. ``events_raw_dir`` holds the client
    events' rows of the raw tables (merged with ``raw_dir``); the latest as-of date is at least
    ``latest_at_least`` (the latest event's date).

    The as-of dates are computed in passes of at most ``client_dates_per_pass`` client-dates (every indicator of
    an as-of date depends on that date alone), each pass appended to the views' parquet files: memory is bounded
    by one pass, not by the world. The tables are the same as from one pass, in the same order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    offline_dir = Path(offline_dir)
    offline_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".offline-", dir=offline_dir.parent))
    rows: dict[str, int] = {}
    writers: dict[str, pq.ParquetWriter] = {}
    by_name = {v.name: v for v in views()}

    def write(name: str, frame: pd.DataFrame) -> None:
        schema = _arrow_schema(by_name[name])
        table = pa.Table.from_pandas(with_timestamps(frame), schema=schema, preserve_index=False)
        if name not in writers:
            writers[name] = pq.ParquetWriter(view_path(staging, name), table.schema)
        writers[name].write_table(table)
        rows[name] = rows.get(name, 0) + len(frame)

    try:
        con, ctx = open_context(engine, raw_dir, as_of_dates, spark_master, duckdb_memory_limit,
                                events_raw_dir=events_raw_dir, latest_at_least=latest_at_least,
                                duckdb_threads=duckdb_threads)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        clients = int(con.execute(ctx.clients.count()))
        passes = as_of_passes(ctx.as_of_dates, clients, client_dates_per_pass)
        for k, group in enumerate(passes, start=1):
            if progress and len(passes) > 1:
                progress(f"as-of dates {group[0]} to {group[-1]} (pass {k} of {len(passes)})")
            compute_views(con, ctx.for_dates(group), write, progress)
        for writer in writers.values():
            writer.close()
        writers.clear()
        replace_directory(staging, offline_dir)
    except BaseException:
        for writer in writers.values():
            writer.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        # The Spark session is the process's, shared with Feast and batch scoring: it ends with the process.
        if engine == "duckdb":
            con.disconnect()
    return rows


__all__ = ["build_context", "catalog", "compute_frames", "compute_indicators", "compute_views", "views"]
