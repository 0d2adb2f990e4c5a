"""Batch scoring gives every client the decision the API would give."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from config import Settings
from features.store.feature_store import open_store
from features.store.online_reader import OnlineReader
from model_registry.registry import Registry
from rules.engine import build
from rules.model import load_ruleset
from rules.vocabulary import load_vocabulary
from service.batch_scoring import score_population
from service.decisions import Served, decide
from service.rule_inputs import indicator_references
from service.scoring import Models


def test_batch_decisions_equal_api_decisions(model_home: Settings, tmp_path) -> None:
    models = Models.load(Registry(model_home.tracking_uri, model_home.mlflow_artifacts_dir))
    vocabulary, ruleset = load_vocabulary(), build(load_ruleset())
    out = tmp_path / "decisions.parquet"
    summary = score_population(model_home.features_dir, models, ruleset, vocabulary, out, chunk=1_000)
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == summary["clients"] > 1_000
    refs = list(dict.fromkeys([*models.references, *indicator_references(vocabulary)]))
    served = Served(models, ruleset, OnlineReader(open_store(model_home.features_dir), refs, timeout_s=5), vocabulary)
    for row in rows[::50]:
        api, _, _ = decide(served, row["client_id"], "Asia/Shanghai")
        assert (row["tier"], row["package"], row["actions"], row["alerts"]) == (
            api["tier"], api["package"], api["actions"], api["alerts"])
        assert row["lifecycle_stage"] == api["lifecycle"]["stage"]
        churn = api["scores"]["churn"]  # scored for active and at-risk clients only
        if churn is None:
            assert (row["churn_probability"], row["churn_cause"]) == (None, None)
        else:
            assert row["churn_probability"] == pytest.approx(churn["probability"], abs=1e-6)
            assert row["churn_cause"] == churn["likely_cause"]
        assert row["rules_fired"] == [f"{r['table']}/{r['rule']}" for r in api["reasons"]["rules"]]
