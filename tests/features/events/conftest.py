"""A world of its own for event tests (they write the online store): the small world's raw tables copied, its
indicators built, applied and materialized."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config import Settings
from features.indicators.compute import compute_indicators
from features.store.feature_store import apply, materialize_latest, offline_dir


def build_event_world(source: Path, home: Path, online_url: str | None = None) -> Settings:
    settings = Settings(home=home, online_store=online_url)
    shutil.copytree(source / "raw", settings.raw_dir)
    compute_indicators(settings.raw_dir, offline_dir(settings.features_dir))
    apply(settings.features_dir, online_url)
    materialize_latest(settings.features_dir, online_url)
    return settings


@pytest.fixture
def event_world(small_world: Path, tmp_path: Path) -> Settings:
    """Settings of a fresh copy of the small world, indicators materialized into SQLite."""
    return build_event_world(small_world, tmp_path / "home")
