"""`crm serve` applies client events in one process beside its workers: the workers only accept them, a dead
applier is started again, and no applier outlives its server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from config import Settings
from features.store.feature_store import latest_as_of, latest_frame
from loadtests.bench_api import children
from service.db import make_engine
from service.keys import Role, create_key
from tests._server import crm_serve, get, post, wait_until
from tests.service.conftest import copy_home


def _appliers_of(pid: int) -> list[int]:
    """The `crm events apply` processes whose parent is ``pid``."""
    found = []
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if b"events" in command and b"apply" in command:
            found.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_one_applier_beside_the_workers_started_again_when_it_dies(model_home: Settings, tmp_path: Path) -> None:
    settings = copy_home(model_home, tmp_path / "home")
    _, key = create_key(make_engine(settings.service_database_url), Role.INGEST, "applier-test")
    clients = list(latest_frame(settings.features_dir, ["client_category:total_assets"]).index[:5])
    day = latest_as_of(settings.features_dir).isoformat()
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        events = [{"event_id": f"applier-{sent + k}", "kind": "cash_transfer", "transfer_id": 7_000_000_000 + sent + k,
                   "client_id": clients[k % len(clients)], "transfer_date": day, "direction": "in", "amount": 50.0}
                  for k in range(count)]
        status, body = post(f"{server.base}/v1/events", {"events": events}, key)
        assert status == 202, body
        sent += count

    def backlog() -> int:
        return get(f"{server.base}/readyz")[1]["event_backlog"]

    env = {"CRM_EVENTS_APPLY_INTERVAL_MS": "20"}
    with crm_serve(settings.home, env, workers=2, log=tmp_path / "serve.log") as server:
        wait_until(lambda: len(_appliers_of(server.process.pid)) == 1, "the applier beside the workers")
        (applier,) = _appliers_of(server.process.pid)
        send(20)
        wait_until(lambda: backlog() == 0, "the events applied")

        # Frozen applier: the workers accept and do not apply.
        os.kill(applier, signal.SIGSTOP)
        try:
            send(10)
            time.sleep(2.0)
            assert backlog() == 10
        finally:
            os.kill(applier, signal.SIGCONT)
        wait_until(lambda: backlog() == 0, "the events applied once the applier runs again")

        # A dead applier is replaced, and the replacement applies what was accepted meanwhile.
        os.kill(applier, signal.SIGKILL)
        wait_until(lambda: not _alive(applier), "the applier killed")
        send(10)
        wait_until(lambda: [p for p in _appliers_of(server.process.pid) if p != applier], "a new applier")
        wait_until(lambda: backlog() == 0, "the events applied by the new applier")
        (replacement,) = _appliers_of(server.process.pid)
    # crm_serve kills the server with SIGKILL: its applier is told to stop all the same.
    wait_until(lambda: not _alive(replacement), "the applier stopped with its server", timeout_s=30)


def test_serve_starts_on_an_empty_home_with_its_applier(tmp_path: Path) -> None:
    """The databases are created once before the workers and the applier open them (two schema migrations of one
    SQLite file at the same moment fail): the server answers, not ready, and nothing crashed."""
    log = tmp_path / "serve.log"
    with crm_serve(tmp_path / "home", workers=2, ready_timeout_s=120, log=log, ready=False) as server:
        _, answer = get(f"{server.base}/readyz")
        assert answer["ready"] is False and "no ruleset is active" in answer["problems"]
        wait_until(lambda: "applying client events" in log.read_text(), "the applier started")
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_the_applier_stops_on_signals_in_quick_succession(tmp_path: Path) -> None:
    """The server's stop and its death each send the applier a SIGTERM: several at once must still stop it, with
    its runtime closed (audit records written). A handler that set a threading.Event deadlocked when a signal came
    while an earlier one's handler held the Event's lock; this burst hit that window in one run of three, not
    every time."""
    import subprocess
    import sys

    log = tmp_path / "apply.log"
    env = {**os.environ, "CRM_HOME": str(tmp_path / "home")}
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "events", "apply"], env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "applying client events" in log.read_text(), "the applier started", timeout_s=120)
        for _ in range(5):  # at once, so that some arrive while an earlier one's handler runs
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the applier did not stop: {log.read_text()[-3000:]}") from None
        # Stopped after closing its runtime (a signal still arriving while the interpreter exits may end it -15).
        assert "stopped applying client events" in log.read_text(), log.read_text()[-3000:]
        assert process.returncode in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
