"""A deterministic generator of Agent-FLAN-format conversations that teach ReAct tool calling.

Each record is built from its own `random.Random(f"{seed}:{index}")`, so the same seed gives
byte-identical files and a larger `n_records` only appends records. Record kinds, each written to the
Agent-FLAN file that holds that kind of data:

- `react`: one tool call, its `Response:` (a user turn) and a Final Answer that uses the result.
- `react_multi`: several calls in a row (calculator chains, flight number -> ticket price, two
  independent lookups) and follow-up questions in the same conversation.
- `j1s1`: single-turn format following: the assistant's only turn is one call, then it stops.
- `negative`: tools are offered but none fits (or none is needed): Final Answer without a call.
- `tflan` / `tflan_cot`: the same kinds of tasks as plain chat with a plain system prompt.

A `FORMULA_SHARE` of the `react`, `j1s1` and `negative` records offer formula tools instead
(`agentune.raw_data.formulas`): calculators under drawn tool and parameter names.

Every ReAct turn is built with `agentune.protocol.react` (render_system / format_call / format_final /
format_response) and every tool result comes from the real function in `agentune.protocol.tools`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from agentune.protocol import react
from agentune.protocol.tools import ARXIV_PAPERS, PROFILE_FIELDS, RESTAURANT_FEATURES, execute, spec
from agentune.raw_data import formulas

#: Agent-FLAN's seven files and the record kind each holds here.
FILES: dict[str, str] = {
    "agent_instruct_react.jsonl": "react_multi",
    "agent_instruct_tflan.jsonl": "tflan",
    "toolbench_instruct_j1s1_3k.jsonl": "j1s1",
    "toolbench_negative.jsonl": "negative",
    "toolbench_react_10p.jsonl": "react",
    "toolbench_tflan_60p_r10r5u7.jsonl": "tflan_multi",
    "toolbench_tflan_cot_30p.jsonl": "tflan_cot",
}

#: Share of records per file. The protocol kinds dominate; the chat (tflan) kinds stay a minority
#: (in the real release they are the majority, but here they only teach answering, not calling).
DEFAULT_MIX: dict[str, float] = {
    "agent_instruct_react.jsonl": 0.19,
    "agent_instruct_tflan.jsonl": 0.04,
    "toolbench_instruct_j1s1_3k.jsonl": 0.22,
    "toolbench_negative.jsonl": 0.25,
    "toolbench_react_10p.jsonl": 0.24,
    "toolbench_tflan_60p_r10r5u7.jsonl": 0.03,
    "toolbench_tflan_cot_30p.jsonl": 0.03,
}

PLAIN_SYSTEM = (
    "You are a helpful assistant.",
    "You are a helpful, concise assistant.",
    "You are a friendly assistant. Answer clearly.",
)

CITIES = (
    "Beijing",
    "Shanghai",
    "Paris",
    "London",
    "Tokyo",
    "New York",
    "Berlin",
    "Madrid",
    "Rome",
    "Sydney",
    "Toronto",
    "Chicago",
    "Seoul",
    "Singapore",
    "Dubai",
    "Mumbai",
    "Cairo",
    "Lima",
    "Oslo",
    "Vienna",
    "Prague",
    "Lisbon",
    "Boston",
    "Denver",
    "Nairobi",
    "Bangkok",
    "Istanbul",
    "Mexico City",
    "Sao Paulo",
    "Amsterdam",
    "Hangzhou",
    "Shenzhen",
    "Osaka",
    "Dublin",
    "Zurich",
)
COUNTRIES = (
    "France",
    "Japan",
    "Brazil",
    "Canada",
    "India",
    "Kenya",
    "Germany",
    "Mexico",
    "Norway",
    "Egypt",
    "Chile",
    "Vietnam",
    "Italy",
    "Spain",
    "Australia",
    "Peru",
    "Poland",
    "Thailand",
)
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CNY", "INR", "CAD", "AUD", "CHF", "KRW", "BRL", "MXN")
SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "IBM", "INTC", "NFLX", "ORCL", "BABA")
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory")
DOMAINS = ("example.com", "mail.org", "work.net", "uni.edu")
WORDS = (
    "serendipity",
    "ephemeral",
    "ubiquitous",
    "eloquent",
    "resilient",
    "pragmatic",
    "meticulous",
    "ambiguous",
    "benevolent",
    "candid",
    "diligent",
    "frugal",
    "gregarious",
    "lucid",
    "tenacious",
)
TOPICS = (
    "electric cars",
    "the Roman empire",
    "quantum computing",
    "healthy breakfast ideas",
    "python decorators",
    "the history of jazz",
    "solar panels",
    "marathon training",
    "black holes",
    "sourdough bread",
    "climate change",
    "the Olympic games",
    "coral reefs",
)
MOVIES = (
    "Inception",
    "Spirited Away",
    "The Matrix",
    "Parasite",
    "Interstellar",
    "Amelie",
    "Up",
    "Casablanca",
    "The Godfather",
    "Arrival",
    "Coco",
    "Alien",
    "Heat",
    "Jaws",
)
CUISINES = ("Italian", "Japanese", "Mexican", "Thai", "Indian", "vegan", "Korean", "French", "Greek")
PHRASES = (
    "good morning",
    "where is the train station",
    "thank you very much",
    "I love this city",
    "the meeting starts at noon",
    "how much does this cost",
    "happy birthday",
    "see you tomorrow",
    "please call me back",
    "the weather is nice today",
)
EVENTS = (
    "team meeting",
    "dentist appointment",
    "project review",
    "yoga class",
    "lunch with Sam",
    "budget planning",
    "code review",
    "parent-teacher meeting",
    "book club",
)
LENGTH_UNITS = ("mm", "cm", "m", "km", "inch", "foot", "yard", "mile")
LANGS = ("French", "Spanish", "German", "Chinese", "Japanese", "Italian", "Korean", "Portuguese")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass
class Task:
    """One request that one tool call answers."""

    tool: str
    question: str
    args: dict[str, Any]
    thought: str
    answer: Callable[[Any], str]  # the Final Answer, given the tool's result
    capability: str  # what the tool does, for "no tool can do this" answers


def _date(r: random.Random) -> tuple[str, str]:
    """A date as (ISO argument, how the user writes it)."""
    y, m, d = r.randint(2024, 2026), r.randint(1, 12), r.randint(1, 28)
    iso = f"{y:04d}-{m:02d}-{d:02d}"
    return iso, iso if r.random() < 0.75 else f"{MONTHS[m - 1]} {d}, {y}"


def _amount(r: random.Random) -> int | float:
    return r.choice((r.randint(1, 999), r.randint(10, 20000), round(r.uniform(1, 500), 2)))


def _fmt(x: Any) -> str:
    if isinstance(x, list):
        return ", ".join(_fmt(v) for v in x)
    return str(x)


def _pick(r: random.Random, *phrasings: str) -> str:
    return r.choice(phrasings)


#: Share of requests that write a value the way people do ("2.5 million", "5%", "[3, 4, 5]") where the
#: argument must be the plain number or list: the call converts, it does not copy the words.
SPOKEN_SHARE = 0.3


def _say_amount(r: random.Random, x: int | float) -> str:
    """`x` as written in a request: plain, with thousands separators, or in thousands / millions."""
    if r.random() >= SPOKEN_SHARE or not isinstance(x, int) or x < 1000:
        return str(x)
    for unit, word in ((1_000_000, "million"), (1_000, "thousand")):
        if x % (unit // 10) == 0 and x >= unit:
            return f"{x / unit:g} {word}"
    return f"{x:,}"


def _say_rate(r: random.Random, rate: float) -> str:
    """A fraction such as 0.05 as written in a request: 0.05 or 5%."""
    return f"{rate * 100:g}%" if r.random() < SPOKEN_SHARE else str(rate)


def _say_list(r: random.Random, xs: list) -> str:
    """A list as written in a request: comma-separated or in brackets."""
    return f"[{_fmt(xs)}]" if r.random() < SPOKEN_SHARE else _fmt(xs)


# ---- one generator per tool ----------------------------------------------------------------------


def t_flight(r: random.Random) -> Task:
    dep, dst = r.sample(CITIES, 2)
    iso, said = _date(r)
    q = _pick(
        r,
        f"What is the flight number from {dep} to {dst} on {said}?",
        f"Find the flight from {dep} to {dst} on {said}.",
        f"I fly from {dep} to {dst} on {said}. Which flight is it?",
        f"Which flight goes {dep} to {dst} on {said}?",
    )
    return Task(
        "get_flight_number",
        q,
        {"departure": dep, "destination": dst, "date": iso},
        f"I need the flight number from {dep} to {dst} on {iso}.",
        lambda res: f"The flight from {dep} to {dst} on {iso} is {res}.",
        "look up flights",
    )


def t_price(r: random.Random) -> Task:
    fn = f"{r.choice(('CA', 'MU', 'LH', 'BA', 'UA'))}{r.randint(1000, 9999)}"
    iso, said = _date(r)
    q = _pick(
        r,
        f"How much is a ticket on flight {fn} on {said}?",
        f"What does flight {fn} cost on {said}?",
        f"Ticket price for {fn}, {said}?",
    )
    return Task(
        "get_ticket_price",
        q,
        {"flight_number": fn, "date": iso},
        f"I should look up the price of {fn} on {iso}.",
        lambda res: f"A ticket on {fn} on {iso} costs {res} USD.",
        "look up ticket prices",
    )


def t_calc(r: random.Random) -> Task:
    op = r.choice("+-*/")
    a = r.choice((r.randint(1, 100), r.randint(100, 99999), round(r.uniform(0, 1000), 2)))
    b = r.choice((r.randint(1, 100), r.randint(2, 9999), round(r.uniform(0.5, 100), 1)))
    word = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}[op]
    q = _pick(
        r,
        f"What is {a} {op} {b}?",
        f"Calculate {a} {word} {b}.",
        f"Compute {a} {op} {b} please.",
        f"What's {a} {word} {b}?",
    )
    return Task(
        "calculator",
        q,
        {"a": a, "b": b, "operator": op},
        f"I will compute {a} {op} {b}.",
        lambda res: f"{a} {op} {b} = {res}.",
        "do arithmetic",
    )


def t_arxiv(r: random.Random) -> Task:
    paper = r.choice(ARXIV_PAPERS)
    title = paper[2].split(":")[0] if r.random() < 0.4 else paper[2]
    q = _pick(
        r,
        f"Please help me search the {title}.",
        f"Find the arXiv paper '{title}'.",
        f"Search arXiv for {title}.",
        f"Who wrote {title}? Look it up on arXiv.",
        f"Can you get information about the paper {title}?",
    )
    return Task(
        "ArxivSearch.get_arxiv_article_information",
        q,
        {"query": title},
        f"I will search arXiv for {title}.",
        lambda res: f"Here is what I found: {res}",
        "search for papers",
    )


def t_weather(r: random.Random) -> Task:
    city = r.choice(CITIES)
    args: dict[str, Any] = {"city": city}
    unit = r.choice(("", "", "celsius", "fahrenheit"))
    tail = f" in {unit}" if unit else ""
    if unit:
        args["unit"] = unit
    q = _pick(
        r,
        f"What's the weather in {city}{tail}?",
        f"How is the weather in {city} today{tail}?",
        f"Tell me the current weather for {city}{tail}.",
    )
    return Task(
        "get_weather",
        q,
        args,
        f"I need the current weather in {city}.",
        lambda res: f"The weather now: {res}.",
        "check the weather",
    )


def t_currency(r: random.Random) -> Task:
    amt = r.choice((_amount(r), _amount(r), r.choice((25_000, 300_000, 1_200_000, 4_000_000))))
    f, t = r.sample(CURRENCIES, 2)
    said = _say_amount(r, amt)
    q = _pick(
        r,
        f"Convert {said} {f} to {t}.",
        f"How much is {said} {f} in {t}?",
        f"I have {said} {f}. What is that in {t}?",
    )
    return Task(
        "convert_currency",
        q,
        {"amount": amt, "from_currency": f, "to_currency": t},
        f"I will convert {amt} {f} to {t}.",
        lambda res: f"{amt} {f} is {res} {t}.",
        "convert currencies",
    )


def t_length(r: random.Random) -> Task:
    v = r.choice((r.randint(1, 500), round(r.uniform(0.1, 100), 1)))
    f, t = r.sample(LENGTH_UNITS, 2)
    q = _pick(r, f"Convert {v} {f} to {t}.", f"How many {t} is {v} {f}?", f"{v} {f} in {t}?")
    return Task(
        "convert_length",
        q,
        {"value": v, "from_unit": f, "to_unit": t},
        f"I will convert {v} {f} into {t}.",
        lambda res: f"{v} {f} = {res} {t}.",
        "convert lengths",
    )


def t_stock(r: random.Random) -> Task:
    s = r.choice(SYMBOLS)
    args: dict[str, Any] = {"symbol": s}
    cur = r.choice(("", "", "", "EUR", "GBP", "JPY", "CNY"))
    tail = f" in {cur}" if cur else ""
    if cur:
        args["currency"] = cur
    q = _pick(
        r,
        f"What is the stock price of {s}{tail}?",
        f"How much is {s} trading at{tail}?",
        f"Get me the {s} share price{tail}.",
    )
    return Task(
        "get_stock_price",
        q,
        args,
        f"I need the latest price of {s}.",
        lambda res: f"{s} is trading at {res} {cur or 'USD'}.",
        "get stock prices",
    )


def t_translate(r: random.Random) -> Task:
    text, lang = r.choice(PHRASES), r.choice(LANGS)
    q = _pick(
        r,
        f"Translate '{text}' into {lang}.",
        f"How do you say '{text}' in {lang}?",
        f'Please translate "{text}" to {lang}.',
    )
    return Task(
        "translate_text",
        q,
        {"text": text, "target_language": lang},
        f"I will translate the phrase into {lang}.",
        lambda res: f"In {lang}: {res}",
        "translate text",
    )


def t_search(r: random.Random) -> Task:
    topic = r.choice(TOPICS)
    args: dict[str, Any] = {"query": topic}
    n = r.choice((0, 0, 2, 5))
    if n:
        args["max_results"] = n
    q = (
        f"Search the web for {topic} and give me {n} results."
        if n
        else _pick(
            r, f"Search the web for {topic}.", f"Look up {topic} online.", f"Find web pages about {topic}."
        )
    )
    return Task(
        "search_web",
        q,
        args,
        f"I will search the web for {topic}.",
        lambda res: f"Top results: {_fmt(res)}.",
        "search the web",
    )


def t_email(r: random.Random) -> Task:
    to = f"{r.choice(NAMES)}@{r.choice(DOMAINS)}"
    ev = r.choice(EVENTS)
    subject = f"{ev.capitalize()}"
    body = r.choice(
        (f"The {ev} is moved to Friday.", f"Please confirm the {ev}.", f"Reminder: {ev} tomorrow.")
    )
    args: dict[str, Any] = {"to": to, "subject": subject, "body": body}
    q = _pick(
        r,
        f"Send an email to {to} with subject '{subject}' saying: {body}",
        f'Email {to}, subject "{subject}", body: {body}',
    )
    if r.random() < 0.3:
        names = r.sample([n for n in NAMES if n not in to], r.randint(1, 2))
        args["cc"] = [f"{n}@{r.choice(DOMAINS)}" for n in names]
        q += f" Copy {' and '.join(args['cc'])}."
    return Task(
        "send_email",
        q,
        args,
        f"I will send the email to {to}.",
        lambda res: f"Done. {res}",
        "send emails",
    )


def t_calendar(r: random.Random) -> Task:
    title = r.choice(EVENTS)
    iso, said = _date(r)
    args: dict[str, Any] = {"title": title, "date": iso}
    dur = r.choice((0, 30, 45, 90, 120))
    tail = f" for {dur} minutes" if dur else ""
    if dur:
        args["duration_minutes"] = dur
    if r.random() < 0.3:
        args["attendees"] = [n.capitalize() for n in r.sample(NAMES, r.randint(1, 3))]
        tail += f" with {' and '.join(args['attendees'])}"
    q = _pick(r, f"Add '{title}' to my calendar on {said}{tail}.", f"Schedule a {title} on {said}{tail}.")
    return Task(
        "create_calendar_event",
        q,
        args,
        f"I will create the event '{title}' on {iso}.",
        lambda res: f"{res}",
        "manage the calendar",
    )


def t_timer(r: random.Random) -> Task:
    m = r.randint(1, 120)
    args: dict[str, Any] = {"minutes": m}
    label = r.choice(("", "", "tea", "pasta", "workout", "laundry", "break"))
    if label:
        args["label"] = label
    q = (
        f"Set a {label} timer for {m} minutes."
        if label
        else _pick(r, f"Set a timer for {m} minutes.", f"Start a {m} minute countdown.")
    )
    return Task(
        "set_timer", q, args, f"I will set a timer for {m} minutes.", lambda res: f"{res}", "set timers"
    )


def t_timezone(r: random.Random) -> Task:
    city = r.choice(CITIES)
    q = _pick(r, f"What time zone is {city} in?", f"What's the UTC offset of {city}?")
    return Task(
        "get_timezone",
        q,
        {"city": city},
        f"I need the time zone of {city}.",
        lambda res: f"{city} is in {res}.",
        "look up time zones",
    )


def t_bmi(r: random.Random) -> Task:
    w, h = r.randint(40, 130), round(r.uniform(1.45, 2.05), 2)
    q = _pick(
        r, f"I weigh {w} kg and I am {h} m tall. What is my BMI?", f"Calculate the BMI for {w} kg and {h} m."
    )
    return Task(
        "calculate_bmi",
        q,
        {"weight_kg": w, "height_m": h},
        "I will compute the BMI.",
        lambda res: f"The BMI is {res}.",
        "compute BMI",
    )


def t_interest(r: random.Random) -> Task:
    p, rate, y = (
        r.choice((1000, 2500, 5000, 10000, 2_000_000, 1_500_000, r.randint(100, 50000))),
        r.choice((0.02, 0.03, 0.05, 0.07)),
        r.randint(1, 30),
    )
    args: dict[str, Any] = {"principal": p, "rate": rate, "years": y}
    n = r.choice((0, 0, 4, 12))
    tail = f", compounded {n} times a year" if n else ""
    if n:
        args["compounds_per_year"] = n
    q = f"What will {_say_amount(r, p)} dollars grow to at a {_say_rate(r, rate)} annual rate over {y} years{tail}?"
    return Task(
        "finance.compound_interest",
        q,
        args,
        "I will compute the compound interest.",
        lambda res: f"The final balance is {res} dollars.",
        "compute interest",
    )


def t_prime(r: random.Random) -> Task:
    n = r.randint(2, 10000)
    q = _pick(r, f"Is {n} a prime number?", f"Check if {n} is prime.")
    return Task(
        "math.is_prime",
        q,
        {"n": n},
        f"I will check whether {n} is prime.",
        lambda res: f"{n} is {'a prime' if res is True else 'not a prime'} number.",
        "check primes",
    )


def t_sort(r: random.Random) -> Task:
    nums = [r.randint(-50, 200) for _ in range(r.randint(3, 7))]
    desc = r.random() < 0.4
    args: dict[str, Any] = {"numbers": nums}
    if desc:
        args["descending"] = True
    order = "from largest to smallest" if desc else "in ascending order"
    q = f"Sort these numbers {order}: {_say_list(r, nums)}."
    return Task(
        "sort_numbers",
        q,
        args,
        "I will sort the numbers.",
        lambda res: f"Sorted: {_fmt(res)}.",
        "sort numbers",
    )


def t_wordcount(r: random.Random) -> Task:
    text = r.choice(PHRASES).capitalize() + " and " + r.choice(PHRASES)
    if r.random() < 0.25:
        q = _pick(r, f"How many different words does '{text}' use?", f"Count the distinct words in '{text}'.")
        args, what = {"text": text, "unique": True}, "distinct words"
    else:
        q = _pick(r, f'How many words are in this sentence: "{text}"?', f"Count the words in '{text}'.")
        args, what = {"text": text}, "words"
    return Task(
        "word_count",
        q,
        args,
        "I will count the words.",
        lambda res: f"The text has {res} {what}.",
        "count words",
    )


def t_reverse(r: random.Random) -> Task:
    text = r.choice(WORDS + PHRASES)
    q = _pick(r, f"Reverse the string '{text}'.", f"What is '{text}' spelled backwards?")
    return Task(
        "reverse_string",
        q,
        {"text": text},
        "I will reverse the text.",
        lambda res: f"Reversed: {res}",
        "reverse text",
    )


def t_days(r: random.Random) -> Task:
    (a, sa), (b, sb) = sorted((_date(r), _date(r)))
    args: dict[str, Any] = {"start_date": a, "end_date": b}
    tail = ""
    if r.random() < 0.25:
        args["inclusive"] = True
        tail = ", counting both days"
    q = _pick(
        r, f"How many days are there between {sa} and {sb}{tail}?", f"Count the days from {sa} to {sb}{tail}."
    )
    return Task(
        "days_between",
        q,
        args,
        f"I will count the days from {a} to {b}.",
        lambda res: f"There are {res} days between {a} and {b}.",
        "count days between dates",
    )


def t_population(r: random.Random) -> Task:
    c = r.choice(COUNTRIES)
    args: dict[str, Any] = {"country": c}
    year = r.choice((0, 0, 0, r.randint(1990, 2023)))
    tail = f" in {year}" if year else ""
    if year:
        args["year"] = year
    q = _pick(r, f"What was the population of {c}{tail}?", f"How many people lived in {c}{tail}?")
    if not year:
        q = _pick(r, f"What is the population of {c}?", f"How many people live in {c}?")
    return Task(
        "get_population",
        q,
        args,
        f"I need the population of {c}.",
        lambda res: f"{res}.",
        "look up populations",
    )


def t_restaurants(r: random.Random) -> Task:
    city, cuisine = r.choice(CITIES), r.choice(CUISINES)
    args: dict[str, Any] = {"city": city, "cuisine": cuisine}
    mp = r.choice((0, 0, 1, 2, 4))
    tail = f" with price level at most {mp}" if mp else ""
    if mp:
        args["max_price"] = mp
    if r.random() < 0.35:
        args["features"] = r.sample(RESTAURANT_FEATURES, r.randint(1, 2))
        tail += f" that have {' and '.join(args['features'])}"
    q = _pick(
        r, f"Find {cuisine} restaurants in {city}{tail}.", f"Where can I eat {cuisine} food in {city}{tail}?"
    )
    return Task(
        "find_restaurants",
        q,
        args,
        f"I will look for {cuisine} restaurants in {city}.",
        lambda res: f"Try these: {_fmt(res)}.",
        "find restaurants",
    )


def t_hotel(r: random.Random) -> Task:
    city, (iso, said), nights = r.choice(CITIES), _date(r), r.randint(1, 10)
    args: dict[str, Any] = {"city": city, "check_in": iso, "nights": nights}
    g = r.choice((0, 0, 2, 3, 4))
    tail = f" for {g} guests" if g else ""
    if g:
        args["guests"] = g
    q = _pick(
        r,
        f"Book a hotel in {city} from {said} for {nights} nights{tail}.",
        f"I need a room in {city}, checking in {said}, {nights} nights{tail}.",
    )
    return Task("book_hotel", q, args, f"I will book a hotel in {city}.", lambda res: f"{res}", "book hotels")


def t_factorial(r: random.Random) -> Task:
    n = r.randint(0, 20)
    q = _pick(r, f"What is the factorial of {n}?", f"Compute {n}!.", f"Calculate {n} factorial.")
    return Task(
        "math.factorial",
        q,
        {"n": n},
        f"I will compute {n} factorial.",
        lambda res: f"{n}! = {res}.",
        "compute factorials",
    )


def t_gcd(r: random.Random) -> Task:
    k = r.randint(1, 30)
    a, b = k * r.randint(1, 60), k * r.randint(1, 60)
    q = _pick(r, f"What is the greatest common divisor of {a} and {b}?", f"Find the GCD of {a} and {b}.")
    return Task(
        "math.gcd",
        q,
        {"a": a, "b": b},
        f"I will compute gcd({a}, {b}).",
        lambda res: f"The GCD of {a} and {b} is {res}.",
        "compute GCDs",
    )


def t_circle(r: random.Random) -> Task:
    rad = r.choice((r.randint(1, 50), round(r.uniform(0.5, 20), 1)))
    args: dict[str, Any] = {"radius": rad}
    dec = r.choice((None, None, None, 0, 1, 4))
    tail = "" if dec is None else f", rounded to {dec} decimal places"
    if dec is not None:
        args["decimals"] = dec
    q = _pick(
        r,
        f"What is the area of a circle with radius {rad}{tail}?",
        f"Calculate the area of a circle of radius {rad} units{tail}.",
    )
    return Task(
        "geometry.circle_area",
        q,
        args,
        "I will compute the circle's area.",
        lambda res: f"The area is {res} square units.",
        "compute circle areas",
    )


def t_triangle(r: random.Random) -> Task:
    b, h = r.randint(1, 100), r.randint(1, 100)
    q = _pick(
        r,
        f"Find the area of a triangle with a base of {b} units and height of {h} units.",
        f"What is the area of a triangle with base {b} and height {h}?",
    )
    return Task(
        "geometry.triangle_area",
        q,
        {"base": b, "height": h},
        "I will compute the triangle's area.",
        lambda res: f"The area is {res} square units.",
        "compute triangle areas",
    )


def t_velocity(r: random.Random) -> Task:
    d, t = r.randint(10, 5000), r.randint(1, 600)
    q = _pick(
        r,
        f"An object travels {d} meters in {t} seconds. What is its velocity?",
        f"Calculate the average velocity for {d} m covered in {t} s.",
    )
    return Task(
        "physics.calculate_velocity",
        q,
        {"distance": d, "time": t},
        "I will compute the velocity.",
        lambda res: f"The average velocity is {res} m/s.",
        "compute velocities",
    )


def t_quadratic(r: random.Random) -> Task:
    x1, x2, a = r.randint(-9, 9), r.randint(-9, 9), r.choice((1, 1, 2, 3))
    b, c = -a * (x1 + x2), a * x1 * x2
    q = _pick(
        r,
        f"Solve the quadratic equation with a={a}, b={b}, c={c}.",
        f"Find the roots of {a}x^2 + {b}x + {c} = 0.",
    )
    return Task(
        "algebra.solve_quadratic",
        q,
        {"a": a, "b": b, "c": c},
        "I will solve the quadratic equation.",
        lambda res: f"The roots are {_fmt(res)}.",
        "solve equations",
    )


def t_average(r: random.Random) -> Task:
    nums = [r.randint(0, 100) for _ in range(r.randint(3, 6))]
    if r.random() < 0.3:
        said = _say_list(r, nums)
        q = _pick(r, f"What is the median of {said}?", f"Find the median of these numbers: {said}.")
        args, what = {"numbers": nums, "kind": "median"}, "median"
    else:
        said = _say_list(r, nums)
        q = _pick(r, f"What is the average of {said}?", f"Compute the mean of these numbers: {said}.")
        args, what = {"numbers": nums}, "mean"
    return Task(
        "statistics.average",
        q,
        args,
        f"I will compute the {what}.",
        lambda res: f"The {what} is {res}.",
        "compute averages",
    )


def t_movie(r: random.Random) -> Task:
    title = r.choice(MOVIES)
    args: dict[str, Any] = {"title": title}
    year = r.choice((0, 0, r.randint(1960, 2024)))
    if year:
        args["year"] = year
    q = (
        f"Tell me about the movie {title} from {year}."
        if year
        else _pick(r, f"Tell me about the movie {title}.", f"Look up the film {title}.")
    )
    return Task(
        "get_movie_info", q, args, f"I will look up {title}.", lambda res: f"{res}.", "look up movies"
    )


def t_password(r: random.Random) -> Task:
    n = r.randint(8, 32)
    args: dict[str, Any] = {"length": n}
    sym = r.choice((None, True, False))
    tail = "" if sym is None else (" with symbols" if sym else " without symbols")
    if sym is not None:
        args["include_symbols"] = sym
    q = _pick(r, f"Generate a {n}-character password{tail}.", f"Make me a password of length {n}{tail}.")
    return Task(
        "generate_password",
        q,
        args,
        f"I will generate a {n}-character password.",
        lambda res: f"Your password: {res}",
        "generate passwords",
    )


def t_define(r: random.Random) -> Task:
    w = r.choice(WORDS)
    q = _pick(r, f"Define the word '{w}'.", f"What does {w} mean?")
    return Task("define_word", q, {"word": w}, f"I will look up {w}.", lambda res: f"{res}", "look up words")


def t_profile(r: random.Random) -> Task:
    uid = r.randint(1, 99999)
    person = r.choice(NAMES)
    values = {
        "name": person.capitalize(),
        "age": r.randint(18, 90),
        "email": f"{person}@{r.choice(DOMAINS)}",
        "city": r.choice(CITIES),
    }
    chosen = r.sample(PROFILE_FIELDS, r.randint(1, 3))
    fields = [f for f in PROFILE_FIELDS if f in chosen]
    profile: dict[str, Any] = {f: values[f] for f in fields}
    q = f"Update user {uid}: set the {' and the '.join(f'{f} to {v}' for f, v in profile.items())}."
    return Task(
        "update_user_profile",
        q,
        {"user_id": uid, "profile": profile},
        f"I will update user {uid}.",
        lambda res: f"{res}",
        "update user profiles",
    )


def t_distance(r: random.Random) -> Task:
    a, b = r.sample(CITIES, 2)
    args: dict[str, Any] = {"origin": a, "destination": b}
    mode = r.choice(("", "", "walking", "cycling", "driving"))
    tail = f" by {mode}" if mode else ""
    if mode:
        args["mode"] = mode
    q = _pick(r, f"How far is {b} from {a}{tail}?", f"What's the distance from {a} to {b}{tail}?")
    return Task(
        "get_distance",
        q,
        args,
        f"I need the distance from {a} to {b}.",
        lambda res: f"{res}.",
        "compute travel distances",
    )


GENERATORS: dict[str, Callable[[random.Random], Task]] = {
    "get_flight_number": t_flight,
    "get_ticket_price": t_price,
    "calculator": t_calc,
    "ArxivSearch.get_arxiv_article_information": t_arxiv,
    "get_weather": t_weather,
    "convert_currency": t_currency,
    "convert_length": t_length,
    "get_stock_price": t_stock,
    "translate_text": t_translate,
    "search_web": t_search,
    "send_email": t_email,
    "create_calendar_event": t_calendar,
    "set_timer": t_timer,
    "get_timezone": t_timezone,
    "calculate_bmi": t_bmi,
    "finance.compound_interest": t_interest,
    "math.is_prime": t_prime,
    "sort_numbers": t_sort,
    "word_count": t_wordcount,
    "reverse_string": t_reverse,
    "days_between": t_days,
    "get_population": t_population,
    "find_restaurants": t_restaurants,
    "book_hotel": t_hotel,
    "math.factorial": t_factorial,
    "math.gcd": t_gcd,
    "geometry.circle_area": t_circle,
    "geometry.triangle_area": t_triangle,
    "physics.calculate_velocity": t_velocity,
    "algebra.solve_quadratic": t_quadratic,
    "statistics.average": t_average,
    "get_movie_info": t_movie,
    "generate_password": t_password,
    "define_word": t_define,
    "update_user_profile": t_profile,
    "get_distance": t_distance,
}
TOOL_NAMES: tuple[str, ...] = tuple(GENERATORS)

#: Tools that could serve each other's requests: a negative never offers a tool of the asked group.
GROUPS: dict[str, tuple[str, ...]] = {
    "travel": ("get_flight_number", "get_ticket_price", "book_hotel", "get_distance", "get_timezone"),
    "math": (
        "calculator",
        "convert_currency",
        "convert_length",
        "calculate_bmi",
        "finance.compound_interest",
        "math.is_prime",
        "sort_numbers",
        "days_between",
        "math.factorial",
        "math.gcd",
        "geometry.circle_area",
        "geometry.triangle_area",
        "physics.calculate_velocity",
        "algebra.solve_quadratic",
        "statistics.average",
    ),
    "text": ("translate_text", "word_count", "reverse_string", "define_word"),
    "info": (
        "ArxivSearch.get_arxiv_article_information",
        "get_weather",
        "get_stock_price",
        "search_web",
        "get_population",
        "find_restaurants",
        "get_movie_info",
    ),
    "actions": (
        "send_email",
        "create_calendar_event",
        "set_timer",
        "generate_password",
        "update_user_profile",
    ),
}
_GROUP_OF = {t: g for g, ts in GROUPS.items() for t in ts}

#: Requests that need no tool: (question, answer).
SMALL_TALK: tuple[tuple[str, str], ...] = (
    ("Hi! How are you?", "Hello! I'm doing well, thanks. How can I help you today?"),
    ("Thanks, that's all.", "You're welcome! Have a great day."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
    ("How many days are in a week?", "A week has 7 days."),
    ("What color do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
    ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
    (
        "What is the boiling point of water at sea level in Celsius?",
        "Water boils at 100 degrees Celsius at sea level.",
    ),
    (
        "Write a haiku about autumn.",
        "Crisp leaves drift and fall, / amber light on quiet paths, / the year exhales slow.",
    ),
    ("What does CPU stand for?", "CPU stands for Central Processing Unit."),
    ("Give me a synonym for happy.", "A synonym for happy is joyful."),
    ("How many continents are there?", "There are seven continents."),
    ("What is the largest planet in the solar system?", "Jupiter is the largest planet in the solar system."),
    ("Can you explain what a noun is?", "A noun is a word that names a person, place, thing or idea."),
    ("Suggest a name for a pet cat.", "How about Luna? It is short, sweet and easy to call."),
    ("What language is spoken in Brazil?", "The official language of Brazil is Portuguese."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
    (
        "What is photosynthesis in one sentence?",
        "Photosynthesis is how plants turn light, water and CO2 into sugar and oxygen.",
    ),
    ("Say hello in Spanish.", "Hello in Spanish is 'Hola'."),
    ("What is H2O?", "H2O is the chemical formula for water."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    (
        "Recommend a good habit for better sleep.",
        "Keep a regular schedule: go to bed and wake up at the same time every day.",
    ),
    ("What is the opposite of ancient?", "The opposite of ancient is modern."),
)

#: A decline's Thought (one phrasing, drawn like the others): the offered tools' names, then "cannot",
#: where a call's Thought has the tool's name, then "can" (`_first_call`). Three phrasings, two of
#: them opening with "none"/"no tool", declined less selectively on the dev split (RESULTS.md, e4 -> e7).
_NO_TOOL_THOUGHTS = ("The user wants to {cap}; {names} cannot do that, so I will answer directly.",)


# ---- record builders -------------------------------------------------------------------------------


def _msg(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content, "loss": role == "assistant"}


def _n_tools(r: random.Random) -> int:
    return r.choices((1, 2, 3, 4, 5), weights=(35, 30, 20, 10, 5))[0]


def _toolset(r: random.Random, needed: list[str], exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The needed tools plus random distractors, in random order."""
    k = max(_n_tools(r), len(needed))
    pool = [t for t in TOOL_NAMES if t not in needed and t not in exclude]
    names = list(needed) + r.sample(pool, k - len(needed))
    r.shuffle(names)
    return [spec(n) for n in names]


def _first_call(capability: str, tool: str, plan: str, args: dict[str, Any]) -> dict[str, Any]:
    """A request's first call. Its Thought says what the request needs, the offered tool that does it,
    then the plan. A decline starts the same way and names the tools that cannot (`_NO_TOOL_THOUGHTS`),
    so the choice between calling and declining is made after the need is written out."""
    thought = f"The user wants to {capability}; {tool} can do that. {plan}"
    return _msg("assistant", react.format_call(thought, tool, args))


def _call_turns(r: random.Random, task: Task) -> tuple[list[dict[str, Any]], Any]:
    result = execute(task.tool, task.args)
    return [
        _first_call(task.capability, task.tool, task.thought, task.args),
        _msg("user", react.format_response(result)),
    ], result


def _final(answer: str, r: random.Random) -> dict[str, Any]:
    thought = r.choice(("I now know the answer.", "The tool returned the result.", "I have the result."))
    return _msg("assistant", react.format_final(thought, answer))


def rec_react(r: random.Random) -> list[dict[str, Any]]:
    task = GENERATORS[r.choice(TOOL_NAMES)](r)
    turns, result = _call_turns(r, task)
    return [
        _msg("system", react.render_system(_toolset(r, [task.tool]))),
        _msg("user", task.question),
        *turns,
        _final(task.answer(result), r),
    ]


def rec_j1s1(r: random.Random) -> list[dict[str, Any]]:
    task = GENERATORS[r.choice(TOOL_NAMES)](r)
    return [
        _msg("system", react.render_system(_toolset(r, [task.tool]))),
        _msg("user", task.question),
        _first_call(task.capability, task.tool, task.thought, task.args),
    ]


_OP_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def _expr(r: random.Random, depth: int) -> Any:
    """A random arithmetic tree: a number, or (op, left, right)."""
    if depth == 0 or r.random() < 0.3:
        return r.choice((r.randint(1, 99), r.randint(100, 9999), r.randint(1000, 60000)))
    op = r.choice("+-*/")
    return (op, _expr(r, depth - 1), _expr(r, depth - 1))


def _render(node: Any, parent: str | None = None, right: bool = False) -> str:
    if not isinstance(node, tuple):
        return str(node)
    op, a, b = node
    text = f"{_render(a, op)} {op} {_render(b, op, True)}"
    if parent and (
        _OP_PREC[op] < _OP_PREC[parent] or (right and _OP_PREC[op] == _OP_PREC[parent] and parent in "-/")
    ):
        return f"({text})"
    return text


def _calc_steps(node: Any, steps: list[tuple[Any, Any, str, Any]]) -> Any:
    """Post-order evaluation with the real calculator; records (a, b, op, result) per call."""
    if not isinstance(node, tuple):
        return node
    op, a, b = node
    va, vb = _calc_steps(a, steps), _calc_steps(b, steps)
    res = execute("calculator", {"a": va, "b": vb, "operator": op})
    steps.append((va, vb, op, res))
    return res


def rec_calc_chain(r: random.Random) -> list[dict[str, Any]] | None:
    if r.random() < 0.15:  # the reference write-up's shape: (a + b / (c - d)) * e
        a, b, c, d, e = (
            r.randint(1000, 60000),
            r.randint(100, 20000),
            r.randint(100, 999),
            r.randint(1, 99),
            r.randint(2, 9),
        )
        tree: Any = ("*", ("+", a, ("/", b, ("-", c, d))), e)
    else:
        tree = (r.choice("+-*/"), _expr(r, r.randint(0, 2)), _expr(r, r.randint(1, 2)))
    steps: list[tuple[Any, Any, str, Any]] = []
    value = _calc_steps(tree, steps)
    if not isinstance(value, (int, float)) or any(isinstance(s[3], str) for s in steps) or abs(value) > 1e12:
        return None
    text = _render(tree)
    q = _pick(
        r,
        f"What is {text}?",
        f"Calculate {text}.",
        f"Compute {text} step by step with the calculator.",
        f"Please work out {text}.",
    )
    msgs = [_msg("system", react.render_system(_toolset(r, ["calculator"]))), _msg("user", q)]
    for i, (a, b, op, res) in enumerate(steps):
        thought = f"Next I compute {a} {op} {b}."
        if i == 0:  # need first, as every first call; a need of its own, not a single sum's "do arithmetic"
            thought = (
                "The user wants to evaluate an expression step by step; calculator can do that. "
                f"First I compute {a} {op} {b}."
            )
        msgs += [
            _msg("assistant", react.format_call(thought, "calculator", {"a": a, "b": b, "operator": op})),
            _msg("user", react.format_response(res)),
        ]
    msgs.append(_msg("assistant", react.format_final("All steps are done.", f"{text} = {value}")))
    return msgs


def rec_flight_price(r: random.Random) -> list[dict[str, Any]]:
    """Flight number -> ticket price, in one question or as a follow-up question."""
    dep, dst = r.sample(CITIES, 2)
    iso, said = _date(r)
    tools = _toolset(r, ["get_flight_number", "get_ticket_price"])
    fn_args = {"departure": dep, "destination": dst, "date": iso}
    fn = execute("get_flight_number", fn_args)
    price_args = {"flight_number": fn, "date": iso}
    price = execute("get_ticket_price", price_args)
    step = f"the flight number from {dep} to {dst} on {iso}"
    # every request opens with its need, as a single call's Thought does (`_first_call`)
    need_fn = "The user wants to look up flights; get_flight_number can do that."
    need_price = "The user wants to look up ticket prices; get_ticket_price can do that."
    msgs = [_msg("system", react.render_system(tools))]
    if r.random() < 0.5:
        call_fn = react.format_call(
            f"The user wants to look up ticket prices, which needs the flight number; get_flight_number can "
            f"do that. First I need {step}.",
            "get_flight_number",
            fn_args,
        )
        call_price = react.format_call(
            f"Now I can get the price of {fn} on {iso}.", "get_ticket_price", price_args
        )
        msgs += [
            _msg(
                "user",
                _pick(
                    r,
                    f"How much is a ticket from {dep} to {dst} on {said}?",
                    f"What does the flight from {dep} to {dst} on {said} cost?",
                ),
            ),
            _msg("assistant", call_fn),
            _msg("user", react.format_response(fn)),
            _msg("assistant", call_price),
            _msg("user", react.format_response(price)),
            _msg("assistant", react.format_final("I have the price.", f"Flight {fn} costs {price} USD.")),
        ]
    else:
        call_fn = react.format_call(f"{need_fn} I need {step}.", "get_flight_number", fn_args)
        call_price = react.format_call(
            f"{need_price} Now I can get the price of {fn} on {iso}.", "get_ticket_price", price_args
        )
        msgs += [
            _msg("user", f"What is the flight number from {dep} to {dst} on {said}?"),
            _msg("assistant", call_fn),
            _msg("user", react.format_response(fn)),
            _msg("assistant", react.format_final("I have the flight number.", f"The flight number is {fn}.")),
            _msg(
                "user",
                _pick(
                    r,
                    "How much is a ticket for that flight?",
                    "And what is its ticket price?",
                    "What does that flight cost?",
                ),
            ),
            _msg("assistant", call_price),
            _msg("user", react.format_response(price)),
            _msg(
                "assistant",
                react.format_final("I have the price.", f"A ticket on {fn} costs {price} USD."),
            ),
        ]
    return msgs


def rec_two_tasks(r: random.Random) -> list[dict[str, Any]]:
    """Two independent requests: in one question, or a follow-up question after the first answer."""
    t1_name, t2_name = r.sample(TOOL_NAMES, 2)
    t1, t2 = GENERATORS[t1_name](r), GENERATORS[t2_name](r)
    msgs = [_msg("system", react.render_system(_toolset(r, [t1.tool, t2.tool])))]
    turns1, res1 = _call_turns(r, t1)
    turns2, res2 = _call_turns(r, t2)
    if r.random() < 0.5:
        q2 = t2.question[0].lower() + t2.question[1:]
        msgs += [
            _msg("user", f"{t1.question.rstrip('.?!')}, and {q2}"),
            *turns1,
            *turns2,
            _msg(
                "assistant",
                react.format_final("I have both results.", f"{t1.answer(res1)} {t2.answer(res2)}"),
            ),
        ]
    else:
        msgs += [
            _msg("user", t1.question),
            *turns1,
            _final(t1.answer(res1), r),
            _msg("user", t2.question),
            *turns2,
            _final(t2.answer(res2), r),
        ]
    return msgs


def _decline(capability: str, tools: list[dict[str, Any]], r: random.Random) -> dict[str, Any]:
    """The Final Answer of a request no offered tool can serve."""
    names = ", ".join(t["name"] for t in tools)
    return _msg(
        "assistant",
        react.format_final(
            r.choice(_NO_TOOL_THOUGHTS).format(cap=capability, names=names),
            f"Sorry, I can't {capability} with the tools I have ({names}), so I cannot answer this request.",
        ),
    )


def rec_session(r: random.Random) -> list[dict[str, Any]]:
    """One tool list, three or four requests in a row: calls answered from their results, requests of a
    neighbouring tool that is not offered (declined), and small talk (answered directly). Many decisions
    share one system prompt, the costliest part of a record to train on."""
    offered = r.sample(TOOL_NAMES, r.choice((1, 2, 2, 3)))
    tools = [spec(n) for n in offered]
    near = [
        t for n in offered for t in GROUPS[_GROUP_OF[n]] if t not in offered and t not in _NEAR_MISS_EXCLUDED
    ]
    msgs = [_msg("system", react.render_system(tools))]
    kinds = ["call", "call"] + r.choices(("call", "decline", "chat"), weights=(40, 35, 25), k=r.randint(1, 2))
    r.shuffle(kinds)
    for kind in kinds:
        if kind == "call":
            task = GENERATORS[r.choice(offered)](r)
            turns, result = _call_turns(r, task)
            msgs += [_msg("user", task.question), *turns, _final(task.answer(result), r)]
        elif kind == "decline" and near:
            task = GENERATORS[r.choice(near)](r)
            msgs += [_msg("user", task.question), _decline(task.capability, tools, r)]
        else:
            q, answer = r.choice(SMALL_TALK)
            msgs += [
                _msg("user", q),
                _msg("assistant", react.format_final("I can answer this directly.", answer)),
            ]
    return msgs


#: Shares of the multi-step kinds in agent_instruct_react.jsonl.
MULTI_MIX: dict[str, float] = {"calc": 30, "flight": 20, "two": 15, "session": 35}


def rec_react_multi(r: random.Random) -> list[dict[str, Any]]:
    kind = r.choices(tuple(MULTI_MIX), weights=tuple(MULTI_MIX.values()))[0]
    if kind == "calc":
        while (msgs := rec_calc_chain(r)) is None:
            pass
        return msgs
    if kind == "session":
        return rec_session(r)
    return rec_flight_price(r) if kind == "flight" else rec_two_tasks(r)


#: Kinds of negative record and their shares: `near` offers tools of the request's own domain that still
#: cannot serve it (how BFCL irrelevance is built: a plausible tool whose parameters the question could
#: fill), `unrelated` offers tools of other domains, `no_tool` is small talk that needs no tool.
NEGATIVE_MIX: dict[str, float] = {"near": 0.5, "unrelated": 0.2, "no_tool": 0.3}

#: Never offered as a near miss: tools that could serve other requests of their group after all
#: (arithmetic computes a BMI or an interest; a web search answers any question).
_NEAR_MISS_EXCLUDED = ("calculator", "search_web")


def _near_miss_tools(r: random.Random, task: Task) -> list[dict[str, Any]]:
    """One to three tools of the request's own group that cannot serve it (every group has three or more
    such tools)."""
    siblings = [t for t in GROUPS[_GROUP_OF[task.tool]] if t != task.tool and t not in _NEAR_MISS_EXCLUDED]
    k = r.choices((1, 2, 3), weights=(60, 30, 10))[0]
    names = r.sample(siblings, min(k, len(siblings)))
    r.shuffle(names)
    return [spec(n) for n in names]


def rec_negative(r: random.Random) -> list[dict[str, Any]]:
    kind = r.choices(tuple(NEGATIVE_MIX), weights=tuple(NEGATIVE_MIX.values()))[0]
    if kind in ("near", "unrelated"):  # a real request, but no offered tool can serve it
        task = GENERATORS[r.choice(TOOL_NAMES)](r)
        if kind == "near":
            tools = _near_miss_tools(r, task)
        else:
            tools = _toolset(r, [], GROUPS[_GROUP_OF[task.tool]] + ("search_web",))
        return [
            _msg("system", react.render_system(tools)),
            _msg("user", task.question),
            _decline(task.capability, tools, r),
        ]
    # small talk or general knowledge: no tool is needed
    q, answer = r.choice(SMALL_TALK)
    tools = _toolset(r, [], ("search_web",))
    thought = r.choice(
        ("No tool is needed for this.", "I can answer this directly.", "This does not need any of the tools.")
    )
    return [
        _msg("system", react.render_system(tools)),
        _msg("user", q),
        _msg("assistant", react.format_final(thought, answer)),
    ]


#: Share of the single-call, single-turn and negative records built from formula tools (`formulas`)
#: instead of the catalogue: tools offered under drawn names and parameter names, to be read, not recalled.
#: 0 by default: at 0.3 two dev runs (training seeds 0, 1) moved the metrics both ways, by about the
#: spread between seeds (benchmarks/RESULTS.md, "f1"); at 0 no record changes (the default data as before).
FORMULA_SHARE = 0.0


def rec_formula(r: random.Random, answer: bool = True) -> list[dict[str, Any]]:
    """One formula call among up to two formulas of the same subject; with `answer`, its result and a
    Final Answer follow (else the record ends on the call, as j1s1 records do)."""
    f = r.choice(formulas.FORMULAS)
    v = formulas.variant(f, r)
    req = formulas.request(v, r)
    others = formulas.near_misses(f, r, r.choices((0, 1, 2), weights=(40, 40, 20))[0])
    tools = [v.spec(), *(formulas.variant(o, r).spec() for o in others)]
    r.shuffle(tools)
    msgs = [
        _msg("system", react.render_system(tools)),
        _msg("user", req.question),
        _first_call(f.capability, v.name, req.thought, req.args),
    ]
    if answer:
        msgs += [_msg("user", react.format_response(req.result)), _final(req.answer, r)]
    return msgs


def rec_formula_decline(r: random.Random) -> list[dict[str, Any]]:
    """A request for one formula with only other formulas of its subject offered: declined."""
    f = r.choice(formulas.FORMULAS)
    req = formulas.request(formulas.variant(f, r), r)
    tools = [formulas.variant(o, r).spec() for o in formulas.near_misses(f, r, r.choice((1, 1, 2)))]
    return [
        _msg("system", react.render_system(tools)),
        _msg("user", req.question),
        _decline(f.capability, tools, r),
    ]


def _or_formula(
    build: Callable[[random.Random], list[dict[str, Any]]],
    formula_build: Callable[[random.Random], list[dict[str, Any]]],
) -> Callable[[random.Random], list[dict[str, Any]]]:
    """`formula_build` for a `FORMULA_SHARE` of the records, `build` for the others."""
    return lambda r: formula_build(r) if FORMULA_SHARE and r.random() < FORMULA_SHARE else build(r)


def rec_tflan(r: random.Random, turns: int = 1, cot: bool = False) -> list[dict[str, Any]]:
    msgs = [_msg("system", r.choice(PLAIN_SYSTEM))]
    for _ in range(turns):
        task = GENERATORS[r.choice(TOOL_NAMES)](r)
        result = execute(task.tool, task.args)
        answer = task.answer(result)
        if cot:
            answer = f"To answer this I need to {task.capability}. {task.thought} {answer}"
        msgs += [_msg("user", task.question), _msg("assistant", answer)]
    return msgs


BUILDERS: dict[str, Callable[[random.Random], list[dict[str, Any]]]] = {
    "react": _or_formula(rec_react, rec_formula),
    "react_multi": rec_react_multi,
    "j1s1": _or_formula(rec_j1s1, lambda r: rec_formula(r, answer=False)),
    "negative": _or_formula(rec_negative, rec_formula_decline),
    "tflan": lambda r: rec_tflan(r, 1),
    "tflan_multi": lambda r: rec_tflan(r, r.randint(2, 3)),
    "tflan_cot": lambda r: rec_tflan(r, r.randint(1, 2), cot=True),
}


def file_counts(n_records: int, mix: dict[str, float]) -> dict[str, int]:
    """Records per file (largest remainder, so the counts add up to `n_records` exactly)."""
    total = sum(mix.values())
    exact = {f: n_records * w / total for f, w in mix.items()}
    counts = {f: int(v) for f, v in exact.items()}
    rest = n_records - sum(counts.values())
    for f in sorted(exact, key=lambda f: (counts[f] - exact[f], f))[:rest]:
        counts[f] += 1
    return counts


#: The evaluation's fixed reference requests (the `scenarios` suite of `evaluate`): no training record
#: contains them, so the scenarios measure generalisation, not recall.
RESERVED_FRAGMENTS: tuple[str, ...] = (
    "Please help me search the InternLM2 Technical Report.",
    "44232 + 13312 / (232 - 32)",
    "Beijing to Shanghai on 2024-07-01",
    "Beijing to Shanghai on July 1, 2024",
)


def is_reserved(conversation: list[dict[str, Any]]) -> bool:
    """Whether a user turn contains one of the evaluation's reference requests."""
    return any(f in m["content"] for m in conversation if m["role"] == "user" for f in RESERVED_FRAGMENTS)


#: Share of ReAct records whose tools are offered under other names (the same functions), so the model
#: learns to copy the name from the tool list instead of recalling a fixed one.
RENAMED_SHARE = 0.25
_RENAMED_KINDS = ("react", "react_multi", "j1s1", "negative")


def name_variant(name: str, r: random.Random) -> str:
    """Another plausible name for a tool: a different verb, camelCase, or another namespace."""
    ns, _, base = name.rpartition(".")
    options = []
    if base.startswith("get_"):
        options += [f"fetch_{base[4:]}", f"lookup_{base[4:]}", f"query_{base[4:]}"]
    parts = base.split("_")
    if len(parts) > 1:
        options.append(parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]))
    options += [f"{r.choice(('api', 'tools', 'utils', 'service'))}.{base}"]
    if ns:
        options.append(base)
    return r.choice(options)


def rename_tools(conv: list[dict[str, Any]], r: random.Random) -> list[dict[str, Any]]:
    """The same conversation with every offered tool renamed (system prompt, calls, answers)."""
    system = conv[0]["content"]
    specs = react.tools_from_system(system)
    if not specs or system != react.render_system(specs):
        return conv
    names = {s["name"]: name_variant(s["name"], r) for s in specs}
    if len(set(names.values())) < len(names):
        return conv
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    out = [{**conv[0], "content": react.render_system([{**s, "name": names[s["name"]]} for s in specs])}]
    for m in conv[1:]:
        if m["role"] == "assistant":
            m = {**m, "content": pattern.sub(lambda x: names[x.group(0)], m["content"])}
        out.append(m)
    return out


def generate(file_name: str, count: int, seed: int) -> Iterator[dict[str, Any]]:
    """The records of one file; record i depends only on (seed, file_name, i)."""
    kind = FILES[file_name]
    stem = file_name.removesuffix(".jsonl")
    for i in range(count):
        conv = BUILDERS[kind](random.Random(f"{seed}:{stem}:{i}"))
        retry = 0
        while is_reserved(conv):  # rebuild deterministically from a derived seed
            retry += 1
            conv = BUILDERS[kind](random.Random(f"{seed}:{stem}:{i}:{retry}"))
        if kind in _RENAMED_KINDS:
            r = random.Random(f"{seed}:{stem}:{i}:names")
            if r.random() < RENAMED_SHARE:
                conv = rename_tools(conv, r)
        yield {"id": f"{stem}_{i}", "conversation": conv}
