"""A real `crm serve` over the trained test world, and headless Chromium (Debian's package) driven by Playwright.

The server gets rule-history and key databases of its own, so approvals made here never touch the shared world's
history. Chromium is never downloaded: the tests use the `chromium` on PATH (`make browser` installs it) and skip
saying so when it is missing — except under CI (`CI=true`), where a missing browser is a failure. Screenshots and
page-load times go to var/test-artifacts/ui/ (or CRM_TEST_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from config import Settings
from features.store.feature_store import latest_frame
from rules.model import load_ruleset
from service.db import make_engine
from service.keys import Role, create_key
from service.scope import FIRM_WIDE, Directory
from tests._server import crm_serve
from tests.service.conftest import activate_bundled

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CRM_TEST_ARTIFACTS", ROOT / "var" / "test-artifacts")) / "ui"


@dataclass
class Server:
    base: str
    settings: Settings
    keys: dict[str, str]  # person → key
    client_ids: list[str]
    timings: dict[str, list[float]] = field(default_factory=dict)

    def submit(self, person: str, edit_assets: str, note: str) -> str:
        """Submit a candidate over the API as ``person``: the bundled ruleset with premier from ``edit_assets``."""
        canonical = load_ruleset().canonical()
        canonical["tables"][0]["rules"][0]["when"]["total_assets"] = f">= {edit_assets}"
        canonical["tables"][0]["rules"][2]["when"]["total_assets"] = f"[1_000_000..{edit_assets})"
        request = urllib.request.Request(f"{self.base}/v1/rulesets", method="POST",
                                         data=json.dumps({"ruleset": canonical, "note": note}).encode(),
                                         headers={"Authorization": f"Bearer {self.keys[person]}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["version"]


@pytest.fixture(scope="module")
def server(model_home: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    own = tmp_path_factory.mktemp("ui_server")
    settings = model_home.model_copy(update={"rules_db_url": f"sqlite:///{own / 'rules.db'}",
                                             "service_db_url": f"sqlite:///{own / 'service.db'}"})
    activate_bundled(settings)
    engine = make_engine(settings.service_database_url)
    people = {"officer-a": Role.COMPLIANCE, "officer-b": Role.COMPLIANCE, "desk": Role.FRONT_OFFICE,
              "quant": Role.DATA_SCIENTIST, "admin": Role.ADMIN, "manager": Role.BRANCH_MANAGER}
    directory = Directory(settings.raw_dir)
    branch = directory.resolve("B001", None)  # the manager's branch
    keys = {person: create_key(engine, role, person, branch if role is Role.BRANCH_MANAGER else FIRM_WIDE)[1]
            for person, role in people.items()}
    engine.dispose()
    env = {"CRM_RULES_DB_URL": settings.rules_history_url, "CRM_SERVICE_DB_URL": settings.service_database_url,
           "CRM_ONLINE_TIMEOUT_MS": "5000", "CRM_RELOAD_INTERVAL_S": "2",
           "CRM_SIGNIN_ATTEMPTS_PER_MINUTE": "1000"}  # every test signs in from 127.0.0.1 (limits: tests/service)
    with crm_serve(settings.home, env, ready_timeout_s=120, log=own / "server.log") as served:
        ids = list(latest_frame(settings.features_dir, ["client_category:total_assets"]).index)
        found = Server(served.base, settings, keys, ids)
        yield found
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "page-load-times.json").write_text(json.dumps(found.timings, indent=1))
        served.process.terminate()
        served.process.wait(30)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "Debian's chromium is not on PATH (`make browser` installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; the web-page tests must run under CI")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        launched = p.chromium.launch(executable_path=chromium_path, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture
def context(browser):
    """A fresh browser session (no cookies) per test."""
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nweb-page screenshots: {ARTIFACTS}")
    return ARTIFACTS
