"""Two builds of the indicators from the same raw tables are identical, to the last bit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.indicators.compute import compute_indicators
from features.indicators.context import duckdb_context


def test_the_indicators_run_on_one_duckdb_thread(small_world: Path) -> None:
    # Parallel aggregates add floats in an order that changes between runs: a flat account's return came out as
    # ±1e-16 instead of 0, and models split at 0 differed between two builds of one world.
    con, _ = duckdb_context(small_world / "raw")
    assert con.raw_sql("SELECT current_setting('threads')").fetchone()[0] == 1


def test_two_builds_of_one_world_give_identical_indicators(small_world: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    compute_indicators(small_world / "raw", first)
    compute_indicators(small_world / "raw", second)
    files = sorted(p.name for p in first.glob("*.parquet"))
    assert files and files == sorted(p.name for p in second.glob("*.parquet"))
    for name in files:
        a, b = pd.read_parquet(first / name), pd.read_parquet(second / name)
        keys = [c for c in ("client_id", "branch_id", "broker_id", "as_of") if c in a.columns]
        a = a.drop(columns=[c for c in a.columns if "created" in c]).sort_values(keys, ignore_index=True)
        b = b.drop(columns=[c for c in b.columns if "created" in c]).sort_values(keys, ignore_index=True)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
