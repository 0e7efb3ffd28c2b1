"""Loading flows: JSON5 against the shipped schema, and every reference checked at load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from botmemory import ConfigError
from botmemory.config.problems import MAX_FILE_DEPTH
from botmemory.dialog import BotLoadError, flow_schema, load_bot, load_bots
from tests.dialog.conftest import flow, node, set_var, write_bot

GOOD = flow(node("start", say="hi", receive=[], next=[{"node": "END"}]))


def problems_of(tmp_path: Path, flows: dict[str, Any], **kwargs: Any) -> list[str]:
    write_bot(tmp_path, flows, **kwargs)
    with pytest.raises(BotLoadError) as caught:
        load_bots(tmp_path)
    return caught.value.problems


def test_a_valid_bot_loads_with_json5_comments_and_trailing_commas(tmp_path: Path) -> None:
    text = """
    // the entry flow
    {
      startNode: 'start',
      nodes: [
        { name: 'start', onEnter: [{ say: 'hi' }], next: [{ node: 'END' },], },
      ],
    }
    """
    write_bot(tmp_path, {"main.flow.json": text, "other.flow.json": GOOD})
    bots = load_bots(tmp_path)
    assert set(bots["b"].flows) == {"main.flow.json", "other.flow.json"}


def test_folders_without_flows_are_not_dialog_bots(tmp_path: Path) -> None:
    (tmp_path / "bots" / "memoryonly").mkdir(parents=True)
    write_bot(tmp_path, {"main.flow.json": GOOD})
    assert set(load_bots(tmp_path)) == {"b"}


def test_load_errors_are_config_errors(tmp_path: Path) -> None:
    assert issubclass(BotLoadError, ConfigError)


def test_an_unknown_node_names_the_file_and_the_node(tmp_path: Path) -> None:
    bad = flow(node("start", next=[{"node": "END"}, {"node": "nowhere"}]))
    [problem] = problems_of(tmp_path, {"main.flow.json": bad})
    # the line of the node's name: "{", '"startNode": ...', '"nodes": [', "{", '"name": ...'
    assert problem.startswith("bots/b/flows/main.flow.json, line 5, node 'start': next[1]:")
    assert "unknown node 'nowhere'" in problem
    assert "'start'" in problem


def test_an_unknown_flow_an_unknown_start_node_and_timeout_nodes(tmp_path: Path) -> None:
    bad = {
        "startNode": "begin",
        "timeoutNode": "gone",
        "nodes": [node("start", next=[{"flow": "missing.flow.json"}], timeout="lost")],
    }
    found = problems_of(tmp_path, {"main.flow.json": bad})
    assert any("node 'start': next[0]: unknown flow 'missing.flow.json'" in p for p in found)
    assert any("main.flow.json, line 2: startNode: unknown node 'begin'" in p for p in found)
    assert any("main.flow.json, line 3: timeoutNode: unknown node 'gone'" in p for p in found)
    assert any("node 'start': timeout: unknown node 'lost'" in p for p in found)


def test_an_unknown_action_suggests_a_close_name(tmp_path: Path) -> None:
    bad = flow(node("start", enter=[{"action": "base.setVariabel", "args": {}}]))
    [problem] = problems_of(tmp_path, {"main.flow.json": bad})
    assert "node 'start': onEnter[0]: unknown action 'base.setVariabel'" in problem
    assert "did you mean 'base.setVariable'?" in problem


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("__import__('os').system('x')", "private name"),
        ("temp.__class__", "private name"),
        ("open('/etc/passwd')", "open() is not allowed"),
        ("event.text.upper()", "unexpected '('"),
        ("temp.count >", "ends too early"),
        ("tmp.count > 1", "unknown name 'tmp'"),
        ("1 if x else 2", "unexpected 'if'"),
        ("temp.a = 1", "unexpected character '='"),
    ],
)
def test_an_unsafe_or_malformed_condition_fails_at_load(
    tmp_path: Path, condition: str, reason: str
) -> None:
    bad = flow(node("check", next=[{"condition": condition, "node": "END"}]))
    [problem] = problems_of(tmp_path, {"main.flow.json": bad})
    assert "bots/b/flows/main.flow.json, line 5, node 'check': next[0]: condition" in problem
    assert reason in problem


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("Hi {{user.name", "never closed"),
        ("{{#temp.items}}x", "never closed"),
        ("{{nobody.name}}", "unknown name 'nobody'"),
        ("{{user.__class__}}", "private"),
        ("{{> partial}}", "not supported"),
    ],
)
def test_a_bad_template_fails_at_load(tmp_path: Path, template: str, reason: str) -> None:
    bad = flow(node("talk", say=template, enter=[set_var("user", "x", template)]))
    found = problems_of(tmp_path, {"main.flow.json": bad})
    assert len(found) == 2
    assert all(
        p.startswith("bots/b/flows/main.flow.json, line 5, node 'talk': onEnter[") for p in found
    )
    assert any("args.value" in p for p in found)
    assert all(reason in p for p in found)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"type": "galaxy", "name": "x", "value": 1}, "type 'galaxy' is not a memory"),
        ({"type": "user", "value": 1}, "argument 'name' is missing"),
        ({"type": "user", "name": "x", "value": 1, "extra": 2}, "unknown argument 'extra'"),
        ({"type": "temp", "name": "__dialog", "value": 1}, "reserved"),
    ],
)
def test_builtin_action_arguments_are_checked_at_load(
    tmp_path: Path, args: dict[str, Any], reason: str
) -> None:
    bad = flow(node("n", enter=[{"action": "base.setVariable", "args": args}]))
    [problem] = problems_of(tmp_path, {"main.flow.json": bad})
    assert "node 'n': onEnter[0]: base.setVariable:" in problem
    assert reason in problem


def test_storage_expiry_and_output_are_checked_at_load(tmp_path: Path) -> None:
    bad = flow(
        node(
            "n",
            enter=[
                {
                    "action": "builtin.setUserVariable",
                    "args": {"name": "a", "value": 1, "expiry": "soon"},
                },
                {
                    "action": "builtin.getUserVariable",
                    "args": {"name": "a", "output": "{{temp.x}}"},
                },
            ],
        )
    )
    found = problems_of(tmp_path, {"main.flow.json": bad})
    assert any("onEnter[0]" in p and "'soon' is not a duration" in p for p in found)
    assert any("onEnter[1]" in p and "cannot be a template" in p for p in found)


def test_schema_violations_name_the_node(tmp_path: Path) -> None:
    bad = {
        "startNode": "a",
        "nodes": [
            {"name": "a", "onEnter": [{"sya": "typo"}]},
            {"name": "b", "next": [{"node": "a", "flow": "x.flow.json"}]},
            {"name": "c", "colour": "blue"},
        ],
    }
    found = problems_of(tmp_path, {"main.flow.json": bad})
    assert any(
        p.startswith("bots/b/flows/main.flow.json, line 5, node 'a': onEnter[0]") for p in found
    )
    assert any(
        p.startswith(
            "bots/b/flows/main.flow.json, line 13, node 'b': next[0]: give 'node' or 'flow', "
            "not both"
        )
        for p in found
    )
    assert any("node 'c'" in p and "'colour'" in p for p in found)


def test_a_missing_start_node_key_is_a_schema_problem(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, {"main.flow.json": {"nodes": [node("a")]}})
    assert "main.flow.json: 'startNode' is a required property" in problem


def test_a_json5_syntax_error_names_the_line(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, {"main.flow.json": "{\n  startNode: 'a',\n  nodes: [\n}"})
    assert problem.startswith("bots/b/flows/main.flow.json, line 4")
    assert "not valid JSON5" in problem


def test_main_flow_is_required(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, {"other.flow.json": GOOD})
    assert "there is no main.flow.json" in problem


def test_reserved_and_duplicate_node_names(tmp_path: Path) -> None:
    bad = flow(node("a"), node("a"), node("END"))
    found = problems_of(tmp_path, {"main.flow.json": bad})
    assert any("node 'a': another node has the same name" in p for p in found)
    assert any("node 'END': 'END' is reserved" in p for p in found)


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    write_bot(tmp_path, {"main.flow.json": flow(node("a", next=[{"node": "x"}]))}, bot_id="one")
    write_bot(tmp_path, {"main.flow.json": flow(node("a", next=[{"node": "y"}]))}, bot_id="two")
    with pytest.raises(BotLoadError) as caught:
        load_bots(tmp_path)
    assert len(caught.value.problems) == 2
    assert "bots/one/flows/main.flow.json" in str(caught.value)
    assert "bots/two/flows/main.flow.json" in str(caught.value)


def test_an_import_error_in_an_action_names_the_file_and_line(tmp_path: Path) -> None:
    code = "from botmemory.dialog import action\n\nx = 1\nraise ValueError('broken setup')\n"
    [problem] = problems_of(tmp_path, {"main.flow.json": GOOD}, actions={"shop.py": code})
    assert problem.startswith("bots/b/actions/shop.py, line 4: cannot be imported")
    assert "ValueError: broken setup" in problem


def test_a_syntax_error_in_a_hook_names_the_file_and_line(tmp_path: Path) -> None:
    hooks = {"before_incoming": {"log.py": "def hook(event, state, kvs)\n    pass\n"}}
    [problem] = problems_of(tmp_path, {"main.flow.json": GOOD}, hooks=hooks)
    assert problem.startswith("bots/b/hooks/before_incoming/log.py, line 1: cannot be imported")


def test_hook_files_need_a_hook_function_and_a_known_folder(tmp_path: Path) -> None:
    hooks = {"before_incoming": {"a.py": "def other(): pass\n"}, "befor_incoming": {"b.py": ""}}
    found = problems_of(tmp_path, {"main.flow.json": GOOD}, hooks=hooks)
    assert any(
        "before_incoming/a.py: defines no function hook(event, state, kvs)" in p for p in found
    )
    assert any("hooks/befor_incoming: unknown hook" in p for p in found)


def test_a_hook_file_directly_in_hooks_is_a_problem_naming_it(tmp_path: Path) -> None:
    hooks = {"before_incoming": {"ok.py": "def hook(event, state, kvs): pass\n"}}
    bot = write_bot(tmp_path, {"main.flow.json": GOOD}, hooks=hooks) / "bots" / "b"
    code = "def hook(event, state, kvs):\n    return 'never sent'\n"
    (bot / "hooks" / "before_outgoing.py").write_text(code)
    (bot / "hooks" / "log.py").write_text(code)
    with pytest.raises(BotLoadError) as caught:
        load_bots(tmp_path)
    assert caught.value.problems == [
        "bots/b/hooks/before_outgoing.py: a file directly in hooks/ never runs: hooks go in "
        "hooks/<hook name>/<file>.py; move it to hooks/before_outgoing/before_outgoing.py",
        "bots/b/hooks/log.py: a file directly in hooks/ never runs: hooks go in "
        "hooks/<hook name>/<file>.py; the hooks are before_incoming, after_incoming, "
        "before_outgoing, before_session_timeout, on_session_end",
    ]


def test_hooks_in_their_folders_and_other_files_in_hooks_load(tmp_path: Path) -> None:
    hooks = {"before_outgoing": {"before_outgoing.py": "def hook(event, state, kvs): pass\n"}}
    bot = write_bot(tmp_path, {"main.flow.json": GOOD}, hooks=hooks) / "bots" / "b"
    (bot / "hooks" / "README.md").write_text("hooks of bot b\n")
    (bot / "hooks" / ".gitkeep").write_text("")
    (bot / "hooks" / "__pycache__").mkdir()
    (bot / "hooks" / "__init__.py").write_text("")  # a package marker some tools add
    loaded = load_bots(tmp_path)["b"]
    [spec] = loaded.hooks["before_outgoing"]
    assert spec.source == "bots/b/hooks/before_outgoing/before_outgoing.py"


def test_actions_may_not_take_builtin_or_duplicate_names(tmp_path: Path) -> None:
    one = "from botmemory.dialog import action\n@action('base.mine')\ndef a(*args): pass\n"
    two = "from botmemory.dialog import action\n@action('twice')\ndef a(*args): pass\n"
    found = problems_of(
        tmp_path, {"main.flow.json": GOOD}, actions={"a.py": one, "b.py": two, "c.py": two}
    )
    assert any("a.py: action 'base.mine'" in p and "reserved" in p for p in found)
    assert any("c.py: action 'twice' is also defined in bots/b/actions/b.py" in p for p in found)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("@action('shop.buy')\ndef buy(event, state): pass\n", "cannot be called as buy("),
        ("@action('base.buy')\ndef buy(event, state, args, kvs): pass\n", "reserved"),
    ],
)
def test_a_refused_action_called_by_a_flow_is_one_problem_not_also_unknown(
    tmp_path: Path, code: str, reason: str
) -> None:
    name = "shop.buy" if "shop.buy" in code else "base.buy"
    calling = flow(node("n", enter=[{"action": name, "args": {}}], say="ok"))
    found = problems_of(
        tmp_path,
        {"main.flow.json": calling},
        actions={"shop.py": f"from botmemory.dialog import action\n{code}"},
    )
    assert len(found) == 1, found
    assert found[0].startswith(f"bots/b/actions/shop.py: action {name!r}")
    assert reason in found[0]


@pytest.mark.parametrize("levels", [MAX_FILE_DEPTH - 6, MAX_FILE_DEPTH - 5, 10_000])
def test_a_flow_file_nests_at_most_max_file_depth_levels(tmp_path: Path, levels: int) -> None:
    # the value sits 6 levels down: {nodes: [{onEnter: [{args: {value: ...}}]}]}
    value = "[" * levels + "1" + "]" * levels
    text = json.dumps(flow(node("n", enter=[set_var("user", "x", "VALUE")], say="ok")))
    write_bot(tmp_path, {"main.flow.json": text.replace('"VALUE"', value)})
    if levels + 6 <= MAX_FILE_DEPTH:
        assert load_bots(tmp_path)["b"].flows
        return
    [problem] = problems_of(tmp_path, {})
    assert problem == (
        f"bots/b/flows/main.flow.json: brackets and braces are nested deeper than "
        f"{MAX_FILE_DEPTH} levels"
    )


def test_a_flow_value_no_json_value_holds_is_refused_at_load(tmp_path: Path) -> None:
    # it would fail each turn that runs it: "user.x: nan is not a JSON number"
    text = json.dumps(flow(node("n", enter=[set_var("user", "x", "VALUE")], say="ok")))
    write_bot(tmp_path, {"main.flow.json": text.replace('"VALUE"', "NaN")})
    [problem] = problems_of(tmp_path, {})
    assert problem == (
        "bots/b/flows/main.flow.json, line 1: nodes[0].onEnter[0].args.value: NaN is not a "
        "JSON number: no value botmemory stores can hold it"
    )


def test_a_node_problem_names_the_line_of_that_nodes_name(tmp_path: Path) -> None:
    # not an earlier "name" of the same text: an action's argument, a comment
    text = """{
  startNode: "ask", // the node 'email' comes after
  nodes: [
    { name: "ask", onEnter: [{ action: "base.setVariable",
        args: { type: "user", name: "email", value: 1 } }] },
    // name: "email"
    {
      name: "email",
      next: [{ node: "nowhere" }],
    },
    { name: "email" },
  ],
}"""
    write_bot(tmp_path, {"main.flow.json": text})
    found = problems_of(tmp_path, {})
    assert sorted(found) == [
        "bots/b/flows/main.flow.json, line 11, node 'email': another node has the same name",
        "bots/b/flows/main.flow.json, line 8, node 'email': next[0]: unknown node 'nowhere': "
        "the nodes of this flow are 'ask', 'email', 'email' (and END, #)",
    ]


def test_a_top_level_schema_problem_names_its_line(tmp_path: Path) -> None:
    text = '{\n  "nodes": [{"name": "a"}],\n  "startNode": 7\n}'
    write_bot(tmp_path, {"main.flow.json": text})
    [problem] = problems_of(tmp_path, {})
    assert problem == "bots/b/flows/main.flow.json, line 3: startNode: 7 is not of type 'string'"


def test_a_single_bot_folder_loads_on_its_own(tmp_path: Path) -> None:
    write_bot(tmp_path, {"main.flow.json": GOOD}, bot_id="solo")
    bot = load_bot(tmp_path / "bots" / "solo")
    assert bot.bot_id == "solo"
    assert "base.setVariable" in bot.actions


def test_the_schema_ships_with_the_package_and_the_example_flows_follow_it() -> None:
    import json5

    validator = Draft202012Validator(flow_schema())
    Draft202012Validator.check_schema(flow_schema())
    examples = Path(__file__).parents[2] / "examples" / "data" / "bots" / "welcome" / "flows"
    paths = sorted(examples.glob("*.flow.json"))
    assert paths
    for path in paths:
        assert list(validator.iter_errors(json5.loads(path.read_text()))) == [], path
    assert json.loads(json.dumps(flow_schema()))["title"] == "botmemory flow"
