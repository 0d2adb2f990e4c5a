"""The committed reference documents are exactly what the code generates."""

from __future__ import annotations

from pathlib import Path

from features.catalog import catalog_markdown
from features.raw.schema import schema_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_raw_schema_document_is_current() -> None:
    assert (DOCS / "raw-schema.md").read_text(encoding="utf-8") == schema_markdown(), (
        "docs/raw-schema.md is stale: run `crm data schema --out docs/raw-schema.md`")


def test_indicator_catalog_document_is_current() -> None:
    assert (DOCS / "indicator-catalog.md").read_text(encoding="utf-8") == catalog_markdown(), (
        "docs/indicator-catalog.md is stale: run `crm features catalog --out docs` (writes catalog.md) "
        "and copy it to docs/indicator-catalog.md")
