"""Shared helpers of the benchmark scripts: run one command in its own process and measure it; report."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of one command, measured by GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *command], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        peak_kb = int(Path(report.name).read_text().strip().splitlines()[-1])
    return round(seconds, 1), round(peak_kb / 1024**2, 2)


def report(result: dict, home: Path, name: str) -> None:
    """Print a benchmark's result and keep it as ``HOME/bench/NAME.json``."""
    text = json.dumps(result, indent=2)
    print(text)
    out = Path(home) / "bench" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
