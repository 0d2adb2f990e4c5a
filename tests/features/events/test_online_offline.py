"""One truth with the batch: after random events are applied online and the indicators rebuilt with them, every
fresh indicator of every touched client has the same value offline as it had online."""

from __future__ import annotations

import datetime as dt
import math
import random

import pandas as pd
import pyarrow.parquet as pq

from config import Settings
from features.events.apply import FRESH_VIEWS, EventApplier
from features.events.batch import events_raw_dir, export_event_tables, latest_event_date
from features.events.contract import parse_event
from features.events.fresh import FRESH_INDICATORS
from features.events.journal import Journal
from features.indicators.compute import compute_indicators, view_path
from features.raw.store import read_table
from features.store.feature_store import latest_as_of, offline_dir, open_store
from features.store.online_writer import OnlineWriter


def random_events(settings: Settings, count: int, clients: int, seed: int) -> list[dict]:
    """Random transfers, trades, contacts and complaints (filed and resolved) of a few open clients, dated up to
    40 days after the batch's as-of date and back to a year and more before it, in random order."""
    rng = random.Random(seed)
    latest = latest_as_of(settings.features_dir)
    people = read_table(settings.raw_dir, "clients")
    people = people[people["closed_on"].isna()].sample(clients, random_state=seed)
    securities = list(read_table(settings.raw_dir, "securities")["security_id"])
    complaints = read_table(settings.raw_dir, "complaints")
    base_open = complaints[complaints["resolved_on"].isna() & complaints["client_id"].isin(people["client_id"])]
    next_id = 10**9
    filed: list[tuple[str, int, dt.date]] = []
    events: list[dict] = []
    for k in range(count):
        person = people.iloc[rng.randrange(len(people))]
        day = latest + dt.timedelta(days=rng.randint(-400, 40))
        next_id += 1
        kind = rng.choices(["cash_transfer", "trade", "contact", "complaint_filed", "complaint_resolved"],
                           [40, 35, 15, 5, 5])[0]
        common = {"event_id": f"ev-{seed}-{k}", "kind": kind, "client_id": person.client_id}
        if kind == "cash_transfer":
            amount = rng.choice([rng.uniform(100, 40_000), rng.uniform(50_000, 300_000)])
            events.append({**common, "transfer_id": next_id, "transfer_date": day.isoformat(),
                           "direction": rng.choice(["in", "out"]), "amount": round(amount, 2)})
        elif kind == "trade":
            quantity, price = rng.randint(1, 50) * 100, round(rng.uniform(3, 80), 2)
            amount = round(quantity * price, 2)
            side = rng.choice(["buy", "sell"])
            events.append({**common, "trade_id": next_id, "security_id": rng.choice(securities),
                           "trade_date": day.isoformat(), "side": side, "quantity": quantity, "price": price,
                           "amount": amount, "commission": round(max(5.0, amount * 0.0003), 2),
                           "stamp_duty": round(amount * 0.0005, 2) if side == "sell" else 0.0})
        elif kind == "contact":
            events.append({**common, "contact_id": next_id, "broker_id": person.broker_id,
                           "contact_date": day.isoformat(), "channel": rng.choice(["phone", "wechat", "visit", "sms"]),
                           "outcome": rng.choice(["reached", "no_answer", "interested", "declined"])})
        elif kind == "complaint_filed":
            events.append({**common, "complaint_id": next_id, "branch_id": person.branch_id,
                           "filed_on": day.isoformat(),
                           "category": rng.choice(["service", "fees", "system", "advice"])})
            filed.append((person.client_id, next_id, day))
        else:
            pool = [(c, i, d) for c, i, d in filed] + [(r.client_id, int(r.complaint_id), r.filed_on.date())
                                                       for r in base_open.itertuples()]
            if not pool:
                continue
            client_id, complaint_id, filed_on = rng.choice(pool)
            resolved = min(filed_on + dt.timedelta(days=rng.randint(0, 30)), latest + dt.timedelta(days=40))
            events.append({"event_id": f"ev-{seed}-{k}", "kind": kind, "client_id": client_id,
                           "complaint_id": complaint_id, "resolved_on": resolved.isoformat()})
    return events


def test_online_values_equal_the_rebuilt_offline_values_indicator_by_indicator(event_world: Settings) -> None:
    settings = event_world
    documents = random_events(settings, count=3_000, clients=60, seed=1)
    journal = Journal(settings.events_dir)
    writer = OnlineWriter(open_store(settings.features_dir), FRESH_VIEWS)
    applier = EventApplier(journal, settings.raw_dir, writer, latest_as_of(settings.features_dir))
    rng = random.Random(2)
    stored = writer.read(sorted({d["client_id"] for d in documents}))
    position = 0
    while position < len(documents):  # batches of random sizes, each applied before the next arrives
        size = rng.randint(1, 400)
        journal.append([parse_event(d) for d in documents[position:position + size]], "test")
        position += size
        while applier.apply_once(limit=rng.randint(50, 1000)) is not None:
            pass
    assert journal.backlog() == 0
    touched = sorted({d["client_id"] for d in documents})
    online = writer.read(touched)
    assert set(online) == set(touched)
    # Only the fresh indicators are written: the rest of each view's row is kept as the batch stored it.
    for client in touched:
        for view in FRESH_VIEWS:
            kept = set(online[client][view]) - set(FRESH_INDICATORS[view])
            assert kept and {n: repr(online[client][view][n]) for n in kept} == {n: repr(stored[client][view][n])
                                                                            for n in kept}  # repr: NaN == NaN

    merged = export_event_tables(settings.events_dir, settings.raw_dir)
    for kind, name in (("cash_transfer", "cash_transfers"), ("trade", "trades"), ("contact", "contacts")):
        assert merged[name] == sum(1 for d in documents if d["kind"] == kind)
    compute_indicators(settings.raw_dir, offline_dir(settings.features_dir),
                       events_raw_dir=events_raw_dir(settings.events_dir),
                       latest_at_least=latest_event_date(settings.events_dir))
    latest = latest_as_of(settings.features_dir)
    assert latest == applier.as_of()
    compared = 0
    for view in FRESH_VIEWS:
        table = pq.read_table(view_path(offline_dir(settings.features_dir), view),
                              filters=[("as_of", "==", latest)]).to_pandas().set_index("client_id")
        for client in touched:
            for name in FRESH_INDICATORS[view]:
                offline, live = table.at[client, name], online[client][view][name]
                if isinstance(live, float):
                    assert math.isclose(offline, live, rel_tol=1e-9, abs_tol=1e-9), (client, name, offline, live)
                else:
                    assert offline == live, (client, name, offline, live)
                compared += 1
    assert compared == len(touched) * sum(len(v) for v in FRESH_INDICATORS.values())


def test_an_event_id_seen_before_is_applied_once(event_world: Settings) -> None:
    settings = event_world
    journal = Journal(settings.events_dir)
    writer = OnlineWriter(open_store(settings.features_dir), FRESH_VIEWS)
    latest = latest_as_of(settings.features_dir)
    applier = EventApplier(journal, settings.raw_dir, writer, latest)
    client = read_table(settings.raw_dir, "clients").query("closed_on.isna()").client_id.iloc[0]
    before = writer.read([client])[client]["client_flow"]["inflow_30d"]
    event = parse_event({"event_id": "dup-1", "kind": "cash_transfer", "transfer_id": 10**9, "client_id": client,
                         "transfer_date": latest.isoformat(), "direction": "in", "amount": 1234.5})
    first = journal.append([event, event], "test")
    again = journal.append([event], "test")
    assert (first.accepted, first.duplicates) == (["dup-1"], ["dup-1"])
    assert (again.accepted, again.duplicates) == ([], ["dup-1"])
    assert again.last_seq == first.last_seq
    while applier.apply_once() is not None:
        pass
    after = writer.read([client])[client]["client_flow"]["inflow_30d"]
    assert math.isclose(after - before, 1234.5)
    assert pd.Timestamp(journal.recent(client)[0]["date"]).date() == latest and len(journal.recent(client)) == 1
