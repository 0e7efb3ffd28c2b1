"""The botmemory command, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from botmemory import ManualClock, Memory
from botmemory.dialog import DialogEngine

EXAMPLE = Path(__file__).parents[1] / "examples" / "data"


def botmemory(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botmemory", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of a command that failed as every botmemory error does."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_config_check_prints_the_resolved_settings(tmp_path: Path) -> None:
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "botmemory.config.json").write_text(
        "{dataRetention: {policies: {email: '60d'}}, // comment\n}"
    )
    (tmp_path / "bots" / "shop").mkdir(parents=True)
    (tmp_path / "bots" / "shop" / "bot.config.json").write_text("{sessionIntervalTimeout: '2m'}")
    result = botmemory("config", "check", str(tmp_path), "--allow-empty")  # shop has no flows
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["bots"]["shop"]["dialog"]["sessionTimeoutInterval"] == "2m"
    assert settings["bots"]["shop"]["dataRetention"]["policies"] == {"email": "60d"}


def test_config_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "botmemory.config.json").write_text(
        "{\n  dataRetention: {\n    polices: {},\n    janitorInterval: '0s',\n  },\n}"
    )
    (tmp_path / "bots" / "bad bot").mkdir(parents=True)
    result = botmemory("config", "check", str(tmp_path))
    assert result.returncode == 1
    assert "line 3" in result.stderr
    assert "did you mean 'policies'" in result.stderr
    assert "'0s'" in result.stderr
    assert "'bad bot'" in result.stderr
    assert "Traceback" not in result.stderr


def test_janitor_run_once_and_migrate(tmp_path: Path) -> None:
    result = botmemory("migrate", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "memory.db").exists()
    result = botmemory("janitor", "run", str(tmp_path), "--once")
    assert result.returncode == 0, result.stderr
    assert "janitor removed 0 user variables" in result.stdout


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = botmemory("janitor", "run", str(tmp_path / "missing"), "--once")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_janitor_run_runs_timeout_flows_and_session_end_hooks(tmp_path: Path) -> None:
    """As serve's janitor does: the example bot's hooks keep the topic and count timeouts."""
    data = tmp_path / "data"
    shutil.copytree(EXAMPLE, data, ignore=shutil.ignore_patterns("__pycache__", "*.db*"))

    async def converse_hours_ago() -> None:
        engine = await DialogEngine.from_data_dir(data, ManualClock(time.time() - 3 * 3600))
        async with engine:
            for text in ("hi", "Bob", "ok", "bob@example.com", "yes", "cats", "hello"):
                await engine.process("welcome", "bob", text=text)

    async def after() -> tuple[object, object]:
        memory = await Memory.from_data_dir(data)
        async with memory:
            topic = await memory.kvs.for_bot("welcome").get("storage/users/bob/lastTopic")
            async with memory.turn("welcome", "bob") as state:
                return topic, state.user.get("timeouts")

    asyncio.run(converse_hours_ago())
    result = botmemory("janitor", "run", str(data), "--once")
    assert result.returncode == 0, result.stderr
    assert "1 session" in result.stdout
    assert asyncio.run(after()) == ("cats", 1)


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_config_check_reports_everything_serve_refuses_at_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        "global/botmemory.config.json",
        """{
  database: { url: "mysql://u:secret@h/db" },
  auth: { adminTokens: ["admin-token-0123456789"], botTokens: { ghost: ["ghost-token-01234"] } },
  dataRetention: {
    policies: { mood: "5", email: "60x", "a..b": "1d" },
  },
  dialog: { timeoutInterval: "5m" },
  dialog: { timeoutInterval: "1m" },
}
""",
    )
    main = '{startNode: "a", nodes: [{name: "a", next: [{node: "b"}]}]}'
    write(tmp_path, "bots/syntax/flows/main.flow.json", "{startNode: 'a' nodes: []}")
    write(tmp_path, "bots/unknown/flows/main.flow.json", main)
    write(
        tmp_path,
        "bots/unsafe/flows/main.flow.json",
        '{startNode: "a", nodes: [{name: "a", next: [{condition: "__import__(1)", node: "a"}]}]}',
    )
    write(
        tmp_path,
        "bots/actions/flows/main.flow.json",
        '{startNode: "a", nodes: [{name: "a", onEnter: [{action: "nope"}]}]}',
    )
    write(tmp_path, "bots/actions/actions/broken.py", "import not_a_module_anywhere\n")
    write(
        tmp_path,
        "bots/twice/flows/main.flow.json",
        '{\n  startNode: "a",\n  nodes: [],\n  startNode: "b",\n}',
    )
    result = botmemory("config", "check", str(tmp_path))
    assert result.returncode == 1
    err = result.stderr
    assert "Traceback" not in err
    expected = [
        "database.url",  # unsupported scheme
        "mysql://***",  # the password is not shown
        "line 3: auth.botTokens.ghost: no bot 'ghost' (no folder bots/ghost/)",
        "dataRetention.policies.mood: '5' has no unit",
        "dataRetention.policies.email:",
        "policy key 'a..b'",
        "line 7: key 'dialog' is given again on line 8",
        "bots/syntax/flows/main.flow.json, line 1",
        "bots/unknown/flows/main.flow.json",
        "bots/unsafe/flows/main.flow.json",
        "bots/actions/actions/broken.py",
        "not_a_module_anywhere",
        "'nope'",
        "bots/twice/flows/main.flow.json, line 2: key 'startNode' is given again on line 4",
    ]
    missing = [text for text in expected if text not in err]
    assert not missing, err


def test_janitor_run_once_skipped_for_another_process_says_so_and_exits_75(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/memory.db"

    async def run_while_another_process_runs_the_janitor() -> subprocess.CompletedProcess[str]:
        async with await Memory.open(url, clock=ManualClock(time.time() - 3600)) as other:
            await other.kvs.for_global().set("stale", "old", expiry="1s")  # expired an hour ago
            async with other.storage.janitor_lock() as held:
                assert held
                return await asyncio.to_thread(botmemory, "janitor", "run", str(tmp_path), "--once")

    result = asyncio.run(run_while_another_process_runs_the_janitor())
    assert result.returncode == 75, result.stderr
    assert result.stdout == "janitor run skipped: another process is running the janitor\n"
    assert "Traceback" not in result.stderr
    again = botmemory("janitor", "run", str(tmp_path), "--once")  # the lock is free now
    assert again.returncode == 0, again.stderr
    assert "1 kvs keys" in again.stdout  # the skipped run left the expired key
    help_text = botmemory("janitor", "run", "--help").stdout
    assert "75 when it was skipped" in " ".join(help_text.split())


def test_a_relative_sqlite_url_is_the_data_folders_file_from_any_folder(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    write(data, "global/botmemory.config.json", "{database: {url: 'sqlite:///memory.db'}}")
    (data / "bots" / "shop").mkdir(parents=True)
    elsewhere.mkdir()
    result = botmemory("kvs", "set", str(data), "shop", "k", "1", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert botmemory("kvs", "get", ".", "shop", "k", cwd=data).stdout == "1\n"
    assert (data / "memory.db").exists()
    assert not list(elsewhere.iterdir())
    check = botmemory("config", "check", str(data), "--allow-empty", cwd=elsewhere)
    assert json.loads(check.stdout)["database"]["url"] == f"sqlite:///{data / 'memory.db'}"


def test_an_uppercase_sqlite_scheme_is_sqlite_not_a_folder_name(tmp_path: Path) -> None:
    write(tmp_path, "global/botmemory.config.json", "{database: {url: 'SQLITE:///x.db'}}")
    result = botmemory("migrate", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.db").exists()
    assert not (tmp_path / "SQLITE:").exists()


def test_a_postgresql_port_out_of_range_is_refused_by_config_check_and_migrate(
    tmp_path: Path,
) -> None:
    url = "postgresql://u:pw@127.0.0.1:99999/db"
    write(tmp_path, "global/botmemory.config.json", f"{{\n  database: {{url: '{url}'}},\n}}")
    expected = "line 2: database.url: port '99999' is not a port: give a number from 1 to 65535"
    assert expected in one_line_error(botmemory("config", "check", str(tmp_path), "--allow-empty"))
    assert "port '99999' is not a port" in one_line_error(botmemory("migrate", str(tmp_path)))


def test_init_where_no_folder_can_be_made_is_one_line(tmp_path: Path) -> None:
    under_a_file = one_line_error(botmemory("init", "/dev/null/x"))
    assert under_a_file == "Error: cannot create '/dev/null/x': Not a directory"
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    assert one_line_error(botmemory("init", str(tmp_path / "link"))) == (
        f"Error: {str(tmp_path / 'link')!r} is a link to {str(tmp_path / 'nowhere')!r}, "
        "which does not exist"
    )


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("[" * 5000 + "]" * 5000, "VALUE nests lists and objects deeper than 100 levels"),
        ("[" * 200 + "]" * 200, "nested deeper than 100 levels"),
        ("9" * 5000, "VALUE has a number of 5000 digits: integers must fit in 64 bits"),
        ("x" + "1" * 5000, "is not JSON"),
    ],
    ids=["5000 levels", "200 levels", "5000 digits", "long text"],
)
def test_kvs_set_of_any_value_is_one_line_at_most(tmp_path: Path, value: str, said: str) -> None:
    (tmp_path / "bots" / "shop").mkdir(parents=True)
    error = one_line_error(botmemory("kvs", "set", str(tmp_path), "shop", "k", value))
    assert said in error
    assert len(error) < 400


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--user", ""], "user id '' is invalid: use a string of 1 to 255 characters"),
        (["--user", "a\x1bb"], "user id 'a\\x1bb' is invalid: it contains a control character"),
        (["--channel", ""], "channel '' is invalid: use a string of 1 to 255 characters"),
    ],
)
def test_chat_refuses_a_bad_id_before_it_starts(option: list[str], said: str) -> None:
    result = botmemory("chat", str(EXAMPLE), "--bot", "welcome", *option)
    assert one_line_error(result) == f"Error: {said}"
    assert result.stdout == ""  # no "Chatting with welcome as ."
