"""The web pages in a real browser: sign in with a key, open every page, maker-checker approval, roles.

Each page load is timed (written to var/test-artifacts/ui/page-load-times.json, never asserted: timing belongs to
benchmarks) and screenshotted.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from rules.model import load_ruleset
from tests.ui.conftest import Server


def sign_in(page, server: Server, person: str, path: str = "/ui/login") -> None:
    page.goto(server.base + path)
    page.fill("#key", server.keys[person])
    with page.expect_navigation():
        page.click("form[action='/ui/login'] button[type=submit]")


def sign_out(page) -> None:
    with page.expect_navigation():
        page.click("form.who button")


def visit(page, server: Server, path: str, shot: str, artifacts: Path, status: int = 200):
    """Open a page, time it until loaded, check its status and screenshot it."""
    started = time.perf_counter()
    response = page.goto(server.base + path, wait_until="load")
    elapsed = time.perf_counter() - started
    key = re.sub(r"[0-9a-f]{64}", "{version}", path.split("?")[0])
    server.timings.setdefault(key, []).append(round(elapsed, 4))
    assert response is not None and response.status == status, (path, response and response.status)
    page.screenshot(path=str(artifacts / f"{shot}.png"), full_page=True)
    return response


def test_one_sign_in_opens_every_page(context, server: Server, artifacts: Path) -> None:
    candidate = server.submit("officer-a", "6_000_000", "premier from 6m")
    page = context.new_page()
    sign_in(page, server, "admin")
    assert page.url.endswith("/ui/")
    cookie = next(c for c in context.cookies() if c["name"] == "crm_ui_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert server.keys["admin"] not in page.content()  # the key never comes back in a page

    visit(page, server, "/ui/", "index-admin", artifacts)
    assert page.locator("ul.tiles a").count() == 7

    visit(page, server, "/ui/compliance", "compliance", artifacts)
    assert "Active ruleset" in page.inner_text("main")
    assert candidate[:12] in page.inner_text("#pending")
    assert "test-author" in page.inner_text("#events")  # who submitted the active version, in the history

    spec = load_ruleset()
    active = page.locator("main section.card").first.locator("code").first.inner_text()
    page.click(f"text={active}")
    page.wait_for_load_state()
    assert page.locator(".review table.rules").count() == len(spec.tables)
    text = page.inner_text(".review")
    assert "PRIORITY" in text and spec.tables[0].rules[0].description in text
    assert "Validation found nothing to report" in text
    visit(page, server, page.url.removeprefix(server.base), "ruleset-active", artifacts)

    visit(page, server, f"/ui/compliance/rulesets/{candidate}", "ruleset-candidate", artifacts)
    assert "service_tier" in page.inner_text("#diff")
    page.wait_for_selector("#tier-migration", timeout=120_000)  # put in place by the page once simulated
    page.screenshot(path=str(artifacts / "ruleset-candidate.png"), full_page=True)
    assert page.locator("#tier-migration td.moved").count() >= 1  # premier from 6m moves clients down
    assert page.locator("#impact svg.chart").count() == 2
    assert "Approve" in page.inner_text("#decide")

    client_id = server.client_ids[0]
    visit(page, server, f"/ui/clients?client_id={client_id}", "client", artifacts)
    assert page.inner_text("#tier") in ("premier", "large", "medium", "small")
    assert page.locator("#reasons tbody tr").count() >= 1
    assert page.locator("section.family").count() == 6  # risk preference included
    assert page.locator("section.family svg.spark").count() > 20

    visit(page, server, "/ui/managers/brokers", "brokers", artifacts)
    assert page.locator("#brokers tbody tr").count() > 5 and page.locator("svg.chart").count() == 2
    page.click("#brokers thead th:nth-child(3)")  # sort by clients served
    visit(page, server, "/ui/managers/branches", "branches", artifacts)
    assert page.locator("#branches tbody tr").count() >= 3 and page.locator("svg.chart").count() == 3

    visit(page, server, "/ui/models", "models", artifacts)
    for name in ("churn", "value", "risk_profile"):
        assert "champion" in page.inner_text(f"#model-{name}")
    assert "auc" in page.inner_text("#model-churn")
    first_plot = page.locator("#model-churn img").first
    first_plot.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first_plot.element_handle())


def test_approval_is_refused_for_the_author_and_given_by_another_officer(context, server: Server,
                                                                         artifacts: Path) -> None:
    candidate = server.submit("officer-a", "4_000_000", "premier from 4m")
    path = f"/ui/compliance/rulesets/{candidate}"
    page = context.new_page()
    sign_in(page, server, "officer-a")
    assert page.url.endswith("/ui/compliance")
    visit(page, server, path, "maker-candidate", artifacts)
    assert "You submitted this version" in page.inner_text("main")
    page.fill("#note", "looks right to me")
    with page.expect_navigation() as refused:
        page.click("#approve")
    assert refused.value.status == 409
    refusal = page.inner_text("#refusal")
    assert "approval_refused" in refusal and "cannot approve" in refusal and "maker-checker" in refusal
    assert page.inner_text("h1 .status") == "submitted"
    page.screenshot(path=str(artifacts / "maker-refused.png"), full_page=True)

    sign_out(page)
    sign_in(page, server, "officer-b", f"/ui/login?next={path}")
    assert page.url.endswith(path)  # back where the sign-in was asked for
    assert "premier from 4m" in page.inner_text("main")
    page.fill("#note", "checked the tier migration")
    with page.expect_navigation():
        page.click("#approve")
    assert "Approved" in page.inner_text("#outcome")
    assert page.inner_text("h1 .status") == "approved"
    assert "officer-b" in page.inner_text("dl.facts") and "checked the tier migration" in page.inner_text("dl.facts")
    page.screenshot(path=str(artifacts / "checker-approved.png"), full_page=True)

    page.fill("#note", "in force from today")
    with page.expect_navigation():
        page.click("#activate")
    assert "Activated" in page.inner_text("#outcome") and page.locator("h1 .status.active").count() == 1
    visit(page, server, "/ui/compliance", "compliance-after-approval", artifacts)
    events = page.inner_text("#events")
    assert "officer-b" in events and "checked the tier migration" in events and "officer-a" in events


def test_a_front_office_key_cannot_open_compliance_pages(context, server: Server, artifacts: Path) -> None:
    page = context.new_page()
    sign_in(page, server, "desk")
    assert page.url.endswith("/ui/clients")
    assert "Compliance" not in page.inner_text("header nav")
    visit(page, server, "/ui/compliance", "forbidden-compliance", artifacts, status=403)
    assert page.inner_text(".banner .code") == "forbidden"
    assert "needs the role admin or compliance" in page.inner_text("main")
    active = load_ruleset().version
    visit(page, server, f"/ui/compliance/rulesets/{active}", "forbidden-ruleset", artifacts, status=403)
    visit(page, server, "/ui/models", "forbidden-models", artifacts, status=403)
    posted = context.request.post(f"{server.base}/ui/compliance/rulesets/{active}/approve",
                                  form={"note": "let me in"})
    assert posted.status == 403 and "forbidden" in posted.text()
    # The managers' pages belong to branch managers now.
    visit(page, server, "/ui/managers/branches", "branches-front-office", artifacts, status=403)


def test_pages_ask_for_a_key_and_refuse_a_wrong_one(context, server: Server, artifacts: Path) -> None:
    page = context.new_page()
    page.goto(f"{server.base}/ui/managers/brokers")
    assert "/ui/login?next=" in page.url
    page.fill("#key", "crm_nothing_wrong")
    with page.expect_navigation() as answer:
        page.click("form[action='/ui/login'] button[type=submit]")
    assert answer.value.status == 401 and "unauthenticated" in page.inner_text(".banner.error")
    page.screenshot(path=str(artifacts / "login-refused.png"), full_page=True)
    page.fill("#key", server.keys["manager"])
    with page.expect_navigation():
        page.click("form[action='/ui/login'] button[type=submit]")
    assert page.url.endswith("/ui/managers/brokers")
    assert page.locator("#brokers tbody tr").count() >= 1
    assert set(page.locator("#brokers tbody tr td:nth-child(2)").all_inner_texts()) == {"B001"}  # its own branch


def test_forms_need_the_token_of_the_session(context, server: Server) -> None:
    candidate = server.submit("officer-a", "3_000_000", "premier from 3m")
    page = context.new_page()
    sign_in(page, server, "officer-b")
    forged = context.request.post(f"{server.base}/ui/compliance/rulesets/{candidate}/approve",
                                  form={"note": "forged", "csrf": "0" * 64})
    assert forged.status == 403 and "csrf_failed" in forged.text()
    page.goto(f"{server.base}/ui/compliance/rulesets/{candidate}")
    assert page.inner_text("h1 .status") == "submitted"
