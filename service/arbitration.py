"""Arbitration: the rules' eligible actions, made suitable, filtered by the contact policy, ranked and capped.

A separate step after scoring and the rules. Order matters and is fixed: eligibility (the rules chose the
actions) and suitability (a product above the client's stated risk level or with an expired questionnaire is
dropped) come first, then the contact policy (holdout, suppression after a decline, the per-channel cap), and only
what is left is ranked, so an unsuitable or blocked action can never take a place in the top N.

    priority = expected retained value × business lever − cost
    expected retained value = fall of the churn probability the action brings × value at stake

When an uplift model is served, the fall is its estimate of the action's effect on this client (``effect_source``
``uplift_model``). Otherwise, and for actions or clients it does not cover (marketing, product offers, a lost
client), the fall is churn probability × the catalogue's prior for the action and the client's churn cause
(``effect_source`` ``catalogue_prior``; a lost client: the cause recorded when it left, and a churn probability
of 1 — it is gone unless won back). What a kept client is worth is the catalogue's choice (``value_at_stake``): the
predicted commission of the next 12 months (for a lost client, the larger of that and the commission of the last
365 days, what winning it back restores), or the assets the client holds (for a lost client, the larger of those
and what it moved out over the last 365 days). Ranked in commission, a few hundred yuan of cost outweigh the
commission a call keeps, so the cheapest contact wins whatever it does; ranked in assets, the action that keeps
the most of what would leave wins. Everything per action is looked up once when the ruleset is loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from rules.catalogue import Catalogue, Purpose, ValueAtStake
from service.contact_history import DECLINED, Contact
from service.experiments import HOLDOUT

CONTACT_WINDOW_DAYS = 30
UPLIFT_MODEL, CATALOGUE_PRIOR = "uplift_model", "catalogue_prior"  # where an action's effect comes from


@dataclass(frozen=True)
class ActionEffects:
    """A served uplift model's estimate, per action, of the fall of this client's 90-day churn probability."""

    effects: Mapping[str, float]
    model: str
    version: int


@dataclass(frozen=True)
class ActionTerms:
    """One catalogue action as arbitration reads it (plain attributes, built once per ruleset)."""

    action: str
    purpose: str
    deliverer: str
    channel: str
    cost_yuan: float
    daily_capacity: int
    suppression_days: int
    business_lever: float
    effect: dict[str, float]
    product_level: int | None  # the product's risk rating R1..R5 when the action offers a product
    held_from_holdout: bool


class Arbiter:
    """Ranks one client's actions by the catalogue and contact policy of one ruleset."""

    def __init__(self, catalogue: Catalogue, products: dict[str, int], max_actions: int) -> None:
        self.catalogue = catalogue
        self.max_actions = max_actions
        self.max_contacts = catalogue.contact_policy.max_contacts_per_channel_30d
        self.value_at_stake = catalogue.value_at_stake
        held = {Purpose(p) for p in catalogue.contact_policy.holdout_purposes}
        self.terms = {
            a: ActionTerms(a, spec.purpose.value, spec.deliverer.value, spec.channel, spec.cost_yuan,
                           spec.daily_capacity, spec.suppression_days, spec.business_lever, dict(spec.effect),
                           products.get(a) if spec.purpose == Purpose.PRODUCT_OFFER else None,
                           spec.purpose in held)
            for a, spec in catalogue.actions.items()}

    def arbitrate(self, actions: tuple[str, ...] | list[str], inputs: dict[str, object], arm: str,
                  contacts: list[Contact], today: dt.date, uplift: ActionEffects | None = None
                  ) -> tuple[list[dict], list[dict]]:
        """(next best actions, best first, at most ``max_actions``; withheld actions with the reason). With
        ``uplift``, an action it covers is ranked by its estimated effect on this client instead of the prior."""
        withheld: list[dict] = []
        stage = inputs.get("lifecycle_stage")
        lost = stage == "lost"
        cause = str(inputs.get("churn_cause", "service"))
        probability = 1.0 if lost else float(inputs.get("churn_probability", 0.0))  # type: ignore[arg-type]
        forward = float(inputs.get("value_amount", 0.0))  # type: ignore[arg-type]
        if lost:
            forward = max(forward, float(inputs.get("commission_365d", 0.0)))  # type: ignore[arg-type]
        stake = self.stake(inputs, forward, lost)
        stated = int(inputs.get("stated_risk_level", 0))  # type: ignore[call-overload]
        expired = bool(inputs.get("questionnaire_expired", True))
        recent, declined = _recent(contacts, today)
        candidates = []
        for action in actions:
            t = self.terms.get(action)
            if t is None:  # a ruleset validated against its catalogue never gets here
                withheld.append({"action": action, "reason": "not_in_catalogue"})
                continue
            if t.product_level is not None and (expired or stated < t.product_level):
                withheld.append({"action": action, "reason": "unsuitable",
                                 "text": f"product rated R{t.product_level} and the client's stated level is "
                                         f"C{stated}{' with an expired questionnaire' if expired else ''}"})
                continue
            if arm == HOLDOUT and t.held_from_holdout:
                withheld.append({"action": action, "reason": "holdout",
                                 "text": "the client is in the holdout arm: no retention or win-back action"})
                continue
            last_decline = declined.get(action)
            if last_decline is not None and (today - last_decline).days < t.suppression_days:
                withheld.append({"action": action, "reason": "suppressed",
                                 "text": f"declined on {last_decline.isoformat()}; not repeated for "
                                         f"{t.suppression_days} days"})
                continue
            estimated = None if uplift is None or lost else uplift.effects.get(action)
            if estimated is not None:
                fall = float(estimated)
                effect = fall / probability if probability > 0 else 0.0
            else:
                effect = t.effect.get(cause, 0.0)
                fall = probability * effect
            retained = fall * stake
            priority = retained * t.business_lever - t.cost_yuan
            candidates.append((priority, retained, effect, estimated, t))
        candidates.sort(key=lambda c: -c[0])
        chosen: list[dict] = []
        used = dict(recent)
        for priority, retained, effect, estimated, t in candidates:
            if used.get(t.channel, 0) >= self.max_contacts:
                withheld.append({"action": t.action, "reason": "contact_cap",
                                 "text": f"{self.max_contacts} {t.channel} contacts in {CONTACT_WINDOW_DAYS} days "
                                         "already"})
                continue
            if len(chosen) >= self.max_actions:
                withheld.append({"action": t.action, "reason": "beyond_cap",
                                 "text": f"ranked below the {self.max_actions} actions a decision gives"})
                continue
            used[t.channel] = used.get(t.channel, 0) + 1
            chosen.append(_ranked(t, len(chosen) + 1, priority, retained, probability, effect, cause, forward,
                                  (self.value_at_stake, stake), lost, _source(uplift, estimated, lost)))
        return chosen, withheld

    def stake(self, inputs: dict[str, object], forward: float, lost: bool) -> float:
        """What keeping (or winning back) this client is worth, yuan, on the catalogue's basis."""
        if self.value_at_stake == ValueAtStake.FORWARD_COMMISSION:
            return forward
        assets = float(inputs.get("total_assets", 0.0))  # type: ignore[arg-type]
        if lost:
            return max(assets, float(inputs.get("outflow_365d", 0.0)))  # type: ignore[arg-type]
        return assets


def _recent(contacts: list[Contact], today: dt.date) -> tuple[dict[str, int], dict[str, dt.date]]:
    """Contacts per channel in the last 30 days, and the latest decline of each action."""
    per_channel: dict[str, int] = {}
    declined: dict[str, dt.date] = {}
    for c in contacts:
        age = (today - c.on).days
        if 0 <= age < CONTACT_WINDOW_DAYS and c.outcome != "no_answer":
            per_channel[c.channel] = per_channel.get(c.channel, 0) + 1
        if c.outcome == DECLINED and c.action is not None and age >= 0 and \
                (c.action not in declined or declined[c.action] < c.on):
            declined[c.action] = c.on
    return per_channel, declined


def _source(uplift: ActionEffects | None, estimated: float | None, lost: bool) -> tuple[str, float | None, str]:
    """(effect source, estimated fall of the churn probability or None, why) of one ranked action."""
    if estimated is not None and uplift is not None:
        return UPLIFT_MODEL, estimated, f"{uplift.model} v{uplift.version}"
    if uplift is None:
        return CATALOGUE_PRIOR, None, "catalogue prior: no uplift model is served"
    if lost:
        return CATALOGUE_PRIOR, None, "catalogue prior: the uplift model covers active clients, not lost ones"
    return CATALOGUE_PRIOR, None, "catalogue prior: the uplift model does not cover this action"


def _ranked(t: ActionTerms, rank: int, priority: float, retained: float, probability: float, effect: float,
            cause: str, forward: float, stake: tuple[ValueAtStake, float], lost: bool,
            source: tuple[str, float | None, str]) -> dict:
    effect_source, estimated, why = source
    basis, stake_yuan = stake
    worth = (f"forward value {forward:,.2f} yuan" if basis == ValueAtStake.FORWARD_COMMISSION
             else f"client assets {stake_yuan:,.2f} yuan")
    tail = f" × {worth} × business lever {t.business_lever:g} − cost {t.cost_yuan:,.2f} yuan"
    if estimated is not None:
        text = (f"priority {priority:,.2f} yuan = estimated fall of the churn probability {estimated:.4f} "
                f"({why}){tail}")
    else:
        p_word = "probability the client stays gone" if lost else "churn probability"
        text = (f"priority {priority:,.2f} yuan = {p_word} {probability:.3f} × effect {effect:.2f} "
                f"({cause.replace('_', ' ')}; {why}){tail}")
    return {"rank": rank, "action": t.action, "purpose": t.purpose, "deliverer": t.deliverer, "channel": t.channel,
            "priority": round(priority, 2),
            "score": {"churn_probability": round(probability, 6), "effect": round(effect, 6), "cause": cause,
                      "uplift": None if estimated is None else round(estimated, 6), "effect_source": effect_source,
                      "forward_value_yuan": round(forward, 2), "value_at_stake": basis.value,
                      "value_at_stake_yuan": round(stake_yuan, 2), "expected_retained_value_yuan": round(retained, 2),
                      "business_lever": t.business_lever, "cost_yuan": t.cost_yuan},
            "reason": text}
