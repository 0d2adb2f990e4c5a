"""Client events through `crm serve --workers 2`, with the SQLite and the Redis online store.

For each online store it measures, on the same machine as the server:
- intake: events/s accepted through ``POST /v1/events`` batches of 1,000 (several senders), and how long the
  workers take to apply them to the online store (target: ≥ 5,000 events/s);
- event → decision: a transfer posted for a client no other event touches, then decisions asked for until their
  ``freshness.client_flow`` moves, p50/p99 (target p99 ≤ 1 s), while the intake load runs at ``--rate``;
- event → alert: a stream ``GET /v1/alerts/stream`` open, a large withdrawal posted for a premier or large client,
  the time until its alert arrives, p50/p99 (target p99 ≤ 1 s);
- decision latency without events and while events flow at ``--rate``, p50/p99 and their ratio (target: within
  10 %).

Run against a world with trained champions (the bundled ruleset is activated when none is):
``python loadtests/bench_events.py --home var``. Redis is materialized into ``--redis`` (default db 13).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from _timing import report  # run as a script: the folder is on sys.path
from bench_api import BenchError, Process, ensure_active_ruleset, port_free, run_cli, wait_api_ready
from bench_api import http as http_call

TARGETS = {"events_per_s": 5000.0, "event_to_decision_p99_s": 1.0, "event_to_alert_p99_s": 1.0,
           "decision_latency_ratio": 1.10}


def key_for(crm: str, env: dict, role: str) -> str:
    out = run_cli([crm, "keys", "create", "--role", role, "--name", f"bench-events-{role}-{int(time.time())}"], env)
    return out.strip().splitlines()[-1].strip()


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
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

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
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Sender(threading.Thread):
    """Posts batches of small transfers for the load clients, at most ``rate`` events/s in all (0: as fast as
    possible), until stopped."""

    def __init__(self, base: str, key: str, clients: list[str], day: str, prefix: str, rate: float,
                 batch: int = 1000) -> None:
        super().__init__(daemon=True)
        self.client, self.key, self.clients, self.day = Client(base), key, clients, day
        self.prefix, self.rate, self.batch = prefix, rate, batch
        self.stop_event = threading.Event()
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.seconds: list[float] = []

    def run(self) -> None:
        rng = random.Random(self.prefix)
        started = time.monotonic()
        while not self.stop_event.is_set():
            events = [{"event_id": f"{self.prefix}-{self.sent + k}", "kind": "cash_transfer",
                       "transfer_id": 7_000_000_000 + abs(hash(self.prefix)) % 10**9 * 10 + self.sent + k,
                       "client_id": rng.choice(self.clients), "transfer_date": self.day, "direction": "in",
                       "amount": round(rng.uniform(10, 5000), 2)} for k in range(self.batch)]
            asked = time.monotonic()
            status, _ = self.client.call("POST", "/v1/events", {"events": events}, self.key)
            self.seconds.append(time.monotonic() - asked)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.sent += self.batch
            if self.rate:
                ahead = self.sent / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    self.stop_event.wait(ahead)


def backlog(base: str) -> int | None:
    _status, body = http_call("GET", f"{base}/readyz", timeout=5)
    try:
        return json.loads(body)["event_backlog"]
    except (ValueError, KeyError, TypeError):
        return None


def intake(base: str, key: str, clients: list[str], day: str, seconds: float, senders: int) -> dict:
    threads = [Sender(base, key, clients, day, f"load{n}-{int(time.time())}", 0.0) for n in range(senders)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    for t in threads:
        t.stop_event.set()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    sent = sum(t.sent for t in threads)
    statuses: dict[int, int] = {}
    for t in threads:
        for s, n in t.statuses.items():
            statuses[s] = statuses.get(s, 0) + n
    drain_started = time.monotonic()
    while backlog(base) not in (0, None) and time.monotonic() - drain_started < 300:
        time.sleep(0.2)
    applied_s = time.monotonic() - started
    return {"events": sent, "seconds": round(elapsed, 1), "accepted_per_s": round(sent / elapsed),
            "applied_all_after_s": round(applied_s, 1), "applied_per_s": round(sent / applied_s),
            "statuses": statuses, "request_seconds": quantiles([s for t in threads for s in t.seconds])}


def decision_latency(base: str, key: str, clients: list[str], n: int) -> dict:
    client, rng = Client(base), random.Random(5)
    seconds = []
    for _ in range(n):
        asked = time.perf_counter()
        status, _ = client.call("POST", "/v1/decisions", {"client_id": rng.choice(clients)}, key)
        if status == 200:
            seconds.append(time.perf_counter() - asked)
    return quantiles([s * 1000 for s in seconds])


def event_to_decision(base: str, ingest: str, front: str, probes: list[str], day: str) -> dict:
    client = Client(base)
    waits = []
    for k, someone in enumerate(probes):
        _, before = client.call("POST", "/v1/decisions", {"client_id": someone}, front)
        was = (before.get("freshness") or {}).get("client_flow")
        event = {"event_id": f"probe-{int(time.time())}-{k}", "kind": "cash_transfer",
                 "transfer_id": 8_000_000_000 + int(time.time()) % 10**6 * 100 + k, "client_id": someone,
                 "transfer_date": day, "direction": "in", "amount": 123.45}
        posted = time.monotonic()
        status, _ = client.call("POST", "/v1/events", {"events": [event]}, ingest)
        if status != 202:
            raise BenchError(f"probe event refused: {status}")
        while True:
            _, after = client.call("POST", "/v1/decisions", {"client_id": someone}, front)
            if (after.get("freshness") or {}).get("client_flow") != was:
                waits.append(time.monotonic() - posted)
                break
            if time.monotonic() - posted > 30:
                waits.append(float("inf"))
                break
            time.sleep(0.005)
    return quantiles(waits)


def event_to_alert(base: str, ingest: str, front: str, valuable: list[str], day: str) -> dict:
    url = urlparse(base)
    arrived: dict[str, float] = {}
    ready = threading.Event()

    def listen() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        conn.request("GET", "/v1/alerts/stream", headers={"Authorization": f"Bearer {front}"})
        response = conn.getresponse()
        ready.set()
        while len(arrived) < len(valuable):
            line = response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                alert = json.loads(line[6:])
                if alert["alert"] == "large_withdrawal_valuable_client":
                    arrived.setdefault(alert["client_id"], time.monotonic())
        conn.close()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(30)
    time.sleep(0.5)
    client = Client(base)
    posted: dict[str, float] = {}
    for k, someone in enumerate(valuable):
        event = {"event_id": f"alert-{int(time.time())}-{k}", "kind": "cash_transfer",
                 "transfer_id": 9_000_000_000 + int(time.time()) % 10**6 * 100 + k, "client_id": someone,
                 "transfer_date": day, "direction": "out", "amount": 80_000.0}
        posted[someone] = time.monotonic()
        client.call("POST", "/v1/events", {"events": [event]}, ingest)
        deadline = time.monotonic() + 30
        while someone not in arrived and time.monotonic() < deadline:
            time.sleep(0.002)
    listener.join(5)
    waits = [arrived[c] - posted[c] if c in arrived else float("inf") for c in valuable]
    return {**quantiles(waits), "missing": sum(1 for c in valuable if c not in arrived)}


def pick_clients(base: str, front: str, raw_clients: list[str]) -> tuple[list[str], list[str], str]:
    """(every decidable client, premier or large clients without the withdrawal alert, the as-of date)."""
    client = Client(base)
    decidable, valuable, as_of = [], [], None
    for start in range(0, min(len(raw_clients), 6000), 1000):
        _status, body = client.call("POST", "/v1/decisions/batch", {"client_ids": raw_clients[start:start + 1000]},
                                   front)
        for item in body.get("decisions", []):
            decision = item.get("decision")
            if not decision or decision["degraded"]:
                continue
            decidable.append(item["client_id"])
            as_of = as_of or decision["as_of"]
            if decision["tier"] in ("premier", "large") and "large_withdrawal_valuable_client" not in decision[
                    "alerts"]:
                valuable.append(item["client_id"])
    if not decidable or as_of is None:
        raise BenchError("no client could be decided; is the world built and are the champions trained?")
    return decidable, valuable, as_of


def run_store(label: str, crm: str, env: dict, home: Path, args: argparse.Namespace) -> dict:
    port = args.port
    while not port_free("127.0.0.1", port):
        port += 1
    base = f"http://127.0.0.1:{port}"
    log = home / "bench" / f"events-serve-{label}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = Process(f"crm serve ({label})", [crm, "serve", "--port", str(port), "--workers", "2"], env, log)
    try:
        wait_api_ready(server, base, 2, 300)
        ingest, front = key_for(crm, env, "ingest"), key_for(crm, env, "front_office")
        import pyarrow.parquet as pq

        raw = pq.read_table(home / "raw" / "clients.parquet", columns=["client_id", "closed_on"]).to_pylist()
        open_ids = [r["client_id"] for r in raw if r["closed_on"] is None]
        random.Random(1).shuffle(open_ids)
        decidable, valuable, as_of = pick_clients(base, front, open_ids)
        # Each part gets clients no other part touches: a probe's freshness moves only with its own event.
        probes, rest = decidable[:args.probes], decidable[args.probes:]
        valuable = [c for c in valuable if c not in probes][:args.alerts]
        load = [c for c in rest if c not in set(valuable)]
        day = as_of
        result: dict = {"clients": {"load": len(load), "probes": len(probes), "valuable": len(valuable)},
                        "as_of": as_of}
        result["decision_latency_idle_ms"] = decision_latency(base, front, load, args.decisions)
        result["intake"] = intake(base, ingest, load, day, args.seconds, args.senders)
        flowing = [Sender(base, ingest, load, day, f"flow{n}-{int(time.time())}", args.rate / 2) for n in range(2)]
        for t in flowing:
            t.start()
        time.sleep(2)
        result["decision_latency_with_events_ms"] = decision_latency(base, front, load, args.decisions)
        result["event_to_decision_s"] = event_to_decision(base, ingest, front, probes, day)
        result["event_to_alert_s"] = event_to_alert(base, ingest, front, valuable, day)
        for t in flowing:
            t.stop_event.set()
        for t in flowing:
            t.join(60)
        result["events_flowing_per_s"] = round(sum(t.sent for t in flowing) / max(
            1e-9, sum(sum(t.seconds) for t in flowing) / len(flowing) or 1), 0)
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
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the intake run")
    parser.add_argument("--senders", type=int, default=4, help="threads posting batches in the intake run")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s flowing during the latency runs")
    parser.add_argument("--decisions", type=int, default=2000, help="decisions per latency run")
    parser.add_argument("--probes", type=int, default=100, help="event → decision measurements")
    parser.add_argument("--alerts", type=int, default=50, help="event → alert measurements")
    args = parser.parse_args()
    home = args.home.resolve()
    crm = str(Path(sys.executable).with_name("crm"))
    env = {**os.environ, "CRM_HOME": str(home), "CRM_RELOAD_INTERVAL_S": "600"}
    env.pop("CRM_ONLINE_STORE", None)
    ensure_active_ruleset(crm, env, True)
    results: dict = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "targets": TARGETS,
                     "machine": f"{os.cpu_count()} cores, shared"}
    results["sqlite"] = run_store("sqlite", crm, env, home, args)
    report(results, home, "events")  # kept at once: a Redis run that fails leaves the SQLite figures
    if args.redis:
        redis_env = {**env, "CRM_ONLINE_STORE": args.redis}
        run_cli([crm, "features", "materialize"], redis_env)
        results["redis"] = run_store("redis", crm, redis_env, home, args)
    report(results, home, "events")


if __name__ == "__main__":
    main()
