"""Shared fixtures: small generated worlds, built once per test session and never modified by tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from config import Settings, get_settings
from features.indicators.compute import compute_indicators
from features.store.feature_store import apply, materialize_latest, offline_dir
from features.synthetic.world import WorldConfig, generate_world
from model_registry.specs import model_names
from training.pipeline import train

# Small enough to be quick, large enough for the realism figures to be stable.
REALISM_WORLD = WorldConfig(clients=5_000, months=24, seed=11)
SMALL_WORLD = WorldConfig(clients=600, months=6, seed=5, start=dt.date(2024, 1, 1))
# Long enough for all three models (18 months).
MODEL_WORLD = WorldConfig(clients=2_500, months=18, seed=3)


def _generate(factory: pytest.TempPathFactory, name: str, config: WorldConfig) -> Path:
    home = factory.mktemp(name)
    generate_world(config, home / "raw", home / "ground_truth")
    return home


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CRM_HOME of a 600-client, 6-month world."""
    return _generate(tmp_path_factory, "small_world", SMALL_WORLD)


@pytest.fixture(scope="session")
def realism_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CRM_HOME of a 5,000-client, 24-month world."""
    return _generate(tmp_path_factory, "realism_world", REALISM_WORLD)


@pytest.fixture
def crm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CRM_HOME for one test, wired into the settings."""
    home = tmp_path / "home"
    monkeypatch.setenv("CRM_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of a 2,500-client, 18-month world with indicators built and materialized and the three models
    and the retention uplift model trained (first versions are champions)."""
    home = tmp_path_factory.mktemp("model_world")
    settings = Settings(home=home)
    generate_world(MODEL_WORLD, settings.raw_dir, settings.ground_truth_dir)
    compute_indicators(settings.raw_dir, offline_dir(settings.features_dir))
    apply(settings.features_dir)
    materialize_latest(settings.features_dir)
    for model in model_names():
        train(model, settings)
    return settings


def build_event_world(source: Path, home: Path, online_url: str | None = None) -> Settings:
    """A home of its own over a generated world's raw tables (for tests that write the online store and the event
    journal): indicators built, applied and materialized."""
    import shutil

    settings = Settings(home=home, online_store=online_url)
    shutil.copytree(source / "raw", settings.raw_dir)
    compute_indicators(settings.raw_dir, offline_dir(settings.features_dir))
    apply(settings.features_dir, online_url)
    materialize_latest(settings.features_dir, online_url)
    return settings


@pytest.fixture
def event_world(small_world: Path, tmp_path: Path) -> Settings:
    """Settings of a fresh copy of the small world, its indicators materialized into SQLite."""
    return build_event_world(small_world, tmp_path / "home")
