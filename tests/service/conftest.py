"""An API over the trained test world: the bundled ruleset active, one key per role."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config import Settings
from features.store.feature_store import latest_frame
from rules.governance import RulesHistory
from rules.model import load_ruleset
from service.app import create_app
from service.db import make_engine
from service.keys import Role, create_key
from service.scope import FIRM_WIDE, Directory


def activate_bundled(settings: Settings) -> str:
    history = RulesHistory(settings.rules_history_url)
    try:
        if history.active_version() is None:
            spec = load_ruleset()
            if spec.version not in {s.version for s in history.states()}:
                history.submit(spec, "test-author", "bundled policy")
                history.approve(spec.version, "test-approver", "ok")
            history.activate(spec.version, "test", "for the API tests")
        return history.active_version()  # type: ignore[return-value]
    finally:
        history.close()


def copy_home(model_home: Settings, home: Path, **settings: object) -> Settings:
    """A home of its own over the trained test world (for tests that write the online store or the event journal):
    raw tables and features copied, MLflow's database copied (its artifacts stay where they are), the bundled
    ruleset active."""
    home.mkdir(parents=True)
    for name in ("raw", "features"):
        shutil.copytree(model_home.home / name, home / name)
    shutil.copy(model_home.home / "mlflow.db", home / "mlflow.db")
    copied = Settings(home=home, **{"online_timeout_ms": 5_000, "events_apply_interval_ms": 20, **settings})
    activate_bundled(copied)
    return copied


@dataclass
class Api:
    client: TestClient
    settings: Settings
    keys: dict[Role, str]
    client_ids: list[str]

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture(scope="module")
def api(model_home: Settings) -> Iterator[Api]:
    activate_bundled(model_home)
    engine = make_engine(model_home.service_database_url)
    ids = list(latest_frame(model_home.features_dir, ["client_category:total_assets"]).index)
    directory = Directory(model_home.raw_dir)
    managed = directory.resolve(directory.client(ids[0])[0], None)  # type: ignore[index]
    keys = {role: create_key(engine, role, f"{role.value}-{n}",
                             managed if role is Role.BRANCH_MANAGER else FIRM_WIDE)[1] for n, role in enumerate(Role)}
    engine.dispose()
    # A generous online-store bound: on a busy test machine a read past 50 ms would make a decision degraded. Rate
    # limits well above what these tests send in a second (the limiter has tests of its own).
    settings = model_home.model_copy(update={"online_timeout_ms": 5_000,
                                             "rate_limits": {r.value: 100_000 for r in Role},
                                             "signin_attempts_per_minute": 100_000})
    with TestClient(create_app(settings)) as client:
        yield Api(client, model_home, keys, ids)
