"""The decision engine in the closed loop: it sees only what a brokerage sees.

Each month-end it computes the indicators of that one date from the raw tables the world produced (history and
the loop's months), scores every client with the champions, evaluates the active rules, arbitrates each client's
retention actions under the catalogue's contact policy, and fills each broker's queue for the next month within
the capacity. Nothing here reads the generator or the ground truth (an import-linter contract): the oracle's true
effects come in as numbers from the caller, exactly where an uplift model's predictions go.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from config import Settings
from features.indicators.compute import compute_indicators
from features.model_features import feature_references
from features.raw.schema import RETENTION_ACTIONS
from features.store.feature_store import latest_frame
from model_registry.onnx_export import OnnxScorer
from model_registry.registry import CHAMPION, Registry, ServingBundle
from rules.engine import Ruleset
from rules.vocabulary import Vocabulary
from service.arbitration import ActionEffects, Arbiter
from service.collector import collector_paused
from service.contact_history import ContactHistory
from service.experiments import CHAMPION as CHAMPION_ARM
from service.rule_inputs import decision_references, population_inputs
from service.scoring import Models

POLICIES = ("none", "random", "rules", "uplift", "oracle")
UPLIFT_MODEL = "retention_uplift"
# Only a client with an open complaint can have it resolved (the catalogue's knowledge, observable).
NEEDS_OPEN_COMPLAINT = {"resolve_open_complaints"}


@dataclass
class UpliftModel:
    """The served retention uplift model: ONNX graph over the indicators and a one-hot of the action."""

    scorer: OnnxScorer
    indicators: list[str]  # indicator names, in the model's input order (before the action inputs)
    references: list[str]  # the same as view:indicator
    actions: list[str]
    version: int

    @classmethod
    def from_bundle(cls, bundle: ServingBundle) -> UpliftModel:
        actions = list(bundle.metadata["actions"])
        names = bundle.feature_names[: len(bundle.feature_names) - len(actions)]
        refs = {ref.split(":", 1)[1]: ref for ref in feature_references(bundle.metadata["feature_service"])}
        return cls(OnnxScorer(bundle.onnx_bytes, threads=1), names, [refs[n] for n in names], actions,
                   bundle.version)


def predict_uplift(model: UpliftModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Each action's predicted fall of each client's 90-day churn probability (clients × actions).

    The one place the closed loop asks the uplift model for its effects: serving it some other way changes this
    function only."""
    features = frame[model.indicators].to_numpy(dtype=np.float32)
    out = {}
    for k, action in enumerate(model.actions):
        onehot = np.zeros((len(frame), len(model.actions)), dtype=np.float32)
        onehot[:, k] = 1.0
        out[action] = model.scorer.predict(np.hstack([features, onehot]))[:, 0]
    return pd.DataFrame(out, index=frame.index)


@dataclass
class Engine:
    """The champions, the active ruleset and its arbitration, loaded once for the whole loop."""

    models: Models
    uplift: UpliftModel | None
    ruleset: Ruleset
    vocabulary: Vocabulary
    arbiter: Arbiter

    @classmethod
    def load(cls, settings: Settings, ruleset: Ruleset, vocabulary: Vocabulary) -> Engine:
        registry = Registry(settings.tracking_uri, settings.mlflow_artifacts_dir)
        models = Models.load(registry, threads=1)  # one thread: a shared machine makes spinning pools crawl
        uplift = (UpliftModel.from_bundle(registry.bundle(UPLIFT_MODEL, CHAMPION))
                  if registry.alias_version(UPLIFT_MODEL, CHAMPION) is not None else None)
        catalogue = ruleset.spec.catalogue
        if catalogue is None:
            raise ValueError(f"ruleset {ruleset.version[:12]} has no action catalogue: nothing to arbitrate")
        arbiter = Arbiter(catalogue, vocabulary.products, max_actions=len(catalogue.actions))
        return cls(models, uplift, ruleset, vocabulary, arbiter)

    def references(self) -> list[str]:
        refs = decision_references(self.models.references, self.vocabulary)
        return list(dict.fromkeys([*refs, *(self.uplift.references if self.uplift else [])]))

    def channel(self, action: str) -> str:
        return self.arbiter.terms[action].channel


@dataclass
class MonthView:
    """What the engine knows at one month-end: indicators, scores and rule inputs of the clients it decides."""

    as_of: dt.date
    frame: pd.DataFrame  # indicators by client id
    scores: pd.DataFrame
    inputs: list[dict]
    contacts: ContactHistory
    active: np.ndarray  # rows of clients that can be kept (not lost)


def observe(engine: Engine, raw_dir: Path, rows_dir: Path, as_of: dt.date, work: Path) -> MonthView:
    """Indicators of ``as_of`` alone from the raw tables (history plus the loop's rows), scores and rule inputs."""
    if work.exists():
        shutil.rmtree(work)
    compute_indicators(raw_dir, work / "offline", as_of_dates=[as_of], events_raw_dir=rows_dir)
    frame = latest_frame(work, engine.references())
    scores = engine.models.score_frame(frame)
    with collector_paused():
        inputs = population_inputs(engine.vocabulary, frame, scores)
    contacts = ContactHistory(window_days=365)
    contacts.load_raw(raw_dir, as_of)
    contacts.load_raw(rows_dir, as_of)
    stages = np.array([row.get("lifecycle_stage", "active") for row in inputs], dtype=object)
    assets = frame["total_assets"].to_numpy() if "total_assets" in frame else np.full(len(frame), np.inf)
    active = np.flatnonzero((stages != "lost") & (assets >= 1_000.0))
    return MonthView(as_of, frame, scores, inputs, contacts, active)


def plan_month(policy: str, engine: Engine, view: MonthView, brokers: pd.Series, capacity: int, trading_days: int,
               rng: np.random.Generator, true_uplift: pd.DataFrame | None = None) -> pd.DataFrame:
    """Next month's actions of one policy: each client's best eligible action (contact policy applied; one action a
    client, as several would interact through over-contact and the effects ranked by are those of one action), then each
    broker's queue of at most ``capacity`` actions, best first, spread over the month's trading days.

    ``true_uplift`` (clients × actions, the world's true effects) is the oracle's, and only the oracle's."""
    columns = ["client_id", "broker_id", "action", "channel", "priority", "day"]
    if policy == "none" or capacity <= 0:
        return pd.DataFrame(columns=columns)
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")
    effects: pd.DataFrame | None = None
    source: tuple[str, int] = ("", 0)
    if policy == "uplift":
        if engine.uplift is None:
            raise ValueError("no retention_uplift champion: train it with `crm models train --model uplift`")
        effects = predict_uplift(engine.uplift, view.frame.iloc[view.active])
        source = (UPLIFT_MODEL, engine.uplift.version)
    elif policy == "oracle":
        if true_uplift is None:
            raise ValueError("the oracle policy needs the world's true effects")
        effects = true_uplift
        source = ("the synthetic world's true effect", 0)
    catalogue_actions = set(engine.arbiter.terms)
    retention = [a for a in RETENTION_ACTIONS if a in catalogue_actions]
    client_ids = view.frame.index.to_numpy()
    open_complaints = (view.frame["open_complaints"].to_numpy() if "open_complaints" in view.frame
                       else np.zeros(len(view.frame)))
    effect_rows = effects.to_dict("index") if effects is not None else None
    best: list[tuple[str, str, str, float]] = []
    with collector_paused():
        for row in view.active.tolist():
            client = client_ids[row]
            values = view.inputs[row]
            if policy == "rules":
                candidates = [a for a in engine.ruleset.evaluate(values, check=False).actions if a in retention]
            else:
                candidates = [a for a in retention if a not in NEEDS_OPEN_COMPLAINT or open_complaints[row] > 0]
            if not candidates:
                continue
            uplift = None
            if effect_rows is not None:
                if client not in effect_rows:
                    continue
                uplift = ActionEffects(effect_rows[client], *source)
            chosen, _ = engine.arbiter.arbitrate(candidates, values, CHAMPION_ARM, view.contacts.of(client),
                                                 view.as_of, uplift=uplift)
            if not chosen:
                continue
            pick = chosen[int(rng.integers(0, len(chosen)))] if policy == "random" else chosen[0]
            best.append((client, pick["action"], pick["channel"], float(pick["priority"])))
    if not best:
        return pd.DataFrame(columns=columns)
    plan = pd.DataFrame(best, columns=["client_id", "action", "channel", "priority"])
    plan["broker_id"] = brokers.reindex(plan["client_id"]).to_numpy()
    if policy == "random":
        plan["order"] = rng.permutation(len(plan))
    else:
        plan["order"] = (-plan["priority"]).rank(method="first")
    plan = plan.sort_values(["broker_id", "order"], kind="stable")
    plan["rank"] = plan.groupby("broker_id").cumcount()
    plan = plan[plan["rank"] < capacity].copy()
    # Each broker works through the queue best first across the month's trading days.
    plan["day"] = (plan["rank"] * trading_days // max(capacity, 1)).astype(np.int64)
    return plan[columns].reset_index(drop=True)
