"""The one settings object of the product, read from ``CRM_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where every stage keeps its state, and how the stages are wired.

    Every path derives from ``home`` so that one folder holds the whole state of an installation.
    """

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="forbid", frozen=True)

    home: Path = Field(default=Path("var"), description="State folder: data, stores and databases.")
    timezone: str = Field(default="Asia/Shanghai", description="Time zone of trading dates.")
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking and registry URI; default SQLite in CRM_HOME (mlflow.db).")
    online_store: str | None = Field(
        default=None, description="Feast online store: unset for SQLite in CRM_HOME, or redis://HOST:PORT/DB "
        "(query parameters such as socket_timeout=0.05 go to the Redis client).")
    service_db_url: str | None = Field(
        default=None, description="API keys and the decision audit log (SQLAlchemy URL); default SQLite in "
        "CRM_HOME (service.db).")
    host: str = Field(default="127.0.0.1", description="Address `crm serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `crm serve` listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="API worker processes.")
    online_timeout_ms: float = Field(default=50.0, gt=0, description="Longest wait for the online store before a "
                                     "decision degrades to rules only.")
    reload_interval_s: float = Field(default=10.0, gt=0, description="How often each API worker looks for a new "
                                     "champion or active ruleset.")
    compute_engine: Literal["duckdb", "spark"] = Field(
        default="duckdb", description="Where indicators are computed, Feast's offline store reads and batch scoring "
        "reads: DuckDB in process, or Spark at CRM_SPARK_MASTER.")
    spark_master: str = Field(
        default="local[2]", description="Spark master URL for the Spark engine: local[N] on one machine, "
        "spark://HOST:7077 (or yarn, k8s://...) for a cluster.")
    duckdb_memory_limit: str = Field(
        default="3GB", description="Most memory DuckDB may take for the indicator build before spilling to disk "
        "(DuckDB size syntax: 3GB, 12GB); raise it for worlds of a million clients or more.")
    duckdb_threads: int = Field(
        default=1, ge=1, description="Threads DuckDB may use for the indicator build. One gives builds that are "
        "identical to the last bit (parallel aggregates add floats in a varying order, and models trained on the "
        "indicators then differ); more is faster on a large machine, reproducible to about 1e-16.")
    events_apply_interval_ms: float = Field(
        default=50.0, gt=0, description="How often the event applier looks for accepted client events to apply to "
        "the online store.")
    events_applier: Literal["process", "thread", "none"] = Field(
        default="process", description="Who applies accepted client events and raises the alerts they trigger: "
        "'process', one `crm events apply` process that `crm serve` runs beside its workers (an API created in "
        "any other way applies in a thread of its own); 'thread', a thread in every API worker (applying then "
        "competes with the decisions for the worker's interpreter lock); 'none', never the API (run `crm events "
        "apply` as a service of its own).")
    rules_db_url: str | None = Field(
        default=None, description="Rule versions and approval history (SQLAlchemy URL); default SQLite in "
        "CRM_HOME (rules.db).")
    max_actions: int = Field(default=3, ge=0, le=20, description="Next best actions at most per client and "
                             "decision (after eligibility, suitability and the contact policy).")
    holdout_share: float = Field(default=0.05, ge=0, le=0.5, description="Share of clients in the holdout arm: "
                                 "no retention or win-back action, to measure what the policy achieves.")
    experiment_salt: str = Field(default="nba-2026", min_length=1, description="Salt of the stable hash that "
                                 "assigns clients to arms; a new salt draws new arms.")
    challenger_ruleset: str | None = Field(default=None, description="An approved ruleset version (or unique "
                                           "prefix) served as the challenger strategy.")
    challenger_share: float = Field(default=0.0, ge=0, le=0.5, description="Share of clients the challenger "
                                    "ruleset serves (needs CRM_CHALLENGER_RULESET).")
    journal_fsync: bool = Field(
        default=False, description="Flush every audit journal append to disk (fdatasync) before answering: records "
        "then survive a power loss, not only a process crash, at the cost of one disk flush per request.")
    rate_limits: dict[str, int] = Field(
        default_factory=dict, description="Requests per second per API key for the roles named (JSON, e.g. "
        "'{\"front_office\": 800}'), over the built-in defaults; a batch counts as its number of clients; 0 means "
        "no limit. A key created with --rate-limit has its own figure.")
    rate_limit_redis: str | None = Field(
        default=None, description="Redis shared by every worker and replica for the rate limits "
        "(redis://HOST:PORT/DB); unset: each worker process counts on its own.")
    signin_attempts_per_minute: int = Field(
        default=10, ge=1, description="Sign-in attempts (right or wrong) per client address per minute.")
    session_idle_minutes: float = Field(
        default=30.0, gt=0, description="A web session not used for this long expires.")

    @property
    def raw_dir(self) -> Path:
        """Raw brokerage tables (the contract every later stage reads)."""
        return self.home / "raw"

    @property
    def ground_truth_dir(self) -> Path:
        """Hidden truth of the synthetic world; only evaluation code may read it."""
        return self.home / "ground_truth"

    @property
    def events_dir(self) -> Path:
        """Client events: the append-only journal, what applying it keeps, and its rows as raw tables."""
        return self.home / "events"

    @property
    def features_dir(self) -> Path:
        """Indicator tables (offline store), the Feast registry and the SQLite online store."""
        return self.home / "features"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking/registry: the configured URI, else a SQLite database in the state folder."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    @property
    def rules_history_url(self) -> str:
        """Ruleset versions and their append-only approval history: the configured URL, else SQLite in the home."""
        return self.rules_db_url or f"sqlite:///{self.home.resolve() / 'rules.db'}"

    @property
    def service_database_url(self) -> str:
        """API keys and audit log: the configured URL, else SQLite in the home."""
        return self.service_db_url or f"sqlite:///{self.home.resolve() / 'service.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        """Where MLflow stores run and model artifacts (plots, ONNX graphs)."""
        return self.home / "mlartifacts"

    @property
    def reports_dir(self) -> Path:
        """HTML and markdown reports written by the CLI."""
        return self.home / "reports"

    @property
    def drift_report_path(self) -> Path:
        """The latest drift report of the champions (`crm models drift`), which the API exports as metrics."""
        return self.home / "monitoring" / "drift.json"

    @property
    def lifecycle_dir(self) -> Path:
        """The register of departures (why each lost client left)."""
        return self.home / "lifecycle"

    def ensure_home(self) -> Path:
        """Create the state folder if missing and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
