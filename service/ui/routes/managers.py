"""Pages for branch managers: broker scorecards and branch rankings, from the same indicators.

A branch manager's key sees its own branch's brokers and its own branch's row of the ranking (the rank itself is
among every branch of the firm); admins see the whole firm. Both go through :mod:`service.scope`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from features.scorecards import BRANCH_COLUMNS, BROKER_COLUMNS
from service import scope
from service.ui import charts
from service.ui.data import Scorecards
from service.ui.session import UI, ManagerViewer, PageError, Viewer
from service.ui.templating import render

router = APIRouter(prefix=f"{UI}/managers", include_in_schema=False)
TOP_BROKERS = 15
PERCENT = {"broker_client_return_avg_12m", "broker_client_churn_rate_12m", "branch_market_share_30d", "reach_rate"}


def _scorecards(request: Request, viewer: Viewer) -> Scorecards:
    try:
        return request.app.state.ui.scorecards()
    except FileNotFoundError as e:
        raise PageError("features_not_built", f"{e}. The indicators must be built before scorecards exist.",
                        viewer) from None


@router.get("/brokers", response_class=HTMLResponse)
def brokers(request: Request, viewer: ManagerViewer) -> Response:
    cards = _scorecards(request, viewer)
    frame = cards.brokers
    frame = frame[scope.visible_brokers(viewer, frame["broker_id"], request.app.state.runtime.directory)]
    top = frame.head(TOP_BROKERS)
    points = [(r.broker_commission_365d, r.broker_client_churn_rate_12m,
               f"{r.broker_id} ({r.branch_id}): commission ¥{r.broker_commission_365d:,.0f}, "
               f"churn {r.broker_client_churn_rate_12m:.1%}, satisfaction {r.broker_satisfaction_avg_365d:.2f}")
              for r in frame.itertuples()]
    figures = [
        charts.scatter(points, "Revenue against client churn (one dot per broker)", "commission over 365 days (yuan)",
                       "clients' churn rate, 12 months"),
        charts.bars(top["broker_id"].tolist(), {"commission 365d": top["broker_commission_365d"].tolist()},
                    f"Top {len(top)} brokers by commission (yuan)", label_width=110),
    ]
    return render(request, "brokers.html", viewer, cards=cards, figures=figures,
                  rows=frame.to_dict(orient="records"), columns=BROKER_COLUMNS, percent=PERCENT)


@router.get("/branches", response_class=HTMLResponse)
def branches(request: Request, viewer: ManagerViewer) -> Response:
    cards = _scorecards(request, viewer)
    frame = cards.branches
    frame = frame[scope.visible_branches(viewer, frame["branch_id"])]
    names = [f"{r.name} ({r.city})" for r in frame.itertuples()]
    figures = [
        charts.bars(names, {"client assets": frame["branch_assets"].tolist()}, "Client assets by branch (yuan)"),
        charts.bars(names, {"commission 365d": frame["branch_commission_365d"].tolist()},
                    "Commission by branch, 365 days (yuan)"),
        charts.bars(names, {"satisfaction": frame["branch_satisfaction_avg_365d"].tolist()},
                    "Satisfaction by branch (1–5)"),
    ]
    return render(request, "branches.html", viewer, cards=cards, figures=figures,
                  rows=frame.to_dict(orient="records"), columns=BRANCH_COLUMNS, percent=PERCENT)
