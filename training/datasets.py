"""Point-in-time training sets: labels from raw data joined to features through Feast's historical retrieval."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.indicators.compute import TIMEZONE
from features.labels import churn_outcomes, risk_outcomes, value_outcomes
from features.model_features import feature_names
from features.store.feature_store import latest_as_of, offline_dir, open_store
from model_registry.specs import model_spec

CHURN_HORIZON_DAYS = 90
VALUE_HORIZON_MONTHS = 12


@dataclass
class Dataset:
    """Feature matrix, label and as-of date of every row, in the model's feature order."""

    model: str
    service: str
    frame: pd.DataFrame
    features: list[str]
    label: str

    def matrix(self, rows: pd.Series | np.ndarray | None = None) -> np.ndarray:
        frame = self.frame if rows is None else self.frame[rows]
        return frame[self.features].to_numpy(dtype=np.float32)


def feature_as_of_dates(features_dir: Path) -> list[pd.Timestamp]:
    frame = pd.read_parquet(offline_dir(features_dir) / "client_value.parquet", columns=["as_of"])
    return sorted(pd.to_datetime(frame["as_of"].unique()))


def churn_labels(raw_dir: Path, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """Whether each active client churned within 90 days of each month-end."""
    return churn_outcomes(raw_dir, CHURN_HORIZON_DAYS)


def value_labels(raw_dir: Path, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """The commission each client paid over the 12 months after each month-end."""
    return value_outcomes(raw_dir, VALUE_HORIZON_MONTHS)


def risk_labels(raw_dir: Path, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """The questionnaire's risk class in force at each month-end."""
    return risk_outcomes(raw_dir, dates)


def labels_for(model: str, raw_dir: Path, features_dir: Path) -> pd.DataFrame:
    """Observable labels at the as-of dates the indicators exist for (the model's ``labels`` function)."""
    from training.specs import resolve

    dates = feature_as_of_dates(features_dir)
    labels = resolve(model_spec(model).labels)(raw_dir, dates)
    labels["as_of"] = pd.to_datetime(labels["as_of"])
    return labels[labels["as_of"].isin(dates)].reset_index(drop=True)


def historical_features(features_dir: Path, service: str, entities: pd.DataFrame) -> pd.DataFrame:
    """Feast's point-in-time join for (client_id, as_of) rows; returns the rows with the service's features."""
    store = open_store(features_dir)
    entity_df = pd.DataFrame({
        "client_id": entities["client_id"].to_numpy(),
        "event_timestamp": pd.to_datetime(entities["as_of"]).dt.tz_localize(TIMEZONE),
    })
    from feast.errors import FeatureServiceNotFoundException

    try:
        feature_service = store.get_feature_service(service)
    except FeatureServiceNotFoundException:
        raise ValueError(f"the feature service {service} is not registered in {features_dir}: run `crm features "
                         "build`, `crm features apply` and `crm features materialize` with this version") from None
    joined = store.get_historical_features(entity_df=entity_df, features=feature_service).to_df()
    joined["as_of"] = joined["event_timestamp"].dt.tz_convert(TIMEZONE).dt.tz_localize(None).dt.normalize()
    return joined.drop(columns=["event_timestamp"])


def build_dataset(model: str, raw_dir: Path, features_dir: Path, service: str | None = None) -> Dataset:
    """The model's labelled client-months with the indicators of ``service`` (default: the model's current feature
    service; a trained model's own service when measuring it)."""
    spec = model_spec(model)
    service = service or spec.feature_service
    labels = labels_for(model, raw_dir, features_dir)
    joined = historical_features(features_dir, service, labels[["client_id", "as_of"]])
    frame = labels.merge(joined, on=["client_id", "as_of"], how="inner")
    names = feature_names(service)
    # A client-month without indicators (opened after the month-end) has no features to learn from.
    frame = frame.dropna(subset=names).sort_values(["as_of", "client_id"], ignore_index=True)
    return Dataset(model=spec.name, service=service, frame=frame, features=names, label=spec.label)


def serving_frame(features_dir: Path, service: str, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """All clients' features at one as-of date (default the latest) from the offline tables."""
    as_of = pd.Timestamp(as_of or latest_as_of(features_dir))
    entities = pd.read_parquet(offline_dir(features_dir) / "client_value.parquet", columns=["client_id", "as_of"])
    entities = entities[pd.to_datetime(entities["as_of"]) == as_of]
    return historical_features(features_dir, service, entities)


@dataclass(frozen=True)
class Windows:
    """Time-based split of the labelled as-of dates: train < validation < test, no date shared."""

    train: tuple[pd.Timestamp, ...]
    validation: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]

    def describe(self) -> dict[str, str]:
        return {f"window_{name}": f"{dates[0].date()}..{dates[-1].date()} ({len(dates)} month-ends)"
                for name, dates in (("train", self.train), ("validation", self.validation), ("test", self.test))}


def time_windows(as_of_dates: list[pd.Timestamp], test_months: int = 3, validation_months: int = 2,
                 gap_months: int = 0) -> Windows:
    """The last ``test_months`` dates are the test window, the ``validation_months`` before them validation,
    and everything before (less a gap) training."""
    dates = sorted(set(pd.to_datetime(as_of_dates)))
    needed = test_months + validation_months + gap_months + 1
    if len(dates) < needed:
        raise ValueError(f"{len(dates)} labelled month-ends are too few for a time-based split (need {needed}); "
                         "generate or import more months of history")
    test = dates[-test_months:]
    validation = dates[-test_months - validation_months: -test_months]
    train = dates[: len(dates) - test_months - validation_months - gap_months]
    return Windows(tuple(train), tuple(validation), tuple(test))
