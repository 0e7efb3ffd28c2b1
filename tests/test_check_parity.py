"""``botmemory config check`` refuses what the commands that open a data folder refuse.

Each case breaks a folder made by ``botmemory init`` in one way; ``config check`` must
report it (exit 1, no traceback) and the dialog engine (what ``serve``, ``chat``,
``janitor run`` and the ASGI app open) must refuse it with the same words before it
starts. The reverse cases are accepted by both.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from botmemory.cli.admin import config_check
from botmemory.cli.checks import check_data_dir
from botmemory.cli.serve import init
from botmemory.config import GLOBAL_FILE
from botmemory.dialog import DialogEngine
from botmemory.errors import BotMemoryError, ConfigError
from botmemory.storage import create_storage
from tests.server.live import free_port

TOKEN = "admin-token-0123456789"


def make_data(root: Path) -> Path:
    """A data folder as ``botmemory init`` makes it, with a known token."""
    data = root / "data"
    result = CliRunner().invoke(init, [str(data)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    set_global(data, "")
    return data


def set_global(data: Path, extra: str) -> None:
    (data / GLOBAL_FILE).write_text(f"{{\n  auth: {{ adminTokens: ['{TOKEN}'] }},\n{extra}\n}}\n")


def database_url(url: str) -> Callable[[Path], None]:
    return lambda data: set_global(data, f"  database: {{ url: '{url.format(data=data)}' }},")


def bot_file(relative: str, text: str) -> Callable[[Path], None]:
    def write(data: Path) -> None:
        path = data / "bots" / "welcome" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return write


def check(data: Path, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(config_check, [str(data), *options], catch_exceptions=False)
    return result.exit_code, result.output


def open_engine(data: Path) -> None:
    async def go() -> None:
        engine = await DialogEngine.from_data_dir(data)
        await engine.close()

    asyncio.run(go())


REFUSED: dict[str, tuple[Callable[[Path], None], str]] = {
    # redis-py handed unknown parameters to its connections: a TypeError on first use
    "redis parameter": (
        database_url("redis://127.0.0.1:6379/0?pool_mx=5"),
        "unknown parameter 'pool_mx' (not botmemory's nor redis-py's): did you mean 'pool_max'?",
    ),
    "redis cluster parameter": (
        database_url("redis+cluster://127.0.0.1:7000/?sockettimeout=5"),
        "unknown parameter 'sockettimeout'",
    ),
    # asyncpg sent the misspelt option to the server, which refused it on connecting
    "postgres misspelt option": (
        database_url("postgresql://postgres@127.0.0.1:5432/test?pool_mx=5"),
        "unknown parameter 'pool_mx': did you mean 'pool_max'?",
    ),
    "postgres sslmode": (
        database_url("postgresql://postgres@127.0.0.1:5432/test?sslmode=on"),
        "sslmode='on' must be one of disable, allow, prefer, require, verify-ca, verify-full",
    ),
    # SQLite failed on opening
    "sqlite under a file": (
        database_url("sqlite:///{data}/global/botmemory.config.json/memory.db"),
        "botmemory.config.json is a file, so no folder can be created in it",
    ),
    "sqlite names a folder": (
        database_url("sqlite:///{data}/bots"),
        "is a folder, not a file",
    ),
    # serve refused it on opening ("file is not a database"), config check passed it
    "sqlite file not a database": (
        lambda data: (data / "memory.db").write_text("not a database, " * 10),
        "memory.db: is not an SQLite database (it does not start with 'SQLite format 3')",
    ),
    # a function that cannot take its arguments started, then failed the first turn using it
    "action parameters": (
        bot_file(
            "actions/greet.py",
            "from botmemory.dialog import action\n\n\n@action('welcome.greet')\n"
            "def greet(event, state):\n    pass\n",
        ),
        "bots/welcome/actions/greet.py: action 'welcome.greet': greet(event, state) cannot be "
        "called as greet(event, state, args, kvs)",
    ),
    "hook parameters": (
        bot_file(
            "hooks/before_outgoing/tag.py", "async def hook(event, reply, state, kvs):\n    pass\n"
        ),
        "bots/welcome/hooks/before_outgoing/tag.py: hook(event, reply, state, kvs) cannot be "
        "called as hook(event, state, kvs)",
    ),
    # sys.exit() while importing ended the command without a word (exit code 3)
    "action exits": (
        bot_file("actions/leave.py", "import sys\nsys.exit(3)\n"),
        "bots/welcome/actions/leave.py, line 2: cannot be imported: SystemExit: 3",
    ),
    "hook exits": (
        bot_file("hooks/before_incoming/leave.py", "raise SystemExit('bye')\n"),
        "bots/welcome/hooks/before_incoming/leave.py, line 1: cannot be imported: SystemExit: bye",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_check_and_the_engine_refuse_alike(case: str, tmp_path: Path) -> None:
    breaks, expected = REFUSED[case]
    data = make_data(tmp_path)
    breaks(data)
    code, output = check(data)
    assert code == 1, output
    assert expected in output
    with pytest.raises(BotMemoryError) as refused:
        open_engine(data)
    assert expected in str(refused.value)


def test_a_database_that_is_a_fifo_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    os.mkfifo(data / "memory.db")  # reading it would wait for a writer for ever
    code, output = check(data)
    assert code == 1
    assert "memory.db: is not a regular file" in output


def test_an_empty_database_file_is_accepted_by_both(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    (data / "memory.db").touch()  # SQLite makes a database of an empty file
    assert check(data)[0] == 0
    open_engine(data)


def test_check_names_the_line_of_a_bad_database_url(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    set_global(
        data, "  dialog: { timeoutInterval: '5m' },\n  database: { url: 'redis://h/0?x=1' },"
    )
    code, output = check(data)
    assert code == 1
    assert output.strip().splitlines() == [
        "invalid configuration: global/botmemory.config.json, line 4: database.url: "
        "unknown parameter 'x' (not botmemory's nor redis-py's): botmemory's are prefix, "
        "lease_timeout, lock_wait, ttl_grace, pool_max"
    ]


def test_check_names_the_environment_variable_that_set_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_data(tmp_path)
    monkeypatch.setenv("BOTMEMORY_DATABASE_URL", "sqlite:///" + str(data / "bots"))
    code, output = check(data)
    assert code == 1
    assert "BOTMEMORY_DATABASE_URL: SQLite database" in output
    assert "is a folder, not a file" in output


def test_check_names_the_default_database_as_the_default(tmp_path: Path) -> None:
    data = make_data(tmp_path)  # no database.url in any file: <data>/memory.db
    (data / "memory.db").mkdir()
    code, output = check(data)
    assert code == 1
    assert output.strip().splitlines() == [
        f"invalid configuration: SQLite database {data.resolve()}/memory.db: is a folder, "
        "not a file (the default database: database.url is not set)"
    ]


ACCEPTED: dict[str, str] = {
    "redis-py parameters": "redis://127.0.0.1:6379/0?socket_timeout=5&client_name=bots",
    "redis cluster parameters": "redis+cluster://127.0.0.1:7000/?socket_timeout=5",
    "redis over TLS": "rediss://127.0.0.1:6380/0?ssl_cert_reqs=none",
    "redis cluster over TLS": "rediss+cluster://127.0.0.1:7000,127.0.0.1:7001/?socket_timeout=5",
    "postgres sslmode spelt as asyncpg also reads it": (
        "postgresql://postgres@127.0.0.1:5432/test?sslmode=verify_full"
    ),
    "postgres server settings": (
        "postgresql://postgres@127.0.0.1:5432/test?statement_timeout=5s&deadlock_timeout=1s"
        "&sslmode=prefer&pool_max=4"
    ),
}


@pytest.mark.parametrize("case", ACCEPTED)
def test_check_accepts_the_urls_the_backends_accept(case: str, tmp_path: Path) -> None:
    url = ACCEPTED[case]
    create_storage(url)  # what every command does first with the URL; no connection
    data = make_data(tmp_path)
    database_url(url)(data)
    code, output = check(data)
    assert code == 0, output


def test_a_sqlite_path_the_system_refuses_is_a_configuration_error(tmp_path: Path) -> None:
    """An error of the file system on the way (here a name too long; a folder this
    process may not search is another) is the URL's problem, not a traceback."""
    url = f"sqlite:///{tmp_path}/{'x' * 300}/memory.db"
    with pytest.raises(ConfigError, match="File name too long"):
        create_storage(url)
    data = make_data(tmp_path)
    database_url(url)(data)
    code, output = check(data)
    assert code != 0
    assert "File name too long" in output
    assert "Traceback" not in output


def test_sqlite_folders_that_do_not_exist_yet_are_created(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    database_url("sqlite:///{data}/new/deeper/memory.db")(data)
    assert check(data)[0] == 0
    open_engine(data)
    assert (data / "new" / "deeper" / "memory.db").is_file()


def test_functions_that_can_take_their_arguments_are_accepted(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    bot_file(
        "actions/loose.py",
        "from botmemory.dialog import action\n\n\n@action('welcome.loose')\n"
        "def loose(*args, extra=1):\n    pass\n",
    )(data)
    bot_file(
        "hooks/on_session_end/defaults.py", "def hook(event, state, kvs=None, n=2):\n    pass\n"
    )(data)
    bot_file(  # a decorator that supplies an argument: the wrapper is what is called
        "actions/wrapped.py",
        "import functools\nfrom botmemory.dialog import action\n\n\n"
        "def with_db(fn):\n    @functools.wraps(fn)\n"
        "    async def wrapper(event, state, args, kvs):\n"
        "        return await fn(event, state, args, kvs, 'db')\n    return wrapper\n\n\n"
        "@action('welcome.wrapped')\n@with_db\n"
        "async def wrapped(event, state, args, kvs, db):\n    pass\n",
    )(data)
    code, output = check(data)
    assert code == 0, output
    open_engine(data)


def serve(data: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botmemory", "serve", str(data), "--port", "0", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_refuses_a_folder_serve_refuses_for_having_no_bot(tmp_path: Path) -> None:
    data = tmp_path / "empty"
    (data / "bots" / "no-flows").mkdir(parents=True)
    code, output = check(data)
    assert code == 1
    served = serve(data)
    assert served.returncode == 1
    assert served.stderr.strip() == f"Error: {output.strip()}"
    assert "pass --allow-empty" in output
    assert check(data, "--allow-empty")[0] == 0


def test_check_serve_and_the_engine_report_every_problem_at_once_alike(tmp_path: Path) -> None:
    # serve stopped at the config files' problems, the engine (chat) at the bots'
    data = make_data(tmp_path)
    set_global(data, "  dialog: { timeoutInterval: '5' },")
    bot_file("flows/main.flow.json", "{startNode: 'a', nodes: [{name: 'a', next: 7}]}")(data)
    code, output = check(data)
    assert code == 1
    assert output.startswith("invalid configuration (2 problems):")
    assert "dialog.timeoutInterval: '5' has no unit" in output
    assert "bots/welcome/flows/main.flow.json" in output
    served = serve(data)
    assert served.returncode == 1
    assert served.stderr.strip() == f"Error: {output.strip()}"
    with pytest.raises(ConfigError) as refused:
        open_engine(data)
    assert str(refused.value) == output.strip()


def test_checking_a_folder_leaves_no_thread_running(tmp_path: Path) -> None:
    # serve checks before it starts: the SQLite storage built to check the URL must not
    # leave its worker thread behind
    data = make_data(tmp_path)
    before = set(threading.enumerate())
    settings, problems = check_data_dir(str(data))
    assert settings is not None
    assert problems == []
    assert set(threading.enumerate()) - before == set()


def test_serve_refuses_a_bad_url_with_the_words_of_check(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    database_url("redis://127.0.0.1:6379/0?pool_mx=5")(data)
    served = serve(data)
    assert served.returncode == 1
    assert "Traceback" not in served.stderr
    assert "unknown parameter 'pool_mx'" in served.stderr
    assert "unknown parameter 'pool_mx'" in check(data)[1]


def test_the_asgi_app_fails_its_start_with_the_problem_check_reports(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    breaks, expected = REFUSED["action parameters"]
    breaks(data)
    assert expected in check(data)[1]
    command = [sys.executable, "-m", "uvicorn", "botmemory.server.asgi:app"]
    port = str(free_port())
    process = subprocess.run(
        [*command, "--port", port, "--log-level", "warning"],
        env={**os.environ, "BOTMEMORY_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode != 0
    assert expected in process.stderr
