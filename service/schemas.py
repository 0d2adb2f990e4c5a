"""Request and response bodies of the API (pydantic models: validation and the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 1000
CLIENT_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$",
                  description="The client's account id, for example C0000123.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionRequest(_Strict):
    client_id: str = CLIENT_ID


class BatchRequest(_Strict):
    client_ids: list[str] = Field(min_length=1, description=f"Up to {MAX_BATCH} client ids.")


class Churn(BaseModel):
    probability: float
    band: str
    likely_cause: str
    cause_scores: dict[str, float]


class Value(BaseModel):
    amount_yuan: float = Field(description="Predicted commission over the next 12 months, yuan.")
    percentile: float


class SuitabilityEvidence(BaseModel):
    indicator: str
    value: float
    stated_class_median: float = Field(description="Median among clients whose behaviour reads the stated class.")
    behaviour_class_median: float = Field(description="Median among clients whose behaviour reads the class found.")
    text: str


class RiskProfile(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    risk_class: str = Field(alias="class")
    probabilities: dict[str, float]
    stated_level: str | None
    suitability_mismatch: bool = Field(description="Behaviour is riskier than the questionnaire's level.")
    mismatch_evidence: list[SuitabilityEvidence] = Field(
        default_factory=list, description="With a mismatch: the indicators pointing to the riskier class, strongest "
                                          "first, in words.")


class ActionEffectScores(BaseModel):
    effects: dict[str, float] = Field(description="Per retention action, its estimated effect on this client: the "
                                                  "fall of the 90-day churn probability (negative: it pushes away).")


class Scores(BaseModel):
    # Any other served model's scores appear under its name, by what its output means.
    model_config = ConfigDict(extra="allow")

    churn: Churn | None = Field(description="None for a new, dormant or lost client: churn scoring applies to "
                                            "active and at-risk clients only.")
    value: Value
    risk_profile: RiskProfile
    retention_uplift: ActionEffectScores | None = Field(
        default=None, description="Present when a retention uplift model is served.")


class FiredRule(BaseModel):
    table: str
    rule: str
    description: str


class Contributor(BaseModel):
    indicator: str
    value: Any = None
    push: float
    text: str


class Reasons(BaseModel):
    rules: list[FiredRule]
    churn_contributors: list[Contributor]


class Versions(BaseModel):
    models: dict[str, int] | None
    ruleset: str


class Lifecycle(BaseModel):
    stage: str = Field(description="new, active, at_risk, dormant or lost.")
    churn_scored: bool = Field(description="Whether the client was churn-scored (active and at-risk clients only).")
    cause: str | None = Field(default=None, description="A lost client: the cause recorded when it left.")
    last_active: str | None = Field(default=None, description="A lost client: its last active month-end.")
    closed_on: str | None = None


class ActionScore(BaseModel):
    churn_probability: float
    effect: float = Field(description="Share of the value at stake the action keeps.")
    cause: str
    uplift: float | None = Field(default=None, description="The uplift model's estimated fall of the client's "
                                                           "90-day churn probability, when it ranked the action.")
    effect_source: str = Field(default="catalogue_prior", description="uplift_model or catalogue_prior (no uplift "
                                                                      "model served, or one not covering the action).")
    forward_value_yuan: float = Field(description="The value model's commission of the next 12 months (a lost "
                                                  "client: at least that of the last 365 days).")
    value_at_stake: str = Field(default="forward_commission", description="What a kept client is worth in the "
                                "ranking, the catalogue's choice: forward_commission or client_assets.")
    value_at_stake_yuan: float = Field(description="That worth, yuan.")
    expected_retained_value_yuan: float = Field(description="Fall of the churn probability × value at stake.")
    business_lever: float
    cost_yuan: float


class NextBestAction(BaseModel):
    rank: int
    action: str
    purpose: str
    deliverer: str
    channel: str
    priority: float = Field(description="Expected retained value × business lever − cost, yuan.")
    score: ActionScore
    reason: str = Field(description="The priority's components in words and numbers.")


class WithheldAction(BaseModel):
    action: str
    reason: str = Field(description="unsuitable, holdout, suppressed, contact_cap, beyond_cap, not_in_catalogue or "
                                    "no_catalogue.")
    text: str | None = None


class DecisionResponse(BaseModel):
    decision_id: str
    decided_at: str
    client_id: str
    as_of: str | None = Field(description="Date of the indicators used (Asia/Shanghai).")
    freshness: dict[str, str | None] | None = Field(
        default=None, description="Per indicator family, the time its values are as of (Asia/Shanghai): a "
        "month-end at midnight from the batch build, or the moment client events were last applied to them.")
    degraded: bool = Field(description="True when features or scores were unavailable: a rules-only decision on "
                                       "conservative defaults.")
    degraded_reason: str | None
    arm: str = Field(description="Experiment arm: champion, holdout or challenger (a stable hash of the client id).")
    lifecycle: Lifecycle
    tier: str | None
    package: str | None
    actions: list[str]
    alerts: list[str]
    scores: Scores | None
    reasons: Reasons
    versions: Versions
    next_best_actions: list[NextBestAction] = Field(description="The eligible, suitable actions the contact policy "
                                                                "allows, best first, at most CRM_MAX_ACTIONS.")
    withheld_actions: list[WithheldAction]
    would_have: list[NextBestAction] | None = Field(default=None, description="Holdout: what the champion would "
                                                                              "have offered.")
    latency_ms: float


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class BatchItem(BaseModel):
    client_id: str
    decision: DecisionResponse | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    decisions: list[BatchItem]


class AuditRecord(BaseModel):
    decision_id: str
    decided_at: str
    key_id: str
    client_id: str
    degraded: bool
    latency_ms: float
    ruleset_version: str | None
    model_versions: dict[str, int] | None
    request: dict[str, Any]
    features: dict[str, Any] | None
    rule_inputs: dict[str, Any]
    response: dict[str, Any]
    outcomes: list[dict[str, Any]] = Field(default_factory=list, description="What happened to the actions it "
                                                                             "offered.")


class Difference(BaseModel):
    field: str
    recorded: Any = None
    replayed: Any = None


class ReplayResponse(BaseModel):
    decision_id: str
    identical: bool
    differences: list[Difference]
    replayed: dict[str, Any]


class RulesetSubmission(_Strict):
    ruleset: dict[str, Any] = Field(description="The ruleset in its canonical JSON form (as `GET /v1/rulesets/"
                                                "active` returns it).")
    note: str = Field(min_length=1, max_length=2000, description="What changed and why.")


class Note(_Strict):
    note: str = Field(default="", max_length=2000)


class HistoryEvent(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    version: str
    note: str
    entry_hash: str


class ActiveRuleset(BaseModel):
    version: str
    name: str
    author: str
    approved_by: str | None
    ruleset: dict[str, Any]


class ModelInfo(BaseModel):
    serving_version: int | None
    versions: list[dict[str, Any]]


class ModelsResponse(BaseModel):
    models: dict[str, ModelInfo]
    problems: list[str]


class ReloadResponse(BaseModel):
    models: dict[str, int] | None
    ruleset: str | None
    problems: list[str]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]
    problems: list[str]
    audit_backlog: int
    event_backlog: int = Field(default=0, description="Client events accepted and not yet applied to the online "
                               "store (kept in the journal while it is down).")
    events_applying: bool = Field(default=True, description="False while the online store refuses client events.")


class RulesetHistory(BaseModel):
    versions: list[dict[str, Any]]
    events: list[HistoryEvent]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events stored now (each applied to the online store within about a second).")
    duplicates: list[str] = Field(description="Event ids seen before: accepted once, not again.")
    journal_position: int = Field(description="Journal position covering every event of the request.")
    backlog: int = Field(description="Accepted events not yet applied to the online store.")
    online_store: str = Field(description="available, or unavailable: events are kept and applied when it returns.")


class Alert(BaseModel):
    seq: int
    alert_id: str
    raised_at: str
    client_id: str
    broker_id: str | None
    branch_id: str | None
    alert: str
    tier: str | None
    decision_id: str = Field(description="The audited evaluation that raised it (GET /v1/decisions/{id}).")
    event_ids: list[str]
    as_of: str


class AlertList(BaseModel):
    alerts: list[Alert]

class OutcomeRequest(_Strict):
    action: str = Field(min_length=1, max_length=64, description="An action the decision offered "
                                                                 "(one of its next_best_actions).")
    status: Literal["attempted", "reached", "declined", "accepted", "not_reached"]
    channel: Literal["phone", "wechat", "visit", "sms"] | None = Field(
        default=None, description="Channel used; the action's own channel when omitted.")
    by: str = Field(min_length=1, max_length=64, description="Who delivered it (a broker id such as K00012, or a "
                                                             "name).")
    at: datetime | None = Field(default=None, description="When it happened (ISO 8601; without an offset, "
                                                          "Asia/Shanghai time); now when omitted.")


class Outcome(BaseModel):
    decision_id: str
    action: str
    status: str
    client_id: str
    channel: str
    by: str
    at: str
    recorded_at: str
    key_id: str


class QueueItem(BaseModel):
    rank: int
    client_id: str
    decision_id: str
    action: str
    description: str
    channel: str
    priority: float
    reason: str
    churn_probability: float | None
    lifecycle_stage: str | None
    statuses: list[str]


class QueueResponse(BaseModel):
    broker_id: str
    date: str
    plan_date: str | None
    items: list[QueueItem]
    capacity: dict[str, int]
    planned: int
    done_today: int
    left_out: dict[str, int]
