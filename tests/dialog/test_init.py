"""What botmemory.dialog exports."""

from __future__ import annotations

import botmemory.dialog as dialog
from botmemory import BotMemoryError, ConfigError
from botmemory.dialog import errors


def test_all_names_exist() -> None:
    assert len(set(dialog.__all__)) == len(dialog.__all__)
    for name in dialog.__all__:
        assert hasattr(dialog, name), name


def test_every_dialog_error_is_a_botmemory_error_with_a_docstring() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, BotMemoryError)
        assert name.endswith("Error")
        assert cls.__doc__
    assert issubclass(errors.BotLoadError, ConfigError)
    assert issubclass(errors.ExpressionError, ValueError)
    assert issubclass(errors.UnknownBotError, LookupError)
    assert issubclass(errors.TransitionLoopError, errors.DialogError)
