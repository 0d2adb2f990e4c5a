"""Benchmark of batch scoring: every client of a million-client world, three models + rules, to parquet.

Target: 1,000,000 clients in ≤ 30 s on this machine with the embedded defaults (DuckDB, parquet). Steps, each a
`crm` process: a world of --clients clients over --months months is generated into --home and its indicators built
(skipped when already there; the build goes one as-of date at a time at this size and stays within the 3GB
DuckDB default, --duckdb-memory sets it; its peak memory is reported, target ≤ 8 GB), then `crm score batch
--json` scores the latest month-end with the champions and the active ruleset of --models-home (its MLflow
database and rule history: a world this size is not trained here). Prints the summary: clients scored, seconds
per step (read, score, rules, write), the whole process's wall time and peak.
Usage: python loadtests/bench_batch.py --home DIR --models-home DIR [--clients 1170000] [--months 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _timing import report, timed  # run as a script: the folder is on sys.path

TARGET_SECONDS = 30.0
TARGET_CLIENTS = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--models-home", type=Path, required=True,
                        help="a CRM_HOME with trained champions and an active ruleset (for example the demo's var/)")
    parser.add_argument("--clients", type=int, default=1_170_000,
                        help="clients ever in the world; about 96 percent are active at the last month-end")
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--duckdb-memory", default="3GB")
    args = parser.parse_args()
    crm = str(Path(sys.executable).with_name("crm"))
    models = args.models_home.resolve()
    env = {**os.environ, "CRM_HOME": str(args.home), "CRM_DUCKDB_MEMORY_LIMIT": args.duckdb_memory,
           "CRM_MLFLOW_TRACKING_URI": f"sqlite:///{models / 'mlflow.db'}",
           "CRM_RULES_DB_URL": f"sqlite:///{models / 'rules.db'}"}
    steps = {}
    if not (args.home / "raw").exists():
        steps["generate_seconds"], steps["generate_peak_gb"] = timed(
            [crm, "data", "generate", "--clients", str(args.clients), "--months", str(args.months)], env)
    if not (args.home / "features" / "offline").exists():
        steps["build_seconds"], steps["build_peak_gb"] = timed([crm, "features", "build"], env)
    seconds, peak = timed([crm, "score", "batch", "--json"], env)
    out = subprocess.run([crm, "score", "batch", "--json"], env=env, check=True, capture_output=True, text=True).stdout
    summary = json.loads(out[out.index("{"):])
    result = {"clients": summary["clients"], "as_of": summary["as_of"], "steps": steps,
              "first_run": {"process_seconds": seconds, "peak_gb": peak},
              "second_run": {"seconds": summary["seconds"], "seconds_total": summary["seconds_total"]},
              "target": {"clients": TARGET_CLIENTS, "seconds": TARGET_SECONDS},
              "met": summary["clients"] >= TARGET_CLIENTS and seconds <= TARGET_SECONDS}  # the whole process
    report(result, args.home, "batch")


if __name__ == "__main__":
    main()
