"""Flows: load ``bots/<botId>/flows/*.flow.json`` (JSON5), validate them, and model them.

Every file is checked against ``flow.schema.json``, then every reference: nodes and flows
named by transitions and timeouts, actions and their arguments, conditions, templates.
All problems of all files are reported together, each naming its file and node.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from botmemory.config.problems import duplicate_keys, key_line, load_json5, syntax_problem
from botmemory.dialog.actions import ActionSpec, CompiledArg, compile_args
from botmemory.dialog.errors import ExpressionError, TemplateError
from botmemory.dialog.expressions import Condition, compile_condition
from botmemory.dialog.templates import Template, compile_template

__all__ = [
    "END",
    "END_FLOW",
    "MAIN_FLOW",
    "RETURN",
    "TIMEOUT_FLOW",
    "TIMEOUT_NODE",
    "ActionCall",
    "Flow",
    "Instruction",
    "Node",
    "Say",
    "Transition",
    "flow_schema",
    "load_flows",
]

MAIN_FLOW: Final = "main.flow.json"
"""The flow a user enters when not inside one."""
END_FLOW: Final = "conversation_end.flow.json"
"""Runs, when present, each time a flow reaches ``END``."""
TIMEOUT_FLOW: Final = "timeout.flow.json"
"""The last resort on dialog timeout."""
END: Final = "END"
RETURN: Final = "#"
TIMEOUT_NODE: Final = "timeout"
SUFFIX: Final = ".flow.json"


@dataclass(frozen=True)
class Say:
    """``{"say": TEMPLATE}``: send the rendered text."""

    template: Template


@dataclass(frozen=True)
class ActionCall:
    """``{"action": NAME, "args": {...}}``: run an action with rendered arguments."""

    name: str
    args: Mapping[str, CompiledArg]


Instruction = Say | ActionCall


@dataclass(frozen=True)
class Transition:
    """``{"condition": EXPR, "node": NAME}`` or ``{"condition": EXPR, "flow": FILE}``."""

    condition: Condition | None
    node: str | None = None
    """A node of the same flow, ``END``, or ``#`` (return to the calling flow)."""
    flow: str | None = None


@dataclass(frozen=True)
class Node:
    """A step of a flow."""

    name: str
    on_enter: tuple[Instruction, ...]
    on_receive: tuple[Instruction, ...] | None
    """``None``: the node does not wait for the user."""
    next: tuple[Transition, ...]
    timeout: str | None = None

    @property
    def waits(self) -> bool:
        """Whether the node waits for the next user message (it has ``onReceive``)."""
        return self.on_receive is not None


@dataclass(frozen=True)
class Flow:
    """A validated flow file."""

    name: str
    start_node: str
    nodes: Mapping[str, Node]
    timeout_node: str | None = None


@cache
def flow_schema() -> dict[str, Any]:
    """Return the JSON Schema of flow files, as shipped with the package."""
    text = files("botmemory.dialog").joinpath("flow.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def load_flows(
    bot_dir: Path, label: str, actions: Mapping[str, ActionSpec], problems: list[str]
) -> dict[str, Flow]:
    """Load and validate every flow of a bot; add each problem found to ``problems``."""
    folder = bot_dir / "flows"
    documents: dict[str, tuple[dict[str, Any], str]] = {}
    for path in sorted(folder.rglob(f"*{SUFFIX}")):
        name = path.relative_to(folder).as_posix()
        read = _read(path, f"{label}/flows/{name}", problems)
        if read is not None:
            documents[name] = read
    names = {path.relative_to(folder).as_posix() for path in folder.rglob(f"*{SUFFIX}")}
    if MAIN_FLOW not in names:
        problems.append(f"{label}/flows: there is no {MAIN_FLOW}, the flow every user starts in")
    return {
        name: _FlowBuilder(name, f"{label}/flows/{name}", names, actions, problems, text).build(
            data
        )
        for name, (data, text) in documents.items()
    }


def _read(path: Path, where: str, problems: list[str]) -> tuple[dict[str, Any], str] | None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError) as exc:
        problems.append(f"{where}: cannot be read: {exc}")
        return None
    try:
        data, twice = load_json5(text)
    except ValueError as exc:
        problems.append(syntax_problem(where, exc))
        return None
    problems.extend(duplicate_keys(where, text, twice))  # and go on: report the rest too
    errors = list(Draft202012Validator(flow_schema()).iter_errors(data))
    if not errors:
        return data, text  # type: ignore[return-value]  # the schema says it is an object
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        problems.append(_schema_problem(where, data, error, text))
    return None


def _schema_problem(where: str, data: object, error: ValidationError, text: str = "") -> str:
    """Describe a schema error with its line, the node's name and the path inside it."""
    error, message = _explain(error)
    path = list(error.absolute_path)
    place = _place(where, text, [str(path[0])] if len(path) == 1 else [])
    if len(path) >= 2 and path[0] == "nodes" and isinstance(data, dict):
        node = data["nodes"][path[1]] if isinstance(path[1], int) else None
        name = node.get("name") if isinstance(node, dict) else None
        if isinstance(name, str):
            place = _place(where, text, ["nodes", path[1], "name"], name)
        else:
            place = f"{_place(where, text, ['nodes', path[1]])}, nodes[{path[1]}]"
        path = path[2:]
    inside = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return f"{place}: {inside + ': ' if inside else ''}{message}"


def _place(where: str, text: str, loc: list[str | int], node: str | None = None) -> str:
    """``where`` with the line of ``loc`` in the flow's ``text`` (when found), then the
    node's name."""
    line = key_line(text, loc) if loc and text else None
    place = where if line is None else f"{where}, line {line}"
    return place if node is None else f"{place}, node {node!r}"


def _explain(error: ValidationError) -> tuple[ValidationError, str]:
    """Turn a ``oneOf`` error into the error of the alternative the author meant."""
    if error.validator != "oneOf" or not isinstance(error.validator_value, list):
        return error, error.message
    alternatives = [" and ".join(map(repr, b.get("required", []))) for b in error.validator_value]
    if not error.context:  # valid under more than one alternative
        return error, f"give {' or '.join(alternatives)}, not both"
    branches: dict[object, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    meant = [errs for errs in branches.values() if all(e.validator != "required" for e in errs)]
    if len(meant) == 1:
        chosen = best_match(meant[0])
        return chosen, chosen.message
    keys = ", ".join(map(repr, error.instance)) if isinstance(error.instance, dict) else "none"
    return error, f"expected an object with {' or '.join(alternatives)}; its keys are {keys}"


class _FlowBuilder:
    """Build one flow from its validated JSON, collecting every reference problem."""

    def __init__(
        self,
        name: str,
        where: str,
        flows: Collection[str],
        actions: Mapping[str, ActionSpec],
        problems: list[str],
        text: str = "",
    ) -> None:
        self.name, self.where, self.flows = name, where, flows
        self.actions, self.problems, self.text = actions, problems, text
        self.node_names: list[str] = []
        self._at = 0
        """The index of the node being built, whose problems :meth:`problem` reports."""

    def problem(self, node: str | None, text: str, key: str | None = None) -> None:
        """Report a problem of the node being built (``node`` is its name), or of the
        flow's top-level ``key``, with its line: that of the node's ``name``, or the key's."""
        loc: list[str | int] = [key] if key else ["nodes", self._at, "name"] if node else []
        self.problems.append(f"{_place(self.where, self.text, loc, node)}: {text}")

    def build(self, data: dict[str, Any]) -> Flow:
        self.node_names = [n["name"] for n in data["nodes"]]
        nodes: dict[str, Node] = {}
        for self._at, raw in enumerate(data["nodes"]):
            name = raw["name"]
            if name in (END, RETURN):
                self.problem(name, f"{name!r} is reserved for transitions: rename the node")
            if name in nodes:
                self.problem(name, "another node has the same name")
            nodes[name] = self._node(raw)
        for key in ("startNode", "timeoutNode"):
            target = data.get(key)
            if target is not None and target not in nodes:
                self.problem(None, f"{key}: {self._unknown_node(target)}", key=key)
        return Flow(self.name, data["startNode"], nodes, data.get("timeoutNode"))

    def _node(self, raw: dict[str, Any]) -> Node:
        name = raw["name"]
        on_receive = raw.get("onReceive")
        timeout = raw.get("timeout")
        if timeout is not None and timeout not in self.node_names:
            self.problem(name, f"timeout: {self._unknown_node(timeout)}")
        return Node(
            name,
            self._instructions(name, "onEnter", raw.get("onEnter", [])),
            None if on_receive is None else self._instructions(name, "onReceive", on_receive),
            tuple(self._transition(name, i, t) for i, t in enumerate(raw.get("next", []))),
            timeout,
        )

    def _instructions(self, node: str, key: str, raw: list[Any]) -> tuple[Instruction, ...]:
        built: list[Instruction] = []
        for index, item in enumerate(raw):
            where = f"{key}[{index}]"
            try:
                built.append(self._instruction(node, where, item))
            except (TemplateError, ExpressionError) as exc:
                self.problem(node, f"{where}: {exc}")
        return tuple(built)

    def _instruction(self, node: str, where: str, item: dict[str, Any]) -> Instruction:
        if "say" in item:
            return Say(compile_template(item["say"]))
        name, args = item["action"], item.get("args", {})
        spec = self.actions.get(name)
        if spec is None:
            hint = difflib.get_close_matches(name, self.actions, n=1)
            known = f"did you mean {hint[0]!r}?" if hint else "is it defined in actions/*.py?"
            self.problem(node, f"{where}: unknown action {name!r}: {known}")
        elif spec.check is not None:
            for text in spec.check(args):
                self.problem(node, f"{where}: {name}: {text}")
        return ActionCall(name, compile_args(args))

    def _transition(self, node: str, index: int, raw: dict[str, Any]) -> Transition:
        where = f"next[{index}]"
        condition = None
        if "condition" in raw:
            try:
                condition = compile_condition(raw["condition"])
            except ExpressionError as exc:
                self.problem(node, f"{where}: {exc}")
        target_node, target_flow = raw.get("node"), raw.get("flow")
        if target_node is not None and target_node not in (END, RETURN, *self.node_names):
            self.problem(node, f"{where}: {self._unknown_node(target_node)}")
        if target_flow is not None and target_flow not in self.flows:
            known = ", ".join(sorted(self.flows)) or "none"
            self.problem(node, f"{where}: unknown flow {target_flow!r}: the flows are {known}")
        return Transition(condition, target_node, target_flow)

    def _unknown_node(self, name: str) -> str:
        known = ", ".join(repr(n) for n in self.node_names)
        return f"unknown node {name!r}: the nodes of this flow are {known} (and END, #)"
