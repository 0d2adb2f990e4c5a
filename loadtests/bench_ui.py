"""Benchmark of the web pages: how long each page takes to render over HTTP on a built CRM_HOME.

Target: every page in under 1 s on the demo world (20,000 clients). Starts `crm serve` on a free port, creates an
admin key and a compliance key with `crm keys create`, submits a candidate ruleset over the API when none awaits a
decision (the active one with premier from 4 million yuan), signs in through the login form and loads every page:
the first load of each (cold: the pages' precomputation may still be running) and then `--runs` more, printing the
median and the worst per page. A candidate's page renders at once and fetches its impact section when the
simulation is done: the section's first load is how long a compliance officer waits for the impact charts.
The client view decides for a different client on every load. Speaks HTTP only.
Usage: python loadtests/bench_ui.py --home DIR [--runs 9]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

TARGET_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_key(crm: str, env: dict, role: str, name: str) -> str:
    out = subprocess.run([crm, "keys", "create", "--role", role, "--name", name, "--rate-limit", "1000000"],
                         env=env, check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def api(base: str, path: str, key: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(base + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def candidate(base: str, author_key: str) -> str:
    """A version awaiting a decision: an existing one, else a submitted edit of the active ruleset."""
    history = api(base, "/v1/rulesets", author_key)
    pending = [v["version"] for v in history["versions"] if v["status"] == "submitted"]
    if pending:
        return pending[-1]
    ruleset = api(base, "/v1/rulesets/active", author_key)["ruleset"]
    rules = ruleset["tables"][0]["rules"]
    if "total_assets" in rules[0]["when"] and len(rules) > 2 and "total_assets" in rules[2]["when"]:
        rules[0]["when"]["total_assets"] = ">= 4_000_000"
        rules[2]["when"]["total_assets"] = "[1_000_000..4_000_000)"
    else:
        rules[0]["description"] += " (benchmark candidate)"
    return api(base, "/v1/rulesets", author_key, {"ruleset": ruleset, "note": "web-page benchmark"})["version"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path("var"))
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    crm = str(Path(sys.executable).with_name("crm"))
    env = {**os.environ, "CRM_HOME": str(args.home.resolve())}
    admin = create_key(crm, env, "admin", "bench-ui-admin")
    author = create_key(crm, env, "compliance", "bench-ui-author")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([crm, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("crm serve did not become ready") from None
                time.sleep(0.5)
        version = candidate(base, author)
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        started = time.perf_counter()
        browser.open(urllib.request.Request(f"{base}/ui/login", data=urllib.parse.urlencode({"key": admin}).encode(),
                                            headers={"Origin": base}), timeout=60).read()
        sign_in = time.perf_counter() - started
        overview = browser.open(f"{base}/ui/compliance", timeout=60).read().decode()
        active = re.search(r"/ui/compliance/rulesets/([0-9a-f]{64})", overview).group(1)  # type: ignore[union-attr]
        clients = iter(f"C{n:07d}" for n in range(3, 10**7, 37))
        pages = {
            "login": "/ui/login", "index": "/ui/", "compliance": "/ui/compliance",
            "ruleset (active)": f"/ui/compliance/rulesets/{active}",
            "ruleset (candidate, cold: impact follows)": f"/ui/compliance/rulesets/{version}",
            "impact section (waits for the simulation)": f"/ui/compliance/rulesets/{version}/impact",
            "ruleset (candidate with diff and impact)": f"/ui/compliance/rulesets/{version}",
            "client view": None, "broker scorecards": "/ui/managers/brokers",
            "branch rankings": "/ui/managers/branches", "models": "/ui/models",
        }
        results: dict[str, dict] = {}
        for name, path in pages.items():
            times = []
            for _ in range(args.runs + 1):
                while True:
                    target = path or f"/ui/clients?client_id={next(clients)}"
                    t0 = time.perf_counter()
                    try:
                        browser.open(base + target, timeout=60).read()
                    except urllib.error.HTTPError as e:
                        if path is None and e.code == 404:
                            continue  # an id without a client (closed account): take the next one
                        raise
                    times.append(time.perf_counter() - t0)
                    break
            warm = times[1:]
            results[name] = {"first_s": round(times[0], 4), "median_s": round(statistics.median(warm), 4),
                             "max_s": round(max(warm), 4)}
        summary = {"home": str(args.home), "runs": args.runs, "sign_in_s": round(sign_in, 4), "pages": results,
                   "all_under_1s": all(r["median_s"] < TARGET_S for r in results.values())}
        out = args.home / "bench"
        out.mkdir(parents=True, exist_ok=True)
        (out / "ui.json").write_text(json.dumps(summary, indent=1))
        print(f"{'page':44} {'first':>8} {'median':>8} {'max':>8}")
        for name, r in results.items():
            print(f"{name:44} {r['first_s'] * 1000:7.0f}ms {r['median_s'] * 1000:7.0f}ms {r['max_s'] * 1000:7.0f}ms")
        print(json.dumps(summary))
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
