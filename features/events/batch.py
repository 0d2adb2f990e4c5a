"""The journal as raw tables, for the batch build: what ``crm features build`` merges with ``$CRM_HOME/raw``.

Transfers, trades and contacts of events are new rows of their raw tables, written to ``$CRM_HOME/events/raw``
and read by the build beside the raw files. A complaint resolved by an event changes a row that may be in the
raw data, so ``complaints`` is written there whole (raw rows and filed events, with every resolution applied)
and read instead of the raw file. Every table is checked against the raw contract on the way.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from features.events.journal import Journal
from features.raw.schema import table
from features.raw.store import read_table, write_table

ADDED_ROWS = {"cash_transfer": "cash_transfers", "trade": "trades", "contact": "contacts"}
REPLACED = "complaints"


def events_raw_dir(events_dir: Path) -> Path:
    return Path(events_dir) / "raw"


def _frame(name: str, bodies: list[dict]) -> pd.DataFrame:
    contract = table(name)
    frame = pd.DataFrame(bodies, columns=contract.column_names)
    for column in contract.columns:
        if column.type == "date":
            frame[column.name] = pd.to_datetime(frame[column.name])
        elif column.type.startswith("int"):
            frame[column.name] = frame[column.name].astype("int64")
        elif column.type == "float64":
            frame[column.name] = frame[column.name].astype("float64")
    return frame


def export_event_tables(events_dir: Path, raw_dir: Path) -> dict[str, int]:
    """Write the journal's rows as raw tables into ``events_dir/raw`` (replacing the previous export); returns
    rows per table. Nothing is written when the journal is empty."""
    out = events_raw_dir(events_dir)
    if not (Path(events_dir) / "events.db").exists():
        return {}
    rows = Journal(events_dir).all_rows()
    for stale in out.glob("*.parquet") if out.exists() else ():
        stale.unlink()
    if not rows:
        return {}
    counts: dict[str, int] = {}
    for kind, name in ADDED_ROWS.items():
        bodies = [r.body for r in rows if r.kind == kind]
        if bodies:
            write_table(out, name, _frame(name, bodies))
            counts[name] = len(bodies)
    filed = [{**r.body, "resolved_on": None} for r in rows if r.kind == "complaint_filed"]
    resolved = {int(r.body["complaint_id"]): r.body["resolved_on"] for r in rows if r.kind == "complaint_resolved"}
    if filed or resolved:
        base = read_table(raw_dir, REPLACED)
        if filed:
            added = _frame(REPLACED, filed).astype(base.dtypes.to_dict())
            complaints = pd.concat([base, added], ignore_index=True) if len(base) else added
        else:
            complaints = base
        if resolved:
            found = complaints["complaint_id"].map(resolved)
            complaints["resolved_on"] = pd.to_datetime(found).where(found.notna(), complaints["resolved_on"])
        write_table(out, REPLACED, complaints)
        counts[REPLACED] = len(filed) + len(resolved)
    return counts


def latest_event_date(events_dir: Path) -> dt.date | None:
    """The latest date of any accepted event (the build's latest as-of date is at least this, as the online
    as-of date is)."""
    if not (Path(events_dir) / "events.db").exists():
        return None
    found = Journal(events_dir).connection().execute("SELECT MAX(event_date) FROM journal").fetchone()[0]
    return dt.date.fromisoformat(found) if found else None
