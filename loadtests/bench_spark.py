"""Benchmark of the Spark engine next to DuckDB on the same world, each step in its own process.

For one generated world: `crm features build` on DuckDB and on Spark (`CRM_SPARK_MASTER`, default local[2]),
then `crm features apply` + `crm features materialize` through Feast's DuckDB and Spark offline stores. Wall
seconds include each process's start (for Spark: the JVM and its session, about 10 s). Peak memory is GNU
time's, of the `crm` process: for Spark that is the Python driver only, not the JVM it starts. It also checks
that both engines wrote the same number of rows per view.

Usage: python loadtests/bench_spark.py [--clients 10000] [--months 24] [--home DIR];
results go to DIR/bench/spark.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from _timing import report, timed  # run as a script: the folder is on sys.path


def rows_per_view(offline: Path) -> dict[str, int]:
    return {path.stem: pq.ParquetFile(path).metadata.num_rows for path in sorted(offline.glob("*.parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--home", type=Path, default=None, help="CRM_HOME to use (kept); default a temp folder")
    args = parser.parse_args()
    crm = str(Path(sys.executable).with_name("crm"))
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    base = {**os.environ, "CRM_HOME": str(home)}
    master = base.setdefault("CRM_SPARK_MASTER", "local[2]")
    result: dict = {"clients": args.clients, "months": args.months, "spark_master": master, "cpus": os.cpu_count()}
    if not (home / "raw" / "trades.parquet").exists():
        result["generate_seconds"], _ = timed(
            [crm, "data", "generate", "--clients", str(args.clients), "--months", str(args.months)], base)
    offline = home / "features" / "offline"
    rows = {}
    for engine in ("duckdb", "spark"):
        env = {**base, "CRM_COMPUTE_ENGINE": engine}
        seconds, peak = timed([crm, "features", "build"], env)
        rows[engine] = rows_per_view(offline)
        apply_seconds, _ = timed([crm, "features", "apply"], env)
        materialize_seconds, _ = timed([crm, "features", "materialize"], env)
        result[engine] = {"build_seconds": seconds, "build_peak_memory_gb": peak, "apply_seconds": apply_seconds,
                          "materialize_seconds": materialize_seconds}
        if engine == "duckdb":
            shutil.copytree(offline, home / "bench" / "offline-duckdb", dirs_exist_ok=True)
    result["rows"] = rows["duckdb"]
    result["same_rows"] = rows["duckdb"] == rows["spark"]
    result["spark_over_duckdb_build"] = round(result["spark"]["build_seconds"] / result["duckdb"]["build_seconds"], 1)
    report(result, home, "spark")


if __name__ == "__main__":
    main()
