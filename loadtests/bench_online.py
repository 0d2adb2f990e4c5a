"""Benchmark of the online read the decision API makes: one client's whole model vector, in process.

Target: Redis p99 ≤ 1.5 ms. On a CRM_HOME with features built and materialized: `crm features read-bench` against
the SQLite online store, then the latest values materialized into Redis (--redis, a database of its own: it is
flushed by materialize's writes, not cleared) and the same read against it.
Usage: python loadtests/bench_online.py --home DIR [--redis redis://127.0.0.1:6379/13] [--reads 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _timing import report  # run as a script: the folder is on sys.path

TARGET_REDIS_P99_MS = 1.5


def read_bench(crm: str, env: dict, reads: int) -> dict:
    out = subprocess.run([crm, "features", "read-bench", "--reads", str(reads)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--reads", type=int, default=5000)
    args = parser.parse_args()
    crm = str(Path(sys.executable).with_name("crm"))
    env = {**os.environ, "CRM_HOME": str(args.home)}
    env.pop("CRM_ONLINE_STORE", None)
    sqlite = read_bench(crm, env, args.reads)
    redis_env = {**env, "CRM_ONLINE_STORE": args.redis}
    subprocess.run([crm, "features", "materialize"], env=redis_env, check=True, capture_output=True)
    redis = read_bench(crm, redis_env, args.reads)
    report({"sqlite": sqlite, "redis": redis, "target": {"redis_p99_ms": TARGET_REDIS_P99_MS},
            "met": redis["p99_ms"] <= TARGET_REDIS_P99_MS}, args.home, "online")


if __name__ == "__main__":
    main()
