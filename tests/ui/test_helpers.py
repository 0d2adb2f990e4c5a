"""The pages' small helpers, without a browser: where sign-in may send a browser back to, and charts on odd data."""

from __future__ import annotations

import math

import pytest

from service.ui import charts
from service.ui.session import safe_next


@pytest.mark.parametrize(("asked", "kept"), [
    ("/ui/compliance", "/ui/compliance"),
    ("/ui/clients?client_id=C0000003", "/ui/clients?client_id=C0000003"),
    ("https://evil.example/ui/compliance", None),
    ("//evil.example/ui/", None),
    ("/\\evil.example", None),
    ("/v1/rulesets", None),
    ("/ui/login?next=/ui/", None),
    ("", None),
])
def test_sign_in_returns_only_to_a_page_of_this_site(asked: str, kept: str | None) -> None:
    assert safe_next(asked) == kept


def test_a_sparkline_keeps_gaps_and_survives_no_values() -> None:
    line = charts.sparkline([1.0, None, math.nan, 3.0, 2.0], ["2025-01", "", "", "", "2025-05"], title="assets")
    assert line.count("<polyline") == 2 and "last 2" in line
    assert "no values" in charts.sparkline([None, math.nan], title="empty")


def test_charts_escape_labels() -> None:
    svg = charts.bars(["<script>"], {"a": [1.0]}, "t & <b>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "t &amp; &lt;b&gt;" in svg
    assert "<script>" not in charts.scatter([(1.0, 2.0, "<script>")], "s", "x", "y")
