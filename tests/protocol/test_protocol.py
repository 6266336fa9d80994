"""The tool protocol is lagent's: its template text byte for byte, its tool description shape, its parse.

lagent's own code comes from the pinned wheel (tests/helpers/lagent.py); the ArxivSearch prompt fixture was
rendered by lagent 0.2.4 itself (tests/fixtures/lagent_0.2.4_arxiv_system.json says how).
"""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES
from helpers.lagent import assert_parse_agrees, parser_module, react_module

from agentune.catalogue import REGISTRY
from agentune.protocol import react

FIXTURE = FIXTURES / "lagent_0.2.4_arxiv_system.json"


@pytest.mark.network
def test_template_and_parameter_description_are_lagents_own_text():
    assert react.CALL_PROTOCOL_EN == react_module().CALL_PROTOCOL_EN
    assert react.PARAMETER_DESCRIPTION == parser_module().JsonParser.PARAMETER_DESCRIPTION
    lagent = react_module().ReActProtocol()
    keywords = [lagent.thought, lagent.action, lagent.action_input, lagent.response, lagent.finish]
    assert [k["begin"] for k in keywords] == [
        react.THOUGHT, react.ACTION, react.ACTION_INPUT, react.RESPONSE, react.FINAL
    ]  # fmt: skip


@pytest.mark.network
def test_the_write_ups_arxiv_prompt_is_byte_identical_to_lagents_rendering():
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    arxiv = REGISTRY["ArxivSearch.get_arxiv_article_information"][0]
    system = react.render_system([arxiv])
    assert system == fixture["system"]
    assert "Action:the tool name, should be one of [['ArxivSearch']]" in system
    # and lagent's own template, filled with lagent's own tool list, gives the same bytes
    filled = react_module().CALL_PROTOCOL_EN.format(
        tool_description=str(fixture["actions_info"]),
        action_names=str(fixture["action_names"]),
        thought="Thought:",
        action="Action:",
        action_input="Action Input:",
        response="Response:",
        finish="Final Answer:",
    )
    assert filled == system


def _features(node, out: set[str], path: str = "") -> set[str]:
    if isinstance(node, dict):
        for key in ("enum", "default", "items", "properties", "required", "description"):
            if key in node and path:
                out.add(key if key != "properties" else "nested properties")
        if isinstance(node.get("type"), str):
            out.add(f"type {node['type']}")
        for k, v in node.items():
            _features(v, out, f"{path}.{k}")
    elif isinstance(node, list):
        for v in node:
            _features(v, out, path)
    return out


def test_every_bfcl_schema_feature_maps_to_lagents_shape_and_reads_back(bfcl_tools):
    seen = set()
    for tool in bfcl_tools:
        info = react.lagent_tool(tool)
        assert list(info)[:4] == ["name", "description", "parameters", "required"]
        assert all(list(p)[:3] == ["name", "type", "description"] for p in info["parameters"])
        back = react.tools_from_system(react.render_system([tool]))
        assert back is not None and len(back) == 1
        # nothing lost, nothing added (BFCL's top-level `optional` list repeats what `required` says)
        want = {k: v for k, v in tool["parameters"].items() if k in ("type", "properties", "required")}
        assert back[0]["parameters"] == {"required": [], **want}, tool["name"]
        seen |= _features(tool["parameters"], set())
    for feature in ("enum", "default", "items", "nested properties", "required", "type integer", "type number",
                    "type boolean", "type array", "type object", "type string"):  # fmt: skip
        assert feature in seen, f"BFCL's files no longer use {feature}: re-check the mapping's coverage"


def test_schema_features_render_as_lagent_parameters():
    tool = {
        "name": "book",
        "description": "Book a table.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "city", "enum": ["Paris", "Rome"]},
                "guests": {"type": "integer", "description": "people", "default": 2},
                "tags": {"type": "array", "description": "tags", "items": {"type": "string"}},
                "who": {"$ref": "#/$defs/person"},
            },
            "required": ["city"],
            "$defs": {
                "person": {
                    "type": "object",
                    "description": "the guest",
                    "properties": {"name": {"type": "string", "description": "name"}},
                    "required": ["name"],
                }
            },
        },
    }
    info = react.lagent_tool(tool)
    assert info["parameters"] == [
        {"name": "city", "type": "STRING", "description": "city", "enum": ["Paris", "Rome"]},
        {"name": "guests", "type": "NUMBER", "description": "people", "default": 2},
        {"name": "tags", "type": "Array", "description": "tags", "items": {"type": "STRING"}},
        {"name": "who", "type": "OBJECT", "description": "the guest",
         "properties": [{"name": "name", "type": "STRING", "description": "name"}], "required": ["name"]},
    ]  # fmt: skip
    assert info["required"] == ["city"] and info["parameter_description"] == react.PARAMETER_DESCRIPTION
    system = react.render_system([tool])
    assert "'enum': ['Paris', 'Rome']" in system and "should be one of [['book']]" in system


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"description": "no name"}, "no 'name'"),
        ({"name": "t", "parameters": {"type": "string"}}, "tool 't': 'parameters' must be an object schema"),
        ({"name": "t", "parameters": [1, 2]}, None),  # lagent's own list shape is taken as it is
        ({"name": "t", "parameters": "x"}, "tool 't': 'parameters' must be a JSON object schema"),
        (
            {"name": "t", "parameters": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}},
            "tool 't': $ref '#/$defs/missing' does not resolve",
        ),
    ],
)
def test_a_tool_that_cannot_be_mapped_is_a_clear_error_naming_it(spec, message):
    if message is None:
        assert react.lagent_tool(spec)["parameters"] == [1, 2]
        return
    with pytest.raises(react.ToolSpecError, match=message.replace("$", r"\$").replace("[", r"\[")):
        react.lagent_tool(spec)


CALL = react.format_call("Search it.", "ArxivSearch.get_arxiv_article_information", {"query": "InternLM2"})

EDGE_CASES = [
    CALL,
    CALL + "\n",
    CALL + "\nResponse: Published: 2024 ...",  # an invented tool result
    CALL + "\nFinal Answer: done",  # Final Answer anywhere wins
    react.format_final("I know it.", "Paris"),
    "Thought: x\nAction: calc\nAction Input: a=3, b=4",  # key=value, as the write-up's base model wrote
    "Thought: x\nAction: calc\nAction Input: {'a': 3}",  # a Python literal
    'Thought: x\nAction: calc\nAction Input: "{\\"a\\": 3}"',  # quoted JSON: lagent strips the quotes
    'Thought: x\nAction: calc\nAction Input: ```json\n{"a": 3}\n```',  # a json fence
    "Thought: x\nAction: calc\nAction Input: [1, 2]",  # JSON, but not an object
    "Thought: x\nAction: calc",  # no newline after the action name: lagent sees no action
    "Thought: x\nAction: calc\nno input",
    'Thought: first\nAction: a\nAction Input: {}\nThought: second\nAction: b\nAction Input: {"k": 1}',
    "Action:\nAction Input: {}",  # an empty action name
    "just prose, no protocol",
    "",
    'Thought:Think what you need to solve\nAction:calc\nAction Input:{"a": 1}',  # lagent's own spacing
]


@pytest.mark.network
@pytest.mark.parametrize("text", EDGE_CASES)
def test_parse_agrees_with_lagent_on_edge_cases(text):
    assert_parse_agrees(text)


def test_arguments_are_scored_strictly_as_lagent_reads_them():
    assert react.parse_reply(EDGE_CASES[5]).args is None  # key=value
    assert react.parse_reply(EDGE_CASES[6]).args is None  # Python literal
    assert react.parse_reply(EDGE_CASES[8]).args == {"a": 3}  # a json fence is fine in lagent
    invented = react.parse_reply(EDGE_CASES[2])
    assert invented.kind == "call" and invented.args is None and invented.hallucinated


def test_tool_results_in_each_style_read_back():
    user = react.ToolResultStyle()
    lagent_style = react.ToolResultStyle("system", "Response:")
    assert user.message({"x": 1}) == {"role": "user", "content": 'Response: {"x": 1}'}
    assert lagent_style.message("ok") == {"role": "system", "content": "Response:ok"}
    assert lagent_style.result_of({"role": "system", "content": "Response:ok\n"}) == "ok"
    assert user.result_of({"role": "system", "content": "Response: ok"}) is None
    assert react.ToolResultStyle.detect({"role": "system", "content": "Response:ok"}) == lagent_style
    assert react.ToolResultStyle.detect({"role": "user", "content": "42"}) == react.ToolResultStyle(
        "user", ""
    )


def test_a_bad_tool_in_the_in_training_chat_hook_is_a_config_error():
    from agentune.core.config import ConfigError, validate_section
    from agentune.train.config import Config

    with pytest.raises(
        ConfigError, match=r"train.evaluation.tools.*tool 't': 'parameters' must be an object"
    ):
        validate_section(
            Config, "train", {"evaluation": {"tools": [{"name": "t", "parameters": {"type": "string"}}]}}
        )
