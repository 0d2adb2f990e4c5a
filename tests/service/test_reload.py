"""Hot reload: a new champion or ruleset is picked up without a failed request; a bad one leaves the old serving."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from config import Settings
from service.runtime import Runtime, Wanted
from service.scoring import Models
from tests.service.conftest import activate_bundled


@pytest.fixture(scope="module")
def runtime(model_home: Settings) -> Runtime:
    activate_bundled(model_home)
    # A generous online-store bound: loading models beside the traffic must not push a busy test machine's reads
    # past 50 ms and turn them into degraded decisions; what is tested is that nothing fails.
    rt = Runtime(model_home.model_copy(update={"online_timeout_ms": 5_000}), watch=False)
    yield rt
    rt.close()


def _pretend_new_champions(runtime: Runtime) -> None:
    runtime.wanted = Wanted((None, None, None), runtime.wanted.ruleset)  # what is served looks out of date


def test_reload_under_traffic_fails_no_request(runtime: Runtime) -> None:
    from features.store.feature_store import latest_frame
    from service.decisions import decide

    clients = list(latest_frame(runtime.settings.features_dir, ["client_category:total_assets"]).index)[:50]
    failures: list[Exception] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            for c in clients:
                try:
                    response, _, _ = decide(runtime.served, c, "Asia/Shanghai")
                    assert not response["degraded"]
                except Exception as e:  # noqa: BLE001 - collected and asserted below
                    failures.append(e)

    worker = threading.Thread(target=traffic)
    worker.start()
    before = runtime.served
    for _ in range(2):
        _pretend_new_champions(runtime)
        assert runtime.reload()["problems"] == []
    stop.set()
    worker.join()
    assert failures == []
    assert runtime.served is not before and runtime.served.models is not before.models


def test_a_model_that_fails_to_load_leaves_the_old_one_serving(runtime: Runtime,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    serving = runtime.served.models

    def broken(*args, **kwargs) -> Models:
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(Models, "load", broken)
    _pretend_new_champions(runtime)
    result = runtime.reload()
    assert runtime.served.models is serving
    assert any("artifact store unreachable" in p for p in result["problems"])


def test_a_model_that_fails_its_check_leaves_the_old_one_serving(runtime: Runtime,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    serving = runtime.served.models
    original = Models.load

    def nan_scores(*args, **kwargs) -> Models:
        models = original(*args, **kwargs)
        models.value.scorer.predict = lambda x: np.full((len(x), 1), np.nan, dtype=np.float32)
        return models

    monkeypatch.setattr(Models, "load", nan_scores)
    _pretend_new_champions(runtime)
    result = runtime.reload()
    assert runtime.served.models is serving
    assert any("non-finite" in p for p in result["problems"])
