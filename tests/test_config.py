"""Configuration: defaults, aliases, bot-over-global merge, and every problem reported."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import json5
import pytest

from botmemory.config import (
    BOT_ID_PATTERN,
    DATABASE_URL_ENV,
    GLOBAL_FILE,
    BotSettings,
    Settings,
    load_data_dir,
    load_settings,
)
from botmemory.config.problems import MAX_FILE_DEPTH
from botmemory.durations import parse_duration, quoted
from botmemory.errors import ConfigError, InvalidDurationError

DAY = 86400.0
SECRET = "a value not shown (tokens are secret)"
SEED = """dataRetention: {
  janitorInterval: '2m', // Check each 2 mins for expired data
  policies: {
    email: '60d', // Keep email for 30 days, reset if it is changed
    mood: '1d'%s // Forget user's mood after 1 day
    someChoice: '5m' // Keeps the variable alive for 5 minutes
  }
}
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def bot_file(bot_id: str) -> str:
    return f"bots/{bot_id}/bot.config.json"


def problems(load: Callable[..., Settings], *args: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(*args)
    for problem in info.value.problems:
        assert problem in str(info.value)
    return info.value.problems


def one_problem(load: Callable[..., Settings], *args: object) -> str:
    found = problems(load, *args)
    assert len(found) == 1, found
    return found[0]


def duration_message(value: object, where: str) -> str:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(value, where=where, allow_never=True)
    return str(info.value)


@pytest.fixture(autouse=True)
def _no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)


# --- The seed's example --------------------------------------------------------------


def test_seed_snippet_without_its_comma_reports_file_line_and_column(tmp_path: Path) -> None:
    write(tmp_path, GLOBAL_FILE, "{" + SEED % "" + "}")
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"{GLOBAL_FILE}, line 6, column ")
    assert "not valid JSON5" in problem


def test_seed_snippet_with_its_comma_loads_as_written(tmp_path: Path) -> None:
    write(tmp_path, GLOBAL_FILE, "{" + SEED % "," + "}")
    settings = load_data_dir(tmp_path)
    assert settings.janitor_interval == 120.0
    assert settings.defaults.policies == {"email": 60 * DAY, "mood": DAY, "someChoice": 300.0}


# --- Defaults ------------------------------------------------------------------------


def assert_default_bot(bot: BotSettings, bot_id: str | None) -> None:
    assert bot == BotSettings(
        bot_id=bot_id,
        session_timeout=1800.0,
        dialog_timeout=300.0,
        dialog_janitor_interval=10.0,
        last_messages=5,
        message_ids=20,
        policies={},
        max_value_bytes=1_048_576,
        error_reply="Sorry, something went wrong on my side. Please try again.",
        max_steps=100,
        converse_public=False,
    )


def test_empty_data_folder_gets_every_default(tmp_path: Path) -> None:
    settings = load_data_dir(tmp_path)
    root = tmp_path.resolve()
    assert settings.database_url == f"sqlite:///{root.as_posix()}/memory.db"
    assert settings.database_url.startswith("sqlite:////")
    assert settings.data_dir == root
    assert settings.janitor_interval == 600.0
    assert settings.bots == {}
    assert_default_bot(settings.defaults, None)


def test_data_folder_given_as_str_and_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    settings = load_data_dir("data")
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.database_url == f"sqlite:///{settings.data_dir.as_posix()}/memory.db"


def test_dicts_get_every_default_and_no_database() -> None:
    settings = load_settings()
    assert settings.database_url is None
    assert settings.data_dir is None
    assert settings.janitor_interval == 600.0
    assert_default_bot(settings.defaults, None)
    assert load_settings({}, {}) == settings


def test_every_global_key_is_read() -> None:
    settings = load_settings(
        {
            "database": {"url": "memory://"},
            "dataRetention": {"janitorInterval": "1h", "policies": {"email": "60d"}},
            "dialog": {
                "janitorInterval": "1s",
                "timeoutInterval": "2m",
                "sessionTimeoutInterval": "3h",
            },
            "session": {"lastMessages": 0},
            "limits": {"maxValueBytes": 1000},
            "converse": {"public": True},
        }
    )
    assert settings.database_url == "memory://"
    assert settings.janitor_interval == 3600.0
    assert settings.defaults == BotSettings(
        bot_id=None,
        session_timeout=3 * 3600.0,
        dialog_timeout=120.0,
        dialog_janitor_interval=1.0,
        last_messages=0,
        message_ids=20,
        policies={"email": 60 * DAY},
        max_value_bytes=1000,
        error_reply="Sorry, something went wrong on my side. Please try again.",
        max_steps=100,
        converse_public=True,
    )


@pytest.mark.parametrize(
    ("config", "field", "seconds"),
    [
        ({"dialog": {"timeoutInterval": "2m"}}, "dialog_timeout", 120.0),
        ({"dialog": {"intervalTimeout": "2m"}}, "dialog_timeout", 120.0),
        ({"dialog": {"sessionTimeoutInterval": "1h"}}, "session_timeout", 3600.0),
        ({"sessionIntervalTimeout": "1h"}, "session_timeout", 3600.0),
    ],
)
def test_aliases(config: dict[str, object], field: str, seconds: float) -> None:
    assert getattr(load_settings(config).defaults, field) == seconds
    assert getattr(load_settings({}, {"b": config}).for_bot("b"), field) == seconds


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (
            {"dialog": {"timeoutInterval": "1m", "intervalTimeout": "2m"}},
            "config: dialog.intervalTimeout: another name for 'timeoutInterval'",
        ),
        (
            {"sessionIntervalTimeout": "1h", "dialog": {"sessionTimeoutInterval": "2h"}},
            "config: sessionIntervalTimeout: another name for dialog.sessionTimeoutInterval",
        ),
    ],
)
def test_an_alias_and_its_key_together_are_a_problem(config: dict[str, object], words: str) -> None:
    assert one_problem(load_settings, config).startswith(words)


# --- Bots ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "global_config",
    [{"sessionIntervalTimeout": "1h"}, {"dialog": {"sessionTimeoutInterval": "1h"}}],
)
@pytest.mark.parametrize(
    "bot_config",
    [{"sessionIntervalTimeout": "2h"}, {"dialog": {"sessionTimeoutInterval": "2h"}}],
)
def test_a_bots_session_timeout_wins_whatever_the_spelling(
    global_config: dict[str, object], bot_config: dict[str, object]
) -> None:
    settings = load_settings(global_config, {"b": bot_config, "other": {}})
    assert settings.for_bot("b").session_timeout == 7200.0
    assert settings.for_bot("other").session_timeout == 3600.0
    assert settings.defaults.session_timeout == 3600.0


def test_bot_values_override_global_ones_key_by_key() -> None:
    settings = load_settings(
        {
            "dialog": {"timeoutInterval": "10m", "janitorInterval": "5s"},
            "session": {"lastMessages": 3},
        },
        {"b": {"dialog": {"timeoutInterval": "1m"}, "session": {"lastMessages": 9}}},
    )
    bot = settings.for_bot("b")
    assert (bot.dialog_timeout, bot.dialog_janitor_interval, bot.last_messages) == (60.0, 5.0, 9)
    assert (settings.defaults.dialog_timeout, settings.defaults.last_messages) == (600.0, 3)


def test_bot_policies_are_merged_over_the_global_ones() -> None:
    settings = load_settings(
        {"dataRetention": {"policies": {"email": "60d", "mood": "1d", "tmp_*": "5m"}}},
        {"b": {"dataRetention": {"policies": {"mood": "2h", "email": "never", "phone": "7d"}}}},
    )
    assert settings.for_bot("b").policies == {
        "email": None,
        "mood": 7200.0,
        "tmp_*": 300.0,
        "phone": 7 * DAY,
    }
    assert settings.defaults.policies == {"email": 60 * DAY, "mood": DAY, "tmp_*": 300.0}


def test_global_only_settings_reach_every_bot() -> None:
    settings = load_settings({"limits": {"maxValueBytes": 10}}, {"b": {}})
    assert settings.for_bot("b").max_value_bytes == 10
    assert settings.for_bot("unknown").max_value_bytes == 10


def test_for_bot_without_settings_gets_the_defaults_under_its_id() -> None:
    settings = load_settings(
        {"session": {"lastMessages": 2}}, {"b": {"session": {"lastMessages": 7}}}
    )
    assert settings.for_bot("b").bot_id == "b"
    assert settings.for_bot("b").last_messages == 7
    other = settings.for_bot("other")
    assert other == dataclasses.replace(settings.defaults, bot_id="other")
    assert settings.defaults.bot_id is None
    assert "other" not in settings.bots


def test_bot_files_merge_over_the_global_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        GLOBAL_FILE,
        "{sessionIntervalTimeout: '1h', dataRetention: {policies: {a: '1d'}}}",
    )
    write(
        tmp_path,
        bot_file("b1"),
        "{sessionIntervalTimeout: '2h', dataRetention: {policies: {b: '5m'}}}",
    )
    (tmp_path / "bots" / "b2").mkdir()
    settings = load_data_dir(tmp_path)
    assert sorted(settings.bots) == ["b1", "b2"]
    assert settings.bots["b1"].session_timeout == 7200.0
    assert settings.bots["b1"].policies == {"a": DAY, "b": 300.0}
    assert settings.bots["b2"] == dataclasses.replace(settings.defaults, bot_id="b2")


@pytest.mark.parametrize("name", ["a", "A-b_9", "x" * 64])
def test_valid_bot_folder_names(tmp_path: Path, name: str) -> None:
    (tmp_path / "bots" / name).mkdir(parents=True)
    assert list(load_data_dir(tmp_path).bots) == [name]
    assert BOT_ID_PATTERN.fullmatch(name)


@pytest.mark.parametrize("name", ["bad id", "x" * 65, "dots.are.not.ids", "caf\u00e9"])
def test_a_bot_folder_that_is_not_a_bot_id(tmp_path: Path, name: str) -> None:
    (tmp_path / "bots" / name).mkdir(parents=True)
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"bots/{name}: {name!r} is not a valid bot id")


def test_hidden_folders_in_the_bots_folder_are_skipped(tmp_path: Path) -> None:
    for name in (".git", ".hidden", "shop"):
        (tmp_path / "bots" / name).mkdir(parents=True)
    assert list(load_data_dir(tmp_path).bots) == ["shop"]


def test_files_in_the_bots_folder_are_not_bots(tmp_path: Path) -> None:
    write(tmp_path, "bots/README.md", "not a bot")
    assert load_data_dir(tmp_path).bots == {}


def test_bot_ids_given_as_dicts_are_checked() -> None:
    problem = one_problem(load_settings, {}, {"bad id": {}})
    assert problem.startswith("bots.bad id: 'bad id' is not a valid bot id")


# --- Database URL --------------------------------------------------------------------


def test_database_url_from_the_global_file(tmp_path: Path) -> None:
    write(tmp_path, GLOBAL_FILE, "{database: {url: 'postgresql://db/memory'}}")
    assert load_data_dir(tmp_path).database_url == "postgresql://db/memory"


@pytest.mark.parametrize("in_file", [True, False])
def test_environment_overrides_the_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_file: bool
) -> None:
    if in_file:
        write(tmp_path, GLOBAL_FILE, "{database: {url: 'postgresql://db/memory'}}")
    monkeypatch.setenv(DATABASE_URL_ENV, "redis://cache:6379/0")
    assert load_data_dir(tmp_path).database_url == "redis://cache:6379/0"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///memory.db", "memory.db"),
        ("sqlite:///db/m.db", "db/m.db"),
        ("SQLite:///../m.db", "../m.db"),
        ("SQLITE:///x.db", "x.db"),
    ],
)
@pytest.mark.parametrize("in_file", [True, False])
def test_a_relative_sqlite_path_is_relative_to_the_data_folder_wherever_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, path: str, in_file: bool
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if in_file:
        write(data, GLOBAL_FILE, f"{{database: {{url: '{url}'}}}}")
    else:
        monkeypatch.setenv(DATABASE_URL_ENV, url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_data_dir(data).database_url == f"sqlite:///{(data.resolve() / path).as_posix()}"


@pytest.mark.parametrize(
    "url", ["sqlite:////abs/m.db", "sqlite://", "sqlite:///:memory:", "postgresql://db/m"]
)
def test_absolute_and_in_memory_database_urls_stay_as_written(tmp_path: Path, url: str) -> None:
    write(tmp_path, GLOBAL_FILE, f"{{database: {{url: '{url}'}}}}")
    assert load_data_dir(tmp_path).database_url == url


def test_environment_does_not_touch_settings_built_from_dicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "redis://cache:6379/0")
    assert load_settings().database_url is None


# --- Problems ------------------------------------------------------------------------


def test_duration_problem_quotes_the_file_line_key_and_value(tmp_path: Path) -> None:
    text = """{
  // policies below
  dataRetention: {
    policies: {
      email: '60x',
    },
  },
}
"""
    write(tmp_path, GLOBAL_FILE, text)
    problem = one_problem(load_data_dir, tmp_path)
    where = "dataRetention.policies.email"
    assert problem == f"{GLOBAL_FILE}, line 5: {duration_message('60x', where)}"


def test_unknown_key_suggests_the_nearest_one(tmp_path: Path) -> None:
    write(tmp_path, GLOBAL_FILE, "{\n  dataRetention: {\n    polices: {email: '1d'},\n  },\n}")
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(
        f"{GLOBAL_FILE}, line 3: dataRetention.polices: unknown key 'polices'"
    )
    assert "did you mean 'policies'?" in problem


def test_unknown_key_without_a_near_one_lists_the_keys() -> None:
    problem = one_problem(load_settings, {"session": {"zzz": 1}})
    assert problem == (
        "config: session.zzz: unknown key 'zzz': the keys here are lastMessages, messageIds"
    )


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ({"session": {"lastMessages": "five"}}, "session.lastMessages", "'five'"),
        ({"session": {"lastMessages": -1}}, "session.lastMessages", "-1"),
        ({"session": {"lastMessages": True}}, "session.lastMessages", "got true"),
        ({"session": {"lastMessages": 1.5}}, "session.lastMessages", "1.5"),
        ({"limits": {"maxValueBytes": 0}}, "limits.maxValueBytes", "0"),
        ({"limits": {"maxValueBytes": "1MB"}}, "limits.maxValueBytes", "'1MB'"),
        ({"database": {"url": 5}}, "database.url", "5"),
        ({"database": {"url": ""}}, "database.url", "''"),
        ({"dialog": 5}, "dialog", "should be an object, got 5"),
        ({"dataRetention": {"policies": ["email"]}}, "dataRetention.policies", "['email']"),
    ],
)
def test_wrong_types_name_the_key_and_quote_the_value(
    config: dict[str, object], key: str, words: str
) -> None:
    problem = one_problem(load_settings, config)
    assert problem.startswith(f"config: {key}: ")
    assert problem.endswith(words)


def test_wrong_type_in_a_file_has_its_line(tmp_path: Path) -> None:
    write(tmp_path, GLOBAL_FILE, '{\n  session: {\n    lastMessages: "five",\n  },\n}\n')
    problem = one_problem(load_data_dir, tmp_path)
    assert problem == (
        f"{GLOBAL_FILE}, line 3: session.lastMessages: should be a valid integer, got 'five'"
    )


def test_a_bad_list_item_has_its_own_line_not_the_list_key_s(tmp_path: Path) -> None:
    text = """{
  // tokens
  auth: {
    adminTokens: [
      "an-admin-token-long-enough",
      12,
      'short',
    ],
    botTokens: {
      b: ['a-bot-token-long-enough',
        null],
    },
  },
}
"""
    write(tmp_path, GLOBAL_FILE, text)
    (tmp_path / "bots" / "b").mkdir(parents=True)
    assert problems(load_data_dir, tmp_path) == [
        f"{GLOBAL_FILE}, line 6: auth.adminTokens.1: should be a valid string, got {SECRET}",
        f"{GLOBAL_FILE}, line 7: auth.adminTokens.2: "
        f"String should have at least 16 characters, got {SECRET}",
        f"{GLOBAL_FILE}, line 11: auth.botTokens.b.1: should be a valid string, got {SECRET}",
    ]


def test_a_good_list_item_before_a_bad_one_keeps_its_line_apart(tmp_path: Path) -> None:
    # the first item is good and on the key's line: the bad second one is still found
    text = '{\n  "auth": {"adminTokens": ["an-admin-token-long-enough",\n    true]}\n}\n'
    write(tmp_path, GLOBAL_FILE, text)
    problem = one_problem(load_data_dir, tmp_path)
    assert problem == (
        f"{GLOBAL_FILE}, line 3: auth.adminTokens.1: should be a valid string, got {SECRET}"
    )


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("true", "true"),
        ("false", "false"),
        ("null", "null"),
        ("'five'", "'five'"),
        ('"five"', "'five'"),
        ('"it\'s"', "'it\\'s'"),
        ("[1, true, null]", "[1, true, null]"),
        ("{a: false}", "{'a': false}"),
        ("1.5", "1.5"),
    ],
)
def test_a_wrong_value_is_quoted_in_json_terms(tmp_path: Path, written: str, shown: str) -> None:
    write(tmp_path, GLOBAL_FILE, f"{{\n  dialog: {{\n    maxSteps: {written},\n  }},\n}}\n")
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"{GLOBAL_FILE}, line 3: dialog.maxSteps: ")
    assert problem.endswith(f", got {shown}")
    assert "True" not in problem
    assert "None" not in problem


def test_a_long_wrong_value_is_cut_in_json_terms() -> None:
    problem = one_problem(load_settings, {"dialog": {"errorReply": [None] * 100}})
    shown = problem.partition(", got ")[2]
    assert shown.startswith("[null, null, ")
    assert shown.endswith("...]")
    assert len(shown) <= 80


@pytest.mark.parametrize("value", [0, "0s", "-5m", -5, "never", "1 fortnight", "", "60x", 1, None])
@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("dialog", "janitorInterval"),
        ("dialog", "timeoutInterval"),
        ("dialog", "intervalTimeout"),
        ("dialog", "sessionTimeoutInterval"),
        ("dataRetention", "janitorInterval"),
    ],
)
def test_bad_intervals(section: str, key: str, value: object) -> None:
    problem = one_problem(load_settings, {section: {key: value}})
    assert problem.startswith(f"config: {section}.{key}: {quoted(value)} ")


@pytest.mark.parametrize(
    "value",
    [0, "0s", "0ms", "0.0000001ms", "0.9ms", "-5m", -5, "1 fortnight", "", "60x", True, None],
)
def test_bad_policies_never_mean_instant_expiry(value: object) -> None:
    problem = one_problem(
        load_settings, {}, {"b": {"dataRetention": {"policies": {"email": value}}}}
    )
    assert problem.startswith(f"bots.b: dataRetention.policies.email: {quoted(value)} ")


def test_top_level_session_alias_with_a_bad_value() -> None:
    problem = one_problem(load_settings, {"sessionIntervalTimeout": "60x"})
    assert problem == f"config: {duration_message('60x', 'sessionIntervalTimeout')}"


@pytest.mark.parametrize(
    ("text", "words"), [("[1, 2]", "[1, 2]"), ("'config'", "'config'"), ("null", "null")]
)
def test_top_level_that_is_not_an_object(tmp_path: Path, text: str, words: str) -> None:
    write(tmp_path, GLOBAL_FILE, text)
    problem = one_problem(load_data_dir, tmp_path)
    assert problem == f"{GLOBAL_FILE}: the top level must be an object, got {words}"


def test_bot_config_given_as_a_list_is_a_problem() -> None:
    problem = one_problem(load_settings, {}, {"b": ["dialog"]})
    assert problem == "bots.b: the top level must be an object, got ['dialog']"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("{\n  database: {url: 'sqlite:///x.db'},\n}", "database", 2),
        ("{\n  limits: {\n    maxValueBytes: 5,\n  },\n}", "limits", 2),
        (
            "{\n  dataRetention: {\n    janitorInterval: '1m',\n  },\n}",
            "dataRetention.janitorInterval",
            3,
        ),
    ],
)
def test_global_only_keys_in_a_bot_file(tmp_path: Path, text: str, key: str, line: int) -> None:
    write(tmp_path, bot_file("b"), text)
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"bots/b/bot.config.json, line {line}: {key}: only allowed in ")
    assert GLOBAL_FILE in problem


def test_line_of_a_key_whose_name_appears_earlier(tmp_path: Path) -> None:
    text = """{
  // janitorInterval: in comments does not count
  dialog: {
    janitorInterval: '5s',
  },
  dataRetention: {
    "janitorInterval": 'soon',
  },
}
"""
    write(tmp_path, GLOBAL_FILE, text)
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"{GLOBAL_FILE}, line 7: dataRetention.janitorInterval: 'soon' ")


def test_problems_in_one_file_come_in_line_order(tmp_path: Path) -> None:
    text = "{\n  limits: {maxValueBytes: 0},\n  session: {lastMessages: -1},\n  dialog: {x: 1},\n}"
    write(tmp_path, GLOBAL_FILE, text)
    found = problems(load_data_dir, tmp_path)
    assert [p.split(":")[0] for p in found] == [f"{GLOBAL_FILE}, line {n}" for n in (2, 3, 4)]


def test_several_problems_in_several_files_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, GLOBAL_FILE, "{dataRetention: {policies: {email: '0s'}}, sesion: {}}")
    write(tmp_path, bot_file("b1"), "{dialog: {timeoutInterval: '1m'")
    write(tmp_path, bot_file("b2"), "{limits: {maxValueBytes: 5}}")
    (tmp_path / "bots" / "bad id").mkdir()
    found = problems(load_data_dir, tmp_path)
    assert len(found) == 5
    for place in (GLOBAL_FILE, bot_file("b1"), bot_file("b2"), "bots/bad id"):
        assert any(problem.startswith(place) for problem in found), place


def test_syntax_error_at_end_of_file(tmp_path: Path) -> None:
    write(tmp_path, bot_file("b"), "{\n  dialog: {timeoutInterval: '1m'\n")
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith("bots/b/bot.config.json, line ")
    assert "column" in problem
    assert "not valid JSON5" in problem


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, GLOBAL_FILE, "")
    path.write_bytes(b"{a: '\xff'}")
    assert one_problem(load_data_dir, tmp_path).startswith(f"{GLOBAL_FILE}: cannot be read")


def test_a_data_folder_copied_as_a_dangling_link_says_so(tmp_path: Path) -> None:
    # examples/data is a link to ../src/botmemory/example_data: `cp -r` copies the link
    (tmp_path / "copy").symlink_to("../src/botmemory/example_data")
    problem = one_problem(load_data_dir, tmp_path / "copy")
    assert problem == (
        f"data folder {str(tmp_path / 'copy')!r} is a link to '../src/botmemory/example_data', "
        "which does not exist from there: copy the folder itself (cp -rL)"
    )
    (tmp_path / "real").mkdir()
    (tmp_path / "good").symlink_to("real")  # a link to a folder is a data folder
    assert load_data_dir(tmp_path / "good").data_dir == (tmp_path / "real").resolve()


@pytest.mark.parametrize("link", [GLOBAL_FILE, bot_file("shop"), "global", "bots/shop"])
def test_a_config_file_that_is_a_link_to_nothing_is_a_problem(tmp_path: Path, link: str) -> None:
    """Not a missing file: a bot's retention policies would vanish with it."""
    (tmp_path / "bots" / "shop").mkdir(parents=True)
    (tmp_path / link).parent.mkdir(parents=True, exist_ok=True)
    if (tmp_path / link).is_dir():
        (tmp_path / link).rmdir()
    (tmp_path / link).symlink_to(tmp_path / "nonexistent")
    problem = one_problem(load_data_dir, tmp_path)
    assert (
        problem == f"{link}: is a link to {str(tmp_path / 'nonexistent')!r}, which does not exist"
    )


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_data_folder_that_is_not_a_folder(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "data"
    if kind == "file":
        path.write_text("{}")
    problem = one_problem(load_data_dir, path)
    assert str(path) in problem
    assert "does not exist or is not a folder" in problem


# --- Files and results ---------------------------------------------------------------


def test_json5_features(tmp_path: Path) -> None:
    text = """// botmemory
{
  /* block comment */
  "dataRetention": {
    policies: {
      'profile.email': '30 days',
      "tmp_*": "5s",
      plain: "1.5h",
    },
  },
}
"""
    write(tmp_path, GLOBAL_FILE, text)
    assert load_data_dir(tmp_path).defaults.policies == {
        "profile.email": 30 * DAY,
        "tmp_*": 5.0,
        "plain": 5400.0,
    }


@pytest.mark.parametrize("value", ["5", "5000", '"5"', "1.5"])
def test_a_policy_without_a_unit_is_a_problem_with_file_line_and_key(
    tmp_path: Path, value: str
) -> None:
    write(
        tmp_path,
        bot_file("b"),
        f"{{\n  dataRetention: {{policies: {{\n    mood: {value},\n  }}}},\n}}",
    )
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"{bot_file('b')}, line 3: dataRetention.policies.mood: ")
    assert "has no unit: add one" in problem


def test_quoted_keys_have_their_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        GLOBAL_FILE,
        "{\n  dataRetention: {policies: {\n    'tmp_*': '2 fortnights',\n  }},\n}",
    )
    assert one_problem(load_data_dir, tmp_path).startswith(
        f"{GLOBAL_FILE}, line 3: dataRetention.policies.tmp_*: '2 fortnights' has an unknown unit"
    )


def test_read_only_mappings_are_accepted() -> None:
    config = MappingProxyType({"session": MappingProxyType({"lastMessages": 1})})
    assert load_settings(config).defaults.last_messages == 1


def test_settings_cannot_be_changed() -> None:
    settings = load_settings({"dataRetention": {"policies": {"email": "1d"}}}, {"b": {}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.defaults.last_messages = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.defaults.policies["email"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        settings.bots["c"] = settings.defaults  # type: ignore[index]


def test_describe_is_json_with_readable_durations() -> None:
    settings = load_settings(
        {
            "database": {"url": "postgresql://bot:s3cret@db/memory"},
            "dataRetention": {"janitorInterval": "2m", "policies": {"email": "60d"}},
        },
        {"b": {"sessionIntervalTimeout": "1h", "dataRetention": {"policies": {"email": "never"}}}},
    )
    described = settings.describe()
    assert json.loads(json.dumps(described)) == described
    assert "s3cret" not in json.dumps(described)
    assert described["dataRetention"] == {"janitorInterval": "2m"}
    assert described["defaults"] == {
        "dialog": {
            "janitorInterval": "10s",
            "timeoutInterval": "5m",
            "sessionTimeoutInterval": "30m",
            "errorReply": "Sorry, something went wrong on my side. Please try again.",
            "maxSteps": 100,
        },
        "session": {"lastMessages": 5, "messageIds": 20},
        "converse": {"public": False},
        "dataRetention": {"policies": {"email": "60d"}},
        "limits": {"maxValueBytes": 1048576, "maxMessageBytes": 65536},
    }
    bot = described["bots"]["b"]  # type: ignore[index]
    assert bot["dialog"]["sessionTimeoutInterval"] == "1h"
    assert bot["dataRetention"]["policies"] == {"email": "never"}


def test_describe_a_data_folder(tmp_path: Path) -> None:
    described = load_data_dir(tmp_path).describe()
    assert described["dataDir"] == str(tmp_path.resolve())
    assert described["database"] == {"url": f"sqlite:///{tmp_path.resolve().as_posix()}/memory.db"}


@pytest.mark.parametrize("key", ["a..b", ".a", "a.", "", "tmp_[0-9]"])
def test_malformed_policy_keys_are_reported(key: str) -> None:
    with pytest.raises(ConfigError, match="policy key"):
        load_settings({"dataRetention": {"policies": {key: "1d"}}})


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("profile.a[0]", "names a list item"),
        ("tags[0]", "names a list item"),
        ("profile.a[0].b", "names a list item"),
        ("profile.*", "has a glob in its field"),
        ("prof*.ph?ne", "has a glob in its field"),
    ],
)
def test_a_policy_on_a_list_item_or_a_glob_field_is_refused(key: str, reason: str) -> None:
    """Neither could be kept exact: list items move, and a glob field matched nothing."""
    problem = one_problem(load_settings, {"dataRetention": {"policies": {key: "1d"}}})
    assert problem.startswith(f"config: dataRetention.policies.{key}: policy key {key!r} {reason}")


@pytest.mark.parametrize("key", ["prof*.phone", "tmp_?", "profile.address.city", "*"])
def test_globs_over_names_and_dotted_fields_are_policy_keys(key: str) -> None:
    settings = load_settings({"dataRetention": {"policies": {key: "1d"}}})
    assert key in settings.defaults.policies


def test_dialog_server_and_auth_keys() -> None:
    admin, shop = "a" * 32, "s" * 32
    settings = load_settings(
        {
            "auth": {"adminTokens": [admin], "botTokens": {"shop": [shop]}},
            "server": {"maxBodyBytes": 1000},
            "dialog": {"errorReply": "Oops", "maxSteps": 7},
        },
        {"shop": {"converse": {"public": True}, "dialog": {"errorReply": "Shop oops"}}},
    )
    assert settings.admin_tokens == (admin,)
    assert settings.bot_tokens == {"shop": (shop,)}
    assert settings.max_body_bytes == 1000
    assert settings.for_bot("other").error_reply == "Oops"
    assert settings.for_bot("other").converse_public is False
    shop_settings = settings.for_bot("shop")
    assert (shop_settings.error_reply, shop_settings.max_steps) == ("Shop oops", 7)
    assert shop_settings.converse_public is True


@pytest.mark.parametrize(
    ("config", "bot_config", "message"),
    [
        ({"auth": {"adminTokens": ["short"]}}, {}, "at least 16 characters"),
        ({}, {"auth": {"adminTokens": ["x" * 20]}}, "only allowed in the global file"),
        ({}, {"server": {"maxBodyBytes": 10}}, "only allowed in the global file"),
        ({"dialog": {"maxSteps": 0}}, {}, "maxSteps"),
        ({"converse": {"public": "yes"}}, {}, "converse.public"),
    ],
)
def test_bad_dialog_server_and_auth_keys(
    config: dict[str, object], bot_config: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(config, {"shop": bot_config})


def test_a_problem_names_the_line_of_the_key_at_its_own_depth(tmp_path: Path) -> None:
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "botmemory.config.json").write_text(
        "{\n"
        "  dialog: {\n"
        "    timeoutInterval: '5m', // timeoutInterval: in a comment\n"
        "  },\n"
        "  note: 'timeoutInterval: in a string',\n"
        "  timeoutInterval: '3m',\n"
        "}\n"
    )
    with pytest.raises(ConfigError, match=r"line 6: timeoutInterval: unknown key"):
        load_data_dir(tmp_path)


def test_a_key_given_twice_is_reported_with_both_lines(tmp_path: Path) -> None:
    write(
        tmp_path,
        bot_file("b"),
        "{\n  dataRetention: {policies: {mood: '1m'}},\n  // pasted above:\n"
        "  dataRetention: {policies: {mood: '1d'}},\n}",
    )
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"{bot_file('b')}, line 2: key 'dataRetention' is given again")
    assert "on line 4" in problem


def test_a_key_given_twice_in_plain_json_is_reported_too(tmp_path: Path) -> None:
    write(tmp_path, bot_file("b"), '{\n  "dialog": {},\n  "dialog": {}\n}')
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"{bot_file('b')}, line 2: key 'dialog' is given again on line 3")


@pytest.mark.parametrize(
    "escaped",
    ['"em\\u0061il"', "em\\u0061il", "'em\\x61il'", '"\\u0065mail"', "'EM\\u0041IL'"],
)
def test_a_key_given_twice_is_found_however_it_is_spelt(tmp_path: Path, escaped: str) -> None:
    """A retention policy given twice, once escaped, must not be silently replaced."""
    name = "EMAIL" if "EM" in escaped else "email"
    write(
        tmp_path,
        bot_file("b"),
        f"{{\n  dataRetention: {{\n    policies: {{\n      {name}: '1d',\n"
        f"      {escaped}: '60d',\n    }},\n  }},\n}}",
    )
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"{bot_file('b')}, line 4: key {name!r} is given again on line 5")


def test_a_problem_of_an_escaped_key_names_the_key_s_own_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        GLOBAL_FILE,
        '{\n  "dataRetention": { "policies": {\n    "em\\u0061il": "5"\n  } }\n}',
    )
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(
        f"{GLOBAL_FILE}, line 3: dataRetention.policies.email: '5' has no unit"
    )


def test_plain_json_is_read_without_the_json5_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JSON5's parser is pure Python (a 500 KB flow took 7 s): plain JSON, as Botpress
    # exports it, goes through the json module; JSON5 syntax still needs the parser
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("json5.loads was called")

    monkeypatch.setattr(json5, "loads", refuse)
    write(tmp_path, GLOBAL_FILE, '{"dialog": {"timeoutInterval": "2m"}}')
    assert load_data_dir(tmp_path).defaults.dialog_timeout == 120
    write(tmp_path, GLOBAL_FILE, "{dialog: {timeoutInterval: '2m'}}")
    with pytest.raises(AssertionError, match=r"json5\.loads was called"):
        load_data_dir(tmp_path)


def nested(depth: int, json5_syntax: bool) -> str:
    """A global config file whose brackets and braces nest ``depth`` levels."""
    inner = "[" * (depth - 2) + "1" + "]" * (depth - 2)  # inside two objects
    if json5_syntax:
        return "// a comment\n{auth: {botTokens: " + inner + "}}"
    return '{"auth": {"botTokens": ' + inner + "}}"


@pytest.mark.parametrize("json5_syntax", [False, True], ids=["json", "json5"])
def test_a_file_nests_at_most_max_file_depth_levels(tmp_path: Path, json5_syntax: bool) -> None:
    write(tmp_path, GLOBAL_FILE, nested(MAX_FILE_DEPTH, json5_syntax))
    problem = one_problem(load_data_dir, tmp_path)
    assert "auth.botTokens" in problem  # read to the end: only its value is wrong
    for depth in (MAX_FILE_DEPTH + 1, 10_000):  # 10,000: past any parser's recursion
        write(tmp_path, GLOBAL_FILE, nested(depth, json5_syntax))
        problem = one_problem(load_data_dir, tmp_path)
        assert problem == (
            f"{GLOBAL_FILE}: brackets and braces are nested deeper than {MAX_FILE_DEPTH} levels"
        )


@pytest.mark.parametrize("comment", ["", "// JSON5\n"], ids=["json", "json5"])
def test_an_escaped_surrogate_pair_is_one_character_and_half_of_one_a_problem(
    tmp_path: Path, comment: str
) -> None:
    # JSON5's parser left the halves of "\ud83d\ude00" apart, which no UTF-8 text holds
    token = '"t0123456789abcdef\\ud83d\\ude00"'
    write(tmp_path, GLOBAL_FILE, comment + f'{{\n  "auth": {{"adminTokens": [{token}]}}\n}}')
    assert load_data_dir(tmp_path).admin_tokens == ("t0123456789abcdef\U0001f600",)
    token = '"t0123456789abcdef\\ud83d"'
    write(tmp_path, GLOBAL_FILE, comment + f'{{\n  "auth": {{"adminTokens": [{token}]}}\n}}')
    problem = one_problem(load_data_dir, tmp_path)
    line = 3 if comment else 2
    assert problem == (
        f"{GLOBAL_FILE}, line {line}: auth.adminTokens[0]: 't0123456789abcdef\\ud83d' holds "
        "the escape \\ud83d, half of a surrogate pair without its other half"
    )


@pytest.mark.parametrize("comment", ["", "// JSON5\n"], ids=["json", "json5"])
@pytest.mark.parametrize(
    ("number", "said"),
    [
        ("NaN", "NaN"),
        ("Infinity", "a number past ±1.8e308 (or Infinity)"),
        ("-Infinity", "a number past ±1.8e308 (or Infinity)"),
        ("1e400", "a number past ±1.8e308 (or Infinity)"),
    ],
)
def test_a_number_no_json_value_holds_is_a_problem_where_it_is(
    tmp_path: Path, comment: str, number: str, said: str
) -> None:
    # both parsers read NaN and Infinity; no stored or sent value can hold them
    write(tmp_path, GLOBAL_FILE, comment + '{\n  "limits": {"maxValueBytes": 1.0e308}\n}')
    assert "limits.maxValueBytes" in one_problem(load_data_dir, tmp_path)  # finite: read on
    write(tmp_path, GLOBAL_FILE, comment + f'{{\n  "limits": {{"maxValueBytes": {number}}}\n}}')
    assert one_problem(load_data_dir, tmp_path) == (
        f"{GLOBAL_FILE}, line {3 if comment else 2}: limits.maxValueBytes: {said} is not a "
        "JSON number: no value botmemory stores can hold it"
    )


@pytest.mark.parametrize("comment", ["", "// JSON5\n"])
def test_a_number_of_more_digits_than_python_reads_is_a_problem_on_its_line(
    tmp_path: Path, comment: str
) -> None:
    number = "-" + "9" * 5000
    write(
        tmp_path, GLOBAL_FILE, comment + f'{{\n  "limits": {{\n    "maxValueBytes": {number}}}\n}}'
    )
    assert one_problem(load_data_dir, tmp_path) == (
        f"{GLOBAL_FILE}, line {4 if comment else 3}: a number of 5000 digits is longer than "
        "any value botmemory takes"
    )


def test_every_problem_of_one_policy_object_is_reported(tmp_path: Path) -> None:
    write(tmp_path, GLOBAL_FILE, "{dataRetention: {policies: {a: '5', b: '1x', 'c..d': '1d'}}}")
    found = problems(load_data_dir, tmp_path)
    assert len(found) == 3, found
    assert any("policies.a" in p for p in found)
    assert any("policies.b" in p for p in found)
    assert any("'c..d'" in p for p in found)


def test_an_unsupported_database_url_is_a_config_problem(tmp_path: Path) -> None:
    write(tmp_path, GLOBAL_FILE, "{\n  database: {\n    url: 'mysql://u:pw@h/db',\n  },\n}")
    problem = one_problem(load_data_dir, tmp_path)
    assert problem.startswith(f"{GLOBAL_FILE}, line 3: database.url:")
    assert "pw" not in problem


def test_bot_tokens_for_a_bot_without_a_folder(tmp_path: Path) -> None:
    (tmp_path / "bots" / "shop").mkdir(parents=True)
    token = "t" * 20
    write(
        tmp_path, GLOBAL_FILE, f"{{auth: {{botTokens: {{shop: ['{token}'], gone: ['{token}']}}}}}}"
    )
    problem = one_problem(load_data_dir, tmp_path)
    assert "auth.botTokens.gone: no bot 'gone' (no folder bots/gone/)" in problem
