"""Run a bot's flows for one turn: from where the user is to the next wait, or the end.

The position (flow, node, and the stack of flows to return to) is kept in temp memory
under :data:`POSITION_KEY`, so it is discarded with temp: at ``END``, on dialog timeout,
when temp expires. Templates and conditions never see it.

Rules the issue leaves open, as implemented here:

- A node without ``onReceive`` runs ``onEnter`` and goes on at once; a node with one
  runs ``onEnter``, waits, and runs ``onReceive`` on the next message.
- Transitions are tried in order; one without a condition always matches. When none
  matches, a waiting node waits again (its ``onReceive`` runs on the next message), any
  other node ends the flow as ``END`` does. A node without ``next`` ends the flow.
- ``{"flow": F}`` enters ``F`` at its start node and remembers where it came from;
  ``{"node": "#"}`` returns there and tries the caller's transitions *after* the one that
  jumped. When ``F`` is already on the way (the current flow, or one that called it),
  ``F`` starts again instead, the flows called since left as if they had returned: a
  loop between flows does not nest, so no sequence of messages grows the stack.
  ``END`` ends the whole dialog, whatever the depth; ``#`` with nothing to return to is
  ``END`` too.
- After ``END``, ``conversation_end.flow.json`` (when present) runs once, with the same
  event and an empty temp.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from botmemory.dialog.actions import invoke, render_args
from botmemory.dialog.bots import Bot
from botmemory.dialog.errors import ActionError, DialogError, ExpressionError, TransitionLoopError
from botmemory.dialog.events import Event
from botmemory.dialog.expressions import Condition
from botmemory.dialog.flows import (
    END,
    END_FLOW,
    MAIN_FLOW,
    RETURN,
    TIMEOUT_FLOW,
    TIMEOUT_NODE,
    ActionCall,
    Flow,
    Instruction,
    Node,
    Say,
    Transition,
)
from botmemory.kvs import KeyValueStore
from botmemory.scopes import ScopeMemory
from botmemory.turns import TurnState
from botmemory.values import JsonValue

__all__ = ["DEFAULT_MAX_STEPS", "POSITION_KEY", "FlowRunner", "template_context"]

log = logging.getLogger("botmemory.dialog")

POSITION_KEY: Final = "__dialog"
"""The temp variable that holds where the user is in the flows."""
DEFAULT_MAX_STEPS: Final = 100
"""Nodes one turn may go through without waiting for the user."""

Mode = Literal["enter", "receive", "resume"]


@dataclass(frozen=True)
class _ReturnPoint:
    flow: str
    node: str
    resume: int
    """Index of the caller's first transition to try on return."""


class _Visible(Mapping[str, JsonValue]):
    """A read-only view of a scope without its reserved (``_``) names, parsed on access
    (those inside a value are hidden where it is read, printed, counted or searched: see
    :mod:`~botmemory.dialog.operators`)."""

    def __init__(self, scope: ScopeMemory) -> None:
        self._scope = scope

    def __getitem__(self, name: str) -> JsonValue:
        if name.startswith("_"):
            raise KeyError(name)
        return self._scope[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._scope if not name.startswith("_"))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def template_context(event: Event, state: TurnState) -> dict[str, object]:
    """What templates and conditions see: the event and the four memories (no reserved keys)."""
    return {
        "event": event.as_dict(),
        "user": _Visible(state.user),
        "session": _Visible(state.session),
        "temp": _Visible(state.temp),
        "bot": _Visible(state.bot),
    }


class FlowRunner:
    """Runs the flows of one bot for one turn; collects the replies."""

    def __init__(
        self,
        bot: Bot,
        event: Event,
        state: TurnState,
        kvs: KeyValueStore,
        max_steps: int = DEFAULT_MAX_STEPS,
    ) -> None:
        self.bot, self.event, self.state, self.kvs = bot, event, state, kvs
        self.max_steps = max_steps
        self.replies: list[str] = []
        self.flow: str | None = None
        self.node: str | None = None
        self._stack: list[_ReturnPoint] = []
        self._resume = 0
        self._steps = 0
        self._trail: deque[str] = deque(maxlen=6)
        self._ended = False
        self._context = template_context(event, state)
        """Built once: the scopes change in place during the turn, never their objects."""

    # -- entry points ------------------------------------------------------------------
    def restore(self) -> bool:
        """Read the saved position; return whether the user is inside a flow."""
        saved = self.state.temp.get(POSITION_KEY)
        if saved is None:
            return False
        if self._restore(saved):
            return True
        log.warning(
            "bot %s: user %s was at %r, which the flows no longer have: starting over",
            self.bot.bot_id,
            self.state.user_id,
            saved,
        )
        self.state.end_flow()
        return False

    async def on_message(self) -> None:
        """Handle the event as a user message: go on from the saved position, or start."""
        if self.restore():
            await self._run("receive")
        else:
            await self._start(MAIN_FLOW)

    async def on_timeout(self) -> None:
        """Run the first timeout target found, then discard temp and the position.

        Call :meth:`restore` first: it tells whether the user is inside a flow.
        """
        target = self._timeout_target()
        if target is not None:
            self.flow, self.node = target
            await self._run("enter")
        self.state.end_flow()

    # -- the loop ----------------------------------------------------------------------
    async def _start(self, flow: str) -> None:
        self.flow, self.node = flow, self._flow(flow).start_node
        await self._run("enter")

    async def _run(self, mode: Mode) -> None:
        while True:
            node = self._step()
            if mode == "enter":
                await self._do(node.on_enter, "onEnter")
                if node.waits:
                    return self._wait()
            elif mode == "receive":
                await self._do(node.on_receive or (), "onReceive")
            index = self._choose(node, self._resume if mode == "resume" else 0)
            if index is None and node.waits and node.next:
                return self._wait()
            next_mode = None if index is None else self._take(index, node.next[index])
            if next_mode is None:
                next_mode = self._end()
            if next_mode is None:
                return None
            mode = next_mode

    def _here(self) -> tuple[str, str]:
        if self.flow is None or self.node is None:
            raise AssertionError("the runner is not inside a flow")
        return self.flow, self.node

    def _step(self) -> Node:
        flow, node = self._here()
        self._steps += 1
        self._trail.append(f"{flow}/{node}")
        if self._steps > self.max_steps:
            raise TransitionLoopError(
                f"the flow went through {self.max_steps} nodes without waiting for the user: "
                f"is there a loop of transitions? The last ones: {' -> '.join(self._trail)}",
                self.bot.bot_id,
                flow,
                node,
            )
        return self._flow(flow).nodes[node]

    def _choose(self, node: Node, start: int) -> int | None:
        for index in range(start, len(node.next)):
            condition = node.next[index].condition
            if condition is None or self._holds(condition, f"next[{index}]"):
                return index
        return None

    def _take(self, index: int, transition: Transition) -> Mode | None:
        """Follow a transition; return how to run the node it leads to, None for END."""
        if transition.flow is not None:
            self._call(transition.flow, index)
            return "enter"
        if transition.node == RETURN and self._stack:
            point = self._stack.pop()
            self.flow, self.node, self._resume = point.flow, point.node, point.resume
            return "resume"
        if transition.node in (END, RETURN, None):
            return None
        self.node = transition.node
        return "enter"

    def _call(self, flow: str, index: int) -> None:
        """Enter ``flow`` at its start node, remembering where to return; a flow already
        on the way (the current one, or one that called it) starts again instead, the
        flows called since left as if they had returned: a loop between flows does not
        nest, and the stack holds each flow once at most."""
        callers = [point.flow for point in self._stack]
        if flow in callers:
            del self._stack[callers.index(flow) :]
        elif flow != self.flow:
            self._stack.append(_ReturnPoint(*self._here(), index + 1))
        self.flow, self.node = flow, self._flow(flow).start_node

    def _end(self) -> Mode | None:
        """End the dialog; start ``conversation_end.flow.json`` once if there is one."""
        self.state.end_flow()
        self._stack.clear()
        if not self._ended and END_FLOW in self.bot.flows and self.flow != END_FLOW:
            self._ended = True
            self.flow, self.node = END_FLOW, self._flow(END_FLOW).start_node
            return "enter"
        return None

    def _wait(self) -> None:
        self.state.temp[POSITION_KEY] = {
            "flow": self.flow,
            "node": self.node,
            "stack": [{"flow": p.flow, "node": p.node, "resume": p.resume} for p in self._stack],
        }

    # -- instructions and conditions ---------------------------------------------------
    async def _do(self, instructions: Sequence[Instruction], key: str) -> None:
        for index, instruction in enumerate(instructions):
            if isinstance(instruction, Say):
                text = instruction.template.render(self._context)
                if text.strip():
                    self.replies.append(text)
            else:
                await self._action(instruction, f"{key}[{index}]")

    async def _action(self, call: ActionCall, where: str) -> None:
        spec = self.bot.actions[call.name]
        args = render_args(call.args, self._context)
        try:
            await invoke(spec, self.event, self.state, args, self.kvs)
        except DialogError as exc:
            raise exc.located(self.bot.bot_id, self.flow, self.node) from exc
        except (Exception, SystemExit) as exc:  # sys.exit() in an action fails the turn only
            raise ActionError(
                f"{where}: action {call.name!r} failed: {type(exc).__name__}: {exc}",
                self.bot.bot_id,
                self.flow,
                self.node,
            ) from exc

    def _holds(self, condition: Condition, where: str) -> bool:
        try:
            return condition.holds(self._context)
        except ExpressionError as exc:
            raise DialogError(f"{where}: {exc}", self.bot.bot_id, self.flow, self.node) from exc

    # -- positions ---------------------------------------------------------------------
    def _flow(self, name: str) -> Flow:
        return self.bot.flows[name]

    def _exists(self, flow: object, node: object) -> bool:
        found = self.bot.flows.get(flow) if isinstance(flow, str) else None
        return found is not None and isinstance(node, str) and node in found.nodes

    def _restore(self, saved: object) -> bool:
        if not isinstance(saved, Mapping) or not self._exists(saved.get("flow"), saved.get("node")):
            return False
        stack: list[_ReturnPoint] = []
        for item in saved.get("stack") or []:
            if not isinstance(item, Mapping) or not self._exists(
                item.get("flow"), item.get("node")
            ):
                return False
            resume = item.get("resume")
            if not isinstance(resume, int) or isinstance(resume, bool):
                return False
            stack.append(_ReturnPoint(item["flow"], item["node"], resume))
        self.flow, self.node, self._stack = saved["flow"], saved["node"], stack
        return True

    def _timeout_target(self) -> tuple[str, str] | None:
        """The node's ``timeout``, a node named ``timeout``, ``timeoutNode``, timeout.flow.json."""
        name, node = self._here()
        flow = self._flow(name)
        for candidate in (
            flow.nodes[node].timeout,
            TIMEOUT_NODE if TIMEOUT_NODE in flow.nodes else None,
            flow.timeout_node,
        ):
            if candidate is not None:
                return name, candidate
        if TIMEOUT_FLOW in self.bot.flows:
            self._stack.clear()
            return TIMEOUT_FLOW, self._flow(TIMEOUT_FLOW).start_node
        return None
