"""The one list of models: what each is trained on, how it is fitted, judged, promoted, served and explained.

Training (datasets, fit, pipeline, promotion), evaluation, the registry, serving, both command lines and the pages
read this list; adding a model is adding a :class:`ModelSpec` here (or through :func:`register_spec`) and writing
the functions it points at. Functions are named by ``"module:function"`` references because this package is a
leaf: the training code resolves them, nothing here imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Output(StrEnum):
    """What a served model's ONNX output means, and so how serving turns it into a score."""

    CALIBRATED_PROBABILITY = "calibrated_probability"  # class probabilities; class 1 mapped through calibration
    PROBABILITY = "probability"  # class probabilities; class 1 as it is
    LOG_AMOUNT = "log_amount"  # log(1 + yuan): an amount and its percentile among today's clients
    CLASSES = "classes"  # one probability per class of ``metadata["classes"]``
    ACTION_EFFECTS = "action_effects"  # per action of ``metadata["actions"]``: its effect on this client


class Explanation(StrEnum):
    """How a model's scores are explained to a broker."""

    NONE = "none"
    CHURN_CAUSES = "churn_causes"  # contributions grouped into the three churn causes, and the top indicators
    IMPORTANCE = "importance"  # global feature importance only (plots of the run)


@dataclass(frozen=True)
class ModelSpec:
    """One model, declaratively."""

    name: str  # the registered model's name (MLflow) and its key in scores and reports
    description: str
    feature_service: str  # the Feast feature service of its inputs
    label: str  # the training label column
    labels: str  # ``module:function(raw_dir, as_of_dates) -> frame`` of (client_id, as_of, label)
    fit: str  # ``module:function(dataset, overrides) -> Fitted``
    test_metric: str  # compared by the promotion gate on the same test window (``test_<metric>`` in the run)
    gate_tolerance: float  # how much worse than the champion a challenger may be on ``test_metric``
    output: Output
    explanation: Explanation = Explanation.IMPORTANCE
    evaluate: str | None = None  # ``module:function(bundle, settings) -> dict`` against the ground truth
    report_key: str | None = None  # its key in ``crm models evaluate`` (default its name)
    aliases: tuple[str, ...] = ()  # other names the command lines accept
    test_months: int = 3
    validation_months: int = 2
    train: str | None = None  # ``module:function(spec, settings, progress, overrides)`` replacing the standard
    #                           client-month pipeline (a model trained on other rows, such as campaigns)
    gate_rows: str | None = None  # ``module:function(spec, settings) -> (rows, label)`` replacing the test window
    required: bool = True  # serving refuses to start without its champion (else it serves without the model)
    measures_drift: bool = True  # trained on client-months the drift report compares
    params: dict[str, object] = field(default_factory=dict)  # fixed parameters for ``fit`` (merged first)

    @property
    def key_metric(self) -> str:
        """The run metric people compare versions on."""
        return f"test_{self.test_metric}"

    @property
    def report_name(self) -> str:
        return self.report_key or self.name


MODEL_SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec(
        name="churn",
        description="Probability that an active client churns within 90 days, its likely cause and the top "
                    "contributing indicators.",
        feature_service="churn_v2", label="churned", labels="training.datasets:churn_labels",
        fit="training.fit:fit_churn", test_metric="auc", gate_tolerance=0.005,
        output=Output.CALIBRATED_PROBABILITY, explanation=Explanation.CHURN_CAUSES,
        evaluate="training.evaluation:evaluate_churn"),
    ModelSpec(
        name="value",
        description="Commission the client will pay over the next 12 months, yuan, and its percentile.",
        feature_service="value_v1", label="commission_next_12m", labels="training.datasets:value_labels",
        fit="training.fit:fit_value", test_metric="spearman", gate_tolerance=0.01, output=Output.LOG_AMOUNT,
        evaluate="training.evaluation:evaluate_value", test_months=2),
    ModelSpec(
        name="risk_profile",
        description="Conservative, balanced or aggressive from trading behaviour (trained on questionnaire "
                    "levels, judged against the truth).",
        feature_service="risk_profile_v2", label="risk_class", labels="training.datasets:risk_labels",
        fit="training.risk_profile:fit_risk_profile", test_metric="macro_f1", gate_tolerance=0.01,
        output=Output.CLASSES,
        evaluate="training.evaluation:evaluate_risk", aliases=("risk",), gate_rows="training.risk_profile:gate_rows"),
    ModelSpec(
        name="retention_uplift",
        description="How much each retention action lowers this client's 90-day churn probability, learned from "
                    "randomized campaigns.",
        feature_service="retention_uplift_v1", label="churned", labels="training.datasets:churn_labels",
        fit="training.uplift:fit", test_metric="qini", gate_tolerance=0.0005, output=Output.ACTION_EFFECTS,
        evaluate="training.evaluation:evaluate_uplift", report_key="uplift", aliases=("uplift",),
        train="training.uplift:train", gate_rows="training.uplift:gate_rows", required=False,
        measures_drift=False),
)}


def model_names() -> tuple[str, ...]:
    """Every model, in the list's order."""
    return tuple(MODEL_SPECS)


def model_spec(name: str) -> ModelSpec:
    """The spec of a model by its name or one of its aliases; KeyError naming the known models otherwise."""
    if name in MODEL_SPECS:
        return MODEL_SPECS[name]
    for spec in MODEL_SPECS.values():
        if name in spec.aliases:
            return spec
    raise KeyError(f"unknown model {name!r}; known: {', '.join(accepted_names())}")


def accepted_names() -> list[str]:
    """Every name the command lines accept: each model's name and aliases."""
    return [n for spec in MODEL_SPECS.values() for n in (spec.name, *spec.aliases)]


def register_spec(spec: ModelSpec) -> ModelSpec:
    """Add a model to the list (an extension, or a test's model); a name already used is refused."""
    taken = set(accepted_names())
    if spec.name in taken or taken & set(spec.aliases):
        raise ValueError(f"model name {spec.name!r} or one of its aliases is already in use")
    MODEL_SPECS[spec.name] = spec
    return spec


def unregister_spec(name: str) -> None:
    """Remove a model added with :func:`register_spec` (tests)."""
    MODEL_SPECS.pop(name, None)
