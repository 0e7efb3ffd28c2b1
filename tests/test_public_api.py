"""What the package exports."""

from __future__ import annotations

import botmemory
from botmemory import errors


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
