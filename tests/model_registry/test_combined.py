"""The three champions in one ONNX graph give exactly each model's own outputs, and the churn trees' leaves that
LightGBM itself gives, for any input (missing values and zeros included)."""

from __future__ import annotations

import numpy as np
import pytest

from model_registry.combined import CombinationError, CombinedScorer, combine, leaf_parity
from model_registry.onnx_export import OnnxScorer, make_float32_exact, to_onnx

WIDTH = 9
COLUMNS = {"churn": [0, 1, 2, 3, 4, 5], "value": [3, 4, 5, 6, 7], "risk_profile": [8, 0, 2, 6]}


def _data(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=(rows, WIDTH)) * rng.choice([1, 100, 10_000], size=(1, WIDTH))
    x[rng.random(x.shape) < 0.08] = np.nan
    x[rng.random(x.shape) < 0.08] = 0.0
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    import lightgbm

    x = _data(3_000, 1)
    rng = np.random.default_rng(2)
    signal = np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 3]) / 100 + rng.normal(0, 0.5, len(x))
    params = {"n_estimators": 40, "num_leaves": 15, "min_child_samples": 5, "verbose": -1}
    models = {
        "churn": lightgbm.LGBMClassifier(**params).fit(x[:, COLUMNS["churn"]], (signal > 0.5).astype(int)),
        "value": lightgbm.LGBMRegressor(**params).fit(x[:, COLUMNS["value"]], signal * 3),
        "risk_profile": lightgbm.LGBMClassifier(**params).fit(x[:, COLUMNS["risk_profile"]],
                                                              np.digitize(signal, [-0.5, 0.5])),
    }
    for model in models.values():
        make_float32_exact(model)
    graphs = {name: to_onnx(model, len(COLUMNS[name])) for name, model in models.items()}
    return models, graphs


def test_one_graph_gives_each_models_own_outputs_and_lightgbms_leaves(fitted) -> None:
    models, graphs = fitted
    trees = models["churn"].booster_.dump_model()["tree_info"]
    graph, outputs = combine(graphs, COLUMNS, WIDTH, leaves_of="churn", trees=trees)
    probe = _data(2_000, 3)
    combined = CombinedScorer(graph, outputs).run(probe)
    for name, raw in graphs.items():
        own = OnnxScorer(raw).predict(np.ascontiguousarray(probe[:, COLUMNS[name]]))
        np.testing.assert_array_equal(combined[name], own, err_msg=name)
    assert combined["churn_leaves"].shape == (len(probe), len(trees))
    assert leaf_parity(combined["churn_leaves"], models["churn"].booster_, probe[:, COLUMNS["churn"]]) == 0


def test_leaves_need_the_trees_of_the_same_model(fitted) -> None:
    models, graphs = fitted
    other = models["value"].booster_.dump_model()["tree_info"]
    with pytest.raises(CombinationError):
        combine(graphs, COLUMNS, WIDTH, leaves_of="churn", trees=other[:5])


def test_an_action_effect_model_runs_on_every_client_and_action_in_the_same_graph(fitted) -> None:
    import lightgbm

    models, graphs = fitted
    actions, columns = 4, [1, 4, 6]
    x = _data(3_000, 4)
    action = np.random.default_rng(5).integers(0, actions, len(x))
    pairs = np.hstack([x[:, columns], np.eye(actions, dtype=np.float32)[action]])
    effect = np.nan_to_num(x[:, 1]) * (action - 1.5) + np.random.default_rng(6).normal(0, 0.3, len(x))
    uplift = lightgbm.LGBMRegressor(n_estimators=30, num_leaves=7, min_child_samples=5, verbose=-1).fit(pairs, effect)
    make_float32_exact(uplift)
    own_graph = to_onnx(uplift, len(columns) + actions)
    trees = models["churn"].booster_.dump_model()["tree_info"]
    graph, outputs = combine({**graphs, "uplift": own_graph}, {**COLUMNS, "uplift": columns}, WIDTH,
                             leaves_of="churn", trees=trees, effects={"uplift": actions})
    probe = _data(500, 7)
    combined = CombinedScorer(graph, outputs).run(probe)
    assert combined["uplift"].shape == (len(probe), actions)
    own = OnnxScorer(own_graph)
    for a in range(actions):  # client by client and action by action through the model's own graph
        one_hot = np.zeros((len(probe), actions), np.float32)
        one_hot[:, a] = 1.0
        expected = own.predict(np.ascontiguousarray(np.hstack([probe[:, columns], one_hot])))[:, 0]
        np.testing.assert_array_equal(combined["uplift"][:, a], expected, err_msg=f"action {a}")
    for name, raw in graphs.items():  # the other models are unchanged by it
        np.testing.assert_array_equal(combined[name], OnnxScorer(raw).predict(np.ascontiguousarray(
            probe[:, COLUMNS[name]])), err_msg=name)
