"""``botmemory serve --reload``: a real server process, real edits of a bot's files.

Each step waits, with a deadline, until the server shows it saw the edit; memory stays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.server.conftest import write_data_dir
from tests.server.live import serving

DEADLINE = 30.0  # seconds for the watcher to see an edit (it usually takes well under 1 s)


def eventually(check: Callable[[], Any]) -> Any:
    """Poll ``check`` until it returns something true, else fail at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while not (result := check()):
        assert time.monotonic() < deadline, "the server did not reload in time"
        time.sleep(0.1)  # polls a real process watching real files: no clock to move
    return result


def say(url: str, user: str, text: str) -> list[str]:
    response = httpx.post(f"{url}/api/v1/bots/welcome/converse/{user}", json={"text": text})
    assert response.status_code == 200, response.text
    return [reply["text"] for reply in response.json()["responses"]]


def problems(url: str) -> list[str]:
    listed: list[str] = httpx.get(f"{url}/api/v1/bots").json()["problems"]
    return listed


def test_an_edited_flow_runs_without_a_restart_and_memory_stays(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data")
    flow = data / "bots" / "welcome" / "flows" / "main.flow.json"
    with serving(data, "--reload", "--log-level", "info") as served:
        url = served.url
        assert say(url, "ada", "hi")[0].startswith("Hello! I'm the welcome bot.")
        say(url, "ada", "Ada")
        flow.write_text(flow.read_text().replace("Hello! I'm the welcome bot.", "Hi there!"))
        eventually(lambda: say(url, f"u{time.monotonic_ns()}", "hi")[0].startswith("Hi there!"))
        memory = httpx.get(f"{url}/api/v1/bots/welcome/users/ada/memory").json()
        assert memory["scopes"]["user"]["name"]["value"] == "Ada"
        assert memory["session"]["alive"] is True
    assert "reloaded bot welcome" in served.output


def test_a_broken_edit_keeps_the_previous_version_and_says_where(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data")
    bot = data / "bots" / "welcome"
    action = bot / "actions" / "conversations.py"
    good = action.read_text()
    with serving(data, "--reload") as served:
        url = served.url
        action.write_text(good + "\n\ndef broken(:\n")
        found = eventually(lambda: problems(url))
        line = len((good + "\n\ndef broken(:\n").splitlines())
        assert found[0].startswith(f"bots/welcome/actions/conversations.py, line {line}: ")
        assert say(url, "bob", "hi")[0].startswith("Hello! I'm the welcome bot.")  # still runs
        (bot / "bot.config.json").write_text(
            '{\n  dataRetention: { policies: { mood: "soon" } }\n}'
        )
        config_problem = eventually(
            lambda: problems(url)[0].startswith("bots/welcome/bot.config") and problems(url)[0]
        )
        assert config_problem.startswith(
            "bots/welcome/bot.config.json, line 2: dataRetention.policies.mood:"
        ), config_problem
        (bot / "bot.config.json").write_text('{ dataRetention: { policies: { mood: "2d" } } }')
        action.write_text(good)
        eventually(lambda: problems(url) == [])
        settings = httpx.get(f"{url}/api/v1/bots/welcome").json()["settings"]
        assert settings["dataRetention"]["policies"]["mood"] == "2d"
    assert f"bots/welcome/actions/conversations.py, line {line}" in served.output
    assert "the previous version keeps running" in served.output


def test_a_changed_retention_policy_applies_to_stored_data_without_a_restart(
    tmp_path: Path,
) -> None:
    """The README's tour: shorten ``mood`` to 1m while the server runs."""
    data = write_data_dir(tmp_path / "data")
    config = data / "bots" / "welcome" / "bot.config.json"
    memory_url = "/api/v1/bots/welcome/users/ada/memory"

    def mood() -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(served.url + memory_url).json()["scopes"]["user"]
        return found["mood"]

    with serving(data, "--reload", "--log-level", "info") as served:
        for text in ("hi", "Ada", "great"):
            say(served.url, "ada", text)
        before = mood()["expiresAt"]
        config.write_text(config.read_text().replace('mood: "1d"', 'mood: "1m"'))
        eventually(lambda: mood()["expiresAt"] == before - 86400 + 60)
        edited = httpx.put(
            f"{served.url}/api/v1/bots/welcome/memory/user/ada/mood", json={"value": "ok"}
        ).json()
        now = httpx.get(served.url + memory_url).json()["now"]
        assert 0 < edited["expiresAt"] - now <= 60  # a minute from the edit, not a day


def test_only_the_files_of_bots_and_the_configuration_reload(tmp_path: Path) -> None:
    from botmemory.server.reload import changed_parts

    root = tmp_path / "data"
    paths = [
        root / "bots" / "welcome" / "flows" / "main.flow.json",
        root / "bots" / "echo" / "bot.config.json",
        root / "memory.db-wal",
        root / "global" / "notes.txt",
        tmp_path / "elsewhere" / "bots" / "x" / "y.json",
    ]
    assert changed_parts(root, paths) == ({"welcome", "echo"}, True)
    assert changed_parts(root, paths[:1]) == ({"welcome"}, False)
    assert changed_parts(root, [root / "global" / "botmemory.config.json"]) == (set(), True)
    assert changed_parts(root, paths[2:]) == (set(), False)
