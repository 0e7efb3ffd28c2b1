"""``botmemory init``, ``serve``, ``memory show|export|forget`` and ``kvs``, as a user runs them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from botmemory.cli.inspect import kvs_group, memory_group
from botmemory.cli.serve import init, serve
from botmemory.config import load_data_dir
from botmemory.dialog import DialogEngine
from botmemory.durations import parse_duration
from botmemory.storage.sqlite import SqliteStorage
from tests.server.conftest import write_data_dir
from tests.server.live import serving


@click.group()
def cli() -> None:
    """The commands under test, as ``botmemory`` registers them."""


for command in (init, serve, memory_group, kvs_group):
    cli.add_command(command)


def botmemory(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def chat(data: Path, user: str, *texts: str) -> None:
    async def go() -> None:
        engine = await DialogEngine.from_data_dir(data)
        try:
            for text in texts:
                await engine.process("welcome", user, text=text)
        finally:
            await engine.close()

    asyncio.run(go())


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data_dir(tmp_path / "data")


# -- init ---------------------------------------------------------------------------------
def test_init_creates_a_data_folder_with_a_token(tmp_path: Path) -> None:
    target = tmp_path / "new"
    result = botmemory("init", str(target))
    assert result.exit_code == 0, result.output
    settings = load_data_dir(target)
    (token,) = settings.admin_tokens
    assert token in result.output
    assert len(token) >= 32
    assert "welcome" in settings.bots
    assert (target / "bots" / "welcome" / "flows" / "main.flow.json").exists()
    config = target / "global" / "botmemory.config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    again = botmemory("init", str(target))
    assert again.exit_code == 1
    assert again.output.strip().splitlines() == [
        f"Error: {str(target)!r} already exists and is not an empty folder"
    ]


def test_two_inits_make_two_tokens(tmp_path: Path) -> None:
    botmemory("init", str(tmp_path / "a"))
    botmemory("init", str(tmp_path / "b"))
    assert load_data_dir(tmp_path / "a").admin_tokens != load_data_dir(tmp_path / "b").admin_tokens


# -- serve --------------------------------------------------------------------------------
def test_serve_refuses_a_public_address_without_a_token(data: Path) -> None:
    result = botmemory("serve", str(data), "--host", "0.0.0.0")
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "refusing to listen on 0.0.0.0: no token is configured" in result.output


def test_serve_refuses_a_public_address_when_the_only_token_lists_are_empty(
    data: Path,
) -> None:
    """``botTokens: {welcome: []}`` configures no token: the server is in local mode."""
    config = data / "global" / "botmemory.config.json"
    config.write_text("{ auth: { botTokens: { welcome: [] } } }")
    result = botmemory("serve", str(data), "--host", "0.0.0.0")
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0: no token is configured" in result.output


@pytest.mark.parametrize(
    "url", ["memory://", "sqlite://", "sqlite:///", "sqlite://:memory:", "sqlite:///:memory:"]
)
def test_serve_refuses_workers_over_a_database_each_process_keeps(data: Path, url: str) -> None:
    config = data / "global" / "botmemory.config.json"
    config.write_text(f'{{ database: {{ url: "{url}" }} }}')
    with socket.socket() as taken:  # were the check gone, serve would fail, not serve
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = botmemory("serve", str(data), "--workers", "2", "--port", port)
    assert result.exit_code == 2
    assert f"--workers 2 needs a database the processes share, and {url} keeps" in result.output


def test_a_sqlite_url_with_parameters_is_refused_not_made_a_file_name(
    data: Path, tmp_path: Path
) -> None:
    config = data / "global" / "botmemory.config.json"
    config.write_text(f'{{ database: {{ url: "sqlite:///{tmp_path}/m.db?timeout=10" }} }}')
    with socket.socket() as taken:  # were the check gone, serve would fail, not serve
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = botmemory("serve", str(data), "--port", str(taken.getsockname()[1]))
    assert result.exit_code == 1, result.output
    assert "SQLite URLs take no parameters: remove '?timeout=10'" in result.output
    assert not list(tmp_path.glob("m.db*"))


def test_serve_refuses_a_folder_without_a_bot(tmp_path: Path) -> None:
    (tmp_path / "empty" / "bots" / "no-flows").mkdir(parents=True)
    result = botmemory("serve", str(tmp_path / "empty"), "--port", "1")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: invalid configuration: no bot in {str(tmp_path / 'empty')!r}: a bot is a "
        "folder bots/<botId>/ with "
        "flows/main.flow.json (botmemory init creates one); pass --allow-empty to serve it anyway"
    ]


def test_serve_allow_empty_serves_a_folder_without_a_bot(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with serving(tmp_path / "empty", "--allow-empty") as served:
        listed = httpx.get(f"{served.url}/api/v1/bots").json()
        assert listed == {"bots": [], "access": "local", "problems": []}
    assert "serving bots none at" in served.output


def test_serve_skips_a_hidden_folder_of_bots(data: Path) -> None:
    (data / "bots" / ".git" / "objects").mkdir(parents=True)
    with serving(data) as served:
        listed = httpx.get(f"{served.url}/api/v1/bots").json()
        assert [bot["id"] for bot in listed["bots"]] == ["echo", "welcome"]
    assert "serving bots echo, welcome at" in served.output


def ready(url: str) -> bool:
    """Whether the server at ``url`` answers /readyz within 60 s (it starts listening just
    after it printed its address)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        time.sleep(0.1)  # polls a real process starting up: no clock to move
    return False


def test_serve_on_port_0_prints_the_port_it_listens_on(data: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BOTMEMORY_DATABASE_URL": ""}
    command = [sys.executable, "-m", "botmemory", "serve", str(data), "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
            assert found is not None, line
            assert found[1] != "0"
            assert ready(f"http://127.0.0.1:{found[1]}")
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def test_serve_grace_without_a_unit_says_so_once(data: Path) -> None:
    result = botmemory("serve", str(data), "--grace", "5")
    assert result.exit_code == 2
    assert "Error: Invalid value for --grace: '5' has no unit: add one" in result.output
    assert "--grace: --grace" not in result.output


def test_serve_help_has_an_example() -> None:
    for command in (["serve"], ["init"], ["memory", "show"], ["kvs", "set"]):
        assert "Example: botmemory" in botmemory(*command, "--help").output


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
async def test_connections_to_the_serve_socket_have_nagle_off(host: str) -> None:
    """Else every answer on a kept-alive connection waits ~40 ms for a delayed ACK."""
    from botmemory.cli.serve import _listen

    try:
        listener = _listen(host, 0)
    except click.ClickException:
        pytest.skip(f"{host} is not available here")
    seen: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=listener)
    async with server:
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection(host.strip("[]"), port)
        while not seen:  # noqa: ASYNC110 - the server's callback fills it
            await asyncio.sleep(0.01)
        writer.close()
    assert seen == [1]


def test_serve_serves_an_initialised_folder(tmp_path: Path) -> None:
    target = tmp_path / "data"
    botmemory("init", str(target))
    (token,) = load_data_dir(target).admin_tokens
    with serving(target) as served:
        url = served.url
        headers = {"Authorization": f"Bearer {token}"}
        reply = httpx.post(
            f"{url}/api/v1/bots/welcome/converse/u1", json={"text": "hi"}, headers=headers
        )
        assert reply.json()["responses"][0]["text"].startswith("Hello!")
        assert httpx.get(f"{url}/api/v1/janitor", headers=headers).json()["running"] is True
        assert httpx.get(f"{url}/api/v1/janitor").status_code == 401
    assert f"serving bots welcome at {url}/" in served.output
    assert token not in served.output  # never logged


# -- memory -------------------------------------------------------------------------------
def test_memory_show(data: Path) -> None:
    chat(data, "u1", "hi", "Ada", "great")
    result = botmemory("memory", "show", str(data), "welcome", "u1")
    assert result.exit_code == 0, result.output
    assert "user memory" in result.output
    assert '"Ada"' in result.output
    assert "retention policy" in result.output  # the mood's expiry
    assert "dialog position" in result.output
    raw = json.loads(botmemory("memory", "show", str(data), "welcome", "u1", "--json").output)
    assert raw["scopes"]["user"]["name"]["value"] == "Ada"


def test_memory_export_and_forget(data: Path, tmp_path: Path) -> None:
    chat(data, "u1", "hi", "Ada")
    exported = json.loads(botmemory("memory", "export", str(data), "welcome", "u1").output)
    assert exported["user"]["name"]["value"] == "Ada"
    out = tmp_path / "u1.json"
    botmemory("memory", "export", str(data), "welcome", "u1", "-o", str(out))
    assert json.loads(out.read_text())["userId"] == "u1"
    assert out.stat().st_mode & 0o777 == 0o600  # personal data: its owner's only
    out.chmod(0o644)
    botmemory("memory", "export", str(data), "welcome", "u1", "-o", str(out))
    assert out.stat().st_mode & 0o777 == 0o600  # written over: its owner's only again
    declined = botmemory("memory", "forget", str(data), "welcome", "u1", input="n\n")
    assert declined.exit_code == 1
    forgot = botmemory("memory", "forget", str(data), "welcome", "u1", "--yes")
    assert forgot.exit_code == 0
    assert forgot.output.startswith("erased u1: ")
    after = json.loads(botmemory("memory", "export", str(data), "welcome", "u1").output)
    assert after["user"] == {}


def test_memory_export_into_a_missing_folder_is_one_line(data: Path, tmp_path: Path) -> None:
    chat(data, "u1", "hi", "Ada")
    out = tmp_path / "missing" / "u1.json"
    result = botmemory("memory", "export", str(data), "welcome", "u1", "-o", str(out))
    assert result.exit_code == 1
    assert result.output == f"Error: cannot write {out}: No such file or directory\n"


def test_memory_forget_says_when_a_reader_keeps_erased_bytes_and_again_finishes(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat(data, "u1", "hi", "Ada")
    monkeypatch.setattr(SqliteStorage, "checkpoint_wait", parse_duration("50ms"))
    reader = sqlite3.connect(data / "memory.db", isolation_level=None)  # another process
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM variables").fetchone()
    pending = botmemory("memory", "forget", str(data), "welcome", "u1", "--yes")
    assert pending.exit_code == 1
    assert "the user is erased, but another connection" in pending.output
    assert "Erase the user again to finish" in pending.output
    reader.execute("COMMIT")
    reader.close()
    again = botmemory("memory", "forget", str(data), "welcome", "u1", "--yes")
    assert again.exit_code == 0, again.output
    assert b'"Ada"' not in (data / "memory.db").read_bytes()


def test_an_unknown_bot_is_one_line_and_exit_1(data: Path) -> None:
    result = botmemory("memory", "show", str(data), "nobot", "u1")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: no bot 'nobot' in {data}/bots: the bots are echo, welcome"
    ]


def test_a_missing_data_folder_is_one_line(tmp_path: Path) -> None:
    result = botmemory("kvs", "get", str(tmp_path / "none"), "welcome", "k")
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "does not exist" in result.output


# -- kvs ----------------------------------------------------------------------------------
def test_kvs_set_get_list_delete(data: Path) -> None:
    assert botmemory("kvs", "set", str(data), "welcome", "a/b", '{"x": [1]}').exit_code == 0
    assert json.loads(botmemory("kvs", "get", str(data), "welcome", "a/b").output) == {"x": [1]}
    assert botmemory("kvs", "get", str(data), "welcome", "a/b", "--path", "x[0]").output == "1\n"
    botmemory("kvs", "set", str(data), "welcome", "s", "hello", "--string", "--expiry", "1h")
    assert botmemory("kvs", "get", str(data), "welcome", "s").output == '"hello"\n'
    assert botmemory("kvs", "list", str(data), "welcome").output == "a/b\ns\n"
    assert botmemory("kvs", "delete", str(data), "welcome", "s").output == "deleted s\n"
    missing = botmemory("kvs", "get", str(data), "welcome", "s")
    assert missing.exit_code == 1
    assert missing.output == "Error: no key 's' in the key-value store of 'welcome'\n"
    assert botmemory("kvs", "delete", str(data), "welcome", "s").exit_code == 1


@pytest.mark.parametrize(
    "value", ["[" * 5000 + "]" * 5000, "9" * 5000], ids=["5000 levels", "5000 digits"]
)
def test_kvs_set_of_a_value_json_cannot_read_is_one_line(data: Path, value: str) -> None:
    result = botmemory("kvs", "set", str(data), "welcome", "k", value)
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert botmemory("kvs", "list", str(data), "welcome").output == ""


def test_kvs_set_refuses_an_expiry_without_a_unit(data: Path) -> None:
    result = botmemory("kvs", "set", str(data), "welcome", "k", "1", "--expiry", "5")
    assert result.exit_code == 1
    assert "has no unit: add one, for example '5s', '5m' or '5d'" in result.output
    assert botmemory("kvs", "list", str(data), "welcome").output == ""


def test_kvs_errors_are_one_line(data: Path) -> None:
    not_json = botmemory("kvs", "set", str(data), "welcome", "k", "hello")
    assert not_json.exit_code == 1
    assert "is not JSON" in not_json.output
    assert len(not_json.output.splitlines()) == 1
    bad_expiry = botmemory("kvs", "set", str(data), "welcome", "k", "1", "--expiry", "1 fortnight")
    assert bad_expiry.exit_code == 1
    assert len(bad_expiry.output.splitlines()) == 1
    assert "1 fortnight" in bad_expiry.output


def test_a_read_of_an_unknown_bot_creates_no_database(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "bots" / "welcome" / "flows").mkdir(parents=True)
    for command in (["memory", "show"], ["kvs", "get"]):
        result = botmemory(*command, str(empty), "nobot", "u1")
        assert result.exit_code == 1
        assert "no bot 'nobot'" in result.output
    assert sorted(p.name for p in empty.iterdir()) == ["bots"]
    assert botmemory("memory", "show", str(empty), "welcome", "u1").exit_code == 0
    assert (empty / "memory.db").exists()  # the bot exists: its memory opens
