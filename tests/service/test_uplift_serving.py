"""Serving the retention uplift model: each decision carries every action's estimated effect, arbitration ranks
by it, and without an uplift champion it falls back to the catalogue's priors, flagged."""

from __future__ import annotations

import numpy as np
import pytest

from config import Settings
from features.store.feature_store import latest_frame
from model_registry.specs import model_names
from service.decisions import score_many
from service.keys import Role
from service.scoring import Models
from tests.service.conftest import Api
from training.pipeline import registry
from training.uplift import action_effects

UPLIFT = "retention_uplift"


def _retention_decisions(api: Api, wanted: int = 5) -> list[dict]:
    """Decisions of clients whose next best actions include a retention action the uplift model covers."""
    found = []
    for client_id in api.client_ids[:400]:
        body = api.client.post("/v1/decisions", json={"client_id": client_id},
                               headers=api.headers(Role.FRONT_OFFICE)).json()
        if body.get("scores") and any(a["purpose"] == "retention" for a in body["next_best_actions"]):
            found.append(body)
            if len(found) == wanted:
                break
    return found


def test_each_decision_carries_each_actions_effect_and_ranks_by_it(api: Api) -> None:
    decisions = _retention_decisions(api)
    assert decisions, "some test-world clients get a retention action"
    for body in decisions:
        effects = body["scores"][UPLIFT]["effects"]
        assert body["versions"]["models"][UPLIFT] >= 1
        for ranked in body["next_best_actions"]:
            score = ranked["score"]
            if ranked["action"] in effects and body["lifecycle"]["stage"] != "lost":
                assert score["effect_source"] == "uplift_model" and score["uplift"] == effects[ranked["action"]]
                # The uplift is shown to 6 decimals, so the product is exact to half a millionth of the stake.
                assert score["expected_retained_value_yuan"] == pytest.approx(
                    score["uplift"] * score["value_at_stake_yuan"], abs=5e-7 * score["value_at_stake_yuan"] + 0.01)
                assert f"{UPLIFT} v" in ranked["reason"]
            else:
                assert score["effect_source"] == "catalogue_prior" and score["uplift"] is None
        priorities = [a["priority"] for a in body["next_best_actions"]]
        assert priorities == sorted(priorities, reverse=True)


def test_serving_gives_the_effects_the_frame_function_gives(model_home: Settings) -> None:
    reg = registry(model_home)
    models = Models.load(reg)
    assert models.effects_model == UPLIFT and UPLIFT not in models.per_client
    frame = latest_frame(model_home.features_dir, models.references).head(50)
    served = models.action_effects(frame[models.inputs].to_numpy(dtype=np.float32))
    by_frame = action_effects(reg.bundle(UPLIFT), frame)
    assert list(by_frame.columns) == models.effect_actions
    assert np.allclose(served, by_frame.to_numpy(), atol=1e-6)


def test_without_an_uplift_champion_decisions_rank_by_the_priors_flagged(model_home: Settings) -> None:
    reg = registry(model_home)
    models = Models({name: reg.bundle(name) for name in model_names() if name != UPLIFT})
    assert models.effects_model is None and models.action_effects(np.zeros((1, len(models.inputs)))) is None
    frame = latest_frame(model_home.features_dir, models.references).head(3)
    for scores in score_many(models, frame.to_dict("records")):
        assert UPLIFT not in scores
