"""The Feast repository of the indicator system: entities, one feature view per family, versioned services.

Everything is generated from the indicator definitions, so the catalog, the offline tables and the Feast
schema cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Bool, Float64, Int64, String

from features.indicators.compute import view_path, views
from features.indicators.definitions import ENTITY_KEY, FAMILY_ZH
from features.model_features import FEATURE_SERVICES

PROJECT = "brokerage_crm"
OWNER = "data-science@brokerage.example"
# Indicators are month-end values; a row stays valid until the next month-end has been computed.
VIEW_TTL = dt.timedelta(days=45)
_TYPES = {"float64": Float64, "int64": Int64, "string": String, "bool": Bool}
_ENTITY_TEXT = {
    "client": "A client account (资金账户) of the brokerage.",
    "broker": "A broker (经纪人, account manager) serving clients at a branch.",
    "branch": "A branch office (营业部) of the brokerage.",
}


def online_store_config(features_dir: Path, online_url: str | None = None) -> dict:
    """Feast's online-store config: the lean SQLite store in ``features_dir`` by default, Redis for a
    ``redis://HOST:PORT/DB[?socket_timeout=0.05&password=...]`` URL."""
    features_dir = Path(features_dir).resolve()
    if not online_url or online_url == "sqlite":
        return {"type": "features.store.sqlite_online.LeanSqliteOnlineStore", "path": str(features_dir / "online.db")}
    url = urlparse(online_url)
    if url.scheme != "redis":
        raise ValueError(f"online store URL {online_url!r}: use redis://HOST:PORT/DB, or leave it unset for SQLite")
    params = [f"db={int(url.path.strip('/') or 0)}"]
    if url.password:
        params.append(f"password={url.password}")
    params += [f"{k}={v}" for k, v in parse_qsl(url.query)]
    return {"type": "redis", "connection_string": ",".join([f"{url.hostname or 'localhost'}:{url.port or 6379}",
                                                            *params])}


def repo_config(features_dir: Path, online_url: str | None = None) -> RepoConfig:
    """Registry in ``features_dir``; offline store on DuckDB over the parquet tables; online store per
    :func:`online_store_config`."""
    features_dir = Path(features_dir).resolve()
    return RepoConfig(
        project=PROJECT,
        registry=str(features_dir / "registry.db"),
        provider="local",
        offline_store={"type": "duckdb"},
        online_store=online_store_config(features_dir, online_url),
        entity_key_serialization_version=3,
        repo_path=str(features_dir),
    )


def entities() -> dict[str, Entity]:
    return {
        name: Entity(name=name, join_keys=[key], value_type=ValueType.STRING, description=_ENTITY_TEXT[name],
                     owner=OWNER,
                     tags={"system": "crm"})
        for name, key in ENTITY_KEY.items()
    }


def feature_views(offline_dir: Path) -> list[FeatureView]:
    ents = entities()
    out = []
    for view in views():
        source = FileSource(
            name=f"{view.name}_source",
            path=str(view_path(Path(offline_dir).resolve(), view.name)),
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
            description=f"Month-end {view.name} indicators computed from the raw tables.",
        )
        out.append(FeatureView(
            name=view.name,
            entities=[ents[view.entity]],
            ttl=VIEW_TTL,
            schema=[Field(name=i.name, dtype=_TYPES[i.type], description=f"{i.formula} Unit: {i.unit}.",
                          tags={"zh": i.zh, "window": i.window, "unit": i.unit}) for i in view.indicators],
            source=source,
            online=True,
            description=f"Indicator family {view.family.value} ({FAMILY_ZH[view.family]}) per {view.entity}.",
            owner=OWNER,
            tags={"family": view.family.value, "family_zh": FAMILY_ZH[view.family], "entity": view.entity},
        ))
    return out


def feature_services(views_by_name: dict[str, FeatureView]) -> list[FeatureService]:
    services = []
    for name, spec in FEATURE_SERVICES.items():
        wanted: dict[str, list[str]] = {}
        for ref in spec["features"]:  # type: ignore[union-attr]
            view, feature = ref.split(":", 1)
            wanted.setdefault(view, []).append(feature)
        projections = [views_by_name[view][features] for view, features in wanted.items()]
        services.append(FeatureService(
            name=name, features=projections, description=str(spec["description"]), owner=OWNER,
            tags={"model": str(spec["model"]), "version": name.rsplit("_v", 1)[1]},
        ))
    return services


def repository_objects(offline_dir: Path) -> list:
    fvs = feature_views(offline_dir)
    return [*entities().values(), *fvs, *feature_services({fv.name: fv for fv in fvs})]
