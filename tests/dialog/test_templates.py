"""Mustache templates: what the bot says and the string arguments of actions."""

from __future__ import annotations

from typing import Any

import pytest

from botmemory.dialog import TemplateError, compile_template
from botmemory.dialog.templates import MAX_DEPTH

CONTEXT: dict[str, Any] = {
    "event": {"text": "Tom & Jerry <3"},
    "user": {
        "name": "Ada",
        "score": 2.0,
        "vip": True,
        "tags": ["a", "b"],
        "address": {"city": "Paris"},
    },
    "temp": {"items": [{"name": "tea", "n": 2}, {"name": "cake", "n": 1}], "empty": []},
    "session": {},
    "bot": {},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{user.name}}!", "Hi Ada!"),
        ("{{ user.name }}", "Ada"),
        ("{{event.text}}", "Tom & Jerry <3"),  # plain text: nothing is HTML-escaped
        ("{{{event.text}}} {{&event.text}}", "Tom & Jerry <3 Tom & Jerry <3"),
        ("{{user.score}} {{user.vip}} {{user.none}}.", "2 true ."),
        ("{{user.tags}} {{user.tags.1}} {{user.address}}", '["a", "b"] b {"city": "Paris"}'),
        ("{{#temp.items}}{{n}}x {{name}}, {{/temp.items}}", "2x tea, 1x cake, "),
        ("{{#user.tags}}<{{.}}>{{/user.tags}}", "<a><b>"),
        ("{{#user.vip}}VIP {{user.name}}{{/user.vip}}", "VIP Ada"),
        ("{{^temp.empty}}none{{/temp.empty}}", "none"),
        ("{{^user.name}}anonymous{{/user.name}}", ""),
        ("{{#user.address}}in {{city}}{{/user.address}}", "in Paris"),
        ("a{{! a comment }}b", "ab"),
        ("List:\n{{#user.tags}}\n- {{.}}\n{{/user.tags}}\nend", "List:\n- a\n- b\nend"),
        ("no tags at all", "no tags at all"),
    ],
)
def test_rendering(source: str, expected: str) -> None:
    assert compile_template(source).render(CONTEXT) == expected


def test_a_single_tag_gives_the_value_itself() -> None:
    assert compile_template("{{temp.items}}").value(CONTEXT) == CONTEXT["temp"]["items"]
    assert compile_template("{{user.score}}").value(CONTEXT) == 2.0
    assert compile_template("{{user.missing}}").value(CONTEXT) is None
    assert compile_template("score {{user.score}}").value(CONTEXT) == "score 2"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("Hi {{user.name", "never closed with '}}'"),
        ("{{#user.tags}}", "never closed"),
        ("{{/user.tags}}", "closes nothing"),
        ("{{#user.tags}}{{/user.name}}", "closes nothing here: {{#user.tags}} is open"),
        ("{{who}}", "unknown name 'who'"),
        ("{{user.__class__}}", "private"),
        ("{{_x}}", "private"),
        ("{{> partial}}", "not supported"),
        ("{{=<% %>=}}", "not supported"),
        ("{{}}", "empty tag"),
        ("{{.}}", "only meaningful inside a section"),
        ("{{user name}}", "is not a name"),
    ],
)
def test_bad_templates_are_rejected_with_the_place(source: str, reason: str) -> None:
    with pytest.raises(TemplateError, match="line 1, column") as caught:
        compile_template(source)
    assert reason in str(caught.value)


def test_sections_nest_32_deep_and_no_deeper() -> None:
    def nested(depth: int) -> str:
        return "{{#event.items}}" * depth + "{{.}}" + "{{/event.items}}" * depth

    assert compile_template(nested(MAX_DEPTH)).render({"event": {"items": [1]}}) == "1"
    with pytest.raises(TemplateError, match=f"nested more than {MAX_DEPTH} deep"):
        compile_template(nested(MAX_DEPTH + 1))
    with pytest.raises(
        TemplateError, match="column 513"
    ):  # the 33rd tag: 32 x 16 characters before it
        compile_template(nested(5000))  # refused, not a RecursionError
