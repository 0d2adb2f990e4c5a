"""The one list of feature references each model uses, read by both training and serving.

A reference is ``view:indicator``. Each list is a versioned Feast feature service; changing a list means a new
version (``churn_v2``), never an edit of a version already used to train a model.
"""

from __future__ import annotations

_BEHAVIOURAL_RISK = [
    "client_category:holdings_volatility_90d",
    "client_category:growth_board_share",
    "client_category:st_share",
    "client_category:holdings_concentration_hhi",
    "client_category:market_timing_score_365d",
    "client_category:stock_selection_score_365d",
    "client_category:informed_buy_share_365d",
]
_VALUE = [
    "client_value:commission_30d",
    "client_value:commission_90d",
    "client_value:commission_365d",
    "client_value:trade_count_30d",
    "client_value:trade_count_90d",
    "client_value:trade_count_365d",
    "client_value:trade_amount_90d",
    "client_value:trade_amount_365d",
    "client_value:active_month_share_365d",
    "client_value:tenure_days",
    "client_value:return_3m",
    "client_value:return_6m",
    "client_value:return_12m",
    "client_value:asset_growth_12m",
]
_ACCOUNT = [
    "account_info:holding_period_days_avg",
    "account_info:long_holding_share",
    "account_info:top_industry_share",
    "account_info:industry_count",
    "account_info:positions_count",
    "account_info:securitisation_ratio",
    "account_info:cash_balance",
    "account_info:market_value",
    "account_info:asset_turnover_365d",
    "account_info:new_stock_buy_share_365d",
    "account_info:sub_new_stock_buy_share_365d",
    "account_info:ipo_subscriptions_365d",
    "account_info:ipo_allotments_365d",
    "account_info:commission_rate",
]
_FEEDBACK = [
    "client_feedback:satisfaction_latest",
    "client_feedback:surveys_365d",
    "client_feedback:report_reads_30d",
    "client_feedback:report_reads_90d",
    "client_feedback:report_rating_avg_365d",
    "client_feedback:complaints_90d",
    "client_feedback:complaints_365d",
    "client_feedback:fee_complaints_365d",
    "client_feedback:open_complaints",
    "client_feedback:contacts_90d",
    "client_feedback:contact_reached_share_90d",
    "client_feedback:days_since_last_contact",
    "client_feedback:own_branch_satisfaction_365d",
    "client_feedback:own_broker_contacts_per_client_90d",
    "client_feedback:own_branch_fee_complaints_30d",
]
_FLOW = [
    "client_flow:inflow_30d",
    "client_flow:inflow_90d",
    "client_flow:outflow_30d",
    "client_flow:outflow_90d",
    "client_flow:net_flow_90d",
    "client_flow:net_flow_365d",
    "client_flow:large_withdrawals_90d",
    "client_flow:outflow_share_90d",
    "client_flow:asset_change_3m",
    "client_flow:days_since_last_trade",
    "client_flow:days_since_last_transfer",
    "client_flow:own_branch_outflow_share_90d",
]
_PROFILE = [
    "client_category:total_assets",
    "client_category:stated_risk_level",
    "client_category:risk_assessment_age_days",
]

_CHURN_V2_ADDED = [
    "client_value:market_return_6m",
    "client_value:excess_return_6m",
    "client_value:commission_overpaid_90d",
    "client_feedback:contacts_30d",
]

_RISK_PROFILE_V1 = [
    *_BEHAVIOURAL_RISK, "client_category:total_assets", "client_value:trade_count_90d",
    "client_value:trade_count_365d", "client_value:return_12m", "account_info:holding_period_days_avg",
    "account_info:long_holding_share", "account_info:securitisation_ratio", "account_info:asset_turnover_365d",
    "account_info:new_stock_buy_share_365d", "account_info:sub_new_stock_buy_share_365d",
    "account_info:positions_count", "account_info:top_industry_share", "account_info:growth_board_buy_share_365d",
    "account_info:st_buy_share_365d", "account_info:cash_balance", "account_info:market_value",
]
_RISK_PREFERENCE = [
    "risk_preference:securitisation_ratio_avg_12m",
    "risk_preference:full_investment_share_12m",
    "risk_preference:buy_cash_commitment_avg_365d",
    "risk_preference:account_volatility_12m",
    "risk_preference:max_drawdown_12m",
    "risk_preference:bought_volatility_avg_365d",
    "risk_preference:positions_count_avg_12m",
    "risk_preference:holdings_concentration_avg_12m",
]

FEATURE_SERVICES: dict[str, dict[str, object]] = {
    "churn_v1": {
        "model": "churn",
        "description": "Inputs of the churn model: activity, returns, flows, service experience and risk.",
        "features": [*_PROFILE, *_BEHAVIOURAL_RISK, *_VALUE, *_ACCOUNT, *_FEEDBACK, *_FLOW],
    },
    # v2 adds what a brokerage can see of the three causes' drivers that v1 missed: the return against the market
    # (poor trading), the commission paid above the market's rate (competitor), and last month's contacts
    # (clients called too often).
    "churn_v2": {
        "model": "churn",
        "description": "Inputs of the churn model: activity, returns against the market, flows, commission above "
                       "the market's rate, service experience and risk.",
        "features": [*_PROFILE, *_BEHAVIOURAL_RISK, *_VALUE, *_ACCOUNT, *_FEEDBACK, *_FLOW, *_CHURN_V2_ADDED],
    },
    "retention_uplift_v1": {
        "model": "retention_uplift",
        # The effect of an action follows the reasons a client might leave: the churn model's indicators.
        "description": "Inputs of the retention uplift model (with the action): the churn model's indicators.",
        "features": [*_PROFILE, *_BEHAVIOURAL_RISK, *_VALUE, *_ACCOUNT, *_FEEDBACK, *_FLOW, *_CHURN_V2_ADDED],
    },
    "value_v1": {
        "model": "value",
        "description": "Inputs of the value model: assets, commission history, activity and account use.",
        "features": [*_PROFILE, *_VALUE, *_ACCOUNT, *_FLOW, "client_feedback:report_reads_90d"],
    },
    "risk_profile_v1": {
        "model": "risk_profile",
        # The questionnaire level is the training label, so it is never an input.
        "description": "Inputs of the risk-profile model: behaviour only, never the questionnaire level.",
        "features": _RISK_PROFILE_V1,
    },
    # v2 adds the risk preference assessment: how fully and steadily the account is invested, how much of the cash
    # at hand each buy commits, how the account's value swings and falls, how volatile the stocks bought were and
    # how many stocks the account usually holds.
    "risk_profile_v2": {
        "model": "risk_profile",
        "description": "Inputs of the risk-profile model: behaviour only (holdings, buys, account use, the account's "
                       "swings), never the questionnaire level.",
        "features": [*_RISK_PROFILE_V1, *_RISK_PREFERENCE],
    },
}


def feature_references(service: str) -> list[str]:
    """Ordered ``view:indicator`` references of a feature service."""
    try:
        return list(FEATURE_SERVICES[service]["features"])  # type: ignore[arg-type]
    except KeyError:
        raise KeyError(f"unknown feature service {service!r}; known: {', '.join(FEATURE_SERVICES)}") from None


def feature_names(service: str) -> list[str]:
    """Ordered indicator names of a feature service (the model's input columns)."""
    return [ref.split(":", 1)[1] for ref in feature_references(service)]


# The churn model's contributions are grouped by indicator family into the three churn causes: the
# trading-results indicators of the client value and client category families (poor trading results), the fee
# indicators of account information with the branch outflow of client flow (price or competitor), and the
# client feedback family (service). Activity and flow indicators describe leaving, not why: they stay out, and so
# do the commission paid above the market's rate, which grows with activity (credited to the competitor it took
# service-driven churners' recall from 0.72 to 0.55 on the demo world), and the market's own return, which is
# the same for every client (the client's return against it is what counts).
CHURN_CAUSE_GROUPS: dict[str, list[str]] = {
    "poor_trading": ["return_3m", "return_6m", "return_12m", "asset_growth_12m", "stock_selection_score_365d",
                     "market_timing_score_365d", "holdings_volatility_90d", "excess_return_6m"],
    "competitor": ["commission_rate", "own_branch_outflow_share_90d", "commission_30d", "commission_90d",
                   "commission_365d", "fee_complaints_365d", "own_branch_fee_complaints_30d"],
    "service": [name.split(":", 1)[1] for name in [*_FEEDBACK, "client_feedback:contacts_30d"]
                if not name.endswith((":fee_complaints_365d", ":own_branch_fee_complaints_30d"))],
}
