"""A clean console: `crm demo` on a tiny world prints the project's own messages and no library warning."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from config.console import quiet_library_warnings


@pytest.mark.slow
def test_the_demo_prints_no_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "PYTHONWARNINGS", "MLFLOW_"))}
    env["CRM_HOME"] = str(tmp_path / "home")
    crm = Path(sys.executable).parent / "crm"
    result = subprocess.run([str(crm), "demo", "--no-serve", "--clients", "400", "--months", "18", "--seed", "7"],
                            env=env, capture_output=True, text=True, timeout=1_200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3_000:]
    assert "Warning" not in output, [line for line in output.splitlines() if "Warning" in line]
    # Nor the libraries' own chatter: MLflow's registration lines, Feast's materialize banner.
    for chatter in ("Successfully registered model", "Created version", "Materializing"):
        assert chatter not in output, [line for line in output.splitlines() if chatter in line]
    # The project's own messages are all there.
    for expected in ("generated world", "realism:", "risk_profile v1 (champion)", "activated"):
        assert expected in output, expected


def test_the_entry_point_filters_only_the_named_library_deprecations() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_warnings()
        # What Feast does at import: every deprecation "once", in front of the list.
        warnings.simplefilter("once", DeprecationWarning)
        quiet_library_warnings()  # what the import hook does once feast has loaded
        warnings.warn_explicit("fetch_arrow_table() is deprecated", DeprecationWarning, "duckdb.py", 332,
                               module="ibis.backends.duckdb")
        warnings.warn_explicit("our own deprecation", DeprecationWarning, "x.py", 1, module="service.app")
    assert [str(w.message) for w in caught] == ["our own deprecation"]
