"""The event applier as a process of its own: `crm events apply`, and the one `crm serve` keeps beside its workers.

Applying a round of events and evaluating the event-triggered rules is Python work that holds the interpreter lock
for tens of milliseconds at a time. In a thread of an API worker it delays that worker's decisions (a decision that
needs the lock back waits for the switch interval, 5 ms, each time); in a process of its own it only shares the
machine's cores. The intake stays in the workers: accepting is a journal append, and the applier polls the journal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from config.settings import Settings

log = logging.getLogger("crm.events")
RESTART_PAUSE_S = 2.0  # between an applier that died and its replacement
STOP_WAIT_S = 30.0  # an applier asked to stop finishes its round and writes its audit records within this
STOP_POLL_S = 0.2  # how often the applier process looks whether it was asked to stop
APPLIER_NICENESS = 10  # added to the applier's nice value: the API workers' decisions get the cores first


def run_until_stopped(settings: Settings) -> None:
    """Apply events and raise their alerts in this process until SIGTERM or SIGINT; the audit records of the
    alerts are written before returning."""
    from service.runtime import Runtime

    # The handler takes no lock: a second signal can arrive while the first one's handler runs (the server's stop
    # and its death each send one), and setting a threading.Event there deadlocked on the Event's own lock.
    signals: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: signals.append(number))
    runtime = Runtime(settings, watch=True, apply_events=True)  # watches for new champions and rulesets
    log.info("applying client events of %s", settings.home)
    try:
        while not signals:
            time.sleep(STOP_POLL_S)
    finally:
        runtime.close()
    log.info("stopped applying client events: %s applied", f"{runtime.events.applied_events:,}")


def _prepare_child() -> None:
    """In the child before it runs: SIGTERM when the thread that started it (the server's) dies (Linux), and a
    lower scheduling priority than the workers, so that on a busy machine a decision waiting for a core goes
    first and applying takes the time left (events are applied within a second; decisions within milliseconds)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    os.nice(APPLIER_NICENESS)


class ApplierBeside:
    """Runs ``crm events apply`` as a child process and starts it again if it dies, until stopped."""

    def __init__(self) -> None:
        self.env = dict(os.environ)  # as the server was started (before its workers are told not to apply)
        self.command = [sys.executable, "-m", "cli.main", "events", "apply"]
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="applier-watch", daemon=True)

    def _spawn(self) -> subprocess.Popen:
        # A session of its own: a Ctrl-C at the terminal reaches the server, which stops the applier after its
        # workers (an applier stopped first would be started again). Told SIGTERM when the server dies, even by
        # SIGKILL, so that no applier outlives its server.
        return subprocess.Popen(self.command, env=self.env, start_new_session=True, preexec_fn=_prepare_child)

    def start(self) -> None:
        self.process = self._spawn()
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            process = self.process
            if process is None or process.poll() is None:
                continue
            if self._stopping.is_set():
                return
            log.error("the event applier (pid %s) exited with %s; starting another in %.0f s", process.pid,
                      process.returncode, RESTART_PAUSE_S)
            if self._stopping.wait(RESTART_PAUSE_S):
                return
            self.process = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            log.error("the event applier did not stop within %.0f s; killed (its round is applied again later)",
                      STOP_WAIT_S)
            process.kill()
            process.wait()


@contextlib.contextmanager
def applier_beside(settings: Settings) -> Iterator[ApplierBeside | None]:
    """With ``CRM_EVENTS_APPLIER=process``: one applier process for the block, and the API workers started in it
    told not to apply (through the environment they inherit). Otherwise nothing."""
    if settings.events_applier != "process":
        yield None
        return
    from config import get_settings

    applier, told = ApplierBeside(), os.environ.get("CRM_EVENTS_APPLIER")
    os.environ["CRM_EVENTS_APPLIER"] = "none"  # the workers: the applier beside them does it
    get_settings.cache_clear()  # a single worker runs in this process and reads the settings again
    applier.start()
    try:
        yield applier
    finally:
        applier.stop()
        if told is None:
            os.environ.pop("CRM_EVENTS_APPLIER")
        else:
            os.environ["CRM_EVENTS_APPLIER"] = told
        get_settings.cache_clear()
