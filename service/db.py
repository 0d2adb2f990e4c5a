"""The service database: API keys, web sessions, the decision audit log and event-triggered alerts (SQLite in
CRM_HOME by default, PostgreSQL by URL).

Tables are created by the product on first use (``create_all`` is idempotent); SQLite runs in WAL mode so the
audit writer and readers do not block each other.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("revoked_at", sa.String(40), nullable=True),
    sa.Column("branch_id", sa.String(32), nullable=True),  # both empty: firm-wide (see service.scope)
    sa.Column("broker_id", sa.String(32), nullable=True),
    sa.Column("rate_limit", sa.Integer, nullable=True),  # requests per second; empty: the role's figure
)

web_sessions = sa.Table(
    "web_sessions", metadata,
    sa.Column("session_sha256", sa.String(64), primary_key=True),  # the cookie holds the id; only its hash here
    sa.Column("key_id", sa.String(16), nullable=False, index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),  # seconds since the epoch
    sa.Column("last_seen_at", sa.Float, nullable=False),
)

decisions = sa.Table(
    "decisions", metadata,
    sa.Column("decision_id", sa.String(40), primary_key=True),
    sa.Column("decided_at", sa.String(40), nullable=False, index=True),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("client_id", sa.String(64), nullable=False, index=True),
    sa.Column("degraded", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ruleset_version", sa.String(64), nullable=True),
    sa.Column("model_versions", sa.Text, nullable=False),  # JSON
    sa.Column("request", sa.Text, nullable=False),  # JSON
    sa.Column("features", sa.Text, nullable=False),  # JSON: the indicator values read
    sa.Column("rule_inputs", sa.Text, nullable=False),  # JSON: what the rules saw
    sa.Column("response", sa.Text, nullable=False),  # JSON: outputs and reasons, as returned
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(40), nullable=False, unique=True),
    sa.Column("raised_at", sa.String(40), nullable=False),
    sa.Column("client_id", sa.String(64), nullable=False, index=True),
    sa.Column("broker_id", sa.String(64), nullable=True, index=True),
    sa.Column("branch_id", sa.String(64), nullable=True, index=True),
    sa.Column("alert", sa.String(64), nullable=False),
    sa.Column("tier", sa.String(32), nullable=True),
    sa.Column("decision_id", sa.String(40), nullable=False),  # the audited evaluation that raised it
    sa.Column("event_ids", sa.Text, nullable=False),  # JSON: the client events that triggered it
    sa.Column("as_of", sa.String(40), nullable=False),
)

# What happened to an action a decision offered: one row per decision, action and status (a status sent twice is
# stored once). Beside the audit log, in the same database.
outcomes = sa.Table(
    "outcomes", metadata,
    sa.Column("decision_id", sa.String(40), primary_key=True),
    sa.Column("action", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("by", sa.String(64), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),  # when it happened (ISO, with offset)
    sa.Column("recorded_at", sa.String(40), nullable=False, index=True),  # when the API stored it (UTC ISO)
    sa.Column("key_id", sa.String(16), nullable=False),
)


def make_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 5000")
    metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """Columns added to a table after it was first created (nullable ones only) are added to an older database."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=engine.dialect)
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")
