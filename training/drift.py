"""Drift of the champions: how far today's clients have moved from the clients each model was validated on.

For every champion, the population stability index (PSI) of each input indicator and of the score between the
model's test window (the latest client-months held out at training, whose performance is known) and the latest
as-of date (or any two as-of dates), banded as the industry does: below 0.1 stable, 0.1 to 0.25 watch, above 0.25
act. Next to it, the model's realised performance on the latest window whose outcomes are known, beside the figure
of its test window.

Like is compared with like. The reference is the test window, not the training window: training starts at the
first month-end of the history, when indicators over 365 days have only a few months to read, so a training window
differs from any mature month without the clients having changed (the value model of an unchanged 24-month world
read 0.29, "act"). And both samples are the clients the model is for: the churn model learns from, and scores,
active clients only (total assets of at least 1,000 yuan), so lost and closed accounts, which accumulate month
after month, are left out of its current sample as they are out of its rows.

The report is logged to MLflow on the model's own run (metrics ``drift_psi_*``, the JSON and a chart under
``plots/``, which the models page shows) and written to ``$CRM_HOME/monitoring/drift.json``, which the API exports
as Prometheus gauges for the alert rules.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from config import Settings
from features.labels import ACTIVE_ASSETS_MIN
from model_registry.registry import CHAMPION, ServingBundle
from model_registry.specs import MODEL_SPECS, Output, model_spec
from training.datasets import build_dataset, feature_as_of_dates, serving_frame

STABLE_BELOW, ACT_ABOVE = 0.1, 0.25
BANDS = ("stable", "watch", "act")
QUANTILE_BINS = 10
# A share of zero in a bin would make the index infinite: empty bins count as this small share instead.
EMPTY_SHARE = 1e-4
MISSING = "missing"
WINDOW = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2}) \((\d+) month-ends\)$")


def band(psi: float) -> str:
    """The band of one index: stable (< 0.1), watch (0.1–0.25) or act (> 0.25)."""
    if psi < STABLE_BELOW:
        return "stable"
    return "watch" if psi <= ACT_ABOVE else "act"


def _shares(codes: np.ndarray, bins: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=bins).astype(float)
    shares = counts / max(counts.sum(), 1.0)
    return np.where(shares == 0, EMPTY_SHARE, shares)


def psi(reference: np.ndarray | pd.Series, current: np.ndarray | pd.Series, bins: int = QUANTILE_BINS) -> float:
    """Population stability index of ``current`` against ``reference``: sum of (a − e)·ln(a / e) over bins.

    Numbers are cut at the reference's deciles (fewer bins where values repeat); a variable with at most ``bins``
    distinct reference values, or of text, is compared value by value. Missing values form a bin of their own.
    """
    ref, cur = pd.Series(reference), pd.Series(current)
    if ref.dropna().empty:
        raise ValueError("the reference sample has no values: PSI needs a reference distribution")
    numeric = pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur)
    if numeric and ref.dropna().nunique() > bins:
        inner = np.unique(np.quantile(ref.dropna().to_numpy(dtype=float), np.linspace(0, 1, bins + 1)[1:-1]))

        def codes(values: pd.Series) -> np.ndarray:
            x = values.to_numpy(dtype=float)
            return np.where(np.isnan(x), len(inner) + 1, np.searchsorted(inner, x, side="right"))

        size = len(inner) + 2
        e, a = _shares(codes(ref), size), _shares(codes(cur), size)
    else:
        categories = pd.Index(pd.concat([ref, cur]).astype(object).where(lambda s: s.notna(), MISSING).unique())
        e = _shares(categories.get_indexer(ref.astype(object).where(ref.notna(), MISSING)), len(categories))
        a = _shares(categories.get_indexer(cur.astype(object).where(cur.notna(), MISSING)), len(categories))
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class Performance:
    """The model's key measure on its test window (at training) and on the latest window with known outcomes."""

    metric: str
    test_window: str
    test_value: float | None
    latest_window: str
    latest_value: float | None
    latest_rows: int


@dataclass
class ModelDrift:
    """One champion's drift between its test window (or an as-of date) and one as-of date."""

    model: str
    version: int
    run_id: str
    reference: str
    current: str
    reference_rows: int
    current_rows: int
    score_psi: float
    score_band: str
    indicators: dict[str, float] = field(default_factory=dict)
    performance: Performance | None = None

    @property
    def indicator_bands(self) -> dict[str, int]:
        counts = dict.fromkeys(BANDS, 0)
        for value in self.indicators.values():
            counts[band(value)] += 1
        return counts

    @property
    def band(self) -> str:
        """The model's band is its score's: the inputs' indices say where to look. Indicators of a branch (a few
        values shared by all its clients) move for reasons other than a change in the clients, and would keep every
        model in ``act``."""
        return self.score_band

    def as_dict(self) -> dict:
        return asdict(self) | {"band": self.band, "indicator_bands": self.indicator_bands}


def _window(metadata: dict, name: str) -> tuple[pd.Timestamp, pd.Timestamp, int]:
    found = WINDOW.match(str(metadata.get(f"window_{name}", "")))
    if not found:
        raise ValueError(f"the model's serving metadata has no {name} window: retrain it with `crm train`")
    return pd.Timestamp(found[1]), pd.Timestamp(found[2]), int(found[3])


def _scores(model: str, bundle: ServingBundle, frame: pd.DataFrame) -> np.ndarray:
    """The served score of each row: a probability, a predicted log-amount, or the predicted class."""
    from model_registry.onnx_export import OnnxScorer

    if frame.empty:
        return np.array([])
    output = OnnxScorer(bundle.onnx_bytes).predict(frame[bundle.feature_names].to_numpy(dtype=np.float32))
    kind = model_spec(model).output
    if kind in (Output.CALIBRATED_PROBABILITY, Output.PROBABILITY):
        return output[:, 1]
    if kind == Output.CLASSES:
        return np.asarray(bundle.metadata["classes"], dtype=object)[output.argmax(axis=1)]
    return output[:, 0]


def _measure(model: str, bundle: ServingBundle, rows: pd.DataFrame) -> float | None:
    """The model's gate metric on labelled rows."""
    from model_registry.onnx_export import OnnxScorer
    from training.promotion import GATE_METRICS

    if rows.empty:
        return None
    spec = model_spec(model)
    outputs = OnnxScorer(bundle.onnx_bytes).predict(rows[bundle.feature_names].to_numpy(dtype=np.float32))
    return GATE_METRICS[spec.test_metric](rows, spec.label, outputs, bundle)


def model_population(model: str, clients: pd.DataFrame) -> pd.DataFrame:
    """The clients at one as-of date that a model's rows stand for: for churn, active clients (total assets of at
    least 1,000 yuan, as its label requires); every client for the others."""
    if model == "churn":
        return clients[clients["total_assets"] >= ACTIVE_ASSETS_MIN]
    return clients


def model_drift(model: str, bundle: ServingBundle, run_id: str, test_metric: float | None, settings: Settings,
                reference_as_of: dt.date | None = None, current_as_of: dt.date | None = None) -> ModelDrift:
    """PSI of every input and of the score of one champion, and its realised performance.

    The reference is the model's test-window rows (or, with ``reference_as_of``, the model's clients at that date);
    the current sample is the model's clients at ``current_as_of`` (default the latest as-of date).
    """
    dates = feature_as_of_dates(settings.features_dir)
    current_date = pd.Timestamp(current_as_of or dates[-1])
    if current_date not in dates:
        raise ValueError(f"no indicators at {current_date.date()}: as-of dates run from {dates[0].date()} to "
                         f"{dates[-1].date()} at month-ends")
    # The service the champion was trained on (a newer build may have moved the model to another one).
    service = bundle.metadata.get("feature_service") or model_spec(model).feature_service
    dataset = build_dataset(model, settings.raw_dir, settings.features_dir, service)
    frame = dataset.frame
    if reference_as_of is None:
        start, end, _ = _window(bundle.metadata, "test")
        reference = frame[(frame["as_of"] >= start) & (frame["as_of"] <= end)]
        reference_label = f"test window {start.date()}..{end.date()}"
    else:
        reference_date = pd.Timestamp(reference_as_of)
        if reference_date not in dates:
            raise ValueError(f"no indicators at {reference_date.date()}: pick a month-end between "
                             f"{dates[0].date()} and {dates[-1].date()}")
        reference = model_population(model, serving_frame(settings.features_dir, service, reference_date))
        reference_label = f"as of {reference_date.date()}"
    if reference.empty:
        raise ValueError(f"{model}: no client-months in the reference ({reference_label})")
    current = model_population(model, serving_frame(settings.features_dir, service, current_date))
    indicators = {name: psi(reference[name], current[name]) for name in bundle.feature_names}
    score_psi = psi(_scores(model, bundle, reference), _scores(model, bundle, current))
    # The latest labelled window: as many month-ends as the test window, ending at the last labelled date on or
    # before the current date.
    test_start, test_end, test_months = _window(bundle.metadata, "test")
    labelled = sorted(d for d in frame["as_of"].unique() if pd.Timestamp(d) <= current_date)
    latest = [pd.Timestamp(d) for d in labelled[-test_months:]]
    latest_rows = frame[frame["as_of"].isin(latest)]
    performance = Performance(
        metric=model_spec(model).test_metric,
        test_window=f"{test_start.date()}..{test_end.date()}", test_value=test_metric,
        latest_window=f"{latest[0].date()}..{latest[-1].date()}" if latest else "none labelled yet",
        latest_value=_measure(model, bundle, latest_rows), latest_rows=len(latest_rows))
    return ModelDrift(model=model, version=bundle.version, run_id=run_id, reference=reference_label,
                      current=f"as of {current_date.date()}", reference_rows=len(reference),
                      current_rows=len(current), score_psi=score_psi, score_band=band(score_psi),
                      indicators=indicators, performance=performance)


def drift_report(settings: Settings, reference_as_of: dt.date | None = None, current_as_of: dt.date | None = None,
                 log: bool = True, progress: Callable[[str], None] = lambda _: None) -> list[ModelDrift]:
    """Every champion's drift; logged to its MLflow run and written where the API's metrics read it."""
    from training.pipeline import registry

    reg = registry(settings)
    report = []
    for spec in list(MODEL_SPECS.values()):
        name = spec.name
        if not spec.measures_drift:
            # Trained on other rows (the uplift model: past campaigns' contacts) than the client-months compared.
            progress(f"{name}: drift not measured for this model")
            continue
        version = reg.alias_version(name, CHAMPION)
        if version is None:
            progress(f"{name}: no champion, skipped")
            continue
        info = reg.version(name, version)
        progress(f"{name}: measuring drift of version {version}")
        drift = model_drift(name, reg.bundle(name, version=version), info.run_id, info.metrics.get(spec.key_metric),
                            settings, reference_as_of, current_as_of)
        report.append(drift)
        if log:
            log_to_run(reg, drift)
    if log:
        write_monitoring_file(settings, report)
    return report


def write_monitoring_file(settings: Settings, report: list[ModelDrift]) -> Path:
    path = settings.drift_report_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([d.as_dict() for d in report], indent=1))
    tmp.replace(path)  # readers never see half a file
    return path


def log_to_run(registry, drift: ModelDrift) -> None:
    """Drift metrics, the report and its chart on the model's training run (step = current as-of date)."""
    step = int(drift.current.removeprefix("as of ").replace("-", ""))
    client = registry.client
    client.log_metric(drift.run_id, "drift_psi_score", drift.score_psi, step=step)
    client.log_metric(drift.run_id, "drift_psi_max_indicator", max(drift.indicators.values()), step=step)
    client.log_metric(drift.run_id, "drift_indicators_act", drift.indicator_bands["act"], step=step)
    if drift.performance and drift.performance.latest_value is not None:
        client.log_metric(drift.run_id, f"drift_latest_{drift.performance.metric}", drift.performance.latest_value,
                          step=step)
    with tempfile.TemporaryDirectory() as folder:
        chart = Path(folder) / "drift_psi.png"
        psi_chart(drift, chart)
        client.log_artifact(drift.run_id, str(chart), artifact_path="plots")
        report = Path(folder) / "drift.json"
        report.write_text(json.dumps(drift.as_dict(), indent=1))
        client.log_artifact(drift.run_id, str(report), artifact_path="drift")


def psi_chart(drift: ModelDrift, path: Path, top: int = 20) -> Path:
    """Horizontal bars of the largest indices, coloured by band, with the two band limits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted([("score", drift.score_psi), *drift.indicators.items()], key=lambda kv: kv[1])[-top:]
    colours = {"stable": "#4c9a2a", "watch": "#e0a100", "act": "#c0392b"}
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color=[colours[band(v)] for _, v in items])
    for limit in (STABLE_BELOW, ACT_ABOVE):
        ax.axvline(limit, color="#555", linestyle="--", linewidth=0.8)
    ax.set_xlabel("population stability index")
    ax.set_title(f"{drift.model} v{drift.version}: {drift.current} vs {drift.reference}", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
