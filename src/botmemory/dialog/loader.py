"""Import a bot's Python files (actions, hooks) under module names unique to each load."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final

__all__ = ["call_problem", "import_file", "unload"]

_COUNTER: Final = itertools.count(1)
_PREFIX: Final = "_botmemory_bots_"
_UNSAFE: Final = re.compile(r"\W")


def import_file(path: Path, bot_id: str, kind: str, label: str) -> ModuleType | str:
    """Import ``path`` as a fresh module; return it, or the problem naming ``label``.

    Each call gets its own module name (``_botmemory_bots.<n>.<bot>.<kind>.<file>``), so
    two bots, or two loads of one bot, never share or replace each other's code.
    """
    stem = _UNSAFE.sub("_", path.stem)
    name = f"{_PREFIX}{next(_COUNTER)}_{_UNSAFE.sub('_', bot_id)}_{kind}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return f"{label}: cannot be imported as a Python module"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # sys.exit() in a bot's file must not end botmemory
        del sys.modules[name]
        return f"{label}{_line(exc, path)}: cannot be imported: {type(exc).__name__}: {exc}"
    return module


def call_problem(function: Callable[..., object], params: Sequence[str]) -> str | None:
    """Why ``function`` cannot be called with the arguments ``params``; ``None`` if it can.

    Checked on loading, so that a bot's function with the wrong parameters is a problem
    at start-up, not a failed turn on the first message that runs it.
    """
    try:
        # the function called is the wrapper, whatever a decorator says it wraps
        signature = inspect.signature(function, follow_wrapped=False)
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return None
    try:
        signature.bind(*params)
    except TypeError:
        name = getattr(function, "__name__", "function")
        return f"{name}{signature} cannot be called as {name}({', '.join(params)})"
    return None


def unload(functions: Iterable[Callable[..., Any]]) -> None:
    """Forget the modules :func:`import_file` made for ``functions`` (their bot was
    replaced): else every reload would keep the previous version's modules for good."""
    for function in functions:
        name = getattr(function, "__module__", None) or ""
        if name.startswith(_PREFIX):
            sys.modules.pop(name, None)


def _line(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        return f", line {exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f", line {frames[-1].lineno}" if frames else ""
