"""``botmemory chat``: a terminal chat with a bot (botmemory.cli.chat)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from botmemory.cli.chat import chat

EXAMPLE = Path(__file__).parents[2] / "examples" / "data"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example data folder, with its own SQLite database."""
    monkeypatch.delenv("BOTMEMORY_DATABASE_URL", raising=False)
    copy = tmp_path / "data"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("memory.db*"))
    return copy


def test_chat_talks_shows_memory_and_quits(data_dir: Path) -> None:
    result = CliRunner().invoke(
        chat,
        [str(data_dir), "--bot", "welcome", "--user", "ada"],
        input="hi\nAda\ngreat\n/memory\n/help\n/quit\nnever read\n",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "welcome> Hello! I'm the welcome bot. What's your name?" in out
    assert "welcome> How are you feeling today, Ada?" in out
    assert "user memory:" in out
    assert '  name = "Ada"  (never expires)' in out
    assert '  mood = "great"  (retention policy: expires ' in out
    assert "session memory:" in out
    assert "session timeout: expires" in out
    assert "temp memory:" in out
    assert "bot memory:" in out
    assert "  conversations = 1  (never expires)" in out
    assert 'dialog position: {"flow":"email.flow.json","node":"askEmail"' in out
    assert "Unknown command /help" in out
    assert "never read" not in out


def test_chat_remembers_between_runs_and_ends_at_end_of_input(data_dir: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(chat, [str(data_dir), "--bot", "welcome"], input="hi\nAda\n")
    assert first.exit_code == 0, first.output
    assert first.output.endswith("welcome> How are you feeling today, Ada?\nyou> ")
    again = runner.invoke(chat, [str(data_dir), "--bot", "welcome"], input="great\n/memory\n")
    assert again.exit_code == 0, again.output
    assert "welcome> What's your email address?" in again.output  # the dialog went on
    assert '  name = "Ada"  (never expires)' in again.output


def test_a_message_refused_is_said_and_the_chat_goes_on(data_dir: Path) -> None:
    result = CliRunner().invoke(
        chat,
        [str(data_dir), "--bot", "welcome"],
        input=f"hi\n{'x' * 70_000}\nAda\n",  # over limits.maxMessageBytes, then a name
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "(not sent: the message is 70000 bytes, over the limit of 65536 bytes" in out
    assert out.endswith("welcome> How are you feeling today, Ada?\nyou> ")


async def test_a_text_no_utf8_carries_is_said_and_the_chat_goes_on(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a terminal's undecodable byte reaches Python as half of a surrogate pair ("\udcff");
    # the test runner cannot type one, so the line is handled as the chat loop does
    from botmemory.cli.chat import _handle
    from botmemory.dialog import DialogEngine

    async with await DialogEngine.from_data_dir(data_dir) as engine:
        assert await _handle(engine, "hi", "welcome", "ada", "api")
        assert await _handle(engine, "Ada \udcff", "welcome", "ada", "api")
        assert await _handle(engine, "Ada", "welcome", "ada", "api")
    out = capsys.readouterr().out
    assert "(not sent: message text: not valid Unicode text (half of a surrogate pair" in out
    assert "welcome> How are you feeling today, Ada?" in out


def test_chat_with_an_unknown_bot_fails_with_one_line(data_dir: Path) -> None:
    result = CliRunner().invoke(chat, [str(data_dir), "--bot", "nobody"], input="")
    assert result.exit_code == 1
    assert "no bot 'nobody' with flows: the bots are welcome" in result.output


async def test_a_timeout_reply_is_printed_then_the_prompt_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from botmemory.cli.chat import _timeout_printer
    from botmemory.dialog import Event

    show = _timeout_printer("ada", "cli")
    await show(Event("timeout", "welcome", "ada", "cli", None), ["You went quiet, Ada."])
    await show(Event("timeout", "welcome", "bob", "cli", None), ["Not for this chat."])
    assert capsys.readouterr().out == "\nwelcome> You went quiet, Ada.\nyou> "
