"""The A-share trading calendar of the synthetic world: weekdays less the main exchange holidays."""

from __future__ import annotations

import datetime as dt

import numpy as np

# Lunar new year's day; the exchanges close for about a week around it.
_LUNAR_NEW_YEAR = {
    2015: (2, 19), 2016: (2, 8), 2017: (1, 28), 2018: (2, 16), 2019: (2, 5), 2020: (1, 25), 2021: (2, 12),
    2022: (2, 1), 2023: (1, 22), 2024: (2, 10), 2025: (1, 29), 2026: (2, 17), 2027: (2, 6), 2028: (1, 26),
    2029: (2, 13), 2030: (2, 3), 2031: (1, 23), 2032: (2, 11), 2033: (1, 31), 2034: (2, 19), 2035: (2, 8),
}


def exchange_holidays(year: int) -> set[dt.date]:
    """New year, spring festival week, Qingming, Labour day, National day week (approximate, fixed rules)."""
    days = {dt.date(year, 1, 1)}
    month, day = _LUNAR_NEW_YEAR.get(year, (2, 1))
    lny = dt.date(year, month, day)
    days |= {lny + dt.timedelta(days=k) for k in range(-1, 6)}
    days |= {dt.date(year, 4, d) for d in (4, 5)}
    days |= {dt.date(year, 5, d) for d in range(1, 6)}
    days |= {dt.date(year, 10, d) for d in range(1, 8)}
    return days


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Trading days in [start, end]."""
    holidays: set[dt.date] = set()
    for year in range(start.year, end.year + 1):
        holidays |= exchange_holidays(year)
    days = []
    day = start
    while day <= end:
        if day.weekday() < 5 and day not in holidays:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def month_end(year: int, month: int) -> dt.date:
    first_next = dt.date(year + (month == 12), month % 12 + 1, 1)
    return first_next - dt.timedelta(days=1)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


class Calendar:
    """Trading days of a window of whole months, plus the last trading day before it (the opening state)."""

    def __init__(self, start: dt.date, months: int) -> None:
        if months < 1:
            raise ValueError("the window needs at least one month")
        self.start = dt.date(start.year, start.month, 1)
        last = add_months(self.start, months - 1)
        self.end = month_end(last.year, last.month)
        self.opening_date = self.start - dt.timedelta(days=1)
        before = trading_days(self.start - dt.timedelta(days=20), self.opening_date)
        window = trading_days(self.start, self.end)
        # Day 0 is the last trading day before the window: the opening valuation.
        self.days: list[dt.date] = [before[-1], *window]
        self.dates = np.array(self.days, dtype="datetime64[D]")
        self.month_ends: list[dt.date] = [self.opening_date] + [
            month_end(add_months(self.start, k).year, add_months(self.start, k).month) for k in range(months)
        ]
        # Index of the last trading day on or before each month-end.
        self.month_end_day = np.searchsorted(self.dates, np.array(self.month_ends, dtype="datetime64[D]"),
                                             side="right") - 1
        self.month_of_day = np.searchsorted(self.month_end_day, np.arange(len(self.days)), side="left")

    def __len__(self) -> int:
        return len(self.days)
