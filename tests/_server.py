"""A real `crm serve` process for tests that need the server as deployed (signals, workers, real stores)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict, key: str, timeout: float = 10) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def get(url: str, timeout: float = 5) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_until(predicate, what: str, timeout_s: float = 60.0) -> None:
    """Poll ``predicate`` every 0.1 s until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class Server:
    base: str
    process: subprocess.Popen


@contextmanager
def crm_serve(home: Path, env: dict[str, str] | None = None, workers: int = 1, ready_timeout_s: float = 180,
              log: Path | None = None, ready: bool = True) -> Iterator[Server]:
    """`crm serve` on a free port over ``home``, ready (/readyz 200; with ``ready=False``, answering /readyz at
    all); stopped (SIGKILL if still running) at exit. ``log`` keeps the server's output (quoted when it never
    becomes ready)."""
    port = free_port()
    crm = str(Path(sys.executable).with_name("crm"))
    environment = {**os.environ, "CRM_HOME": str(home), "CRM_RELOAD_INTERVAL_S": "600", **(env or {})}
    output = log.open("w") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen([crm, "serve", "--port", str(port), "--workers", str(workers)], env=environment,
                               stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process)

    def said() -> str:
        return f": {log.read_text()[-3000:]}" if log is not None else ""

    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if get(f"{server.base}/readyz", timeout=2)[0] == 200 or not ready:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            assert process.poll() is None, f"crm serve exited with {process.returncode} before it was ready{said()}"
            assert time.monotonic() < deadline, f"the server never became ready{said()}"
            time.sleep(0.5)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        if log is not None:
            output.close()
