"""The web page in headless Chromium: chat, watch the inspector, press its buttons.

Needs Debian's ``chromium`` and the ``playwright`` package (its driver only: no browser
download). Skips with the reason when either is missing, and fails instead when
``BOTMEMORY_REQUIRE_SERVICES=1``. Saves a screenshot of the page in the test's folder; with
``BOTMEMORY_UPDATE_SCREENSHOT=1`` it also replaces ``docs/screenshot.png`` (the README's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from botmemory import ManualClock
from tests.conftest import START, service_unavailable
from tests.server.conftest import ADMIN, CONFIG, write_data_dir
from tests.server.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM: Final = Path(os.environ.get("BOTMEMORY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOT: Final = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
WAIT: Final = 10_000  # milliseconds


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_unavailable("playwright is not installed: pip install playwright")
    if not CHROMIUM.exists():
        service_unavailable(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that fails the test on any script error or console error (CSP too)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    yield opened
    context.close()
    assert problems == []


def send(page: Page, text: str, reply: str) -> None:
    """Type a message, press Enter, wait for a reply of the bot that contains ``reply``."""
    from playwright.sync_api import expect

    replies = page.get_by_role("log").locator("li.bot").filter(has_text=reply)
    before = replies.count()
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Enter")
    expect(replies).to_have_count(before + 1, timeout=WAIT)


def cell(page: Page, scope: str, name: str, column: str) -> Any:
    """The value or expiry cell of a variable in the inspector."""
    return page.locator(f"#scope-{scope} tr[data-name='{name}'] td.{column}")


def test_chat_and_watch_the_memory(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    clock = ManualClock(START)
    data = write_data_dir(tmp_path / "data")  # no token: local mode
    with LiveServer(data, clock) as server:
        page.goto(server.url)
        expect(page.locator("#token-help")).to_contain_text("Local mode", timeout=WAIT)
        page.get_by_label("Bot", exact=True).select_option("welcome")
        page.get_by_label("User id").fill("ada")
        page.get_by_role("button", name="Apply").click()

        send(page, "hi", "What's your name?")
        send(page, "Ada", "How are you feeling today, Ada?")
        send(page, "great", "What's your email address?")

        expect(cell(page, "user", "name", "value")).to_have_text('"Ada"', timeout=WAIT)
        expect(cell(page, "user", "name", "expires")).to_have_text("never")
        expect(cell(page, "user", "mood", "expires")).to_have_text(re.compile(r"in (1d|23h 59m)"))
        expect(cell(page, "session", "topic", "value")).to_have_count(0)
        expect(cell(page, "session", "lastMessages", "expires")).to_have_text(
            re.compile(r"in (30m|29m 5\ds)")
        )
        expect(cell(page, "temp", "__dialog", "expires")).to_have_text(
            re.compile(r"in (5m|4m 5\ds)")
        )
        expect(cell(page, "bot", "conversations", "value")).to_have_text("1")
        expect(page.locator("#session")).to_contain_text("Session welcome::web::ada")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert (tmp_path / "page.png").stat().st_size > 10_000
        if os.environ.get("BOTMEMORY_UPDATE_SCREENSHOT") == "1":
            page.screenshot(path=str(SCREENSHOT), full_page=True)

        clock.advance(
            timedelta(seconds=6 * 60)
        )  # the dialog times out: the janitor empties temp memory
        page.get_by_role("button", name="Run janitor").click()
        expect(page.get_by_role("status")).to_contain_text("Janitor removed", timeout=WAIT)
        expect(page.locator("#scope-temp td.empty")).to_have_text("(empty)", timeout=WAIT)
        expect(cell(page, "user", "name", "value")).to_have_text('"Ada"')

        send(page, "hello again", "Welcome back, Ada!")
        page.get_by_role("button", name="End session").click()
        expect(page.get_by_role("status")).to_contain_text("Session ended", timeout=WAIT)
        expect(page.locator("#scope-session td.empty")).to_have_text("(empty)", timeout=WAIT)

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Erase user").click()
        expect(page.get_by_role("status")).to_contain_text("Erased ada", timeout=WAIT)
        expect(page.locator("#scope-user td.empty")).to_have_text("(empty)", timeout=WAIT)


def test_a_token_unlocks_the_private_bots(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    data = write_data_dir(tmp_path / "data", CONFIG)
    with LiveServer(data, ManualClock(START)) as server:
        page.goto(server.url)
        expect(page.locator("#token-help")).to_contain_text("Enter a token", timeout=WAIT)
        expect(page.locator("#bot option")).to_have_count(1)  # only the public echo bot
        send(page, "ping", "echo: ping")
        page.get_by_label("Token").fill(ADMIN)
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#token-help")).to_contain_text("admin token", timeout=WAIT)
        expect(page.locator("#bot option")).to_have_count(2)
        page.get_by_label("Bot", exact=True).select_option("welcome")
        send(page, "hi", "What's your name?")
        expect(cell(page, "session", "lastMessages", "value")).to_contain_text('"hi"', timeout=WAIT)


def test_a_token_opens_the_page_when_no_bot_is_public(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    data = write_data_dir(tmp_path / "data", CONFIG)
    (data / "bots" / "echo" / "bot.config.json").write_text("{}")  # nothing public
    with LiveServer(data, ManualClock(START)) as server:
        page.goto(server.url)
        expect(page.locator("#token-help")).to_contain_text("Enter a token", timeout=WAIT)
        expect(page.locator("#bot option")).to_have_count(0)
        page.get_by_label("Token").fill(ADMIN)
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#token-help")).to_contain_text("admin token", timeout=WAIT)
        expect(page.locator("#bot option")).to_have_count(2)
        page.get_by_label("Bot", exact=True).select_option("welcome")
        send(page, "hi", "What's your name?")
