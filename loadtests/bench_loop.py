"""Benchmark of the closed loop: `crm simulate policies` of all five policies over a CRM_HOME with a generated
world, its features, the champions (the retention uplift model among them) and an active ruleset (`crm demo`).

Runs `crm simulate policies --months M --capacity N --json` in its own process and reports its wall time and peak
memory, the time of each part (history, first month-end's features and scores, each policy) from the run's
record, and the result. Target: a 3-month loop of all five policies at the demo size (20,000 clients) in at most
15 minutes.
Usage: python loadtests/bench_loop.py --home DIR [--months 3] [--capacity 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _timing import report, timed  # run as a script: the folder is on sys.path

TARGET_SECONDS = 15 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=20)
    args = parser.parse_args()
    crm = str(Path(sys.executable).with_name("crm"))
    env = {**os.environ, "CRM_HOME": str(args.home)}
    seconds, peak_gb = timed([crm, "simulate", "policies", "--months", str(args.months), "--capacity",
                              str(args.capacity), "--json"], env)
    record = json.loads((args.home / "closed-loop" / "last-run.json").read_text())
    report({"months": args.months, "capacity": args.capacity, "clients": record["world"]["clients"],
            "seed": record["world"]["seed"], "wall_seconds": seconds, "peak_memory_gb": peak_gb,
            "parts_seconds": record["seconds"], "target_seconds": TARGET_SECONDS,
            "within_target": seconds <= TARGET_SECONDS, "result": record["result"]}, args.home, "loop")


if __name__ == "__main__":
    main()
