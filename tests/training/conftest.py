"""A world long enough for all three models (18 months), with indicators built and models trained once."""

from __future__ import annotations

import pytest

from config import Settings
from features.indicators.compute import compute_indicators
from features.store.feature_store import apply, materialize_latest, offline_dir
from features.synthetic.world import WorldConfig, generate_world
from training.pipeline import train

MODEL_WORLD = WorldConfig(clients=2_500, months=18, seed=3)


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("model_world")
    settings = Settings(home=home)
    generate_world(MODEL_WORLD, settings.raw_dir, settings.ground_truth_dir)
    compute_indicators(settings.raw_dir, offline_dir(settings.features_dir))
    apply(settings.features_dir)
    materialize_latest(settings.features_dir)
    for model in ("churn", "value", "risk_profile"):
        train(model, settings)
    return settings
