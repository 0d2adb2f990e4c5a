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
from features.indicators.engine import DEFAULT_SPARK_MASTER, Engine, spark_conf
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


def offline_store_config(engine: Engine = "duckdb", spark_master: str = DEFAULT_SPARK_MASTER,
                         features_dir: Path | None = None) -> dict:
    """Feast's offline store over the parquet tables: its DuckDB store, or its Spark store (contrib) with the
    session configuration every Spark step shares.

    The Spark store gets a staging folder in ``features_dir``: results (training sets, materialization) are then
    written by Spark as parquet and read back with pyarrow, rather than collected through the driver's toPandas,
    which needs the driver's memory and returns time-zone-naive timestamps where the DuckDB store returns UTC."""
    if engine == "spark":
        config: dict = {"type": "spark", "spark_conf": spark_conf(spark_master)}
        if features_dir is not None:
            config["staging_location"] = str(Path(features_dir).resolve() / "spark-staging")
        return config
    if engine != "duckdb":
        raise ValueError(f"unknown offline engine {engine!r}; use duckdb or spark")
    return {"type": "duckdb"}


def repo_config(features_dir: Path, online_url: str | None = None, offline_engine: Engine = "duckdb",
                spark_master: str = DEFAULT_SPARK_MASTER) -> RepoConfig:
    """Registry in ``features_dir``; offline store per :func:`offline_store_config`; online store per
    :func:`online_store_config`."""
    features_dir = Path(features_dir).resolve()
    return RepoConfig(
        project=PROJECT,
        registry=str(features_dir / "registry.db"),
        provider="local",
        offline_store=offline_store_config(offline_engine, spark_master, features_dir),
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


def _source(view_name: str, path: Path, engine: Engine):
    """The view's offline table as a Feast source: a FileSource for the DuckDB store, a SparkSource (the same
    parquet file) for the Spark store, which reads nothing else."""
    common = {
        "name": f"{view_name}_source",
        "path": str(path),
        "timestamp_field": "event_timestamp",
        "created_timestamp_column": "created_timestamp",
        "description": f"Month-end {view_name} indicators computed from the raw tables.",
    }
    if engine == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        return SparkSource(file_format="parquet", **common)
    return FileSource(**common)


def feature_views(offline_dir: Path, engine: Engine = "duckdb") -> list[FeatureView]:
    ents = entities()
    out = []
    for view in views():
        source = _source(view.name, view_path(Path(offline_dir).resolve(), view.name), engine)
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


def repository_objects(offline_dir: Path, engine: Engine = "duckdb") -> list:
    fvs = feature_views(offline_dir, engine)
    return [*entities().values(), *fvs, *feature_services({fv.name: fv for fv in fvs})]
