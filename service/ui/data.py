"""What the web pages show, computed once and kept: pages render from memory in milliseconds.

Everything expensive is keyed by what it depends on, so it is recomputed only when that changes: a ruleset
version's review (validation findings, rendered tables) by its content hash; a diff and an impact simulation by the
pair of versions and the population (offline tables and champion versions); scorecards and the per-client monthly
history by the offline tables' files. A warmer thread, started by the first page request and running while the
pages are in use, computes them ahead for every candidate awaiting approval, so a compliance officer opening a
candidate does not wait for its simulation. The API's own requests never pay for any of it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.indicators.compute import views
from features.indicators.definitions import FAMILY_ZH, Indicator
from features.scorecards import branch_rankings, broker_scorecards
from features.store.feature_store import offline_dir
from model_registry.registry import CHALLENGER, CHAMPION
from model_registry.specs import model_names
from rules.analysis import validate
from rules.diff import RulesetDiff, diff_rulesets
from rules.findings import Finding
from rules.governance import Status, VersionState
from rules.model import RulesetSpec
from rules.render import render_sections
from service.simulation import SimulationReport, load_population, simulate

log = logging.getLogger("crm.ui")
WARM_WHILE_USED_S = 600.0  # the warmer stops this long after the last page request
HISTORY_ROW_GROUP_CLIENTS = 100


class Memo:
    """A small thread-safe cache: each key is computed once even when several threads ask at the same time."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._values: OrderedDict[Any, Any] = OrderedDict()
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()

    def peek(self, key: Any) -> Any | None:
        with self._guard:
            return self._values.get(key)

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        with self._guard:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._values:
                    return self._values[key]
            value = compute()
            with self._guard:
                self._values[key] = value
                while len(self._values) > self.size:
                    self._values.popitem(last=False)
                self._locks.pop(key, None)
            return value


@dataclass(frozen=True)
class Review:
    """One ruleset version as compliance reads it."""

    spec: RulesetSpec
    findings: list[Finding]
    sections_html: str


@dataclass(frozen=True)
class Impact:
    report: SimulationReport
    seconds: float


@dataclass(frozen=True)
class Scorecards:
    as_of: str
    brokers: pd.DataFrame
    branches: pd.DataFrame
    branch_history: dict[str, dict[str, list]]  # branch id → {"months": [...], indicator: [values]}


@dataclass(frozen=True)
class IndicatorRow:
    indicator: Indicator
    latest: object
    months: list[str]
    values: list[float | None]


@dataclass(frozen=True)
class ModelCard:
    name: str
    role: str  # champion | challenger
    version: int
    aliases: tuple[str, ...]
    run_id: str
    metrics: dict[str, float]
    parity: str | None
    plots: list[str] = field(default_factory=list)
    serving: bool = False
    drift: dict[str, float] = field(default_factory=dict)  # latest `crm models drift` figures logged on the run


def _number(value: object) -> float | None:
    if value is None or isinstance(value, bool | str):
        return None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


class UiData:
    """The pages' data for one API worker, over its :class:`~service.runtime.Runtime`."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._reviews = Memo(16)
        self._diffs = Memo(16)
        self._impacts = Memo(16)
        self._snapshots = Memo(2)
        self._models = Memo(4)
        self._plots = Memo(64)
        self._last_used = time.monotonic()
        self._warmer: threading.Thread | None = None
        self._warm_lock = threading.Lock()

    # keys -------------------------------------------------------------------------------------------------

    def offline_key(self) -> tuple:
        """The offline tables' files (name, size, modification time): what scorecards and histories come from."""
        folder = offline_dir(self.settings.features_dir)
        if not folder.exists():
            return ()
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.parquet")))

    # rulesets ---------------------------------------------------------------------------------------------

    def review(self, version: str) -> Review:
        version = self.runtime.history.resolve(version)

        def compute() -> Review:
            spec = self.runtime.history.load(version)
            findings = validate(spec, self.runtime.vocabulary)
            return Review(spec, findings, render_sections(spec, findings, vocabulary=self.runtime.vocabulary))

        return self._reviews.get(version, compute)

    def diff(self, old: str, new: str) -> RulesetDiff:
        return self._diffs.get((old, new), lambda: diff_rulesets(self.review(old).spec, self.review(new).spec,
                                                                 self.runtime.vocabulary))

    def impact(self, active: str, candidate: str) -> Impact | None:
        """The candidate's impact against the active version over every client; None without champion models."""
        served = self.runtime.served
        if served is None or served.models is None:
            return None
        register = served.register
        key = (active, candidate, self.offline_key(), tuple(sorted(served.models.versions.items())),
               register.mtime if register is not None else None)

        def compute() -> Impact:
            started = time.perf_counter()
            # Not kept: every client's inputs take about 150 MB, and each candidate's report is kept instead.
            population = load_population(self.settings.features_dir, self.settings.home / "scores", served.models,
                                         self.runtime.vocabulary, register)
            report = simulate(self.runtime.ruleset_for(active), self.runtime.ruleset_for(candidate), population,
                              self.runtime.vocabulary.products, self.settings.max_actions)
            return Impact(report, time.perf_counter() - started)

        return self._impacts.get(key, compute)

    def impact_if_ready(self, active: str, candidate: str) -> tuple[Impact | None, bool]:
        """(the impact, False) when it is known or cannot be computed; (None, True) while it is being computed —
        started here in the background if nothing computes it yet, so the page need not wait."""
        served = self.runtime.served
        if served is None or served.models is None:
            return None, False
        register = served.register
        key = (active, candidate, self.offline_key(), tuple(sorted(served.models.versions.items())),
               register.mtime if register is not None else None)
        found = self._impacts.peek(key)
        if found is not None:
            return found, False
        threading.Thread(target=self._impact_quietly, args=(active, candidate), name="ui-impact", daemon=True).start()
        return None, True

    def _impact_quietly(self, active: str, candidate: str) -> None:
        try:
            self.impact(active, candidate)
        except Exception as e:  # noqa: BLE001 - a boundary: the impact fragment computes (and reports) it again
            log.warning("web pages: impact of %s not computed: %s", candidate[:12], e)

    def pending(self) -> list[VersionState]:
        return [s for s in self.runtime.history.states() if s.status == Status.SUBMITTED]

    # managers ---------------------------------------------------------------------------------------------

    def scorecards(self) -> Scorecards:
        def compute() -> Scorecards:
            offline = offline_dir(self.settings.features_dir)
            from service.loop_figures import LOOP_FILE, write_broker_loop

            write_broker_loop(self.settings.home, self.settings.raw_dir, offline, self.runtime.db)
            brokers = broker_scorecards(offline, self.settings.raw_dir, self.settings.home / LOOP_FILE)
            branches = branch_rankings(offline, self.settings.raw_dir)
            history = pd.read_parquet(offline / "branch.parquet",
                                      columns=["branch_id", "as_of", "branch_assets", "branch_clients",
                                               "branch_market_share_30d"]).sort_values(["branch_id", "as_of"])
            by_branch = {}
            for branch_id, rows in history.groupby("branch_id", sort=False):
                by_branch[str(branch_id)] = {"months": [str(d)[:7] for d in rows["as_of"]],
                                             **{c: rows[c].tolist() for c in ("branch_assets", "branch_clients",
                                                                              "branch_market_share_30d")}}
            as_of = str(branches["as_of"].iloc[0]) if len(branches) else "n/a"
            return Scorecards(as_of, brokers, branches, by_branch)

        # The loop's figures move with every outcome: recomputed at most once a minute.
        return self._snapshots.get(("scorecards", self.offline_key(), int(time.time() // 60)), compute)

    # clients ----------------------------------------------------------------------------------------------

    def _history_file(self) -> Path:
        """Every client's monthly indicators in one parquet file sorted by client, in row groups of a hundred
        clients, so that one client's history is one small read (the offline tables hold one row group each)."""
        key = self.offline_key()

        def compute() -> Path:
            import hashlib

            import pyarrow as pa
            import pyarrow.parquet as pq

            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
            folder = self.settings.home / "ui-cache"
            path = folder / f"client-history-{digest}.parquet"
            if path.exists():
                return path
            offline = offline_dir(self.settings.features_dir)
            joined = None
            for view in views():
                if view.entity != "client":
                    continue
                table = pq.read_table(offline / f"{view.name}.parquet",
                                      columns=["client_id", "as_of", *(i.name for i in view.indicators)])
                joined = table if joined is None else joined.join(table, ["client_id", "as_of"], join_type="full outer")
            assert joined is not None
            joined = joined.sort_by([("client_id", "ascending"), ("as_of", "ascending")])
            months = max(1, len(pa.compute.unique(joined["as_of"])))
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{path.name}.{threading.get_ident()}.tmp"
            pq.write_table(joined, tmp, row_group_size=HISTORY_ROW_GROUP_CLIENTS * months)
            tmp.replace(path)
            for old in folder.glob("client-history-*.parquet"):
                if old != path:
                    old.unlink(missing_ok=True)
            return path

        return self._snapshots.get(("history", key), compute)

    def client_history(self, client_id: str) -> dict[str, list[IndicatorRow]]:
        """The client's indicators by family (client families, catalog order): latest value and monthly values."""
        import pyarrow.parquet as pq

        frame = pq.read_table(self._history_file(), filters=[("client_id", "==", client_id)]).to_pandas()
        if frame.empty:
            return {}
        frame = frame.sort_values("as_of")
        months = [str(d)[:7] for d in frame["as_of"]]
        out: dict[str, list[IndicatorRow]] = {}
        for view in views():
            if view.entity != "client":
                continue
            rows = []
            for ind in view.indicators:
                column = frame[ind.name].tolist() if ind.name in frame else []
                latest = column[-1] if column else None
                values = [_number(v) for v in column] if ind.type in ("float64", "int64") else []
                rows.append(IndicatorRow(ind, latest, months, values))
            out[f"{view.family.value}|{FAMILY_ZH[view.family]}"] = rows
        return out

    # models -----------------------------------------------------------------------------------------------

    def models(self) -> list[ModelCard]:
        """Champion and challenger of each model, with key metrics and their plot files (kept for 10 s)."""
        bucket = int(time.monotonic() // max(self.settings.reload_interval_s, 1.0))

        def compute() -> list[ModelCard]:
            registry = self.runtime.registry
            served = self.runtime.served
            serving = served.model_versions if served is not None and served.model_versions else {}
            cards = []
            for name in model_names():
                for v in registry.versions(name):
                    for role in (CHAMPION, CHALLENGER):
                        if role in v.aliases:
                            metrics = {k: m for k, m in v.metrics.items() if k.startswith("test_")}
                            cards.append(ModelCard(name, role, v.version, v.aliases, v.run_id, metrics,
                                                   v.tags.get("onnx_parity_max_abs_diff"),
                                                   self._plot_names(v.run_id, bucket),
                                                   serving.get(name) == v.version, self._drift(v.run_id)))
            order = {n: i for i, n in enumerate(model_names())}
            return sorted(cards, key=lambda c: (order[c.name], c.role != CHAMPION))

        return self._models.get(bucket, compute)

    def _drift(self, run_id: str) -> dict[str, float]:
        """The latest drift figures `crm models drift` logged on a model's run (none before the first report)."""
        try:
            logged = self.runtime.registry.client.get_run(run_id).data.metrics
        except Exception as e:  # noqa: BLE001 - a boundary: a run that cannot be read shows no drift
            log.warning("drift of run %s not read: %s", run_id, e)
            return {}
        return {k.removeprefix("drift_"): v for k, v in logged.items() if k.startswith("drift_")}

    def _plot_names(self, run_id: str, bucket: int = 0) -> list[str]:
        def compute() -> list[str]:
            try:
                found = self.runtime.registry.client.list_artifacts(run_id, "plots")
            except Exception as e:  # noqa: BLE001 - a boundary: a run without plots shows none
                log.warning("plots of run %s not listed: %s", run_id, e)
                return []
            return sorted(Path(a.path).name for a in found if a.path.endswith(".png"))

        # Training plots never change, but `crm models drift` adds and replaces its chart: list again per interval.
        return self._plots.get(("names", run_id, bucket), compute)

    def plot(self, run_id: str, name: str) -> bytes | None:
        """One evaluation plot's PNG (training plots are kept once read; the drift chart for one interval)."""
        bucket = int(time.monotonic() // max(self.settings.reload_interval_s, 1.0))
        if name not in self._plot_names(run_id, bucket):
            return None

        def compute() -> bytes:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="crm-ui-plot-") as folder:
                path = self.runtime.registry.mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=f"plots/{name}", dst_path=folder)
                return Path(path).read_bytes()

        return self._plots.get(("png", run_id, name, bucket if name.startswith("drift_") else 0), compute)

    # warming ----------------------------------------------------------------------------------------------

    def used(self) -> None:
        """Note a page request; start the warmer if it is not running."""
        self._last_used = time.monotonic()
        with self._warm_lock:
            if self._warmer is None or not self._warmer.is_alive():
                self._warmer = threading.Thread(target=self._warm, name="ui-warmer", daemon=True)
                self._warmer.start()

    def warm_once(self) -> None:
        steps: list[tuple[str, Callable[[], object]]] = [
            ("scorecards", self.scorecards), ("client history", self._history_file), ("models", self.models)]
        active = self.runtime.history.active_version()
        for state in self.pending():
            steps.append((f"review {state.version[:12]}", lambda v=state.version: self.review(v)))
            if active is not None:
                steps.append((f"diff {state.version[:12]}", lambda v=state.version: self.diff(active, v)))
                steps.append((f"impact {state.version[:12]}", lambda v=state.version: self.impact(active, v)))
        if active is not None:
            steps.append(("review active", lambda: self.review(active)))
        for what, step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - a boundary: a page computes (and reports) it when asked
                log.warning("web pages: %s not precomputed: %s", what, e)

    def _warm(self) -> None:
        while time.monotonic() - self._last_used < WARM_WHILE_USED_S:
            try:
                self.warm_once()
            except Exception as e:  # noqa: BLE001 - a boundary: never let the warmer die on a bad moment
                log.warning("web pages: warming failed: %s", e)
            time.sleep(max(self.settings.reload_interval_s, 1.0))
