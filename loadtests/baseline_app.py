"""Baseline of the API benchmarks: the cheapest FastAPI POST endpoints there are, to show what uvicorn and FastAPI
alone cost on this machine under the same load generator as the decision API.

- ``POST /echo``: no body read, a constant answer (the locust benchmark's baseline);
- ``POST /client``: parses and validates a ``{"client_id": ...}`` body as the decision endpoint does, then answers
  a constant (the wrk benchmark's baseline).

Serve it in its own process: python -m uvicorn baseline_app:app --app-dir loadtests --port 8001 --no-access-log
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="trivial baseline", docs_url=None, redoc_url=None, openapi_url=None)


class ClientRequest(BaseModel):
    client_id: str = Field(min_length=1, max_length=64)


@app.post("/echo")
async def echo() -> dict:
    return {"ok": True}


@app.post("/client")
async def client(body: ClientRequest) -> dict:
    return {"client_id": body.client_id, "ok": True}
