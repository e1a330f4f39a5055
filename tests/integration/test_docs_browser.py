"""The docs pages render in a real browser, offline, listing every endpoint.

Uses the machine's Chromium (Debian's `chromium`), driven by Playwright, which
downloads no browser of its own.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.integration.servers import request

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
# Keeps Chromium from calling home, so the only requests are the page's own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCUMENT = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
OPERATIONS = [
    (method.upper(), path, operation["operationId"])
    for path, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
    if method != "parameters"
]


@pytest.fixture
def docs_server(database_url, start_gunicorn):
    return start_gunicorn(workers=1, DATABASE_URL=database_url, FLASK_API_DOCS_ENABLED="true")


@pytest.fixture
def browser_page():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI: .ci/run installs Debian's chromium.")
        pytest.skip("needs Chromium (apt-get install chromium); CI runs this test")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()


def open_recording_requests(page, url: str) -> list[str]:
    """Opens the page; returns the URLs of every request that left it for the network.

    Requests the page's Content-Security-Policy blocks never get this far.
    """
    requested: list[str] = []

    def record(route) -> None:
        requested.append(route.request.url)
        route.continue_()

    page.route("**/*", record)
    page.goto(url)
    return requested


def test_swagger_ui_lists_every_operation_with_local_assets_only(docs_server, browser_page):
    requested = open_recording_requests(browser_page, docs_server.url + "/api/v1/docs")
    browser_page.wait_for_selector(".opblock-summary-path", timeout=20_000)

    paths = browser_page.locator(".opblock-summary-path").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('data-path'))"
    )
    methods = browser_page.locator(".opblock-summary-method").all_inner_texts()
    shown = set(zip(methods, paths, strict=True))

    assert shown == {(method, path) for method, path, _ in OPERATIONS}
    assert all(url.startswith(docs_server.url) for url in requested), requested


def test_redoc_lists_every_operation_with_local_assets_only(docs_server, browser_page):
    requested = open_recording_requests(browser_page, docs_server.url + "/api/v1/redoc")
    browser_page.wait_for_selector("[data-section-id*='/operation/']", timeout=20_000)

    sections = browser_page.locator("[data-section-id*='/operation/']").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('data-section-id'))"
    )
    shown = {section.rsplit("/operation/", 1)[1] for section in sections}

    assert shown == {operation_id for _, _, operation_id in OPERATIONS}
    assert all(url.startswith(docs_server.url) for url in requested), requested


def test_swagger_ui_authorize_takes_a_bearer_token(docs_server, browser_page):
    body = {"email": "grace@example.com", "name": "Grace", "password": "a long password"}
    assert request(docs_server.url + "/api/v1/auth/register", "POST", body, key=None).status == 201
    login = {"email": "grace@example.com", "password": "a long password"}
    token = request(docs_server.url + "/api/v1/auth/login", "POST", login, key=None).body
    page = browser_page
    page.goto(docs_server.url + "/api/v1/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)

    page.click("button.authorize")
    bearer = page.locator(".auth-container").filter(has_text="bearerAuth")
    bearer.locator("input").fill(token["access_token"])
    bearer.locator("button.authorize").click()
    bearer.locator("button.btn-done").click()
    me = page.locator("#operations-me-get_me")
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()

    status = me.locator(".live-responses-table tbody .response-col_status")
    status.first.wait_for(timeout=20_000)
    assert status.first.inner_text().strip() == "200"
    assert "grace@example.com" in me.locator(".live-responses-table").inner_text()
