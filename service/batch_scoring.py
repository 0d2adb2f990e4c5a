"""Batch scoring: every client's decision from the offline store into parquet, chunk by chunk.

The same models, rule inputs and ruleset as the API, on the latest indicators of every client; each row keeps the
lifecycle stage, the scores (churn only for active and at-risk clients), the decision and its reasons (likely
churn cause with cause scores, the rules that fired).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from features.indicators.engine import DEFAULT_SPARK_MASTER, Engine
from features.store.feature_store import latest_chunks
from rules.engine import Ruleset
from rules.vocabulary import Vocabulary
from service.collector import collector_paused
from service.lifecycle import CHURN_SCORED_STAGES, Register
from service.rule_inputs import decision_references, population_inputs
from service.scoring import Models

SCHEMA = pa.schema([
    ("client_id", pa.string()), ("as_of", pa.date32()), ("lifecycle_stage", pa.string()),
    ("churn_probability", pa.float64()), ("churn_band", pa.string()), ("churn_cause", pa.string()),
    ("value_amount_yuan", pa.float64()), ("value_percentile", pa.float64()),
    ("risk_profile", pa.string()), ("risk_probability_conservative", pa.float64()),
    ("risk_probability_balanced", pa.float64()), ("risk_probability_aggressive", pa.float64()),
    ("tier", pa.string()), ("package", pa.string()), ("actions", pa.list_(pa.string())),
    ("alerts", pa.list_(pa.string())), ("rules_fired", pa.list_(pa.string())),
    ("model_versions", pa.string()), ("ruleset_version", pa.string()),
])


def score_population(features_dir: Path, models: Models, ruleset: Ruleset, vocabulary: Vocabulary, out: Path,
                     chunk: int = 100_000, progress: Callable[[int, int], None] = lambda done, total: None,
                     engine: Engine = "duckdb", spark_master: str = DEFAULT_SPARK_MASTER,
                     register: Register | None = None) -> dict:
    """Write one row per client to ``out`` (replaced atomically); returns counts and timings. ``engine`` chooses
    who reads the offline tables (DuckDB's side: pyarrow in process; or Spark); the scoring is the same."""
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    latest = latest_chunks(features_dir, decision_references(models.references, vocabulary), chunk, engine,
                           spark_master, scratch_dir=out.parent)
    as_of = latest.as_of
    versions = ",".join(f"{k}={v}" for k, v in models.versions.items())
    tmp = out.with_suffix(".tmp")
    seconds = {"read": time.perf_counter() - started, "score": 0.0, "rules": 0.0, "write": 0.0}
    done = 0
    with pq.ParquetWriter(tmp, SCHEMA) as writer:
        while True:
            t_read = time.perf_counter()
            part = next(latest.chunks, None)
            seconds["read"] += time.perf_counter() - t_read
            if part is None:
                break
            t0 = time.perf_counter()
            scores = models.score_frame(part)
            t1 = time.perf_counter()
            with collector_paused():
                inputs = population_inputs(vocabulary, part, scores, register)
                decisions = [ruleset.evaluate(values, check=False) for values in inputs]
                t2 = time.perf_counter()
                stages = [row.get("lifecycle_stage") for row in inputs]
                # Churn scoring applies to active and at-risk clients only: the others' churn columns are null.
                scored = [s is None or s in CHURN_SCORED_STAGES for s in stages]
                columns = {
                    "client_id": list(part.index), "as_of": [as_of] * len(part), "lifecycle_stage": stages,
                    **{f"churn_{k}": [v if ok else None for v, ok in zip(scores[f"churn_{k}"], scored, strict=True)]
                       for k in ("probability", "band", "cause")},
                    "value_amount_yuan": scores["value_amount"],
                    "value_percentile": scores["value_percentile"], "risk_profile": scores["risk_profile"],
                    **{f"risk_probability_{c}": scores[f"risk_probability_{c}"] for c in models.risk_classes},
                    "tier": [d.tier for d in decisions], "package": [d.package for d in decisions],
                    "actions": [list(d.actions) for d in decisions], "alerts": [list(d.alerts) for d in decisions],
                    "rules_fired": [d.fired_rules for d in decisions],
                    "model_versions": [versions] * len(part), "ruleset_version": [ruleset.version] * len(part),
                }
                writer.write_table(pa.table({k: columns[k] for k in SCHEMA.names}, schema=SCHEMA))
            seconds["score"] += t1 - t0
            seconds["rules"] += t2 - t1
            seconds["write"] += time.perf_counter() - t2
            done += len(part)
            progress(done, latest.clients)
    tmp.replace(out)
    return {"clients": done, "as_of": str(as_of), "out": str(out), "engine": engine, "model_versions": models.versions,
            "ruleset": ruleset.version, "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "seconds_total": round(time.perf_counter() - started, 2)}
