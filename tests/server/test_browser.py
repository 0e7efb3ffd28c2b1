"""The web page in headless Chromium: chat, watch the inspector, press its buttons.

Saves a screenshot of the page in the test's folder; with ``BOTMEMORY_UPDATE_SCREENSHOT=1``
it also replaces ``docs/screenshot.png`` (the README's).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from botmemory import ManualClock
from tests.conftest import START
from tests.server.browser import SCREENSHOT, WAIT, cell, send
from tests.server.conftest import ADMIN, CONFIG, write_data_dir
from tests.server.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page


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
        expect(page.locator("#token-help")).to_contain_text("enter a token", timeout=WAIT)
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
        expect(page.locator("#token-help")).to_contain_text("enter a token", timeout=WAIT)
        expect(page.locator("#bot option")).to_have_count(0)
        page.get_by_label("Token").fill(ADMIN)
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#token-help")).to_contain_text("admin token", timeout=WAIT)
        expect(page.locator("#bot option")).to_have_count(2)
        page.get_by_label("Bot", exact=True).select_option("welcome")
        send(page, "hi", "What's your name?")


def test_the_api_page_renders_with_no_network(page: Page, tmp_path: Path) -> None:
    """Swagger UI's assets come from the server itself: nothing else is reachable."""
    from playwright.sync_api import Route, expect

    data = write_data_dir(tmp_path / "data", CONFIG)
    with LiveServer(data, ManualClock(START)) as server:
        outside: list[str] = []

        def only_local(route: Route) -> None:
            if route.request.url.startswith(server.url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        page.goto(server.url)
        page.get_by_role("link", name="HTTP API").click()
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("botmemory", timeout=WAIT)
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        assert page.get_by_text("/api/v1/bots/{botId}/converse/{userId}").count() >= 1
        assert outside == []
