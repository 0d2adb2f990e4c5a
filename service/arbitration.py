"""Arbitration: the rules' eligible actions, made suitable, filtered by the contact policy, ranked and capped.

A separate step after scoring and the rules. Order matters and is fixed: eligibility (the rules chose the
actions) and suitability (a product above the client's stated risk level or with an expired questionnaire is
dropped) come first, then the contact policy (holdout, suppression after a decline, the per-channel cap), and only
what is left is ranked, so an unsuitable or blocked action can never take a place in the top N.

    priority = expected retained value × business lever − cost
    expected retained value = churn probability × effect × forward value

The effect is the catalogue's prior for the action and the client's churn cause (a lost client: the cause
recorded when it left, and a churn probability of 1 — it is gone unless won back). The forward value is the
predicted commission of the next 12 months; for a lost client, the larger of that and the commission of the last
365 days (what winning it back restores). Everything per action is looked up once when the ruleset is loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from rules.catalogue import Catalogue, Purpose
from service.contact_history import DECLINED, Contact
from service.experiments import HOLDOUT

CONTACT_WINDOW_DAYS = 30


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
        held = {Purpose(p) for p in catalogue.contact_policy.holdout_purposes}
        self.terms = {
            a: ActionTerms(a, spec.purpose.value, spec.deliverer.value, spec.channel, spec.cost_yuan,
                           spec.daily_capacity, spec.suppression_days, spec.business_lever, dict(spec.effect),
                           products.get(a) if spec.purpose == Purpose.PRODUCT_OFFER else None,
                           spec.purpose in held)
            for a, spec in catalogue.actions.items()}

    def arbitrate(self, actions: tuple[str, ...] | list[str], inputs: dict[str, object], arm: str,
                  contacts: list[Contact], today: dt.date, uplift: Mapping[str, float] | None = None,
                  ) -> tuple[list[dict], list[dict]]:
        """(next best actions, best first, at most ``max_actions``; withheld actions with the reason).

        ``uplift``, when given, is this client's fall of the churn probability each action brings (an uplift
        model's, or the synthetic world's true one for the closed loop's oracle): it replaces the churn
        probability × the catalogue's prior effect."""
        withheld: list[dict] = []
        stage = inputs.get("lifecycle_stage")
        lost = stage == "lost"
        cause = str(inputs.get("churn_cause", "service"))
        probability = 1.0 if lost else float(inputs.get("churn_probability", 0.0))  # type: ignore[arg-type]
        forward = float(inputs.get("value_amount", 0.0))  # type: ignore[arg-type]
        if lost:
            forward = max(forward, float(inputs.get("commission_365d", 0.0)))  # type: ignore[arg-type]
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
            if uplift is None:
                effect = t.effect.get(cause, 0.0)
                retained = probability * effect * forward
            else:
                effect = uplift.get(action, 0.0)
                retained = effect * forward
            priority = retained * t.business_lever - t.cost_yuan
            candidates.append((priority, retained, effect, t))
        candidates.sort(key=lambda c: -c[0])
        chosen: list[dict] = []
        used = dict(recent)
        for priority, retained, effect, t in candidates:
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
            chosen.append(_ranked(t, len(chosen) + 1, priority, retained, probability, effect, cause, forward, lost,
                                  uplift is not None))
        return chosen, withheld


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


def _ranked(t: ActionTerms, rank: int, priority: float, retained: float, probability: float, effect: float,
            cause: str, forward: float, lost: bool, from_uplift: bool = False) -> dict:
    p_word = "probability the client stays gone" if lost else "churn probability"
    if from_uplift:
        text = (f"priority {priority:,.2f} yuan = fall of the churn probability {effect:.4f} (uplift) × forward "
                f"value {forward:,.2f} yuan × business lever {t.business_lever:g} − cost {t.cost_yuan:,.2f} yuan")
    else:
        text = (f"priority {priority:,.2f} yuan = {p_word} {probability:.3f} × effect {effect:.2f} "
                f"({cause.replace('_', ' ')}) × forward value {forward:,.2f} yuan × business lever "
                f"{t.business_lever:g} − cost {t.cost_yuan:,.2f} yuan")
    return {"rank": rank, "action": t.action, "purpose": t.purpose, "deliverer": t.deliverer, "channel": t.channel,
            "priority": round(priority, 2),
            "score": {"churn_probability": round(probability, 6), "effect": effect, "cause": cause,
                      "forward_value_yuan": round(forward, 2), "expected_retained_value_yuan": round(retained, 2),
                      "business_lever": t.business_lever, "cost_yuan": t.cost_yuan},
            "reason": text}

