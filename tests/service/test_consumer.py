"""`crm events consume` against the machine's NATS JetStream: a message is acknowledged only once its events are
applied; a consumer restarted (killed, or unable to apply) resumes without losing or repeating an event."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from config import Settings
from features.events.apply import FRESH_VIEWS
from features.events.journal import Journal
from features.raw.store import read_table
from features.store.feature_store import latest_as_of, open_store
from features.store.online_writer import OnlineWriter

NATS_URL = os.environ.get("CRM_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _run(coroutine):
    return asyncio.run(coroutine)


async def _jetstream():
    import nats

    connection = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    return connection, connection.jetstream()


@pytest.fixture
def stream() -> tuple[str, str]:
    """A stream and subjects of the test's own (other users of the server are not disturbed), removed after."""
    async def reachable() -> None:
        connection, js = await _jetstream()
        await js.account_info()
        await connection.close()

    try:
        _run(reachable())
    except Exception as e:  # noqa: BLE001 - any connection problem means the server is not usable here
        if os.environ.get("CI") == "true":
            pytest.fail(f"NATS JetStream at {NATS_URL} is required under CI but not reachable: {e}")
        pytest.skip(f"NATS JetStream not reachable at {NATS_URL} ({e})")
    token = uuid.uuid4().hex[:10]
    name, subjects = f"CRM_TEST_{token}", f"crm.test.{token}.>"

    async def create() -> None:
        from nats.js.api import StreamConfig

        connection, js = await _jetstream()
        await js.add_stream(StreamConfig(name=name, subjects=[subjects]))
        await connection.close()

    _run(create())
    yield name, subjects

    async def remove() -> None:
        connection, js = await _jetstream()
        await js.delete_stream(name)
        await connection.close()

    _run(remove())


def _publish(subject: str, messages: list[bytes]) -> None:
    async def send() -> None:
        connection, js = await _jetstream()
        for data in messages:
            await js.publish(subject, data)
        await connection.close()

    _run(send())


def _consumer_state(stream: str, durable: str) -> tuple[int, int, int]:
    """(delivered and acknowledged, waiting to be delivered, delivered and not acknowledged)."""
    async def info():
        connection, js = await _jetstream()
        found = await js.consumer_info(stream, durable)
        await connection.close()
        return found

    found = _run(info())
    return found.ack_floor.stream_seq, found.num_pending, found.num_ack_pending


def _consumer(home: Path, stream: str, subjects: str, durable: str, env: dict | None = None,
              log: Path | None = None, apply_timeout_s: float = 10.0) -> subprocess.Popen:
    crm = str(Path(sys.executable).with_name("crm"))
    output = log.open("w") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([crm, "events", "consume", "--from", NATS_URL, "--stream", stream, "--subject",
                                 subjects, "--durable", durable, "--batch", "100",
                                 "--apply-timeout", str(apply_timeout_s)],
                                env={**os.environ, "CRM_HOME": str(home), **(env or {})}, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log:
            output.close()  # the child has its own copy


def _stop(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(30)


def _wait(predicate, what: str, timeout_s: float = 90.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tail}")
        time.sleep(0.2)


def test_messages_are_acknowledged_only_once_applied_and_a_restart_loses_and_repeats_nothing(
        event_world: Settings, stream: tuple[str, str], tmp_path: Path) -> None:
    name, subjects = stream
    subject = subjects.replace(">", "transfers")
    durable = "crm-test"
    day = latest_as_of(event_world.features_dir)
    clients = list(read_table(event_world.raw_dir, "clients").query("closed_on.isna()").client_id[:20])
    writer = OnlineWriter(open_store(event_world.features_dir), FRESH_VIEWS)
    baseline = {c: v["client_flow"]["inflow_30d"] for c, v in writer.read(clients).items()}

    def transfer(k: int) -> dict:
        return {"event_id": f"nats-{k}", "kind": "cash_transfer", "transfer_id": 4_000_000_000 + k,
                "client_id": clients[k % len(clients)], "transfer_date": day.isoformat(), "direction": "in",
                "amount": 100.0 + k}

    first = [transfer(k) for k in range(300)]
    _publish(subject, [json.dumps(e).encode() for e in first])
    journal = Journal(event_world.events_dir)

    # 1. The online store cannot be written: events reach the journal, no message is acknowledged.
    broken = _consumer(event_world.home, name, subjects, durable, log=tmp_path / "consumer-1.log", apply_timeout_s=2,
                       env={"CRM_ONLINE_STORE": "redis://127.0.0.1:1/0?socket_timeout=0.2&socket_connect_timeout=0.2"})
    try:
        # The first fetched batch is stored, never applied, and delivered again and again (first in line).
        _wait(lambda: len(journal.all_rows()) >= 100, "the events in the journal")
        time.sleep(3)  # past the consumer's apply timeout: it asks for redelivery, never acknowledges
        acknowledged, _, unacknowledged = _consumer_state(name, durable)
        assert acknowledged == 0 and unacknowledged > 0 and journal.applied_seq() == 0
    finally:
        _stop(broken)

    # 2. More events, a producer's retry of one already sent, and a message that breaks the contract.
    second = [transfer(k) for k in range(300, 800)]
    bad = {**transfer(900), "amount": -1.0}
    _publish(subject, [json.dumps(e).encode() for e in second] + [json.dumps(first[0]).encode(),
                                                                   json.dumps(bad).encode()])

    # 3. A consumer that can apply, killed once it has acknowledged some, then a third one finishes. Messages the
    # killed ones held come back only after JetStream's acknowledgement wait (30 s), and a loaded machine applies
    # slowly: the waits are generous, a failure prints the consumer's log.
    working = _consumer(event_world.home, name, subjects, durable, log=tmp_path / "consumer-2.log")
    try:
        _wait(lambda: _consumer_state(name, durable)[0] > 0, "the first acknowledgements", 180,
              tmp_path / "consumer-2.log")
    finally:
        _stop(working)
    last = _consumer(event_world.home, name, subjects, durable, log=tmp_path / "consumer-3.log")
    try:
        _wait(lambda: _consumer_state(name, durable)[1:] == (0, 0), "every message acknowledged or terminated", 300,
              tmp_path / "consumer-3.log")
    finally:
        _stop(last, signal.SIGTERM)
    assert last.returncode == 0, (tmp_path / "consumer-3.log").read_text()[-2000:]

    rows = journal.all_rows()
    assert sorted(r.event_id for r in rows) == sorted(e["event_id"] for e in first + second)
    assert journal.backlog() == 0
    after = writer.read(clients)
    for client in clients:
        sent = sum(e["amount"] for e in first + second if e["client_id"] == client)
        assert after[client]["client_flow"]["inflow_30d"] == pytest.approx(baseline[client] + sent)
