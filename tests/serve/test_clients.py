"""Real clients against `agentune serve` on 127.0.0.1: the `openai` Python client, AutoGen's
ConversableAgent in the reference write-up's style (pyautogen 0.2.35) and lagent 0.2.4's ReAct agent (in a subprocess with its own packages).

The model is the scripted agent (tests/helpers/scripted_agent.py): a real tiny model taught to call the
calculator and then answer, so each client's whole loop runs: it receives a call, executes the
function, sends the result back, and the server accepts the follow-up. Test-only dependencies
(requirements-test.txt)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
from helpers import REPO
from helpers.gguf import ENGINES
from helpers.scripted_agent import CALL_ARGS, calculator_spec

from agentune.protocol import react
from agentune.serve import build_parser, load
from agentune.serve.app import serving

TOOLS = [{"type": "function", "function": calculator_spec()}]


@pytest.fixture(scope="module", params=ENGINES)
def agent_url(request):
    """The scripted agent behind `agentune serve`, on the built-in engine and on llama.cpp (its GGUF)."""
    if request.param == "local":
        model, extra = request.getfixturevalue("scripted_agent"), []
    else:
        model, extra = request.getfixturevalue("scripted_agent_gguf"), ["--engine", "llama.cpp"]
    engine, opts = load(
        build_parser().parse_args(["--model", str(model), "--name", "internlm2-agentune", *extra])
    )
    with serving(engine, opts) as url:
        yield url
    engine.close()


def test_openai_client_tools_tool_choice_and_streaming(agent_url):
    from openai import OpenAI

    client = OpenAI(base_url=agent_url, api_key="unused")
    ask = [{"role": "user", "content": "What is 3 + 4?"}]
    first = client.chat.completions.create(
        model="internlm2-agentune", messages=ask, tools=TOOLS, temperature=0
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == CALL_ARGS

    named = client.chat.completions.create(model="internlm2-agentune", messages=ask, tools=TOOLS,
                                           tool_choice={"type": "function", "function": {"name": "calculator"}})  # fmt: skip
    assert named.choices[0].message.tool_calls[0].function.name == "calculator"

    history = [*ask, choice.message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "7"}]  # fmt: skip
    final = client.chat.completions.create(model="internlm2-agentune", messages=history, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "7"  # the answer alone, as a person should read it
    assert final.choices[0].message.reasoning  # the Thought: an extra field the client keeps
    assert choice.message.content is None and choice.message.reasoning
    assert final.usage.completion_tokens > 0

    stream = client.chat.completions.create(
        model="internlm2-agentune", messages=ask, tools=TOOLS, stream=True
    )
    name, args, finish, thought = "", "", None, ""
    for chunk in stream:
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            name += delta_call.function.name or ""
            args += delta_call.function.arguments or ""
        thought += getattr(chunk.choices[0].delta, "reasoning", None) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert (name, json.loads(args), finish) == ("calculator", CALL_ARGS, "tool_calls")
    assert thought == choice.message.reasoning

    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="internlm2-agentune", messages=history, stream=True)
        if c.choices
    )
    assert text  # plain streaming (no tools offered): the model's text, token by token


def test_autogen_agent_calls_the_tool_and_gets_the_answer(agent_url):
    """The write-up's AutoGen pattern: register_for_llm / register_for_execution / initiate_chat."""
    from autogen import ConversableAgent

    llm_config = {"config_list": [{"model": "internlm2-agentune", "base_url": agent_url, "api_key": "unused",
                                   "price": [0, 0]}], "cache_seed": None, "temperature": 0}  # fmt: skip
    assistant = ConversableAgent(
        "assistant", system_message="You are a helpful AI assistant.", llm_config=llm_config
    )
    user_proxy = ConversableAgent("user_proxy", llm_config=False, human_input_mode="NEVER",
                                  is_termination_msg=lambda m: bool(m.get("content")))  # fmt: skip
    executed = []

    @user_proxy.register_for_execution()
    @assistant.register_for_llm(name="calculator", description=calculator_spec()["description"])
    def calculator(
        a: Annotated[float, "first operand"],
        b: Annotated[float, "second operand"],
        operator: Annotated[Literal["+", "-", "*", "/"], "the operator"],
    ) -> float:
        executed.append((a, b, operator))
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[operator]

    result = user_proxy.initiate_chat(assistant, message="What is 3 + 4?", max_turns=2)
    assert executed == [(3, 4, "+")]
    roles = [m.get("role") for m in result.chat_history]
    assert "tool" in roles, result.chat_history  # the function's result went back to the server
    answer = result.chat_history[-1]["content"]
    assert answer == "7", result.chat_history  # the answer alone: no protocol words shown to the person


LAGENT_CLIENT = Path(sys.prefix) / "lagent-client"  # make test installs requirements-test-lagent.txt there

LAGENT_SCRIPT = """
import json, sys
from lagent.actions import ActionExecutor, BaseAction, tool_api
from lagent.agents import ReAct
from lagent.llms import GPTAPI

url, description = sys.argv[1], json.loads(sys.argv[2])
calls = []


class Calculator(BaseAction):
    \"\"\"Compute a operator b for one binary operator.\"\"\"

    @tool_api
    def run(self, a: float, b: float, operator: str) -> float:
        \"\"\"Compute a operator b.

        Args:
            a (float): first operand
            b (float): second operand
            operator (str): the operator
        \"\"\"
        calls.append([a, b, operator])
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[operator]


llm = GPTAPI(model_type="internlm2-agentune", key="unused", openai_api_base=url + "/chat/completions",
             temperature=0, max_new_tokens=160, query_per_second=50)
agent = ReAct(llm=llm, action_executor=ActionExecutor(actions=[Calculator(description=description)]))
ret = agent.chat("What is 3 + 4?")
print(json.dumps({"calls": calls, "actions": [[a.type, str(a.result)] for a in ret.actions],
                  "response": ret.response, "steps": ret.inner_steps}))
"""


def test_lagent_react_agent_through_the_openai_compatible_api(agent_url):
    """lagent renders its own ReAct prompt (given the calculator's description), parses the text itself
    and sends the result back as a system turn `Response:...`; the server passes its messages through.
    lagent runs in a subprocess with its own packages (it needs griffe<1; the runtime has griffe 2)."""
    if not (LAGENT_CLIENT / "lagent").is_dir():
        pytest.fail(f"{LAGENT_CLIENT} has no lagent: `make test` installs requirements-test-lagent.txt there")
    described = {
        k: v for k, v in react.lagent_tool(calculator_spec()).items() if k != "parameter_description"
    }
    env = {**os.environ, "PYTHONPATH": str(LAGENT_CLIENT)}
    proc = subprocess.run([sys.executable, "-c", LAGENT_SCRIPT, agent_url, json.dumps(described)],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["calls"] == [[3, 4, "+"]]
    assert out["actions"][0][0] == "calculator" and out["actions"][0][1]
    assert out["response"].strip() == "7", json.dumps(out["steps"], indent=1)


def test_the_writeup_example_script_runs_end_to_end(agent_url):
    """examples/writeup_agents.py against a running server: both clients' loops run to their verdicts
    (the scripted agent knows only 3 + 4, so neither answer is reached)."""
    script = REPO / "examples" / "writeup_agents.py"
    proc = subprocess.run([sys.executable, str(script), "--url", agent_url, "--name", "internlm2-agentune",
                           "--max-turns", "2"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "call: calculator(" in proc.stdout or "calculator" in proc.stdout
    assert "calculator (221492.8): not reached" in proc.stdout
    assert "flights (number, then price): not reached" in proc.stdout
