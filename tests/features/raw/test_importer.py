"""Importing a brokerage's exports: good files replace the raw data at once, bad files change nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.raw.importer import import_directory
from features.raw.schema import RAW_TABLES
from features.raw.store import read_table
from features.raw.validation import RawDataError


def _state(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _export_csv(small_world: Path, target: Path) -> Path:
    target.mkdir()
    for name in RAW_TABLES:
        read_table(small_world / "raw", name).to_csv(target / f"{name}.csv", index=False)
    return target


def test_csv_exports_import_and_read_back_equal(small_world: Path, tmp_path: Path) -> None:
    source = _export_csv(small_world, tmp_path / "export")
    summary = import_directory(source, tmp_path / "raw")
    assert summary.rows["trades"] == len(read_table(small_world / "raw", "trades"))
    for name in ("trades", "clients", "report_reads"):
        pd.testing.assert_frame_equal(read_table(tmp_path / "raw", name), read_table(small_world / "raw", name),
                                      check_dtype=False)


def test_damaged_file_is_rejected_with_table_column_rows_and_state_unchanged(small_world: Path,
                                                                              tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    shutil.copytree(small_world / "raw", raw_dir)
    before = _state(raw_dir)
    source = tmp_path / "export"
    shutil.copytree(small_world / "raw", source)
    trades = pd.read_parquet(source / "trades.parquet")
    trades.loc[[3, 7], "commission"] = 1.5
    trades.loc[10, "side"] = "short"
    (source / "trades.parquet").unlink()
    trades.to_csv(source / "trades.csv", index=False)
    (source / "contacts.parquet").unlink()

    with pytest.raises(RawDataError) as caught:
        import_directory(source, raw_dir)
    found = {(f.table, f.column, f.check): f.rows for f in caught.value.findings}
    assert found[("trades", "commission", "minimum")] == (4, 8)
    assert found[("trades", "side", "allowed")] == (11,)
    assert ("contacts", None, "file") in found
    assert _state(raw_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "raw"], "a staging folder was left behind"


def test_rows_referring_to_unknown_clients_are_rejected(small_world: Path, tmp_path: Path) -> None:
    source = tmp_path / "export"
    shutil.copytree(small_world / "raw", source)
    transfers = pd.read_parquet(source / "cash_transfers.parquet")
    transfers.loc[0, "client_id"] = "C9999999"
    transfers.to_parquet(source / "cash_transfers.parquet", index=False)
    with pytest.raises(RawDataError, match=r"cash_transfers.client_id: values not found in clients.client_id"):
        import_directory(source, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
