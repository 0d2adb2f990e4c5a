"""Impact simulation: the active and a candidate ruleset evaluated over the whole client population.

Inputs are every client's current indicators (the latest as-of date of the offline tables, which is what the
online store serves), the champion models' scores and the register of departures (lifecycle stages as the API
gives them). Scores do not depend on the rules, so they are computed
once per (features, model versions) and kept in ``CRM_HOME/scores``; only the rules run twice.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.store.feature_store import latest_frame, offline_dir
from rules.engine import Ruleset
from rules.vocabulary import Vocabulary
from service.arbitration import Arbiter
from service.collector import collector_paused
from service.experiments import CHAMPION
from service.lifecycle import Register
from service.rule_inputs import client_inputs, decision_references, population_inputs
from service.scoring import Models

SAMPLES_PER_CHANGE = 5
SCORES_FORMAT = 2  # raise when the way scores are computed changes, so cached population scores are redone


@dataclass
class Population:
    """Every client's rule inputs at one as-of date."""

    client_ids: list[str]
    inputs: list[dict]
    as_of: str
    model_versions: dict[str, int]
    seconds_features: float = 0.0
    seconds_scores: float = 0.0
    scores_cached: bool = False


def _fingerprint(features_dir: Path, versions: dict[str, int]) -> str:
    parts = [f"scores-v{SCORES_FORMAT}", *(f"{k}={v}" for k, v in sorted(versions.items()))]
    for path in sorted(offline_dir(features_dir).glob("*.parquet")):
        stat = path.stat()
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def load_population(features_dir: Path, scores_dir: Path, models: Models, vocabulary: Vocabulary,
                    register: Register | None = None) -> Population:
    """Current indicators and champion scores for every client; scores are reused while nothing changed.

    Lifecycle stages come from the register of departures as in the API (a client who left keeps the cause it
    left for), and a closed account, which has no indicators any more, is in the population as the API decides
    it: lost, from the register alone."""
    started = time.perf_counter()
    frame = latest_frame(features_dir, decision_references(models.references, vocabulary))
    read = time.perf_counter()
    cache = scores_dir / f"population-{frame.attrs['as_of']}-{_fingerprint(features_dir, models.versions)}.parquet"
    cached = cache.exists()
    if cached:
        scores = pd.read_parquet(cache)
    else:
        scores = models.score_frame(frame)
        scores_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        scores.to_parquet(tmp)
        tmp.replace(cache)
    scored = time.perf_counter()
    with collector_paused():
        inputs = population_inputs(vocabulary, frame, scores.loc[frame.index], register)
    client_ids = list(frame.index)
    if register is not None:
        for client_id, departure in register.closed_beyond(client_ids):
            client_ids.append(client_id)
            inputs.append(client_inputs(vocabulary, None, None, departure))
    return Population(client_ids, inputs, str(frame.attrs["as_of"]), models.versions,
                      seconds_features=read - started + (time.perf_counter() - scored),
                      seconds_scores=scored - read, scores_cached=cached)


@dataclass
class SimulationReport:
    """What a candidate would change for the population, against the active ruleset."""

    active_version: str
    candidate_version: str
    as_of: str
    clients: int
    model_versions: dict[str, int]
    tiers: list[str]
    tier_migration: dict[str, dict[str, int]]  # active tier → candidate tier → clients
    package_migration: dict[str, dict[str, int]]
    actions: dict[str, dict[str, int]]  # action → {"active": n, "candidate": m}
    alerts: dict[str, dict[str, int]]
    clients_changed: int
    samples: dict[str, list[str]]  # change → up to five client ids
    seconds: dict[str, float] = field(default_factory=dict)
    # Next best actions after arbitration (champion arm, no contact history): action → {"active", "candidate"},
    # and what delivering them all would cost, yuan.
    next_best_actions: dict[str, dict[str, int]] = field(default_factory=dict)
    next_best_cost_yuan: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _order(values: set, preferred: list[str]) -> list[str]:
    return [v for v in preferred if v in values] + sorted(str(v) for v in values if v not in preferred)


def _arbiter(ruleset: Ruleset, products: dict[str, int], max_actions: int) -> Arbiter | None:
    catalogue = ruleset.spec.catalogue
    return Arbiter(catalogue, products, max_actions) if catalogue is not None else None


def simulate(active: Ruleset, candidate: Ruleset, population: Population, products: dict[str, int] | None = None,
             max_actions: int = 3) -> SimulationReport:
    """Evaluate both rulesets for every client and count what moves."""
    started = time.perf_counter()
    arbiters = {"active": _arbiter(active, products or {}, max_actions),
                "candidate": _arbiter(candidate, products or {}, max_actions)}
    best: dict[str, Counter] = {"active": Counter(), "candidate": Counter()}
    cost = {"active": 0.0, "candidate": 0.0}
    today = datetime.date.today()
    if population.inputs:
        active.check_inputs(population.inputs[0])
        candidate.check_inputs(population.inputs[0])
    tiers: Counter = Counter()
    packages: Counter = Counter()
    actions: dict[str, Counter] = {"active": Counter(), "candidate": Counter()}
    alerts: dict[str, Counter] = {"active": Counter(), "candidate": Counter()}
    samples: dict[str, list[str]] = defaultdict(list)
    changed = 0

    def sample(change: str, client: str) -> None:
        if len(samples[change]) < SAMPLES_PER_CHANGE:
            samples[change].append(client)

    with collector_paused():
        for client, values in zip(population.client_ids, population.inputs, strict=True):
            a = active.evaluate(values, check=False)
            c = candidate.evaluate(values, check=False)
            tiers[(a.tier, c.tier)] += 1
            packages[(a.package, c.package)] += 1
            actions["active"].update(a.actions)
            actions["candidate"].update(c.actions)
            alerts["active"].update(a.alerts)
            alerts["candidate"].update(c.alerts)
            for side, decided in (("active", a), ("candidate", c)):
                arbiter = arbiters[side]
                if arbiter is not None:
                    chosen, _ = arbiter.arbitrate(decided.actions, values, CHAMPION, [], today)
                    best[side].update(x["action"] for x in chosen)
                    cost[side] += sum(x["score"]["cost_yuan"] for x in chosen)
            if (a.tier, a.package, a.actions, a.alerts) == (c.tier, c.package, c.actions, c.alerts):
                continue
            changed += 1
            if a.tier != c.tier:
                sample(f"tier {a.tier} → {c.tier}", client)
            if a.package != c.package:
                sample(f"package {a.package} → {c.package}", client)
            for kind, old, new in (("action", a.actions, c.actions), ("alert", a.alerts, c.alerts)):
                for v in set(new) - set(old):
                    sample(f"{kind} {v} added", client)
                for v in set(old) - set(new):
                    sample(f"{kind} {v} removed", client)
    evaluated = time.perf_counter() - started

    def tier_values(ruleset: Ruleset) -> list[str]:
        table, output = ruleset.spec.decision.tier.split(".", 1)
        spec = next(o for o in ruleset.spec.table(table).outputs if o.name == output)
        return list(spec.values or [])

    tier_order = _order({t for pair in tiers for t in pair},
                        list(dict.fromkeys(tier_values(active) + tier_values(candidate))))
    package_order = _order({p for pair in packages for p in pair}, [])

    def matrix(counts: Counter, order: list[str]) -> dict[str, dict[str, int]]:
        return {str(f): {str(t): counts.get((f, t), 0) for t in order} for f in order}

    def counted(both: dict[str, Counter]) -> dict[str, dict[str, int]]:
        keys = sorted(set(both["active"]) | set(both["candidate"]))
        return {k: {"active": both["active"][k], "candidate": both["candidate"][k]} for k in keys}

    return SimulationReport(
        active_version=active.version, candidate_version=candidate.version, as_of=population.as_of,
        clients=len(population.client_ids), model_versions=population.model_versions, tiers=tier_order,
        tier_migration=matrix(tiers, tier_order), package_migration=matrix(packages, package_order),
        actions=counted(actions), alerts=counted(alerts), clients_changed=changed, samples=dict(samples),
        next_best_actions=counted(best), next_best_cost_yuan={k: round(v, 2) for k, v in cost.items()},
        seconds={"features": round(population.seconds_features, 3), "scores": round(population.seconds_scores, 3),
                 "rules": round(evaluated, 3)})


def chart(report: SimulationReport, path: Path) -> Path:
    """One PNG: the tier migration matrix and the action and alert counts, active against candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5), gridspec_kw={"width_ratios": [1, 1.3, 1.3]})
    tiers = report.tiers
    grid = np.array([[report.tier_migration[f][t] for t in tiers] for f in tiers])
    ax = axes[0]
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(tiers)), tiers, rotation=30)
    ax.set_yticks(range(len(tiers)), tiers)
    ax.set_xlabel(f"candidate {report.candidate_version[:12]}")
    ax.set_ylabel(f"active {report.active_version[:12]}")
    ax.set_title(f"Tier migration ({report.clients:,} clients)")
    for i in range(len(tiers)):
        for j in range(len(tiers)):
            ax.text(j, i, f"{grid[i, j]:,}", ha="center", va="center",
                    color="white" if grid[i, j] > grid.max() / 2 else "black", fontsize=9)
    for ax, (title, counts) in zip(axes[1:], (("Actions", report.actions), ("Alerts", report.alerts)), strict=True):
        names = list(counts)
        y = np.arange(len(names))
        ax.barh(y - 0.2, [counts[n]["active"] for n in names], height=0.4, label="active")
        ax.barh(y + 0.2, [counts[n]["candidate"] for n in names], height=0.4, label="candidate")
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{title} (clients)")
        ax.legend(loc="lower right")
    fig.suptitle(f"Impact of ruleset {report.candidate_version[:12]} against {report.active_version[:12]} "
                 f"(features as of {report.as_of})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
