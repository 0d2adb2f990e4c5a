"""The simulated A-share market: securities, bull and bear regimes, daily prices and the market index."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.synthetic.calendar import Calendar

INDUSTRIES = (
    "agriculture", "basic_chemicals", "steel", "nonferrous_metals", "electronics", "home_appliances",
    "food_beverage", "textiles_apparel", "light_industry", "pharma_biotech", "utilities", "transportation",
    "real_estate", "commerce_retail", "social_services", "banks", "non_bank_finance", "conglomerates",
    "building_materials", "building_decoration", "power_equipment", "machinery", "defense", "autos",
    "computers", "media", "telecom", "coal", "petroleum", "environmental", "beauty_care",
)

REGIMES = ("bull", "bear", "range")
# Daily drift and volatility of the market factor in each regime.
_REGIME_DRIFT = np.array([0.0016, -0.0014, 0.0001])
_REGIME_VOL = np.array([0.011, 0.015, 0.009])
# Monthly regime transitions: regimes last several months.
_REGIME_STAY = 0.8
BOARD_LIMIT = {"main": 0.10, "chinext": 0.20, "star": 0.20}
ST_LIMIT = 0.05
SUB_NEW_DAYS = 250  # a stock is "sub-new" (次新股) for about a year of trading days after listing
_FORWARD_ALPHA_DAYS = 20
_FORWARD_MARKET_DAYS = 10


@dataclass
class Market:
    """Everything the client simulation needs to know about the market, indexed [day, security]."""

    securities: pd.DataFrame
    close: np.ndarray  # [T, S+1], last column 0 for empty position slots
    tradable: np.ndarray  # [T, S] listed and not suspended
    listed_day: np.ndarray  # [S] day index of listing (<= 0 when listed before the window)
    ipo_price: np.ndarray  # [S] offer price of stocks listed in the window, else nan
    riskiness: np.ndarray  # [S] 0..1, higher for ChiNext/STAR/ST and volatile names
    industry: np.ndarray  # [S] industry index
    forward_alpha_z: np.ndarray  # [T, S] standardized excess return over the next weeks (the "skill" signal)
    market_return: np.ndarray  # [T]
    forward_market: np.ndarray  # [T] market return over the next two weeks
    regime: np.ndarray  # [T] index into REGIMES
    daily_prices: pd.DataFrame
    market_index: pd.DataFrame

    @property
    def n_securities(self) -> int:
        return len(self.listed_day)


def _security_codes(rng: np.random.Generator, boards: np.ndarray, exchanges: np.ndarray) -> list[str]:
    used: set[str] = set()
    codes = []
    for board, exchange in zip(boards, exchanges, strict=True):
        while True:
            if board == "star":
                code = f"688{rng.integers(0, 1000):03d}"
            elif board == "chinext":
                code = f"30{rng.integers(0, 10000):04d}"
            elif exchange == "SH":
                code = f"60{rng.choice([0, 1, 3, 5])}{rng.integers(0, 1000):03d}"
            else:
                code = f"00{rng.choice([0, 2])}{rng.integers(0, 1000):03d}"
            if code not in used:
                used.add(code)
                codes.append(code)
                break
    return codes


def build_market(calendar: Calendar, n_securities: int, rng: np.random.Generator) -> Market:
    """Simulate securities and their daily prices over the calendar."""
    n_days = len(calendar)
    s = n_securities
    boards = rng.choice(np.array(["main", "chinext", "star"]), size=s, p=[0.65, 0.2, 0.15])
    exchanges = np.where(boards == "star", "SH", np.where(boards == "chinext", "SZ",
                                                          rng.choice(np.array(["SH", "SZ"]), size=s)))
    industry = rng.integers(0, len(INDUSTRIES), size=s)
    new_listing = rng.random(s) < 0.08
    window_days = n_days - 1
    listed_day = np.where(
        new_listing,
        rng.integers(min(5, window_days), max(window_days - 5, min(5, window_days) + 1), size=s),
        -rng.integers(30, 7000, size=s),
    ).astype(np.int64)
    is_st = (~new_listing) & (rng.random(s) < 0.03)
    listed_on = [
        calendar.days[d] if d >= 0 else calendar.days[0] - dt.timedelta(days=int(-d * 1.45)) for d in listed_day
    ]

    # Regimes switch at month starts.
    n_months = len(calendar.month_ends)
    regime_by_month = np.empty(n_months, dtype=np.int64)
    regime_by_month[0] = rng.integers(0, 3)
    for m in range(1, n_months):
        if rng.random() < _REGIME_STAY:
            regime_by_month[m] = regime_by_month[m - 1]
        else:
            regime_by_month[m] = rng.choice([r for r in range(3) if r != regime_by_month[m - 1]])
    regime = regime_by_month[calendar.month_of_day]

    market_return = _REGIME_DRIFT[regime] + _REGIME_VOL[regime] * rng.standard_t(5, size=n_days) * 0.8
    market_return[0] = 0.0
    industry_beta = rng.uniform(0.7, 1.3, size=len(INDUSTRIES))
    industry_shock = rng.normal(0, 0.008, size=(n_days, len(INDUSTRIES)))
    # Industries drift apart in persistent trends, which stock pickers can follow.
    industry_trend = np.cumsum(rng.normal(0, 0.0003, size=(n_days, len(INDUSTRIES))), axis=0) * 0.05
    beta = industry_beta[industry] * rng.uniform(0.8, 1.2, size=s)
    idio_vol = np.where(boards == "main", 0.016, 0.024) * np.where(is_st, 1.4, 1.0) * rng.uniform(0.7, 1.3, size=s)
    returns = (
        market_return[:, None] * beta[None, :]
        + industry_shock[:, industry]
        + industry_trend[:, industry]
        + rng.standard_t(4, size=(n_days, s)) * idio_vol[None, :] * 0.7
    )
    # Sub-new stocks drift down after their listing pop.
    days_since_listing = np.arange(n_days)[:, None] - listed_day[None, :]
    returns -= np.where((days_since_listing > 0) & (days_since_listing < 120), 0.0015, 0.0)
    limit = np.where(is_st, ST_LIMIT, np.vectorize(BOARD_LIMIT.get)(boards))
    returns = np.clip(returns, -limit, limit)

    ipo_price = np.where(new_listing, np.round(np.exp(rng.normal(np.log(18), 0.5, size=s)), 2), np.nan)
    first_day_pop = np.where(boards == "main", rng.uniform(0.2, 0.44, size=s), rng.uniform(0.3, 2.0, size=s))
    start_price = np.exp(rng.normal(np.log(14), 0.7, size=s))

    close = np.empty((n_days, s))
    price = start_price.copy()
    for t in range(n_days):
        price = price * (1 + returns[t])
        listing_today = listed_day == t
        price = np.where(listing_today, ipo_price * (1 + first_day_pop), price)
        price = np.maximum(price, 1.0)
        close[t] = price
    close = np.round(close, 2)

    suspended = np.zeros((n_days, s), dtype=bool)
    for k in np.flatnonzero(rng.random(s) < 0.12):
        begin = int(rng.integers(1, n_days))
        suspended[begin : begin + int(rng.integers(1, 15)), k] = True
    listed = days_since_listing >= 0
    suspended &= listed & (days_since_listing > 0)
    # A suspended stock keeps its last close.
    for t in range(1, n_days):
        close[t] = np.where(suspended[t], close[t - 1], close[t])
    tradable = listed & ~suspended

    prev_close = np.vstack([close[:1], close[:-1]])
    prev_close = np.where(days_since_listing == 0, ipo_price[None, :], prev_close)

    excess = np.where(listed, close / prev_close - 1 - market_return[:, None], 0.0)
    cumulative = np.vstack([np.zeros((1, s)), np.cumsum(excess, axis=0)])
    ahead = np.minimum(np.arange(n_days) + _FORWARD_ALPHA_DAYS, n_days - 1)
    forward_alpha = cumulative[ahead + 1] - cumulative[np.arange(n_days) + 1]
    forward_alpha_z = (forward_alpha - forward_alpha.mean(axis=1, keepdims=True)) / (
        forward_alpha.std(axis=1, keepdims=True) + 1e-9
    )
    cum_market = np.concatenate([[0.0], np.cumsum(market_return)])
    ahead_m = np.minimum(np.arange(n_days) + _FORWARD_MARKET_DAYS, n_days - 1)
    forward_market = cum_market[ahead_m + 1] - cum_market[np.arange(n_days) + 1]

    riskiness = np.clip(
        0.25 * (boards != "main") + 0.35 * is_st + (idio_vol - 0.011) / 0.03 + 0.15 * new_listing, 0, 1
    )

    base_volume = np.exp(rng.normal(np.log(2.5e7), 0.9, size=s))
    volume = (
        base_volume[None, :]
        * (1 + 25 * np.abs(returns))
        * np.where(regime == 0, 1.4, np.where(regime == 1, 0.75, 1.0))[:, None]
        * rng.lognormal(0, 0.25, size=(n_days, s))
    )
    volume = np.where(listed & ~suspended, np.round(volume / 100) * 100, 0).astype(np.int64)
    amount = np.round(volume * close, 2)

    codes = _security_codes(rng, boards, exchanges)
    securities = pd.DataFrame(
        {
            "security_id": codes,
            "name": [f"{INDUSTRIES[i].split('_')[0].upper()[:4]}{k:03d}" for k, i in enumerate(industry)],
            "exchange": exchanges,
            "board": boards,
            "industry": [INDUSTRIES[i] for i in industry],
            "listed_on": pd.to_datetime(listed_on),
            "is_st": is_st,
        }
    )
    t_idx, s_idx = np.nonzero(listed)
    daily_prices = pd.DataFrame(
        {
            "security_id": np.array(codes, dtype=object)[s_idx],
            "trade_date": calendar.dates[t_idx].astype("datetime64[ns]"),
            "close": close[t_idx, s_idx],
            "prev_close": prev_close[t_idx, s_idx],
            "volume": volume[t_idx, s_idx],
            "amount": amount[t_idx, s_idx],
            "is_suspended": suspended[t_idx, s_idx],
        }
    ).sort_values(["security_id", "trade_date"], kind="stable", ignore_index=True)
    index_close = np.round(3000 * np.cumprod(1 + market_return), 2)
    market_index = pd.DataFrame(
        {
            "trade_date": calendar.dates.astype("datetime64[ns]"),
            "close": index_close,
            "pct_change": np.concatenate([[0.0], index_close[1:] / index_close[:-1] - 1]),
            "amount": np.round(amount.sum(axis=1), 2),
        }
    )
    close_padded = np.hstack([close, np.zeros((n_days, 1))])
    return Market(
        securities=securities,
        close=close_padded,
        tradable=tradable,
        listed_day=listed_day,
        ipo_price=ipo_price,
        riskiness=riskiness,
        industry=industry,
        forward_alpha_z=forward_alpha_z,
        market_return=market_return,
        forward_market=forward_market,
        regime=regime,
        daily_prices=daily_prices,
        market_index=market_index,
    )
