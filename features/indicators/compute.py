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

from features.indicators import account_info, client_category, client_feedback, client_flow, client_value
from features.indicators.context import Context, build_context, duckdb_context
from features.indicators.definitions import ENTITY_KEY, Family, Indicator
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
    """The feature views, one per family (SPEC §4), in catalog order."""
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
    """Feast's event timestamp: the as-of date at midnight, Asia/Shanghai (data of that day are included)."""
    stamp = pd.to_datetime(frame["as_of"]).dt.tz_localize(TIMEZONE)
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


def compute_frames(con: ibis.BaseBackend, ctx: Context,
                   progress: Callable[[str], None] | None = None) -> dict[str, pd.DataFrame]:
    """Every view as a frame (entity key, as_of, indicators)."""
    frames: dict[str, pd.DataFrame] = {}
    client_views = [v for v in views() if v.entity == "client"]
    for view in client_views:
        started = time.perf_counter()
        frames[view.name] = _execute(con, CLIENT_FAMILIES[view.family].compute(ctx), view)
        if progress:
            progress(f"{view.name}: {len(frames[view.name]):,} rows in {time.perf_counter() - started:.1f}s")
    needed = ["client_id", "as_of", "total_assets", "commission_90d", "commission_365d", "net_flow_90d",
              "return_12m"]
    merged = frames[Family.CLIENT_CATEGORY.value][["client_id", "as_of", "total_assets"]]
    for name in (Family.CLIENT_VALUE.value, Family.CLIENT_FLOW.value):
        cols = [c for c in needed if (c in frames[name].columns and c not in merged.columns) or c in ("client_id",
                                                                                                     "as_of")]
        merged = merged.merge(frames[name][cols], on=["client_id", "as_of"])
    clients = ibis.memtable(merged)
    for view, fn in ((views()[-2], broker_indicators), (views()[-1], branch_indicators)):
        started = time.perf_counter()
        frames[view.name] = _execute(con, fn(ctx, clients), view)
        if progress:
            progress(f"{view.name}: {len(frames[view.name]):,} rows in {time.perf_counter() - started:.1f}s")
    return frames


def compute_indicators(raw_dir: Path, offline_dir: Path, as_of_dates: Sequence[dt.date] | None = None,
                       progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Compute all views on DuckDB and swap them into ``offline_dir`` at once; returns rows per view."""
    con, ctx = duckdb_context(raw_dir, as_of_dates)
    try:
        frames = compute_frames(con, ctx, progress)
    finally:
        con.disconnect()
    return write_views(frames, offline_dir)


def write_views(frames: dict[str, pd.DataFrame], offline_dir: Path) -> dict[str, int]:
    offline_dir = Path(offline_dir)
    offline_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".offline-", dir=offline_dir.parent))
    try:
        for name, frame in frames.items():
            with_timestamps(frame.copy()).to_parquet(view_path(staging, name), index=False)
        replace_directory(staging, offline_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: len(frame) for name, frame in frames.items()}


__all__ = ["build_context", "catalog", "compute_frames", "compute_indicators", "views"]
