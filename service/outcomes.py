"""Outcome capture: what happened to an action a decision offered, stored durably beside the audit log.

An outcome names the decision, the action, its status (attempted, reached, declined, accepted, not_reached), the
channel, who delivered it and when. The same decision, action and status sent again is stored once (the first
answer is 201, a repeat 200 with what was stored). Outcomes flow back: into the worker's contact history at once
(the contact policy reads them), into other workers' at their next reload check, and as raw ``contacts`` rows
through ``crm outcomes export`` for the next feature build.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import shutil
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa

from rules.catalogue import CHANNELS
from service.audit import AuditLog
from service.contact_history import CAMPAIGN_PREFIX, STATUS_TO_CONTACT_OUTCOME, Contact, ContactHistory
from service.db import outcomes as outcomes_table
from service.errors import ApiError, DecisionNotFoundError

STATUSES = ("attempted", "reached", "declined", "accepted", "not_reached")
# The one outcome a contact row keeps when an action has several (a call attempted, then reached, then accepted).
_STATUS_WEIGHT = {"accepted": 4, "declined": 3, "reached": 2, "not_reached": 1, "attempted": 0}
# Done: the action needs no more work today (the queue drops it).
DONE_STATUSES = frozenset({"reached", "declined", "accepted"})
CLOCK_SKEW = dt.timedelta(minutes=5)


class ActionNotOfferedError(ApiError):
    def __init__(self, decision_id: str, action: str, offered: list[str]) -> None:
        listed = ", ".join(offered) or "none"
        super().__init__("action_not_offered", f"decision {decision_id} did not offer {action!r}; it offered: {listed}")


class OutcomeTimeError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__("outcome_time_invalid", message)


@dataclass(frozen=True)
class Offered:
    """What outcomes are checked against: the decision's client, time and offered actions (with channels)."""

    client_id: str
    decided_at: datetime
    actions: dict[str, str]  # action → channel


class Outcomes:
    """Stores and reads outcomes; keeps the worker's contact history current."""

    def __init__(self, engine: sa.Engine, audit: AuditLog, contacts: ContactHistory | None, timezone: str) -> None:
        self.engine = engine
        self.audit = audit
        self.contacts = contacts
        self.zone = ZoneInfo(timezone)
        self._offered: OrderedDict[str, Offered] = OrderedDict()
        self._lock = threading.Lock()
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        cols = [c.name for c in outcomes_table.columns]
        quoted = ", ".join(f'"{c}"' for c in cols)
        self._columns = cols
        self._insert = (f"INSERT INTO outcomes ({quoted}) VALUES ({', '.join([mark] * len(cols))}) "
                        "ON CONFLICT (decision_id, action, status) DO NOTHING")
        self.seen_until = ""  # recorded_at of the newest outcome this worker has taken into its contact history
        self._writes: collections.deque[tuple[dict, Future]] = collections.deque()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="outcome-writer", daemon=True)
        self._thread.start()

    # recording ------------------------------------------------------------------------------------------

    def offered(self, decision_id: str) -> Offered:
        hit = self._offered.get(decision_id)
        if hit is not None:
            return hit
        row = self.audit.get(decision_id)  # queued records first, then the database
        if row is None:
            raise DecisionNotFoundError(decision_id)
        response = row["response"] if isinstance(row["response"], dict) else json.loads(row["response"])
        found = Offered(row["client_id"], datetime.fromisoformat(row["decided_at"]),
                        {a["action"]: a["channel"] for a in response.get("next_best_actions") or []})
        with self._lock:
            self._offered[decision_id] = found
            if len(self._offered) > 50_000:
                self._offered.popitem(last=False)
        return found

    def prepare(self, decision_id: str, action: str, status: str, channel: str | None, by: str, at: datetime,
                key_id: str) -> dict:
        """The row to store, after every check: raises the API's errors for an unknown decision, an action it did
        not offer, a time before the decision or in the future, and an unknown status or channel."""
        if status not in STATUSES:
            raise ApiError("request_invalid", f"status {status!r} is not one of {', '.join(STATUSES)}")
        if channel is not None and channel not in CHANNELS:
            raise ApiError("request_invalid", f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
        offered = self.offered(decision_id)
        if action not in offered.actions:
            raise ActionNotOfferedError(decision_id, action, list(offered.actions))
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.zone)
        now = datetime.now(UTC)
        if at > now + CLOCK_SKEW:
            raise OutcomeTimeError(f"at {at.isoformat()} is in the future (now {now.isoformat(timespec='seconds')})")
        if at < offered.decided_at:
            raise OutcomeTimeError(f"at {at.isoformat()} is before the decision was made "
                                   f"({offered.decided_at.isoformat()})")
        return {"decision_id": decision_id, "action": action, "status": status, "client_id": offered.client_id,
                "channel": channel or offered.actions[action], "by": by,
                "at": at.isoformat(timespec="seconds"), "recorded_at": now.isoformat(timespec="microseconds"),
                "key_id": key_id}

    def submit(self, row: dict) -> Future:
        """Hand a prepared row to the writer; the future gives (stored row, new) once it is committed."""
        future: Future = Future()
        self._writes.append((row, future))
        self._wake.set()
        return future

    def finish(self, row: dict, inserted: bool) -> tuple[dict, bool]:
        if inserted:
            self._remember(row)
            return row, True
        return self.get(row["decision_id"], row["action"], row["status"]) or row, False

    def record(self, decision_id: str, action: str, status: str, channel: str | None, by: str, at: datetime,
               key_id: str) -> tuple[dict, bool]:
        """Store one outcome and wait until it is committed; returns (the stored outcome, whether it is new)."""
        row = self.prepare(decision_id, action, status, channel, by, at, key_id)
        return self.finish(row, self.submit(row).result(timeout=60))

    # the writer: every outcome waiting is committed in one transaction, and only then answered ------------

    def _run(self) -> None:
        while not self._closing or self._writes:
            self._wake.wait(0.5)
            self._wake.clear()
            batch = []
            while self._writes and len(batch) < 1000:
                batch.append(self._writes.popleft())
            if not batch:
                continue
            try:
                with self.engine.begin() as conn:
                    inserted = [conn.exec_driver_sql(self._insert, tuple(row[c] for c in self._columns)).rowcount > 0
                                for row, _ in batch]
            except Exception as e:  # noqa: BLE001 - the caller is answered with the failure; nothing is half-stored
                for _, future in batch:
                    future.set_exception(e)
                continue
            for (_, future), new in zip(batch, inserted, strict=True):
                future.set_result(new)

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(30)

    def _remember(self, row: dict) -> None:
        if self.contacts is not None:
            self.contacts.add(row["client_id"], _contact(row, self.zone))

    # reading --------------------------------------------------------------------------------------------

    def get(self, decision_id: str, action: str, status: str) -> dict | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(outcomes_table).where(
                outcomes_table.c.decision_id == decision_id, outcomes_table.c.action == action,
                outcomes_table.c.status == status)).first()
        return dict(found._mapping) if found is not None else None

    def for_decision(self, decision_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(outcomes_table).where(outcomes_table.c.decision_id == decision_id)
                                .order_by(outcomes_table.c.at, outcomes_table.c.recorded_at)).all()
        return [dict(r._mapping) for r in rows]

    def for_decisions(self, decision_ids: list[str]) -> list[dict]:
        out: list[dict] = []
        with self.engine.connect() as conn:
            for k in range(0, len(decision_ids), 500):
                part = decision_ids[k:k + 500]
                out += [dict(r._mapping) for r in conn.execute(
                    sa.select(outcomes_table).where(outcomes_table.c.decision_id.in_(part))).all()]
        return out

    def since(self, recorded_after: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(outcomes_table).where(outcomes_table.c.recorded_at > recorded_after)
                                .order_by(outcomes_table.c.recorded_at)).all()
        return [dict(r._mapping) for r in rows]

    def all(self) -> pd.DataFrame:
        return all_outcomes(self.engine)

    def catch_up(self, recorded_after: str | None = None) -> int:
        """Take outcomes recorded by any worker after ``recorded_after`` (default: what this worker saw last)
        into the contact history; returns how many."""
        rows = self.since(self.seen_until if recorded_after is None else recorded_after)
        for row in rows:
            if self.contacts is not None:
                self.contacts.add(row["client_id"], _contact(row, self.zone))
            self.seen_until = max(self.seen_until, row["recorded_at"])
        return len(rows)


def all_outcomes(engine: sa.Engine) -> pd.DataFrame:
    """Every stored outcome, one row each."""
    with engine.connect() as conn:
        return pd.read_sql(sa.select(outcomes_table), conn)


def _contact(row: dict, zone: ZoneInfo) -> Contact:
    on = datetime.fromisoformat(row["at"]).astimezone(zone).date()
    return Contact(on, row["channel"], row["action"], STATUS_TO_CONTACT_OUTCOME[row["status"]])


def export_contacts(outcomes: pd.DataFrame, raw_dir: Path, out_dir: Path, timezone: str,
                    recorded_after: str | None = None) -> dict:
    """Write every raw table of ``raw_dir`` into ``out_dir`` with the outcomes appended to ``contacts`` (one row
    per decision and action: its most telling status), ready for ``crm data import out_dir``."""
    from features.raw.schema import CONTACT_CHANNELS

    zone = ZoneInfo(timezone)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(raw_dir.glob("*.parquet")):
        if path.name != "contacts.parquet":
            shutil.copyfile(path, out_dir / path.name)
    contacts = pq.read_table(raw_dir / "contacts.parquet").to_pandas()
    clients = pq.read_table(raw_dir / "clients.parquet", columns=["client_id", "broker_id"]).to_pandas()
    brokers = set(pq.read_table(raw_dir / "brokers.parquet", columns=["broker_id"]).column("broker_id").to_pylist())
    broker_of = dict(zip(clients["client_id"], clients["broker_id"], strict=True))
    rows = outcomes.copy()
    if recorded_after is not None and len(rows):
        rows = rows[rows["recorded_at"] > recorded_after]
    rows = rows[rows["client_id"].isin(broker_of.keys()) & rows["channel"].isin(CONTACT_CHANNELS)]
    if len(rows):
        rows = rows.assign(weight=rows["status"].map(_STATUS_WEIGHT)).sort_values(["decision_id", "action", "weight"])
        rows = rows.groupby(["decision_id", "action"], as_index=False).last()
    start = int(contacts["contact_id"].max()) + 1 if len(contacts) else 1
    added = pd.DataFrame({
        "contact_id": range(start, start + len(rows)),
        "client_id": rows["client_id"].tolist(),
        "broker_id": [b if b in brokers else broker_of[c] for b, c in zip(rows["by"], rows["client_id"], strict=True)],
        "contact_date": [datetime.fromisoformat(a).astimezone(zone).date() for a in rows["at"]],
        "channel": rows["channel"].tolist(),
        "outcome": [STATUS_TO_CONTACT_OUTCOME[s] for s in rows["status"]],
    })
    if "campaign" in contacts.columns:
        added["campaign"] = [f"{CAMPAIGN_PREFIX}{a}" for a in rows["action"]]
    if "action" in contacts.columns:  # the raw action column lists the retention actions the contract knows
        from features.raw import schema

        known = set(getattr(schema, "RETENTION_ACTIONS", ()))
        added["action"] = [a if a in known else None for a in rows["action"]]
    for column in contacts.columns:
        if column not in added.columns:
            added[column] = None
    merged = pd.concat([contacts, added[contacts.columns].astype(contacts.dtypes.to_dict(), errors="ignore")],
                       ignore_index=True) if len(added) else contacts
    merged.to_parquet(out_dir / "contacts.parquet", index=False)
    return {"outcomes": len(outcomes), "contacts_added": len(added), "contacts": len(merged),
            "out": str(out_dir)}
