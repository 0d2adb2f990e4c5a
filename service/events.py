"""Client events: intake into the journal, the applier, and event-triggered alerts.

Intake (in every API worker) checks each event against the raw contract (the request model) and against what the
raw tables know (the client, the stock, the broker, the branch), refuses dates after today, and stores the batch in
the journal; it never waits for the online store, so events keep being accepted while the store is down. The
applier runs in one process of its own beside the API workers (`crm events apply`, which `crm serve` starts; see
``CRM_EVENTS_APPLIER``): every ``CRM_EVENTS_APPLY_INTERVAL_MS`` it applies pending events (the journal's lock lets
one process at a time do it) and then evaluates the ruleset's event-triggered tables for each touched client one of
whose indicators those tables read has changed, with the indicators before and after: an alert there after and not
before is new. New alerts are audited like decisions and stored with the client's broker and branch, where the
work queue and the alert stream read them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from features.events.apply import FRESH_VIEWS, Applied, EventApplier
from features.events.contract import _Event
from features.events.fresh import FRESH_INDICATORS
from features.events.journal import Journal, JournalUnavailable
from features.store.online_reader import OnlineStoreUnavailable
from service import metrics
from service.audit import new_decision_id
from service.db import alerts
from service.decisions import Asked, compute_many
from service.errors import ApiError

if TYPE_CHECKING:
    from service.runtime import Runtime

log = logging.getLogger("crm.events")
EVENTS_KEY = "events"  # the audit records of event-triggered evaluations name this instead of an API key
# Events applied in one round at most: a client's pending events are applied together (its indicators computed
# and written once), so a backlog drains in few, large rounds; a round of this size takes about a second.
APPLY_BATCH = 20_000
TRIGGER_READ_ATTEMPTS = 20


@dataclass(frozen=True)
class Owner:
    broker_id: str
    branch_id: str


class References:
    """What the raw tables know, to refuse an event about a client, stock, broker or branch that does not exist."""

    def __init__(self, raw_dir) -> None:
        import pyarrow.parquet as pq

        clients = pq.read_table(raw_dir / "clients.parquet", columns=["client_id", "broker_id", "branch_id"])
        self.owners = {c: Owner(b, br) for c, b, br in zip(*(clients.column(n).to_pylist()
                                                             for n in clients.column_names), strict=True)}
        self.known = {
            "client_id": set(self.owners),
            "security_id": set(pq.read_table(raw_dir / "securities.parquet", columns=["security_id"])
                               .column(0).to_pylist()),
            "broker_id": set(pq.read_table(raw_dir / "brokers.parquet", columns=["broker_id"]).column(0).to_pylist()),
            "branch_id": set(pq.read_table(raw_dir / "branches.parquet", columns=["branch_id"]).column(0).to_pylist()),
        }

    def problems(self, events: list[_Event], today: dt.date) -> list[dict[str, str]]:
        found = []
        for k, event in enumerate(events):
            fields = event.__dict__  # the event's values (a missing attribute costs pydantic an exception)
            for field, known in self.known.items():
                value = fields.get(field)
                if value is not None and value not in known:
                    found.append({"field": f"body.events.{k}.{field}",
                                  "problem": f"{value!r} is not in the raw table of {field.removesuffix('_id')}s"})
            if event.date > today:
                found.append({"field": f"body.events.{k}.{_date_field(event)}",
                              "problem": f"{event.date} is after today ({today}, Asia/Shanghai)"})
        return found


def _date_field(event: _Event) -> str:
    from features.events.contract import KINDS

    return KINDS[event.kind][1]  # type: ignore[attr-defined]


class EventsRejected(ApiError):
    def __init__(self, fields: list[dict[str, str]]) -> None:
        self.fields = fields
        super().__init__("request_invalid", "; ".join(f"{f['field']}: {f['problem']}" for f in fields))


class EventService:
    """The events side of one API worker (or of `crm events consume`)."""

    def __init__(self, runtime: Runtime, run_applier: bool = True) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.zone = ZoneInfo(self.settings.timezone)
        self.journal = Journal(self.settings.events_dir)
        self._references: References | None = None
        self._applier: EventApplier | None = None
        self.online_ok: bool | None = None  # None: nothing applied or tried yet
        self.last_error: str | None = None
        self.applied_events = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-applier", daemon=True) if run_applier else None
        if self._thread is not None:
            self._thread.start()

    # intake -------------------------------------------------------------------------------------------------

    def references(self) -> References:
        if self._references is None:
            try:
                self._references = References(self.settings.raw_dir)
            except FileNotFoundError as e:
                raise ApiError("not_ready", f"the raw tables are not there ({e}); events cannot be checked") from e
        return self._references

    def today(self) -> dt.date:
        return dt.datetime.now(self.zone).date()

    def check(self, events: list[_Event]) -> None:
        """Raise EventsRejected naming every event field the raw tables do not know or a date after today."""
        problems = self.references().problems(events, self.today())
        if problems:
            raise EventsRejected(problems)

    def accept(self, events: list[_Event], source: str) -> dict:
        """Check and store a batch; the intake's answer. Raises EventsRejected or ApiError(events_not_stored)."""
        self.check(events)
        try:
            appended = self.journal.append(events, source)
        except JournalUnavailable as e:
            raise ApiError(e.code, str(e)) from e
        metrics.EVENTS.labels("accepted").inc(len(appended.accepted))
        metrics.EVENTS.labels("duplicate").inc(len(appended.duplicates))
        self._wake.set()
        return {"accepted": len(appended.accepted), "duplicates": appended.duplicates,
                "journal_position": appended.last_seq, "backlog": self.journal.backlog(),
                "online_store": "unavailable" if self.journal.failure() is not None else "available"}

    # applying -----------------------------------------------------------------------------------------------

    def applier(self) -> EventApplier | None:
        if self._applier is None:
            from features.store.feature_store import latest_as_of, open_store
            from features.store.online_writer import OnlineWriter

            try:
                store = open_store(self.settings.features_dir, self.settings.online_store)
                writer = OnlineWriter(store, FRESH_VIEWS)
                self._applier = EventApplier(self.journal, self.settings.raw_dir, writer,
                                             latest_as_of(self.settings.features_dir), self.settings.timezone)
            except Exception as e:  # noqa: BLE001 - features not built or applied yet: events wait in the journal
                self.last_error = f"online store not ready for events: {e}"
                return None
        return self._applier

    def apply_pending(self) -> Applied | None:
        """Apply one round of pending events and raise their alerts; None when nothing was pending."""
        applier = self.applier()
        if applier is None:
            raise OnlineStoreUnavailable(self.last_error or "online store not ready")
        applied = applier.apply_once(APPLY_BATCH)
        if applied is None:
            return None
        self.applied_events += len(applied.rows)
        metrics.EVENTS.labels("applied").inc(len(applied.rows))
        try:
            self.raise_alerts(applied)
        except Exception:  # the events are applied; a failing evaluation must not apply them again
            log.exception("event-triggered rules failed for %s clients", len(applied.after))
        return applied

    def _run(self) -> None:
        interval = self.settings.events_apply_interval_ms / 1000
        failures = 0
        while not self._stop.is_set():
            try:
                applied = self.apply_pending()
                if (applied is not None or self.online_ok is not True) and self.journal.failure() is not None:
                    self._note(None)  # back (this worker or another noted the failure)
                self.online_ok, self.last_error, failures = True, None, 0
                if applied is not None:
                    continue  # more may be pending: drain before sleeping
            except OnlineStoreUnavailable as e:
                failures += 1
                if self.online_ok is not False:
                    log.warning("client events kept in the journal until the online store is back: %s", e)
                    self._note(str(e))
                self.online_ok, self.last_error = False, str(e)
            except Exception as e:  # a boundary: the thread must keep applying
                failures += 1
                self.last_error = str(e)
                log.exception("applying client events failed")
            self._wake.wait(min(1.0, interval * (1 + failures)))
            self._wake.clear()

    def _note(self, error: str | None) -> None:
        try:
            self.journal.note_failure(error)
        except Exception:  # the journal busy: the next round notes it
            log.debug("could not note the applier's state", exc_info=True)

    def wait_applied(self, position: int, timeout_s: float) -> bool:
        """Wait until the journal is applied up to ``position`` (for the broker consumer's acknowledgements)."""
        deadline = time.monotonic() + timeout_s
        while self.journal.applied_seq() < position:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.01)
        return True

    # triggers -----------------------------------------------------------------------------------------------

    def raise_alerts(self, applied: Applied) -> list[dict]:
        served = self.runtime.served
        if served is None or not served.ruleset.spec.event_triggered or not applied.after or served.reader is None:
            return []
        clients = self._changed_for_triggers(served, applied)
        if not clients:
            return []
        read = None
        for attempt in range(TRIGGER_READ_ATTEMPTS):  # a busy store is retried: an alert must not be skipped
            try:
                read = served.reader.read_many(clients)
                break
            except OnlineStoreUnavailable as e:
                if attempt == TRIGGER_READ_ATTEMPTS - 1:
                    log.error("event-triggered rules not evaluated for %s clients, online store unreadable: %s",
                              len(clients), e)
                    return []
                time.sleep(0.02 * (attempt + 1))
        full = {c: r[0] for c, r in zip(clients, read, strict=True) if r is not None}
        clients = [c for c in clients if c in full]
        after = [Asked(c, {**full[c], **applied.after[c]}, applied.as_of.isoformat()) for c in clients]
        before = [Asked(c, {**full[c], **applied.before[c]}, None) for c in clients]
        decided_after = compute_many(served, after)
        decided_before = compute_many(served, before)
        triggered = served.ruleset.spec.event_triggered
        events_by_client: dict[str, list[str]] = {}
        for row in applied.rows:
            events_by_client.setdefault(row.client_id, []).append(row.event_id)
        try:
            owners = self.references().owners
        except ApiError:
            owners = {}
        model_terms = set(served.vocabulary.model_sources())
        raised: list[dict] = []
        for asked, (response, inputs), (_, inputs_before) in zip(after, decided_after, decided_before, strict=True):
            new = self.new_alerts(served.ruleset, inputs_before, inputs, model_terms, triggered)
            if not new:
                continue
            decision_id = new_decision_id()
            decided_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            response = {"decision_id": decision_id, "decided_at": decided_at, **response, "latency_ms": 0.0}
            request = {"trigger": "client_events", "event_ids": events_by_client.get(asked.client_id, [])}
            self.runtime.audit.record({
                "decision_id": decision_id, "decided_at": decided_at, "key_id": EVENTS_KEY,
                "client_id": asked.client_id, "degraded": response["degraded"], "latency_ms": 0.0,
                "ruleset_version": response["versions"]["ruleset"],
                "model_versions": json.dumps(response["versions"]["models"]), "request": json.dumps(request),
                "features": json.dumps(asked.values, ensure_ascii=False, default=str),
                "rule_inputs": json.dumps(inputs, ensure_ascii=False, default=str),
                "response": json.dumps(response, ensure_ascii=False, default=str),
            })
            owner = owners.get(asked.client_id)
            for alert in new:
                raised.append({"alert_id": new_decision_id(), "raised_at": decided_at, "client_id": asked.client_id,
                               "broker_id": owner.broker_id if owner else None,
                               "branch_id": owner.branch_id if owner else None, "alert": alert,
                               "decision_id": decision_id, "tier": response["tier"],
                               "event_ids": json.dumps(request["event_ids"]), "as_of": applied.as_of.isoformat(),
                               "accepted_at": None})
        if raised:
            with self.runtime.db.begin() as conn:
                conn.execute(alerts.insert(), [{k: v for k, v in r.items() if k != "accepted_at"} for r in raised])
            metrics.ALERTS.inc(len(raised))
        return raised

    @staticmethod
    def _changed_for_triggers(served, applied: Applied) -> list[str]:
        """The touched clients for whom an indicator an event-triggered table reads has changed (every touched
        client when such a table reads no indicator directly, only model outputs or earlier tables)."""
        sources = served.vocabulary.indicator_sources()
        watched = {sources[name].split(":", 1)[1] for table in served.ruleset.spec.event_triggered
                   for name in served.ruleset.spec.table(table).inputs if name in sources}
        fresh = {name for names in FRESH_INDICATORS.values() for name in names}
        if not watched & fresh:
            return sorted(applied.after)
        return sorted(c for c, after in applied.after.items()
                      if any(after.get(n) != applied.before.get(c, {}).get(n) for n in watched))

    @classmethod
    def new_alerts(cls, ruleset, before: dict, after: dict, model_terms: set[str], tables: tuple[str, ...]
                   ) -> list[str]:
        """The alerts of the event-triggered ``tables`` that the events raised: there with the rule inputs after
        them and not before. The client's standing (the tier, from the models' scores) counts as it was before the
        events too: a large withdrawal lowers a client's predicted value, and a valuable client demoted by the very
        withdrawal an alert is about must still be alerted."""
        now = cls._triggered_alerts(ruleset, after, tables)
        standing = {**after, **{t: before[t] for t in model_terms if t in before}}
        now += [a for a in cls._triggered_alerts(ruleset, standing, tables) if a not in now]
        already = set(cls._triggered_alerts(ruleset, before, tables))
        return [a for a in now if a not in already]

    @staticmethod
    def _triggered_alerts(ruleset, inputs: dict, tables: tuple[str, ...]) -> list[str]:
        results = ruleset.evaluate(inputs, check=False).results
        out: list[str] = []
        for table in tables:
            for value in results[table].values():
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str) and item not in out:
                        out.append(item)
        return out

    # reading ------------------------------------------------------------------------------------------------

    def alerts_after(self, seq: int, broker_id: str | None = None, branch_id: str | None = None,
                     limit: int = 500) -> list[dict]:
        query = sa.select(alerts).where(alerts.c.seq > seq).order_by(alerts.c.seq).limit(limit)
        if broker_id:
            query = query.where(alerts.c.broker_id == broker_id)
        if branch_id:
            query = query.where(alerts.c.branch_id == branch_id)
        with self.runtime.db.connect() as conn:
            rows = conn.execute(query).all()
        return [{**r._mapping, "event_ids": json.loads(r.event_ids)} for r in rows]

    def latest_alert_seq(self) -> int:
        with self.runtime.db.connect() as conn:
            return conn.execute(sa.select(sa.func.coalesce(sa.func.max(alerts.c.seq), 0))).scalar_one()

    def status(self) -> dict:
        """The backlog and whether events are being applied, as every worker of this home sees them."""
        failure = self.journal.failure()
        return {"backlog": self.journal.backlog(), "online_store": failure is None,
                "last_error": failure["error"] if failure else None}

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
