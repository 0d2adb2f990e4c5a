"""A clean console for `crm`: library warnings that users of the CLI cannot act on are filtered at the entry point.

Each filter names the library, the cause and where it is fixed upstream; drop it when the pinned version has the
fix. Deprecations the project's own code causes are fixed in the code instead. The test suite does not use these
filters: pytest turns unexpected warnings into errors (pyproject.toml).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

# (category, module whose code triggers the warning, why it is filtered)
LIBRARY_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    (DeprecationWarning, r"ibis\.backends\.duckdb",
     "ibis 12.0 calls DuckDB's fetch_arrow_table(), deprecated since DuckDB 1.5; ibis-project/ibis#12001 switches "
     "to to_arrow_table() after the pinned 12.0"),
    (DeprecationWarning, r"mlflow\.store\.",
     "MLflow 3.17's tracking tables declare relationships with SQLAlchemy's noload strategy, deprecated in "
     "SQLAlchemy 2.1 (the warning fires when MLflow configures its mappers)"),
)

_installed = False


def _apply() -> None:
    for category, module, _why in LIBRARY_WARNINGS:
        # filterwarnings removes an identical filter before inserting it at the front: applying again reorders.
        warnings.filterwarnings("ignore", category=category, module=module)


class _AfterFeast(importlib.abc.MetaPathFinder):
    """Feast's modules call ``warnings.simplefilter("once", DeprecationWarning)`` at import (feast 0.67:
    feast/feature_store.py, feature_view.py, on_demand_feature_view.py), which puts every deprecation ahead of the
    filters above; once ``feast`` has been imported, put them back in front."""

    def find_spec(self, name: str, path, target=None):
        if name != "feast":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            try:
                original(module)
            finally:
                _apply()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def quiet_library_warnings() -> None:
    """Filter the library warnings listed above for this process (the `crm` entry point calls it once)."""
    global _installed
    _apply()
    if not _installed:
        _installed = True
        if "feast" not in sys.modules:
            sys.meta_path.insert(0, _AfterFeast())
