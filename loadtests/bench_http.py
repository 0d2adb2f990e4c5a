"""Benchmark of the decision path over HTTP with wrk, side by side with what FastAPI and MLflow allow here.

In one run, one after the other and each alone on the machine, three servers with the same worker count get the
same wrk load (one thread, 32 connections, a 5 s warm-up, then 15 s measured):
  - the trivial FastAPI endpoint (loadtests/baseline_app.py ``POST /client``: parse a client id, answer a constant);
  - ``mlflow models serve`` of the churn champion (``--env-manager local``), one row per request, no feature read;
  - ``crm serve`` decisions (``POST /v1/decisions`` for random real clients: online read, three models, rules,
    audit record).
It prints one table (requests/s, p50, p99, the servers' CPU time per request, resident memory per worker) with the
ratios decisions/trivial and decisions/mlflow (and the same ratios of requests per CPU second, which other jobs on
a shared machine disturb far less than the rates), then paces the decision server at half of its own maximum rate
and the trivial endpoint at that same rate, and compares their p99.

Pacing: wrk has no rate option (wrk2 is not in Debian). The wrk script's ``delay()`` hands each request of the
thread the next slot of a fixed schedule (one slot every 1/rate s, over the 32 connections) and waits until that
slot; wrk's latency runs from the moment the request is written to the last byte of the answer. A request that
could only be sent more than 1 ms after its slot (every connection was busy) counts as late; the JSON reports the
share, which should stay near 0 at half the maximum rate (otherwise the paced latency hides queueing).

Every answer must be a 2xx (wrk counts other statuses and socket errors; reported, and the decisions' must be 0),
and no decision may be degraded (read from the API's /metrics). The JSON goes to HOME/bench/http.json.

Usage: python loadtests/bench_http.py --home DIR [--workers 2] [--seconds 15] [--warmup 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from _timing import report  # run as a script: the folder is on sys.path
from bench_api import (
    BenchError,
    Process,
    children,
    create_key,
    ensure_active_ruleset,
    http,
    mlflow_payload,
    port_free,
    serve_mlflow_champion,
    wait_answering,
    wait_api_ready,
)

HERE = Path(__file__).resolve().parent
TARGETS = {"decisions_vs_trivial": 0.25, "decisions_vs_mlflow": 3.0, "paced_p99_vs_trivial": 5.0,
           "worker_rss_gb": 1.0}

WRK_SCRIPT = r"""
-- Written by loadtests/bench_http.py. Arguments: body-file method path rate [header ...]
-- body-file holds one request body a line; each request takes a random one. rate 0: as fast as possible.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local bodies, method, path, interval, headers = {}, "POST", "/", 0, {}
local next_slot, late, paced = nil, 0, 0

function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  method, path = args[2], args[3]
  local rate = tonumber(args[4])
  interval = rate > 0 and 1000 / rate or 0
  for i = 5, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  math.randomseed(7)
  -- wrk looks for delay() after init: unpaced runs have none (a 0 ms timer per request would cost throughput)
  if interval == 0 then delay = nil end
end

function request()
  return wrk.format(method, path, headers, bodies[math.random(#bodies)])
end

function delay()
  local now = now_ms()
  if next_slot == nil then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval
  paced = paced + 1
  if slot < now - 1 then late = late + 1 end
  return slot > now and math.floor(slot - now + 0.5) or 0
end

function done(summary, latency, requests)
  local q = {}
  for _, p in ipairs({50, 90, 99, 99.9}) do q[#q + 1] = string.format('"p%s_us": %d', p, latency:percentile(p)) end
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "non_2xx_3xx": %d, "timeouts": %d, "mean_us": %.1f, "max_us": %d, %s}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, latency.mean, latency.max,
    table.concat(q, ", ")))
end
"""

# Per-thread counters of the pacing (late slots) are read back in setup/done through wrk's thread objects.
WRK_LATE = r"""
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
local base_done = done
function done(summary, latency, requests)
  local total_late, total_paced = 0, 0
  for _, t in ipairs(threads) do
    total_late = total_late + (t:get("late") or 0)
    total_paced = total_paced + (t:get("paced") or 0)
  end
  io.write(string.format('WRK_PACING {"late": %d, "paced": %d}\n', total_late, total_paced))
  base_done(summary, latency, requests)
end
"""


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("wrk is not installed: `apt-get install -y wrk` (make bench installs it)")
    return found


class Wrk:
    """One wrk run: a thread, N connections, a body picked at random from a file, optional pacing."""

    def __init__(self, out: Path, connections: int, threads: int = 1) -> None:
        self.out, self.connections, self.threads = out, connections, threads
        # `late` and `paced` must be globals of the thread's Lua state for thread:get to see them.
        self.script = out / "wrk-bench.lua"
        self.script.write_text(WRK_SCRIPT.replace("local next_slot, late, paced = nil, 0, 0",
                                                  "next_slot, late, paced = nil, 0, 0") + WRK_LATE)

    def run(self, label: str, url: str, bodies: Path, seconds: int, rate: float = 0.0,
            headers: dict | None = None, path: str = "/") -> dict:
        args = [str(bodies), "POST", path, f"{rate:.3f}",
                *(f"{k}: {v}" for k, v in {"Content-Type": "application/json", **(headers or {})}.items())]
        command = [wrk_binary(), "-t", str(self.threads), "-c", str(self.connections), "-d", f"{seconds}s",
                   "--timeout", "10s", "-s", str(self.script), url, "--", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
        (self.out / f"wrk-{label}.log").write_text(done.stdout + done.stderr)
        found = re.search(r"^WRK_JSON (\{.*\})$", done.stdout, re.M)
        if done.returncode != 0 or found is None:
            raise BenchError(f"wrk {label} failed ({done.returncode}): {(done.stderr or done.stdout)[-1000:]}")
        raw = json.loads(found.group(1))
        pacing = re.search(r"^WRK_PACING (\{.*\})$", done.stdout, re.M)
        seconds_measured = raw["duration_us"] / 1e6
        errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx_3xx", "timeouts"))
        result = {"requests": raw["requests"], "seconds": round(seconds_measured, 2),
                  "requests_per_s": round(raw["requests"] / seconds_measured, 1),
                  "p50_ms": round(raw["p50_us"] / 1000, 2), "p90_ms": round(raw["p90_us"] / 1000, 2),
                  "p99_ms": round(raw["p99_us"] / 1000, 2), "p99_9_ms": round(raw["p99.9_us"] / 1000, 2),
                  "max_ms": round(raw["max_us"] / 1000, 2), "mean_ms": round(raw["mean_us"] / 1000, 2),
                  "errors": errors, "error_detail": {k: raw[k] for k in ("connect_errors", "read_errors",
                                                                         "write_errors", "non_2xx_3xx", "timeouts")},
                  "connections": self.connections, "threads": self.threads}
        if rate:
            late = json.loads(pacing.group(1)) if pacing else {"late": None, "paced": None}
            result["paced_rate_per_s"] = round(rate, 1)
            result["late_share"] = round(late["late"] / late["paced"], 4) if late.get("paced") else None
        return result


def tree_rss_mb(pid: int) -> dict[int, float]:
    """Resident memory (VmRSS, MB) of the processes that serve under ``pid``: the leaves of its process tree
    (uvicorn's workers), or ``pid`` itself when it has no children; multiprocessing's resource tracker is left out."""
    leaves, stack = [], [pid]
    while stack:
        current = stack.pop()
        kids = children(current)
        if not kids:
            leaves.append(current)
        stack.extend(kids)
    out: dict[int, float] = {}
    for leaf in leaves:
        try:
            if b"resource_tracker" in Path(f"/proc/{leaf}/cmdline").read_bytes():
                continue
            for line in Path(f"/proc/{leaf}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[leaf] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            continue
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU time (user + system, seconds) used so far by the serving processes under ``pid`` (as
    :func:`tree_rss_mb` finds them). On a machine shared with other jobs, requests/s depend on the scheduler; the
    CPU time a server spends per request does not."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for leaf in tree_rss_mb(pid):
        try:
            stat = Path(f"/proc/{leaf}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


class RssPeak(threading.Thread):
    """The peak resident memory of each serving process under a server, sampled twice a second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.halt = pid, {}, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for p, mb in tree_rss_mb(self.pid).items():
                self.peak[p] = max(mb, self.peak.get(p, 0.0))
            self.halt.wait(0.5)

    def stop(self) -> list[float]:
        self.halt.set()
        self.join()
        return sorted(self.peak.values(), reverse=True)


def degraded_count(base: str) -> int | None:
    status, body = http("GET", f"{base}/metrics", timeout=10)
    if status != 200:
        return None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("crm_degraded_decisions_total "):
            return int(float(line.split()[-1]))
    return 0


def in_app_latency(base: str) -> dict[str, float]:
    """The API's own latency histogram of POST /v1/decisions (Measure middleware: from the request reaching the
    app to the last byte handed to the server): cumulative count per bucket bound in seconds."""
    status, body = http("GET", f"{base}/metrics", timeout=10)
    out: dict[str, float] = {}
    if status != 200:
        return out
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("crm_request_latency_seconds_bucket{") and 'route="/v1/decisions"' in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[bound] = out.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def in_app_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Share of the decisions between two histogram readings that took at most each bound inside the app."""
    total = after.get("+Inf", 0.0) - before.get("+Inf", 0.0)
    if total <= 0:
        return {}
    return {f"le_{bound}s": round((after[bound] - before.get(bound, 0.0)) / total, 4)
            for bound in ("0.002", "0.005", "0.01", "0.05", "0.1") if bound in after}


def client_ids(home: Path) -> list[str]:
    """The real clients of the latest month-end (the offline client_category table)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(home / "features" / "offline" / "client_category.parquet", columns=["client_id", "as_of"])
    ids = table.filter(pc.equal(table["as_of"], pc.max(table["as_of"])))["client_id"].to_pylist()
    if not ids:
        raise BenchError(f"no clients in {home}/features/offline/client_category.parquet")
    return sorted(set(ids))


def measure(load: Wrk, label: str, url: str, bodies: Path, args, server: Process, **kw) -> dict:
    """A warm-up run (discarded), then the measured run while the workers' memory is sampled."""
    if args.warmup:
        load.run(f"{label}-warmup", url, bodies, args.warmup, **kw)
    sampler = RssPeak(server.pid)
    sampler.start()
    cpu_before = tree_cpu_s(server.pid)
    try:
        result = load.run(label, url, bodies, args.seconds, **kw)
    finally:
        result_rss = sampler.stop()
    cpu = tree_cpu_s(server.pid) - cpu_before
    result["worker_rss_mb_peak"] = result_rss
    result["server_cpu_ms_per_request"] = round(1000 * cpu / max(result["requests"], 1), 3)
    return result


def table(rows: list[tuple[str, dict]], ratios: dict, paced: dict) -> str:
    lines = ["| server | requests/s | p50 ms | p99 ms | errors | server CPU ms/request | RSS per worker MB (peak) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, r in rows:
        rss = ", ".join(f"{mb:,.0f}" for mb in r.get("worker_rss_mb_peak", []))
        lines.append(f"| {name} | {r['requests_per_s']:,.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
                     f"{r.get('server_cpu_ms_per_request')} | {rss} |")
    lines.append("")
    lines.append(f"decisions/trivial = {ratios['decisions_vs_trivial']}   decisions/mlflow = "
                 f"{ratios['decisions_vs_mlflow']}   (per CPU second: decisions/trivial = "
                 f"{ratios.get('cpu_decisions_vs_trivial')}, decisions/mlflow = "
                 f"{ratios.get('cpu_decisions_vs_mlflow')})")
    if paced:
        d, t = paced["decisions"], paced["trivial"]
        lines.append(f"at {d['paced_rate_per_s']:,.0f} requests/s (half the decisions' maximum): decisions p99 "
                     f"{d['p99_ms']} ms (late {d['late_share']}), trivial p99 {t['p99_ms']} ms (late "
                     f"{t['late_share']}); ratio {paced['p99_ratio']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="CRM_HOME: features materialized, models trained")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="crm serve's port")
    parser.add_argument("--trivial-port", type=int, default=8011)
    parser.add_argument("--mlflow-port", type=int, default=8012)
    parser.add_argument("--workers", type=int, default=2, help="workers of each server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15, help="length of each measured run")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured run before each measured one (0: none)")
    parser.add_argument("--paced-share", type=float, default=0.5,
                        help="paced run at this share of the decisions' maximum rate (0: skip)")
    parser.add_argument("--only", choices=["all", "decisions"], default="all",
                        help="decisions: only the decision server (for quick before/after comparisons)")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=None, help="logs and bodies; default HOME/bench/http")
    args = parser.parse_args()

    home = args.home.resolve()
    out = (args.out or home / "bench" / "http").resolve()
    out.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    crm, mlflow = str(bin_dir / "crm"), str(bin_dir / "mlflow")
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    env = {**os.environ, "CRM_HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    started: list[Process] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` below: stop every server
    load = Wrk(out, args.connections)
    result: dict = {"home": str(home), "workers": args.workers,
                    "load": {"tool": "wrk", "threads": 1, "connections": args.connections,
                             "warmup_s": args.warmup, "seconds": args.seconds},
                    "machine": {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in os.getloadavg()]}}
    try:
        ports = (args.port,) if args.only == "decisions" else (args.port, args.trivial_port, args.mlflow_port)
        for port in ports:
            if not port_free(args.host, port):
                raise BenchError(f"port {port} is already in use on {args.host}; choose another")
        ids = client_ids(home)
        bodies = out / "decision-bodies.txt"
        bodies.write_text("".join(json.dumps({"client_id": c}) + "\n" for c in ids))
        activated = ensure_active_ruleset(crm, env, allowed=True)
        if activated:
            result["ruleset_activated_by_bench"] = activated
        key = create_key(crm, env)

        # 1. the decision server: maximum, then paced at a share of its maximum
        base = f"http://{args.host}:{args.port}"
        server = Process("crm serve", [crm, "serve", "--host", args.host, "--port", str(args.port), "--workers",
                                       str(args.workers)], env, out / "api-server.log")
        started.append(server)
        wait_api_ready(server, base, args.workers, args.ready_timeout)
        auth = {"Authorization": f"Bearer {key}"}
        degraded_before = degraded_count(base) or 0
        decisions = measure(load, "decisions", f"{base}/v1/decisions", bodies, args, server, headers=auth,
                            path="/v1/decisions")
        paced: dict = {}
        if args.paced_share:
            rate = decisions["requests_per_s"] * args.paced_share
            histogram = in_app_latency(base)
            paced["decisions"] = load.run("decisions-paced", f"{base}/v1/decisions", bodies, args.seconds, rate,
                                          headers=auth, path="/v1/decisions")
            # Where the paced tail is spent: inside the app, or waiting for a core before and after it.
            paced["decisions"]["in_app_share_within"] = in_app_shares(histogram, in_app_latency(base))
        degraded_after = degraded_count(base)
        decisions["degraded"] = None if degraded_after is None else degraded_after - degraded_before
        server.stop()
        result["decisions"] = decisions
        rows = [("crm serve decisions", decisions)]

        if args.only == "all":
            # 2. the trivial endpoint: maximum, then at the decisions' paced rate
            trivial_base = f"http://{args.host}:{args.trivial_port}"
            trivial = Process("trivial FastAPI", [sys.executable, "-m", "uvicorn", "baseline_app:app", "--app-dir",
                                                  str(HERE), "--host", args.host, "--port", str(args.trivial_port),
                                                  "--workers", str(args.workers), "--no-access-log", "--log-level",
                                                  "warning"], env, out / "trivial-server.log")
            started.append(trivial)
            wait_answering(trivial, lambda: http("POST", f"{trivial_base}/client", b'{"client_id": "C1"}',
                                                 {"Content-Type": "application/json"})[0] == 200, 60)
            time.sleep(2)  # the other workers
            result["trivial"] = measure(load, "trivial", f"{trivial_base}/client", bodies, args, trivial,
                                        path="/client")
            if paced:
                paced["trivial"] = load.run("trivial-paced", f"{trivial_base}/client", bodies, args.seconds,
                                            paced["decisions"]["paced_rate_per_s"], path="/client")
            trivial.stop()

            # 3. mlflow models serve of the churn champion, one row per request
            body, model = mlflow_payload(tracking_uri)
            mlflow_bodies = out / "mlflow-bodies.txt"
            mlflow_bodies.write_bytes(body + b"\n")
            served, mlflow_base, _ = serve_mlflow_champion(mlflow, tracking_uri, body, args, env, out, started)
            time.sleep(2)
            result["mlflow"] = measure(load, "mlflow", f"{mlflow_base}/invocations", mlflow_bodies, args, served,
                                       path="/invocations")
            result["mlflow"]["model"] = model["features"]
            served.stop()
            rows = [("trivial FastAPI (parse a client id)", result["trivial"]),
                    ("mlflow models serve, churn champion", result["mlflow"]), *rows]
    except BenchError as e:
        print(f"bench_http: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        for process in reversed(started):
            process.stop()

    rate = result["decisions"]["requests_per_s"]
    ratios = {"decisions_vs_trivial": None, "decisions_vs_mlflow": None}
    if "trivial" in result:
        cpu = {name: result[name].get("server_cpu_ms_per_request") or 0.0
               for name in ("decisions", "trivial", "mlflow")}
        ratios = {"decisions_vs_trivial": round(rate / result["trivial"]["requests_per_s"], 3),
                  "decisions_vs_mlflow": round(rate / result["mlflow"]["requests_per_s"], 2),
                  # requests per CPU second, decisions against each other server
                  "cpu_decisions_vs_trivial": round(cpu["trivial"] / cpu["decisions"], 3) if cpu["decisions"] else None,
                  "cpu_decisions_vs_mlflow": round(cpu["mlflow"] / cpu["decisions"], 2) if cpu["decisions"] else None}
    result["ratios"] = ratios
    if paced:
        if "trivial" in paced:
            paced["p99_ratio"] = round(paced["decisions"]["p99_ms"] / max(paced["trivial"]["p99_ms"], 1e-3), 2)
        else:
            paced["trivial"] = {"p99_ms": None, "late_share": None}
            paced["p99_ratio"] = None
        result["paced"] = paced
    worst_rss = max(result["decisions"]["worker_rss_mb_peak"], default=0.0)
    result["targets"] = TARGETS
    result["met"] = {
        "decisions_at_least_25pct_of_trivial": None if ratios["decisions_vs_trivial"] is None
        else ratios["decisions_vs_trivial"] >= TARGETS["decisions_vs_trivial"],
        "decisions_at_least_3x_mlflow": None if ratios["decisions_vs_mlflow"] is None
        else ratios["decisions_vs_mlflow"] >= TARGETS["decisions_vs_mlflow"],
        "paced_p99_at_most_5x_trivial": None if not paced or paced.get("p99_ratio") is None
        else paced["p99_ratio"] <= TARGETS["paced_p99_vs_trivial"],
        "worker_rss_at_most_1gb": worst_rss / 1024 <= TARGETS["worker_rss_gb"],
        "no_errors_no_degraded": result["decisions"]["errors"] == 0 and result["decisions"]["degraded"] == 0,
    }
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["table"] = table(rows, ratios, paced if paced.get("p99_ratio") is not None else {})
    report(result, home, "http" if args.only == "all" else "http-decisions")
    print()
    print(result["table"])


if __name__ == "__main__":
    main()
