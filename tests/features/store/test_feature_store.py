"""The Feast repository: applied idempotently, and online values equal the latest offline values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.indicators.compute import compute_indicators, view_path, views
from features.model_features import FEATURE_SERVICES, feature_names
from features.store.feature_store import (
    FeaturesNotBuiltError,
    apply,
    latest_as_of,
    materialize_latest,
    offline_dir,
    online_features,
    open_store,
)


@pytest.fixture(scope="module")
def features_dir(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("features")
    compute_indicators(small_world / "raw", offline_dir(folder))
    apply(folder)
    materialize_latest(folder)
    return folder


def test_apply_is_idempotent_and_registers_every_object(features_dir: Path) -> None:
    names = apply(features_dir)
    store = open_store(features_dir)
    assert {fv.name for fv in store.list_feature_views()} == {v.name for v in views()}
    assert {e.name for e in store.list_entities()} == {"client", "broker", "branch"}
    assert {s.name for s in store.list_feature_services()} == set(FEATURE_SERVICES)
    for fv in store.list_feature_views():
        assert fv.description and fv.owner and fv.tags["family"]
    assert names.count("churn_v1") == 1


def test_feature_services_reference_catalogued_indicators() -> None:
    known = {f"{v.name}:{i.name}" for v in views() for i in v.indicators}
    for service, spec in FEATURE_SERVICES.items():
        assert set(spec["features"]) <= known, service
        assert len(set(spec["features"])) == len(spec["features"])
    assert "stated_risk_level" not in feature_names("risk_profile_v1"), "the label must not be an input"


@pytest.mark.parametrize("view", [v for v in views()], ids=lambda v: v.name)
def test_online_values_equal_the_latest_offline_values(features_dir: Path, view) -> None:
    offline = pd.read_parquet(view_path(offline_dir(features_dir), view.name))
    latest = offline[offline["as_of"] == latest_as_of(features_dir)]
    sample = latest.sample(n=min(25, len(latest)), random_state=1)
    store = open_store(features_dir)
    refs = [f"{view.name}:{i.name}" for i in view.indicators]
    online = store.get_online_features(features=refs, entity_rows=[{view.key: k} for k in sample[view.key]]).to_df()
    online = online.set_index(view.key).loc[sample[view.key]]
    for ind in view.indicators:
        expected, actual = sample[ind.name].to_numpy(), online[ind.name].to_numpy()
        if ind.type == "float64":
            np.testing.assert_allclose(actual.astype(float), expected, rtol=0, atol=0, err_msg=ind.name)
        else:
            assert list(actual) == list(expected), ind.name


def test_one_call_returns_a_models_whole_vector(features_dir: Path) -> None:
    store = open_store(features_dir)
    offline = pd.read_parquet(view_path(offline_dir(features_dir), "client_value"))
    client = offline[offline["as_of"] == offline["as_of"].max()]["client_id"].iloc[0]
    vector = online_features(store, "churn_v1", [{"client_id": client}])
    assert set(feature_names("churn_v1")) <= set(vector)
    assert all(vector[name][0] is not None for name in feature_names("churn_v1"))


def test_apply_before_build_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(FeaturesNotBuiltError, match="crm features build"):
        apply(tmp_path)


def test_a_build_in_passes_of_as_of_dates_writes_the_same_tables(small_world: Path, features_dir: Path,
                                                                  tmp_path: Path) -> None:
    """A big world is built a few as-of dates at a time (bounded memory): one date per pass gives the tables of
    one pass, in the same order and with the same column types; floats agree to a relative 1e-12 (DuckDB adds a
    sum's terms in no fixed order: two builds of one pass differ in the last bit too), everything else exactly."""
    import pyarrow.parquet as pq

    passes: list[str] = []
    compute_indicators(small_world / "raw", tmp_path / "offline", client_dates_per_pass=1,
                       progress=lambda line: passes.append(line) if "pass" in line else None)
    assert len(passes) > 1
    for view in views():
        whole = pq.read_table(view_path(offline_dir(features_dir), view.name))
        in_passes = pq.read_table(view_path(tmp_path / "offline", view.name))
        assert in_passes.schema.remove_metadata() == whole.schema.remove_metadata(), view.name
        expected, actual = whole.to_pandas(), in_passes.to_pandas()
        floats = [c for c in expected.columns if expected[c].dtype.kind == "f"]
        pd.testing.assert_frame_equal(actual.drop(columns=floats), expected.drop(columns=floats), check_exact=True)
        np.testing.assert_allclose(actual[floats].to_numpy(), expected[floats].to_numpy(), rtol=1e-12, atol=1e-15,
                                   err_msg=view.name)



def test_the_api_reader_returns_exactly_the_indicators_it_was_asked_for(features_dir: Path) -> None:
    # The reader converts only the asked indicators of each view's stored row: every third one of a view, every one
    # of another, each with the latest offline value, and nothing else.
    from features.store.online_reader import OnlineReader

    by_view = {v.name: [i.name for i in v.indicators] for v in views()}
    asked = {"client_value": by_view["client_value"][::3], "client_category": by_view["client_category"]}
    reader = OnlineReader(open_store(features_dir), [f"{v}:{n}" for v, names in asked.items() for n in names],
                          timeout_s=5.0)
    latest = {}
    for view in asked:
        offline = pd.read_parquet(view_path(offline_dir(features_dir), view))
        latest[view] = offline[offline["as_of"] == latest_as_of(features_dir)].set_index("client_id")
    clients = list(latest["client_value"].index[:5])
    for client, read in zip(clients, reader.read_many(clients), strict=True):
        assert read is not None
        values, _ = read
        assert set(values) == {n for names in asked.values() for n in names}
        for view, names in asked.items():
            for name in names:
                expected, actual = latest[view].at[client, name], values[name]
                assert (actual is None and pd.isna(expected)) or actual == expected, (view, name)
