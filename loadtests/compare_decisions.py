"""Compare the decisions of two builds over the same world: every decision of this checkout against a git revision's.

A speed-up of the decision path must not change a single decision. This script extracts ``--revision`` (default
``main``) with ``git archive``, runs ``crm decide --bench N --dump FILE`` with that source and with this checkout
over the same ``CRM_HOME`` (N decisions over the population's clients, the same clients in the same order), and
compares the two dumps line by line: the response and the rule inputs, keys sorted, without the fields that differ
by construction (decision ids, times, latency). It prints the number of decisions compared and how many differ,
with the first differences, and exits with status 1 when any differs.

Usage: python loadtests/compare_decisions.py --home DIR [--decisions 10000] [--revision main]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNCOMPARED = ("decision_id", "decided_at", "latency_ms")


def dump(source: Path, home: Path, decisions: int, out: Path) -> dict:
    """Run one build's in-process benchmark with ``--dump``; returns its latency summary."""
    env = {**os.environ, "CRM_HOME": str(home), "PYTHONPATH": str(source)}
    run = subprocess.run([sys.executable, "-m", "cli.main", "decide", "--bench", str(decisions), "--dump", str(out)],
                         env=env, cwd=source, check=True, capture_output=True, text=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def comparable(line: str) -> dict:
    decision = json.loads(line)
    for name in UNCOMPARED:
        decision["response"].pop(name, None)
    return decision


def differences(before: dict, after: dict, path: str = "") -> list[str]:
    """Where two decoded decisions differ, as dotted paths (at most the first few)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after)):
            out += differences(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="CRM_HOME: features materialized, models trained, "
                                                                 "a ruleset active")
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--revision", default="main", help="the build to compare with (a git revision)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="compare-decisions-") as scratch:
        base = Path(scratch) / "base-src"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.revision], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        runs = {}
        for name, source in (("base", base), ("this", REPO)):
            runs[name] = dump(source, args.home, args.decisions, Path(scratch) / f"{name}.jsonl")
        before = (Path(scratch) / "base.jsonl").read_text(encoding="utf-8").splitlines()
        after = (Path(scratch) / "this.jsonl").read_text(encoding="utf-8").splitlines()
    if len(before) != len(after):
        raise SystemExit(f"the builds wrote {len(before)} and {len(after)} decisions")
    differing = []
    for old, new in zip(before, after, strict=True):
        if old != new:
            found = differences(comparable(old), comparable(new))
            if found:
                differing.append(found)
    summary = {"revision": args.revision, "decisions": len(before), "differing": len(differing),
               "first_differences": differing[:5],
               "in_process": {name: {k: run[k] for k in ("p50_ms", "p90_ms", "p99_ms")} for name, run in runs.items()}}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if differing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
