"""Each broker's closed-loop figures for the scorecards: actions recommended and delivered, reach rate, at-risk
clients kept and lost clients won back (the basis for rewarding and correcting brokers).

Recommended: the next best actions planned for the broker's clients (every daily plan, once per decision and
action). Delivered: those with an outcome that reached the client (reached, declined, accepted). Reach rate:
delivered over those with any outcome. Kept and won back are observed at the latest feature build, and only for
plans made on older indicators: an at-risk client is kept while it holds at least 1,000 yuan and its account is
open; a lost client is won back once it holds at least 1,000 yuan again.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa

from service.lifecycle import ACTIVE_ASSETS_MIN
from service.outcomes import DONE_STATUSES, all_outcomes

LOOP_FILE = Path("loop") / "brokers.parquet"
COLUMNS = ["broker_id", "actions_recommended", "actions_delivered", "reach_rate", "at_risk_clients",
           "at_risk_kept", "lost_clients", "lost_won_back"]


def broker_loop(home: Path, raw_dir: Path, offline_dir: Path, engine: sa.Engine) -> pd.DataFrame:
    plans = sorted((home / "queue").glob("plan-*.parquet"))
    if not plans:
        return pd.DataFrame(columns=COLUMNS)
    plan = pd.concat([pq.read_table(p).to_pandas() for p in plans], ignore_index=True)
    plan = plan.drop_duplicates(["decision_id", "action"])
    if "as_of" not in plan:  # a plan written before plans kept the indicators' date: not observable
        plan["as_of"] = None
    outcomes = all_outcomes(engine)
    any_outcome = set(zip(outcomes["decision_id"], outcomes["action"], strict=True))
    done = outcomes[outcomes["status"].isin(DONE_STATUSES)]
    delivered = set(zip(done["decision_id"], done["action"], strict=True))
    keys = list(zip(plan["decision_id"], plan["action"], strict=True))
    plan["delivered"] = [k in delivered for k in keys]
    plan["answered"] = [k in any_outcome for k in keys]
    latest = pd.read_parquet(offline_dir / "client_category.parquet", columns=["client_id", "as_of", "total_assets"])
    latest_as_of = latest["as_of"].max()
    now = latest[latest["as_of"] == latest_as_of].set_index("client_id")["total_assets"]
    closed = set(pd.read_parquet(raw_dir / "clients.parquet", columns=["client_id", "closed_on"])
                 .dropna(subset=["closed_on"])["client_id"])
    clients = plan.drop_duplicates("client_id")
    observable = clients[pd.to_datetime(clients["as_of"]) < pd.Timestamp(latest_as_of)]
    holding = {c for c, a in now.items() if a >= ACTIVE_ASSETS_MIN and c not in closed}
    rows = []
    for broker_id, part in plan.groupby("broker_id"):
        seen = observable[observable["broker_id"] == broker_id]
        at_risk = seen[seen["lifecycle_stage"] == "at_risk"]["client_id"]
        lost = seen[seen["lifecycle_stage"] == "lost"]["client_id"]
        answered = int(part["answered"].sum())
        rows.append({"broker_id": broker_id, "actions_recommended": len(part),
                     "actions_delivered": int(part["delivered"].sum()),
                     "reach_rate": part["delivered"].sum() / answered if answered else float("nan"),
                     "at_risk_clients": len(at_risk), "at_risk_kept": int(at_risk.isin(holding).sum()),
                     "lost_clients": len(lost), "lost_won_back": int(lost.isin(holding).sum())})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_broker_loop(home: Path, raw_dir: Path, offline_dir: Path, engine: sa.Engine) -> Path:
    frame = broker_loop(home, raw_dir, offline_dir, engine)
    path = home / LOOP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
