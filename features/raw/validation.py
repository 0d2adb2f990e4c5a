"""Checks raw tables against the contract and says exactly which table, column and rows are at fault."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from features.raw.schema import OPTIONAL_COLUMNS, RAW_TABLES, Column, Table

_SHOWN_ROWS = 10

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "date": pa.date32(),
    "bool": pa.bool_(),
}


class Finding(BaseModel):
    """One broken rule of the contract, with the rows (1-based, as in the file) that break it."""

    model_config = ConfigDict(frozen=True)

    table: str
    column: str | None
    check: str
    message: str
    rows: tuple[int, ...] = ()
    count: int = 0

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        rows = ""
        if self.rows:
            more = f" and {self.count - len(self.rows)} more" if self.count > len(self.rows) else ""
            rows = f" (rows {', '.join(map(str, self.rows))}{more})"
        return f"{where}: {self.message}{rows}"


class RawDataError(Exception):
    """Raw data broke the contract; nothing was written."""

    code = "raw_data_invalid"

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        shown = "\n".join(f"  - {f}" for f in findings[:50])
        more = f"\n  … and {len(findings) - 50} more findings" if len(findings) > 50 else ""
        super().__init__(f"{len(findings)} problem(s) in the raw data:\n{shown}{more}")


def arrow_schema(table: Table) -> pa.Schema:
    """The parquet schema of a raw table."""
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in table.columns])


def _rows(mask: np.ndarray, offset: int) -> tuple[tuple[int, ...], int]:
    idx = np.flatnonzero(mask)
    return tuple(int(i) + 1 + offset for i in idx[:_SHOWN_ROWS]), int(idx.size)


def _finding(table: Table, column: str | None, check: str, message: str, mask: np.ndarray, offset: int) -> Finding:
    rows, count = _rows(mask, offset)
    return Finding(table=table.name, column=column, check=check, message=message, rows=rows, count=count)


def with_optional_columns(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the optional columns it lacks added, empty."""
    optional = [c for c in OPTIONAL_COLUMNS.get(table.name, ()) if c not in frame.columns]
    if not optional:
        return frame
    return frame.assign(**{c: pd.Series([None] * len(frame), index=frame.index, dtype=object) for c in optional})


def coerce(table: Table, frame: pd.DataFrame, *, offset: int = 0) -> tuple[pd.DataFrame, list[Finding]]:
    """Convert a frame (for example read from CSV) to the contract's types; unparseable values are findings.

    Optional columns the frame lacks are added empty."""
    findings: list[Finding] = []
    frame = with_optional_columns(table, frame)
    missing = [c for c in table.column_names if c not in frame.columns]
    if missing:
        findings.append(
            Finding(table=table.name, column=None, check="columns",
                    message=f"missing column(s): {', '.join(missing)}; expected {', '.join(table.column_names)}")
        )
        return frame, findings
    out: dict[str, pd.Series] = {}
    for column in table.columns:
        raw = frame[column.name]
        was_null = raw.isna().to_numpy()
        converted = _convert(column, raw)
        bad = converted.isna().to_numpy() & ~was_null
        if bad.any():
            findings.append(
                _finding(table, column.name, "type", f"values that are not of type {column.type}", bad, offset)
            )
        out[column.name] = converted
    return pd.DataFrame(out), findings


def _convert(column: Column, raw: pd.Series) -> pd.Series:
    kind = column.type
    if kind == "string":
        return raw.astype("string").astype(object).where(raw.notna(), None)
    if kind == "date":
        if pd.api.types.is_datetime64_any_dtype(raw):
            return raw.dt.tz_localize(None).dt.normalize() if raw.dt.tz is not None else raw.dt.normalize()
        return pd.to_datetime(raw, errors="coerce", format="mixed").dt.normalize()
    if kind == "bool":
        if pd.api.types.is_bool_dtype(raw):
            return raw.astype("boolean")
        text = raw.astype("string").str.strip().str.lower()
        mapped = text.map({"true": True, "false": False, "1": True, "0": False, "t": True, "f": False})
        return mapped.astype("boolean")
    numeric = pd.to_numeric(raw, errors="coerce")
    if kind.startswith("int"):
        whole = numeric.notna() & (numeric != np.floor(numeric.fillna(0)))
        numeric = numeric.mask(whole)
        return numeric.astype("Int64")
    return numeric.astype("float64")


def validate(table: Table, frame: pd.DataFrame, *, offset: int = 0, check_key: bool = True) -> list[Finding]:
    """Check a typed frame against one table's contract (columns, nulls, ranges, allowed values, key)."""
    findings: list[Finding] = []
    missing = [c for c in table.column_names if c not in frame.columns]
    extra = [c for c in frame.columns if c not in table.column_names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s): {', '.join(map(str, extra))}")
        findings.append(Finding(table=table.name, column=None, check="columns", message="; ".join(parts)))
        return findings
    for column in table.columns:
        findings += _check_column(table, column, frame[column.name], offset)
    if check_key and len(frame):
        dup = frame.duplicated(list(table.primary_key), keep="first").to_numpy()
        if dup.any():
            key = ", ".join(table.primary_key)
            findings.append(_finding(table, key, "unique", f"duplicate primary key ({key})", dup, offset))
    return findings


def _check_column(table: Table, column: Column, values: pd.Series, offset: int) -> list[Finding]:
    findings: list[Finding] = []
    null = values.isna().to_numpy()
    if not column.nullable and null.any():
        findings.append(_finding(table, column.name, "not_null", "empty values in a required column", null, offset))
    present = values[~null]
    if present.empty:
        return findings

    def flag(mask_present: np.ndarray, check: str, message: str) -> None:
        mask = np.zeros(len(values), dtype=bool)
        mask[np.flatnonzero(~null)[mask_present]] = True
        findings.append(_finding(table, column.name, check, message, mask, offset))

    if column.allowed is not None:
        bad = ~present.isin(column.allowed).to_numpy()
        if bad.any():
            flag(bad, "allowed", f"values outside the allowed set {', '.join(column.allowed)}")
    if column.type in ("int16", "int32", "int64", "float64"):
        numbers = present.to_numpy(dtype="float64")
        if column.type == "float64" and not np.isfinite(numbers).all():
            flag(~np.isfinite(numbers), "finite", "values that are not finite numbers")
        if column.minimum is not None:
            bad = numbers <= column.minimum if column.exclusive_minimum else numbers < column.minimum
            if bad.any():
                op = ">" if column.exclusive_minimum else "≥"
                flag(bad, "minimum", f"values that are not {op} {column.minimum:g}")
        if column.maximum is not None:
            bad = numbers > column.maximum
            if bad.any():
                flag(bad, "maximum", f"values above {column.maximum:g}")
        if column.multiple_of:
            bad = np.mod(numbers, column.multiple_of) != 0
            if bad.any():
                flag(bad, "multiple_of", f"values that are not a multiple of {column.multiple_of}")
    return findings


def validate_references(frames: Mapping[str, pd.DataFrame]) -> list[Finding]:
    """Check that every reference column points at an existing row of the table it names."""
    findings: list[Finding] = []
    for name, frame in frames.items():
        table = RAW_TABLES[name]
        for column in table.columns:
            if column.references is None or column.name not in frame.columns:
                continue
            target_table, target_column = column.references.split(".")
            if target_table not in frames:
                continue
            known = pd.Index(frames[target_table][target_column].dropna().unique())
            values = frame[column.name]
            bad = (values.notna() & ~values.isin(known)).to_numpy()
            if bad.any():
                findings.append(
                    _finding(table, column.name, "references", f"values not found in {column.references}", bad, 0)
                )
    return findings


def to_arrow(table: Table, frame: pd.DataFrame) -> pa.Table:
    """Convert a validated frame to an arrow table with the contract's schema."""
    return pa.Table.from_pandas(frame[table.column_names], schema=arrow_schema(table), preserve_index=False)
