"""One client's decision: online indicators → three models → rules → tier, package, actions, alerts, reasons.

A :class:`Served` snapshot holds everything a decision uses (model versions, the active ruleset, the online
reader); a request takes the current snapshot once, so a reload that swaps it never mixes versions inside one
decision. :func:`compute` is pure — recorded indicator values and versions give the same decision again, which
is what replay relies on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from features.indicators.compute import catalog
from features.store.online_reader import OnlineReader, OnlineStoreUnavailable
from model_registry.explain import CAUSES
from rules.engine import Ruleset
from rules.vocabulary import Vocabulary
from service.arbitration import ActionEffects, Arbiter
from service.contact_history import ContactHistory
from service.errors import ClientNotFoundError
from service.experiments import CHALLENGER, CHAMPION, HOLDOUT, ArmPlan
from service.lifecycle import CHURN_SCORED_STAGES, Departure, Register
from service.rule_inputs import client_inputs
from service.scoring import Models
from service.suitability import mismatch_evidence

TOP_CONTRIBUTORS = 5
RISK_LEVEL_CLASS = {1: "conservative", 2: "conservative", 3: "balanced", 4: "aggressive", 5: "aggressive"}
_INDICATORS = {i.name: i for i in catalog()}


@dataclass
class Served:
    """Everything one decision reads, swapped as a whole on reload."""

    models: Models | None  # None: no champions could be loaded, every decision is rules-only
    ruleset: Ruleset
    reader: OnlineReader | None
    vocabulary: Vocabulary
    loaded_at: float = 0.0
    problems: list[str] = field(default_factory=list)
    # Next best actions: arbitration per ruleset (None: the ruleset has no catalogue), the arms, the challenger
    # strategy, the register of departures and the contact history the policy reads.
    arbiter: Arbiter | None = None
    arms: ArmPlan | None = None
    challenger: Ruleset | None = None
    challenger_arbiter: Arbiter | None = None
    register: Register | None = None
    contacts: ContactHistory | None = None
    timezone: str = "Asia/Shanghai"

    @property
    def model_versions(self) -> dict[str, int] | None:
        return self.models.versions if self.models is not None else None


def _matrix(rows: list[dict[str, object]], names: list[str]) -> np.ndarray:
    # None (a missing indicator) becomes NaN, which the models treat as missing.
    return np.array([[row.get(n) for n in names] for row in rows], dtype=np.float32)


def _fmt(value: object, unit: str) -> str:
    text = (f"{value:,.2f}" if abs(value) >= 100 else f"{value:.3g}") if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit and unit not in ("flag", "category") else text


def _contributors(models: Models, values: dict[str, object], rises: np.ndarray) -> list[dict]:
    out = []
    for i in np.argsort(-rises)[:TOP_CONTRIBUTORS]:
        if rises[i] <= 0:
            break
        name = models.churn.features[i]
        meta = _INDICATORS.get(name)
        value = values.get(name)
        text = f"{name} = {_fmt(value, meta.unit if meta else '')}"
        if meta is not None:
            text += f" ({meta.zh}): {meta.formula}"
        out.append({"indicator": name, "value": value, "push": round(float(rises[i]), 4), "text": text})
    return out


def score_many(models: Models, rows: list[dict[str, object]]) -> list[dict]:
    """Every served model's outputs for each client's indicator values: every model runs once on all the rows, so a
    batch costs little more than one client, and one client gets exactly what it would get in a batch."""
    matrix = _matrix(rows, models.inputs)
    scored = models.run(matrix, with_effects=True)
    effects = models.effects(scored)
    others = models.other_scores(scored)
    probability = np.interp(scored["churn"][:, 1].astype(np.float64), models.calibration_x, models.calibration_y)
    bands = models.band(probability)
    explainer = models.explainer
    leaves = scored["churn_leaves"]
    amount = np.expm1(scored["value"][:, 0]).astype(np.float64)
    percentile = models.percentile(amount)
    risk = scored["risk_profile"]
    order = list(models.risk_classes)
    out = []
    for k, values in enumerate(rows):
        rises = explainer.rises_of(leaves[k])
        cause_scores = rises @ explainer.membership
        risk_class = order[int(np.argmax(risk[k]))]
        stated = values.get("stated_risk_level")
        stated_class = RISK_LEVEL_CLASS.get(int(stated)) if isinstance(stated, int | float) else None
        mismatch = stated_class is not None and order.index(risk_class) > order.index(stated_class)
        evidence = (mismatch_evidence(values, models.risk_evidence, stated_class, risk_class)
                    if mismatch and stated_class is not None else [])
        out.append({
            "churn": {"probability": round(float(probability[k]), 6), "band": bands[k],
                      "likely_cause": CAUSES[int(np.argmax(cause_scores))],
                      "cause_scores": {c: round(float(s), 4) for c, s in zip(CAUSES, cause_scores, strict=True)}},
            "value": {"amount_yuan": round(float(amount[k]), 2), "percentile": round(float(percentile[k]), 2)},
            "risk_profile": {"class": risk_class,
                             "probabilities": {c: round(float(p), 6) for c, p in zip(order, risk[k], strict=True)},
                             "stated_level": f"C{int(stated)}" if stated_class else None,
                             "suitability_mismatch": mismatch, "mismatch_evidence": evidence},
            "_contributors": _contributors(models, values, rises),
        })
        for name, rows_scores in others.items():
            out[-1][name] = rows_scores[k]
        if effects is not None:
            # Each action's estimated effect on this client: the fall of its 90-day churn probability.
            out[-1][models.effects_model] = {"effects": {a: round(float(e), 6) for a, e in
                                                         zip(models.effect_actions, effects[k], strict=True)}}
    return out


def score(models: Models, values: dict[str, object]) -> dict:
    """The three models' outputs for one client's indicator values."""
    return score_many(models, [values])[0]


@dataclass(frozen=True)
class Asked:
    """One client to decide: its indicator values (None: not read), their as-of date and, per indicator family,
    the time its values are as of."""

    client_id: str
    values: dict[str, object] | None
    as_of: str | None
    freshness: dict[str, str | None] | None = None
    departure: Departure | None = None  # replay: the departure recorded with the decision
    arm: str | None = None  # replay: the arm recorded with the decision


def compute_many(served: Served, asked: list[Asked], degraded_reason: str | None = None
                 ) -> list[tuple[dict, dict[str, object]]]:
    """Each client's decision response (without id and timing) and the rule inputs it used."""
    scored: list[dict | None] = [None] * len(asked)
    reasons = [degraded_reason] * len(asked)
    with_values = [k for k, a in enumerate(asked) if a.values is not None]
    if degraded_reason is None and served.models is None:  # a closed account needs no model: it is not degraded
        reasons = [None if a.values is None else "no champion models are loaded" for a in asked]
    elif degraded_reason is None and with_values:
        try:
            for k, scores in zip(with_values, score_many(served.models, [asked[k].values for k in with_values]),
                                 strict=True):
                scored[k] = scores
        except Exception:  # noqa: BLE001 - one client's values must not degrade the others: score each alone
            for k in with_values:
                try:
                    (scored[k],) = score_many(served.models, [asked[k].values])
                except Exception as e:  # noqa: BLE001 - a model that cannot score must not fail the decision
                    reasons[k] = f"models could not score: {e}"
    out = []
    for a, scores, reason in zip(asked, scored, reasons, strict=True):
        out.append(_respond(served, a, scores if reason is None else None, reason, a.departure, a.arm))
    return out


def _respond(served: Served, asked: Asked, scores: dict | None, degraded_reason: str | None,
             departure: Departure | None = None, arm: str | None = None) -> tuple[dict, dict[str, object]]:
    if departure is None and served.register is not None:
        departure = served.register.get(asked.client_id)
    values = asked.values if degraded_reason is None else None
    inputs = client_inputs(served.vocabulary, values, scores, departure)
    if arm is None:
        arm = served.arms.arm(asked.client_id) if served.arms is not None else CHAMPION
    ruleset, arbiter = served.ruleset, served.arbiter
    if arm == CHALLENGER:
        if served.challenger is not None:
            ruleset, arbiter = served.challenger, served.challenger_arbiter
        else:  # the challenger is not loaded (not approved, or being reloaded): the champion serves
            arm = CHAMPION
    decision = ruleset.evaluate(inputs, check=False)
    contributors = scores.pop("_contributors") if scores is not None else []
    stage = inputs.get("lifecycle_stage")
    if scores is not None and stage is not None and stage not in CHURN_SCORED_STAGES:
        scores["churn"], contributors = None, []  # the churn score does not speak for a new, dormant or lost client
    described = ruleset.descriptions
    rules = [{"table": table, "rule": r, "description": described[(table, r)]}
             for table, fired in decision.fired for r in fired]
    lifecycle = {"stage": stage, "churn_scored": scores is not None and scores["churn"] is not None}
    if stage == "lost":
        lifecycle |= {"cause": inputs.get("churn_cause"),
                      "last_active": departure.last_active if departure is not None else None,
                      "closed_on": departure.closed_on if departure is not None else None}
    response = {
        "client_id": asked.client_id,
        "as_of": asked.as_of,
        "freshness": asked.freshness,
        "degraded": degraded_reason is not None,
        "degraded_reason": degraded_reason,
        "arm": arm,
        "lifecycle": lifecycle,
        "tier": decision.tier,
        "package": decision.package,
        "actions": list(decision.actions),
        "alerts": list(decision.alerts),
        "scores": scores,
        "reasons": {"rules": rules, "churn_contributors": contributors},
        "versions": {"models": served.model_versions if scores is not None else None,
                     "ruleset": decision.version},
    }
    if arbiter is not None:
        contacts = served.contacts.of(asked.client_id) if served.contacts is not None else []
        today = dt.datetime.now(ZoneInfo(served.timezone)).date()
        uplift = _action_effects(served, scores)
        chosen, withheld = arbiter.arbitrate(decision.actions, inputs, arm, contacts, today, uplift)
        response["next_best_actions"] = chosen
        response["withheld_actions"] = withheld
        if arm == HOLDOUT:
            response["would_have"] = arbiter.arbitrate(decision.actions, inputs, CHAMPION, contacts, today,
                                                       uplift)[0]
    else:
        response["next_best_actions"] = []
        response["withheld_actions"] = [{"action": a, "reason": "no_catalogue"} for a in decision.actions]
    return response, inputs


def _action_effects(served: Served, scores: dict | None) -> ActionEffects | None:
    """The served uplift model's effects of each action on this client, for arbitration (None: none served)."""
    models = served.models
    if scores is None or models is None or models.effects_model is None:
        return None
    return ActionEffects(scores[models.effects_model]["effects"], models.effects_model,
                         models.versions[models.effects_model])


def compute(served: Served, client_id: str, values: dict[str, object] | None, as_of: str | None,
            degraded_reason: str | None = None, departure: Departure | None = None, arm: str | None = None
            ) -> tuple[dict, dict[str, object]]:
    """The decision response (without id and timing) and the rule inputs it used."""
    return compute_many(served, [Asked(client_id, values, as_of, departure=departure, arm=arm)], degraded_reason)[0]


def as_of_date(epoch: float | None, timezone: str) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=ZoneInfo(timezone)).date().isoformat()


def as_of_time(epoch: float | None, timezone: str) -> str | None:
    """An indicator family's time, in the trading time zone: midnight for a batch month-end (that day's data
    included), the moment of the latest applied client events otherwise."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=ZoneInfo(timezone)).isoformat(timespec="seconds")


def decide_many(served: Served, client_ids: list[str], timezone: str
                ) -> list[tuple[dict, dict[str, object] | None, dict] | ClientNotFoundError]:
    """Read the clients' indicators in one round trip and decide for each: (response, indicator values read,
    rule inputs), or ClientNotFoundError for a client the online store has no row for (unless the register of
    departures has its account as closed: then it is decided as lost, from the register)."""
    reason = None
    found: list = [None] * len(client_ids)
    if served.reader is None:
        reason = "the online store is not configured or could not be opened"
    else:
        try:
            found = served.reader.read_many(client_ids, with_times=True)
        except OnlineStoreUnavailable as e:
            reason = str(e)
    if reason is not None:  # degraded: every client is decided by the rules alone
        found = [({}, None, None)] * len(client_ids)
    asked: dict[int, Asked] = {}  # position in the request → what to decide; unknown clients are left out
    for k, read in enumerate(found):
        departure = served.register.get(client_ids[k]) if read is None and served.register is not None else None
        if departure is not None and departure.closed:  # a closed account: decided from the register alone
            asked[k] = Asked(client_ids[k], None, None, departure=departure)
        elif read is not None:
            values, epoch, times = read
            freshness = {view: as_of_time(t, timezone) for view, t in times.items()} if times else None
            asked[k] = Asked(client_ids[k], values if reason is None else None, as_of_date(epoch, timezone),
                             freshness)
    out: list = [ClientNotFoundError(c) for c in client_ids]
    for (k, a), (response, inputs) in zip(asked.items(), compute_many(served, list(asked.values()), reason),
                                          strict=True):
        out[k] = (response, a.values, inputs)
    return out


def decide(served: Served, client_id: str, timezone: str) -> tuple[dict, dict[str, object] | None, dict]:
    """Read the client's indicators and decide; returns (response, indicator values read, rule inputs).
    Raises ClientNotFoundError when the online store has no row for the client."""
    (result,) = decide_many(served, [client_id], timezone)
    if isinstance(result, ClientNotFoundError):
        raise result
    return result
