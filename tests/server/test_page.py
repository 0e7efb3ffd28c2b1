"""The web page in headless Chromium: what each visitor may do, the push channel, editing
memory in place, the key-value store, and a phone-sized screen."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from botmemory import ManualClock
from tests.conftest import START
from tests.server.browser import WAIT, cell, send
from tests.server.conftest import ADMIN, CONFIG, WELCOME_TOKEN, bearer, write_data_dir
from tests.server.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page


def choose(page: Page, user: str, bot: str = "welcome") -> None:
    page.get_by_label("Bot", exact=True).select_option(bot)
    page.get_by_label("User id").fill(user)
    page.get_by_role("button", name="Apply").click()


def apply_token(page: Page, token: str) -> None:
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Apply").click()


def test_each_visitor_is_told_what_they_can_do(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    data = write_data_dir(tmp_path / "data", CONFIG)
    (data / "bots" / "echo" / "bot.config.json").write_text("{}")  # no public bot
    with LiveServer(data, ManualClock(START)) as server:
        page.goto(server.url)
        no_bot = page.locator("#no-bot")
        expect(no_bot).to_have_text(re.compile("answers without a valid token"), timeout=WAIT)
        expect(page.get_by_role("button", name="Send")).to_be_disabled()
        expect(page.locator("#inspector")).to_be_hidden()
        expect(page.get_by_role("status")).to_have_text("")

        apply_token(page, "not-a-token-of-this-server")
        expect(page.locator("#token-help")).to_contain_text("This token is not valid", timeout=WAIT)
        expect(page.get_by_role("button", name="Send")).to_be_disabled()

        apply_token(page, WELCOME_TOKEN)
        expect(page.locator("#token-help")).to_contain_text("bot token", timeout=WAIT)
        expect(no_bot).to_be_hidden()
        expect(page.locator("#bot option")).to_have_count(1)
        expect(page.get_by_role("button", name="Run janitor")).to_be_hidden()
        expect(page.get_by_role("button", name="End session")).to_be_visible()
        send(page, "hi", "What's your name?")
        expect(page.get_by_role("status")).to_have_text("")
        expect(page.locator("li.note")).to_have_count(0)  # no "Not sent: ..."

        apply_token(page, ADMIN)
        expect(page.get_by_role("button", name="Run janitor")).to_be_visible(timeout=WAIT)


def test_a_timeout_reply_arrives_without_a_new_message(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    clock = ManualClock(START)
    data = write_data_dir(tmp_path / "data")  # local mode
    with LiveServer(data, clock) as server:
        page.goto(server.url)
        choose(page, "ada")
        send(page, "hi", "What's your name?")
        send(page, "Ada", "How are you feeling today, Ada?")
        clock.advance(timedelta(minutes=5, seconds=1))
        httpx.post(f"{server.url}/api/v1/janitor/run").raise_for_status()  # not the page
        replies = page.get_by_role("log").locator("li.bot")
        expect(replies.filter(has_text="You went quiet, Ada.")).to_have_count(1, timeout=WAIT)
        expect(replies.filter(has_text="Bye Ada!")).to_have_count(1)
        expect(page.locator("#scope-temp td.empty")).to_have_text("(empty)", timeout=WAIT)
        clock.advance(timedelta(minutes=30))
        httpx.post(f"{server.url}/api/v1/janitor/run").raise_for_status()
        expect(page.locator("li.note").filter(has_text="The session timed out")).to_have_count(
            1, timeout=WAIT
        )
        expect(page.get_by_label("Your message")).to_have_value("")


def test_a_variable_is_edited_in_place_and_long_values_expand(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    clock = ManualClock(START)
    data = write_data_dir(tmp_path / "data")
    with LiveServer(data, clock) as server:
        page.goto(server.url)
        choose(page, "ada")
        send(page, "hi", "What's your name?")
        send(page, "Ada", "How are you feeling today, Ada?")
        send(page, "a" * 200, "What's your email address?")

        page.get_by_role("button", name="Edit user.name").click()
        page.get_by_label("New value of user.name (JSON)").fill('"Grace"')
        page.get_by_role("button", name="Save").click()
        expect(cell(page, "user", "name", "value")).to_have_text('"Grace"', timeout=WAIT)
        expect(page.get_by_role("status")).to_have_text("Saved user.name.")

        mood = cell(page, "user", "mood", "value")
        expect(mood.locator("summary")).to_contain_text("show all")
        expect(mood).not_to_contain_text("…" + "a" * 50)
        mood.locator("summary").click()
        expect(mood.locator("pre")).to_have_text('"' + "a" * 200 + '"')
        page.get_by_role("button", name="Refresh").click()
        expect(mood.locator("pre")).to_be_visible()  # still open after a redraw

        page.get_by_role("button", name="Edit session.lastMessages").click()
        page.get_by_label("New value of session.lastMessages (JSON)").fill("not json")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("not JSON")
        page.get_by_role("button", name="Cancel").click()

        clock.advance(timedelta(minutes=31))  # the session has timed out: an edit may not revive it
        page.get_by_role("button", name="Edit user.name").click()
        page.get_by_label("New value of user.name (JSON)").fill('"Ada"')
        page.get_by_role("button", name="Save").click()
        expect(cell(page, "user", "name", "value")).to_have_text('"Ada"', timeout=WAIT)
        expect(page.locator("#session")).to_contain_text("No live session for ada")
        view = httpx.get(f"{server.url}/api/v1/bots/welcome/users/ada/memory?channel=web")
        assert view.json()["session"]["alive"] is False  # the edit did not revive it


def test_the_key_value_store_panel(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    data = write_data_dir(tmp_path / "data", CONFIG)
    with LiveServer(data, ManualClock(START)) as server:
        page.goto(server.url)
        apply_token(page, WELCOME_TOKEN)
        choose(page, "ada")
        send(page, "hi", "What's your name?")

        page.get_by_label("Key", exact=True).fill("motd/today")
        page.get_by_label("Value (JSON)").fill('{"text": "Hello"}')
        page.get_by_label("Expires in").fill("1h")
        page.get_by_role("button", name="Set key").click()
        expect(page.get_by_role("status")).to_contain_text("Stored key motd/today", timeout=WAIT)
        row = page.locator("#kvs-keys tr[data-key='motd/today']")
        expect(row.locator("td.value")).to_have_text('{"text":"Hello"}')
        expect(row.locator("td.expires")).to_have_text(re.compile(r"in (1h|59m \d+s)"))

        page.get_by_label("Prefix").fill("storage/users/ada/")
        page.get_by_role("button", name="List").click()
        expect(page.locator("#kvs-count")).to_have_text(
            '1 key starting with "storage/users/ada/".', timeout=WAIT
        )
        expect(page.locator("#kvs-keys tr")).to_have_count(1)

        page.get_by_label("Prefix").fill("")
        page.get_by_role("button", name="List").click()
        page.get_by_role("button", name="Delete key motd/today").click()
        expect(page.get_by_role("status")).to_contain_text("Deleted key motd/today", timeout=WAIT)
        expect(row).to_have_count(0)
        stored = httpx.get(f"{server.url}/api/v1/bots/welcome/kvs", headers=bearer(ADMIN))
        assert "motd/today" not in stored.json()["keys"]


def test_an_edit_saves_to_the_user_on_screen_and_another_user_cancels_it(
    page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    data = write_data_dir(tmp_path / "data")
    with LiveServer(data, ManualClock(START)) as server:
        page.goto(server.url)
        choose(page, "ada")
        send(page, "hi", "What's your name?")
        send(page, "Ada", "How are you feeling today, Ada?")
        page.get_by_role("button", name="Edit user.name").click()
        page.get_by_label("New value of user.name (JSON)").fill('"Grace"')
        choose(page, "bob")  # another user while the edit is open: it is dropped
        expect(page.locator("#session")).to_contain_text("No live session for bob", timeout=WAIT)
        expect(page.get_by_role("button", name="Save")).to_have_count(0)
        expect(page.get_by_role("button", name="Edit user.name")).to_have_count(0)
        memory = f"{server.url}/api/v1/bots/welcome/users/%s/memory?channel=web"
        assert httpx.get(memory % "bob").json()["scopes"]["user"] == {}
        assert httpx.get(memory % "ada").json()["scopes"]["user"]["name"]["value"] == "Ada"

        choose(page, "ada")
        page.get_by_role("button", name="Edit user.name").click()
        page.get_by_label("New value of user.name (JSON)").fill('"Grace"')
        page.get_by_label("User id").fill("bob")  # typed, not applied: ada is on screen
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved user.name.", timeout=WAIT)
        assert httpx.get(memory % "ada").json()["scopes"]["user"]["name"]["value"] == "Grace"
        assert httpx.get(memory % "bob").json()["scopes"]["user"] == {}


def test_ids_and_keys_a_browser_cannot_send_are_said_so(page: Page, tmp_path: Path) -> None:
    """A browser resolves "." and ".." in a URL path away: the page says so, and never
    shows another user's memory under such an id; a key with a ".." segment is listed."""
    from playwright.sync_api import expect

    data = write_data_dir(tmp_path / "data")
    with LiveServer(data, ManualClock(START)) as server:
        kvs = f"{server.url}/api/v1/bots/welcome/kvs/"
        httpx.put(kvs + "odd%2F..%2Fx", json={"value": 1}).raise_for_status()
        httpx.put(kvs + "odd%2F.", json={"value": 2}).raise_for_status()
        page.goto(server.url)
        choose(page, "ada")
        send(page, "hi", "What's your name?")
        choose(page, "..")
        expect(page.get_by_role("status")).to_contain_text(
            'user id ".." cannot be used', timeout=WAIT
        )
        expect(page.locator("#scopes")).to_be_empty()
        page.get_by_role("textbox", name="Your message").fill("hi")
        page.get_by_role("button", name="Send").click()
        expect(page.locator("li.note").last).to_contain_text('Not sent: The user id ".."')
        converse = f"{server.url}/api/v1/bots/welcome/converse/session"
        httpx.post(converse, json={"text": "hi", "channel": "web"}).raise_for_status()
        choose(page, ".")  # "/users/./session" would reach user "session"'s erasure route
        unreachable = 'user id "." cannot be used'
        expect(page.get_by_role("status")).to_contain_text(unreachable, timeout=WAIT)
        page.get_by_role("button", name="End session").click()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Erase user").click()
        expect(page.get_by_role("status")).to_contain_text(unreachable)
        memory = f"{server.url}/api/v1/bots/welcome/users/session/memory?channel=web"
        assert httpx.get(memory).json()["session"]["alive"] is True  # neither ended nor erased

        page.get_by_label("Prefix").fill("odd")
        page.get_by_role("button", name="List").click()
        expect(page.locator("#kvs-count")).to_have_text('2 keys starting with "odd".', timeout=WAIT)
        expect(page.locator("#kvs-keys tr")).to_have_count(2)
        expect(page.locator("#kvs-keys tr[data-key='odd/../x'] td.value")).to_have_text("1")
        page.get_by_role("button", name="Delete key odd/../x").click()
        expect(page.get_by_role("status")).to_contain_text("Deleted key odd/../x", timeout=WAIT)
        assert httpx.get(f"{server.url}/api/v1/bots/welcome/kvs?prefix=odd").json()["keys"] == [
            "odd/."
        ]


def test_the_page_fits_a_phone_and_long_words_wrap(narrow_page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = narrow_page
    data = write_data_dir(tmp_path / "data")
    with LiveServer(data, ManualClock(START)) as server:
        page.goto(server.url)
        choose(page, "ada")
        send(page, "hi", "What's your name?")
        send(page, "W" * 300, "How are you feeling today")
        expect(cell(page, "user", "name", "value")).to_contain_text("WWW", timeout=WAIT)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 420
        for box in (
            page.locator("li.me").last.bounding_box(),
            page.locator("#scopes").bounding_box(),
        ):
            assert box is not None
            assert box["x"] + box["width"] <= 420


def test_a_broken_edit_of_a_bot_shows_its_problems(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    data = write_data_dir(tmp_path / "data")
    flow = data / "bots" / "welcome" / "flows" / "main.flow.json"
    good = flow.read_text()
    with LiveServer(data, ManualClock(START), reload=True) as server:
        page.goto(server.url)
        choose(page, "ada")
        problems = page.get_by_role("alert")
        expect(problems).to_be_hidden()
        flow.write_text(good.replace('startNode: "start"', 'startNode: "nowhere"'))
        expect(problems).to_contain_text("Your last edit is not running", timeout=20_000)
        expect(problems.locator("li")).to_contain_text("bots/welcome/flows/main.flow.json")
        send(page, "hi", "What's your name?")  # the previous version still answers
        flow.write_text(good)
        expect(problems).to_be_hidden(timeout=20_000)


def test_a_janitor_run_skipped_for_another_process_says_so(page: Page, tmp_path: Path) -> None:
    import fcntl
    import os

    from playwright.sync_api import expect

    clock = ManualClock(START)
    data = write_data_dir(tmp_path / "data")  # local mode, SQLite in data/memory.db
    with LiveServer(data, clock) as server:
        page.goto(server.url)
        choose(page, "ada")
        send(page, "hi", "What's your name?")
        clock.advance(timedelta(minutes=6))  # the dialog timed out: its temp memory is due
        # another process runs the janitor: it holds the lock file of the database
        lock = os.open(data / "memory.db.janitor.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            page.get_by_role("button", name="Run janitor").click()
            expect(page.get_by_role("status")).to_have_text(
                "Janitor run skipped: another process is running the janitor.", timeout=WAIT
            )
        finally:
            os.close(lock)
        page.get_by_role("button", name="Run janitor").click()
        expect(page.get_by_role("status")).to_contain_text("Janitor removed 1 item", timeout=WAIT)
