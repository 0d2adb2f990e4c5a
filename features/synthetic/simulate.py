"""Day-by-day simulation of the brokerage's clients: trading, transfers, service, feedback and churn.

Everything is vectorised over clients; the only Python loop is over trading days. Trading follows the
A-share rules: lots of 100 shares, a 5-yuan minimum commission, stamp duty on sells, no short selling, T+1
(shares bought today cannot be sold today) and no spending of cash the client does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.synthetic.calendar import Calendar
from features.synthetic.market import INDUSTRIES, SUB_NEW_DAYS, Market
from features.synthetic.population import Population

SLOTS = 10  # most holdings a client keeps at once
LOT = 100
MIN_COMMISSION = 5.0
STAMP_DUTY_RATE = 0.0005  # on sells only
ACTIVE_ASSETS_MIN = 1_000.0  # below this an account is dormant and cannot "churn"

NOT_OPEN, ACTIVE, LEAVING, GONE, CLOSED = 0, 1, 2, 3, 4
CAUSES = ("poor_trading", "competitor", "service")
_REGIME_ACTIVITY = np.array([1.35, 0.75, 1.0])
_REPORTS_PER_DAY = 6
_REPORT_KINDS = np.array(["market", "industry", "company", "new_stock"])

# Churn hazard (per month) weights: baseline and the article's three causes.
HAZARD_BASE = 0.0008
HAZARD_POOR_TRADING = 0.11
HAZARD_COMPETITOR = 0.10
HAZARD_SERVICE = 0.075


def _round2(values: np.ndarray) -> np.ndarray:
    return np.round(values, 2)


@dataclass
class Sink:
    """Rows of one event table collected as column arrays between flushes."""

    columns: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, **arrays: np.ndarray) -> None:
        for name, values in arrays.items():
            self.columns.setdefault(name, []).append(np.asarray(values))

    def take(self) -> dict[str, np.ndarray]:
        out = {name: np.concatenate(parts) for name, parts in self.columns.items()}
        self.columns = {}
        return out

    def __bool__(self) -> bool:
        return any(len(p) for parts in self.columns.values() for p in parts)


@dataclass
class SimulationResult:
    """Ground truth the simulation produced (the raw tables were handed to the writer as they were made)."""

    closed_on: np.ndarray
    churn_events: pd.DataFrame
    campaigns: pd.DataFrame
    research_reports: pd.DataFrame


class Simulation:
    """Runs the world forward one trading day at a time and hands finished months to ``emit``."""

    def __init__(
        self,
        calendar: Calendar,
        market: Market,
        population: Population,
        rng: np.random.Generator,
        emit: Callable[[str, dict[str, np.ndarray]], None],
    ) -> None:
        self.cal = calendar
        self.mkt = market
        self.pop = population
        self.rng = rng
        self.emit = emit
        n = len(population.clients)
        self.n = n
        self.empty = market.n_securities
        traits = population.traits
        self.risk = traits["risk_appetite"].to_numpy()
        self.timing = traits["timing_skill"].to_numpy()
        self.selection = traits["selection_skill"].to_numpy()
        self.activity = traits["activity_trades_per_month"].to_numpy()
        self.info = traits["information_dependence"].to_numpy()
        self.price_sens = traits["price_sensitivity"].to_numpy()
        self.service_sens = traits["service_sensitivity"].to_numpy()
        self.new_aff = traits["new_stock_affinity"].to_numpy()
        self.frailty = traits["frailty"].to_numpy()
        self.tastes = population.tastes
        self.rate = population.commission_rate
        self.quality = population.branch_quality[population.client_branch]
        self.diligence = population.broker_diligence[population.client_broker]
        self.city = population.branch_city[population.client_branch]

        self.status = np.where(population.open_day <= 0, ACTIVE, NOT_OPEN).astype(np.int8)
        self.cash = np.zeros(n)
        self.slot_sec = np.full((n, SLOTS), self.empty, dtype=np.int64)
        self.slot_qty = np.zeros((n, SLOTS), dtype=np.int64)
        self.slot_locked = np.zeros((n, SLOTS), dtype=np.int64)
        self.slot_cost = np.zeros((n, SLOTS))
        self.slot_first = np.zeros((n, SLOTS), dtype="datetime64[D]")
        self.days_left = np.zeros(n, dtype=np.int64)
        self.withdraw_target = np.zeros(n)
        self.closed_on = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        self.last_contact = np.full(n, -10_000, dtype=np.int64)
        self.complaint_open_until = np.full(n, -1, dtype=np.int64)
        self.last_read_sec = np.full(n, -1, dtype=np.int64)
        self.last_read_day = np.full(n, -10_000, dtype=np.int64)
        self.last_read_report = np.full(n, -1, dtype=np.int64)
        self.month_start_assets = np.zeros(n)
        self.month_flow = np.zeros(n)
        self.month_returns = np.zeros((n, 6))
        self.asset_pct = np.zeros(n)
        self.satisfaction = np.full(n, 3.5)
        self.hazard = np.zeros(n)
        self.hazard_parts = np.zeros((n, 3))
        self.ids = {"trade": 0, "transfer": 0, "contact": 0, "complaint": 0, "survey": 0, "subscription": 0}
        self.sinks = {name: Sink() for name in (
            "trades", "cash_transfers", "contacts", "complaints", "satisfaction_surveys", "report_reads",
            "ipo_subscriptions", "account_snapshots", "positions", "truth_probabilities")}
        self.churn_rows: list[tuple[int, int, int]] = []
        self.churn_end: dict[int, int] = {}
        self.pending_ipo: dict[int, list[np.ndarray]] = {}
        self.campaign = self._competitor_campaigns()
        self.open_order = np.argsort(population.open_day, kind="stable")
        self.open_sorted = population.open_day[self.open_order]
        self.reports = self._research_reports()

    # ----------------------------------------------------------------- set-up
    def _competitor_campaigns(self) -> np.ndarray:
        """Intensity 0..1 of competitors' low-commission campaigns per city and month."""
        months = len(self.cal.month_ends)
        cities = int(self.city.max()) + 1 if self.n else 1
        intensity = np.full((cities, months + 1), 0.05)
        for c in range(cities):
            m = 0
            while m <= months:
                if self.rng.random() < 0.09:
                    length = int(self.rng.integers(2, 7))
                    intensity[c, m : m + length] = self.rng.uniform(0.5, 1.0)
                    m += length
                m += 1
        return intensity

    def _research_reports(self) -> pd.DataFrame:
        n_days = len(self.cal)
        day = np.repeat(np.arange(1, n_days), _REPORTS_PER_DAY)
        kind = self.rng.choice(4, size=day.size, p=[0.2, 0.35, 0.35, 0.1])
        industry = self.mkt.industry[self.rng.integers(0, self.mkt.n_securities, size=day.size)]
        security = np.full(day.size, -1, dtype=np.int64)
        for k in np.flatnonzero(kind >= 2):
            t = day[k]
            if kind[k] == 3:
                # New-stock reports cover stocks about to list or listed recently.
                pool = np.flatnonzero((self.mkt.listed_day >= t - 20) & (self.mkt.listed_day <= t + 10))
            else:
                pool = np.flatnonzero(self.mkt.tradable[t])
            if pool.size:
                security[k] = pool[self.rng.integers(0, pool.size)]
                industry[k] = self.mkt.industry[security[k]]
            else:
                kind[k] = 1
        self.report_day = day
        self.report_kind = kind
        self.report_industry = np.where(kind == 0, -1, industry)
        self.report_security = security
        self.report_quality = self.rng.random(day.size)
        codes = self.mkt.securities["security_id"].to_numpy()
        industry_names = np.array([None if i < 0 else INDUSTRIES[i] for i in self.report_industry], dtype=object)
        return pd.DataFrame(
            {
                "report_id": np.char.add("R", np.char.zfill(np.arange(1, day.size + 1).astype(str), 6)).astype(object),
                "published_on": self.cal.dates[day].astype("datetime64[ns]"),
                "kind": _REPORT_KINDS[kind],
                "industry": industry_names,
                "security_id": np.where(security >= 0, codes[np.maximum(security, 0)], None),
            }
        )

    # ------------------------------------------------------------ helpers
    def _market_value(self, t: int, who: np.ndarray | slice) -> np.ndarray:
        return (self.slot_qty[who] * self.mkt.close[t][self.slot_sec[who]]).sum(axis=1)

    def _choose_securities(self, who: np.ndarray, t: int) -> np.ndarray:
        """Pick one security per client: tastes, new-stock affinity, risk appetite and skill decide."""
        rng = self.rng
        m = who.size
        tradable = np.flatnonzero(self.mkt.tradable[t])
        candidates = tradable[rng.integers(0, tradable.size, size=(m, 6))]
        # Favourite industries.
        by_industry = tradable[np.argsort(self.mkt.industry[tradable], kind="stable")]
        ind_sorted = self.mkt.industry[by_industry]
        n_ind = int(self.mkt.industry.max()) + 1
        first = np.searchsorted(ind_sorted, np.arange(n_ind), side="left")
        count = np.searchsorted(ind_sorted, np.arange(n_ind), side="right") - first
        fav = self.tastes[who[:, None], rng.integers(0, 3, size=(m, 3))]
        has = count[fav] > 0
        pick = by_industry[np.minimum(first[fav] + (rng.random((m, 3)) * count[fav]).astype(np.int64),
                                      by_industry.size - 1)]
        candidates[:, 1:4] = np.where(has, pick, candidates[:, 1:4])
        # Sub-new stocks for new-stock lovers.
        age = t - self.mkt.listed_day[tradable]
        sub_new = tradable[(age >= 0) & (age < SUB_NEW_DAYS)]
        if sub_new.size:
            use = rng.random(m) < self.new_aff[who] * 1.2
            candidates[:, 4] = np.where(use, sub_new[rng.integers(0, sub_new.size, size=m)], candidates[:, 4])
        score = (
            0.9 * self.selection[who, None] * self.mkt.forward_alpha_z[t][candidates]
            + 10.0 * (self.risk[who, None] - 0.5) * self.mkt.riskiness[candidates]
            + rng.gumbel(size=(m, 6))
        )
        # Information-dependent clients buy what they just read about.
        read = (self.last_read_day[who] >= t - 5) & (self.last_read_sec[who] >= 0)
        read_sec = np.maximum(self.last_read_sec[who], 0)
        read &= self.mkt.tradable[t][read_sec]
        candidates[:, 5] = np.where(read, read_sec, candidates[:, 5])
        score[:, 5] += np.where(read, 3.5 * self.info[who], 0.0)
        return candidates[np.arange(m), score.argmax(axis=1)]

    def _record_trades(self, t: int, who: np.ndarray, sec: np.ndarray, buy: bool, qty: np.ndarray,
                       price: np.ndarray, amount: np.ndarray, commission: np.ndarray, stamp: np.ndarray) -> None:
        k = who.size
        if not k:
            return
        start = self.ids["trade"]
        self.ids["trade"] += k
        self.sinks["trades"].add(
            trade_id=np.arange(start + 1, start + k + 1), client=who, security=sec, day=np.full(k, t),
            buy=np.full(k, buy), quantity=qty, price=price, amount=amount, commission=commission, stamp_duty=stamp,
        )

    def _transfer(self, t: int, who: np.ndarray, amount: np.ndarray, incoming: bool) -> None:
        keep = amount >= 0.01
        who, amount = who[keep], _round2(amount[keep])
        if not who.size:
            return
        self.cash[who] += amount if incoming else -amount
        self.cash[who] = np.maximum(_round2(self.cash[who]), 0.0)
        self.month_flow[who] += amount if incoming else -amount
        start = self.ids["transfer"]
        self.ids["transfer"] += who.size
        self.sinks["cash_transfers"].add(
            transfer_id=np.arange(start + 1, start + who.size + 1), client=who, day=np.full(who.size, t),
            incoming=np.full(who.size, incoming), amount=amount,
        )

    def _buy(self, t: int, who: np.ndarray) -> np.ndarray:
        """Buy one security each; returns the clients who could not buy (no cash, no free slot)."""
        if not who.size:
            return who
        sec = self._choose_securities(who, t)
        price = self.mkt.close[t][sec]
        match = self.slot_sec[who] == sec[:, None]
        free = self.slot_sec[who] == self.empty
        has = match.any(axis=1)
        slot = np.where(has, match.argmax(axis=1), free.argmax(axis=1))
        rate = self.rate[who]
        fraction = np.minimum(self.rng.uniform(0.05, 0.25, size=who.size) + 0.75 * self.risk[who], 1.0)
        budget = np.minimum(self.cash[who] * fraction, self.cash[who] - MIN_COMMISSION)
        qty = np.floor(budget / (price * (1 + rate)) / LOT).astype(np.int64) * LOT
        ok = (has | free.any(axis=1)) & (qty >= LOT)
        failed = who[~ok]
        who, sec, price, slot, qty, rate = who[ok], sec[ok], price[ok], slot[ok], qty[ok], rate[ok]
        amount = _round2(qty * price)
        commission = _round2(np.maximum(MIN_COMMISSION, amount * rate))
        self.cash[who] = _round2(self.cash[who] - amount - commission)
        new = self.slot_sec[who, slot] == self.empty
        self.slot_sec[who, slot] = sec
        self.slot_first[who[new], slot[new]] = self.cal.dates[t]
        self.slot_qty[who, slot] += qty
        self.slot_locked[who, slot] += qty
        self.slot_cost[who, slot] += amount + commission
        self._record_trades(t, who, sec, True, qty, price, amount, commission, np.zeros(who.size))
        return failed

    def _sell_slots(self, t: int, who: np.ndarray, slot: np.ndarray, qty: np.ndarray) -> None:
        """Sell ``qty`` shares from the given slot of each client (callers guarantee they are sellable)."""
        if not who.size:
            return
        sec = self.slot_sec[who, slot]
        price = self.mkt.close[t][sec]
        amount = _round2(qty * price)
        commission = _round2(np.maximum(MIN_COMMISSION, amount * self.rate[who]))
        stamp = _round2(amount * STAMP_DUTY_RATE)
        self.cash[who] = _round2(self.cash[who] + amount - commission - stamp)
        held = self.slot_qty[who, slot]
        self.slot_cost[who, slot] *= 1 - qty / held
        self.slot_qty[who, slot] = held - qty
        emptied = self.slot_qty[who, slot] == 0
        self.slot_sec[who[emptied], slot[emptied]] = self.empty
        self.slot_cost[who[emptied], slot[emptied]] = 0.0
        self._record_trades(t, who, sec, False, qty, price, amount, commission, stamp)

    def _sellable(self, t: int, who: np.ndarray) -> np.ndarray:
        tradable = np.append(self.mkt.tradable[t], False)
        return np.where(tradable[self.slot_sec[who]], self.slot_qty[who] - self.slot_locked[who], 0)

    def _sell_one(self, t: int, who: np.ndarray) -> None:
        """Sell part or all of one holding each, preferring winners (the disposition effect)."""
        if not who.size:
            return
        sellable = self._sellable(t, who)
        can = sellable > 0
        winner = self.mkt.close[t][self.slot_sec[who]] * self.slot_qty[who] > self.slot_cost[who]
        weight = np.where(can, self.rng.random(can.shape) + 0.35 * winner, -1.0)
        slot = weight.argmax(axis=1)
        ok = can.any(axis=1)
        who, slot = who[ok], slot[ok]
        available = sellable[ok, slot]
        half = (available // 2 // LOT) * LOT
        qty = np.where((self.rng.random(who.size) < 0.55) | (half < LOT), available, half)
        self._sell_slots(t, who, slot, qty)

    def _liquidate(self, t: int, who: np.ndarray, probability: np.ndarray) -> None:
        """Sell whole holdings of leaving clients, each slot with the given probability."""
        for s in range(SLOTS):
            sellable = self._sellable(t, who)[:, s]
            go = (sellable > 0) & (self.rng.random(who.size) < probability)
            self._sell_slots(t, who[go], np.full(int(go.sum()), s), sellable[go])

    # ------------------------------------------------------------- the days
    def run(self, advance: Callable[[int], None] | None = None) -> SimulationResult:
        self._open_portfolios()
        self._month_end(0)
        for t in range(1, len(self.cal)):
            self._day(t)
            month = int(self.cal.month_of_day[t])
            if self.cal.month_end_day[month] == t:
                self._month_end(month)
            if advance:
                advance(1)
        return self._result()

    def _open_portfolios(self) -> None:
        """The holdings of clients who opened before the window, at its opening day."""
        who = np.flatnonzero(self.status == ACTIVE)
        assets = self.pop.initial_assets[who]
        invested = np.clip(0.1 + 0.8 * self.risk[who] + self.rng.normal(0, 0.08, who.size), 0.05, 0.95)
        n_positions = np.clip(1 + self.rng.poisson(1.5 + 3 * self.risk[who]), 1, SLOTS)
        budget = assets * invested / n_positions
        self.cash[who] = assets
        for s in range(SLOTS):
            sec = self._choose_securities(who, 0)
            price = self.mkt.close[0][sec]
            qty = np.floor(budget / price / LOT).astype(np.int64) * LOT
            dup = (self.slot_sec[who, :s] == sec[:, None]).any(axis=1)
            ok = (s < n_positions) & (qty >= LOT) & ~dup & (qty * price <= self.cash[who])
            w = who[ok]
            cost = qty[ok] * price[ok]
            self.slot_sec[w, s] = sec[ok]
            self.slot_qty[w, s] = qty[ok]
            self.slot_cost[w, s] = _round2(cost * self.rng.uniform(0.75, 1.25, w.size))
            self.slot_first[w, s] = self.cal.dates[0] - self.rng.integers(5, 700, w.size).astype("timedelta64[D]")
            self.cash[w] = _round2(self.cash[w] - cost)

    def _day(self, t: int) -> None:
        rng = self.rng
        self.slot_locked[:] = 0
        # New accounts.
        lo, hi = np.searchsorted(self.open_sorted, [t, t + 1])
        opened = self.open_order[lo:hi]
        if opened.size:
            self.status[opened] = ACTIVE
            self._transfer(t, opened, self.pop.initial_assets[opened], incoming=True)
        self._settle_ipos(t)

        active = self.status == ACTIVE
        # Churn starts, with the hazard set at the last month-end.
        starting = np.flatnonzero(active & (rng.random(self.n) < -np.expm1(-self.hazard / 21.0)))
        if starting.size:
            # The real cause is the dominant reason at the moment the client decides to leave.
            cause = self.hazard_parts[starting].argmax(axis=1)
            self.status[starting] = LEAVING
            self.days_left[starting] = rng.integers(3, 26, size=starting.size)
            self.churn_rows.extend(zip(starting.tolist(), [t] * starting.size, cause.tolist(), strict=True))
            active[starting] = False
        self._leaving(t)
        self._large_withdrawals(t, active)

        # Ordinary transfers.
        ai = np.flatnonzero(active)
        deposit = ai[rng.random(ai.size) < 0.03 * (1.25 if self.mkt.regime[t] == 0 else 1.0)]
        self._transfer(t, deposit, self.pop.initial_assets[deposit] * rng.lognormal(-3.4, 0.8, deposit.size), True)
        withdraw = ai[(rng.random(ai.size) < 0.01) & (self.cash[ai] > 100)]
        self._transfer(t, withdraw, self.cash[withdraw] * rng.uniform(0.05, 0.3, withdraw.size), False)

        # Trading.
        # Bolder clients trade more often.
        p_trade = self.activity[ai] * (0.6 + 0.8 * self.risk[ai]) / 21.0 * _REGIME_ACTIVITY[self.mkt.regime[t]]
        p_trade = p_trade * np.where(self.last_read_day[ai] >= t - 3, 1 + self.info[ai], 1.0)
        traders = ai[rng.random(ai.size) < np.minimum(p_trade, 0.95)]
        if traders.size:
            mv = self._market_value(t, traders)
            cash_share = self.cash[traders] / np.maximum(self.cash[traders] + mv, 1.0)
            p_buy = (
                0.45
                + 0.35 * self.timing[traders] * np.tanh(self.mkt.forward_market[t] / 0.025)
                # Each client steers towards a cash share set by their risk appetite.
                + 1.0 * (cash_share - 0.05 - 0.6 * (1 - self.risk[traders]))
            )
            wants_buy = rng.random(traders.size) < p_buy
            could_not_buy = self._buy(t, traders[wants_buy])
            self._sell_one(t, np.sort(np.concatenate([traders[~wants_buy], could_not_buy])))

        self._contacts(t)
        self._complaints(t)
        self._reads(t)
        self._subscribe_ipos(t)

    def _leaving(self, t: int) -> None:
        who = np.flatnonzero(self.status == LEAVING)
        if not who.size:
            return
        left = self.days_left[who]
        self._liquidate(t, who, np.where(left <= 1, 1.0, np.maximum(0.25, 1.0 / np.maximum(left, 1))))
        out = np.where(left <= 1, 1.0, np.where(self.rng.random(who.size) < 0.5, self.rng.uniform(0.3, 0.8), 0.0))
        self._transfer(t, who, self.cash[who] * out, incoming=False)
        self.days_left[who] -= 1
        done = who[(self.days_left[who] <= 0) & (self.slot_qty[who].sum(axis=1) == 0)]
        if done.size:
            for client in done.tolist():
                self.churn_end[client] = t
            self.status[done] = GONE
            close = done[(self.cash[done] < 0.01) & (self.rng.random(done.size) < 0.45)]
            closed_on = self.cal.dates[t] + self.rng.integers(1, 10, close.size).astype("timedelta64[D]")
            inside = closed_on <= np.datetime64(self.cal.end)
            self.closed_on[close[inside]] = closed_on[inside]
            self.status[close[inside]] = CLOSED

    def _large_withdrawals(self, t: int, active: np.ndarray) -> None:
        """Occasional big withdrawals (a house, a business) that are not churn: sell, then move cash out."""
        ai = np.flatnonzero(active)
        start = ai[(self.rng.random(ai.size) < 0.00025) & (self.withdraw_target[ai] == 0)]
        if start.size:
            assets = self.cash[start] + self._market_value(t, start)
            self.withdraw_target[start] = _round2(assets * self.rng.uniform(0.3, 0.7, start.size))
        who = np.flatnonzero((self.withdraw_target > 0) & active)
        if not who.size:
            return
        short = who[self.cash[who] < self.withdraw_target[who]]
        self._sell_one(t, short)
        amount = np.minimum(self.cash[who], self.withdraw_target[who])
        self._transfer(t, who, amount, incoming=False)
        self.withdraw_target[who] = np.where(
            (self.withdraw_target[who] - amount < 1) | (self.rng.random(who.size) < 0.1), 0.0,
            self.withdraw_target[who] - amount,
        )

    def _contacts(self, t: int) -> None:
        rng = self.rng
        live = np.flatnonzero((self.status == ACTIVE) | (self.status == LEAVING))
        p = self.diligence[live] * (0.003 + 0.035 * self.asset_pct[live] ** 2)
        who = live[rng.random(live.size) < p]
        if not who.size:
            return
        self.last_contact[who] = t
        big = self.asset_pct[who] > 0.9
        channel = np.where(big & (rng.random(who.size) < 0.3), 2,
                           rng.choice(np.array([0, 1, 3]), size=who.size, p=[0.45, 0.42, 0.13]))
        outcome = rng.choice(4, size=who.size, p=[0.55, 0.25, 0.12, 0.08])
        start = self.ids["contact"]
        self.ids["contact"] += who.size
        self.sinks["contacts"].add(contact_id=np.arange(start + 1, start + who.size + 1), client=who,
                                   day=np.full(who.size, t), channel=channel, outcome=outcome)

    def _complaints(self, t: int) -> None:
        rng = self.rng
        live = np.flatnonzero((self.status == ACTIVE) | (self.status == LEAVING))
        losing = self.month_returns[live, -1] < -0.1
        # Clients who see a competitor's cheaper offer complain about fees.
        lured = self.campaign[self.city[live], self.cal.month_of_day[t]] * (self.rate[live] >= 0.0003)
        p = 0.0003 * (1.6 - self.quality[live]) * (0.5 + self.service_sens[live]) + 0.0005 * losing + 0.002 * lured
        who = live[rng.random(live.size) < p]
        if not who.size:
            return
        campaign = self.campaign[self.city[who], self.cal.month_of_day[t]]
        category = np.where((self.rate[who] >= 0.0003) & (rng.random(who.size) < campaign), 1,
                            np.where(self.rate[who] >= 0.0005, rng.choice(4, who.size, p=[0.3, 0.4, 0.15, 0.15]),
                                     rng.choice(4, who.size, p=[0.45, 0.1, 0.25, 0.2])))
        delay = 1 + rng.exponential(3 + 30 * (1 - self.quality[who])).astype(np.int64)
        never = rng.random(who.size) < 0.08 * (1.5 - self.quality[who])
        resolved_day = np.where(never, 10**6, t + delay)
        self.complaint_open_until[who] = resolved_day
        start = self.ids["complaint"]
        self.ids["complaint"] += who.size
        self.sinks["complaints"].add(complaint_id=np.arange(start + 1, start + who.size + 1), client=who,
                                     day=np.full(who.size, t), category=category, resolved_day=resolved_day)

    def _reads(self, t: int) -> None:
        rng = self.rng
        live = np.flatnonzero(self.status == ACTIVE)
        who = live[rng.random(live.size) < 0.09 * self.info[live] ** 1.5]
        if not who.size:
            return
        recent = np.flatnonzero((self.report_day <= t) & (self.report_day > t - 5))
        options = recent[rng.integers(0, recent.size, size=(who.size, 3))]
        taste = (self.report_industry[options][:, :, None] == self.tastes[who][:, None, :]).any(axis=2)
        score = (2.0 * taste + 3.0 * (self.report_kind[options] == 3) * self.new_aff[who, None]
                 + rng.gumbel(size=options.shape))
        report = options[np.arange(who.size), score.argmax(axis=1)]
        fresh = report != self.last_read_report[who]
        who, report = who[fresh], report[fresh]
        self.last_read_report[who] = report
        self.last_read_day[who] = t
        self.last_read_sec[who] = np.where(self.report_security[report] >= 0, self.report_security[report],
                                           self.last_read_sec[who])
        rated = rng.random(who.size) < 0.35
        rating = np.clip(np.round(1.8 + 2.6 * self.report_quality[report] + rng.normal(0, 0.7, who.size)), 1, 5)
        self.sinks["report_reads"].add(client=who, report=report, day=np.full(who.size, t),
                                       rating=np.where(rated, rating, 0).astype(np.int64))

    def _subscribe_ipos(self, t: int) -> None:
        listing = np.flatnonzero(self.mkt.listed_day == t + 5)
        if not listing.size:
            return
        live = np.flatnonzero(self.status == ACTIVE)
        mv = self._market_value(t, live)
        eligible = live[mv >= 10_000]
        quota = np.minimum(np.floor(mv[mv >= 10_000] / 10_000) * 500, 10_000).astype(np.int64)
        for sec in listing.tolist():
            take = self.rng.random(eligible.size) < 0.7 * self.new_aff[eligible]
            who, applied = eligible[take], quota[take]
            won = self.rng.random(who.size) < -np.expm1(np.log1p(-0.0006) * applied / 500)
            start = self.ids["subscription"]
            self.ids["subscription"] += who.size
            self.pending_ipo.setdefault(t + 5, []).append(
                np.stack([np.arange(start + 1, start + who.size + 1), who, np.full(who.size, sec), applied,
                          np.where(won, 500, 0), np.full(who.size, t)])
            )

    def _settle_ipos(self, t: int) -> None:
        """On the listing day, allotted shares are paid for and credited; without cash or a free slot, abandoned."""
        for batch in self.pending_ipo.pop(t, []):
            sub_id, who, sec, applied, allotted, day = batch
            price = self.mkt.ipo_price[sec]
            paid = np.zeros(who.size)
            status = np.zeros(who.size, dtype=np.int64)
            for k in np.flatnonzero(allotted > 0):
                client, s = int(who[k]), int(sec[k])
                cost = round(float(allotted[k] * price[k]), 2)
                free = np.flatnonzero(self.slot_sec[client] == self.empty)
                if self.status[client] == ACTIVE and free.size and self.cash[client] >= cost:
                    slot = free[0]
                    self.slot_sec[client, slot] = s
                    self.slot_qty[client, slot] = allotted[k]
                    self.slot_cost[client, slot] = cost
                    self.slot_first[client, slot] = self.cal.dates[t]
                    self.cash[client] = round(self.cash[client] - cost, 2)
                    paid[k] = cost
                    status[k] = 1
                else:
                    status[k] = 2
            self.sinks["ipo_subscriptions"].add(
                subscription_id=sub_id, client=who, security=sec, day=day, applied=applied,
                allotted=np.where(status == 1, allotted, 0), price=price, paid=paid, status=status,
            )

    # --------------------------------------------------------- month-ends
    def _month_end(self, month: int) -> None:
        t = int(self.cal.month_end_day[month])
        date = np.datetime64(self.cal.month_ends[month])
        open_ = (self.status != NOT_OPEN) & ~(self.closed_on <= date)
        who = np.flatnonzero(open_)
        mv = self._market_value(t, who)
        assets = _round2(self.cash[who] + mv)
        self.sinks["account_snapshots"].add(client=who, month=np.full(who.size, month), cash=self.cash[who],
                                            market_value=_round2(mv), total_assets=assets)
        held = self.slot_sec[who] != self.empty
        rows, slots = np.nonzero(held)
        clients = who[rows]
        qty = self.slot_qty[clients, slots]
        self.sinks["positions"].add(
            client=clients, month=np.full(clients.size, month), security=self.slot_sec[clients, slots],
            quantity=qty, cost_price=np.maximum(_round2(self.slot_cost[clients, slots] / qty), 0.01),
            market_value=_round2(qty * self.mkt.close[t][self.slot_sec[clients, slots]]),
            first_bought=self.slot_first[clients, slots],
        )

        # Returns net of flows, for the poor-trading cause and for complaints.
        total = np.zeros(self.n)
        total[who] = assets
        base = np.maximum(self.month_start_assets + np.maximum(self.month_flow, 0), ACTIVE_ASSETS_MIN)
        ret = np.where(open_, (total - self.month_start_assets - self.month_flow) / base, 0.0)
        if month > 0:
            self.month_returns = np.roll(self.month_returns, -1, axis=1)
            self.month_returns[:, -1] = np.clip(ret, -0.9, 2.0)
        self.month_start_assets = total
        self.month_flow = np.zeros(self.n)
        active = (self.status == ACTIVE) & (total >= ACTIVE_ASSETS_MIN)
        ranks = np.zeros(self.n)
        if active.any():
            order = np.argsort(np.argsort(total[active], kind="stable"), kind="stable")
            ranks[active] = order / max(active.sum() - 1, 1)
        self.asset_pct = ranks

        if month > 0 and month % 3 == 0:
            self._surveys(t, active)
        self._update_hazard(month, t, active)
        for name in list(self.sinks):
            if self.sinks[name] and name not in ("report_reads",):
                self.emit(name, self.sinks[name].take())

    def _surveys(self, t: int, active: np.ndarray) -> None:
        rng = self.rng
        who = np.flatnonzero(active)
        who = who[rng.random(who.size) < 0.12]
        if not who.size:
            return
        ret6 = np.prod(1 + self.month_returns[who], axis=1) - 1
        unresolved = self.complaint_open_until[who] > t
        recently_contacted = self.last_contact[who] >= t - 60
        score = (1.6 + 1.6 * self.quality[who] + 1.0 * self.diligence[who] + 1.5 * np.clip(ret6, -0.4, 0.4)
                 - 1.0 * unresolved + 0.4 * recently_contacted + rng.normal(0, 0.7, who.size))
        score = np.clip(np.round(score), 1, 5).astype(np.int64)
        self.satisfaction[who] = score
        start = self.ids["survey"]
        self.ids["survey"] += who.size
        self.sinks["satisfaction_surveys"].add(survey_id=np.arange(start + 1, start + who.size + 1), client=who,
                                               day=np.full(who.size, t), score=score)

    def _update_hazard(self, month: int, t: int, active: np.ndarray) -> None:
        """Set next month's churn hazard from the state now; the true 90-day probability follows from it."""
        ret6 = np.prod(1 + self.month_returns, axis=1) - 1
        # Losses beyond 8% over six months wear the client down.
        poor = HAZARD_POOR_TRADING * np.clip((-ret6 - 0.08) / 0.3, 0, 1)
        campaign = self.campaign[self.city, month]
        # Active traders feel the commission most: sensitivity is mostly trading activity, partly a trait.
        sensitivity = 0.1 * self.price_sens + 0.9 * np.minimum(self.activity / 6.0, 1.0)
        competitor = (HAZARD_COMPETITOR * sensitivity * campaign
                      * np.clip((self.rate - 0.0001) / 0.0003, 0, 2) / 2)
        unresolved = self.complaint_open_until > t
        neglected = (self.last_contact < t - 90) & (self.asset_pct > 0.7)
        # Service drives clients away through events (an unresolved complaint, neglect, a bad survey) and at
        # branches and brokers that are clearly below par.
        gap = (1.5 * unresolved + 0.8 * neglected + 0.5 * np.clip(3.0 - self.satisfaction, 0, 2)
               + 1.5 * np.clip(0.5 - self.quality, 0, 1) + 0.8 * np.clip(0.35 - self.diligence, 0, 1))
        service = HAZARD_SERVICE * (0.8 + 0.2 * self.service_sens) * np.clip(gap, 0, 2)
        parts = np.stack([poor, competitor, service], axis=1)
        hazard = self.frailty * (HAZARD_BASE + parts.sum(axis=1))
        self.hazard = np.where(active, hazard, 0.0)
        self.hazard_parts = parts * self.frailty[:, None]
        who = np.flatnonzero(active)
        self.sinks["truth_probabilities"].add(
            client=who, month=np.full(who.size, month),
            probability=-np.expm1(-3 * self.hazard[who]),
            poor_trading=self.hazard_parts[who, 0], competitor=self.hazard_parts[who, 1],
            service=self.hazard_parts[who, 2],
        )

    def _result(self) -> SimulationResult:
        reads = self.sinks["report_reads"].take() if self.sinks["report_reads"] else None
        if reads is not None:
            key = reads["client"].astype(np.int64) * (len(self.report_day) + 1) + reads["report"]
            _, first = np.unique(key, return_index=True)
            first.sort()
            self.emit("report_reads", {k: v[first] for k, v in reads.items()})
        rows = self.churn_rows
        events = pd.DataFrame(
            {
                "client": np.array([r[0] for r in rows], dtype=np.int64),
                "start_day": np.array([r[1] for r in rows], dtype=np.int64),
                "cause": np.array([r[2] for r in rows], dtype=np.int64),
            }
        )
        events["end_day"] = events["client"].map(self.churn_end).astype("Int64")
        months = len(self.cal.month_ends)
        campaigns = pd.DataFrame(
            [(c, m, self.campaign[c, m]) for c in range(self.campaign.shape[0]) for m in range(months)],
            columns=["city", "month", "intensity"],
        )
        return SimulationResult(
            closed_on=self.closed_on,
            churn_events=events,
            campaigns=campaigns,
            research_reports=self.reports,
        )
