"""Baseline of the API benchmark: the cheapest FastAPI POST endpoint there is, to show what uvicorn and FastAPI
alone cost on this machine under the same load generator as the decision API.

Serve it in its own process: python -m uvicorn baseline_app:app --app-dir loadtests --port 8001 --no-access-log
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(title="trivial baseline", docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/echo")
async def echo() -> dict:
    return {"ok": True}
