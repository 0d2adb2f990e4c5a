"""The closed loop: the engine decides, the synthetic world delivers and responds, month by month, once per policy.

The world is simulated to the end of its history once; every policy continues from a copy of that paused state
(the same clients, the same random numbers: a client no policy touches lives the same life under all of them, so
the differences between policies are the actions' doing, without noise). Each month-end the engine reads the raw
tables the world produced, computes the indicators of that date alone, decides every client that can be kept and
fills each broker's queue for the next month; the world reaches clients with its own probabilities and responds.

Policies: ``none`` (no action), ``random`` (a random eligible action per client, random clients within each
broker's capacity), ``rules`` (the active rules' actions ranked by the catalogue's priors), ``uplift`` (every
retention action ranked with the uplift model's effect) and ``oracle`` (the same with the world's true effect).
All of them go through the same arbitration (catalogue, contact policy, one action per client a month) and the
same capacity: N actions per broker per month.

Net gain over ``none`` = the assets the clients active at the start still hold at the end, less those under
``none``, less the cost of the actions delivered (the world's cost of each attempt).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from closed_loop.engine import POLICIES, Engine, MonthView, observe, plan_month
from closed_loop.world import LoopWorld, Outcome
from config import Settings
from features.raw.schema import RETENTION_ACTIONS
from features.synthetic.world import WORLD_MANIFEST, WorldConfig

# What `crm demo` runs: every policy for one month at this many actions per broker a month.
DEMO_MONTHS = 1
DEMO_CAPACITY = 20


class LoopError(ValueError):
    """A closed loop that cannot run as asked, with what to do about it."""

    code = "closed_loop_invalid"


@dataclass
class LoopRun:
    """A closed loop's result: per policy what happened, and how long each part took."""

    months: int
    capacity: int
    world: dict
    outcomes: dict[str, Outcome]
    seconds: dict[str, float] = field(default_factory=dict)
    # Each policy's planned actions, month by month (client, broker, action, channel, priority, day, decided_on).
    plans: dict[str, pd.DataFrame] = field(default_factory=dict)

    def as_json(self) -> dict:
        """The result as `crm simulate policies --json` prints it."""
        none = self.outcomes.get("none")
        policies = {}
        for name, o in self.outcomes.items():
            gain = None if none is None else round((o.assets_kept_yuan - none.assets_kept_yuan)
                                                   - (o.cost_yuan - none.cost_yuan), 2)
            policies[name] = {"clients_lost": o.clients_lost, "assets_kept_yuan": o.assets_kept_yuan,
                              "actions_delivered": o.actions_delivered, "cost_yuan": o.cost_yuan,
                              "net_gain_vs_none_yuan": gain}

        def share(name: str) -> float | None:
            oracle = policies.get("oracle", {}).get("net_gain_vs_none_yuan")
            gain = policies.get(name, {}).get("net_gain_vs_none_yuan")
            if oracle is None or gain is None or oracle <= 0:
                return None
            return round(gain / oracle, 4)

        return {"months": self.months, "capacity": self.capacity, "policies": policies,
                "uplift_share_of_oracle": share("uplift"), "rules_share_of_oracle": share("rules")}


def world_config(raw_dir: Path, months: int) -> tuple[WorldConfig, int]:
    """The loop's world: the data's generated world (clients, seed, start, organisation) with ``months`` more."""
    path = Path(raw_dir) / WORLD_MANIFEST
    if not path.exists():
        raise LoopError(f"no synthetic world at {raw_dir} ({WORLD_MANIFEST} missing): the closed loop continues a "
                        "generated world; run `crm data generate` (or `crm demo`) first")
    manifest = json.loads(path.read_text())
    known = set(WorldConfig.model_fields)
    values = {k: v for k, v in manifest.items() if k in known}
    history = int(values["months"])
    values.update(months=history + months, uplift_months=0)
    return WorldConfig(**values), history


def run_loop(settings: Settings, engine: Engine, months: int, capacity: int,
             policies: tuple[str, ...] = POLICIES, progress: Callable[[str], None] = lambda _: None,
             folder: Path | None = None) -> LoopRun:
    """Run the world forward ``months`` months once per policy with the engine deciding at each month-end; the
    loop's raw tables and indicators go to ``folder`` (default ``CRM_HOME/closed-loop``), replaced at each run."""
    if months < 1:
        raise LoopError("the loop needs at least one month (--months 1 or more)")
    if capacity < 0:
        raise LoopError("the capacity is a number of actions per broker per month, 0 or more")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise LoopError(f"unknown policy(ies) {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    config, history = world_config(settings.raw_dir, months)
    parent = Path(folder or settings.home / "closed-loop")
    for previous in parent.glob("world-*"):  # one loop's state at a time: a world is a few hundred MB
        shutil.rmtree(previous)
    folder = parent / f"world-{config.world_id}"
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    progress(f"simulating the history: {config.clients:,} clients × {history} months (seed {config.seed})")
    world = LoopWorld(config, history, folder)
    world.run_history()
    seconds["history"] = round(time.perf_counter() - started, 2)
    brokers = world.broker_of_clients()
    # The first month-end is the same for every policy: observed once.
    t0 = time.perf_counter()
    first = _observe(engine, world, folder / world.branch / "features")
    seconds["features_and_scores"] = round(time.perf_counter() - t0, 2)
    outcomes: dict[str, Outcome] = {}
    plans: dict[str, pd.DataFrame] = {}
    for policy in policies:
        t0 = time.perf_counter()
        branch = world.fork(policy)
        rng = np.random.default_rng([config.seed, POLICIES.index(policy)])
        decided = []
        for month in range(months):
            view = first if month == 0 else (None if policy == "none" else
                                             _observe(engine, branch, folder / policy / "features"))
            plan = pd.DataFrame(columns=["client_id", "action", "channel", "day"])
            if policy != "none" and view is not None:
                true = _true_uplift(engine, branch, view) if policy == "oracle" else None
                plan = plan_month(policy, engine, view, brokers, capacity, branch.trading_days_next_month(), rng,
                                  true_uplift=true)
            decided.append(plan.assign(decided_on=branch.month_end()))
            branch.deliver_next_month(plan)
            progress(f"{policy}: month {month + 1} of {months} ({branch.today}), {len(plan):,} actions planned")
        outcomes[policy] = branch.outcome()
        plans[policy] = pd.concat(decided, ignore_index=True)
        seconds[policy] = round(time.perf_counter() - t0, 2)
    seconds["total"] = round(time.perf_counter() - started, 2)
    world_info = {"clients": config.clients, "seed": config.seed, "history_months": history,
                  "loop_from": str(world.today), "brokers": int(brokers.nunique()), "folder": str(folder)}
    return LoopRun(months, capacity, world_info, outcomes, seconds, plans)


def _observe(engine: Engine, world: LoopWorld, work: Path) -> MonthView:
    raw, rows = world.write_raw()
    return observe(engine, raw, rows, world.month_end(), work)


def _true_uplift(engine: Engine, world: LoopWorld, view: MonthView) -> pd.DataFrame:
    """The world's true effect of each retention action on each client the engine decides (the oracle's)."""
    clients = view.frame.index.to_numpy()[view.active]
    actions = [a for a in RETENTION_ACTIONS if a in engine.arbiter.terms]
    return pd.DataFrame({a: world.true_uplift(clients, a, engine.channel(a)) for a in actions}, index=clients)


def summary_line(run: LoopRun) -> str:
    """One line of the result, for `crm demo`."""
    result = run.as_json()
    gains = {p: v["net_gain_vs_none_yuan"] for p, v in result["policies"].items() if p != "none"}
    shares = []
    if result["uplift_share_of_oracle"] is not None:
        shares.append(f"uplift {result['uplift_share_of_oracle']:.0%} of the oracle's net gain")
    if result["rules_share_of_oracle"] is not None:
        shares.append(f"rules {result['rules_share_of_oracle']:.0%}")
    gains_text = ", ".join(f"{p} {g / 1e6:+.2f}M" for p, g in gains.items() if g is not None)
    return (f"closed loop, {run.world['clients']:,} clients, {run.months} month(s), {run.capacity} actions per "
            f"broker a month: net gain vs no action (yuan) {gains_text}; {'; '.join(shares)} "
            f"({run.seconds.get('total', 0):.0f} s)")


def record(run: LoopRun) -> dict:
    return {"result": run.as_json(), "world": run.world, "seconds": run.seconds,
            "outcomes": {k: asdict(v) for k, v in run.outcomes.items()}}
