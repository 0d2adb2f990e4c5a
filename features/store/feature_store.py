"""Apply the repository, materialize the latest indicators and read them online, all through Feast."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.indicators.compute import view_path, views
from features.indicators.engine import DEFAULT_SPARK_MASTER, Engine
from features.store.repository import offline_store_config, online_store_config, repo_config, repository_objects

_PROGRESS_BAR = re.compile(r"^\s*\d+%\|")  # a tqdm progress line: " 40%|####      | 2/5 [00:01<00:01, ...]"


class FeaturesNotBuiltError(Exception):
    """The offline indicator tables do not exist yet."""

    code = "features_not_built"


def recorded_offline_store(features_dir: Path) -> tuple[Engine, str]:
    """The offline engine (and Spark master) the repository was applied with, from its ``feature_store.yaml``;
    DuckDB before the first apply. The registered sources are of that engine's kind (FileSource or
    SparkSource), so every later reader (training, materialize) must open the store the same way."""
    import yaml

    path = Path(features_dir) / "feature_store.yaml"
    document = yaml.safe_load(path.read_text()) if path.exists() else None
    offline = (document or {}).get("offline_store") or {}
    if offline.get("type") == "spark":
        return "spark", (offline.get("spark_conf") or {}).get("spark.master", DEFAULT_SPARK_MASTER)
    return "duckdb", DEFAULT_SPARK_MASTER


def open_store(features_dir: Path, online_url: str | None = None, offline_engine: Engine | None = None,
               spark_master: str | None = None):
    """Feast's store over ``features_dir``; ``online_url`` chooses the online store (default SQLite there); the
    offline store is the one the repository was applied with unless ``offline_engine`` says otherwise."""
    from feast import FeatureStore

    recorded_engine, recorded_master = recorded_offline_store(features_dir)
    Path(features_dir).mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(features_dir, online_url, offline_engine or recorded_engine,
                                           spark_master or recorded_master))


def offline_dir(features_dir: Path) -> Path:
    return Path(features_dir) / "offline"


def _require_offline(features_dir: Path) -> None:
    missing = [v.name for v in views() if not view_path(offline_dir(features_dir), v.name).exists()]
    if missing:
        raise FeaturesNotBuiltError(
            f"indicator tables {', '.join(missing)} are missing in {offline_dir(features_dir)}; "
            "run `crm features build` first"
        )


def apply(features_dir: Path, online_url: str | None = None, offline_engine: Engine = "duckdb",
          spark_master: str = DEFAULT_SPARK_MASTER) -> list[str]:
    """Register entities, feature views and services (idempotent) with sources for ``offline_engine``'s store;
    returns the names applied.

    Also writes ``feature_store.yaml`` beside the registry, so that Feast's own CLI and SDK
    (``feast -c DIR feature-views list``, ``FeatureStore(repo_path=DIR)``) see the same store, and so that
    :func:`open_store` opens the offline store the sources were registered for.
    """
    _require_offline(features_dir)
    store = open_store(features_dir, online_url, offline_engine, spark_master)
    objects = repository_objects(offline_dir(features_dir), offline_engine)
    store.apply(objects)
    write_feature_store_yaml(features_dir, online_url, offline_engine, spark_master)
    return [o.name for o in objects]


def write_feature_store_yaml(features_dir: Path, online_url: str | None = None, offline_engine: Engine = "duckdb",
                             spark_master: str = DEFAULT_SPARK_MASTER) -> Path:
    import yaml

    config = repo_config(features_dir, online_url, offline_engine, spark_master)
    document = {
        "project": config.project,
        "registry": config.registry.path,
        "provider": config.provider,
        "offline_store": offline_store_config(offline_engine, spark_master, features_dir),
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


def materialize_latest(features_dir: Path, online_url: str | None = None, spark_master: str | None = None) -> dt.date:
    """Load the latest as-of values of every view into the online store (idempotent), reading them through the
    offline store the repository was applied with; returns that date."""
    from features.indicators.compute import TIMEZONE

    latest = latest_as_of(features_dir)
    start = pd.Timestamp(latest).tz_localize(TIMEZONE)
    store = open_store(features_dir, online_url, spark_master=spark_master)
    # FeatureStore.materialize prints a banner and each view's name (print, to stdout) and a progress bar per view
    # (tqdm, to stderr) with no option to turn them off (feast 0.67 feature_store.py, _print_materialization_log):
    # they stay off the console of `crm`, which reports the result itself. Anything else written to stderr (a
    # warning) is passed on, and errors are raised, not printed.
    errors = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
            store.materialize(start_date=(start - pd.Timedelta(hours=1)).to_pydatetime(),
                              end_date=(start + pd.Timedelta(hours=1)).to_pydatetime())
    finally:
        rest = [line for line in re.split(r"[\r\n]+", errors.getvalue())
                if line.strip() and not _PROGRESS_BAR.match(line)]
        if rest:
            print("\n".join(rest), file=sys.stderr)
    return latest


def online_features(store, service: str, entity_rows: list[dict[str, str]]) -> dict[str, list]:
    """One call to the online store for a feature service's whole vector."""
    return store.get_online_features(features=store.get_feature_service(service), entity_rows=entity_rows).to_dict()


def _by_view(references: list[str]) -> dict[str, list[str]]:
    by_view: dict[str, list[str]] = {}
    for ref in references:
        view, name = ref.split(":", 1)
        by_view.setdefault(view, [])
        if name not in by_view[view]:
            by_view[view].append(name)
    return by_view


def latest_frame(features_dir: Path, references: list[str]) -> pd.DataFrame:
    """Every client's indicators at the latest as-of date, straight from the offline tables (what materialize
    loads into the online store), one column per ``view:indicator`` reference named by the indicator, indexed by
    client id. For population-wide work (simulation, batch scoring) where one online read per client is slow."""
    latest = pd.Timestamp(latest_as_of(features_dir))
    tables = [pq.read_table(view_path(offline_dir(features_dir), view), columns=["client_id", *names],
                            filters=[("as_of", "==", latest.to_pydatetime().date())])
              for view, names in _by_view(references).items()]
    clients = tables[0].column("client_id")
    if all(t.column("client_id").equals(clients) for t in tables[1:]):
        # The views hold the same clients in the same order (each is written sorted by client): put their columns
        # side by side instead of joining a million-row index four times.
        combined = pa.table({"client_id": clients,
                             **{name: t.column(name) for t in tables for name in t.column_names[1:]}})
        frame = combined.to_pandas().set_index("client_id")
    else:
        frames = [t.to_pandas().set_index("client_id") for t in tables]
        frame = frames[0].join(frames[1:], how="inner") if len(frames) > 1 else frames[0]
    frame.attrs["as_of"] = latest.date()
    return frame.sort_index()


@dataclass(frozen=True)
class LatestChunks:
    """Every client's latest indicators as a stream of frames (indexed by client id, in client-id order)."""

    as_of: dt.date
    clients: int
    chunks: Iterator[pd.DataFrame]


def latest_chunks(features_dir: Path, references: list[str], chunk: int, engine: Engine = "duckdb",
                  spark_master: str = DEFAULT_SPARK_MASTER, scratch_dir: Path | None = None) -> LatestChunks:
    """What :func:`latest_frame` gives, in chunks of about ``chunk`` clients. On DuckDB's side the frame is read
    with pyarrow and sliced; on Spark the views are filtered and joined by Spark, which writes them range-
    partitioned by client id into ``scratch_dir`` (it must be visible to the executors: a shared volume on a
    cluster), and each part is one chunk, read one at a time and removed at the end."""
    if engine == "duckdb":
        frame = latest_frame(features_dir, references)

        def slices() -> Iterator[pd.DataFrame]:
            for start in range(0, len(frame), chunk):
                yield frame.iloc[start:start + chunk]

        return LatestChunks(frame.attrs["as_of"], len(frame), slices())
    if engine != "spark":
        raise ValueError(f"unknown engine {engine!r}; use duckdb or spark")
    return _latest_chunks_spark(features_dir, references, chunk, spark_master,
                                Path(scratch_dir or offline_dir(features_dir).parent))


def _latest_chunks_spark(features_dir: Path, references: list[str], chunk: int, master: str,
                         scratch_dir: Path) -> LatestChunks:
    from pyspark.sql import functions as F

    from features.indicators.engine import spark_session

    _require_offline(features_dir)
    session = spark_session(master)
    by_view = _by_view(references)
    paths = {view: str(view_path(offline_dir(features_dir), view).resolve()) for view in by_view}
    first = next(iter(paths.values()))
    as_of = session.read.parquet(first).agg(F.max("as_of")).first()[0]
    joined = None
    for view, names in by_view.items():
        part = session.read.parquet(paths[view]).where(F.col("as_of") == F.lit(as_of)).select("client_id", *names)
        joined = part if joined is None else joined.join(part, "client_id", "inner")
    columns = [name for names in by_view.values() for name in names]
    joined = joined.select("client_id", *columns)
    clients = joined.count()
    scratch = Path(scratch_dir).resolve() / f".latest-{uuid.uuid4().hex[:12]}"
    (joined.repartitionByRange(max(1, math.ceil(clients / chunk)), "client_id")
     .sortWithinPartitions("client_id").write.parquet(str(scratch)))

    def parts() -> Iterator[pd.DataFrame]:
        try:
            # Range partitions are numbered in key order, so the parts in name order are in client-id order.
            for path in sorted(scratch.glob("part-*.parquet")):
                yield pq.read_table(path).to_pandas().set_index("client_id")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return LatestChunks(pd.Timestamp(as_of).date(), clients, parts())
