"""Benchmarks of next best actions, on a CRM_HOME with features, champions and an active ruleset
that has an action catalogue (the bundled one).

1. Decision latency in process with arbitration and the contact policy on, against today's engine before them:
   `crm decide --bench N` of this checkout, and of the baseline revision (the commit before the catalogue was
   added, extracted with `git archive`) over a baseline home that shares the features and models but activates
   the baseline's own bundled ruleset. Rounds alternate; medians are compared. Target: ≤ 15 % above the baseline.
2. `POST /v1/decisions/{id}/outcomes` throughput: `crm serve` on a free port (its own service database in a
   temporary folder), a day's plan made through it (`crm queue plan`), then wrk posting distinct outcomes of the
   planned decisions for --seconds. Target: ≥ 1,000 per second.
3. The queue of the broker whose book is closest to 300 clients: GET /v1/queue over one kept-alive connection,
   --queue-requests times. Target: ≤ 50 ms.
4. With --uplift: decision latency with the retention uplift model in arbitration against the same checkout
   without it (`crm decide --bench N` over the home, and over a view of the home whose MLflow database copy has
   no uplift champion, so decisions rank by the catalogue's priors). Rounds alternate; medians are compared.
   Target: ≤ 20 % above the decisions without it.
Usage: python loadtests/bench_nba.py --home DIR [--decisions 5000] [--rounds 3] [--workers 2] [--seconds 10]
       [--uplift] [--only-uplift]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from _timing import report  # run as a script: the folder is on sys.path

REPO = Path(__file__).resolve().parent.parent
TARGET_LATENCY_RATIO = 1.15
TARGET_OUTCOMES_PER_S = 1000
TARGET_QUEUE_MS = 50
TARGET_UPLIFT_RATIO = 1.20
UPLIFT_MODEL = "retention_uplift"
# Written per run (the audit, keys, journals): a view of a home gets its own, everything else is shared.
OWN_STATE = ("mlflow.db", "service.db", "audit-journal", "audit-spill")
LUA = """
local lines = {}
for line in io.lines(os.getenv("OUTCOMES_FILE")) do lines[#lines + 1] = line end
local k = 0
request = function()
  k = k % #lines + 1
  local path, body = lines[k]:match("^(%S+) (.*)$")
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
                                   ["Authorization"] = "Bearer " .. os.getenv("CRM_KEY")}, body)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _decide_bench(python: str, env: dict, n: int, cwd: Path) -> dict:
    out = subprocess.run([python, "-m", "cli.main", "decide", "--bench", str(n)], env=env, cwd=cwd, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def baseline_revision() -> str:
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "rules/catalogue.py"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split()
    return f"{added[-1]}^"


def latency(home: Path, decisions: int, rounds: int, revision: str, scratch: Path) -> dict:
    source = scratch / "baseline-src"
    source.mkdir()
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    base_home = scratch / "baseline-home"
    base_home.mkdir()
    for name in ("features", "mlartifacts", "mlflow.db", "raw"):
        (base_home / name).symlink_to((home / name).resolve())
    python = sys.executable
    base_env = {**os.environ, "CRM_HOME": str(base_home), "PYTHONPATH": str(source)}
    for step in (["rules", "submit", "rules/bundled", "--by", "bench-author", "--note", "baseline"],):
        subprocess.run([python, "-m", "cli.main", *step], env=base_env, cwd=source, check=True, capture_output=True)
    history = json.loads(subprocess.run([python, "-m", "cli.main", "rules", "history", "--json"], env=base_env,
                                        cwd=source, check=True, capture_output=True, text=True).stdout)
    version = history["versions"][-1]["version"]
    for step in (["rules", "approve", version, "--by", "bench-checker"], ["rules", "activate", version]):
        subprocess.run([python, "-m", "cli.main", *step], env=base_env, cwd=source, check=True, capture_output=True)
    now_env = {**os.environ, "CRM_HOME": str(home)}
    now_env.pop("PYTHONPATH", None)
    runs: dict[str, list[dict]] = {"baseline": [], "with_arbitration": []}
    for _ in range(rounds):
        runs["baseline"].append(_decide_bench(python, base_env, decisions, source))
        runs["with_arbitration"].append(_decide_bench(python, now_env, decisions, REPO))

    def med(kind: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[kind]), 3)

    summary = {k: {"p50_ms": med(k, "p50_ms"), "p90_ms": med(k, "p90_ms"), "p99_ms": med(k, "p99_ms"),
                   "rounds": [{"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]} for r in runs[k]]} for k in runs}
    ratio = round(summary["with_arbitration"]["p50_ms"] / summary["baseline"]["p50_ms"], 3)
    return {"baseline_revision": revision, "decisions_per_round": decisions, **summary, "p50_ratio": ratio,
            "met": ratio <= TARGET_LATENCY_RATIO}


def without_uplift_home(home: Path, scratch: Path) -> Path:
    """A view of ``home`` whose MLflow database (a copy) has no uplift champion: the same features, models,
    rules and contacts, decisions ranked by the catalogue's priors."""
    import sqlite3

    view = scratch / "without-uplift-home"
    view.mkdir()
    for entry in home.iterdir():
        if entry.name not in OWN_STATE:
            (view / entry.name).symlink_to(entry.resolve())
    shutil.copy(home / "mlflow.db", view / "mlflow.db")
    with sqlite3.connect(view / "mlflow.db") as db:
        removed = db.execute("DELETE FROM registered_model_aliases WHERE name = ?", (UPLIFT_MODEL,)).rowcount
    if not removed:
        raise SystemExit(f"{home} has no {UPLIFT_MODEL} alias: train it first (`crm train retention_uplift`)")
    return view


def uplift_latency(home: Path, decisions: int, rounds: int, scratch: Path) -> dict:
    """Decision latency with the uplift model in arbitration against the same checkout without it."""
    python = sys.executable
    env = {**os.environ, "CRM_HOME": str(home)}
    env.pop("PYTHONPATH", None)
    view_env = {**env, "CRM_HOME": str(without_uplift_home(home, scratch))}
    runs: dict[str, list[dict]] = {"without_uplift": [], "with_uplift": []}
    for _ in range(rounds):
        runs["without_uplift"].append(_decide_bench(python, view_env, decisions, REPO))
        runs["with_uplift"].append(_decide_bench(python, env, decisions, REPO))
    served = {kind: {UPLIFT_MODEL in (r["models"] or {}) for r in found} for kind, found in runs.items()}
    if served != {"without_uplift": {False}, "with_uplift": {True}}:
        raise SystemExit(f"the two sides did not serve what they should (uplift served: {served})")

    def med(kind: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[kind]), 3)

    summary = {k: {"p50_ms": med(k, "p50_ms"), "p90_ms": med(k, "p90_ms"), "p99_ms": med(k, "p99_ms"),
                   "rounds": [{"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]} for r in runs[k]]} for k in runs}
    ratio = round(summary["with_uplift"]["p50_ms"] / summary["without_uplift"]["p50_ms"], 3)
    return {"decisions_per_round": decisions, **summary, "p50_ratio": ratio, "target_ratio": TARGET_UPLIFT_RATIO,
            "met": ratio <= TARGET_UPLIFT_RATIO}


def _serve(env: dict, port: int, workers: int) -> subprocess.Popen:
    crm = str(Path(sys.executable).with_name("crm"))
    process = subprocess.Popen([crm, "serve", "--port", str(port), "--workers", str(workers)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError("crm serve did not become ready within 120 s")


def _key(env: dict, role: str) -> str:
    crm = str(Path(sys.executable).with_name("crm"))
    out = subprocess.run([crm, "keys", "create", "--role", role, "--name", f"bench-{role}"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return re.search(r"crm_[0-9a-f]+_\S+", out).group(0)


def serving(home: Path, workers: int, seconds: int, queue_requests: int, scratch: Path) -> dict:
    env = {**os.environ, "CRM_HOME": str(home), "CRM_SERVICE_DB_URL": f"sqlite:///{scratch / 'service.db'}"}
    env.pop("PYTHONPATH", None)
    crm = str(Path(sys.executable).with_name("crm"))
    plan = json.loads(subprocess.run([crm, "queue", "plan", "--json"], env=env, check=True, capture_output=True,
                                     text=True).stdout)
    rows = pq.read_table(plan["out"], columns=["decision_id", "action", "broker_id"]).to_pylist()
    lines = [f"/v1/decisions/{r['decision_id']}/outcomes " + json.dumps(
        {"action": r["action"], "status": status, "by": r["broker_id"]}, separators=(",", ":"))
        for status in ("attempted", "not_reached", "reached", "accepted", "declined") for r in rows]
    outcomes_file = scratch / "outcomes.txt"
    outcomes_file.write_text("\n".join(lines) + "\n")
    (scratch / "outcomes.lua").write_text(LUA)
    port = _free_port()
    key = _key(env, "front_office")
    server = _serve(env, port, workers)
    try:
        wrk = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", "-s", str(scratch / "outcomes.lua"),
                              f"http://127.0.0.1:{port}"], env={**env, "OUTCOMES_FILE": str(outcomes_file),
                                                                "CRM_KEY": key},
                             check=True, capture_output=True, text=True).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
        latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", wrk, re.M))
        stored = subprocess.run([sys.executable, "-c", (
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from outcomes')"
            ".fetchone()[0])"), str(scratch / "service.db")], check=True, capture_output=True, text=True).stdout
        clients = pq.read_table(home / "raw" / "clients.parquet", columns=["broker_id"]).to_pandas()
        sizes = clients["broker_id"].value_counts()
        broker = (sizes - 300).abs().idxmin()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        timings = []
        items = 0
        for _ in range(queue_requests):
            started = time.perf_counter()
            conn.request("GET", f"/v1/queue?broker_id={broker}&date={plan['date']}",
                         headers={"Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            body = response.read()
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status == 200, body[:300]
            items = len(json.loads(body)["items"])
        timings.sort()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    queue_p50 = round(timings[len(timings) // 2], 2)
    queue_p99 = round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 2)
    return {
        "outcomes": {"workers": workers, "seconds": seconds, "connections": 16, "per_second": rate,
                     "latency": latency, "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
                     "distinct_outcomes_offered": len(lines), "stored": int(stored),
                     "met": rate >= TARGET_OUTCOMES_PER_S},
        "queue": {"broker_id": str(broker), "clients": int(sizes[broker]), "items": items,
                  "requests": queue_requests, "p50_ms": queue_p50, "p99_ms": queue_p99,
                  "met": queue_p99 <= TARGET_QUEUE_MS},
        "plan": plan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="Git revision of today's engine (default: before the "
                                                          "action catalogue).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--queue-requests", type=int, default=300)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--uplift", action="store_true", help="Also compare decision latency with the uplift "
                                                              "model in arbitration and without it.")
    parser.add_argument("--only-uplift", action="store_true", help="Run only the uplift comparison.")
    args = parser.parse_args()
    home = args.home.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="bench-nba-"))
    try:
        result = {"machine": "2 shared cores; figures move with other load: compare within one run"}
        if args.uplift or args.only_uplift:
            result["uplift_decision_latency"] = uplift_latency(home, args.decisions, args.rounds, scratch)
        if args.only_uplift:
            report(result, home, "nba-uplift")
            return
        if not args.skip_latency:
            result["decision_latency"] = latency(home, args.decisions, args.rounds,
                                                 args.baseline or baseline_revision(), scratch)
        result |= serving(home, args.workers, args.seconds, args.queue_requests, scratch)
        report(result, home, "nba")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
