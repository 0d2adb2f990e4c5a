"""What one API worker holds: databases, keys, the audit log, and the served snapshot it keeps current.

A background thread looks every few seconds for a new champion alias or a new active ruleset; it loads the new
version beside the old one, checks it (the ONNX graph loads, scores finite values, and for churn agrees with
LightGBM), and only then swaps the snapshot. A version that fails to load or to check leaves the old one serving.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config import Settings
from features.store.feature_store import open_store
from features.store.online_reader import OnlineReader
from model_registry.onnx_export import PARITY_TOLERANCE
from model_registry.registry import CHAMPION, Registry
from rules.engine import Ruleset, build
from rules.governance import RulesHistory
from rules.vocabulary import load_vocabulary
from service import metrics
from service.audit import AuditLog
from service.db import make_engine
from service.decisions import Served
from service.journal import Journal
from service.keys import Caller, KeyRing, Role
from service.limits import Limiter, role_limits
from service.rule_inputs import decision_references
from service.scope import Directory
from service.scoring import MODEL_NAMES, Models

log = logging.getLogger("crm.service")


def journal_dir(settings: Settings) -> Path:
    """The audit journal's folder: one per audit database, so a record is only ever replayed into the database
    it was meant for (``CRM_HOME/audit-journal/<hash of the database URL>``)."""
    digest = hashlib.sha256(settings.service_database_url.encode()).hexdigest()[:16]
    return settings.home / "audit-journal" / digest


@dataclass(frozen=True)
class Wanted:
    """What should be served now: champion versions and the active ruleset version."""

    models: tuple[int | None, ...]
    ruleset: str | None


def check_models(models: Models, registry: Registry, probes: int = 64) -> None:
    """Raise ValueError unless every version passed parity at registration, every graph scores finite values of
    the right shape, and churn's graph agrees with its LightGBM model here."""
    rng = np.random.default_rng(0)
    for loaded in (models.churn, models.value, models.risk):
        tag = registry.version(loaded.bundle.name, loaded.version).tags.get("onnx_parity_max_abs_diff")
        if tag is not None and float(tag) > PARITY_TOLERANCE:
            raise ValueError(f"{loaded.bundle.name} v{loaded.version} failed parity at registration ({tag})")
        x = rng.normal(0, 1, size=(probes, len(loaded.features))).astype(np.float32) * 10 ** rng.integers(
            0, 6, size=(1, len(loaded.features)))
        out = loaded.scorer.predict(x)
        if out.shape[0] != probes or not np.all(np.isfinite(out)):
            raise ValueError(f"{loaded.bundle.name} v{loaded.version} returns non-finite or misshapen scores")
        if loaded is models.churn:
            native = models.explainer.booster.predict(x.astype(np.float64))
            diff = float(np.max(np.abs(native - out[:, 1])))
            if diff > PARITY_TOLERANCE:
                raise ValueError(f"churn v{loaded.version}: ONNX differs from LightGBM by {diff:.3g}")


class Runtime:
    def __init__(self, settings: Settings, watch: bool = True) -> None:
        self.settings = settings
        settings.ensure_home()
        self.db = make_engine(settings.service_database_url)
        self.keys = KeyRing(self.db)
        self.directory = Directory(settings.raw_dir)  # who holds which client, for scoped keys
        self.role_limits = role_limits(settings.rate_limits, [r.value for r in Role])
        self.limiter = Limiter(settings.rate_limit_redis)
        self.audit = AuditLog(self.db, settings.home / "audit-spill",
                              Journal(journal_dir(settings), fsync=settings.journal_fsync))
        self.history = RulesHistory(settings.rules_history_url)
        self.registry = Registry(settings.tracking_uri, settings.mlflow_artifacts_dir)
        self.vocabulary = load_vocabulary()
        self._store = None
        self._lock = threading.Lock()
        self._replay_models: dict[tuple, Models] = {}
        self._replay_rulesets: dict[str, Ruleset] = {}
        self.served: Served | None = None
        self.wanted: Wanted | None = None
        self.reload()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="reloader", daemon=True) if watch else None
        if self._watcher is not None:
            self._watcher.start()

    def rate_limit(self, who: Caller) -> int:
        """Requests per second this caller may make: its key's own figure, else its role's."""
        return who.rate_limit if who.rate_limit is not None else self.role_limits[who.role.value]

    async def charge(self, who: Caller, cost: int = 1) -> None:
        """Count ``cost`` requests against the caller's limit; 429 ``rate_limited`` when over it."""
        await self.limiter.check_key(who.key_id, self.rate_limit(who), cost)

    # what to serve --------------------------------------------------------------------------------------

    def _wanted(self) -> Wanted:
        return Wanted(tuple(self.registry.alias_version(n, CHAMPION) for n in MODEL_NAMES),
                      self.history.active_version())

    def _reader(self, models: Models | None) -> OnlineReader | None:
        refs = decision_references(models.references if models else [], self.vocabulary)
        try:
            if self._store is None:
                self._store = open_store(self.settings.features_dir, self.settings.online_store)
            return OnlineReader(self._store, refs, timeout_s=self.settings.online_timeout_ms / 1000)
        except Exception as e:  # noqa: BLE001 - a boundary: report it, never fail the request or thread  # no registry or views yet: serve degraded until features are applied
            log.warning("online store not available: %s", e)
            self._store = None
            return None

    def reload(self) -> dict:
        """Load what should be served if it differs from what is served; keep the old parts that fail."""
        with self._lock:
            wanted = self._wanted()
            old = self.served
            problems: list[str] = []
            models = old.models if old else None
            if old is None or models is None or wanted.models != self.wanted.models:  # type: ignore[union-attr]
                try:
                    candidate = Models.load(self.registry)
                    check_models(candidate, self.registry)
                    models = candidate
                    metrics.RELOADS.labels("models_loaded").inc()
                except Exception as e:  # noqa: BLE001 - a boundary: report it, never fail the request or thread
                    problems.append(f"models not (re)loaded, previous kept: {e}")
                    metrics.RELOADS.labels("models_refused").inc()
            ruleset = old.ruleset if old else None
            if wanted.ruleset is None:
                problems.append("no ruleset is active")
            elif ruleset is None or ruleset.version != wanted.ruleset:
                try:
                    ruleset = build(self.history.load(wanted.ruleset), self.vocabulary)
                    metrics.RELOADS.labels("ruleset_loaded").inc()
                except Exception as e:  # noqa: BLE001 - a boundary: report it, never fail the request or thread
                    problems.append(f"ruleset {wanted.ruleset[:12]} not loaded, previous kept: {e}")
                    metrics.RELOADS.labels("ruleset_refused").inc()
            reader = old.reader if old and old.models is models and old.reader is not None else self._reader(models)
            if ruleset is not None:
                self.served = Served(models, ruleset, reader, self.vocabulary, time.time(), problems)
            self.wanted = wanted
            for p in problems:
                log.warning(p)
            return {"models": self.served.model_versions if self.served else None,
                    "ruleset": self.served.ruleset.version if self.served else None, "problems": problems}

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            try:
                if self._wanted() != self.wanted:
                    self.reload()
            except Exception as e:  # noqa: BLE001 - a boundary: report it, never fail the request or thread  # the registry being briefly unreachable must not stop the watcher
                log.warning("reload check failed: %s", e)

    # replay ---------------------------------------------------------------------------------------------

    def models_for(self, versions: dict[str, int]) -> Models:
        """The models of recorded versions: the served ones when they match, else loaded once and kept."""
        served = self.served
        if served is not None and served.models is not None and served.models.versions == versions:
            return served.models
        key = tuple(sorted(versions.items()))
        if key not in self._replay_models:
            self._replay_models[key] = Models({n: self.registry.bundle(n, version=v) for n, v in versions.items()})
        return self._replay_models[key]

    def ruleset_for(self, version: str) -> Ruleset:
        served = self.served
        if served is not None and served.ruleset.version == version:
            return served.ruleset
        if version not in self._replay_rulesets:
            self._replay_rulesets[version] = build(self.history.load(version), self.vocabulary)
        return self._replay_rulesets[version]

    # health ---------------------------------------------------------------------------------------------

    def readiness(self) -> dict:
        served = self.served
        checks = {
            "models_loaded": served is not None and served.models is not None,
            "ruleset_compiled": served is not None,
            "online_store": False,
            "audit_database": False,
        }
        if served is not None and served.reader is not None:
            try:
                served.reader.read("__readiness_probe__")
                checks["online_store"] = True
            except Exception:  # noqa: BLE001 - a boundary: report it, never fail the request or thread
                checks["online_store"] = False
        try:
            with self.db.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            checks["audit_database"] = True
        except Exception:  # noqa: BLE001 - a boundary: report it, never fail the request or thread
            checks["audit_database"] = False
        return {"ready": all(checks.values()), "checks": checks,
                "problems": served.problems if served else ["no ruleset is active"],
                "audit_backlog": self.audit.backlog}

    def close(self) -> None:
        self._stop.set()
        self.audit.close()
        self.history.close()
        self.db.dispose()
