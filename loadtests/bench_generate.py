"""Benchmark of `crm data generate`: wall time and peak memory, run as a separate process.

Targets (issue 2): 100,000 clients × 24 months in ≤ 180 s with peak memory ≤ 6 GB on a 2-core machine.
Usage: python loadtests/bench_generate.py [--clients 100000 ...] ; results go to $CRM_HOME/bench/.
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

TARGET_SECONDS = 180.0
TARGET_PEAK_GB = 6.0


def run(clients: int, months: int) -> dict:
    crm = Path(sys.executable).with_name("crm")
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as home:
        env = {**os.environ, "CRM_HOME": home}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run([str(crm), "data", "generate", "--clients", str(clients), "--months", str(months),
                        "--seed", "7"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rows = sum(1 for _ in (Path(home) / "raw").glob("*.parquet"))
    return {
        "clients": clients,
        "months": months,
        "seconds": round(seconds, 1),
        # ru_maxrss of children is the largest child so far: only meaningful when it grew.
        "peak_memory_gb": round(max(peak_kb, before) / 1024**2, 2),
        "tables": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[100_000])
    parser.add_argument("--months", type=int, default=24)
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
    out = Path(os.environ.get("CRM_HOME", "var")) / "bench" / "generate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
