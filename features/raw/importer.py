"""Imports a brokerage's own exports (parquet or CSV, one file per raw table) through the contract.

Either every table passes and the whole set replaces the raw folder at once, or nothing changes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from features.raw.schema import OPTIONAL_TABLES, RAW_TABLES
from features.raw.store import replace_directory, write_table
from features.raw.validation import Finding, RawDataError, coerce, validate, validate_references


class ImportSummary(BaseModel):
    """What an import brought in: rows per table and the files they came from."""

    rows: dict[str, int]
    files: dict[str, str]


def _find_file(source: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        candidate = source / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def load_directory(source: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[Finding]]:
    """Read and check every raw table in a folder; returns the typed frames and all findings."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"import folder {source} does not exist or is not a folder")
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    findings: list[Finding] = []
    for name, contract in RAW_TABLES.items():
        path = _find_file(source, name)
        if path is None and name in OPTIONAL_TABLES:
            empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in contract.column_names})
            frames[name], _ = coerce(contract, empty)
            continue
        if path is None:
            findings.append(
                Finding(table=name, column=None, check="file",
                        message=f"no {name}.parquet or {name}.csv in {source} (an empty table needs a header row)")
            )
            continue
        try:
            frame = _read(path)
        except Exception as error:  # noqa: BLE001 - any unreadable file is a finding, not a crash
            findings.append(Finding(table=name, column=None, check="file", message=f"cannot read {path}: {error}"))
            continue
        typed, coerce_findings = coerce(contract, frame)
        findings += coerce_findings
        if not any(f.check == "columns" for f in coerce_findings):
            findings += validate(contract, typed)
            frames[name] = typed
        files[name] = str(path)
    findings += validate_references(frames)
    return frames, files, findings


def import_directory(source: Path, raw_dir: Path) -> ImportSummary:
    """Validate a folder of exports and, only if all of it passes, make it the raw data of this installation."""
    frames, files, findings = load_directory(source)
    if findings:
        raise RawDataError(findings)
    raw_dir = Path(raw_dir)
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".raw-import-", dir=raw_dir.parent))
    try:
        for name, frame in frames.items():
            write_table(staging, name, frame)
        replace_directory(staging, raw_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ImportSummary(rows={n: len(f) for n, f in frames.items()}, files=files)
