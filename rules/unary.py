"""Input entries of decision tables: DMN/FEEL unary tests, parsed into sets that can be evaluated and analysed.

An entry is ``-`` (any value), a comma-separated list of tests (any may hold), or ``not(...)`` of such a list.
A test is a comparison (``< 5``, ``>= 100000``), a range (``[100000..1000000)``, ``]0..1]``), or a literal
(``3``, ``"premier"`` or ``premier``, ``true``). Numbers may be written with ``_`` separators.

Every entry becomes a :class:`Condition`: a union of intervals for numbers, a set of values (possibly negated) for
strings, a set of truth values for booleans. The same object evaluates an input, writes Python source for the
compiled tables, writes FEEL text for DMN, and answers the set questions of the table analysis.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

TermType = Literal["number", "integer", "string", "boolean"]
INF = math.inf


class EntryError(ValueError):
    """An entry that cannot be read; the message says what is wrong and what is allowed."""


@dataclass(frozen=True, order=True)
class Interval:
    """A real interval; infinite ends are open."""

    lo: float
    lo_closed: bool
    hi: float
    hi_closed: bool

    def contains(self, x: float) -> bool:
        if x < self.lo or (x == self.lo and not self.lo_closed):
            return False
        return not (x > self.hi or (x == self.hi and not self.hi_closed))

    @property
    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))

    def feel(self) -> str:
        if self.lo == self.hi:
            return fmt_number(self.lo)
        if self.lo == -INF:
            return ("<= " if self.hi_closed else "< ") + fmt_number(self.hi)
        if self.hi == INF:
            return (">= " if self.lo_closed else "> ") + fmt_number(self.lo)
        return (("[" if self.lo_closed else "(") + fmt_number(self.lo) + ".." + fmt_number(self.hi)
                + ("]" if self.hi_closed else ")"))

    def python(self, var: str) -> str:
        if self.lo == self.hi:
            return f"{var} == {self.lo!r}"
        parts = []
        if self.lo != -INF:
            parts.append(f"{self.lo!r} {'<=' if self.lo_closed else '<'} {var}")
        if self.hi != INF:
            parts.append(f"{var} {'<=' if self.hi_closed else '<'} {self.hi!r}")
        return " and ".join(parts) or "True"


ALL_REALS = (Interval(-INF, False, INF, False),)


def fmt_number(x: float) -> str:
    if x in (INF, -INF):
        return "inf" if x > 0 else "-inf"
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    # FEEL has no exponent notation: write every digit.
    return format(Decimal(repr(float(x))), "f")


def normalise(intervals: list[Interval]) -> tuple[Interval, ...]:
    """Sorted, non-empty, non-overlapping, non-touching intervals with the same union."""
    items = sorted((i for i in intervals if not i.empty), key=lambda i: (i.lo, not i.lo_closed))
    out: list[Interval] = []
    for cur in items:
        if out:
            last = out[-1]
            touches = cur.lo < last.hi or (cur.lo == last.hi and (last.hi_closed or cur.lo_closed))
            if touches:
                if cur.hi > last.hi or (cur.hi == last.hi and cur.hi_closed and not last.hi_closed):
                    out[-1] = Interval(last.lo, last.lo_closed, cur.hi, cur.hi_closed)
                continue
        out.append(cur)
    return tuple(out)


def complement(intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    lo, lo_closed = -INF, False
    for i in intervals:
        out.append(Interval(lo, lo_closed, i.lo, not i.lo_closed))
        lo, lo_closed = i.hi, not i.hi_closed
    out.append(Interval(lo, lo_closed, INF, False))
    return normalise(out)


@dataclass(frozen=True)
class Condition:
    """One parsed input entry over one typed input."""

    text: str  # canonical FEEL text
    type: TermType
    any: bool = False
    intervals: tuple[Interval, ...] = ()  # number, integer
    values: frozenset = frozenset()  # string, boolean
    negated: bool = False  # string only: the entry is not(values)

    def matches(self, x: object) -> bool:
        if self.any:
            return True
        if x is None:
            return False
        if self.type in ("number", "integer"):
            return any(i.contains(x) for i in self.intervals)  # type: ignore[arg-type]
        if self.type == "boolean":
            return bool(x) in self.values
        return (x in self.values) != self.negated

    def python(self, var: str, nullable: bool) -> str | None:
        """A Python expression true when ``var`` passes; None when any value passes."""
        if self.any:
            return None
        if self.type in ("number", "integer"):
            expr = " or ".join(f"({i.python(var)})" for i in self.intervals) or "False"
        elif self.type == "boolean":
            expr = " or ".join(f"{var} == {v!r}" for v in sorted(self.values)) or "False"
        else:
            items = sorted(self.values)
            op = "not in" if self.negated else "in"
            expr = (f"{var} {'!=' if self.negated else '=='} {items[0]!r}" if len(items) == 1
                    else f"{var} {op} {{{', '.join(repr(v) for v in items)}}}")
        return f"({var} is not None and ({expr}))" if nullable else f"({expr})"


_NUMBER = r"[+-]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_RANGE = re.compile(rf"^([\[\(\]])\s*({_NUMBER})\s*\.\.\s*({_NUMBER})\s*([\]\)\[])$")
_COMPARE = re.compile(rf"^(<=|>=|<|>|=)\s*({_NUMBER})$")
_NUMBER_ONLY = re.compile(rf"^{_NUMBER}$")
_BARE_WORD = re.compile(r"^[A-Za-z_][\w\-]*$")


def entry_text(raw: object) -> str:
    """The text of an entry as written in YAML (YAML may already have turned it into a number or a boolean)."""
    if raw is None:
        raise EntryError("empty entry; write - for any value")
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float):
        return fmt_number(raw)
    if isinstance(raw, list):
        return ", ".join(entry_text(r) for r in raw)
    if not isinstance(raw, str):
        raise EntryError(f"entry {raw!r} is not text")
    return raw.strip()


def _split(text: str) -> list[str]:
    """Split a test list at commas outside quotes (ranges use '..', so a comma always separates tests)."""
    parts, quoted, cur = [], False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    if any(not p for p in parts):
        raise EntryError(f"empty test in {text!r}")
    return parts


def _number(text: str) -> float:
    return float(text.replace("_", ""))


def _interval(test: str) -> Interval:
    if m := _RANGE.match(test):
        lo, hi = _number(m.group(2)), _number(m.group(3))
        interval = Interval(lo, m.group(1) == "[", hi, m.group(4) == "]")
        if interval.empty:
            raise EntryError(f"range {test!r} is empty: no value lies between its start and its end")
        return interval
    if m := _COMPARE.match(test):
        op, x = m.group(1), _number(m.group(2))
        return {"<": Interval(-INF, False, x, False), "<=": Interval(-INF, False, x, True),
                ">": Interval(x, False, INF, False), ">=": Interval(x, True, INF, False),
                "=": Interval(x, True, x, True)}[op]
    if _NUMBER_ONLY.match(test):
        x = _number(test)
        return Interval(x, True, x, True)
    raise EntryError(f"{test!r} is not a number test; write a number, a comparison such as >= 100000, "
                     "or a range such as [100000..1000000)")


def _string(test: str, allowed: tuple[str, ...] | None) -> str:
    if len(test) >= 2 and test[0] == test[-1] == '"':
        value = test[1:-1]
    elif _BARE_WORD.match(test) and test not in ("true", "false"):
        value = test
    else:
        raise EntryError(f"{test!r} is not a text value; write a word or a quoted text (comparisons and ranges "
                         "apply to numbers only)")
    if allowed is not None and value not in allowed:
        raise EntryError(f"{value!r} is not one of the allowed values: {', '.join(allowed)}")
    return value


def parse(raw: object, type: TermType, allowed: tuple[str, ...] | None = None) -> Condition:
    """Parse one entry for an input of the given type; raises :class:`EntryError` saying what is wrong."""
    text = entry_text(raw)
    if text == "-":
        return Condition(text="-", type=type, any=True)
    negated = False
    body = text
    if body.startswith("not(") and body.endswith(")"):
        negated, body = True, body[4:-1].strip()
    tests = _split(body)
    if type in ("number", "integer"):
        intervals = normalise([_interval(t) for t in tests])
        if negated:
            intervals = complement(intervals)
        canonical = ", ".join(_interval(t).feel() for t in tests)
        return Condition(text=f"not({canonical})" if negated else canonical, type=type, intervals=intervals)
    if type == "boolean":
        values = set()
        for t in tests:
            if t not in ("true", "false"):
                raise EntryError(f"{t!r} is not a boolean test; write true or false")
            values.add(t == "true")
        if negated:
            values = {True, False} - values
        canonical = ", ".join(tests)
        return Condition(text=f"not({canonical})" if negated else canonical, type=type, values=frozenset(values))
    strings = [_string(t, allowed) for t in tests]
    canonical = ", ".join(f'"{s}"' for s in strings)
    return Condition(text=f"not({canonical})" if negated else canonical, type=type, values=frozenset(strings),
                     negated=negated)


def any_condition(type: TermType) -> Condition:
    return Condition(text="-", type=type, any=True)
