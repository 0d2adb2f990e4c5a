"""Benchmark of `crm data generate`: wall time and peak memory, run as a separate process.

Targets: 100,000 clients × 24 months in ≤ 180 s with peak memory ≤ 6 GB on a 2-core machine, and the same world
with an action plan of 10,000 actions in at most 1.2 × the time without one (``--plan-actions``).
Usage: python loadtests/bench_generate.py [--clients 100000 ...] [--plan-actions 10000] ; results go to
$CRM_HOME/bench/generate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_SECONDS = 180.0
TARGET_PEAK_GB = 6.0
TARGET_PLAN_RATIO = 1.2
ACTIONS = ("senior_advisor_visit", "review_commission_rate", "broker_retention_call", "investment_advisory_session",
           "investor_education", "branch_manager_call", "resolve_open_complaints")


def write_plan(path: Path, clients: int, months: int, actions: int, seed: int = 1) -> Path:
    """A plan of ``actions`` random retention actions on random clients and days of a world starting 2024-01."""
    rng = np.random.default_rng(seed)
    last = pd.Timestamp("2024-01-01") + pd.DateOffset(months=months) - pd.Timedelta(days=10)
    days = pd.bdate_range("2024-01-08", last)
    pd.DataFrame({
        "client_id": [f"C{k:07d}" for k in rng.integers(1, clients + 1, actions)],
        "action": rng.choice(np.array(ACTIONS), actions),
        "date": days[rng.integers(0, len(days), actions)],
        "channel": None,
        "broker_id": None,
    }).to_parquet(path)
    return path


def run(clients: int, months: int, plan: Path | None = None) -> dict:
    crm = Path(sys.executable).with_name("crm")
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as home:
        env = {**os.environ, "CRM_HOME": home}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        command = [str(crm), "data", "generate", "--clients", str(clients), "--months", str(months), "--seed", "7"]
        if plan is not None:
            command += ["--actions", str(plan)]
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rows = sum(1 for _ in (Path(home) / "raw").glob("*.parquet"))
    return {
        "clients": clients,
        "months": months,
        "plan_actions": 0 if plan is None else len(pd.read_parquet(plan)),
        "seconds": round(seconds, 1),
        # ru_maxrss of children is the largest child so far: only meaningful when it grew.
        "peak_memory_gb": round(max(peak_kb, before) / 1024**2, 2),
        "tables": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[100_000])
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--plan-actions", type=int, default=0,
                        help="Also generate each world with a random plan of this many actions and compare.")
    args = parser.parse_args()
    results = []
    for clients in sorted(args.clients):
        result = run(clients, args.months)
        if clients == 100_000 and args.months == 24:
            result["target"] = {"seconds": TARGET_SECONDS, "peak_memory_gb": TARGET_PEAK_GB,
                                "met": result["seconds"] <= TARGET_SECONDS
                                and result["peak_memory_gb"] <= TARGET_PEAK_GB}
        results.append(result)
        print(json.dumps(result), flush=True)
        if args.plan_actions:
            with tempfile.TemporaryDirectory(prefix="bench-plan-") as folder:
                plan = write_plan(Path(folder) / "plan.parquet", clients, args.months, args.plan_actions)
                with_plan = run(clients, args.months, plan)
            ratio = with_plan["seconds"] / max(result["seconds"], 1e-9)
            with_plan["ratio_to_no_plan"] = round(ratio, 3)
            with_plan["target"] = {"ratio": TARGET_PLAN_RATIO, "met": ratio <= TARGET_PLAN_RATIO}
            results.append(with_plan)
            print(json.dumps(with_plan), flush=True)
    out = Path(os.environ.get("CRM_HOME", "var")) / "bench" / "generate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
