"""What the package exports."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import botmemory
from botmemory import BotMemoryError, MissingDependencyError, errors


def test_all_names_exist_and_are_sorted() -> None:
    assert sorted(botmemory.__all__) == botmemory.__all__
    for name in botmemory.__all__:
        assert hasattr(botmemory, name), name


def test_every_error_is_a_botmemory_error_with_a_docstring() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.BotMemoryError)
        assert cls.__doc__
        assert name.endswith("Error")


def test_errors_subclass_builtins_where_natural() -> None:
    assert issubclass(errors.InvalidDurationError, ValueError)
    assert issubclass(errors.InvalidIdError, ValueError)
    assert issubclass(errors.BackendUnavailableError, ConnectionError)
    assert issubclass(errors.MissingDependencyError, ImportError)


def test_a_missing_driver_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from botmemory.storage import create_storage

    for module in [
        m for m in sys.modules if m.startswith(("botmemory.storage.postgres", "asyncpg"))
    ]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'botmemory\[postgres\]'"):
        create_storage("postgresql://localhost/db")


def test_an_unknown_scheme_is_a_clear_error() -> None:
    from botmemory.storage import create_storage

    with pytest.raises(BotMemoryError, match="not supported"):
        create_storage("mysql://u:secret@h/db")


def test_no_assert_guards_a_runtime_path() -> None:
    # python -O strips asserts: a check the code relies on must be an error or a type
    package = Path(botmemory.__file__).parent
    found = [
        f"{path.relative_to(package)}:{node.lineno}"
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == []


def test_the_types_public_methods_return_are_exported() -> None:
    from botmemory.turns import LoadedTurn, begin_turn

    for name in [
        "ErasureCounts",
        "ExportedMessage",
        "ExportedSession",
        "ExportedVariable",
        "JanitorTotals",
        "KvsEntry",
        "MemoryView",
        "SessionView",
        "SyncKeyValueStore",
        "UserExport",
        "VariableView",
    ]:
        assert name in botmemory.__all__, name
        assert getattr(botmemory, name).__doc__, name
    assert begin_turn.__annotations__["return"] == "tuple[TurnState, LoadedTurn]"
    assert LoadedTurn.__doc__
