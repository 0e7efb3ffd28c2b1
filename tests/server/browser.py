"""Headless Chromium for the web page's tests: fixtures and helpers shared by them.

Needs Debian's ``chromium`` and the ``playwright`` package (its driver only: no browser
download). Skips with the reason when either is missing, and fails instead when
``BOTMEMORY_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from tests.conftest import service_unavailable

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


EXPECTED_ERRORS: Final = (
    "the server responded with a status of 401",
    "net::ERR_CONNECTION_REFUSED",
)
"""What Chromium logs that is not the page's fault: a 401 is how the page learns that a
token it was given is not valid, and a refused connection is the page polling (or its
push channel reconnecting) after the test's server stopped, before the page is closed."""


def _is_error(text: str, kind: str) -> bool:
    return kind == "error" and not any(expected in text for expected in EXPECTED_ERRORS)


def _checked_page(browser: Browser, width: int) -> Iterator[Page]:
    """A fresh page ``width`` pixels wide that fails the test on any script or console error."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on(
        "console", lambda msg: problems.append(msg.text) if _is_error(msg.text, msg.type) else None
    )
    yield opened
    context.close()
    assert problems == [], problems


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page, 1280 pixels wide, that fails the test on any script or console error."""
    yield from _checked_page(browser, 1280)


@pytest.fixture
def narrow_page(browser: Browser) -> Iterator[Page]:
    """The same, 420 pixels wide (a phone)."""
    yield from _checked_page(browser, 420)


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
