"""The action catalogue and the contact policy: what each action is, who delivers it, what it costs and earns.

Both belong to a ruleset version (``actions.yaml`` beside the tables), so a change to a cost, a capacity, an
effect prior or the contact cap is diffed, simulated and approved by compliance like a change to a rule.
Validation refuses a ruleset whose rules can recommend an action the catalogue does not describe.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The channels of the raw ``contacts`` table (kept equal to features.raw.schema.CONTACT_CHANNELS by a test: this
# package is a leaf and cannot import it). An action reaches the client through one of them.
CHANNELS = ("phone", "wechat", "visit", "sms")
# The churn causes an effect prior is given for (the churn model's cause groups).
CAUSES = ("poor_trading", "competitor", "service")


class Deliverer(StrEnum):
    BROKER = "broker"
    BRANCH_MANAGER = "branch_manager"
    CALL_CENTRE = "call_centre"
    SYSTEM = "system"


class Purpose(StrEnum):
    """Why an action exists; the holdout receives no ``retention`` or ``win_back`` action."""

    RETENTION = "retention"
    WIN_BACK = "win_back"
    SERVICE = "service"
    MARKETING = "marketing"
    PRODUCT_OFFER = "product_offer"


class ValueAtStake(StrEnum):
    """What keeping a client is worth to the brokerage when retention actions are ranked: arbitration's expected
    retained value is the fall of the churn probability an action brings × this."""

    # The value model's commission of the next 12 months (a lost client: the larger of that and the commission
    # of the last 365 days, which winning it back restores).
    FORWARD_COMMISSION = "forward_commission"
    # The assets the client holds with the brokerage, which leave with it (a lost client: the larger of what it
    # still holds and what it moved out over the last 365 days).
    CLIENT_ASSETS = "client_assets"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActionSpec(_Frozen):
    """One action a decision may recommend."""

    description: str = Field(min_length=1)
    purpose: Purpose
    deliverer: Deliverer
    channel: str
    cost_yuan: float = Field(ge=0, description="What one delivery costs, yuan.")
    daily_capacity: int = Field(ge=1, description="Deliveries one deliverer can make in a day.")
    suppression_days: int = Field(ge=0, description="Days the action is not repeated after the client declined it.")
    business_lever: float = Field(default=1.0, ge=0, description="Weight the business puts on this action's value.")
    effect: dict[str, float] = Field(description="Prior share of the value at stake the action keeps, by churn "
                                                 "cause (when no uplift model is served). The cause with the "
                                                 "largest prior is the one the action addresses.")
    requires: str | None = Field(default=None, description="An indicator that must be above 0 for the action to "
                                                           "have any effect (a complaint is resolved only where one "
                                                           "is open).")
    commission_cut: float | None = Field(
        default=None, gt=0, le=1,
        description="For an action that reviews the commission rate: the share by which it lowers the client's "
                    "rate (never below commission_floor). The uplift model takes it that such an action removes "
                    "the competitor's pull in proportion to the share of the rate above the market's it takes away.")
    commission_floor: float = Field(default=0.0, ge=0, description="The lowest rate a commission review offers.")

    @property
    def addressed_cause(self) -> str:
        """The churn cause the action works on: the one with the largest prior (the first of CAUSES on a tie).
        The uplift model learns how much of that cause's risk the action removes."""
        return max(CAUSES, key=lambda cause: self.effect[cause])

    @model_validator(mode="after")
    def _check(self) -> ActionSpec:
        if self.channel not in CHANNELS:
            raise ValueError(f"channel {self.channel!r} is not one of {', '.join(CHANNELS)}")
        unknown = sorted(set(self.effect) - set(CAUSES))
        if unknown:
            raise ValueError(f"effect names unknown causes {unknown}; causes are {', '.join(CAUSES)}")
        missing = sorted(set(CAUSES) - set(self.effect))
        if missing:
            raise ValueError(f"effect lacks a prior for {missing}")
        if any(not 0 <= v <= 1 for v in self.effect.values()):
            raise ValueError("effect priors are shares between 0 and 1")
        return self


class ContactPolicy(_Frozen):
    """How often a client may be contacted and when an action must not be made."""

    max_contacts_per_channel_30d: int = Field(ge=0, description="Contacts per client per channel in any 30 days.")
    holdout_purposes: tuple[Purpose, ...] = Field(
        default=(Purpose.RETENTION, Purpose.WIN_BACK),
        description="Purposes never delivered to a client in the holdout arm.")


class Catalogue(_Frozen):
    """Every action of a ruleset and its contact policy."""

    contact_policy: ContactPolicy
    actions: dict[str, ActionSpec] = Field(min_length=1)
    value_at_stake: ValueAtStake = Field(
        default=ValueAtStake.FORWARD_COMMISSION,
        description="What a kept client is worth when actions are ranked: forward_commission or client_assets.")

    def action(self, action_id: str) -> ActionSpec:
        return self.actions[action_id]
