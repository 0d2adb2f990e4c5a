"""Benchmark of the decision API over HTTP, with locust in its own process, against two baselines.

Targets: ≥ 1,500 decisions/s sustained by `crm serve --workers 2`; single decisions' p99 ≤ 10 ms at about 1,000
decisions/s; ≥ 12× the requests/s of `mlflow models serve` of the churn champion under the same load; ≤ 1 GB
resident per API worker. Steps, each server in its own process and stopped at the end (SIGTERM, then wait), also
on failure:
  1. a front-office key (`crm keys create`); if no ruleset is active, the bundled one is submitted, approved and
     activated (a benchmark world has none; --no-activate refuses instead);
  2. `crm serve`, ready when /readyz answers 200 and every worker has finished its startup;
  3. locust (loadtests/locustfile.py: single decisions, a few 20-50 client batches, a few unknown clients):
     a warm-up, then a paced run at about 1,000 decisions/s (users × decisions/s each, constant throughput), then
     a run at maximum throughput (no wait) while the workers' resident memory is sampled from /proc;
  4. the same maximum-throughput load on the trivial FastAPI endpoint (baseline_app.py, same worker count) and on
     `mlflow models serve -m models:/churn@champion` posting one row (checked to answer 200 first).
Server, locust logs and locust's CSV files go to OUT (default DIR/bench/api/); the JSON to OUT/api.json.
Exits non-zero when a server never becomes ready or a locust run makes no request; a missed target is reported
in `met`, not an error. The load generator shares the machine's cores with the server (see `machine`).

Usage: python loadtests/bench_api.py --home DIR [--seconds 30] [--warmup 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
TARGETS = {"decisions_per_s": 1500.0, "p99_ms_at_1000_per_s": 10.0, "times_mlflow": 12.0, "worker_rss_gb": 1.0}
MEAN_BATCH = 35.0  # the locustfile's batches hold 20-50 clients; used only if its summary is missing


class BenchError(Exception):
    """The benchmark could not run (a server never ready, a locust run without requests)."""


# HTTP ------------------------------------------------------------------------------------------------------------

def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 5.0) -> tuple[int | None, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return None, b""


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# processes -------------------------------------------------------------------------------------------------------

class Process:
    """A process started by the benchmark, in its own session so that its children can be stopped with it."""

    def __init__(self, name: str, command: list[str], env: dict, log: Path) -> None:
        self.name, self.log = name, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM, wait (the API drains its audit queue), then the session's leftovers; seconds it took."""
        started = time.perf_counter()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name}: still running {timeout:.0f} s after SIGTERM; SIGKILL", file=sys.stderr)
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        seconds = time.perf_counter() - started
        for sig in (signal.SIGTERM, signal.SIGKILL):  # children that outlived their parent
            if not self._group_alive():
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 10
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
        return round(seconds, 2)


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


def _kb_fields(path: str, names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    try:
        for line in Path(path).read_text().splitlines():
            name = line.split(":", 1)[0]
            if name in names:
                out[name] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def rss_mb(pid: int) -> float | None:
    """VmRSS: resident memory, private and shared (file pages such as the online store's memory map) alike."""
    return _kb_fields(f"/proc/{pid}/status", ("VmRSS",)).get("VmRSS")


def memory_mb(pid: int) -> dict:
    """VmRSS split into anonymous (private heap) and file-backed pages, and the proportional set size."""
    status = _kb_fields(f"/proc/{pid}/status", ("VmRSS", "RssAnon", "RssFile", "RssShmem"))
    rollup = _kb_fields(f"/proc/{pid}/smaps_rollup", ("Pss",))
    return {"pid": pid, "rss": status.get("VmRSS"), "anon": status.get("RssAnon"), "file": status.get("RssFile"),
            "shmem": status.get("RssShmem"), "pss": rollup.get("Pss")}


def api_workers(server_pid: int) -> list[int]:
    """uvicorn's worker processes: the children of `crm serve` started by multiprocessing's spawn."""
    workers = []
    for pid in children(server_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(pid)
    return workers or [server_pid]  # one worker: uvicorn serves in the `crm serve` process itself


class RssSampler(threading.Thread):
    """Resident memory of the API workers once a second while a load runs: the last sample and each peak."""

    def __init__(self, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.server_pid, self.last, self.peak = server_pid, {}, {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            sample = {pid: rss_mb(pid) for pid in api_workers(self.server_pid)}
            sample = {pid: mb for pid, mb in sample.items() if mb is not None}
            if sample:
                self.last = sample
                for pid, mb in sample.items():
                    self.peak[pid] = max(mb, self.peak.get(pid, 0.0))
            self.halt.wait(1.0)


# setup -----------------------------------------------------------------------------------------------------------

def run_cli(command: list[str], env: dict) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command[1:])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def ensure_active_ruleset(crm: str, env: dict, allowed: bool) -> str | None:
    """The active ruleset's version; activates the bundled one when none is (a fresh benchmark world)."""
    history = json.loads(run_cli([crm, "rules", "history", "--json"], env))
    active = [v["version"] for v in history.get("versions", []) if v.get("active")]
    if active:
        return None
    if not allowed:
        raise BenchError("no ruleset is active in this CRM_HOME and --no-activate was given")
    # Maker-checker acts as the holders of two compliance keys.
    author, approver = (create_key(crm, env, "compliance", name) for name in ("bench-author", "bench-approver"))
    submitted = subprocess.run([crm, "rules", "submit", "--key", author, "--note",
                                "bundled ruleset, for the API benchmark"], env=env, capture_output=True, text=True)
    if submitted.returncode == 0:
        version = submitted.stdout.split("submitted", 1)[1].split()[0]
        run_cli([crm, "rules", "approve", version, "--key", approver, "--note", "API benchmark"], env)
    else:  # already submitted earlier: activate the newest approved version
        history = json.loads(run_cli([crm, "rules", "history", "--json"], env))
        approved = [v["version"] for v in history.get("versions", []) if v.get("status") == "approved"]
        if not approved:
            raise BenchError(f"cannot submit the bundled ruleset: {submitted.stderr.strip()[-1000:]}")
        version = approved[-1]
    run_cli([crm, "rules", "activate", version, "--key", approver, "--note", "API benchmark"], env)
    return version


def create_key(crm: str, env: dict, role: str = "front_office", name: str = "") -> str:
    # A limit far above any load here: the limiter counts every request (its cost is measured) but refuses none.
    out = run_cli([crm, "keys", "create", "--role", role, "--name", name or f"bench-api-{int(time.time())}",
                   "--rate-limit", "1000000"], env)
    return out.strip().splitlines()[-1].strip()


def wait_api_ready(server: Process, base: str, workers: int, timeout: float) -> float:
    """Seconds until /readyz answers 200 and every worker has logged the end of its startup (a worker still
    loading accepts no connection, so one worker's 200 does not mean both are ready)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not server.alive():
            raise BenchError(f"{server.name} exited ({server.proc.returncode}) before being ready; see {server.log}")
        status, _ = http("GET", f"{base}/readyz", timeout=2)
        started_workers = server.log.read_text(errors="replace").count("Application startup complete")
        if status == 200 and started_workers >= workers:
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    raise BenchError(f"{server.name} not ready after {timeout:.0f} s (last /readyz: {status}); see {server.log}")


def wait_answering(server: Process, check, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not server.alive():
            raise BenchError(f"{server.name} exited ({server.proc.returncode}) before answering; see {server.log}")
        if check():
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    raise BenchError(f"{server.name} did not answer within {timeout:.0f} s; see {server.log}")


def serve_mlflow_champion(mlflow: str, tracking_uri: str, body: bytes, args, env: dict, out: Path,
                          started: list) -> tuple[Process, str, bytes]:
    """`mlflow models serve` of the churn champion (the comparison server), answering ``body`` before it is
    measured; returns the process (also appended to ``started``), its base URL and its first answer."""
    base = f"http://{args.host}:{args.mlflow_port}"
    served = Process("mlflow models serve", [mlflow, "models", "serve", "-m", "models:/churn@champion",
                                             "--env-manager", "local", "-h", args.host, "-p",
                                             str(args.mlflow_port), "-w", str(args.workers)],
                     {**env, "MLFLOW_TRACKING_URI": tracking_uri}, out / "mlflow-server.log")
    started.append(served)
    wait_answering(served, lambda: http("GET", f"{base}/ping")[0] == 200, args.ready_timeout)
    status, answer = http("POST", f"{base}/invocations", body, {"Content-Type": "application/json"}, timeout=30)
    if status != 200:
        raise BenchError(f"mlflow /invocations answered {status}: {answer[:500]!r}")
    return served, base, answer


def mlflow_payload(tracking_uri: str) -> tuple[bytes, dict]:
    """One row for /invocations, shaped by the champion's signature (pseudo-random float values)."""
    import random

    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    info = mlflow.models.get_model_info("models:/churn@champion")
    inputs = info.signature.inputs.to_dict() if info.signature else []
    spec = inputs[0] if len(inputs) == 1 else {}
    width = int(spec.get("tensor-spec", {}).get("shape", [-1, 65])[-1]) if spec else 65
    rng = random.Random(5)
    row = [round(rng.random(), 4) for _ in range(width)]
    body = {"inputs": [row]} if len(inputs) <= 1 else {"inputs": {inputs[0]["name"]: [row]}}
    return json.dumps(body).encode(), {"signature_inputs": inputs, "features": width}


# locust ----------------------------------------------------------------------------------------------------------

def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _row(row: dict) -> dict:
    requests, failures = int(row["Request Count"]), int(row["Failure Count"])
    return {"requests": requests, "failures": failures, "req_per_s": round(_number(row["Requests/s"]) or 0.0, 1),
            "p50_ms": _number(row["50%"]), "p95_ms": _number(row["95%"]), "p99_ms": _number(row["99%"]),
            "max_ms": round(_number(row["Max Response Time"]) or 0.0, 1)}


class Locust:
    def __init__(self, locust: str, out: Path, env: dict, processes: int, started: list[Process]) -> None:
        self.locust, self.out, self.env, self.processes, self.started = locust, out, env, processes, started

    def run(self, label: str, target: str, host: str, users: int, seconds: int, per_user: float = 0.0,
            extra_env: dict | None = None, during=None) -> dict:
        """One headless run; its figures from the --csv stats files (per name and Aggregated)."""
        prefix = self.out / label
        summary = self.out / f"{label}_summary.json"
        for old in (*self.out.glob(f"{label}_*.csv"), summary):
            old.unlink(missing_ok=True)
        env = {**self.env, **(extra_env or {}), "CRM_LOCUST_TARGET": target, "CRM_LOCUST_SUMMARY": str(summary),
               "CRM_DECISIONS_PER_USER_S": str(per_user)}
        command = [self.locust, "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
                   "--run-time", f"{seconds}s", "--host", host, "--csv", str(prefix), "--only-summary",
                   "--reset-stats", "--stop-timeout", "10"]
        if self.processes:
            command += ["--processes", str(self.processes)]
        process = Process(f"locust {label}", command, env, self.out / f"{label}.log")
        self.started.append(process)
        try:
            if during is not None:
                during(process)
            process.proc.wait(seconds + 120)
        except subprocess.TimeoutExpired:
            raise BenchError(f"locust {label} did not finish; see {process.log}") from None
        finally:
            process.stop(15)
        stats = prefix.with_name(f"{label}_stats.csv")
        if not stats.exists():
            raise BenchError(f"locust {label} did not start (exit {process.proc.returncode}); see {process.log}")
        with stats.open() as f:
            rows = {row["Name"]: _row(row) for row in csv.DictReader(f)}
        total = rows.get("Aggregated")
        if not total or total["requests"] == 0:
            raise BenchError(f"locust {label} made no request (exit {process.proc.returncode}); see {process.log}")
        log = process.log.read_text(errors="replace")
        result = {"users": users, "seconds": seconds, "aggregated": total,
                  "by_name": {k: v for k, v in rows.items() if k != "Aggregated"},
                  "failure_ratio": round(total["failures"] / total["requests"], 5),
                  "locust_exit_code": process.proc.returncode,
                  "load_generator_cpu_warning": "CPU usage above" in log}
        if per_user:
            result["per_user_decisions_per_s"] = per_user
        if summary.exists():
            result["summary"] = json.loads(summary.read_text())
        return result


def decision_figures(run: dict) -> dict:
    """Decisions per second (a batch counts its decided clients) and single decisions' latency percentiles."""
    names, summary = run["by_name"], run.get("summary", {})
    single = names.get("decision", {"requests": 0, "failures": 0, "req_per_s": 0.0})
    batch = names.get("batch", {"requests": 0, "failures": 0, "req_per_s": 0.0})
    single_ok_rate = single["req_per_s"] * (1 - single["failures"] / single["requests"]) if single["requests"] else 0
    if summary.get("batch_requests"):
        per_batch = summary["batch_decisions"] / summary["batch_requests"]
    else:
        per_batch = MEAN_BATCH * (1 - batch["failures"] / batch["requests"]) if batch["requests"] else 0.0
    decided = summary.get("single_decisions", 0) + summary.get("batch_decisions", 0)
    return {"decisions_per_s": round(single_ok_rate + batch["req_per_s"] * per_batch, 1),
            "single_decisions_per_s": round(single_ok_rate, 1), "requests_per_s": run["aggregated"]["req_per_s"],
            "p50_ms": single.get("p50_ms"), "p95_ms": single.get("p95_ms"), "p99_ms": single.get("p99_ms"),
            "p99_ms_all_requests": run["aggregated"]["p99_ms"],
            "single_unrounded_ms": summary.get("single_ms"),
            "degraded_ratio": round(summary["degraded"] / decided, 5) if decided else None,
            "failure_ratio": run["failure_ratio"]}


# metrics of the API ----------------------------------------------------------------------------------------------

def api_counters(base: str) -> dict:
    """From /metrics: requests by status class, degraded decisions; from /readyz: the audit backlog."""
    status, body = http("GET", f"{base}/metrics", timeout=10)
    out: dict = {"requests_by_status": {}, "degraded_decisions": None}
    if status == 200:
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("crm_requests_total{"):
                labels, value = line.rsplit(" ", 1)
                code = labels.split('status="', 1)[1].split('"', 1)[0]
                out["requests_by_status"][code] = out["requests_by_status"].get(code, 0) + int(float(value))
            elif line.startswith("crm_degraded_decisions_total "):
                out["degraded_decisions"] = int(float(line.split()[-1]))
    backlogs = []
    for _ in range(4):  # each connection may reach another worker
        status, body = http("GET", f"{base}/readyz", timeout=10)
        if body:
            with contextlib.suppress(ValueError):
                backlogs.append(json.loads(body).get("audit_backlog"))
    out["audit_backlog"] = max((b for b in backlogs if b is not None), default=None)
    return out


# main ------------------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="CRM_HOME: features materialized, models trained")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="crm serve's port")
    parser.add_argument("--trivial-port", type=int, default=8001)
    parser.add_argument("--mlflow-port", type=int, default=8002)
    parser.add_argument("--workers", type=int, default=2, help="API workers (the baselines get as many)")
    parser.add_argument("--seconds", type=int, default=30, help="length of each measured run")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured warm-up run against the API (0: none)")
    parser.add_argument("--max-users", type=int, default=64, help="users of the maximum-throughput runs")
    parser.add_argument("--paced-users", type=int, default=50)
    parser.add_argument("--paced-rate", type=float, default=20.0, help="decisions/s of each paced user")
    parser.add_argument("--mix", default="95,4,1", help="weights of single, unknown-client and batch requests")
    parser.add_argument("--locust-processes", type=int, default=0, help="locust --processes (0: one process)")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--no-baselines", action="store_true", help="skip the trivial and MLflow baselines")
    parser.add_argument("--no-activate", action="store_true", help="fail instead of activating the bundled ruleset")
    parser.add_argument("--out", type=Path, default=None, help="logs, CSV and api.json; default HOME/bench/api")
    args = parser.parse_args()

    home = args.home.resolve()
    out = (args.out or home / "bench" / "api").resolve()
    out.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    crm, locust, mlflow = (str(bin_dir / name) for name in ("crm", "locust", "mlflow"))
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    env = {**os.environ, "CRM_HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    started: list[Process] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` below: stop every server
    load = Locust(locust, out, env, args.locust_processes, started)
    result: dict = {"home": str(home), "workers": args.workers, "seconds_per_run": args.seconds, "mix": args.mix,
                    "machine": {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in os.getloadavg()],
                                "load_generator": f"locust, {args.locust_processes or 1} process(es), same machine"}}
    try:
        for port in (args.port, *(() if args.no_baselines else (args.trivial_port, args.mlflow_port))):
            if not port_free(args.host, port):
                raise BenchError(f"port {port} is already in use on {args.host}; choose another")
        activated = ensure_active_ruleset(crm, env, allowed=not args.no_activate)
        if activated:
            result["ruleset_activated_by_bench"] = activated
        key = create_key(crm, env)
        api_env = {"CRM_API_KEY": key, "CRM_LOCUST_MIX": args.mix}
        base = f"http://{args.host}:{args.port}"
        db = home / "service.db"
        db_before = db.stat().st_size if db.exists() else 0

        server = Process("crm serve", [crm, "serve", "--host", args.host, "--port", str(args.port), "--workers",
                                       str(args.workers)], {**env, "PYTHONFAULTHANDLER": "1"}, out / "api-server.log")
        started.append(server)
        api: dict = {"ready_seconds": wait_api_ready(server, base, args.workers, args.ready_timeout)}
        api["worker_rss_mb_when_ready"] = [rss_mb(pid) for pid in api_workers(server.pid)]
        if args.warmup:
            load.run("api-warmup", "decisions", base, min(args.max_users, 16), args.warmup, extra_env=api_env)
        paced = load.run("api-paced", "decisions", base, args.paced_users, args.seconds, args.paced_rate,
                         extra_env=api_env)
        sampler = RssSampler(server.pid)

        def sample(_: Process) -> None:
            sampler.start()

        maximum = load.run("api-max", "decisions", base, args.max_users, args.seconds, extra_env=api_env,
                           during=sample)
        sampler.halt.set()
        sampler.join()
        api["worker_memory_mb_after_load"] = [memory_mb(pid) for pid in api_workers(server.pid)]
        api["counters_after_load"] = api_counters(base)
        api["shutdown_seconds"] = server.stop()
        # uvicorn's supervisor logs this when a worker exits or stops answering its 5 s health check (then kills it)
        server_log = server.log.read_text(errors="replace")
        result["worker_restarts"] = api["worker_restarts"] = server_log.count("] died")
        api["audit_write_retries"] = server_log.count("audit write failed")
        api["service_db_growth_mb"] = round(((db.stat().st_size if db.exists() else 0) - db_before) / 1024**2, 1)
        api["worker_rss_mb_end_of_load"] = list(sampler.last.values())
        api["worker_rss_mb_peak"] = list(sampler.peak.values())
        api["max_load"], api["paced"] = maximum, paced
        result["api"] = api

        at_max, at_paced = decision_figures(maximum), decision_figures(paced)
        result["max_load"] = at_max
        result["at_1000_per_s"] = {"target_decisions_per_s": round(args.paced_users * args.paced_rate), **at_paced}
        result["decisions_per_s"] = at_max["decisions_per_s"]
        result["failure_ratio"] = round((maximum["aggregated"]["failures"] + paced["aggregated"]["failures"])
                                        / (maximum["aggregated"]["requests"] + paced["aggregated"]["requests"]), 5)
        result["worker_rss_mb"] = api["worker_rss_mb_end_of_load"]
        result["worker_rss_mb_peak"] = max(api["worker_rss_mb_peak"], default=None)  # restarted workers included

        if not args.no_baselines:
            baselines: dict = {}
            trivial_base = f"http://{args.host}:{args.trivial_port}"
            trivial = Process("trivial FastAPI", [sys.executable, "-m", "uvicorn", "baseline_app:app", "--app-dir",
                                                  str(HERE), "--host", args.host, "--port", str(args.trivial_port),
                                                  "--workers", str(args.workers), "--no-access-log", "--log-level",
                                                  "warning"], env, out / "trivial-server.log")
            started.append(trivial)
            wait_answering(trivial, lambda: http("POST", f"{trivial_base}/echo", b"{}")[0] == 200, 60)
            time.sleep(2)  # the other workers
            run = load.run("trivial-max", "trivial", trivial_base, args.max_users, args.seconds)
            trivial.stop()
            baselines["trivial_fastapi"] = {"req_per_s": run["aggregated"]["req_per_s"],
                                            "p50_ms": run["aggregated"]["p50_ms"],
                                            "p99_ms": run["aggregated"]["p99_ms"],
                                            "failure_ratio": run["failure_ratio"], "workers": args.workers,
                                            "run": run}

            body, model = mlflow_payload(tracking_uri)
            payload = out / "mlflow-payload.json"
            payload.write_bytes(body)
            served, mlflow_base, answer = serve_mlflow_champion(mlflow, tracking_uri, body, args, env, out, started)
            time.sleep(2)
            run = load.run("mlflow-max", "mlflow", mlflow_base, args.max_users, args.seconds,
                           extra_env={"CRM_MLFLOW_PAYLOAD_FILE": str(payload)})
            served.stop()
            baselines["mlflow_serve"] = {"req_per_s": run["aggregated"]["req_per_s"],
                                         "p50_ms": run["aggregated"]["p50_ms"],
                                         "p99_ms": run["aggregated"]["p99_ms"],
                                         "failure_ratio": run["failure_ratio"], "workers": args.workers,
                                         "model": model, "example_answer": json.loads(answer), "run": run}
            result["baselines"] = baselines
            mlflow_rate = run["aggregated"]["req_per_s"]
            result["times_mlflow"] = round(result["decisions_per_s"] / mlflow_rate, 2) if mlflow_rate else None
    except BenchError as e:
        print(f"bench_api: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        for process in reversed(started):
            process.stop()

    result["targets"] = TARGETS
    worst_rss = max([result["worker_rss_mb_peak"] or 0.0, *result["worker_rss_mb"]])
    result["met"] = {
        "decisions_per_s_at_least_1500": result["decisions_per_s"] >= TARGETS["decisions_per_s"],
        "p99_at_most_10ms_at_1000_per_s": (result["at_1000_per_s"]["p99_ms"] or float("inf"))
        <= TARGETS["p99_ms_at_1000_per_s"],
        "at_least_12x_mlflow": None if result.get("times_mlflow") is None
        else result["times_mlflow"] >= TARGETS["times_mlflow"],
        "worker_rss_at_most_1gb": worst_rss / 1024 <= TARGETS["worker_rss_gb"],
    }
    result["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    (out / "api.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
