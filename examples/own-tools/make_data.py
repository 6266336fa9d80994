"""Write a small home-assistant agent's tool-calling conversations in OpenAI's fine-tuning format.

    python examples/own-tools/make_data.py            # -> data/sources/own-tools.jsonl (+ -eval.jsonl)

Five tools that together use every JSON-schema type a call can carry (string, enum, integer, number,
boolean, array, nested object, optional parameters). Each record offers all five tools; each request in
it is one that one tool serves (the call, its result, an answer), two requests in one message (two calls
in a row), or a request none of the tools can serve (declined, no call). Training records are sessions
of one to four requests; evaluation records hold one. Results come from the real Python functions below.

The evaluation file (`own-tools-eval.jsonl`, held out whole by `raw_data.sources[].heldout_path`) is
written from request templates and declined topics that the training file never uses: it measures
whether the model learnt the tools, not the sentences.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOMS = ["living_room", "bedroom", "kitchen", "office", "bathroom"]
ROOM_WORDS = {"living_room": "living room", "bedroom": "bedroom", "kitchen": "kitchen", "office": "office",
              "bathroom": "bathroom"}  # fmt: skip
DOORS = ["front", "back", "garage"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY_WORDS = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
             "sat": "Saturday", "sun": "Sunday"}  # fmt: skip

TOOLS = [
    {"type": "function", "function": {
        "name": "set_thermostat", "description": "Set a room's target temperature.",
        "parameters": {"type": "object", "properties": {
            "room": {"type": "string", "enum": ROOMS, "description": "the room"},
            "temperature": {"type": "number", "description": "target temperature in degrees Celsius"},
            "mode": {"type": "string", "enum": ["heat", "cool", "auto"], "default": "auto",
                     "description": "heating mode"}},
            "required": ["room", "temperature"]}}},
    {"type": "function", "function": {
        "name": "control_lights", "description": "Switch the lights of one or more rooms on or off.",
        "parameters": {"type": "object", "properties": {
            "rooms": {"type": "array", "items": {"type": "string", "enum": ROOMS}, "description": "the rooms"},
            "on": {"type": "boolean", "description": "true to switch on, false to switch off"},
            "brightness": {"type": "integer", "minimum": 1, "maximum": 100,
                           "description": "brightness in percent, only when switching on"}},
            "required": ["rooms", "on"]}}},
    {"type": "function", "function": {
        "name": "lock_door", "description": "Lock or unlock a door.",
        "parameters": {"type": "object", "properties": {
            "door": {"type": "string", "enum": DOORS, "description": "which door"},
            "locked": {"type": "boolean", "description": "true to lock, false to unlock"}},
            "required": ["door", "locked"]}}},
    {"type": "function", "function": {
        "name": "get_energy_usage", "description": "Electricity used between two dates, in kWh.",
        "parameters": {"type": "object", "properties": {
            "start_date": {"type": "string", "description": "first day, YYYY-MM-DD"},
            "end_date": {"type": "string", "description": "last day, YYYY-MM-DD"},
            "by_device": {"type": "boolean", "default": False, "description": "split the total by device"}},
            "required": ["start_date", "end_date"]}}},
    {"type": "function", "function": {
        "name": "create_routine", "description": "Create a routine that runs actions on a schedule.",
        "parameters": {"type": "object", "properties": {
            "name": {"type": "string", "description": "the routine's name"},
            "schedule": {"type": "object", "description": "when it runs", "properties": {
                "time": {"type": "string", "description": "time of day, HH:MM (24 h)"},
                "days": {"type": "array", "items": {"type": "string", "enum": DAYS}, "description": "weekdays"}},
                "required": ["time", "days"]},
            "actions": {"type": "array", "items": {"type": "string"}, "description": "what to do, in order"}},
            "required": ["name", "schedule", "actions"]}}},
]  # fmt: skip


# ---- the tools ------------------------------------------------------------------------------------


def _h(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "big")


def set_thermostat(room: str, temperature: float, mode: str = "auto") -> str:
    return f"The {ROOM_WORDS[room]} is set to {temperature:g} C ({mode})."


def control_lights(rooms: list[str], on: bool, brightness: int | None = None) -> str:
    state = f"on at {brightness}%" if on and brightness else ("on" if on else "off")
    return f"Lights {state}: {', '.join(ROOM_WORDS[r] for r in rooms)}."


def lock_door(door: str, locked: bool) -> str:
    return f"The {door} door is {'locked' if locked else 'unlocked'}."


def get_energy_usage(start_date: str, end_date: str, by_device: bool = False) -> str:
    total = 40 + _h(start_date, end_date) % 400
    if not by_device:
        return f"{total} kWh"
    heating = total * 6 // 10
    return f"{total} kWh: heating {heating}, kitchen {total // 5}, other {total - heating - total // 5}"


def create_routine(name: str, schedule: dict[str, Any], actions: list[str]) -> str:
    days = ", ".join(schedule["days"])
    return f"Routine '{name}' created: {len(actions)} actions at {schedule['time']} on {days}."


FUNCTIONS: dict[str, Callable[..., str]] = {f.__name__: f for f in
                                            (set_thermostat, control_lights, lock_door, get_energy_usage, create_routine)}  # fmt: skip


# ---- requests -------------------------------------------------------------------------------------


@dataclass
class Request:
    text: str
    tool: str
    args: dict[str, Any]
    need: str  # what the user wants, for the Thought


def _date(r: random.Random) -> tuple[str, str]:
    m, d = r.randint(1, 12), r.randint(1, 28)
    iso = f"2026-{m:02d}-{d:02d}"
    month = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"][m - 1]  # fmt: skip
    return iso, (iso if r.random() < 0.5 else f"{month} {d}")


def _rooms_said(rooms: list[str]) -> str:
    words = [ROOM_WORDS[x] for x in rooms]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def thermostat(r: random.Random, phrasings: list[str]) -> Request:
    room = r.choice(ROOMS)
    temp = r.choice([r.randint(16, 26), round(r.uniform(16, 26) * 2) / 2])
    args: dict[str, Any] = {"room": room, "temperature": temp}
    mode_said = ""
    if r.random() < 0.35:
        args["mode"] = r.choice(["heat", "cool"])
        mode_said = f" in {args['mode']} mode"
    text = r.choice(phrasings).format(room=ROOM_WORDS[room], t=f"{temp:g}", mode=mode_said)
    return Request(text, "set_thermostat", args, "change a room's temperature")


def lights(r: random.Random, phrasings: tuple[list[str], list[str]]) -> Request:
    rooms = r.sample(ROOMS, r.choice([1, 1, 2, 3]))
    on = r.random() < 0.55
    args: dict[str, Any] = {"rooms": rooms, "on": on}
    level = ""
    if on and r.random() < 0.4:
        args["brightness"] = r.choice([10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90])
        level = f" at {args['brightness']}%"
    text = r.choice(phrasings[0 if on else 1]).format(rooms=_rooms_said(rooms), level=level)
    return Request(text, "control_lights", args, "switch lights")


def door(r: random.Random, phrasings: tuple[list[str], list[str]]) -> Request:
    d, locked = r.choice(DOORS), r.random() < 0.6
    text = r.choice(phrasings[0 if locked else 1]).format(door=d)
    return Request(text, "lock_door", {"door": d, "locked": locked}, "lock or unlock a door")


def energy(r: random.Random, phrasings: list[str]) -> Request:
    (a, a_said), (b, b_said) = sorted([_date(r), _date(r)])
    args: dict[str, Any] = {"start_date": a, "end_date": b}
    split = ""
    if r.random() < 0.35:
        args["by_device"] = True
        split = ", split by device"
    text = r.choice(phrasings).format(a=a_said, b=b_said, split=split)
    return Request(text, "get_energy_usage", args, "see the energy use")


ACTIONS = ["turn on the kitchen lights", "set the bedroom to 21", "lock the front door", "start the coffee machine",
           "open the blinds", "play the news", "turn off all lights", "lower the heating"]  # fmt: skip
ROUTINE_NAMES = ["Morning", "Good night", "Leaving home", "Weekend wake up", "Dinner time", "Back home"]


def routine(r: random.Random, phrasings: list[str]) -> Request:
    name = r.choice(ROUTINE_NAMES)
    time = f"{r.randint(5, 23):02d}:{r.choice(['00', '15', '30', '45'])}"
    days = sorted(r.sample(DAYS, r.choice([1, 2, 5, 7])), key=DAYS.index)
    acts = r.sample(ACTIONS, r.choice([1, 2, 3]))
    days_said = "every day" if len(days) == 7 else "on " + _rooms_said_days(days)
    text = r.choice(phrasings).format(name=name, time=time, days=days_said, acts=" and ".join(acts))
    return Request(text, "create_routine", {"name": name, "schedule": {"time": time, "days": days}, "actions": acts},
                   "create a routine")  # fmt: skip


def _rooms_said_days(days: list[str]) -> str:
    words = [DAY_WORDS[d] for d in days]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


#: request templates per tool: training and evaluation use different ones
TRAIN = {
    "thermostat": ["Set the {room} to {t} degrees{mode}.", "Make the {room} {t} C{mode}, please.",
                   "Can you put the {room} thermostat on {t}{mode}?", "I want the {room} at {t} degrees{mode}.",
                   "The {room} should be {t} degrees{mode}.", "Change the {room} temperature to {t}{mode}.",
                   "It's cold in the {room}: set it to {t} C{mode}.", "Adjust the {room} heating to {t} degrees{mode}."],
    "lights": (["Turn on the lights in the {rooms}{level}.", "Switch the {rooms} lights on{level}.",
                "Lights on in the {rooms}{level}, please.", "Can you light up the {rooms}{level}?",
                "It's dark in the {rooms}, turn the lights on{level}."],
               ["Turn off the lights in the {rooms}.", "Switch the {rooms} lights off.", "Lights off in the {rooms}.",
                "Nobody is in the {rooms}, switch the lights off.", "Can you turn the {rooms} lights off?"]),
    "door": (["Lock the {door} door.", "Please lock the {door} door.", "Is the {door} door locked? Lock it.",
              "Lock up the {door} door for the night."],
             ["Unlock the {door} door.", "Open the lock on the {door} door.", "The guests are here, unlock the {door} door.",
              "Please unlock the {door} door."]),
    "energy": ["How much electricity did we use from {a} to {b}{split}?", "Show the energy use between {a} and {b}{split}.",
               "What was our power consumption from {a} until {b}{split}?", "Give me the kWh used from {a} to {b}{split}.",
               "How much energy went into the house between {a} and {b}{split}?"],
    "routine": ["Create a routine called {name} at {time} {days} that will {acts}.",
                "Set up a '{name}' routine: {acts}, at {time} {days}.",
                "Make a routine named {name} that runs at {time} {days} to {acts}.",
                "At {time} {days}, {acts}. Call the routine {name}."],
}  # fmt: skip
EVAL = {
    "thermostat": ["Could you heat or cool the {room} so it reaches {t} degrees{mode}?", "{room}: {t} degrees{mode}, thanks."],
    "lights": (["I'd like light in the {rooms}{level}.", "Brighten up the {rooms}{level}."],
               ["Kill the lights in the {rooms}.", "It's too bright in the {rooms}, switch everything off there."]),
    "door": (["Make sure the {door} door is locked.", "Secure the {door} door."],
             ["Let people in through the {door} door: unlock it.", "The {door} door should be unlocked."]),
    "energy": ["Tell me our kWh total for {a} through {b}{split}.", "Energy report from {a} to {b}{split}, please."],
    "routine": ["New routine named {name}: {acts}; run it at {time} {days}.", "Every time it's {time} {days}, {acts}. Save this as {name}."],
}  # fmt: skip
BUILD = {"thermostat": thermostat, "lights": lights, "door": door, "energy": energy, "routine": routine}

#: requests no tool serves, and what the assistant cannot do: training and evaluation differ
DECLINE_TRAIN = [
    ("Order a pizza for dinner.", "order food"), ("What's the weather tomorrow?", "look up the weather"),
    ("Play some jazz in the kitchen.", "play music"), ("Call my mother.", "make phone calls"),
    ("Add milk to the shopping list.", "edit shopping lists"), ("Book a table for two tonight.", "book restaurants"),
    ("Send an email to the landlord.", "send emails"), ("What's on TV tonight?", "look up TV programmes"),
    ("Water the plants in the garden.", "water plants"), ("Set an alarm for 6 am.", "set alarms"),
    ("Start the washing machine.", "run appliances"), ("Open the garage door.", "open doors"),
    ("How warm is it in the kitchen right now?", "read room temperatures"), ("Tell me a joke.", "tell jokes"),
    ("Find a plumber near me.", "search for services"), ("Turn up the TV volume.", "control the TV"),
    ("What time is it in Tokyo?", "tell the time abroad"), ("Pay the electricity bill.", "make payments"),
]  # fmt: skip
DECLINE_EVAL = [
    ("Vacuum the living room.", "clean the house"), ("How long will my commute take?", "check traffic"),
    ("Remind me to buy bread.", "set reminders"), ("Translate 'good night' into French.", "translate text"),
    ("Order new light bulbs online.", "shop online"), ("Read me today's headlines.", "read the news"),
]  # fmt: skip


def call_turn(req: Request, call_id: str) -> dict[str, Any]:
    """An assistant message that calls one tool (no text beside the call, as agent logs write it)."""
    return {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function",
            "function": {"name": req.tool, "arguments": json.dumps(req.args)}}]}  # fmt: skip


def single(r: random.Random, templates: dict, turn: int = 0) -> list[dict[str, Any]]:
    kind = r.choice(list(BUILD))
    req = BUILD[kind](r, templates[kind])
    result = FUNCTIONS[req.tool](**req.args)
    cid = f"call_{turn}_1"
    return [{"role": "user", "content": req.text}, call_turn(req, cid),
            {"role": "tool", "tool_call_id": cid, "content": result},
            {"role": "assistant", "content": f"Done: {result}"}]  # fmt: skip


def double(r: random.Random, templates: dict, turn: int = 0) -> list[dict[str, Any]]:
    k1, k2 = r.sample(list(BUILD), 2)
    a, b = BUILD[k1](r, templates[k1]), BUILD[k2](r, templates[k2])
    ra, rb = FUNCTIONS[a.tool](**a.args), FUNCTIONS[b.tool](**b.args)
    text = f"{a.text.rstrip('.?!')}, and {b.text[0].lower()}{b.text[1:]}"
    c1, c2 = f"call_{turn}_1", f"call_{turn}_2"
    return [{"role": "user", "content": text}, call_turn(a, c1),
            {"role": "tool", "tool_call_id": c1, "content": ra}, call_turn(b, c2),
            {"role": "tool", "tool_call_id": c2, "content": rb},
            {"role": "assistant", "content": f"Done: {ra} {rb}"}]  # fmt: skip


#: ways of asking, around a declined request (training and evaluation differ)
ASK_TRAIN = ["{q}", "Hey, {q}", "{q} Thanks!", "Quick one: {q}", "{q} Can you do that?", "Hi! {q}"]
ASK_EVAL = ["Assistant, {q}", "{q} Please handle it.", "Hello there. {q}"]


def decline(r: random.Random, topics: list[tuple[str, str]], asks: list[str]) -> list[dict[str, Any]]:
    question, cannot = r.choice(topics)
    text = r.choice(asks).format(q=question[0].lower() + question[1:] if r.random() < 0.3 else question)
    names = ", ".join(t["function"]["name"] for t in TOOLS)
    return [{"role": "user", "content": text},
            {"role": "assistant", "content": f"Sorry, I can't {cannot}: my tools ({names}) cannot do that."}]  # fmt: skip


def exchange(
    r: random.Random, templates: dict, topics: list, asks: list[str], turn: int
) -> list[dict[str, Any]]:
    """One request and what answers it: a call (60 %), two calls (15 %) or a decline (25 %)."""
    kind = r.choices(["single", "double", "decline"], weights=[60, 15, 25])[0]
    if kind == "decline":
        return decline(r, topics, asks)
    return single(r, templates, turn) if kind == "single" else double(r, templates, turn)


def records(n: int, seed: int, held_out: bool) -> list[dict[str, Any]]:
    """`n` conversations. Training conversations are sessions of one to four requests under one tool
    list (the tool list is most of a conversation's tokens, so each training step teaches several
    decisions); evaluation conversations hold one request each, scored on its own."""
    templates, topics, asks = (
        (EVAL, DECLINE_EVAL, ASK_EVAL) if held_out else (TRAIN, DECLINE_TRAIN, ASK_TRAIN)
    )
    out, seen = [], set()
    r = random.Random(f"own-tools:{seed}:{held_out}")
    while len(out) < n:
        turns = 1 if held_out else r.choices([1, 2, 3, 4], weights=[25, 30, 30, 15])[0]
        messages = [m for k in range(turns) for m in exchange(r, templates, topics, asks, k)]
        key = json.dumps(messages)
        if key in seen:  # every conversation once (convert rejects exact duplicates)
            continue
        seen.add(key)
        out.append({"messages": messages, "tools": TOOLS, "parallel_tool_calls": False})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("data/sources/own-tools.jsonl"), help="training file")
    ap.add_argument("--n", type=int, default=600, help="training conversations")
    ap.add_argument("--n-eval", type=int, default=120, help="evaluation conversations (other templates)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    eval_path = args.out.with_name(args.out.stem + "-eval.jsonl")
    for path, recs in (
        (args.out, records(args.n, args.seed, False)),
        (eval_path, records(args.n_eval, args.seed, True)),
    ):
        path.write_text("".join(json.dumps(rec) + "\n" for rec in recs), encoding="utf-8")
        print(f"{path}: {len(recs)} conversations")


if __name__ == "__main__":
    main()
