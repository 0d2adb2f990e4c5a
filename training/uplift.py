"""The retention uplift model: how much each retention action lowers a client's 90-day churn probability.

It learns from the brokerage's past randomized retention campaigns (contacts tagged with a campaign and an
action): on a campaign's first day each targeted client got one action drawn at random, and every other active
client is the control group. Features are Feast's point-in-time values at the campaign date (the month-end just
before it); the outcome is the observable churn label of that month-end (churn within 90 days).

Each action addresses one of the three churn causes: the action catalogue says which (the cause it has the largest
prior for: a commission review the competitor's pull, calls and visits poor service, advice and education poor
trading results) and where it applies at all (resolving complaints only where one is open); see
:func:`action_targets`. The learner, a structured X-learner with LightGBM:

1. the control outcome model ``μ0`` (churn without any action, LightGBM) on the campaigns' control groups, and the
   share of each client's risk that comes from each cause (read from ``μ0``'s trees, as the churn model does);
2. per action, the share ``θ`` of the addressed cause's risk the action removes, the most probable given the
   action's treated clients (each churns with probability ``μ0(x) − θ × μ0(x) × cause share(x)``) and a prior
   centred on the catalogue's prior effect (:data:`PRIOR_SD`). A hundred or so treated clients per action and
   campaign cannot support a free-form effect model (free T- and X-learners measured 0.25 and 0.09 of the
   oracle's Qini on the demo world; see docs/uplift.md), and pin even one number per action only loosely. For a
   commission review the addressed risk is the part of the competitor's pull that the rate it offers takes away
   (:func:`overpayment_removed`);
3. one LightGBM regressor of the effects over the indicators and the one-hot action, which is the served model
   (an ONNX graph like the others, checked for parity).

The served model's output is the uplift: the fall of the 90-day churn probability the action brings (negative
when the action pushes the client away). Training takes the campaigns whose 90-day outcome window ends before
the test window, keeps the last of them for validation (early stopping, Qini for the promotion gate) and fits on
the others; no outcome window reaches the test window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.indicators.client_value import MARKET_COMMISSION_RATE
from features.labels import churn_outcomes
from features.model_features import CHURN_CAUSE_GROUPS, feature_names
from features.raw.schema import RETENTION_ACTIONS
from model_registry.explain import CAUSES
from training.datasets import feature_as_of_dates, historical_features

SERVICE = "retention_uplift_v1"
HORIZON_DAYS = 90
# Campaign tags of the randomized retention campaigns (a plan's contacts are not randomized: they stay out).
RANDOMIZED_CAMPAIGN_PREFIX = "retention-"
# The last month-ends held out as the test window (the ground truth knows every action's uplift there).
TEST_MONTHS = 3
# Control clients kept per campaign at most (the control group is 20 times the treated; more adds time, not signal).
CONTROL_PER_CAMPAIGN = 25_000
# Share of the control group kept out of the control model to impute its effects (cross-fitting).
NO_ACTION = "none"

CONTROL_PARAMS = {"n_estimators": 400, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 300,
                  "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 5.0, "n_jobs": 2,
                  "verbose": -1, "random_state": 7}
# The served regressor distils a smooth function, and every decision walks its trees once per action: 100 trees at
# a learning rate of 0.24 rank as well as 300 at 0.08 (pooled Qini share against the truth 0.743 against 0.741 on
# the seed-7 demo world; 0.566 against 0.568 on seed 11, means over three random states), at a third of the walks.
EFFECT_PARAMS = {"n_estimators": 100, "learning_rate": 0.24, "num_leaves": 31, "min_child_samples": 50,
                 "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.9, "n_jobs": 2, "verbose": -1,
                 "random_state": 7}
# How far the campaigns may move an action's θ from the catalogue's prior: a normal prior of this standard deviation.
# The campaigns alone cannot pin θ: a few hundred treated clients whose addressed risk is a few percent leave the
# maximum-likelihood θ uncertain by ±0.4, so it lands on 0 or 1 for several actions, and a θ of 0 leaves the
# action's clients unranked. With the prior the pooled Qini share against the truth rose from 0.73 to 0.77 (seed 7)
# and from 0.60 to 0.78 (seed 11), the commission review's rate included; see docs/uplift.md.
PRIOR_SD = 0.2
# The indicator groups that split a client's risk over the causes: the churn model's, with the commission paid
# above the market's rate on the competitor's side, because that is what a commission review takes away, and the
# market's return on the poor-trading side (measured on the demo world: 0.76 of the oracle's Qini this way).
COMMISSION_RATE = "commission_rate"  # the indicator of the client's rate, which a commission review lowers
_ADDED_TO_CAUSE = {"competitor": ["commission_overpaid_90d"], "poor_trading": ["market_return_6m"]}
CAUSE_GROUPS: dict[str, list[str]] = {cause: [*names, *_ADDED_TO_CAUSE.get(cause, [])]
                                      for cause, names in CHURN_CAUSE_GROUPS.items()}
# Campaign clients the served regressor learns the effects on (times the number of actions).
DISTILL_ROWS = 20_000
EARLY_STOPPING_ROUNDS = 40


@dataclass(frozen=True)
class ActionTarget:
    """What a retention action works on, as the action catalogue describes it."""

    cause: str  # the churn cause it addresses (the one with the largest prior)
    requires: str | None  # an indicator that must be above 0 for it to apply at all
    prior: float  # the catalogue's prior share of that cause's risk it removes
    commission_cut: float | None = None  # a commission review: the share by which it lowers the rate
    commission_floor: float = 0.0  # ... never below this rate


def action_targets(catalogue=None) -> dict[str, ActionTarget]:
    """What each retention action addresses, from the action catalogue (the bundled ruleset's unless given): the
    churn cause it has the largest prior for, that prior, where it only applies to some clients the indicator that
    must be above 0, and for a commission review the rate it offers. How much of that cause's risk each action
    removes is what the model learns from the campaigns, starting from the prior."""
    if catalogue is None:
        from rules.model import load_ruleset

        catalogue = load_ruleset().catalogue
    missing = [a for a in RETENTION_ACTIONS if catalogue is None or a not in catalogue.actions]
    if missing:
        raise ValueError(f"the action catalogue does not describe the retention actions {missing}")
    targets = {}
    for a in RETENTION_ACTIONS:
        spec = catalogue.actions[a]
        targets[a] = ActionTarget(spec.addressed_cause, spec.requires, float(spec.effect[spec.addressed_cause]),
                                  spec.commission_cut, spec.commission_floor)
    return targets


def overpayment_removed(rate: np.ndarray, target: ActionTarget) -> np.ndarray:
    """The share of the client's commission rate above the market's that a commission review takes away (0 where
    the client pays the market's rate or less: there is nothing for a competitor to offer)."""
    rate = np.asarray(rate, dtype=np.float64)
    after = np.maximum(rate * (1 - (target.commission_cut or 0.0)), np.minimum(target.commission_floor, rate))
    above = np.maximum(rate - MARKET_COMMISSION_RATE, 0.0)
    removed = above - np.maximum(after - MARKET_COMMISSION_RATE, 0.0)  # after ≤ rate: never a rise
    return np.divide(removed, above, out=np.zeros_like(above), where=above > 0)


def action_inputs(actions: tuple[str, ...] = RETENTION_ACTIONS) -> list[str]:
    """Names of the one-hot action inputs, after the indicators."""
    return [f"action_{a}" for a in actions]


def input_names() -> list[str]:
    return [*feature_names(SERVICE), *action_inputs()]


def with_action(features: np.ndarray, action: str | int) -> np.ndarray:
    """The served model's input: the indicators and the one-hot of ``action`` (a name or an index)."""
    index = RETENTION_ACTIONS.index(action) if isinstance(action, str) else int(action)
    onehot = np.zeros((len(features), len(RETENTION_ACTIONS)), dtype=np.float32)
    onehot[:, index] = 1.0
    return np.hstack([np.asarray(features, dtype=np.float32), onehot])


# ------------------------------------------------------------------------------------------------ the data
@dataclass
class Campaign:
    tag: str
    date: pd.Timestamp  # first contact
    as_of: pd.Timestamp  # the month-end whose indicators and churn label the campaign uses


@dataclass
class UpliftData:
    """Every campaign's rows: client, campaign, treatment (an action or ``none``), features and outcome."""

    frame: pd.DataFrame
    features: list[str]
    campaigns: list[Campaign]
    train: tuple[str, ...]  # campaign tags
    validation: tuple[str, ...]
    test_as_of: tuple[pd.Timestamp, ...]  # month-ends of the test window (evaluation against the truth)

    def rows(self, tags: tuple[str, ...]) -> pd.DataFrame:
        return self.frame[self.frame["campaign"].isin(tags)]


def randomized_campaigns(raw_dir: Path) -> pd.DataFrame:
    """Contacts of the randomized campaigns: client, campaign tag, action and date."""
    contacts = pd.read_parquet(Path(raw_dir) / "contacts.parquet")
    if "campaign" not in contacts.columns or "action" not in contacts.columns:
        return pd.DataFrame(columns=["client_id", "campaign", "action", "contact_date"])
    tagged = contacts[contacts["campaign"].fillna("").str.startswith(RANDOMIZED_CAMPAIGN_PREFIX)
                      & contacts["action"].notna()]
    tagged = tagged.assign(contact_date=pd.to_datetime(tagged["contact_date"]))
    # One action per client and campaign: the first contact carries it.
    return (tagged.sort_values("contact_date").drop_duplicates(["client_id", "campaign"])
            [["client_id", "campaign", "action", "contact_date"]].reset_index(drop=True))


def split_campaigns(campaigns: list[Campaign], month_ends: list[pd.Timestamp], test_months: int = TEST_MONTHS,
                    horizon_days: int = HORIZON_DAYS) -> tuple[tuple[str, ...], tuple[str, ...],
                                                               tuple[pd.Timestamp, ...]]:
    """Training and validation campaigns and the test window's month-ends. A campaign is usable only when its
    outcome window ends on or before the test window's first month-end; the last usable one validates."""
    month_ends = sorted(pd.to_datetime(month_ends))
    if len(month_ends) < test_months + 1:
        raise ValueError(f"{len(month_ends)} month-ends are too few for an uplift test window of {test_months}")
    test = tuple(month_ends[-test_months:])
    usable = [c for c in sorted(campaigns, key=lambda c: c.date)
              if c.as_of + pd.Timedelta(days=horizon_days) <= test[0]]
    if len(usable) < 2:
        raise ValueError(f"{len(usable)} randomized campaign(s) have their {horizon_days}-day outcome before the "
                         f"test window ({test[0].date()}); the uplift model needs at least 2 (one to validate)")
    return tuple(c.tag for c in usable[:-1]), (usable[-1].tag,), test


def build_uplift_data(raw_dir: Path, features_dir: Path, control_per_campaign: int = CONTROL_PER_CAMPAIGN,
                      seed: int = 7) -> UpliftData:
    """The campaigns' rows, with features from Feast at each campaign's date (point in time)."""
    contacts = randomized_campaigns(raw_dir)
    if contacts.empty:
        raise ValueError("no randomized retention campaigns in contacts (campaign tags starting with "
                         f"{RANDOMIZED_CAMPAIGN_PREFIX!r} and an action): the uplift model has nothing to learn from")
    month_ends = feature_as_of_dates(features_dir)
    campaigns = []
    for tag, group in contacts.groupby("campaign"):
        date = group["contact_date"].min()
        before = [d for d in month_ends if d < date]
        if before:
            campaigns.append(Campaign(str(tag), date, before[-1]))
    labels = churn_outcomes(raw_dir, HORIZON_DAYS)
    labels["as_of"] = pd.to_datetime(labels["as_of"])
    rng = np.random.default_rng(seed)
    parts = []
    for campaign in campaigns:
        at = labels[labels["as_of"] == campaign.as_of][["client_id", "churned"]]
        if at.empty:  # the outcome window is not inside the data yet
            continue
        treated = contacts[contacts["campaign"] == campaign.tag][["client_id", "action"]]
        rows = at.merge(treated, on="client_id", how="left")
        rows["treatment"] = rows["action"].fillna(NO_ACTION)
        control = rows.index[rows["treatment"] == NO_ACTION].to_numpy()
        if control.size > control_per_campaign:
            dropped = rng.choice(control, control.size - control_per_campaign, replace=False)
            rows = rows.drop(index=dropped)
        rows = rows.assign(campaign=campaign.tag, as_of=campaign.date, month_end=campaign.as_of)
        parts.append(rows.drop(columns=["action"]))
    campaigns = [c for c in campaigns if any(p["campaign"].iloc[0] == c.tag for p in parts if len(p))]
    frame = pd.concat(parts, ignore_index=True)
    # Feast's point-in-time join at the campaign date: the latest indicators on or before it.
    joined = historical_features(features_dir, SERVICE, frame[["client_id", "as_of"]].drop_duplicates())
    names = feature_names(SERVICE)
    frame = frame.merge(joined, on=["client_id", "as_of"], how="inner").dropna(subset=names)
    frame = frame.sort_values(["as_of", "client_id"], ignore_index=True)
    train, validation, test = split_campaigns(campaigns, month_ends)
    return UpliftData(frame=frame, features=names, campaigns=campaigns, train=train, validation=validation,
                      test_as_of=test)


# ----------------------------------------------------------------------------------------------- the learner
@dataclass
class UpliftFitted:
    model: object  # the effect regressor (served)
    control_model: object
    effects: dict[str, float]  # per action: the share of its cause's risk it removes (from the campaigns)
    params: dict
    metrics: dict[str, float]
    validation: pd.DataFrame  # validation rows with each action's predicted uplift (column uplift_<action>)
    inputs: list[str]
    extra: dict = field(default_factory=dict)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(m: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-m))


def predict_uplift(model, features: np.ndarray, actions: tuple[str, ...] = RETENTION_ACTIONS) -> np.ndarray:
    """[row, action]: each action's predicted uplift from the served effect regressor."""
    return np.column_stack([model.predict(with_action(features, RETENTION_ACTIONS.index(a))) for a in actions])


@dataclass(frozen=True)
class ControlRisk:
    """The control model's churn probability and how it splits over the three causes, per row."""

    probability: np.ndarray
    cause_share: np.ndarray  # [row, cause], rows sum to 1 (or 0 when no indicator raises the risk)
    targets: dict[str, ActionTarget]  # per action: what it works on

    def addressed(self, action: str, features: np.ndarray, names: list[str]) -> np.ndarray:
        """The churn probability an action can act on: the risk of the cause it addresses, where it applies (for a
        commission review, the part of the competitor's pull that the rate it offers takes away)."""
        target = self.targets[action]
        part = self.probability * self.cause_share[:, CAUSES.index(target.cause)]
        if target.requires is not None:
            part = part * (features[:, names.index(target.requires)] > 0)
        if target.commission_cut is not None and COMMISSION_RATE in names:
            part = part * overpayment_removed(features[:, names.index(COMMISSION_RATE)], target)
        return part


def control_risk(control_model, features: np.ndarray, names: list[str],
                 cause_groups: dict[str, list[str]], targets: dict[str, ActionTarget]) -> ControlRisk:
    from model_registry.explain import ChurnExplainer

    probability = control_model.predict_proba(features)[:, 1]
    explainer = ChurnExplainer(control_model.booster_.model_to_string(), names, cause_groups)
    rises = np.maximum(explainer.cause_scores(features), 0.0)
    total = rises.sum(axis=1, keepdims=True)
    return ControlRisk(probability, np.divide(rises, total, out=np.zeros_like(rises), where=total > 0), targets)


def action_effect(treated_churned: np.ndarray, probability: np.ndarray, addressed: np.ndarray,
                  prior: float | None = None, prior_sd: float = PRIOR_SD) -> float:
    """The share θ (0-1) of the addressed risk an action removes, from its treated clients' outcomes: each churns
    with probability ``probability - θ × addressed``. With a ``prior`` (the catalogue's), the most probable θ
    given the outcomes and a normal prior of that mean and ``prior_sd``; without, the maximum-likelihood θ."""
    y = np.asarray(treated_churned, dtype=np.float64)
    p, a = np.clip(probability, 1e-6, 1 - 1e-6), np.asarray(addressed, dtype=np.float64)
    grid = np.linspace(0.0, 1.0, 201)
    q = np.clip(p[None, :] - grid[:, None] * a[None, :], 1e-6, 1 - 1e-6)
    loglik = (y * np.log(q) + (1 - y) * np.log1p(-q)).sum(axis=1)
    if prior is not None:
        loglik = loglik - (grid - prior) ** 2 / (2 * prior_sd**2)
    return float(grid[int(np.argmax(loglik))])


def fit_uplift(x: np.ndarray, treatment: np.ndarray, outcome: np.ndarray, names: list[str],
               cause_groups: dict[str, list[str]], *, validation: tuple | None = None,
               actions: tuple[str, ...] = RETENTION_ACTIONS, overrides: dict | None = None,
               seed: int = 7, targets: dict[str, ActionTarget] | None = None
               ) -> tuple[object, object, dict[str, float]]:
    """The learner on arrays: ``treatment`` holds an action name or ``none`` per row, ``outcome`` 1 when the
    client churned. ``validation`` is an (x, treatment, outcome) triple for early stopping; ``targets`` what each
    action works on (default the bundled catalogue's). Returns the effect regressor (over the indicators and the
    one-hot action), the control model and each action's effect θ."""
    import lightgbm
    from lightgbm import LGBMClassifier, LGBMRegressor

    overrides = overrides or {}
    rng = np.random.default_rng(seed)
    y = np.asarray(outcome, dtype=np.float64)
    treatment = np.asarray(treatment)
    control = treatment == NO_ACTION
    control_model = LGBMClassifier(**(CONTROL_PARAMS | overrides.get("control", {})))
    if validation is not None:
        vx, vt, vy = validation
        vc = np.asarray(vt) == NO_ACTION
        control_model.fit(x[control], y[control], eval_X=(vx[vc],), eval_y=(vy[vc],), eval_metric="binary_logloss",
                          callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])
    else:
        control_model.fit(x[control], y[control])
    targets = targets or action_targets()
    risk = control_risk(control_model, x, names, cause_groups, targets)
    effects = {}
    for action in actions:
        rows = treatment == action
        if rows.sum() < 20:
            continue
        effects[action] = action_effect(y[rows], risk.probability[rows], risk.addressed(action, x, names)[rows],
                                        prior=targets[action].prior)
    if not effects:
        raise ValueError("no action has 20 treated clients: too few campaign contacts to learn uplift from")
    # One regressor serves every action: it learns the effects over the indicators and the one-hot action, on a
    # sample of the campaigns' clients (the effect is a smooth function of them).
    sample = np.sort(rng.choice(len(x), min(len(x), DISTILL_ROWS), replace=False))
    inputs, targets = [], []
    for action in actions:
        effect = effects.get(action, 0.0) * risk.addressed(action, x, names)[sample]
        inputs.append(with_action(x[sample], RETENTION_ACTIONS.index(action)))
        targets.append(effect)
    effect_model = LGBMRegressor(**(EFFECT_PARAMS | overrides.get("effect", {})))
    effect_model.fit(np.vstack(inputs), np.concatenate(targets))
    return effect_model, control_model, effects


# ------------------------------------------------------------------------------------------------ Qini
def qini_from_gains(scores: np.ndarray, gains: np.ndarray) -> float:
    """Area between the cumulative-gain curve of targeting rows by ``scores`` (best first) and the straight line
    of targeting at random, as a share of the rows: the Qini coefficient when ``gains`` are true effects."""
    scores, gains = np.asarray(scores, dtype=np.float64), np.asarray(gains, dtype=np.float64)
    n = gains.size
    if not n:
        return 0.0
    order = np.lexsort((np.arange(n), -scores))  # ties keep their order: no luck from sorting
    curve = np.cumsum(gains[order])
    random = np.arange(1, n + 1) / n * curve[-1]
    return float((curve - random).mean() / n)


def qini_curve_observed(scores: np.ndarray, treated: np.ndarray, churned: np.ndarray,
                        points: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve from outcomes (fraction targeted, churners avoided per client): at each cut, control
    churners scaled to the treated count minus treated churners, over all rows."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(churned, dtype=np.float64)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    gain = np.where(n_c > 0, y_c * n_t / np.maximum(n_c, 1), 0.0) - y_t
    cuts = np.unique(np.linspace(0, y.size - 1, points).astype(int))
    return np.concatenate([[0.0], (cuts + 1) / y.size]), np.concatenate([[0.0], gain[cuts] / y.size])


def qini_observed(scores: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> float:
    """Qini coefficient from outcomes: mean height of the observed curve above the random line."""
    fraction, gain = qini_curve_observed(scores, treated, churned, points=200)
    return float(np.mean(gain - fraction * gain[-1]))


def observed_qini_by_action(frame: pd.DataFrame, actions: tuple[str, ...] = RETENTION_ACTIONS) -> dict[str, float]:
    """Per action, the Qini of its predicted uplift on its treated clients and the control group of the same
    campaigns (``frame`` has ``treatment``, ``churned`` and ``uplift_<action>`` columns)."""
    out = {}
    control = frame["treatment"] == NO_ACTION
    for action in actions:
        rows = frame[control | (frame["treatment"] == action)]
        if (rows["treatment"] == action).sum() == 0:
            continue
        out[action] = qini_observed(rows[f"uplift_{action}"].to_numpy(), (rows["treatment"] == action).to_numpy(),
                                    rows["churned"].astype(int).to_numpy())
    return out


def uplift_by_decile(scores: np.ndarray, treated: np.ndarray, churned: np.ndarray,
                     deciles: int = 10) -> pd.DataFrame:
    """Per decile of predicted uplift (highest first): predicted mean and observed churn rates without and
    with the action."""
    frame = pd.DataFrame({"score": scores, "treated": np.asarray(treated, bool), "churned": churned})
    frame["decile"] = pd.qcut(frame["score"].rank(method="first", ascending=False), deciles, labels=False) + 1
    grouped = frame.groupby("decile")
    return pd.DataFrame({
        "predicted": grouped["score"].mean(),
        "control_churn": grouped.apply(lambda g: g.loc[~g["treated"], "churned"].mean(), include_groups=False),
        "treated_churn": grouped.apply(lambda g: g.loc[g["treated"], "churned"].mean(), include_groups=False),
        "treated": grouped["treated"].sum(),
    }).assign(observed=lambda d: d["control_churn"] - d["treated_churn"])


def fit(data: UpliftData, overrides: dict | None = None) -> UpliftFitted:
    """Fit on the training campaigns, stop early and measure on the validation campaign."""
    from model_registry.onnx_export import make_float32_exact

    train, valid = data.rows(data.train), data.rows(data.validation)
    x = train[data.features].to_numpy(dtype=np.float32)
    vx = valid[data.features].to_numpy(dtype=np.float32)
    targets = action_targets()
    effect, control, effects = fit_uplift(
        x, train["treatment"].to_numpy(), train["churned"].astype(int).to_numpy(), data.features, CAUSE_GROUPS,
        validation=(vx, valid["treatment"].to_numpy(), valid["churned"].astype(int).to_numpy()),
        overrides=overrides, targets=targets)
    make_float32_exact(effect)
    predicted = predict_uplift(effect, vx)
    validation = valid[["client_id", "campaign", "treatment", "churned"]].copy()
    for a, action in enumerate(RETENTION_ACTIONS):
        validation[f"uplift_{action}"] = predicted[:, a]
    per_action = observed_qini_by_action(validation)
    # Pooled over actions: each treated client ranked by its own action's predicted uplift among the controls.
    metrics = {f"test_qini_{a}": q for a, q in per_action.items()}
    metrics |= {f"effect_{a}": theta for a, theta in effects.items()}
    metrics |= {f"prior_effect_{a}": target.prior for a, target in targets.items()}
    metrics |= {
        "test_qini": float(np.mean(list(per_action.values()))),
        "test_mean_predicted_uplift": float(predicted.mean()),
        "train_rows": float(len(train)),
        "train_treated": float((train["treatment"] != NO_ACTION).sum()),
        "validation_rows": float(len(valid)),
        "validation_treated": float((valid["treatment"] != NO_ACTION).sum()),
        "best_iteration_control": float(control.best_iteration_ or CONTROL_PARAMS["n_estimators"]),
    }
    params = {"control": CONTROL_PARAMS, "effect": EFFECT_PARAMS} | (overrides or {})
    return UpliftFitted(model=effect, control_model=control, effects=effects, params=params, metrics=metrics,
                        validation=validation, inputs=[*data.features, *action_inputs()])


def describe_windows(data: UpliftData) -> dict[str, str]:
    return {"window_train": f"campaigns {', '.join(data.train)}",
            "window_validation": f"campaign {', '.join(data.validation)}",
            "window_test": f"{data.test_as_of[0].date()}..{data.test_as_of[-1].date()} "
                           f"({len(data.test_as_of)} month-ends)"}


# ------------------------------------------------------------------------------------------ train and gate
def train(spec, settings, progress=lambda _: None, overrides: dict | None = None):
    """The retention uplift model from the randomized campaigns: fit, plots, ONNX parity, MLflow registration
    (the function the model's spec names in place of the client-month pipeline)."""
    import tempfile

    from training import plots
    from training.pipeline import registry

    name = spec.name
    progress(f"{name}: building the campaigns' rows through Feast ({SERVICE})")
    data = build_uplift_data(settings.raw_dir, settings.features_dir)
    treated = int((data.frame["treatment"] != NO_ACTION).sum())
    progress(f"{name}: {len(data.campaigns)} campaigns, {treated:,} treated and "
             f"{len(data.frame) - treated:,} control clients × {len(data.features)} indicators; fitting the X-learner")
    fitted = fit(data, overrides)
    progress(f"{name}: " + ", ".join(f"{k}={v:.4g}" for k, v in fitted.metrics.items()
                                     if k in ("test_qini", "test_mean_predicted_uplift")))
    windows = describe_windows(data)
    valid = data.rows(data.validation)[data.features].to_numpy(dtype=np.float32)
    parity_rows = np.vstack([with_action(valid[:3_000], a) for a in range(len(RETENTION_ACTIONS))])
    with tempfile.TemporaryDirectory() as folder:
        plot_dir = Path(folder)
        plots.uplift_plots(plot_dir, fitted.validation, RETENTION_ACTIONS)
        plots.importance_plots(plot_dir, fitted.model, fitted.inputs, None)
        progress(f"{name}: converting to ONNX, checking parity, registering in MLflow")
        version = registry(settings).register(
            name, fitted.model,
            test_features=parity_rows,
            signature=[{"name": n, "type": "float32"} for n in fitted.inputs],
            params={f"{part}.{k}": v for part, values in fitted.params.items() for k, v in values.items()}
            | {"feature_service": SERVICE},
            metrics=fitted.metrics,
            tags={"feature_service": SERVICE, **windows},
            serving_metadata={"model": name, "feature_service": SERVICE, **windows,
                              "actions": list(RETENTION_ACTIONS), "action_inputs": action_inputs(),
                              "output": "uplift", "unit": "fall of the 90-day churn probability"},
            plots_dir=plot_dir,
        )
    progress(f"{name}: registered version {version.version} as {', '.join(version.aliases) or 'no alias'}")
    return version


def gate_rows(spec, settings) -> tuple[pd.DataFrame, str]:
    """The rows the promotion gate compares versions on: the validation campaign's clients, each with its
    treatment and outcome (the test window's outcomes are the ground truth's to judge, not the gate's)."""
    data = build_uplift_data(settings.raw_dir, settings.features_dir)
    rows = data.rows(data.validation)
    return rows.assign(as_of=rows["month_end"]), "churned"


def action_effects(bundle, frame: pd.DataFrame, threads: int = 0) -> pd.DataFrame:
    """Each action's estimated effect on each row of ``frame`` (a frame holding the model's indicators, one row
    per client): a frame with one column per action, the fall of the 90-day churn probability the action brings,
    from a registered version's ONNX graph (``Registry.bundle("retention_uplift")``)."""
    from model_registry.onnx_export import OnnxScorer

    actions = list(bundle.metadata["actions"])
    names = bundle.feature_names[: len(bundle.feature_names) - len(actions)]
    features = frame[names].to_numpy(dtype=np.float32)
    inputs = np.vstack([with_action(features, a) for a in range(len(actions))])
    predicted = OnnxScorer(bundle.onnx_bytes, threads=threads).predict(inputs)[:, 0]
    return pd.DataFrame(predicted.reshape(len(actions), len(frame)).T, index=frame.index, columns=actions)
