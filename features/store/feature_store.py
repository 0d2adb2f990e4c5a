"""Apply the repository, materialize the latest indicators and read them online, all through Feast."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.indicators.compute import view_path, views
from features.store.repository import online_store_config, repo_config, repository_objects


class FeaturesNotBuiltError(Exception):
    """The offline indicator tables do not exist yet."""

    code = "features_not_built"


def open_store(features_dir: Path, online_url: str | None = None):
    """Feast's store over ``features_dir``; ``online_url`` chooses the online store (default SQLite there)."""
    from feast import FeatureStore

    Path(features_dir).mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(features_dir, online_url))


def offline_dir(features_dir: Path) -> Path:
    return Path(features_dir) / "offline"


def _require_offline(features_dir: Path) -> None:
    missing = [v.name for v in views() if not view_path(offline_dir(features_dir), v.name).exists()]
    if missing:
        raise FeaturesNotBuiltError(
            f"indicator tables {', '.join(missing)} are missing in {offline_dir(features_dir)}; "
            "run `crm features build` first"
        )


def apply(features_dir: Path, online_url: str | None = None) -> list[str]:
    """Register entities, feature views and services (idempotent); returns the names applied.

    Also writes ``feature_store.yaml`` beside the registry, so that Feast's own CLI and SDK
    (``feast -c DIR feature-views list``, ``FeatureStore(repo_path=DIR)``) see the same store.
    """
    _require_offline(features_dir)
    store = open_store(features_dir, online_url)
    objects = repository_objects(offline_dir(features_dir))
    store.apply(objects)
    write_feature_store_yaml(features_dir, online_url)
    return [o.name for o in objects]


def write_feature_store_yaml(features_dir: Path, online_url: str | None = None) -> Path:
    import yaml

    config = repo_config(features_dir, online_url)
    document = {
        "project": config.project,
        "registry": config.registry.path,
        "provider": config.provider,
        "offline_store": {"type": "duckdb"},
        "online_store": online_store_config(features_dir, online_url),
        "entity_key_serialization_version": config.entity_key_serialization_version,
    }
    path = Path(features_dir) / "feature_store.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def latest_as_of(features_dir: Path) -> dt.date:
    """The newest as-of date in the offline tables."""
    _require_offline(features_dir)
    table = pq.read_table(view_path(offline_dir(features_dir), views()[0].name), columns=["as_of"])
    return pd.Timestamp(table.column("as_of").to_pandas().max()).date()


def materialize_latest(features_dir: Path, online_url: str | None = None) -> dt.date:
    """Load the latest as-of values of every view into the online store (idempotent); returns that date."""
    from features.indicators.compute import TIMEZONE

    latest = latest_as_of(features_dir)
    start = pd.Timestamp(latest).tz_localize(TIMEZONE)
    store = open_store(features_dir, online_url)
    store.materialize(start_date=(start - pd.Timedelta(hours=1)).to_pydatetime(),
                      end_date=(start + pd.Timedelta(hours=1)).to_pydatetime())
    return latest


def online_features(store, service: str, entity_rows: list[dict[str, str]]) -> dict[str, list]:
    """One call to the online store for a feature service's whole vector."""
    return store.get_online_features(features=store.get_feature_service(service), entity_rows=entity_rows).to_dict()


def latest_frame(features_dir: Path, references: list[str]) -> pd.DataFrame:
    """Every client's indicators at the latest as-of date, straight from the offline tables (what materialize
    loads into the online store), one column per ``view:indicator`` reference named by the indicator, indexed by
    client id. For population-wide work (simulation, batch scoring) where one online read per client is slow."""
    latest = pd.Timestamp(latest_as_of(features_dir))
    by_view: dict[str, list[str]] = {}
    for ref in references:
        view, name = ref.split(":", 1)
        by_view.setdefault(view, [])
        if name not in by_view[view]:
            by_view[view].append(name)
    frames = []
    for view, names in by_view.items():
        table = pq.read_table(view_path(offline_dir(features_dir), view), columns=["client_id", "as_of", *names],
                              filters=[("as_of", "==", latest.to_pydatetime().date())])
        frames.append(table.to_pandas().drop(columns="as_of").set_index("client_id"))
    frame = frames[0].join(frames[1:], how="inner") if len(frames) > 1 else frames[0]
    frame.attrs["as_of"] = latest.date()
    return frame.sort_index()
