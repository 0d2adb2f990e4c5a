"""The broker's work queue: today's next best actions for the broker's clients, ranked across clients, within
the broker's daily capacity, without what is done or suppressed.

A plan is made once a day (``crm queue plan``): every client in the online store is decided through the same code
as the API, each decision audited (so outcomes can be recorded against it), and the next best actions written to
``$CRM_HOME/queue/plan-DATE.parquet`` with the client's broker and branch. A queue request reads the plan (kept in
memory by file), looks up the outcomes of that broker's decisions in one query, and drops what is done (reached,
declined, accepted) or declined within the action's suppression period; each action's daily capacity, less what
was done today, bounds how many the broker gets.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from service.arbitration import Arbiter
from service.contact_history import ContactHistory
from service.decisions import decide_many
from service.errors import ApiError
from service.outcomes import DONE_STATUSES, Outcomes
from service.scope import may_see

PLAN_SCHEMA = pa.schema([
    ("client_id", pa.string()), ("broker_id", pa.string()), ("branch_id", pa.string()),
    ("decision_id", pa.string()), ("rank", pa.int32()), ("action", pa.string()), ("deliverer", pa.string()),
    ("channel", pa.string()), ("priority", pa.float64()), ("reason", pa.string()),
    ("churn_probability", pa.float64()), ("lifecycle_stage", pa.string()), ("arm", pa.string()),
    ("as_of", pa.string()),
])


def plan_path(folder: Path, day: dt.date) -> Path:
    return folder / f"plan-{day.isoformat()}.parquet"


def write_plan(rows: list[dict], folder: Path, day: dt.date) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = plan_path(folder, day)
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=PLAN_SCHEMA), tmp)
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class PlannedAction:
    client_id: str
    decision_id: str
    action: str
    channel: str
    priority: float
    reason: str
    churn_probability: float | None
    lifecycle_stage: str | None


class Plan:
    """One day's plan, indexed by deliverer: (broker or branch, deliverer kind) → actions, best first."""

    def __init__(self, path: Path) -> None:
        table = pq.read_table(path).to_pydict()
        self.path = path
        self.day = dt.date.fromisoformat(path.stem.removeprefix("plan-"))
        self.by_broker: dict[str, list[PlannedAction]] = {}
        self.by_branch: dict[str, list[PlannedAction]] = {}
        self.brokers_of_branch: dict[str, set[str]] = {}
        for k in range(len(table["client_id"])):
            item = PlannedAction(table["client_id"][k], table["decision_id"][k], table["action"][k],
                                 table["channel"][k], table["priority"][k], table["reason"][k],
                                 table["churn_probability"][k], table["lifecycle_stage"][k])
            deliverer = table["deliverer"][k]
            self.brokers_of_branch.setdefault(table["branch_id"][k], set()).add(table["broker_id"][k])
            if deliverer == "broker":
                self.by_broker.setdefault(table["broker_id"][k], []).append(item)
            elif deliverer == "branch_manager":
                self.by_branch.setdefault(table["branch_id"][k], []).append(item)
        for items in (*self.by_broker.values(), *self.by_branch.values()):
            items.sort(key=lambda a: -a.priority)


class WorkQueues:
    """Queues of brokers (and branch managers) from the day's plan and the outcomes recorded since."""

    def __init__(self, folder: Path, outcomes: Outcomes, contacts: ContactHistory, timezone: str,
                 arbiter: Callable[[], Arbiter | None]) -> None:
        self.folder = folder
        self.outcomes = outcomes
        self.contacts = contacts
        self.zone = ZoneInfo(timezone)
        self.arbiter = arbiter
        self._plans: dict[Path, tuple[float, Plan]] = {}
        self._lock = threading.Lock()

    def plan_for(self, day: dt.date) -> Plan | None:
        """The plan of ``day``, else the latest one made before it."""
        path = plan_path(self.folder, day)
        if not path.exists():
            earlier = sorted(p for p in self.folder.glob("plan-*.parquet") if p.stem <= path.stem)
            if not earlier:
                return None
            path = earlier[-1]
        mtime = path.stat().st_mtime
        hit = self._plans.get(path)
        if hit is None or hit[0] != mtime:
            with self._lock:
                hit = (mtime, Plan(path))
                self._plans[path] = hit
        return hit[1]

    def queue(self, items: list[PlannedAction], day: dt.date) -> dict:
        """The items left for ``day``: not done, not suppressed, within each action's daily capacity."""
        arbiter = self.arbiter()
        terms = arbiter.terms if arbiter is not None else {}
        statuses: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for row in self.outcomes.for_decisions(sorted({i.decision_id for i in items})):
            statuses.setdefault((row["decision_id"], row["action"]), []).append((row["status"], row["at"]))
        done_today: dict[str, int] = {}
        left: list[tuple[PlannedAction, list[str]]] = []
        left_out = {"done": 0, "suppressed": 0, "capacity": 0}
        for item in items:
            recorded = statuses.get((item.decision_id, item.action), [])
            if any(s in DONE_STATUSES for s, _ in recorded):
                left_out["done"] += 1
                if any(dt.datetime.fromisoformat(at).astimezone(self.zone).date() == day for _, at in recorded):
                    done_today[item.action] = done_today.get(item.action, 0) + 1
                continue
            t = terms.get(item.action)
            if t is not None and _declined_within(self.contacts, item.client_id, item.action, day, t.suppression_days):
                left_out["suppressed"] += 1
                continue
            left.append((item, [s for s, _ in recorded]))
        capacity = {a: terms[a].daily_capacity if a in terms else 0 for a in {i.action for i, _ in left}}
        remaining = {a: max(0, c - done_today.get(a, 0)) for a, c in capacity.items()}
        out = []
        for item, recorded in left:
            if remaining.get(item.action, 0) <= 0:
                left_out["capacity"] += 1
                continue
            remaining[item.action] -= 1
            described = arbiter.catalogue.actions[item.action].description if arbiter is not None and \
                item.action in arbiter.catalogue.actions else item.action
            out.append({"rank": len(out) + 1, "client_id": item.client_id, "decision_id": item.decision_id,
                        "action": item.action, "description": described, "channel": item.channel,
                        "priority": item.priority, "reason": item.reason,
                        "churn_probability": item.churn_probability, "lifecycle_stage": item.lifecycle_stage,
                        "statuses": recorded})
        return {"items": out, "capacity": capacity, "planned": len(items), "done_today": sum(done_today.values()),
                "left_out": left_out}

    def for_broker(self, broker_id: str, day: dt.date) -> dict | None:
        plan = self.plan_for(day)
        if plan is None:
            return None
        return {"broker_id": broker_id, "date": day.isoformat(), "plan_date": plan.day.isoformat(),
                **self.queue(plan.by_broker.get(broker_id, []), day)}

    def for_branch(self, branch_id: str, day: dt.date) -> dict | None:
        """The branch manager's own queue and every broker's completion in the branch."""
        plan = self.plan_for(day)
        if plan is None:
            return None
        brokers = []
        for broker_id in sorted(plan.brokers_of_branch.get(branch_id, set())):
            q = self.queue(plan.by_broker.get(broker_id, []), day)
            brokers.append({"broker_id": broker_id, "planned": q["planned"], "open": len(q["items"]),
                            "done": q["left_out"]["done"], "done_today": q["done_today"],
                            "completion": round(q["left_out"]["done"] / q["planned"], 3) if q["planned"] else None})
        own = self.queue(plan.by_branch.get(branch_id, []), day)
        return {"branch_id": branch_id, "date": day.isoformat(), "plan_date": plan.day.isoformat(),
                "brokers": brokers, "manager_queue": own}


def _declined_within(contacts: ContactHistory, client_id: str, action: str, day: dt.date, days: int) -> bool:
    return any(c.action == action and c.outcome == "declined" and 0 <= (day - c.on).days < days
               for c in contacts.of(client_id))


def make_plan(runtime, client_ids: list[str], day: dt.date, chunk: int = 500,
              progress: Callable[[int, int], None] = lambda done, total: None) -> dict:
    """Decide every client (audited, as by the API) and write the day's plan of next best actions."""
    from service.audited_decisions import audited_result
    from service.keys import Caller, Role

    planner = Caller("planner", "daily queue plan", Role.ADMIN)
    raw = runtime.settings.raw_dir / "clients.parquet"
    clients = pq.read_table(raw, columns=["client_id", "broker_id", "branch_id"]).to_pydict()
    home = {c: (b, r) for c, b, r in zip(clients["client_id"], clients["broker_id"], clients["branch_id"],
                                         strict=True)}
    rows: list[dict] = []
    decided = 0
    started = time.perf_counter()
    served = runtime.served
    for k in range(0, len(client_ids), chunk):
        part = client_ids[k:k + chunk]
        t0 = time.perf_counter()
        for client_id, result in zip(part, decide_many(served, part, runtime.settings.timezone), strict=True):
            if isinstance(result, Exception):
                continue
            response, _ = audited_result(runtime, planner, {"client_id": client_id, "plan": day.isoformat()},
                                         result, t0)
            decided += 1
            broker_id, branch_id = home.get(client_id, ("", ""))
            churn = (response.get("scores") or {}).get("churn") or {}
            for a in response.get("next_best_actions", []):
                rows.append({"client_id": client_id, "broker_id": broker_id, "branch_id": branch_id,
                             "decision_id": response["decision_id"], "rank": a["rank"], "action": a["action"],
                             "deliverer": a["deliverer"], "channel": a["channel"], "priority": a["priority"],
                             "reason": a["reason"], "churn_probability": churn.get("probability"),
                             "lifecycle_stage": response["lifecycle"]["stage"], "arm": response["arm"],
                             "as_of": response.get("as_of")})
        progress(min(k + chunk, len(client_ids)), len(client_ids))
    path = write_plan(rows, runtime.settings.home / "queue", day)
    return {"date": day.isoformat(), "clients_decided": decided, "actions_planned": len(rows), "out": str(path),
            "seconds": round(time.perf_counter() - started, 2)}


def queue_day(runtime, day: dt.date | None) -> dt.date:
    """The queue's day: the one asked for, or today in the trading time zone."""
    return day or dt.datetime.now(ZoneInfo(runtime.settings.timezone)).date()


def _planned(found: dict | None) -> dict:
    if found is None:
        raise ApiError("queue_not_planned", "no plan has been made yet: run `crm queue plan`")
    return found


def broker_queue(runtime, who, broker_id: str, day: dt.date | None) -> dict:
    """A broker's queue for the day, for a caller who may see that broker (the API and the page alike)."""
    brokers, _ = runtime.organisation()
    if broker_id not in brokers or not may_see(who, runtime.directory, broker_id=broker_id):
        raise ApiError("broker_not_found", f"no broker {broker_id!r}")
    return _planned(runtime.queues.for_broker(broker_id, queue_day(runtime, day)))


def branch_queue(runtime, who, branch_id: str, day: dt.date | None) -> dict:
    """A branch's queues and each broker's completion, for a caller who may see that branch."""
    _, branches = runtime.organisation()
    if branch_id not in branches or not may_see(who, runtime.directory, branch_id=branch_id):
        raise ApiError("broker_not_found", f"no branch {branch_id!r}")
    return _planned(runtime.queues.for_branch(branch_id, queue_day(runtime, day)))
