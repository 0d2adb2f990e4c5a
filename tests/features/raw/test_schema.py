"""The raw-table contract: documented, consistent, and enforced on every check it declares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.raw.schema import RAW_TABLES, TRADES, schema_markdown, table
from features.raw.store import read_table, write_table
from features.raw.validation import RawDataError, arrow_schema, coerce, validate, validate_references


def test_every_column_is_documented_with_unit_meaning_and_chinese_term() -> None:
    for t in RAW_TABLES.values():
        assert t.zh and t.row
        for c in t.columns:
            assert c.meaning.strip(), f"{t.name}.{c.name} has no meaning"
            assert c.zh.strip(), f"{t.name}.{c.name} has no Chinese term"
            if c.name in ("amount", "commission", "stamp_duty", "cash", "total_assets", "paid_amount"):
                assert c.unit == "yuan"


def test_keys_and_references_point_at_real_columns() -> None:
    for t in RAW_TABLES.values():
        for key in t.primary_key:
            t.column(key)
        for c in t.columns:
            if c.references:
                target, column = c.references.split(".")
                assert table(target).column(column).type == c.type


def test_schema_markdown_lists_every_column() -> None:
    text = schema_markdown()
    for t in RAW_TABLES.values():
        assert f"`{t.name}`" in text
        for c in t.columns:
            assert f"`{c.name}`" in text


def test_unknown_table_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known tables: branches"):
        table("orders")


def _trades(**overrides: object) -> pd.DataFrame:
    row = {
        "trade_id": 1, "client_id": "C0000001", "security_id": "600000", "trade_date": pd.Timestamp("2024-01-02"),
        "side": "buy", "quantity": 200, "price": 10.5, "amount": 2100.0, "commission": 5.0, "stamp_duty": 0.0,
    }
    row.update(overrides)
    return pd.DataFrame([row])


@pytest.mark.parametrize(
    ("override", "column", "check"),
    [
        ({"side": "short"}, "side", "allowed"),
        ({"quantity": 150}, "quantity", "multiple_of"),
        ({"commission": 4.99}, "commission", "minimum"),
        ({"price": 0.0}, "price", "minimum"),
        ({"client_id": None}, "client_id", "not_null"),
        ({"amount": float("inf")}, "amount", "finite"),
    ],
)
def test_validation_names_table_column_and_row(override: dict, column: str, check: str) -> None:
    frame = pd.concat([_trades(), _trades(trade_id=2, **override)], ignore_index=True)
    findings = validate(TRADES, frame)
    assert [(f.table, f.column, f.check, f.rows) for f in findings] == [("trades", column, check, (2,))]


def test_duplicate_primary_key_is_found() -> None:
    findings = validate(TRADES, pd.concat([_trades(), _trades()], ignore_index=True))
    assert [(f.check, f.rows) for f in findings] == [("unique", (2,))]


def test_missing_and_unexpected_columns() -> None:
    frame = _trades().drop(columns=["commission"]).assign(broker="x")
    (finding,) = validate(TRADES, frame)
    assert "missing column(s): commission" in finding.message and "unexpected column(s): broker" in finding.message


def test_coerce_reports_unparseable_csv_values() -> None:
    text = _trades().astype(str).assign(trade_date="2024-13-45", quantity="two hundred")
    _, findings = coerce(TRADES, text)
    assert {(f.column, f.check) for f in findings} == {("trade_date", "type"), ("quantity", "type")}


def test_references_to_missing_rows() -> None:
    clients = pd.DataFrame({"client_id": ["C0000002"]})
    findings = validate_references({"clients": clients, "trades": _trades()})
    assert [(f.table, f.column, f.check) for f in findings] == [("trades", "client_id", "references")]


def test_write_refuses_bad_rows_and_writes_nothing(tmp_path) -> None:
    with pytest.raises(RawDataError, match=r"trades.commission: values that are not ≥ 5 \(rows 1\)"):
        write_table(tmp_path, "trades", _trades(commission=1.0))
    assert not list(tmp_path.iterdir())


def test_round_trip_keeps_types(tmp_path) -> None:
    write_table(tmp_path, "trades", _trades())
    back = read_table(tmp_path, "trades")
    assert back.dtypes["trade_date"].kind == "M"
    assert back.loc[0, "amount"] == 2100.0
    assert arrow_schema(TRADES).names == TRADES.column_names


@given(amount=st.floats(min_value=0.01, max_value=1e9), rate=st.sampled_from([0.0001, 0.00025, 0.0008]))
def test_minimum_commission_rule_holds_for_any_amount(amount: float, rate: float) -> None:
    commission = np.round(max(5.0, amount * rate), 2)
    frame = _trades(amount=round(amount, 2) or 0.01, commission=commission)
    assert not [f for f in validate(TRADES, frame) if f.column == "commission"]
