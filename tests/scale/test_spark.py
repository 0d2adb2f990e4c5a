"""The Spark path of the scale-out: the same Ibis indicator definitions, Feast's Spark offline store and batch
scoring on Spark (`local[2]` here, a cluster master URL in production) give what the DuckDB path gives.

Tolerance of the equality: floats relative 1e-9 (absolute 1e-12 near zero), since Spark and DuckDB may add a
sum's terms in another order; integers, strings, flags, dates and timestamps exactly. Where Spark or Java is
absent the tests skip saying so, except under CI (`CI=true`), where that is a failure.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from config import Settings, get_settings
from features.indicators.compute import TIMEZONE, compute_indicators, view_path, views
from features.indicators.engine import SparkUnavailableError, spark_session
from features.store.feature_store import apply, materialize_latest, offline_dir, online_features, open_store

MASTER = "local[2]"
FLOAT_REL, FLOAT_ABS = 1e-9, 1e-12
# PySpark leaves the socket of every collect to the garbage collector ("closed when garbage-collected", in
# pyspark.util), which warns; the fixture below collects them while this filter is in force.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(autouse=True)
def _collect_pyspark_sockets() -> Iterator[None]:
    yield
    gc.collect()


@pytest.fixture(scope="module")
def spark_master() -> str:
    """A working local Spark (one session for the module, stopped with the process), or a skip."""
    try:
        spark_session(MASTER)
    except SparkUnavailableError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Spark is required under CI: {error}")
        pytest.skip(f"Spark is not available here ({error})")
    return MASTER


@pytest.fixture(scope="module")
def built(small_world: Path, spark_master: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The small world's indicators built on DuckDB and on Spark, each into its own features folder."""
    root = tmp_path_factory.mktemp("spark_vs_duckdb")
    out = {"duckdb": root / "duckdb" / "features", "spark": root / "spark" / "features"}
    compute_indicators(small_world / "raw", offline_dir(out["duckdb"]), engine="duckdb")
    compute_indicators(small_world / "raw", offline_dir(out["spark"]), engine="spark", spark_master=spark_master)
    return out


def assert_same_values(duck: pd.DataFrame, spark: pd.DataFrame, what: str) -> None:
    assert list(spark.columns) == list(duck.columns), what
    assert len(spark) == len(duck) > 0, what
    for column in duck.columns:
        a, b = duck[column].to_numpy(), spark[column].to_numpy()
        if duck[column].dtype == np.float64:
            assert spark[column].dtype == np.float64, f"{what}.{column}"
            np.testing.assert_allclose(b, a, rtol=FLOAT_REL, atol=FLOAT_ABS, err_msg=f"{what}.{column}")
        else:
            assert spark[column].dtype == duck[column].dtype, f"{what}.{column}"
            assert (a == b).all(), f"{what}.{column}: {np.flatnonzero(a != b)[:5]} differ"


def test_every_indicator_on_spark_equals_duckdb(built: dict[str, Path]) -> None:
    for view in views():
        duck = pq.read_table(view_path(offline_dir(built["duckdb"]), view.name)).to_pandas()
        spark = pq.read_table(view_path(offline_dir(built["spark"]), view.name)).to_pandas()
        assert_same_values(duck, spark, view.name)
        assert len(view.indicators) == len(duck.columns) - 4  # key, as_of, event and created timestamps


def test_feast_spark_offline_store_point_in_time_and_materialize(built: dict[str, Path], spark_master: str) -> None:
    spark_dir, duck_dir = built["spark"], built["duckdb"]
    apply(spark_dir, offline_engine="spark", spark_master=spark_master)
    apply(duck_dir)
    spark_store, duck_store = open_store(spark_dir), open_store(duck_dir)
    # The repository remembers its offline store: later readers (training, materialize) open the same one.
    assert type(spark_store.config.offline_store).__name__ == "SparkOfflineStoreConfig"

    frame = pq.read_table(view_path(offline_dir(duck_dir), "client_value"), columns=["client_id", "as_of"]).to_pandas()
    dates = sorted(frame["as_of"].unique())
    clients = sorted(frame.loc[frame["as_of"] == dates[-2], "client_id"].unique())[:40]
    # Between two month-ends a row sees the earlier month-end only: point-in-time, never the later one.
    between = pd.Timestamp(dates[-2]).tz_localize(TIMEZONE) + pd.Timedelta(days=3)
    entity_df = pd.DataFrame({
        "client_id": clients * 2,
        "event_timestamp": [between] * len(clients) + [pd.Timestamp(dates[-1]).tz_localize(TIMEZONE)] * len(clients),
    })
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)

    def retrieve(store) -> pd.DataFrame:
        features = store.get_feature_service("churn_v1")
        out = store.get_historical_features(entity_df=entity_df, features=features).to_df()
        # Training converts these to Asia/Shanghai dates: both stores must give time-zone-aware instants.
        assert out["event_timestamp"].dt.tz is not None
        out["event_timestamp"] = out["event_timestamp"].dt.tz_convert("UTC")
        return out.sort_values(["event_timestamp", "client_id"]).reset_index(drop=True)

    on_spark, on_duckdb = retrieve(spark_store), retrieve(duck_store)
    assert len(on_spark) == len(entity_df)
    on_spark = on_spark[on_duckdb.columns]
    for column in on_duckdb.columns:
        if on_duckdb[column].dtype.kind == "f":
            np.testing.assert_allclose(on_spark[column], on_duckdb[column], rtol=FLOAT_REL, atol=FLOAT_ABS)
        else:
            assert on_spark[column].astype(str).tolist() == on_duckdb[column].astype(str).tolist(), column
    month_end = pq.read_table(view_path(offline_dir(spark_dir), "client_value"),
                              filters=[("as_of", "==", dates[-2])]).to_pandas().set_index("client_id")
    early = on_spark[on_spark["event_timestamp"] == between].set_index("client_id")
    np.testing.assert_allclose(early["commission_90d"], month_end.loc[early.index, "commission_90d"], rtol=0)

    latest = materialize_latest(spark_dir, spark_master=spark_master)
    assert latest == dates[-1]
    online = online_features(open_store(spark_dir), "churn_v1", [{"client_id": c} for c in clients[:5]])
    offline = on_spark[on_spark["event_timestamp"] > between].set_index("client_id")
    for i, client in enumerate(online["client_id"]):
        assert online["commission_90d"][i] == pytest.approx(offline.loc[client, "commission_90d"], rel=FLOAT_REL)


def test_batch_scoring_on_spark_equals_duckdb(model_home: Settings, spark_master: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    monkeypatch.setenv("CRM_HOME", str(model_home.home))
    monkeypatch.setenv("CRM_SPARK_MASTER", spark_master)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        outputs = {}
        for engine in ("duckdb", "spark"):
            outputs[engine] = tmp_path / f"{engine}.parquet"
            result = runner.invoke(app, ["score", "batch", "--ruleset", "bundled", "--chunk", "1000", "--engine",
                                         engine, "--out", str(outputs[engine]), "--json"])
            assert result.exit_code == 0, result.output
    finally:
        get_settings.cache_clear()
    duck, spark = (pq.read_table(outputs[e]).to_pandas() for e in ("duckdb", "spark"))
    assert len(spark) == len(duck) > 1_000
    for column in duck.columns:
        assert spark[column].astype(str).tolist() == duck[column].astype(str).tolist(), column
    assert not list(tmp_path.glob(".latest-*")), "the Spark scratch folder is removed"


def test_spark_engine_refuses_missing_raw_tables(spark_master: str, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    with pytest.raises(FileNotFoundError, match="raw table"):
        compute_indicators(raw, tmp_path / "features" / "offline", engine="spark", spark_master=spark_master)
    assert not (tmp_path / "features" / "offline").exists()


def test_spark_conf_is_bounded_for_local_masters() -> None:
    from features.indicators.engine import spark_conf

    assert spark_conf("local[2]")["spark.sql.shuffle.partitions"] == "4"
    assert "spark.sql.shuffle.partitions" not in spark_conf("spark://master:7077")
    # Dates stay calendar dates and undefined statistics stay NULL, as on DuckDB.
    assert spark_conf("local[2]")["spark.sql.session.timeZone"] == "UTC"
    assert spark_conf("local[2]")["spark.sql.ansi.enabled"] == "false"
