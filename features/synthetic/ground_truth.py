"""The hidden truth of a synthetic world: traits, true churn probabilities, real churn dates and causes, and the
true effect of retention actions (of each action applied, and of every action on every active client at the
month-ends of the models' test windows).

Only evaluation code may import this module (an import-linter contract): features and models must learn
from the raw tables alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TRUTH_TABLES = (
    "client_traits",
    "branch_traits",
    "broker_traits",
    "churn_probabilities",
    "churn_events",
    "competitor_campaigns",
    "action_effects",
    "action_uplift",
)
MANIFEST = "manifest.json"


def write_truth_table(directory: Path, name: str, frame: pd.DataFrame) -> None:
    if name not in TRUTH_TABLES:
        raise KeyError(f"unknown ground-truth table {name!r}")
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(directory / f"{name}.parquet", index=False, compression="zstd")


def read_truth_table(directory: Path, name: str) -> pd.DataFrame:
    path = Path(directory) / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"ground-truth table {name!r} not found at {path}; it exists only for generated worlds")
    return pd.read_parquet(path)


def read_manifest(directory: Path) -> dict | None:
    path = Path(directory) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def truth_matches(truth_dir: Path, raw_manifest: dict | None) -> bool:
    """The truth describes the raw data in place only when both come from the same generated world."""
    truth = read_manifest(truth_dir)
    return bool(truth and raw_manifest and truth.get("world_id") == raw_manifest.get("world_id"))
