"""The model list: a fourth model added through its spec alone is trained, gated, registered and served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from config import Settings
from model_registry.registry import CHAMPION
from model_registry.specs import (
    MODEL_SPECS,
    ModelSpec,
    Output,
    accepted_names,
    model_names,
    model_spec,
    register_spec,
    unregister_spec,
)
from service.app import create_app
from service.db import make_engine
from service.decisions import score_many
from service.keys import Role, create_key
from service.scoring import Models
from tests.service.conftest import copy_home
from training.datasets import build_dataset
from training.fit import Fitted, split
from training.pipeline import registry, train
from training.promotion import promote
from training.specs import resolve

TOY = "toy_heavy_trader"


def fit_toy(ds, overrides: dict) -> Fitted:
    """A small classifier of whether a client churns, on the value model's indicators (the toy's fit)."""
    from lightgbm import LGBMClassifier
    from sklearn.metrics import roc_auc_score

    windows = split(ds)
    as_of = ds.frame["as_of"]
    train_rows, test_rows = as_of.isin(windows.train), as_of.isin(windows.test)
    y = ds.frame[ds.label].astype(int).to_numpy()
    params = {"n_estimators": 30, "num_leaves": 7, "verbose": -1, "random_state": 1} | overrides
    model = LGBMClassifier(**params).fit(ds.matrix(train_rows), y[train_rows])
    x_test = ds.matrix(test_rows)
    p = model.predict_proba(x_test)[:, 1]
    return Fitted(model, windows, params, {"test_auc": float(roc_auc_score(y[test_rows], p))}, x_test,
                  y[test_rows], p, ds.frame.loc[test_rows, ["client_id", "as_of"]])


@pytest.fixture(scope="module")
def toy_home(model_home: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A copy of the trained test world with the toy model in the model list."""
    home = copy_home(model_home, tmp_path_factory.mktemp("toy") / "home")
    register_spec(ModelSpec(
        name=TOY, description="A toy: churn from the value model's indicators.", feature_service="value_v1",
        label="churned", labels="training.datasets:churn_labels", fit=f"{__name__}:fit_toy", test_metric="auc",
        gate_tolerance=0.01, output=Output.PROBABILITY, aliases=("toy",), required=False))
    try:
        yield home
    finally:
        unregister_spec(TOY)


def test_the_list_names_each_model_once_with_everything_training_needs() -> None:
    assert model_names()[:4] == ("churn", "value", "risk_profile", "retention_uplift")
    assert model_spec("risk").name == "risk_profile" and model_spec("uplift").name == "retention_uplift"
    assert len(accepted_names()) == len(set(accepted_names()))
    for spec in MODEL_SPECS.values():
        for reference in (spec.labels, spec.fit, spec.evaluate, spec.train, spec.gate_rows):
            if reference is not None:
                assert callable(resolve(reference))
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        model_spec("nope")
    with pytest.raises(ValueError, match="already in use"):
        register_spec(MODEL_SPECS["churn"])
    with pytest.raises(ValueError, match="cannot be loaded"):
        resolve("training.fit:no_such_function")


def test_a_fourth_model_added_by_its_spec_is_trained_registered_promoted_and_served(toy_home: Settings,
                                                                                    tmp_path: Path) -> None:
    first = train("toy", toy_home)
    assert first.aliases == (CHAMPION,) and "test_auc" in first.metrics
    reg = registry(toy_home)
    bundle = reg.bundle(TOY)
    assert bundle.metadata["feature_service"] == "value_v1" and float(
        reg.version(TOY, first.version).tags["onnx_parity_max_abs_diff"]) <= 1e-5
    # A second version goes through the same gate as the others, on the spec's metric.
    train(TOY, toy_home, overrides={"n_estimators": 31})
    result = promote("toy", toy_home)
    assert result.metric == "auc" and result.tolerance == 0.01

    # Served: loaded with the others, scored in the same call, given by what its output means.
    models = Models.load(reg)
    assert TOY in models.versions and TOY in models.per_client
    ds = build_dataset(TOY, toy_home.raw_dir, toy_home.features_dir)
    rows = ds.frame.tail(5)
    values = [{name: float(row[name]) for name in models.inputs if name in row} for _, row in rows.iterrows()]
    scored = score_many(models, values)
    own = models.loaded[TOY].scorer.predict(ds.matrix(ds.frame.index.isin(rows.index)))[:, 1]
    assert np.allclose([s[TOY]["probability"] for s in scored], own, atol=1e-6)

    # And through the API: a decision's scores carry the toy model's probability and version.
    engine = make_engine(toy_home.service_database_url)
    _, key = create_key(engine, Role.FRONT_OFFICE, "toy-front-office")
    engine.dispose()
    client_id = str(ds.frame["client_id"].iloc[-1])
    with TestClient(create_app(toy_home)) as client:
        response = client.post("/v1/decisions", json={"client_id": client_id},
                               headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0.0 <= body["scores"][TOY]["probability"] <= 1.0
    assert body["versions"]["models"][TOY] == reg.alias_version(TOY, CHAMPION)
