"""Where the indicator system computes: DuckDB in process (default) or Spark (`local[N]` or a cluster master URL).

The same Ibis definitions run on both. This module owns the Spark session: its configuration is shared by the
indicator computation, Feast's Spark offline store and batch scoring, so that they all see the same semantics.
"""

from __future__ import annotations

import re
from typing import Literal

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[Engine, ...] = ("duckdb", "spark")
DEFAULT_SPARK_MASTER = "local[2]"
# On a local master the driver JVM is the whole of Spark, and Feast collects training sets through it: Spark's
# default 1 GB heap runs out on a 10,000-client training set. A cluster's deployment (spark-defaults.conf) decides
# its own.
LOCAL_DRIVER_MEMORY = "4g"


class SparkUnavailableError(Exception):
    """Spark could not start (no Java, no PySpark, or an unreachable master)."""

    code = "spark_unavailable"

    def __init__(self, master: str, cause: BaseException) -> None:
        super().__init__(
            f"Spark could not start with master {master!r}: {str(cause).rstrip('.')}. Spark needs Java 17 "
            "(`java -version`; on Debian `apt-get install openjdk-17-jre-headless`) and, for a cluster, a reachable "
            "master URL; or set CRM_COMPUTE_ENGINE=duckdb.")
        self.master = master


def spark_conf(master: str = DEFAULT_SPARK_MASTER) -> dict[str, str]:
    """The Spark configuration of every Spark step (indicators, Feast's offline store, batch scoring)."""
    conf = {
        "spark.master": master,
        "spark.app.name": "brokerage-crm",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Dates are calendar dates and Feast's timestamps are instants: no session time zone may shift them.
        "spark.sql.session.timeZone": "UTC",
        # DuckDB's semantics, which the definitions were written for: a statistic of a constant series (the
        # correlation of a client who only bought) is NULL rather than an error that kills the whole job.
        "spark.sql.ansi.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Parquet written by Spark (Feast's staging, batch scoring's chunks) keeps instants as UTC timestamps
        # that pyarrow reads time-zone-aware, not as the legacy INT96.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    local = re.fullmatch(r"local\[(\d+)\]", master)
    if local:
        # The default 200 shuffle partitions cost more in scheduling than a single machine gains.
        conf["spark.sql.shuffle.partitions"] = str(2 * int(local.group(1)))
        conf["spark.driver.memory"] = LOCAL_DRIVER_MEMORY
    return conf


def spark_session(master: str = DEFAULT_SPARK_MASTER):
    """The process's Spark session (created on first use, then shared), configured by :func:`spark_conf`."""
    try:
        from pyspark.sql import SparkSession

        builder = SparkSession.builder
        for key, value in spark_conf(master).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
    except Exception as error:  # PySpark reports a missing JVM or master with several exception types
        raise SparkUnavailableError(master, error) from error
    session.sparkContext.setLogLevel("ERROR")
    # Feast's Spark store turns this on for its own SQL; Ibis's SQL quotes every name and needs it off.
    session.conf.set("spark.sql.parser.quotedRegexColumnNames", "false")
    return session
