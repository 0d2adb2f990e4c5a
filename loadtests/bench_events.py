"""Client events through `crm serve --workers 2`, with the SQLite and the Redis online store, in one run.

For each online store, on a copy of the world of its own (raw tables, indicators, MLflow registry; the bundled
ruleset active) and on the same machine as the server, it measures:
- warm-up: one small transfer for each client the run uses, applied (a client's first event reads its history
  from the raw tables once; later events do not), reported as its own figure;
- intake: events/s accepted through ``POST /v1/events`` batches of 1,000 (several senders) and events/s applied to
  the online store, from the first batch until the backlog is empty (target: ≥ 5,000 events/s);
- decision latency, p50/p99, without events and while events flow at ``--rate`` from another process, in
  alternating runs (target: within 10 %);
- event → decision: a transfer posted for a client no other event touches, then decisions asked for until their
  ``freshness.client_flow`` moves, p50/p99 (target p99 ≤ 1 s), while events flow;
- event → alert: a stream ``GET /v1/alerts/stream`` open, a large withdrawal posted for a premier or large client,
  the time until its alert arrives on the stream, p50/p99 (target p99 ≤ 1 s), while events flow; how many of
  these clients the withdrawal itself made less than large (their alert is still due), and for each alert that
  did not arrive the client's decision after the withdrawal (its tier and alerts).

Run against a world with trained champions: ``python loadtests/bench_events.py --home var``. The Redis run
materializes into ``--redis`` (default db 13; '' skips it). The figures are printed and kept in
``HOME/bench/events.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from _timing import report  # run as a script: the folder is on sys.path
from bench_api import BenchError, Process, create_key, ensure_active_ruleset, port_free, run_cli, wait_api_ready
from bench_api import http as http_call

TARGETS = {"events_per_s": 5000.0, "event_to_decision_p99_s": 1.0, "event_to_alert_p99_s": 1.0,
           "decision_latency_ratio": 1.10}
WAIT_S = 10.0  # an event → decision or event → alert measurement gives up (and counts as missing) after this
ALERT = "large_withdrawal_valuable_client"
PICK_BATCH = 10  # clients per batch decision when picking the run's clients


def quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(values), "p50": round(statistics.median(ordered), 4), "p99": round(p99, 4),
            "max": round(ordered[-1], 4)}


class Client:
    """A keep-alive HTTP connection of one thread."""

    def __init__(self, base: str) -> None:
        url = urlparse(base)
        self.host, self.port = url.hostname, url.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def call(self, method: str, path: str, body: dict | None, key: str) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, data, headers)
                response = self.conn.getresponse()
                return response.status, json.loads(response.read() or b"{}")
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Ids:
    """Event and transfer ids unique within a run (and across runs: the clock's milliseconds lead)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next = int(time.time() * 1000) % 10**12 * 1000

    def take(self, count: int) -> int:
        with self.lock:
            first = self.next
            self.next += count
            return first


def transfer(ids: int, client_id: str, day: str, direction: str, amount: float) -> dict:
    return {"event_id": f"bench-{ids}", "kind": "cash_transfer", "transfer_id": ids, "client_id": client_id,
            "transfer_date": day, "direction": direction, "amount": amount}


class Sender(threading.Thread):
    """Posts batches of small inflows for random load clients, at most ``rate`` events/s (0: as fast as
    possible), until stopped; with ``once``, one for each client in turn and no more."""

    def __init__(self, base: str, key: str, clients: list[str], day: str, ids: Ids, rate: float = 0.0,
                 batch: int = 1000, once: bool = False, seed: int = 0) -> None:
        super().__init__(daemon=True)
        self.client, self.key, self.clients, self.day, self.ids = Client(base), key, clients, day, ids
        self.rate, self.batch, self.rng = rate, batch, random.Random(seed)
        self.total = len(clients) if once else None
        self.stop_event = threading.Event()
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.seconds: list[float] = []

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop_event.is_set() and (self.total is None or self.sent < self.total):
            count = self.batch if self.total is None else min(self.batch, self.total - self.sent)
            first = self.ids.take(count)
            chosen = (self.clients[self.sent:self.sent + count] if self.total is not None
                      else [self.rng.choice(self.clients) for _ in range(count)])
            events = [transfer(first + k, someone, self.day, "in", round(self.rng.uniform(10, 5000), 2))
                      for k, someone in enumerate(chosen)]
            asked = time.monotonic()
            status, _ = self.client.call("POST", "/v1/events", {"events": events}, self.key)
            self.seconds.append(time.monotonic() - asked)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.sent += count
            if self.rate:
                ahead = self.sent / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    self.stop_event.wait(ahead)


def _flow(base: str, key: str, clients: list[str], day: str, first_id: int, rate: float, stop, results) -> None:
    """The events flowing during the latency runs, in a process of their own (its own interpreter lock): building
    and encoding 1,000-event batches in the measuring process would hold up the timed requests' threads."""
    ids = Ids()
    ids.next = first_id
    flowing = [Sender(base, key, clients, day, ids, rate=rate / 2, seed=10 + n) for n in range(2)]
    for t in flowing:
        t.start()
    stop.wait()
    for t in flowing:
        t.stop_event.set()
    for t in flowing:
        t.join(60)
    results.put({s: sum(t.statuses.get(s, 0) for t in flowing) for s in {s for t in flowing for s in t.statuses}})


class Flow:
    """Events flowing at ``rate`` from another process until stopped; the intake's answers by status."""

    def __init__(self, base: str, key: str, clients: list[str], day: str, ids: Ids, rate: float) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")  # no thread of this process is running at this point
        self.stop_event, self.results = context.Event(), context.Queue()
        self.process = context.Process(target=_flow, daemon=True, args=(
            base, key, clients, day, ids.take(10**9), rate, self.stop_event, self.results))
        self.process.start()

    def stop(self) -> dict[int, int]:
        self.stop_event.set()
        statuses = self.results.get(timeout=120)
        self.process.join(30)
        return statuses


def backlog(base: str) -> int | None:
    _status, body = http_call("GET", f"{base}/readyz", timeout=10)
    try:
        return json.loads(body)["event_backlog"]
    except (ValueError, KeyError, TypeError):
        return None


def wait_drained(base: str, timeout_s: float) -> int | None:
    """Wait until every accepted event is applied; the backlog left (0 when drained)."""
    deadline = time.monotonic() + timeout_s
    left = backlog(base)
    while left != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        left = backlog(base)
    return left


def send_all(base: str, key: str, clients: list[str], day: str, ids: Ids, senders: int, seconds: float | None,
             per_client: bool = False, drain_s: float = 300.0) -> dict:
    """Post events (one per client with ``per_client``, else as many as ``senders`` threads post in ``seconds``)
    and wait until they are applied: events/s accepted and applied."""
    if per_client:
        threads = [Sender(base, key, clients[n::senders], day, ids, once=True, seed=n) for n in range(senders)]
    else:
        threads = [Sender(base, key, clients, day, ids, seed=n) for n in range(senders)]
    started = time.monotonic()
    for t in threads:
        t.start()
    if seconds is not None:
        time.sleep(seconds)
        for t in threads:
            t.stop_event.set()
    for t in threads:
        t.join()
    accepted_s = time.monotonic() - started
    left = wait_drained(base, drain_s)
    applied_s = time.monotonic() - started
    sent = sum(t.sent for t in threads)
    statuses: dict[int, int] = {}
    for t in threads:
        for s, n in t.statuses.items():
            statuses[s] = statuses.get(s, 0) + n
    return {"events": sent, "accepted_in_s": round(accepted_s, 1), "accepted_per_s": round(sent / accepted_s),
            "applied_in_s": round(applied_s, 1), "applied_per_s": round(sent / applied_s) if left == 0 else None,
            "backlog_left": left, "statuses": statuses,
            "request_seconds": quantiles([s for t in threads for s in t.seconds])}


def decision_latency(base: str, key: str, clients: list[str], n: int, seed: int = 5) -> list[float]:
    """Milliseconds of ``n`` decisions asked one after another on one connection."""
    client, rng = Client(base), random.Random(seed)
    seconds = []
    for _ in range(n):
        asked = time.perf_counter()
        status, _ = client.call("POST", "/v1/decisions", {"client_id": rng.choice(clients)}, key)
        if status == 200:
            seconds.append(time.perf_counter() - asked)
    return [s * 1000 for s in seconds]


def latency_with_and_without_events(base: str, ingest: str, front: str, clients: list[str], day: str, ids: Ids,
                                    rate: float, n: int, cycles: int) -> tuple[dict, dict]:
    """Decision latency without events and while events flow at ``rate``, in ``cycles`` alternations of ``n``
    decisions each (a machine whose speed drifts during the run weighs on both sides alike)."""
    idle: list[float] = []
    busy: list[float] = []
    for cycle in range(cycles):
        idle += decision_latency(base, front, clients, n, seed=2 * cycle)
        flow = Flow(base, ingest, clients, day, ids, rate)
        try:
            time.sleep(1)
            busy += decision_latency(base, front, clients, n, seed=2 * cycle + 1)
        finally:
            flow.stop()
        wait_drained(base, 60)
    return quantiles(idle), quantiles(busy)


def event_to_decision(base: str, ingest: str, front: str, probes: list[str], day: str, ids: Ids) -> dict:
    client = Client(base)
    waits = []
    for someone in probes:
        _, before = client.call("POST", "/v1/decisions", {"client_id": someone}, front)
        was = (before.get("freshness") or {}).get("client_flow")
        time.sleep(1.0)  # freshness is said to the second: the probe's own time differs from the one before
        posted = time.monotonic()
        status, _ = client.call("POST", "/v1/events", {"events": [transfer(ids.take(1), someone, day, "in", 123.45)]},
                                ingest)
        if status != 202:
            raise BenchError(f"probe event refused: {status}")
        while True:
            _, after = client.call("POST", "/v1/decisions", {"client_id": someone}, front)
            if (after.get("freshness") or {}).get("client_flow") != was:
                waits.append(time.monotonic() - posted)
                break
            if time.monotonic() - posted > WAIT_S:
                waits.append(float("inf"))
                break
            time.sleep(0.005)
    return {**quantiles(waits), "missing": sum(1 for w in waits if w == float("inf"))}


def event_to_alert(base: str, ingest: str, front: str, valuable: list[str], day: str, ids: Ids) -> dict:
    url = urlparse(base)
    arrived: dict[str, float] = {}
    ready = threading.Event()
    done = threading.Event()

    def listen() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        conn.request("GET", "/v1/alerts/stream", headers={"Authorization": f"Bearer {front}"})
        response = conn.getresponse()
        ready.set()
        while not done.is_set():
            line = response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                alert = json.loads(line[6:])
                if alert["alert"] == ALERT:
                    arrived.setdefault(alert["client_id"], time.monotonic())
        conn.close()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    if not ready.wait(30):
        raise BenchError("the alert stream did not open")
    time.sleep(0.5)
    client = Client(base)
    posted: dict[str, float] = {}
    for someone in valuable:
        posted[someone] = time.monotonic()
        client.call("POST", "/v1/events", {"events": [transfer(ids.take(1), someone, day, "out", 80_000.0)]}, ingest)
        deadline = time.monotonic() + WAIT_S
        while someone not in arrived and time.monotonic() < deadline:
            time.sleep(0.002)
    done.set()
    waits = [arrived[c] - posted[c] if c in arrived else float("inf") for c in valuable]
    missing = [c for c in valuable if c not in arrived]
    # Each client's decision now: a withdrawal lowers the predicted value, and with it the tier, of some of them.
    demoted, why = [], []
    for someone in valuable:
        _, decision = client.call("POST", "/v1/decisions", {"client_id": someone}, front)
        if decision.get("tier") not in ("premier", "large"):
            demoted.append(someone)
        if someone in missing:
            why.append({"client_id": someone, "tier_now": decision.get("tier"),
                        "alert_in_decision": ALERT in (decision.get("alerts") or []),
                        "client_flow_as_of": (decision.get("freshness") or {}).get("client_flow")})
    return {**quantiles(waits), "missing": len(missing), "missing_clients": why,
            "no_longer_premier_or_large_after_the_withdrawal": len(demoted),
            "of_which_alerted": sum(1 for c in demoted if c in arrived)}


def pick_clients(base: str, front: str, raw_clients: list[str], wanted: int) -> tuple[list[str], list[str], str]:
    """(decidable clients, premier or large clients without the withdrawal alert, the as-of date)."""
    client = Client(base)
    decidable, valuable, as_of = [], [], None
    # Small batches: a batch's online read has a time budget of 50 ms and 0.5 ms a client, which a loaded machine
    # overruns for 100 Redis clients (1.2 ms a client at a load average of 15: every decision degraded, none picked).
    for start in range(0, min(len(raw_clients), wanted), PICK_BATCH):
        status, body = client.call("POST", "/v1/decisions/batch",
                                   {"client_ids": raw_clients[start:start + PICK_BATCH]}, front)
        if status != 200:
            raise BenchError(f"batch decisions answered {status}: {body}")
        for item in body.get("decisions", []):
            decision = item.get("decision")
            if not decision or decision["degraded"]:
                continue
            decidable.append(item["client_id"])
            as_of = as_of or decision["as_of"]
            if decision["tier"] in ("premier", "large") and ALERT not in decision["alerts"]:
                valuable.append(item["client_id"])
    if not decidable or as_of is None:
        raise BenchError("no client could be decided; is the world built and are the champions trained?")
    return decidable, valuable, as_of


def world_copy(home: Path, label: str) -> Path:
    """A home of its own for one run: the world's raw tables, indicators (with the SQLite online store) and model
    registry copied (MLflow's artifacts stay where they are); events, alerts, keys and audit start empty."""
    copy = home / "bench" / f"events-{label}"
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir(parents=True)
    for name in ("raw", "features"):
        shutil.copytree(home / name, copy / name)
    shutil.copy(home / "mlflow.db", copy / "mlflow.db")
    return copy


def run_store(label: str, crm: str, env: dict, home: Path, args: argparse.Namespace) -> dict:
    copy = world_copy(home, label)
    env = {**env, "CRM_HOME": str(copy)}
    if env.get("CRM_ONLINE_STORE"):
        run_cli([crm, "features", "materialize"], env)
    ensure_active_ruleset(crm, env, True)
    port = args.port
    while not port_free("127.0.0.1", port):
        port += 1
    base = f"http://127.0.0.1:{port}"
    server = Process(f"crm serve ({label})", [crm, "serve", "--port", str(port), "--workers", "2"], env,
                     copy / "serve.log")
    try:
        wait_api_ready(server, base, 2, 300)
        ingest = create_key(crm, env, "ingest", f"bench-events-ingest-{label}")
        front = create_key(crm, env, "front_office", f"bench-events-front-{label}")
        import pyarrow.parquet as pq

        raw = pq.read_table(copy / "raw" / "clients.parquet", columns=["client_id", "closed_on"]).to_pylist()
        open_ids = [r["client_id"] for r in raw if r["closed_on"] is None]
        random.Random(1).shuffle(open_ids)
        decidable, valuable, as_of = pick_clients(base, front, open_ids, args.clients)
        # Each part gets clients no other part touches: a probe's freshness moves only with its own event.
        probes = decidable[:args.probes]
        valuable = [c for c in valuable if c not in set(probes)][:args.alerts]
        load = [c for c in decidable[args.probes:] if c not in set(valuable)]
        day, ids = as_of, Ids()
        result: dict = {"clients": {"load": len(load), "probes": len(probes), "valuable": len(valuable)},
                        "as_of": as_of, "events_flowing_per_s": args.rate}
        result["warm_up"] = send_all(base, ingest, load + probes + valuable, day, ids, 2, None, per_client=True)
        # The warm-up's inflows move the value model's prediction too: the clients still premier or large now.
        _, still, _ = pick_clients(base, front, valuable, len(valuable))
        valuable = [c for c in valuable if c in set(still)]
        result["clients"]["valuable_after_warm_up"] = len(valuable)
        result["intake"] = send_all(base, ingest, load, day, ids, args.senders, args.seconds)
        result["decision_latency_idle_ms"], result["decision_latency_with_events_ms"] = \
            latency_with_and_without_events(base, ingest, front, load, day, ids, args.rate, args.decisions,
                                            args.cycles)
        flow = Flow(base, ingest, load, day, ids, args.rate)
        try:
            time.sleep(2)
            result["event_to_decision_s"] = event_to_decision(base, ingest, front, probes, day, ids)
            result["event_to_alert_s"] = event_to_alert(base, ingest, front, valuable, day, ids)
        finally:
            result["flowing_statuses"] = flow.stop()
        idle, busy = result["decision_latency_idle_ms"], result["decision_latency_with_events_ms"]
        result["decision_latency_ratio"] = {"p50": round(busy["p50"] / idle["p50"], 3),
                                            "p99": round(busy["p99"] / idle["p99"], 3)}
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path("var"), help="CRM_HOME of a world with trained champions")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="Redis for the Redis run ('' to skip)")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run (only the Redis one)")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--clients", type=int, default=5000, help="clients the run uses (decided, then sent events)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the intake run")
    parser.add_argument("--senders", type=int, default=4, help="threads posting batches in the intake run")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s flowing during the latency runs")
    parser.add_argument("--decisions", type=int, default=1000, help="decisions per latency run")
    parser.add_argument("--cycles", type=int, default=3, help="latency runs without and with events, alternately")
    parser.add_argument("--probes", type=int, default=30, help="event → decision measurements")
    parser.add_argument("--alerts", type=int, default=20, help="event → alert measurements")
    args = parser.parse_args()
    home = args.home.resolve()
    crm = str(Path(sys.executable).with_name("crm"))
    env = {**os.environ, "CRM_RELOAD_INTERVAL_S": "600"}
    env.pop("CRM_ONLINE_STORE", None)
    results: dict = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "targets": TARGETS,
                     "world": str(home), "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
                     "arguments": {k: str(v) for k, v in vars(args).items()}}
    if not args.no_sqlite:
        results["sqlite"] = run_store("sqlite", crm, env, home, args)
        report(results, home, "events")  # kept at once: a Redis run that fails leaves the SQLite figures
    if args.redis:
        results["redis"] = run_store("redis", crm, {**env, "CRM_ONLINE_STORE": args.redis}, home, args)
    results["load_average_at_end"] = round(os.getloadavg()[0], 1)
    report(results, home, "events")


if __name__ == "__main__":
    main()
