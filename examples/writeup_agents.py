"""The reference write-up's two agent scenarios, driven through `agentune serve` by the clients it used.

    pip install openai pyautogen==0.2.35      # the clients (not agentune's own dependencies)
    python examples/writeup_agents.py --model models/merged          # starts the server in-process
    python examples/writeup_agents.py --url http://127.0.0.1:8000/v1 --name agentune   # or a running one

1. AutoGen (`ConversableAgent`, `register_for_llm` / `register_for_execution` / `initiate_chat`): the
   calculator question `(44232 + 13312 / (232 - 32)) * 5`, which needs four chained calls.
2. The `openai` client: the flight walk-through, find the flight number for a route and date, then the
   price of a ticket on it (the date and the flight number must be carried into the second call).

Prints every call, result and reply, and for each scenario whether the expected answer was reached.
Greedy decoding; the tools are the project's sample tools (deterministic fake flights and prices).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Annotated, Literal

from agentune.catalogue import REGISTRY

CALC_QUESTION = "Calculate (44232 + 13312 / (232 - 32)) * 5."
CALC_ANSWER = "221492.8"  # the write-up quotes 221490, a rounded figure
FLIGHT = ("Beijing", "Shanghai", "2024-07-01")


def calculator_with_autogen(url: str, name: str, max_turns: int) -> bool:
    from autogen import ConversableAgent

    spec, calculate = REGISTRY["calculator"]
    llm_config = {"config_list": [{"model": name, "base_url": url, "api_key": "unused", "price": [0, 0]}],
                  "cache_seed": None, "temperature": 0}  # fmt: skip
    assistant = ConversableAgent(
        "assistant",
        system_message="You are a helpful AI assistant. Use the calculator for arithmetic.",
        llm_config=llm_config,
    )
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER",
                            is_termination_msg=lambda m: "Final Answer" in (m.get("content") or ""))  # fmt: skip

    @user.register_for_execution()
    @assistant.register_for_llm(name="calculator", description=spec["description"])
    def calculator(
        a: Annotated[float, "first operand"],
        b: Annotated[float, "second operand"],
        operator: Annotated[Literal["+", "-", "*", "/"], "the operator"],
    ) -> str:
        return str(calculate(a, b, operator))

    result = user.initiate_chat(assistant, message=CALC_QUESTION, max_turns=max_turns)
    last = result.chat_history[-1].get("content") or ""
    return CALC_ANSWER in last


def flights_with_openai(url: str, name: str, max_steps: int) -> bool:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="unused")
    names = ("get_flight_number", "get_ticket_price")
    tools = [{"type": "function", "function": REGISTRY[n][0]} for n in names]
    dep, dst, day = FLIGHT
    number = REGISTRY["get_flight_number"][1](dep, dst, day)
    price = REGISTRY["get_ticket_price"][1](number, day)
    messages: list[dict] = []
    reached = []
    for question, expected in ((f"Please find the flight number from {dep} to {dst} on {day}.", number),
                               ("How much is a ticket for that flight?", str(price))):  # fmt: skip
        print(f"\nuser: {question}")
        messages.append({"role": "user", "content": question})
        for _ in range(max_steps):
            reply = client.chat.completions.create(model=name, messages=messages, tools=tools, temperature=0)
            msg = reply.choices[0].message
            messages.append(msg.model_dump(exclude_none=True))
            if not msg.tool_calls:
                print(f"assistant: {msg.content}")
                break
            for call in msg.tool_calls:
                args = json.loads(call.function.arguments)
                try:
                    result = REGISTRY[call.function.name][1](**args)
                except (
                    Exception
                ) as exc:  # a wrong call is the model's answer too: show it, send the error back
                    result = f"error: {type(exc).__name__}: {exc}"
                print(f"call: {call.function.name}({args}) -> {result}")
                messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})
        reached.append(expected in (messages[-1].get("content") or ""))
    return all(reached)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--model", default="models/merged", help="serve this model in-process (ignored with --url)"
    )
    p.add_argument("--url", default=None, help="use a running server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--name", default="agentune", help="the served model's name")
    p.add_argument("--max-turns", type=int, default=10)
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from agentune.serve import build_parser, load
            from agentune.serve.app import serving

            engine, opts = load(build_parser().parse_args(["--model", args.model, "--name", args.name]))
            stack.callback(engine.close)
            url = stack.enter_context(serving(engine, opts))
        print("== AutoGen: the calculator question ==")
        calc = calculator_with_autogen(url, args.name, args.max_turns)
        print("\n== openai client: the flight walk-through ==")
        flights = flights_with_openai(url, args.name, args.max_turns)
    print(f"\ncalculator ({CALC_ANSWER}): {'reached' if calc else 'not reached'}")
    print(f"flights (number, then price): {'reached' if flights else 'not reached'}")


if __name__ == "__main__":
    main()
