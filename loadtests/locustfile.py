"""Load test of the decision API (and of the two baselines `bench_api.py` compares it with).

The default user (`CRM_LOCUST_TARGET=decisions`) plays a front-office system: mostly single decisions for random
real clients, a few batches of 20-50 clients, and a few requests for clients that do not exist (a 404 with code
`client_not_found` is the right answer, so it counts as a success; anything else is a failure).

Environment:
  CRM_API_KEY                front-office key (`crm keys create --role front_office`), required for decisions
  CRM_CLIENT_IDS_FILE        file with one client id a line; default: the ids of the latest month-end in
                             $CRM_HOME/features/offline/client_category.parquet (CRM_HOME default `var`)
  CRM_LOCUST_MIX             task weights of the decisions user: single,unknown,batch (default 95,4,1)
  CRM_LOCUST_TARGET          decisions (default) | trivial (baseline_app.py's POST /echo) | mlflow (POST /invocations)
  CRM_MLFLOW_PAYLOAD_FILE    JSON body for /invocations; default one row of 65 zeros
  CRM_DECISIONS_PER_USER_S   paced load: decisions per second per user (e.g. 50 users x 20/s = 1,000/s);
                             unset or 0: no wait (max throughput)
  CRM_MAX_FAILURE_RATIO      exit code 1 when the failure ratio is above it (default 0.01)
  CRM_MAX_P99_MS             exit code 1 when single decisions' p99 is above it (default 10)
  CRM_LOCUST_SUMMARY         where to write a JSON summary: decisions made (batch items included), degraded
                             decisions, and single decisions' percentiles unrounded (locust rounds to whole ms)

Usage: CRM_API_KEY=... CRM_HOME=var locust -f loadtests/locustfile.py --headless -u 50 -r 50 --run-time 30s \
           --host http://127.0.0.1:8000
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from pathlib import Path

from locust import FastHttpUser, constant, constant_throughput, events, task
from locust.runners import WorkerRunner

log = logging.getLogger("crm.locust")

TARGET = os.environ.get("CRM_LOCUST_TARGET", "decisions")
if TARGET not in ("decisions", "trivial", "mlflow"):
    raise ValueError(f"CRM_LOCUST_TARGET must be decisions, trivial or mlflow; got {TARGET!r}")

# The mix of the decisions user: task weights (CRM_LOCUST_MIX="single,unknown,batch"), batch sizes (inclusive).
SINGLE_WEIGHT, UNKNOWN_WEIGHT, BATCH_WEIGHT = (int(w) for w in os.environ.get("CRM_LOCUST_MIX", "95,4,1").split(","))
BATCH_SIZES = (20, 50)
DECISIONS_PER_TASK = (SINGLE_WEIGHT + BATCH_WEIGHT * sum(BATCH_SIZES) / 2) / (
    SINGLE_WEIGHT + UNKNOWN_WEIGHT + BATCH_WEIGHT)
SINGLE_NAME, UNKNOWN_NAME, BATCH_NAME = "decision", "decision (unknown client)", "batch"

MAX_FAILURE_RATIO = float(os.environ.get("CRM_MAX_FAILURE_RATIO", "0.01"))
MAX_P99_MS = float(os.environ.get("CRM_MAX_P99_MS", "10"))


def load_client_ids() -> list[str]:
    """The real client ids: from CRM_CLIENT_IDS_FILE, else the latest month-end of the offline feature table."""
    listed = os.environ.get("CRM_CLIENT_IDS_FILE")
    if listed:
        ids = [line.strip() for line in Path(listed).read_text().splitlines() if line.strip()]
    else:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        path = Path(os.environ.get("CRM_HOME", "var")) / "features" / "offline" / "client_category.parquet"
        table = pq.read_table(path, columns=["client_id", "as_of"])
        latest = pc.max(table["as_of"])
        ids = table.filter(pc.equal(table["as_of"], latest))["client_id"].to_pylist()
    ids = sorted(set(ids))
    if not ids:
        raise RuntimeError("no client ids found (CRM_CLIENT_IDS_FILE or CRM_HOME's client_category.parquet)")
    return ids


def unknown_ids(known: list[str], count: int = 1000) -> list[str]:
    """Well-formed ids of clients that do not exist."""
    taken, rng, out = set(known), random.Random(11), []
    while len(out) < count:
        candidate = f"C9{rng.randrange(10**6):06d}"
        if candidate not in taken:
            out.append(candidate)
    return out


def pacing() -> object:
    per_user = float(os.environ.get("CRM_DECISIONS_PER_USER_S") or 0)
    if per_user <= 0:
        return constant(0)
    per_task = DECISIONS_PER_TASK if TARGET == "decisions" else 1.0
    return constant_throughput(per_user / per_task)


if TARGET == "decisions":
    API_KEY = os.environ.get("CRM_API_KEY", "")
    if not API_KEY:
        raise RuntimeError("set CRM_API_KEY to a front-office key (crm keys create --role front_office)")
    CLIENT_IDS = load_client_ids()
    UNKNOWN_IDS = unknown_ids(CLIENT_IDS)
    log.info("%d client ids loaded", len(CLIENT_IDS))


# What the stats files cannot say: decisions made (a batch holds many), degraded ones, unrounded latencies.
TALLY = {"single_decisions": 0, "batch_requests": 0, "batch_decisions": 0, "batch_item_errors": 0, "degraded": 0}
SINGLE_MS: list[float] = []


def _reset_tally() -> None:
    for name in TALLY:
        TALLY[name] = 0
    SINGLE_MS.clear()


class DecisionUser(FastHttpUser):
    """A front-office system asking for decisions."""

    abstract = TARGET != "decisions"
    wait_time = pacing()

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {API_KEY}"}

    @task(SINGLE_WEIGHT)
    def decision(self) -> None:
        client_id = random.choice(CLIENT_IDS)
        with self.client.post("/v1/decisions", json={"client_id": client_id}, headers=self.headers,
                              name=SINGLE_NAME, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                body = response.json()
            except ValueError:
                response.failure(f"HTTP 200 but the body is not JSON: {(response.text or '')[:80]!r}")
                return
            if body.get("client_id") != client_id or "tier" not in body:
                response.failure("the response is not a decision for the client asked")
                return
            TALLY["single_decisions"] += 1
            TALLY["degraded"] += bool(body.get("degraded"))

    @task(UNKNOWN_WEIGHT)
    def unknown_client(self) -> None:
        with self.client.post("/v1/decisions", json={"client_id": random.choice(UNKNOWN_IDS)},
                              headers=self.headers, name=UNKNOWN_NAME, catch_response=True) as response:
            code = None
            if response.status_code == 404:
                try:
                    code = response.json().get("error", {}).get("code")
                except (ValueError, AttributeError):
                    code = None
            if response.status_code == 404 and code == "client_not_found":
                response.success()
            else:
                response.failure(f"expected 404 client_not_found, got HTTP {response.status_code} code {code}: "
                                 f"{(response.text or '')[:200]}")

    @task(BATCH_WEIGHT)
    def batch(self) -> None:
        client_ids = random.sample(CLIENT_IDS, random.randint(*BATCH_SIZES))
        with self.client.post("/v1/decisions/batch", json={"client_ids": client_ids}, headers=self.headers,
                              name=BATCH_NAME, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                items = response.json()["decisions"]
            except (ValueError, KeyError, TypeError):
                response.failure("the response is not a batch of decisions")
                return
            if [item.get("client_id") for item in items] != client_ids:
                response.failure("the batch does not answer the clients asked, in order")
                return
            decided = [item for item in items if item.get("decision")]
            TALLY["batch_requests"] += 1
            TALLY["batch_decisions"] += len(decided)
            TALLY["batch_item_errors"] += len(items) - len(decided)
            TALLY["degraded"] += sum(bool(item["decision"].get("degraded")) for item in decided)
            if len(decided) != len(items):
                response.failure(f"{len(items) - len(decided)} of {len(items)} batch items are errors")


class TrivialUser(FastHttpUser):
    """Baseline: the trivial FastAPI endpoint of baseline_app.py."""

    abstract = TARGET != "trivial"
    wait_time = pacing()

    @task
    def echo(self) -> None:
        self.client.post("/echo", json={"client_id": "C0000001"}, name="trivial")


class MlflowUser(FastHttpUser):
    """Baseline: `mlflow models serve` of the churn champion, one row per request."""

    abstract = TARGET != "mlflow"
    wait_time = pacing()

    def on_start(self) -> None:
        payload = os.environ.get("CRM_MLFLOW_PAYLOAD_FILE")
        self.body = Path(payload).read_bytes() if payload else json.dumps({"inputs": [[0.0] * 65]}).encode()

    @task
    def invocations(self) -> None:
        self.client.post("/invocations", data=self.body, headers={"Content-Type": "application/json"},
                         name="mlflow")


@events.request.add_listener
def _time_singles(name: str, response_time: float, exception: Exception | None = None, **_: object) -> None:
    if name == SINGLE_NAME and exception is None:
        SINGLE_MS.append(response_time)


_ENV = None


@events.init.add_listener
def _keep_environment(environment: object, **_: object) -> None:
    global _ENV
    _ENV = environment


@events.spawning_complete.add_listener
def _reset_with_stats(user_count: int, **_: object) -> None:
    if getattr(_ENV, "reset_stats", False):  # locust resets its stats at this moment: do the same
        _reset_tally()


@events.report_to_master.add_listener
def _send(client_id: str, data: dict, **_: object) -> None:
    data["crm_tally"], data["crm_single_ms"] = dict(TALLY), list(SINGLE_MS)
    _reset_tally()


@events.worker_report.add_listener
def _receive(client_id: str, data: dict, **_: object) -> None:
    for name, value in data.get("crm_tally", {}).items():
        TALLY[name] += value
    SINGLE_MS.extend(data.get("crm_single_ms", []))


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 3)


@events.quitting.add_listener
def _check_thresholds(environment: object, **_: object) -> None:
    """Exit code 1 when the failure ratio or single decisions' p99 is over its threshold, else 0."""
    if isinstance(environment.runner, WorkerRunner):
        return
    stats = environment.stats
    total = stats.total
    problems = []
    if total.num_requests == 0:
        problems.append("no request was made")
    elif total.fail_ratio > MAX_FAILURE_RATIO:
        problems.append(f"failure ratio {total.fail_ratio:.4f} > {MAX_FAILURE_RATIO}")
    single = stats.entries.get((SINGLE_NAME, "POST"))
    p99 = single.get_response_time_percentile(0.99) if single is not None and single.num_requests else None
    if TARGET == "decisions" and p99 is not None and p99 > MAX_P99_MS:
        problems.append(f"single decisions' p99 {p99} ms > {MAX_P99_MS} ms")
    for problem in problems:
        log.error("threshold exceeded: %s", problem)
    environment.process_exit_code = 1 if problems else 0
    summary = os.environ.get("CRM_LOCUST_SUMMARY")
    if summary:
        ordered = sorted(SINGLE_MS)
        Path(summary).write_text(json.dumps({
            "target": TARGET, **TALLY, "decisions_per_task": round(DECISIONS_PER_TASK, 4),
            "single_ms": {"count": len(ordered), "p50": _percentile(ordered, 0.50),
                          "p95": _percentile(ordered, 0.95), "p99": _percentile(ordered, 0.99),
                          "max": round(ordered[-1], 3) if ordered else None},
            "thresholds": {"max_failure_ratio": MAX_FAILURE_RATIO, "max_p99_ms": MAX_P99_MS},
            "problems": problems}, indent=2) + "\n")
