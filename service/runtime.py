"""What one API worker holds: databases, keys, the audit log, and the served snapshot it keeps current.

A background thread looks every few seconds for a new champion alias or a new active ruleset; it loads the new
version beside the old one, checks it (the ONNX graph loads, scores finite values, and for churn agrees with
LightGBM), and only then swaps the snapshot. A version that fails to load or to check leaves the old one serving.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from config import Settings
from features.store.feature_store import open_store
from features.store.online_reader import OnlineReader
from model_registry.combined import leaf_parity
from model_registry.onnx_export import PARITY_TOLERANCE
from model_registry.registry import CHAMPION, Registry
from model_registry.specs import model_names
from rules.engine import Ruleset, build
from rules.governance import RulesHistory
from rules.vocabulary import load_vocabulary
from service import metrics
from service.arbitration import Arbiter
from service.audit import AuditLog
from service.contact_history import ContactHistory
from service.db import make_engine
from service.decisions import Served
from service.experiments import ArmPlan
from service.journal import Journal
from service.keys import Caller, KeyRing, Role
from service.lifecycle import Register
from service.limits import Limiter, role_limits
from service.outcomes import Outcomes
from service.queue import WorkQueues
from service.rule_inputs import decision_references
from service.scope import Directory
from service.scoring import Models

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
    for loaded in models.loaded.values():
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
    check_combined(models, rng, probes)


def check_combined(models: Models, rng: np.random.Generator, probes: int = 64) -> None:
    """Raise ValueError unless the one graph serving the models gives exactly each model's own outputs (the
    action-effect model's for every client and action), and the churn trees' leaves LightGBM gives (missing values
    and zeros included)."""
    x = rng.normal(0, 1, size=(probes, len(models.inputs))).astype(np.float32) * 10 ** rng.integers(
        0, 6, size=(1, len(models.inputs)))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.1] = 0.0
    combined = models.run(x, with_effects=True)
    for name in models.per_client:
        loaded = models.loaded[name]
        own = loaded.scorer.predict(models.columns(name, x))
        if not np.array_equal(own, combined[name], equal_nan=True):
            raise ValueError(f"{name} v{loaded.version}: the combined graph differs from the model's own graph")
    if models.effects_model is not None:  # every (client, action) pair through the model's own graph
        loaded, features = models.loaded[models.effects_model], models.columns(models.effects_model, x)
        k, (n, width) = len(models.effect_actions), features.shape
        pairs = np.concatenate([np.broadcast_to(features, (k, n, width)),
                                np.broadcast_to(np.eye(k, dtype=np.float32)[:, None, :], (k, n, k))], axis=2)
        own = loaded.scorer.predict(pairs.reshape(k * n, width + k))[:, 0].reshape(k, n).T
        if not np.array_equal(own, combined[models.effects_model], equal_nan=True):
            raise ValueError(f"{models.effects_model} v{loaded.version}: the combined graph's action effects differ "
                             "from the model's own graph")
    differing = leaf_parity(combined["churn_leaves"], models.explainer.booster, models.columns("churn", x))
    if differing:
        raise ValueError(f"churn v{models.churn.version}: the combined graph's leaves differ from LightGBM's on "
                         f"{differing} of {probes} rows")


def prepare_home(settings: Settings) -> None:
    """Create or upgrade the home's databases (the service database, the rules history, MLflow's) in this process,
    before the processes that serve it start: each of them would otherwise do it at the same moment, and two schema
    migrations of one SQLite file at once fail ("table _alembic_tmp_tags already exists")."""
    settings.ensure_home()
    make_engine(settings.service_database_url).dispose()
    RulesHistory(settings.rules_history_url).engine.dispose()
    Registry(settings.tracking_uri, settings.mlflow_artifacts_dir)


class Runtime:
    def __init__(self, settings: Settings, watch: bool = True, apply_events: bool | None = None) -> None:
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
        metrics.watch_state(journal_dir(settings), settings.drift_report_path)
        self.vocabulary = load_vocabulary()
        self.arms = ArmPlan(settings.experiment_salt, settings.holdout_share,
                            settings.challenger_share if settings.challenger_ruleset else 0.0)
        self.contacts = ContactHistory()
        self.contacts.load_raw(settings.raw_dir, dt.datetime.now(ZoneInfo(settings.timezone)).date())
        self.outcomes = Outcomes(self.db, self.audit, self.contacts, settings.timezone)
        # Outcomes recorded since the raw contacts were imported (older ones are in them).
        self.outcomes.catch_up(dt.datetime.fromtimestamp(self.contacts.raw_mtime, UTC).isoformat()
                               if self.contacts.raw_mtime else "")
        self.register = Register.load(settings.lifecycle_dir)
        self._arbiters: dict[str, Arbiter | None] = {}
        self.queues = WorkQueues(settings.home / "queue", self.outcomes, self.contacts, settings.timezone,
                                 lambda: self.served.arbiter if self.served is not None else None)
        self._store = None
        self._lock = threading.Lock()
        self._replay_models: dict[tuple, Models] = {}
        self._replay_rulesets: dict[str, Ruleset] = {}
        self.served: Served | None = None
        self.wanted: Wanted | None = None
        self.reload()
        from service.events import EventService

        if apply_events is None:  # by default the process applies events unless another is named to
            apply_events = settings.events_applier != "none"
        self.events = EventService(self, run_applier=apply_events)
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
        return Wanted(tuple(self.registry.alias_version(n, CHAMPION) for n in model_names()),
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
            challenger = self._challenger(old, problems)
            if self.register.stale(self.settings.lifecycle_dir):
                self.register = Register.load(self.settings.lifecycle_dir)
            if ruleset is not None:
                self.served = Served(models, ruleset, reader, self.vocabulary, time.time(), problems,
                                     arbiter=self.arbiter_for(ruleset), arms=self.arms, challenger=challenger,
                                     challenger_arbiter=self.arbiter_for(challenger) if challenger else None,
                                     register=self.register, contacts=self.contacts,
                                     timezone=self.settings.timezone)
            self.wanted = wanted
            for p in problems:
                log.warning(p)
            return {"models": self.served.model_versions if self.served else None,
                    "ruleset": self.served.ruleset.version if self.served else None, "problems": problems}

    def observe(self) -> None:
        """Refresh this worker's audit gauges (the watcher does it every few seconds, and so does each scrape)."""
        journal = self.audit.journal
        metrics.observe_audit(self.audit.backlog, journal.outstanding if journal is not None else 0)

    def arbiter_for(self, ruleset: Ruleset) -> Arbiter | None:
        """The arbitration of a ruleset (None without a catalogue), built once per version."""
        if ruleset.version not in self._arbiters:
            catalogue = ruleset.spec.catalogue
            self._arbiters[ruleset.version] = (Arbiter(catalogue, self.vocabulary.products, self.settings.max_actions)
                                               if catalogue is not None else None)
        return self._arbiters[ruleset.version]

    def _challenger(self, old: Served | None, problems: list[str]) -> Ruleset | None:
        """The challenger strategy's ruleset: configured, approved, compiled; else None (the champion serves)."""
        wanted = self.settings.challenger_ruleset
        if not wanted or self.settings.challenger_share <= 0:
            return None
        try:
            state = self.history.state(wanted)
            if state.status.value != "approved":
                problems.append(f"challenger ruleset {state.version[:12]} is {state.status.value}, not approved: "
                                "the champion serves its share")
                return None
            if old is not None and old.challenger is not None and old.challenger.version == state.version:
                return old.challenger
            return build(self.history.load(state.version), self.vocabulary)
        except Exception as e:  # noqa: BLE001 - a boundary: report it, the champion serves instead
            problems.append(f"challenger ruleset {wanted} not loaded: {e}")
            return None

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            self.observe()
            try:
                self.outcomes.catch_up()  # outcomes other workers recorded, for the contact policy
                if self.register.stale(self.settings.lifecycle_dir):
                    self.reload()
                if self._wanted() != self.wanted:
                    self.reload()
            except Exception as e:  # noqa: BLE001 - a boundary: report it, never fail the request or thread  # the registry being briefly unreachable must not stop the watcher
                log.warning("reload check failed: %s", e)

    def organisation(self) -> tuple[set[str], set[str]]:
        """The brokers and branches of the raw tables (read once), for the queue's checks."""
        if getattr(self, "_organisation", None) is None:
            import pyarrow.parquet as pq

            try:
                brokers = set(pq.read_table(self.settings.raw_dir / "brokers.parquet", columns=["broker_id"])
                              .column("broker_id").to_pylist())
                branches = set(pq.read_table(self.settings.raw_dir / "branches.parquet", columns=["branch_id"])
                               .column("branch_id").to_pylist())
            except FileNotFoundError:
                brokers, branches = set(), set()
            self._organisation = (brokers, branches)
        return self._organisation

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
        events = self.events.status()
        return {"ready": all(checks.values()), "checks": checks,
                "problems": served.problems if served else ["no ruleset is active"],
                "audit_backlog": self.audit.backlog, "event_backlog": events["backlog"],
                "events_applying": events["online_store"]}

    def close(self) -> None:
        self._stop.set()
        self.events.close()
        self.outcomes.close()
        self.audit.close()
        self.history.close()
        self.db.dispose()
