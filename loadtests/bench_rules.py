"""Benchmark of the rules on a CRM_HOME with features built and models trained.

Targets at 100,000 clients: the bundled ruleset evaluated for one client in ≤ 20 µs median in-process;
`crm rules simulate` over the population in ≤ 10 s. Runs `crm rules bench` twice: the first computes and caches the
population's champion scores (cold), the second reuses them (warm), as a compliance officer's second simulation
would; then times a whole `crm rules simulate` process (interpreter start and model loading included).
Usage: python loadtests/bench_rules.py --home DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _timing import report, timed  # run as a script: the folder is on sys.path


def bench(crm: str, env: dict) -> dict:
    out = subprocess.run([crm, "rules", "bench"], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    crm = str(Path(sys.executable).with_name("crm"))
    env = {**os.environ, "CRM_HOME": str(args.home)}
    shutil.rmtree(args.home / "scores", ignore_errors=True)
    cold, warm = bench(crm, env), bench(crm, env)
    process_seconds, peak = timed([crm, "rules", "simulate", "bundled", "--against", "bundled", "--json"], env)
    result = {"clients": warm["clients"], "evaluate_median_us": warm["evaluate_unchecked_median_us"],
              "evaluate_p99_us": warm["evaluate_unchecked_p99_us"],
              "evaluate_checked_median_us": warm["evaluate_checked_median_us"],
              "simulate_cold_seconds": cold["simulate"]["seconds_total_after_model_load"],
              "simulate_warm_seconds": warm["simulate"]["seconds_total_after_model_load"],
              "simulate_process_seconds": process_seconds, "simulate_process_peak_gb": peak,
              "cold": cold, "warm": warm}
    result["met"] = {"evaluate_median_at_most_20us": result["evaluate_median_us"] <= 20,
                     "simulate_at_most_10s": result["simulate_warm_seconds"] <= 10}
    report(result, args.home, "rules")


if __name__ == "__main__":
    main()
