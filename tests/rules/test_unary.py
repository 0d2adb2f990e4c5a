"""Input entries: what each unary test accepts, what it rejects and how it reads back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.unary import EntryError, parse


@pytest.mark.parametrize(("entry", "inside", "outside"), [
    ("[100000..1000000)", [100_000, 999_999.99], [99_999.99, 1_000_000]),
    ("]0..1]", [0.5, 1], [0, 1.01]),
    ("(0..1)", [0.5], [0, 1]),
    (">= 5_000_000", [5_000_000, 9e9], [4_999_999]),
    ("< 0.2", [0.19, -3], [0.2]),
    ("3", [3], [2, 4]),
    ("1, 3, [5..6]", [1, 3, 5.5], [2, 4, 7]),
    ("not(< 0, > 10)", [0, 5, 10], [-1, 11]),
    ("-", [-1e9, 0, 1e9], []),
    (7, [7], [7.5]),
])
def test_number_entries(entry: object, inside: list[float], outside: list[float]) -> None:
    condition = parse(entry, "number")
    assert all(condition.matches(x) for x in inside)
    assert not any(condition.matches(x) for x in outside)


def test_text_entries_bare_or_quoted_and_negated() -> None:
    allowed = ("low", "medium", "high")
    assert parse('"high"', "string", allowed).matches("high")
    listed = parse("medium, high", "string", allowed)
    assert listed.matches("medium") and not listed.matches("low")
    negated = parse("not(high)", "string", allowed)
    assert negated.matches("low") and not negated.matches("high")
    assert negated.text == 'not("high")'


def test_boolean_entries() -> None:
    assert parse(True, "boolean").matches(True)
    assert not parse("false", "boolean").matches(True)
    assert parse("not(true)", "boolean").matches(False)


@pytest.mark.parametrize(("entry", "type_", "message"), [
    ("premier", "number", "is not a number test"),
    (">= 5", "string", "comparisons and ranges apply to numbers only"),
    ("[5..3]", "number", "empty"),
    ("(5..5)", "number", "empty"),
    ("maybe", "boolean", "write true or false"),
    ("gold", "string", "not one of the allowed values"),
    (None, "number", "write - for any value"),
    ("1, , 2", "number", "empty test"),
])
def test_bad_entries_say_what_is_wrong(entry: object, type_: str, message: str) -> None:
    allowed = ("low", "high") if type_ == "string" else None
    with pytest.raises(EntryError, match=message):
        parse(entry, type_, allowed)  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.integers(-1000, 1000), st.integers(0, 500), st.booleans(), st.booleans()),
                min_size=1, max_size=4),
       st.booleans(), st.floats(-2000, 2000, allow_nan=False))
def test_canonical_text_reads_back_the_same(ranges: list, negate: bool, x: float) -> None:
    tests = [f"{'[' if lc else '('}{lo}..{lo + width + 1}{']' if hc else ')'}" for lo, width, lc, hc in ranges]
    entry = ", ".join(tests)
    condition = parse(f"not({entry})" if negate else entry, "number")
    again = parse(condition.text, "number")
    assert again.matches(x) == condition.matches(x)
    assert again.intervals == condition.intervals
