"""MLflow tracking and registry on PostgreSQL: training registers there, and serving loads the same model."""

from __future__ import annotations

import numpy as np

from config import Settings
from features.store.feature_store import latest_frame
from model_registry.registry import CHAMPION, Registry, upgrade_tracking_schema
from service.scoring import load_model
from training.pipeline import train


def test_a_model_trained_with_tracking_on_postgres_serves_as_with_sqlite(model_home: Settings, pg_url: str) -> None:
    on_postgres = model_home.model_copy(update={"mlflow_tracking_uri": pg_url})
    version = train("value", on_postgres)  # MLflow creates its tables in the empty database
    registry = Registry(pg_url, on_postgres.mlflow_artifacts_dir)
    assert version.version == 1 and registry.alias_version("value", CHAMPION) == 1
    assert [v.version for v in registry.versions("value")] == [1]

    from_postgres = load_model(registry.bundle("value", CHAMPION))
    on_sqlite = Registry(model_home.tracking_uri, model_home.mlflow_artifacts_dir)
    from_sqlite = load_model(on_sqlite.bundle("value", CHAMPION))
    assert from_postgres.features == from_sqlite.features
    frame = latest_frame(model_home.features_dir, from_sqlite.references).head(500)
    # Training is deterministic: the same data and parameters give the same model in either registry.
    np.testing.assert_allclose(from_postgres.scorer.predict(from_postgres.matrix(frame)),
                               from_sqlite.scorer.predict(from_sqlite.matrix(frame)), rtol=0, atol=1e-6)


def test_an_mlflow_schema_left_by_an_older_mlflow_is_upgraded_by_the_product(pg_url: str, tmp_path) -> None:
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision, create_sqlalchemy_engine
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = create_sqlalchemy_engine(pg_url)
    InitialBase.metadata.create_all(engine)  # the tables of MLflow's first database schema
    with engine.begin() as conn:
        config = _get_alembic_config(pg_url)
        config.attributes["connection"] = conn
        command.upgrade(config, "451aebb31d03")
    engine.dispose()

    result = upgrade_tracking_schema(pg_url)
    assert result == {"found": "451aebb31d03", "now": _get_latest_schema_revision()}
    assert Registry(pg_url, tmp_path).versions("value") == []
    assert upgrade_tracking_schema(pg_url) == {"found": result["now"], "now": result["now"]}
