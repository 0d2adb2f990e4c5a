"""Branches, brokers and clients of the synthetic brokerage, with the hidden traits that drive them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.synthetic.calendar import Calendar
from features.synthetic.market import INDUSTRIES

CITIES = (
    "Shanghai", "Suzhou", "Wuxi", "Changzhou", "Nanjing", "Hangzhou", "Nantong", "Ningbo", "Shanghai",
    "Suzhou", "Yangzhou", "Zhenjiang", "Jiaxing", "Shaoxing", "Shanghai", "Wuxi", "Huzhou", "Taizhou",
)
CLIENTS_PER_BROKER = 180


def client_ids(n: int) -> np.ndarray:
    """Client identifiers C0000001, C0000002, … as an object array."""
    return np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 7)).astype(object)


@dataclass
class Population:
    """Raw tables of the people, plus the hidden traits the simulation uses (and the ground truth keeps)."""

    branches: pd.DataFrame
    brokers: pd.DataFrame
    clients: pd.DataFrame
    branch_quality: np.ndarray  # [B] 0..1 service quality of each branch
    branch_city: np.ndarray  # [B] city index into the list of distinct cities
    broker_diligence: np.ndarray  # [K] 0..1
    client_branch: np.ndarray  # [N]
    client_broker: np.ndarray  # [N]
    open_day: np.ndarray  # [N] day index of account opening (<= 0 before the window)
    initial_assets: np.ndarray  # [N] yuan deposited at opening (or held at the window's start)
    commission_rate: np.ndarray  # [N]
    traits: pd.DataFrame  # hidden, one row per client
    tastes: np.ndarray  # [N, 3] favourite industry indexes (hidden)


def build_population(
    calendar: Calendar, n_clients: int, n_branches: int, rng: np.random.Generator
) -> Population:
    """Draw branches, brokers and clients with their traits."""
    cities = np.array(CITIES[:n_branches] if n_branches <= len(CITIES) else
                      [CITIES[i % len(CITIES)] for i in range(n_branches)])
    city_names = sorted(set(cities.tolist()))
    branch_city = np.array([city_names.index(c) for c in cities])
    branch_quality = np.clip(rng.beta(4, 2.5, size=n_branches), 0.05, 0.98)
    branches = pd.DataFrame(
        {
            "branch_id": [f"B{b + 1:03d}" for b in range(n_branches)],
            "name": [f"{c} branch {k + 1}" for k, c in enumerate(cities)],
            "city": cities,
            "opened_on": pd.to_datetime(
                [dt.date(1995, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 7000, n_branches)]
            ),
        }
    )

    n_brokers = max(n_branches, n_clients // CLIENTS_PER_BROKER)
    broker_branch = np.concatenate([np.arange(n_branches), rng.integers(0, n_branches, n_brokers - n_branches)])
    broker_branch.sort(kind="stable")
    broker_diligence = np.clip(rng.beta(3, 2.5, size=n_brokers) * (0.6 + 0.5 * branch_quality[broker_branch]),
                               0.02, 1.0)
    brokers = pd.DataFrame(
        {
            "broker_id": [f"K{k + 1:05d}" for k in range(n_brokers)],
            "branch_id": branches["branch_id"].to_numpy()[broker_branch],
            "hired_on": pd.to_datetime(
                [dt.date(2005, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 6500, n_brokers)]
            ),
        }
    )

    n = n_clients
    client_type = rng.choice(np.array(["individual", "broker_introduced", "institution"]), size=n,
                             p=[0.70, 0.28, 0.02])
    institution = client_type == "institution"
    # Branches differ in size; bigger branches in bigger cities.
    branch_weight = rng.dirichlet(np.full(n_branches, 3.0))
    client_branch = rng.choice(n_branches, size=n, p=branch_weight)
    # Each client is served by a broker of their branch.
    order = np.argsort(broker_branch, kind="stable")
    first = np.searchsorted(broker_branch[order], np.arange(n_branches), side="left")
    count = np.searchsorted(broker_branch[order], np.arange(n_branches), side="right") - first
    client_broker = order[first[client_branch] + (rng.random(n) * count[client_branch]).astype(np.int64)]

    window_days = len(calendar) - 1
    new_client = rng.random(n) < 0.22
    open_day = np.where(
        new_client,
        rng.integers(1, max(window_days, 2), size=n),
        -rng.integers(1, 20 * 250, size=n),
    )
    day0 = calendar.dates[0]
    opened_on = np.where(
        open_day >= 1,
        calendar.dates[np.clip(open_day, 0, window_days)],
        day0 - (-open_day * 1.45).astype("timedelta64[D]"),
    )

    # Assets: heavy-tailed; institutions far larger.
    initial_assets = np.exp(rng.normal(np.log(60_000), 1.6, size=n))
    initial_assets = np.where(institution, initial_assets * 40, initial_assets)
    initial_assets = np.round(np.clip(initial_assets, 2_000, 5e9), 2)

    # Hidden traits.
    risk_appetite = np.clip(rng.beta(2.2, 2.2, size=n) - 0.15 * institution, 0.0, 1.0)
    timing_skill = np.clip(rng.normal(0, 0.45, size=n) + 0.2 * institution, -1, 1)
    selection_skill = np.clip(rng.normal(0.1, 0.5, size=n) + 0.3 * institution, -1, 1.5)
    activity = np.exp(rng.normal(np.log(2.6), 0.75, size=n)) * np.where(institution, 4.0, 1.0)
    information_dependence = rng.beta(2, 3, size=n)
    price_sensitivity = np.clip(rng.beta(2, 3, size=n) + 0.2 * institution, 0, 1)
    service_sensitivity = rng.beta(2, 2.5, size=n)
    new_stock_affinity = rng.beta(1.2, 4, size=n)
    frailty = np.exp(rng.normal(-0.18, 0.6, size=n))
    tastes = rng.integers(0, len(INDUSTRIES), size=(n, 3))
    # Questionnaires are unreliable: noisy answers, and some clients overstate (to unlock products) or
    # understate (out of caution) by a whole level.
    misstatement = rng.choice(np.array([-1, 0, 1]), size=n, p=[0.15, 0.7, 0.15])
    stated = np.clip(np.round(1 + 4 * risk_appetite + misstatement + rng.normal(0, 0.9, size=n)), 1, 5).astype(int)
    assessed_days_ago = rng.integers(0, 4 * 365, size=n)
    risk_assessed_on = np.where(
        open_day >= 1, opened_on, np.maximum(day0 - assessed_days_ago.astype("timedelta64[D]"), opened_on)
    )

    # Commission: negotiated lower for institutions and big accounts; older accounts pay more.
    base_rate = rng.choice(np.array([0.0002, 0.00025, 0.0003, 0.0005, 0.0008]), size=n,
                           p=[0.15, 0.35, 0.25, 0.15, 0.10])
    rate = np.where(initial_assets > 1e6, np.minimum(base_rate, 0.00025), base_rate)
    rate = np.where(institution, rng.choice(np.array([0.0001, 0.00012, 0.00015, 0.0002]), size=n), rate)
    rate = np.where(new_client & ~institution, rng.choice(np.array([0.0001, 0.00015, 0.00025]), size=n), rate)

    birth_year = np.where(institution, -1, rng.integers(1945, 2004, size=n))
    # How much the client dislikes being called (0-1): most hardly mind, a few resent every extra call.
    contact_aversion = rng.beta(0.7, 2.0, size=n)
    clients = pd.DataFrame(
        {
            "client_id": client_ids(n),
            "client_type": client_type,
            "branch_id": branches["branch_id"].to_numpy()[client_branch],
            "broker_id": brokers["broker_id"].to_numpy()[client_broker],
            "opened_on": opened_on.astype("datetime64[ns]"),
            "closed_on": pd.NaT,
            "commission_rate": rate,
            "risk_level": np.array([f"C{k}" for k in stated]),
            "risk_assessed_on": risk_assessed_on.astype("datetime64[ns]"),
            "birth_year": pd.array(np.where(birth_year < 0, None, birth_year), dtype="Int64"),
        }
    )
    traits = pd.DataFrame(
        {
            "client_id": clients["client_id"],
            "risk_appetite": risk_appetite,
            "timing_skill": timing_skill,
            "selection_skill": selection_skill,
            "activity_trades_per_month": activity,
            "information_dependence": information_dependence,
            "price_sensitivity": price_sensitivity,
            "service_sensitivity": service_sensitivity,
            "new_stock_affinity": new_stock_affinity,
            "frailty": frailty,
            "contact_aversion": contact_aversion,
            "favourite_industry_1": [INDUSTRIES[i] for i in tastes[:, 0]],
            "favourite_industry_2": [INDUSTRIES[i] for i in tastes[:, 1]],
            "favourite_industry_3": [INDUSTRIES[i] for i in tastes[:, 2]],
        }
    )
    return Population(
        branches=branches,
        brokers=brokers,
        clients=clients,
        branch_quality=branch_quality,
        branch_city=branch_city,
        broker_diligence=broker_diligence,
        client_branch=client_branch,
        client_broker=client_broker,
        open_day=open_day,
        initial_assets=initial_assets,
        commission_rate=rate,
        traits=traits,
        tastes=tastes,
    )
