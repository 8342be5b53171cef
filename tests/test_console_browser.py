"""The staff console in a real browser: Debian's Chromium, driven by Playwright, against a real
`server.py serve` on a loopback port. Signed out it sends you to sign in and back; staff run a
nested query in GraphiQL; every request the page makes stays on that server; customers get 403.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import (
    BrowserContext,
    Page,
    Request,
    Response,
    async_playwright,
    expect,
)

import settings as config
from tests.helpers import CHECKPOINT_DIR_VARIABLE, DEMO_PASSWORD, ROOT, subprocess_environment
from tests.test_two_processes import _start, _stop

CHROMIUM = Path("/usr/bin/chromium")
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
ARTIFACT = ROOT / "var" / "test-artifacts" / "console.png"
NESTED_QUERY = (
    "query ConsoleCheck { myOpenTickets(first: 5) { edges { node { subject "
    "messages(first: 2) { edges { node { body } } } } } } }"
)
SECONDS = 1000  # Playwright counts milliseconds


@pytest.fixture
def console_server(
    demo: None, app_settings: config.Settings, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """`server.py serve` on a free loopback port over the seeded test database; its origin
    follows the port (no PUBLIC_URL), as for a newcomer's first run."""
    if not (app_settings.console_dist / "index.html").is_file():
        pytest.fail("the console is not built: run `make console` (make test does)")
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: run `make browser` (make test does)")
    environment = subprocess_environment(
        DATABASE_URL=app_settings.database_url,
        OCIS_MASTER_KEY=base64.b64encode(app_settings.master_key).decode(),
        HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
        **({"REDIS_URL": app_settings.redis_url} if app_settings.redis_url else {}),
    )
    log = tmp_path / "serve.log"
    for _ in range(3):
        started = _start(environment, log)
        if started is not None:
            break
    else:
        raise AssertionError("no free port for the server in three tries")
    process, base = started
    try:
        yield base, log
    finally:
        _stop(process)


def _sizes(directory: Path) -> dict[Path, int]:
    return {path: path.stat().st_size for path in directory.glob("checkpoint-*.jsonl")}


def _grown(directory: Path, before: dict[Path, int]) -> bool:
    """Whether a checkpoint file under `directory`, which is outside var/, was written."""
    assert not directory.resolve().is_relative_to(ROOT / "var")
    return any(size > before.get(path, 0) for path, size in _sizes(directory).items())


# How long Chromium gets to close; one that will not is killed (it once kept a run waiting).
CLOSE_SECONDS = 20


def _kill_processes_of(profile: Path) -> int:
    """SIGKILL every process whose command line names this profile (this test's Chromium and
    its helpers, nothing else: the directory is the test's own); how many there were."""
    needle = str(profile).encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):  # gone meanwhile, or not ours to read
            continue
    return killed


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Chromium with an empty profile of its own, closed after the test (killed if it does not
    close within CLOSE_SECONDS, so that a stuck browser fails nothing and holds up nothing)."""
    profile = tmp_path / "profile"
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            timeout=30 * SECONDS,
        )
        context.set_default_timeout(15 * SECONDS)
        try:
            yield context
        finally:
            try:
                await asyncio.wait_for(context.close(), CLOSE_SECONDS)
            except TimeoutError:
                logging.getLogger("tests.browser").warning(
                    "Chromium did not close in %d s; killed %d of its processes",
                    CLOSE_SECONDS,
                    _kill_processes_of(profile),
                )


# Collected in the page: a Content-Security-Policy violation would mean a broken console.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""


async def _sign_in(page: Page, base: str, email: str) -> None:
    await page.goto(f"{base}/console")
    await expect(page).to_have_url(f"{base}/console/sign-in?next=%2Fconsole")
    await page.get_by_label("Email or username").fill(email)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/console")


def _expected_first_ticket(base: str) -> tuple[str, str]:
    """The first open ticket of agent@example.com and its first message, as the API says."""
    with httpx.Client(base_url=base, timeout=10) as http:
        signed_in = http.post(
            "/auth/password", json={"email": "agent@example.com", "password": DEMO_PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        answer = http.post("/graphql", json={"query": NESTED_QUERY}, headers={"origin": base})
    assert answer.status_code == 200, answer.text
    node = answer.json()["data"]["myOpenTickets"]["edges"][0]["node"]
    return node["subject"], node["messages"]["edges"][0]["node"]["body"]


async def test_staff_run_a_nested_query_and_every_request_stays_on_the_server(
    console_server: tuple[str, Path], browser: BrowserContext, tmp_path: Path
) -> None:
    base, _ = console_server
    checkpoints = Path(os.environ[CHECKPOINT_DIR_VARIABLE])
    before = _sizes(checkpoints)
    subject, first_body = _expected_first_ticket(base)
    requests: list[str] = []
    graphql: list[Request] = []

    def record(request: Request) -> None:
        requests.append(request.url)
        if request.url == f"{base}/graphql":
            graphql.append(request)

    browser.on("request", record)
    await browser.add_init_script(WATCH_CSP)
    page = browser.pages[0] if browser.pages else await browser.new_page()

    await _sign_in(page, base, "agent@example.com")
    # The agent's saved examples open as tabs, named after their operations.
    await expect(page.locator(".graphiql-tab", has_text="MyOpenTickets")).to_be_visible()
    editor = page.locator(".graphiql-query-editor .monaco-editor").first
    await expect(editor).to_be_visible()
    await editor.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(NESTED_QUERY)
    # Prettier loads on demand: a chunk of its own, which the policy must let run too.
    await page.get_by_role("button", name=re.compile("Prettify", re.IGNORECASE)).click()
    await expect(editor).to_contain_text("subject")
    await expect(page.locator(".graphiql-query-editor .view-line")).to_have_count(17)
    await page.locator(".graphiql-execute-button").click()

    result = page.locator(".result-window")
    await expect(result).to_contain_text(subject, timeout=20 * SECONDS)
    await expect(result).to_contain_text(first_body)
    screenshot = tmp_path / "console.png"
    await page.screenshot(path=str(screenshot))
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, ARTIFACT)

    assert await page.evaluate("window.__cspViolations") == []
    if not os.environ.get("REDIS_URL"):
        # The server's reads were checkpointed in the suite's directory, not in the checkout's
        # var/ (where `make run`'s database would then verify as truncated).
        assert _grown(checkpoints, before)
    host = urlsplit(base).netloc
    assert requests, "the page made no requests at all"
    elsewhere = [url for url in requests if urlsplit(url).netloc != host]
    assert elsewhere == []
    assert all(url.startswith(f"{base}/") for url in requests)
    # The page, its bundle, a worker and the GraphQL answers all came from this server.
    assert any("/console/assets/" in url and ".worker-" in url for url in requests)
    # The console's own check of who is signed in, GraphiQL's introspection, and our query.
    assert len(graphql) >= 3
    for request in graphql:
        headers = await request.all_headers()
        assert request.method == "POST"
        assert headers["content-type"] == "application/json"
        assert headers["accept"] == "application/graphql-response+json, application/json"
        assert headers["origin"] == base
        assert "ocis_session=" in headers["cookie"]
    sent = [json.loads(request.post_data or "{}").get("query", "") for request in graphql]
    assert NESTED_QUERY not in sent  # prettified before it ran
    assert any("ConsoleCheck" in query and "messages(first: 2)" in query for query in sent)
    assert any("__schema" in query for query in sent)


async def test_each_account_opens_its_own_examples_and_a_customer_gets_403(
    console_server: tuple[str, Path], browser: BrowserContext
) -> None:
    base, _ = console_server
    statuses: list[tuple[str, int]] = []

    def record(response: Response) -> None:
        statuses.append((response.url, response.status))

    page = browser.pages[0] if browser.pages else await browser.new_page()
    await _sign_in(page, base, "agent@example.com")
    await expect(page.locator(".graphiql-tab", has_text="MyOpenTickets")).to_be_visible()
    await expect(page.locator(".graphiql-tab", has_text="AuditTrail")).to_have_count(0)

    # Another staff member in the same browser gets the examples of their own role.
    await browser.clear_cookies()
    await _sign_in(page, base, "privacy@example.com")
    await expect(page.locator(".graphiql-tab", has_text="AuditTrail")).to_be_visible()
    await expect(page.locator(".graphiql-tab", has_text="MyOpenTickets")).to_have_count(0)

    await browser.clear_cookies()
    browser.on("response", record)
    await _sign_in(page, base, "customer@example.com")
    await expect(page.get_by_role("heading")).to_have_text("403: the console is for staff")
    assert (f"{base}/console", 403) in statuses
    # Loaded afresh (so no late asset of the officer's console still in flight counts), the
    # 403 page asks for none of the console's assets.
    statuses.clear()
    await page.reload()
    await expect(page.get_by_role("heading")).to_have_text("403: the console is for staff")
    assert (f"{base}/console", 403) in statuses
    assert not any("/console/assets/" in url for url, _ in statuses)


def test_a_browser_that_will_not_close_is_killed_by_its_profile_and_nothing_else(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "profile"
    stuck = subprocess.Popen(  # noqa: S603 - a stand-in for Chromium naming its profile
        [sys.executable, "-c", "import time; time.sleep(60)", f"--user-data-dir={profile}"]
    )
    bystander = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", "import time; time.sleep(60)", f"--user-data-dir={tmp_path}/x"]
    )
    try:
        assert _kill_processes_of(profile) == 1
        assert stuck.wait(timeout=10) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        for process in (stuck, bystander):
            process.kill()
            process.wait(timeout=10)
