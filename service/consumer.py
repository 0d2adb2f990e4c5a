"""`crm events consume --from nats://HOST:4222`: client events from a NATS JetStream stream into the engine.

A durable pull consumer fetches messages in batches; each message is one event (or ``{"events": [...]}``) as
``POST /v1/events`` takes it. Valid events are stored in the journal like the API's, and the messages are
acknowledged only once the journal is applied to the online store up to them; until then (the online store
down, the process killed) they stay unacknowledged and JetStream delivers them again, where the journal
recognises their event ids: nothing is lost and nothing is applied twice. A message that breaks the contract is
terminated (never redelivered) and logged with the field at fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from dataclasses import dataclass

from pydantic import ValidationError

from config import Settings
from features.events.contract import _Event, parse_event
from service.errors import ApiError

log = logging.getLogger("crm.events.consumer")
DEFAULT_STREAM = "CRM_EVENTS"
DEFAULT_SUBJECT = "crm.events.>"
DEFAULT_DURABLE = "crm-events"


@dataclass
class ConsumeStats:
    acknowledged: int = 0
    rejected: int = 0
    redelivery_asked: int = 0


def _events_of(data: bytes) -> list[_Event]:
    """The events of one message; raises ValueError naming what is wrong."""
    try:
        document = json.loads(data)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from e
    documents = document.get("events") if isinstance(document, dict) and "events" in document else [document]
    if not isinstance(documents, list) or not documents:
        raise ValueError("expected an event object or {\"events\": [...]}")
    events = []
    for k, item in enumerate(documents):
        try:
            events.append(parse_event(item))
        except ValidationError as e:
            problems = "; ".join(f"events.{k}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                                 for err in e.errors())
            raise ValueError(problems) from e
    return events


async def consume(settings: Settings, url: str, stream: str = DEFAULT_STREAM, subject: str = DEFAULT_SUBJECT,
                  durable: str = DEFAULT_DURABLE, batch: int = 500, apply_timeout_s: float = 10.0,
                  stop: asyncio.Event | None = None) -> ConsumeStats:
    """Consume until ``stop`` is set (or SIGTERM/SIGINT); returns what was done."""
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
    from nats.js.errors import NotFoundError

    from service.runtime import Runtime

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread (tests)
            loop.add_signal_handler(sig, stop.set)
    runtime = await loop.run_in_executor(None, lambda: Runtime(settings, watch=False))
    events = runtime.events
    stats = ConsumeStats()
    connection = await nats.connect(url, name="crm-events-consumer", max_reconnect_attempts=-1)
    try:
        js = connection.jetstream()
        try:
            await js.stream_info(stream)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
        subscription = await js.pull_subscribe(
            subject, durable=durable, stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=max(30.0, apply_timeout_s * 3),
                                  max_ack_pending=max(10_000, batch * 4)))
        log.info("consuming %s (stream %s, durable %s) from %s", subject, stream, durable, url)
        while not stop.is_set():
            try:
                messages = await subscription.fetch(batch, timeout=1)
            except (NatsTimeout, TimeoutError):  # nats-py raises either (asyncio.TimeoutError) when nothing came
                continue
            valid, accepted = [], []
            for message in messages:
                try:
                    found = _events_of(message.data)
                    events.check(found)
                except (ValueError, ApiError) as e:
                    log.error("message %s refused and terminated: %s", message.metadata.sequence.stream, e)
                    stats.rejected += 1
                    await message.term()
                    continue
                valid.append(message)
                accepted.extend(found)
            if not valid:
                continue
            try:
                appended = await loop.run_in_executor(None, events.accept, accepted, f"nats:{stream}")
                applied = await loop.run_in_executor(None, events.wait_applied, appended["journal_position"],
                                                     apply_timeout_s)
            except ApiError as e:  # the journal cannot be written: JetStream keeps the messages
                log.warning("events not stored, asking for redelivery: %s", e)
                applied = False
            if applied:
                for message in valid:
                    await message.ack()
                stats.acknowledged += len(valid)
            else:
                for message in valid:
                    await message.nak(delay=1.0)
                stats.redelivery_asked += len(valid)
                log.warning("%s messages not applied within %.0f s (online store: %s); redelivery asked",
                            len(valid), apply_timeout_s, events.last_error or "slow")
    finally:
        # Acknowledgements already sent are flushed; a fetch still waiting is simply dropped (its messages were
        # never applied, so JetStream delivers them again).
        with contextlib.suppress(Exception):
            await connection.flush(timeout=5)
        await connection.close()
        await loop.run_in_executor(None, runtime.close)
    return stats
