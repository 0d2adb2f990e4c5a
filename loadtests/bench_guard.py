"""Benchmark: what the audit journal and the rate limiter cost in decisions per second (target: at most 10 %).

Runs the same wrk load (single decisions for random real clients, 1 thread, 16 connections) against
`crm serve --workers 2` built from two checkouts over the same CRM_HOME, alternating them round after round so
that both see the same machine:
  before      the code without journal and limiter (a checkout of --base-ref, default the commit this branch
              started from, exported with `git archive` into OUT/base, run with PYTHONPATH pointing at it);
  after       this checkout: every decision journalled (no fsync) and counted against its key's limit per worker;
  after+redis the same with the limits counted in Redis (CRM_RATE_LIMIT_REDIS, --redis URL; skipped without);
  after+fsync the same with CRM_JOURNAL_FSYNC=true (with --with-fsync; for information: one flush per decision).
The key's limit is far above the load (nothing is refused; the counting is what is measured). Prints and keeps
the JSON (OUT/guard.json): requests/s and latency percentiles per run, medians per variant and each variant's
ratio to `before`. wrk must be installed (Debian package `wrk`).

Usage: python loadtests/bench_guard.py --home DIR [--seconds 20] [--rounds 3] [--redis redis://127.0.0.1:6379/12]
       [--with-fsync]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(base: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{base} never became ready")


def serve(home: Path, env: dict, log: Path, pythonpath: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environment = {**os.environ, "CRM_HOME": str(home), "CRM_ONLINE_TIMEOUT_MS": "1000", **env}
    if pythonpath:
        environment["PYTHONPATH"] = pythonpath
    command = [str(BIN / "python"), "-c", "from cli.main import app; app()", "serve", "--port", str(port),
               "--workers", "2"]
    process = subprocess.Popen(command, env=environment, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True, cwd=pythonpath or ROOT)
    base = f"http://127.0.0.1:{port}"
    ready(base)
    return process, base


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


LUA = """
local ids = {%s}
local key = "%s"
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("POST", "/v1/decisions", {["Authorization"] = "Bearer " .. key,
                    ["Content-Type"] = "application/json"}, '{"client_id": "' .. id .. '"}')
end
"""


def wrk(base: str, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), base],
                         capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)

    def ms(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"decisions_per_s": rate, "p50_ms": ms("50"), "p99_ms": ms("99"), "non_2xx": int(bad.group(1)) if bad else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--base-ref", default=None, help="git ref of the code before (default: merge-base with main)")
    parser.add_argument("--redis", default=None, help="Redis URL for the shared-limit variant")
    parser.add_argument("--with-fsync", action="store_true", help="also run with CRM_JOURNAL_FSYNC=true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    home = args.home.resolve()
    out = (args.out or home / "bench" / "guard").resolve()
    out.mkdir(parents=True, exist_ok=True)
    ref = args.base_ref or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True,
                                          text=True, check=True).stdout.strip()
    base_code = out / "base"
    shutil.rmtree(base_code, ignore_errors=True)
    base_code.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base_code)], input=archive, check=True)

    env = {**os.environ, "CRM_HOME": str(home)}
    made = subprocess.run([str(BIN / "crm"), "keys", "create", "--role", "front_office", "--name", "bench-guard",
                           "--rate-limit", "1000000"], env=env, capture_output=True, text=True, check=True)
    key = made.stdout.strip().split("\n")[-1]
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(home / "features" / "offline" / "client_category.parquet", columns=["client_id", "as_of"])
    latest = table.filter(pc.equal(table.column("as_of"), pc.max(table.column("as_of"))))  # the online store's
    ids = latest.column("client_id").unique().to_pylist()[:5000]
    script = out / "decisions.lua"
    script.write_text(LUA % (", ".join(f'"{i}"' for i in ids), key))

    variants: dict[str, tuple[dict, str | None]] = {"before": ({}, str(base_code)), "after": ({}, None)}
    if args.redis:
        variants["after+redis"] = ({"CRM_RATE_LIMIT_REDIS": args.redis}, None)
    if args.with_fsync:
        variants["after+fsync"] = ({"CRM_JOURNAL_FSYNC": "true"}, None)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for name, (extra, pythonpath) in variants.items():
            process, base = serve(home, extra, out / f"{name}-{round_}.log", pythonpath)
            try:
                wrk(base, script, args.warmup, args.connections)
                result = wrk(base, script, args.seconds, args.connections)
            finally:
                stop(process)
            runs[name].append(result)
            print(f"round {round_ + 1} {name}: {json.dumps(result)}", flush=True)
    medians = {name: {k: statistics.median(r[k] for r in results) for k in results[0]}
               for name, results in runs.items()}
    report = {
        "what": f"decisions/s of crm serve --workers 2 under wrk -t1 -c{args.connections}, single decisions; "
                f"before = {ref}",
        "machine": f"{os.cpu_count()} cores, shared with the load generator and other users",
        "seconds_per_run": args.seconds, "rounds": args.rounds, "runs": runs, "medians": medians,
        "ratio_to_before": {name: round(m["decisions_per_s"] / medians["before"]["decisions_per_s"], 3)
                            for name, m in medians.items()},
    }
    report["met"] = {"journal_and_limiter_cost_at_most_10_percent": report["ratio_to_before"]["after"] >= 0.9}
    (out / "guard.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
