"""Day-by-day simulation of the brokerage's clients: trading, transfers, service, feedback and churn.

Everything is vectorised over clients; the only Python loop is over trading days. Each client's random numbers
come from a stream of its own (``streams.py``), so retention actions applied to some clients leave every other
client's life exactly as it was. Trading follows the
A-share rules: lots of 100 shares, a 5-yuan minimum commission, stamp duty on sells, no short selling, T+1
(shares bought today cannot be sold today) and no spending of cash the client does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.raw.schema import CONTACT_CHANNELS
from features.synthetic.actions import (
    ACTION_SPECS,
    ACTIONS,
    CAMPAIGN_MONTHS,
    CAMPAIGN_SHARE,
    DECLINE_PROBABILITY,
    EFFECTS,
    REACH_PROBABILITY,
    ActionPlan,
)
from features.synthetic.calendar import Calendar
from features.synthetic.market import INDUSTRIES, SUB_NEW_DAYS, Market
from features.synthetic.population import Population
from features.synthetic.streams import ClientStreams

SLOTS = 10  # most holdings a client keeps at once
LOT = 100
MIN_COMMISSION = 5.0
STAMP_DUTY_RATE = 0.0005  # on sells only
ACTIVE_ASSETS_MIN = 1_000.0  # below this an account is dormant and cannot "churn" (the world's own rule; the
# product's churn label uses the same threshold, defined in features.labels, which the generator never imports)

NOT_OPEN, ACTIVE, LEAVING, GONE, CLOSED = 0, 1, 2, 3, 4
CAUSES = ("poor_trading", "competitor", "service")
_REGIME_ACTIVITY = np.array([1.35, 0.75, 1.0])
_REPORTS_PER_DAY = 6
_REPORT_KINDS = np.array(["market", "industry", "company", "new_stock"])

# Churn hazard (per month) weights: baseline and the three causes (poor trading, competitor, service).
HAZARD_BASE = 0.0008
HAZARD_POOR_TRADING = 0.062
HAZARD_COMPETITOR = 0.245
HAZARD_SERVICE = 0.085
# Competitors lure clients even where no campaign runs, at this intensity (campaigns run at 0.5-1).
COMPETITOR_BASELINE = 0.6
# The commission rate competitors offer; clients paying more than this are the ones a competitor can lure.
MARKET_RATE = 0.0002
# Premier clients: the top 5% by assets.
PREMIER_PCT = 0.95
_REACH = np.array([REACH_PROBABILITY[c] for c in CONTACT_CHANNELS])  # by channel index
_DECLINE = np.array([DECLINE_PROBABILITY[c] for c in CONTACT_CHANNELS])
_DEFAULT_CHANNEL = np.array([CONTACT_CHANNELS.index(ACTION_SPECS[a].channel) for a in ACTIONS])  # by action index
# The parts of a client's state an action can change.
_ACTION_STATE = ("rate", "satisfaction", "last_contact", "complaint_open_until", "relief", "relief_until",
                 "contact_days")
_ID_BLOCK = 10_000_000  # row ids are client number × this + the client's own running count


class _P:
    """Purposes of the clients' random numbers: each draw of the day has its own."""

    CHURN, CHURN_DAYS, DAILY, DEPOSIT_SIZE, WITHDRAW_SIZE, BUY_OR_SELL = 1, 2, 3, 4, 5, 6
    BUY_PICK, BUY_SIZE, SELL, LIQUIDATE, LEAVING, CLOSE = 10, 12, 13, 14, 15, 16
    BIG_WITHDRAWAL, BIG_WITHDRAWAL_SIZE, BIG_WITHDRAWAL_SELL, BIG_WITHDRAWAL_STOP = 20, 21, 22, 23
    CONTACT, CONTACT_KIND, COMPLAINT, COMPLAINT_KIND = 30, 31, 32, 33
    READ, READ_PICK, READ_SCORE, READ_RATED, READ_RATING = 40, 41, 42, 43, 44
    SURVEY, SURVEY_SCORE = 50, 51
    CAMPAIGN, CAMPAIGN_ACTION, ACTION = 60, 61, 70  # ACTION + k for a client's k-th action of the day
    OPEN_PICK = 200  # + 2 × slot (and + 1 for the tie-break)
    IPO = 1_000  # + 2 × security (and + 1 for the lottery)


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
        streams: ClientStreams | None = None,
        plan: ActionPlan | None = None,
        uplift_months: tuple[int, ...] = (),
    ) -> None:
        self.cal = calendar
        self.mkt = market
        self.pop = population
        self.rng = rng
        self.streams = streams or ClientStreams(int(rng.integers(0, 2**62)))
        self.plan = plan or ActionPlan.empty()
        self.uplift_months = set(uplift_months)
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
        self.aversion = traits["contact_aversion"].to_numpy()
        self.tastes = population.tastes
        self.rate = population.commission_rate.copy()
        # Active traders feel the commission most: sensitivity is mostly trading activity, partly a trait.
        self.fee_sensitivity = 0.3 * self.price_sens + 0.7 * np.minimum(self.activity / 6.0, 1.0)
        self.premier = np.zeros(n, dtype=bool)
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
        self.market_returns = np.zeros(6)
        self.exposure = np.zeros(n)  # share of assets in stocks at the last month-end
        self.market_level = np.cumsum(np.log1p(market.market_return))
        self.asset_pct = np.zeros(n)
        self.satisfaction = np.full(n, 3.5)
        self.relief_until = np.full(n, -1, dtype=np.int64)
        self.relief = np.zeros(n)
        self.contact_days = np.full((n, EFFECTS.contact_tolerance + 4), -10_000, dtype=np.int64)
        self.hazard = np.zeros(n)
        self.hazard_parts = np.zeros((n, 3))
        self.ids = {name: np.zeros(n, dtype=np.int64) for name in (
            "trade", "transfer", "contact", "complaint", "survey", "subscription", "rate_change")}
        self.sinks = {name: Sink() for name in (
            "trades", "cash_transfers", "contacts", "satisfaction_surveys", "report_reads",
            "ipo_subscriptions", "account_snapshots", "positions", "truth_probabilities", "commission_rate_changes",
            "action_effects", "action_uplift")}
        self.complaint_rows: list[np.ndarray] = []
        self.resolutions: list[np.ndarray] = []  # (client, day) of complaints closed by actions
        self.tags = ["", "plan"]  # campaign tags of contacts: none, an action plan, then the brokerage's own
        self.plan_start = np.searchsorted(self.plan.day, np.arange(len(calendar) + 1), side="left")
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

    def _choose_securities(self, who: np.ndarray, t: int, purpose: int) -> np.ndarray:
        """Pick one security per client: tastes, new-stock affinity, risk appetite and skill decide."""
        rs = self.streams
        m = who.size
        tradable = np.flatnonzero(self.mkt.tradable[t])
        u = rs.uniform(purpose, t, who, 18)
        candidates = tradable[np.minimum((u[:, :6] * tradable.size).astype(np.int64), tradable.size - 1)]
        # Favourite industries.
        by_industry = tradable[np.argsort(self.mkt.industry[tradable], kind="stable")]
        ind_sorted = self.mkt.industry[by_industry]
        n_ind = int(self.mkt.industry.max()) + 1
        first = np.searchsorted(ind_sorted, np.arange(n_ind), side="left")
        count = np.searchsorted(ind_sorted, np.arange(n_ind), side="right") - first
        fav = self.tastes[who[:, None], np.minimum((u[:, 6:9] * 3).astype(np.int64), 2)]
        has = count[fav] > 0
        pick = by_industry[np.minimum(first[fav] + (u[:, 9:12] * count[fav]).astype(np.int64),
                                      by_industry.size - 1)]
        candidates[:, 1:4] = np.where(has, pick, candidates[:, 1:4])
        # Sub-new stocks for new-stock lovers.
        age = t - self.mkt.listed_day[tradable]
        sub_new = tradable[(age >= 0) & (age < SUB_NEW_DAYS)]
        if sub_new.size:
            use = u[:, 12] < self.new_aff[who] * 1.2
            pick_new = sub_new[np.minimum((u[:, 13] * sub_new.size).astype(np.int64), sub_new.size - 1)]
            candidates[:, 4] = np.where(use, pick_new, candidates[:, 4])
        score = (
            0.9 * self.selection[who, None] * self.mkt.forward_alpha_z[t][candidates]
            + 10.0 * (self.risk[who, None] - 0.5) * self.mkt.riskiness[candidates]
            + rs.gumbel(purpose + 1, t, who, 6)
        )
        # Information-dependent clients buy what they just read about.
        read = (self.last_read_day[who] >= t - 5) & (self.last_read_sec[who] >= 0)
        read_sec = np.maximum(self.last_read_sec[who], 0)
        read &= self.mkt.tradable[t][read_sec]
        candidates[:, 5] = np.where(read, read_sec, candidates[:, 5])
        score[:, 5] += np.where(read, 3.5 * self.info[who], 0.0)
        return candidates[np.arange(m), score.argmax(axis=1)]

    def _next_ids(self, kind: str, who: np.ndarray) -> np.ndarray:
        """Row ids from each client's own running count, so one client's rows never renumber another's."""
        seq = self.ids[kind][who] + 1
        self.ids[kind][who] = seq
        return (who + 1) * _ID_BLOCK + seq

    def _record_trades(self, t: int, who: np.ndarray, sec: np.ndarray, buy: bool, qty: np.ndarray,
                       price: np.ndarray, amount: np.ndarray, commission: np.ndarray, stamp: np.ndarray) -> None:
        k = who.size
        if not k:
            return
        self.sinks["trades"].add(
            trade_id=self._next_ids("trade", who), client=who, security=sec, day=np.full(k, t),
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
        self.sinks["cash_transfers"].add(
            transfer_id=self._next_ids("transfer", who), client=who, day=np.full(who.size, t),
            incoming=np.full(who.size, incoming), amount=amount,
        )

    def _buy(self, t: int, who: np.ndarray) -> np.ndarray:
        """Buy one security each; returns the clients who could not buy (no cash, no free slot)."""
        if not who.size:
            return who
        sec = self._choose_securities(who, t, _P.BUY_PICK)
        price = self.mkt.close[t][sec]
        match = self.slot_sec[who] == sec[:, None]
        free = self.slot_sec[who] == self.empty
        has = match.any(axis=1)
        slot = np.where(has, match.argmax(axis=1), free.argmax(axis=1))
        rate = self.rate[who]
        size = self.streams.uniform(_P.BUY_SIZE, t, who, low=0.05, high=0.25)
        fraction = np.minimum(size + 0.75 * self.risk[who], 1.0)
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

    def _sell_one(self, t: int, who: np.ndarray, purpose: int) -> None:
        """Sell part or all of one holding each, preferring winners (the disposition effect)."""
        if not who.size:
            return
        sellable = self._sellable(t, who)
        can = sellable > 0
        winner = self.mkt.close[t][self.slot_sec[who]] * self.slot_qty[who] > self.slot_cost[who]
        u = self.streams.uniform(purpose, t, who, SLOTS + 1)
        weight = np.where(can, u[:, :SLOTS] + 0.35 * winner, -1.0)
        slot = weight.argmax(axis=1)
        ok = can.any(axis=1)
        who, slot = who[ok], slot[ok]
        available = sellable[ok, slot]
        half = (available // 2 // LOT) * LOT
        qty = np.where((u[ok, SLOTS] < 0.55) | (half < LOT), available, half)
        self._sell_slots(t, who, slot, qty)

    def _liquidate(self, t: int, who: np.ndarray, probability: np.ndarray) -> None:
        """Sell whole holdings of leaving clients, each slot with the given probability."""
        u = self.streams.uniform(_P.LIQUIDATE, t, who, SLOTS)
        for s in range(SLOTS):
            sellable = self._sellable(t, who)[:, s]
            go = (sellable > 0) & (u[:, s] < probability)
            self._sell_slots(t, who[go], np.full(int(go.sum()), s), sellable[go])

    # ------------------------------------------------------------- the days
    def run(self, advance: Callable[[int], None] | None = None) -> SimulationResult:
        self.start()
        self.advance_to(len(self.cal) - 1, advance)
        return self._result()

    def start(self) -> None:
        """The opening state (day 0): portfolios and the first month-end."""
        self._open_portfolios()
        self._month_end(0)
        self.today = 0

    def advance_to(self, last_day: int, advance: Callable[[int], None] | None = None) -> None:
        """Simulate the trading days after the last one simulated, up to ``last_day`` (a run paused at a
        month-end continues from there exactly as an uninterrupted run would)."""
        for t in range(self.today + 1, last_day + 1):
            self._day(t)
            month = int(self.cal.month_of_day[t])
            if self.cal.month_end_day[month] == t:
                self._month_end(month)
            self.today = t
            if advance:
                advance(1)

    def schedule(self, plan: ActionPlan) -> None:
        """Replace the action plan for the days not simulated yet (a closed loop decides month by month)."""
        self.plan = plan
        self.plan_start = np.searchsorted(plan.day, np.arange(len(self.cal) + 1), side="left")

    def complaints_so_far(self) -> dict[str, np.ndarray]:
        """The complaints filed up to today as the complaints table would show them today: resolved (by an action
        or in their own time) on a day up to today, else still open."""
        if not self.complaint_rows:
            z = np.zeros(0, dtype=np.int64)
            return {"complaint_id": z, "client": z, "day": z, "category": z, "resolved_day": z}
        rows = self._complaints_resolved()
        rows["resolved_day"] = np.where(rows["resolved_day"] <= self.today, rows["resolved_day"], 10**6)
        return rows

    def reads_so_far(self) -> dict[str, np.ndarray] | None:
        """The research reads up to today, each (client, report) once, as the finished table keeps them."""
        sink = self.sinks["report_reads"]
        if not sink:
            return None
        reads = {name: np.concatenate(parts) for name, parts in sink.columns.items()}
        key = reads["client"].astype(np.int64) * (len(self.report_day) + 1) + reads["report"]
        _, first = np.unique(key, return_index=True)
        first.sort()
        return {k: v[first] for k, v in reads.items()}

    def _open_portfolios(self) -> None:
        """The holdings of clients who opened before the window, at its opening day (drawn from the shared
        generator: nothing an action plan does can change the opening state)."""
        who = np.flatnonzero(self.status == ACTIVE)
        assets = self.pop.initial_assets[who]
        invested = np.clip(0.1 + 0.8 * self.risk[who] + self.rng.normal(0, 0.08, who.size), 0.05, 0.95)
        n_positions = np.clip(1 + self.rng.poisson(1.5 + 3 * self.risk[who]), 1, SLOTS)
        budget = assets * invested / n_positions
        self.cash[who] = assets
        for s in range(SLOTS):
            sec = self._choose_securities(who, 0, _P.OPEN_PICK + 2 * s)
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
        rs = self.streams
        self.slot_locked[:] = 0
        # New accounts.
        lo, hi = np.searchsorted(self.open_sorted, [t, t + 1])
        opened = self.open_order[lo:hi]
        if opened.size:
            self.status[opened] = ACTIVE
            self._transfer(t, opened, self.pop.initial_assets[opened], incoming=True)
        self._settle_ipos(t)
        self._actions(t)

        active = self.status == ACTIVE
        # Churn starts, with the hazard set at the last month-end (or when an action changed it).
        ai = np.flatnonzero(active)
        starting = ai[rs.uniform(_P.CHURN, t, ai) < -np.expm1(-self.hazard[ai] / 21.0)]
        if starting.size:
            # The real cause is the dominant reason at the moment the client decides to leave.
            cause = self.hazard_parts[starting].argmax(axis=1)
            self.status[starting] = LEAVING
            self.days_left[starting] = rs.integers(_P.CHURN_DAYS, t, starting, 3, 26)
            self.churn_rows.extend(zip(starting.tolist(), [t] * starting.size, cause.tolist(), strict=True))
            active[starting] = False
        self._leaving(t)
        self._large_withdrawals(t, active)

        # Ordinary transfers.
        ai = np.flatnonzero(active)
        u = rs.uniform(_P.DAILY, t, ai, 3)
        deposit = ai[u[:, 0] < 0.03 * (1.25 if self.mkt.regime[t] == 0 else 1.0)]
        size = np.exp(rs.normal(_P.DEPOSIT_SIZE, t, deposit, -3.4, 0.8))
        self._transfer(t, deposit, self.pop.initial_assets[deposit] * size, True)
        withdraw = ai[(u[:, 1] < 0.01) & (self.cash[ai] > 100)]
        self._transfer(t, withdraw, self.cash[withdraw] * rs.uniform(_P.WITHDRAW_SIZE, t, withdraw, low=0.05, high=0.3),
                       False)

        # Trading.
        # Bolder clients trade more often.
        p_trade = self.activity[ai] * (0.6 + 0.8 * self.risk[ai]) / 21.0 * _REGIME_ACTIVITY[self.mkt.regime[t]]
        p_trade = p_trade * np.where(self.last_read_day[ai] >= t - 3, 1 + self.info[ai], 1.0)
        traders = ai[u[:, 2] < np.minimum(p_trade, 0.95)]
        if traders.size:
            mv = self._market_value(t, traders)
            cash_share = self.cash[traders] / np.maximum(self.cash[traders] + mv, 1.0)
            p_buy = (
                0.45
                + 0.35 * self.timing[traders] * np.tanh(self.mkt.forward_market[t] / 0.025)
                # Each client steers towards a cash share set by their risk appetite.
                + 1.0 * (cash_share - 0.05 - 0.6 * (1 - self.risk[traders]))
            )
            wants_buy = rs.uniform(_P.BUY_OR_SELL, t, traders) < p_buy
            could_not_buy = self._buy(t, traders[wants_buy])
            self._sell_one(t, np.sort(np.concatenate([traders[~wants_buy], could_not_buy])), _P.SELL)

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
        u = self.streams.uniform(_P.LEAVING, t, who, 2)
        out = np.where(left <= 1, 1.0, np.where(u[:, 0] < 0.5, 0.3 + 0.5 * u[:, 1], 0.0))
        self._transfer(t, who, self.cash[who] * out, incoming=False)
        self.days_left[who] -= 1
        done = who[(self.days_left[who] <= 0) & (self.slot_qty[who].sum(axis=1) == 0)]
        if done.size:
            for client in done.tolist():
                self.churn_end[client] = t
            self.status[done] = GONE
            u = self.streams.uniform(_P.CLOSE, t, done, 2)
            closing = (self.cash[done] < 0.01) & (u[:, 0] < 0.45)
            close = done[closing]
            closed_on = self.cal.dates[t] + (1 + (u[closing, 1] * 9).astype(np.int64)).astype("timedelta64[D]")
            inside = closed_on <= np.datetime64(self.cal.end)
            self.closed_on[close[inside]] = closed_on[inside]
            self.status[close[inside]] = CLOSED

    def _large_withdrawals(self, t: int, active: np.ndarray) -> None:
        """Occasional big withdrawals (a house, a business) that are not churn: sell, then move cash out."""
        ai = np.flatnonzero(active)
        start = ai[(self.streams.uniform(_P.BIG_WITHDRAWAL, t, ai) < 0.00025) & (self.withdraw_target[ai] == 0)]
        if start.size:
            assets = self.cash[start] + self._market_value(t, start)
            share = self.streams.uniform(_P.BIG_WITHDRAWAL_SIZE, t, start, low=0.3, high=0.7)
            self.withdraw_target[start] = _round2(assets * share)
        who = np.flatnonzero((self.withdraw_target > 0) & active)
        if not who.size:
            return
        short = who[self.cash[who] < self.withdraw_target[who]]
        self._sell_one(t, short, _P.BIG_WITHDRAWAL_SELL)
        amount = np.minimum(self.cash[who], self.withdraw_target[who])
        self._transfer(t, who, amount, incoming=False)
        self.withdraw_target[who] = np.where(
            (self.withdraw_target[who] - amount < 1) | (self.streams.uniform(_P.BIG_WITHDRAWAL_STOP, t, who) < 0.1),
            0.0,
            self.withdraw_target[who] - amount,
        )

    def _contacts(self, t: int) -> None:
        """The brokers' ordinary contacts, more often with bigger clients and by more diligent brokers."""
        rs = self.streams
        live = np.flatnonzero((self.status == ACTIVE) | (self.status == LEAVING))
        p = self.diligence[live] * (0.003 + 0.035 * self.asset_pct[live] ** 2)
        who = live[rs.uniform(_P.CONTACT, t, live) < p]
        if not who.size:
            return
        self.last_contact[who] = t
        big = self.asset_pct[who] > 0.9
        u = rs.uniform(_P.CONTACT_KIND, t, who, 3)
        channel = np.where(big & (u[:, 0] < 0.3), 2,
                           np.array([0, 1, 3])[np.searchsorted(np.array([0.45, 0.87]), u[:, 1], side="right")])
        outcome = np.searchsorted(np.array([0.55, 0.80, 0.92]), u[:, 2], side="right")
        self._record_contacts(t, who, channel, outcome, broker=np.full(who.size, -1), tag=0,
                              action=np.full(who.size, -1))

    def _record_contacts(self, t: int, who: np.ndarray, channel: np.ndarray, outcome: np.ndarray,
                         broker: np.ndarray, tag: int, action: np.ndarray) -> None:
        # The client noticed every attempt that was not left unanswered.
        noticed = who[outcome != 1]
        self.contact_days[noticed, :-1] = self.contact_days[noticed, 1:]
        self.contact_days[noticed, -1] = t
        self.sinks["contacts"].add(contact_id=self._next_ids("contact", who), client=who, day=np.full(who.size, t),
                                   channel=channel, outcome=outcome, broker=broker, tag=np.full(who.size, tag),
                                   action=action)

    def _complaints(self, t: int) -> None:
        rs = self.streams
        live = np.flatnonzero((self.status == ACTIVE) | (self.status == LEAVING))
        losing = self.month_returns[live, -1] < -0.1
        # Clients who see a competitor's cheaper offer complain about fees.
        lured = (self.campaign[self.city[live], self.cal.month_of_day[t]]
                 * (self.rate[live] > MARKET_RATE) * self.fee_sensitivity[live])
        p = 0.0003 * (1.6 - self.quality[live]) * (0.5 + self.service_sens[live]) + 0.0005 * losing + 0.003 * lured
        who = live[rs.uniform(_P.COMPLAINT, t, live) < p]
        if not who.size:
            return
        u = rs.uniform(_P.COMPLAINT_KIND, t, who, 4)
        campaign = self.campaign[self.city[who], self.cal.month_of_day[t]]
        dear = np.searchsorted(np.array([0.3, 0.7, 0.85]), u[:, 1], side="right")
        cheap = np.searchsorted(np.array([0.45, 0.55, 0.8]), u[:, 1], side="right")
        category = np.where((self.rate[who] > MARKET_RATE) & (u[:, 0] < campaign), 1,
                            np.where(self.rate[who] >= 0.0005, dear, cheap))
        delay = 1 + (-np.log(u[:, 2]) * (3 + 30 * (1 - self.quality[who]))).astype(np.int64)
        never = u[:, 3] < 0.08 * (1.5 - self.quality[who])
        resolved_day = np.where(never, 10**6, t + delay)
        self.complaint_open_until[who] = resolved_day
        self.complaint_rows.append(np.stack([self._next_ids("complaint", who), who, np.full(who.size, t), category,
                                             resolved_day]))

    def _reads(self, t: int) -> None:
        rs = self.streams
        live = np.flatnonzero(self.status == ACTIVE)
        who = live[rs.uniform(_P.READ, t, live) < 0.09 * self.info[live] ** 1.5]
        if not who.size:
            return
        recent = np.flatnonzero((self.report_day <= t) & (self.report_day > t - 5))
        options = recent[rs.integers(_P.READ_PICK, t, who, 0, recent.size, columns=3)]
        taste = (self.report_industry[options][:, :, None] == self.tastes[who][:, None, :]).any(axis=2)
        score = (2.0 * taste + 3.0 * (self.report_kind[options] == 3) * self.new_aff[who, None]
                 + rs.gumbel(_P.READ_SCORE, t, who, 3))
        report = options[np.arange(who.size), score.argmax(axis=1)]
        rated = rs.uniform(_P.READ_RATED, t, who) < 0.35
        noise = rs.normal(_P.READ_RATING, t, who, 0, 0.7)
        fresh = report != self.last_read_report[who]
        who, report, rated, noise = who[fresh], report[fresh], rated[fresh], noise[fresh]
        self.last_read_report[who] = report
        self.last_read_day[who] = t
        self.last_read_sec[who] = np.where(self.report_security[report] >= 0, self.report_security[report],
                                           self.last_read_sec[who])
        rating = np.clip(np.round(1.8 + 2.6 * self.report_quality[report] + noise), 1, 5)
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
            u = self.streams.uniform(_P.IPO + 2 * sec, t, eligible)
            take = u < 0.7 * self.new_aff[eligible]
            who, applied = eligible[take], quota[take]
            won = self.streams.uniform(_P.IPO + 2 * sec + 1, t, who) < -np.expm1(np.log1p(-0.0006) * applied / 500)
            self.pending_ipo.setdefault(t + 5, []).append(
                np.stack([self._next_ids("subscription", who), who, np.full(who.size, sec), applied,
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
        self.exposure[:] = 0.0
        self.exposure[who] = np.where(assets > 0, mv / np.maximum(assets, 0.01), 0.0)
        base = np.maximum(self.month_start_assets + np.maximum(self.month_flow, 0), ACTIVE_ASSETS_MIN)
        ret = np.where(open_, (total - self.month_start_assets - self.month_flow) / base, 0.0)
        if month > 0:
            self.month_returns = np.roll(self.month_returns, -1, axis=1)
            self.month_returns[:, -1] = np.clip(ret, -0.9, 2.0)
            self.market_returns = np.roll(self.market_returns, -1)
            previous = int(self.cal.month_end_day[month - 1])
            self.market_returns[-1] = np.expm1(self.market_level[t] - self.market_level[previous])
        self.month_start_assets = total
        self.month_flow = np.zeros(self.n)
        active = (self.status == ACTIVE) & (total >= ACTIVE_ASSETS_MIN)
        # Where the client's assets stand among the brokerage's clients: a fixed scale (the clients' asset
        # distribution), not a ranking, so that one client's assets never move another's standing.
        z = (np.log(np.maximum(total, 1.0)) - np.log(60_000.0)) / 1.6
        self.asset_pct = np.where(active, 1.0 / (1.0 + np.exp(-1.702 * z)), 0.0)
        self.premier = self.asset_pct >= PREMIER_PCT

        if month > 0 and month % 3 == 0:
            self._surveys(t, active)
        self._update_hazard(month, t, active)
        for name in list(self.sinks):
            if self.sinks[name] and name not in ("report_reads",):
                self.emit(name, self.sinks[name].take())

    def _surveys(self, t: int, active: np.ndarray) -> None:
        who = np.flatnonzero(active)
        who = who[self.streams.uniform(_P.SURVEY, t, who) < 0.12]
        if not who.size:
            return
        ret6 = np.prod(1 + self.month_returns[who], axis=1) - 1
        unresolved = self.complaint_open_until[who] > t
        recently_contacted = self.last_contact[who] >= t - 60
        score = (1.6 + 1.6 * self.quality[who] + 1.0 * self.diligence[who] + 1.5 * np.clip(ret6, -0.4, 0.4)
                 - 1.0 * unresolved + 0.4 * recently_contacted + self.streams.normal(_P.SURVEY_SCORE, t, who, 0, 0.7))
        score = np.clip(np.round(score), 1, 5).astype(np.int64)
        self.satisfaction[who] = score
        self.sinks["satisfaction_surveys"].add(survey_id=self._next_ids("survey", who), client=who,
                                               day=np.full(who.size, t), score=score)

    # ---------------------------------------------------------- the hazard
    def _parts(self, who: np.ndarray, month: int, t: int, **state: np.ndarray) -> np.ndarray:
        """The three causes' monthly hazards of ``who`` from the state on day ``t`` (``state`` overrides some of
        it: what-ifs of actions). The campaigns are those of ``month``."""
        rate = state.get("rate", self.rate[who])
        satisfaction = state.get("satisfaction", self.satisfaction[who])
        last_contact = state.get("last_contact", self.last_contact[who])
        complaint_until = state.get("complaint_open_until", self.complaint_open_until[who])
        relief = np.where(state.get("relief_until", self.relief_until[who]) > t, state.get("relief", self.relief[who]),
                          0.0)
        contact_days = state.get("contact_days", self.contact_days[who])
        ret6 = np.prod(1 + self.month_returns[who], axis=1) - 1
        behind = ret6 - self.exposure[who] * (np.prod(1 + self.market_returns) - 1)
        # Trailing the market by more than 5% over six months wears the client down, losses beyond 8% too
        # (less so while advice or education helps).
        poor = (HAZARD_POOR_TRADING * (1 - relief)
                * (0.7 * np.clip((-behind - 0.05) / 0.25, 0, 1) + 0.3 * np.clip((-ret6 - 0.08) / 0.3, 0, 1)))
        # Fee-sensitive clients paying more than the market's rate drift to competitors, much faster where a
        # competitor campaigns in their city.
        campaign = self.campaign[self.city[who], month]
        competitor = (HAZARD_COMPETITOR * self.fee_sensitivity[who] ** 2 * (COMPETITOR_BASELINE + campaign)
                      * np.clip((rate - MARKET_RATE) / 0.0003, 0, 1.5))
        unresolved = complaint_until > t
        neglected = (last_contact < t - 90) & (self.asset_pct[who] > 0.7)
        recent = (contact_days > t - EFFECTS.contact_window_days).sum(axis=1)
        over = np.maximum(recent - EFFECTS.contact_tolerance, 0) * self.aversion[who]
        # Service drives clients away through events (an unresolved complaint, neglect, a bad survey, being
        # called too often) and at branches and brokers that are clearly below par.
        gap = (1.2 * unresolved + 0.8 * neglected + 0.5 * np.clip(3.0 - satisfaction, 0, 2)
               + 0.6 * np.clip(0.5 - self.quality[who], 0, 1) + 0.6 * np.clip(0.4 - self.diligence[who], 0, 1)
               + EFFECTS.over_contact_gap * over)
        service = HAZARD_SERVICE * (0.1 + 0.9 * self.service_sens[who] ** 1.5) * np.clip(gap, 0, 2)
        return np.stack([poor, competitor, service], axis=1) * self.frailty[who, None]

    def _hazard_of(self, parts: np.ndarray, who: np.ndarray) -> np.ndarray:
        return self.frailty[who] * HAZARD_BASE + parts.sum(axis=1)

    def _update_hazard(self, month: int, t: int, active: np.ndarray) -> None:
        """Set next month's churn hazard from the state now; the true 90-day probability follows from it."""
        who = np.flatnonzero(active)
        parts = self._parts(who, month, t)
        self.hazard[:] = 0.0
        self.hazard_parts[:] = 0.0
        self.hazard[who] = self._hazard_of(parts, who)
        self.hazard_parts[who] = parts
        self.sinks["truth_probabilities"].add(
            client=who, month=np.full(who.size, month),
            probability=-np.expm1(-3 * self.hazard[who]),
            poor_trading=parts[:, 0], competitor=parts[:, 1], service=parts[:, 2],
        )
        if month in self.uplift_months:
            self._uplift(month, t, who, parts)

    def _uplift(self, month: int, t: int, who: np.ndarray, parts: np.ndarray) -> None:
        """Each action's true effect on each active client's 90-day churn probability, in expectation over
        whether the client is reached (by the action's usual channel) and whether a complaint surfaces."""
        base = -np.expm1(-3 * self._hazard_of(parts, who))
        for a in range(len(ACTIONS)):
            expected = self._expected_with(a, who, month, t, int(_DEFAULT_CHANNEL[a]))
            self.sinks["action_uplift"].add(client=who, month=np.full(who.size, month), action=np.full(who.size, a),
                                            without=base, expected=expected)

    def _expected_with(self, a: int, who: np.ndarray, month: int, t: int, channel: int) -> np.ndarray:
        """The 90-day churn probability of ``who`` after action ``a`` by ``channel`` on day ``t``, in expectation
        over whether the client is reached (the channel's reach) and whether a complaint surfaces."""
        reach, decline = _REACH[channel], _DECLINE[channel]
        expected = (1 - reach - decline) * self._what_if(a, who, month, t, reached=False, noticed=False,
                                                         surfaced=False)
        expected += decline * self._what_if(a, who, month, t, reached=False, noticed=True, surfaced=False)
        q = EFFECTS.surfaced(ACTIONS[a])
        expected += reach * (1 - q) * self._what_if(a, who, month, t, reached=True, noticed=True, surfaced=False)
        if q:
            expected += reach * q * self._what_if(a, who, month, t, reached=True, noticed=True, surfaced=True)
        return expected

    def true_uplift(self, who: np.ndarray, action: str, channel: str) -> np.ndarray:
        """The true fall of each client's 90-day churn probability if ``action`` were delivered by ``channel``
        now (at the last simulated month-end), in expectation over reach: the oracle of a closed loop. Ground
        truth: only evaluation code may ask for it."""
        who = np.asarray(who, dtype=np.int64)
        month = int(self.cal.month_of_day[self.today])
        parts = self._parts(who, month, self.today)
        base = -np.expm1(-3 * self._hazard_of(parts, who))
        expected = self._expected_with(ACTIONS.index(action), who, month, self.today, CONTACT_CHANNELS.index(channel))
        return base - expected

    def _what_if(self, a: int, who: np.ndarray, month: int, t: int, *, reached: bool, noticed: bool,
                 surfaced: bool) -> np.ndarray:
        state = self._effect(a, who, t, np.full(who.size, reached), np.full(who.size, noticed),
                             np.full(who.size, surfaced))
        return -np.expm1(-3 * self._hazard_of(self._parts(who, month, t, **state), who))

    # ------------------------------------------------------------ actions
    def _effect(self, a: int, who: np.ndarray, t: int, reached: np.ndarray, noticed: np.ndarray,
                surfaced: np.ndarray) -> dict[str, np.ndarray]:
        """The state of ``who`` after action ``a`` on day ``t`` (only the parts the action changes)."""
        name = ACTIONS[a]
        state: dict[str, np.ndarray] = {}
        days = self.contact_days[who].copy()
        days[noticed, :-1] = days[noticed, 1:]
        days[noticed, -1] = t
        state["contact_days"] = days
        if name == "review_commission_rate":
            state["rate"] = np.maximum(np.minimum(self.rate[who] * (1 - EFFECTS.commission_cut), self.rate[who]),
                                       np.minimum(EFFECTS.commission_floor, self.rate[who]))
        elif name == "resolve_open_complaints":
            state["complaint_open_until"] = np.minimum(self.complaint_open_until[who], t)
        elif name in ("broker_retention_call", "branch_manager_call", "senior_advisor_visit"):
            lift = EFFECTS.lift(name) * self.service_sens[who]
            if name == "senior_advisor_visit":
                lift = lift * np.where(self.premier[who], EFFECTS.premier_visit_factor, 1.0)
            state["last_contact"] = np.where(reached, t, self.last_contact[who])
            state["satisfaction"] = np.where(reached, np.minimum(self.satisfaction[who] + lift, 5.0),
                                             self.satisfaction[who])
            state["complaint_open_until"] = np.where(reached & surfaced, np.minimum(self.complaint_open_until[who], t),
                                                     self.complaint_open_until[who])
        else:  # investment_advisory_session, investor_education
            advisory = name == "investment_advisory_session"
            strength = ((EFFECTS.advisory_relief if advisory else EFFECTS.education_relief)
                        * (0.4 + 0.6 * self.info[who]))
            until = t + (EFFECTS.advisory_days if advisory else EFFECTS.education_days)
            running = self.relief_until[who] > t
            state["relief"] = np.where(reached, np.maximum(strength, np.where(running, self.relief[who], 0.0)),
                                       self.relief[who])
            state["relief_until"] = np.where(reached, np.maximum(until, self.relief_until[who]), self.relief_until[who])
        return state

    def _actions(self, t: int) -> None:
        """Deliver today's actions: the brokerage's own randomized campaign (at each quarter's start) and the plan."""
        month = int(self.cal.month_of_day[t])
        if month >= 1 and t == self.cal.month_end_day[month - 1] + 1 and \
                self.cal.month_ends[month].month in CAMPAIGN_MONTHS:
            ai = np.flatnonzero((self.status == ACTIVE) & (self.month_start_assets >= ACTIVE_ASSETS_MIN))
            who = ai[self.streams.uniform(_P.CAMPAIGN, t, ai) < CAMPAIGN_SHARE]
            end = self.cal.month_ends[month]
            self.tags.append(f"retention-{end.year}Q{(end.month - 1) // 3 + 1}")
            action = self.streams.integers(_P.CAMPAIGN_ACTION, t, who, 0, len(ACTIONS))
            channel = _DEFAULT_CHANNEL[action]
            self._deliver(t, month, who, action, channel, np.full(who.size, -1), len(self.tags) - 1,
                          np.zeros(who.size, dtype=np.int64))
        lo, hi = self.plan_start[t], self.plan_start[t + 1]
        if hi > lo:
            p = self.plan
            who = p.client[lo:hi]
            # A client's k-th action of the day draws from its own stream.
            first = np.r_[True, who[1:] != who[:-1]]
            start = np.maximum.accumulate(np.where(first, np.arange(who.size), 0))
            occurrence = np.arange(who.size) - start
            for k in range(int(occurrence.max()) + 1):
                sel = np.flatnonzero(occurrence == k)
                self._deliver(t, month, who[sel], p.action[lo:hi][sel], p.channel[lo:hi][sel], p.broker[lo:hi][sel],
                              1, np.full(sel.size, k))

    def _deliver(self, t: int, month: int, who: np.ndarray, action: np.ndarray, channel: np.ndarray,
                 broker: np.ndarray, tag: int, occurrence: np.ndarray) -> None:
        """One attempt per client: record it, and for active clients apply what it does and keep the truth."""
        open_ = (self.status != NOT_OPEN) & (self.status != CLOSED)
        keep = open_[who]
        who, action, channel, broker = who[keep], action[keep], channel[keep], broker[keep]
        occurrence = occurrence[keep]
        if not who.size:
            return
        u = np.empty((who.size, 2))
        for k in np.unique(occurrence).tolist():
            sel = occurrence == k
            u[sel] = self.streams.uniform(_P.ACTION + k, t, who[sel], 2)
        reach, decline = _REACH[channel], _DECLINE[channel]
        outcome = np.where(u[:, 0] < reach, 0, np.where(u[:, 0] < reach + decline, 3, 1))
        reached, noticed = outcome == 0, outcome != 1
        in_force = month - 1  # the campaigns of the month-end that set the hazard now in force
        sel = np.flatnonzero(self.status[who] == ACTIVE)
        if sel.size:
            c = who[sel]
            # Each client's state after its action, gathered over the actions so the hazard is computed once.
            state = {key: getattr(self, key)[c].copy() for key in _ACTION_STATE}
            for a in np.unique(action[sel]).tolist():
                rows = np.flatnonzero(action[sel] == a)
                surfaced = u[sel[rows], 1] < EFFECTS.surfaced(ACTIONS[a])
                for key, values in self._effect(a, c[rows], t, reached[sel[rows]], noticed[sel[rows]],
                                                surfaced).items():
                    state[key][rows] = values
            before = self._parts(c, in_force, t)
            after = self._parts(c, in_force, t, **state)
            hazard_before = self.hazard[c].copy()
            self.hazard_parts[c] = np.maximum(self.hazard_parts[c] + after - before, 0.0)
            self.hazard[c] = self.frailty[c] * HAZARD_BASE + self.hazard_parts[c].sum(axis=1)
            self.sinks["action_effects"].add(
                client=c, day=np.full(c.size, t), action=action[sel], tag=np.full(c.size, tag),
                outcome=outcome[sel], without=-np.expm1(-3 * hazard_before), with_=-np.expm1(-3 * self.hazard[c]))
            changed = state["rate"] < self.rate[c]
            if changed.any():
                cc = c[changed]
                self.sinks["commission_rate_changes"].add(
                    change_id=self._next_ids("rate_change", cc), client=cc, day=np.full(cc.size, t),
                    old=self.rate[cc], new=state["rate"][changed], tag=np.full(cc.size, tag))
            closed = (state["complaint_open_until"] < self.complaint_open_until[c]) & (self.complaint_open_until[c] > t)
            if closed.any():
                self.resolutions.append(np.stack([c[closed], np.full(int(closed.sum()), t)]))
            for key, values in state.items():
                if key != "contact_days":  # recorded with the attempt below
                    getattr(self, key)[c] = values
        self._record_contacts(t, who, channel, outcome, broker=broker, tag=tag, action=action)

    def _emit_complaints(self) -> None:
        """All complaints at the end: an action may have closed one before the day it would have been resolved."""
        if not self.complaint_rows:
            return
        self.emit("complaints", self._complaints_resolved())

    def _complaints_resolved(self) -> dict[str, np.ndarray]:
        """Every complaint filed so far, with its resolution day moved earlier where an action closed it."""
        complaint_id, client, day, category, resolved = np.concatenate(self.complaint_rows, axis=1)
        if self.resolutions:
            closed = pd.DataFrame(np.concatenate(self.resolutions, axis=1).T, columns=["client", "closed"])
            filed = pd.DataFrame({"row": np.arange(client.size), "client": client, "day": day, "resolved": resolved})
            hit = filed.merge(closed, on="client")
            hit = hit[(hit["closed"] >= hit["day"]) & (hit["closed"] < hit["resolved"])]
            earliest = hit.groupby("row")["closed"].min()
            resolved = resolved.copy()
            resolved[earliest.index.to_numpy()] = earliest.to_numpy()
        return {"complaint_id": complaint_id, "client": client, "day": day, "category": category,
                "resolved_day": resolved}

    def _result(self) -> SimulationResult:
        reads = self.reads_so_far()
        if reads is not None:
            self.sinks["report_reads"].take()
            self.emit("report_reads", reads)
        self._emit_complaints()
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
