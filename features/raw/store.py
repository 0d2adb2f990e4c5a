"""Reads and writes the raw tables as parquet files, validating every row that goes in."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.raw.schema import RAW_TABLES, table
from features.raw.validation import RawDataError, arrow_schema, to_arrow, validate, with_optional_columns

_PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}


def table_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{table(name).name}.parquet"


def write_table(directory: Path, name: str, frame: pd.DataFrame) -> Path:
    """Validate a whole table and write it; raises RawDataError and writes nothing when it breaks the contract."""
    contract = table(name)
    frame = with_optional_columns(contract, frame)
    findings = validate(contract, frame)
    if findings:
        raise RawDataError(findings)
    path = table_path(directory, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_arrow(contract, frame), path, **_PARQUET_OPTIONS)
    return path


class TableWriter:
    """Writes one large raw table in chunks (row groups), validating each chunk before it is written."""

    def __init__(self, directory: Path, name: str) -> None:
        self.contract = table(name)
        self.path = table_path(directory, name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_suffix(".parquet.partial")
        self._writer = pq.ParquetWriter(self._partial, arrow_schema(self.contract), **_PARQUET_OPTIONS)
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame = with_optional_columns(self.contract, frame)
        findings = validate(self.contract, frame, offset=self.rows)
        if findings:
            raise RawDataError(findings)
        self._writer.write_table(to_arrow(self.contract, frame))
        self.rows += len(frame)

    def close(self) -> Path:
        self._writer.close()
        self._partial.replace(self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def read_table(directory: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one raw table; dates come back as datetime64 (midnight, Asia/Shanghai trading dates)."""
    path = table_path(directory, name)
    if not path.exists():
        raise FileNotFoundError(
            f"raw table {name!r} not found at {path}; run `crm data generate` or `crm data import DIR` first"
        )
    arrow = pq.read_table(path, columns=columns)
    return arrow.to_pandas(date_as_object=False)


def read_arrow(directory: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(table_path(directory, name), columns=columns)


def row_counts(directory: Path) -> dict[str, int]:
    """Rows per raw table present in a directory (absent tables are left out)."""
    counts = {}
    for name in RAW_TABLES:
        path = table_path(directory, name)
        if path.exists():
            counts[name] = pq.ParquetFile(path).metadata.num_rows
    return counts


def replace_directory(staged: Path, target: Path) -> None:
    """Swap a fully written staging directory into place, so readers never see a half-written set."""
    target = Path(target)
    backup = target.with_name(target.name + ".previous")
    if backup.exists():
        shutil.rmtree(backup)
    if target.exists():
        target.rename(backup)
    staged.rename(target)
    if backup.exists():
        shutil.rmtree(backup)
