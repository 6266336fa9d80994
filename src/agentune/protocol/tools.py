"""The tool catalogue of the generated sample: JSON-schema specs plus real, deterministic Python functions.

`REGISTRY` maps a tool name to `(spec, callable)`. The sample generator (`agentune.raw_data.sample`) calls
these functions to put true results into its trajectories, and evaluation imports the same registry to
run tools in its scenarios (`execute(name, args)`). Every function is deterministic: "live" data (weather,
stock prices, flights) is derived from a hash of the arguments, never from the clock or the network.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import date as _date
from typing import Any

ToolFn = Callable[..., Any]


def _h(*parts: Any) -> int:
    """A stable integer from the arguments (same value on every machine and Python run)."""
    text = "\x1f".join(str(p).strip().lower() for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _num(x: float) -> int | float:
    """Round a result for display: integers stay integers, others keep at most 6 decimals."""
    x = round(float(x), 6)
    return int(x) if x.is_integer() and abs(x) < 1e15 else x


def _p(type_: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "description": description, **extra}


def _spec(name: str, description: str, props: dict[str, dict], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": props, "required": required},
    }


# ---- the reference write-up's tools -------------------------------------------------------------

_AIRLINES = ("CA", "MU", "CZ", "HU", "LH", "AF", "BA", "UA", "DL", "NH")


def get_flight_number(departure: str, destination: str, date: str) -> str:
    """The flight number from `departure` to `destination` on `date`."""
    h = _h("flight", departure, destination, date)
    return f"{_AIRLINES[h % len(_AIRLINES)]}{1000 + (h >> 8) % 9000}"


def get_ticket_price(flight_number: str, date: str) -> int:
    """The ticket price of `flight_number` on `date`, in USD."""
    return 80 + _h("price", flight_number, date) % 1200


_OPS: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


def calculator(a: float, b: float, operator: str) -> int | float | str:
    """a <operator> b for one binary operator (+, -, *, /)."""
    if operator not in _OPS:
        return f"Error: unknown operator {operator!r}; use one of + - * /"
    if operator == "/" and b == 0:
        return "Error: division by zero"
    return _num(_OPS[operator](float(a), float(b)))


#: A few real arXiv papers (id, date, title, first authors); other queries get the closest title.
ARXIV_PAPERS: tuple[tuple[str, str, str, str], ...] = (
    (
        "2403.17297",
        "2024-03-26",
        "InternLM2 Technical Report",
        "Zheng Cai, Maosong Cao, Haojiong Chen et al.",
    ),
    (
        "2403.12881",
        "2024-03-19",
        "Agent-FLAN: Designing Data and Methods of Effective Agent Tuning for Large Language Models",
        "Zehui Chen, Kuikun Liu, Qiuchen Wang et al.",
    ),
    (
        "1706.03762",
        "2017-06-12",
        "Attention Is All You Need",
        "Ashish Vaswani, Noam Shazeer, Niki Parmar et al.",
    ),
    (
        "1810.04805",
        "2018-10-11",
        "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
        "Jacob Devlin, Ming-Wei Chang, Kenton Lee, Kristina Toutanova",
    ),
    (
        "2106.09685",
        "2021-06-17",
        "LoRA: Low-Rank Adaptation of Large Language Models",
        "Edward J. Hu, Yelong Shen, Phillip Wallis et al.",
    ),
    (
        "2305.14314",
        "2023-05-23",
        "QLoRA: Efficient Finetuning of Quantized LLMs",
        "Tim Dettmers, Artidoro Pagnoni, Ari Holtzman, Luke Zettlemoyer",
    ),
    (
        "2307.09288",
        "2023-07-18",
        "Llama 2: Open Foundation and Fine-Tuned Chat Models",
        "Hugo Touvron, Louis Martin, Kevin Stone et al.",
    ),
    (
        "2210.03629",
        "2022-10-06",
        "ReAct: Synergizing Reasoning and Acting in Language Models",
        "Shunyu Yao, Jeffrey Zhao, Dian Yu et al.",
    ),
    (
        "2302.04761",
        "2023-02-09",
        "Toolformer: Language Models Can Teach Themselves to Use Tools",
        "Timo Schick, Jane Dwivedi-Yu, Roberto Dessi et al.",
    ),
    (
        "2005.14165",
        "2020-05-28",
        "Language Models are Few-Shot Learners",
        "Tom B. Brown, Benjamin Mann, Nick Ryder et al.",
    ),
    (
        "2201.11903",
        "2022-01-28",
        "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models",
        "Jason Wei, Xuezhi Wang, Dale Schuurmans et al.",
    ),
    (
        "2307.16789",
        "2023-07-31",
        "ToolLLM: Facilitating Large Language Models to Master 16000+ Real-world APIs",
        "Yujia Qin, Shihao Liang, Yining Ye et al.",
    ),
    (
        "2310.12823",
        "2023-10-19",
        "AgentTuning: Enabling Generalized Agent Abilities for LLMs",
        "Aohan Zeng, Mingdao Liu, Rui Lu et al.",
    ),
    (
        "2312.14033",
        "2023-12-21",
        "T-Eval: Evaluating the Tool Utilization Capability of Large Language Models Step by Step",
        "Zehui Chen, Weihua Du, Wenwei Zhang et al.",
    ),
    (
        "2009.03300",
        "2020-09-07",
        "Measuring Massive Multitask Language Understanding",
        "Dan Hendrycks, Collin Burns, Steven Basart et al.",
    ),
    (
        "2203.02155",
        "2022-03-04",
        "Training language models to follow instructions with human feedback",
        "Long Ouyang, Jeff Wu, Xu Jiang et al.",
    ),
)


def _words(text: str) -> set[str]:
    return {w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if len(w) > 1}


def arxiv_search(query: str) -> str:
    """Information about the arXiv article that best matches `query` (title word overlap)."""
    q = _words(query)
    best = max(ARXIV_PAPERS, key=lambda p: (len(q & _words(p[2])), -ARXIV_PAPERS.index(p)))
    if not q & _words(best[2]):
        return f"No article found for {query!r}."
    arxiv_id, published, title, authors = best
    return f"Published: {published}; Title: {title}; Authors: {authors}; arXiv: {arxiv_id}"


# ---- everyday tools -----------------------------------------------------------------------------

_CONDITIONS = ("sunny", "cloudy", "light rain", "heavy rain", "snow", "windy", "foggy", "partly cloudy")


def get_weather(city: str, unit: str = "celsius") -> str:
    h = _h("weather", city)
    c = -5 + h % 38
    temp = c if unit == "celsius" else round(c * 9 / 5 + 32)
    sym = "C" if unit == "celsius" else "F"
    return f"{city}: {_CONDITIONS[(h >> 8) % len(_CONDITIONS)]}, {temp} degrees {sym}"


_RATES = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.2,
    "CNY": 7.24,
    "INR": 83.3,
    "CAD": 1.36,
    "AUD": 1.52,
    "CHF": 0.9,
    "KRW": 1345.0,
    "BRL": 5.05,
    "MXN": 16.9,
}


def convert_currency(amount: float, from_currency: str, to_currency: str) -> float | str:
    f, t = from_currency.upper(), to_currency.upper()
    if f not in _RATES or t not in _RATES:
        return f"Error: unsupported currency; supported: {', '.join(sorted(_RATES))}"
    return round(float(amount) / _RATES[f] * _RATES[t], 2)


_LENGTH = {
    "mm": 0.001,
    "cm": 0.01,
    "m": 1.0,
    "km": 1000.0,
    "inch": 0.0254,
    "foot": 0.3048,
    "yard": 0.9144,
    "mile": 1609.344,
}


def convert_length(value: float, from_unit: str, to_unit: str) -> float | str:
    if from_unit not in _LENGTH or to_unit not in _LENGTH:
        return f"Error: unit must be one of {', '.join(_LENGTH)}"
    return _num(round(float(value) * _LENGTH[from_unit] / _LENGTH[to_unit], 4))


def get_stock_price(symbol: str, currency: str = "USD") -> float | str:
    cur = currency.upper()
    if cur not in _RATES:
        return f"Error: unsupported currency; supported: {', '.join(sorted(_RATES))}"
    usd = 5 + (_h("stock", symbol) % 90000) / 100
    return round(usd * _RATES[cur], 2)


_LANG_PREFIX = {
    "French": "fr",
    "Spanish": "es",
    "German": "de",
    "Chinese": "zh",
    "Japanese": "ja",
    "Italian": "it",
    "Korean": "ko",
    "Portuguese": "pt",
}


def translate_text(text: str, target_language: str) -> str:
    code = _LANG_PREFIX.get(target_language, target_language[:2].lower())
    return f"[{code}] {text}"


def search_web(query: str, max_results: int = 3) -> list[str]:
    h = _h("web", query)
    sites = (
        "wikipedia.org",
        "britannica.com",
        "nytimes.com",
        "bbc.com",
        "nature.com",
        "github.com",
        "reddit.com",
        "stackoverflow.com",
    )
    n = max(1, min(int(max_results), 5))
    return [f"{query} - {sites[(h >> (4 * i)) % len(sites)]}" for i in range(n)]


def send_email(to: str, subject: str, body: str, cc: list[str] | None = None) -> str:
    copies = f", cc {', '.join(cc)}" if cc else ""
    return f"Email sent to {to}{copies} (id msg-{_h('mail', to, subject, body, cc) % 100000:05d})."


def create_calendar_event(
    title: str, date: str, duration_minutes: int = 60, attendees: list[str] | None = None
) -> str:
    people = f" with {', '.join(attendees)}" if attendees else ""
    return f"Event '{title}' created on {date} for {int(duration_minutes)} minutes{people}."


def set_timer(minutes: int, label: str = "timer") -> str:
    return f"Timer '{label}' set for {int(minutes)} minutes."


def get_timezone(city: str) -> str:
    offset = _h("tz", city) % 25 - 12
    return f"UTC{offset:+d}" if offset else "UTC"


def calculate_bmi(weight_kg: float, height_m: float) -> float:
    return round(float(weight_kg) / float(height_m) ** 2, 1)


def compound_interest(principal: float, rate: float, years: int, compounds_per_year: int = 1) -> float:
    n = int(compounds_per_year)
    return round(float(principal) * (1 + float(rate) / n) ** (n * int(years)), 2)


def is_prime(n: int) -> bool:
    n = int(n)
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def sort_numbers(numbers: list[float], descending: bool = False) -> list[float]:
    return sorted(numbers, reverse=bool(descending))


def word_count(text: str, unique: bool = False) -> int:
    words = text.split()
    return len({w.strip(".,!?;:'\"").lower() for w in words}) if unique else len(words)


def reverse_string(text: str) -> str:
    return text[::-1]


def days_between(start_date: str, end_date: str, inclusive: bool = False) -> int | str:
    try:
        days = (_date.fromisoformat(end_date) - _date.fromisoformat(start_date)).days
    except ValueError:
        return "Error: dates must be YYYY-MM-DD"
    return days + 1 if inclusive else days


def get_population(country: str, year: int = 2024) -> str:
    base = 1 + _h("pop", country) % 300
    millions = round(base * (1 + 0.008 * (int(year) - 2024)), 1)
    return f"{country} in {int(year)}: about {_num(millions)} million people"


RESTAURANT_FEATURES = ("outdoor seating", "vegan options", "wifi", "parking", "live music", "delivery")


def find_restaurants(
    city: str, cuisine: str, max_price: int = 3, features: list[str] | None = None
) -> list[str] | str:
    unknown = [f for f in features or () if f not in RESTAURANT_FEATURES]
    if unknown:
        return f"Error: unknown features {unknown}; use any of {', '.join(RESTAURANT_FEATURES)}"
    h = _h("food", city, cuisine, sorted(features or ()))
    names = ("Golden", "Blue", "Little", "Royal", "Green", "Old Town", "Corner", "Lucky")
    kinds = ("Kitchen", "Table", "House", "Bistro", "Garden", "Place")
    tags = f"; {', '.join(features)}" if features else ""
    return [
        f"{names[(h >> (3 * i)) % 8]} {kinds[(h >> (5 * i)) % 6]} "
        f"({cuisine}, {'$' * (1 + (h >> i) % int(max_price))}{tags})"
        for i in range(2)
    ]


def book_hotel(city: str, check_in: str, nights: int, guests: int = 1) -> str:
    ref = _h("hotel", city, check_in, nights, guests) % 1000000
    return (
        f"Booked {int(nights)} night(s) in {city} from {check_in} for {int(guests)} guest(s), ref H{ref:06d}."
    )


def factorial(n: int) -> int | str:
    n = int(n)
    if n < 0 or n > 50:
        return "Error: n must be between 0 and 50"
    return math.factorial(n)


def gcd(a: int, b: int) -> int:
    return math.gcd(int(a), int(b))


def circle_area(radius: float, decimals: int = 2) -> float:
    return round(math.pi * float(radius) ** 2, int(decimals))


def triangle_area(base: float, height: float) -> float:
    return _num(0.5 * float(base) * float(height))


def calculate_velocity(distance: float, time: float) -> float:
    return _num(round(float(distance) / float(time), 3))


def solve_quadratic(a: float, b: float, c: float) -> list[float] | str:
    a, b, c = float(a), float(b), float(c)
    d = b * b - 4 * a * c
    if a == 0 or d < 0:
        return "No real roots"
    r = math.sqrt(d)
    return sorted({_num((-b - r) / (2 * a)), _num((-b + r) / (2 * a))})


def average(numbers: list[float], kind: str = "mean") -> float | str:
    if kind not in ("mean", "median"):
        return "Error: kind must be mean or median"
    if not numbers:
        return 0
    if kind == "median":
        s, mid = sorted(numbers), len(numbers) // 2
        return _num(s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2)
    return _num(sum(numbers) / len(numbers))


def get_movie_info(title: str, year: int | None = None) -> str:
    h = _h("movie", title, year)
    genres = ("drama", "comedy", "science fiction", "thriller", "animation", "documentary")
    y = year if year else 1970 + h % 55
    return f"{title} ({y}): {genres[(h >> 8) % len(genres)]}, rated {5 + (h >> 16) % 50 / 10:.1f}/10"


def generate_password(length: int, include_symbols: bool = True) -> str:
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789" + (
        "!@#$%&*" if include_symbols else ""
    )
    h = _h("pw", length, include_symbols)
    out = []
    for _ in range(max(4, min(int(length), 64))):
        out.append(alphabet[h % len(alphabet)])
        h = _h(h)
    return "".join(out)


def define_word(word: str) -> str:
    return f"{word}: see dictionary entry {_h('dict', word) % 90000 + 10000}."


def update_user_profile(user_id: int, profile: dict[str, Any]) -> str:
    unknown = sorted(set(profile) - set(PROFILE_FIELDS))
    if unknown:
        return f"Error: unknown profile fields {unknown}; use any of {', '.join(PROFILE_FIELDS)}"
    fields = ", ".join(sorted(profile))
    return f"User {int(user_id)} updated: {fields}."


def get_distance(origin: str, destination: str, mode: str = "driving") -> str:
    km = 5 + _h("dist", origin, destination) % 2500
    return f"{origin} to {destination}: {km} km by {mode}"


# ---- the registry -------------------------------------------------------------------------------

_NUM, _INT, _STR, _BOOL = "number", "integer", "string", "boolean"

# update_user_profile's fields: its schema's `properties`, and the names it accepts (others are refused)
PROFILE_PROPERTIES = {
    "name": _p(_STR, "full name"),
    "age": _p(_INT, "age in years"),
    "email": _p(_STR, "email address"),
    "city": _p(_STR, "home city"),
}
PROFILE_FIELDS = tuple(PROFILE_PROPERTIES)

REGISTRY: dict[str, tuple[dict[str, Any], ToolFn]] = {
    s["name"]: (s, fn)
    for s, fn in (
        (
            _spec(
                "get_flight_number",
                "Get the flight number between two cities on a date.",
                {
                    "departure": _p(_STR, "departure city"),
                    "destination": _p(_STR, "destination city"),
                    "date": _p(_STR, "date, YYYY-MM-DD"),
                },
                ["departure", "destination", "date"],
            ),
            get_flight_number,
        ),
        (
            _spec(
                "get_ticket_price",
                "Get the ticket price of a flight on a date.",
                {"flight_number": _p(_STR, "flight number"), "date": _p(_STR, "date, YYYY-MM-DD")},
                ["flight_number", "date"],
            ),
            get_ticket_price,
        ),
        (
            _spec(
                "calculator",
                "Compute a operator b for one binary operator.",
                {
                    "a": _p(_NUM, "first operand"),
                    "b": _p(_NUM, "second operand"),
                    "operator": _p(_STR, "the operator", enum=["+", "-", "*", "/"]),
                },
                ["a", "b", "operator"],
            ),
            calculator,
        ),
        (
            {  # lagent 0.2.4's ArxivSearch toolkit API, described as lagent describes it
                **_spec(
                    "ArxivSearch.get_arxiv_article_information",
                    "Run Arxiv search and get the article meta information.",
                    {"query": _p(_STR, "the content of search query")},
                    ["query"],
                ),
                "return_data": [
                    {"name": "content", "description": "a list of 3 arxiv search papers", "type": "STRING"}
                ],
            },
            arxiv_search,
        ),
        (
            _spec(
                "get_weather",
                "Get the current weather in a city.",
                {
                    "city": _p(_STR, "city name"),
                    "unit": _p(_STR, "temperature unit", enum=["celsius", "fahrenheit"], default="celsius"),
                },
                ["city"],
            ),
            get_weather,
        ),
        (
            _spec(
                "convert_currency",
                "Convert an amount of money between currencies.",
                {
                    "amount": _p(_NUM, "amount to convert"),
                    "from_currency": _p(_STR, "ISO code, e.g. USD"),
                    "to_currency": _p(_STR, "ISO code, e.g. EUR"),
                },
                ["amount", "from_currency", "to_currency"],
            ),
            convert_currency,
        ),
        (
            _spec(
                "convert_length",
                "Convert a length between units.",
                {
                    "value": _p(_NUM, "the length"),
                    "from_unit": _p(_STR, "unit", enum=list(_LENGTH)),
                    "to_unit": _p(_STR, "unit", enum=list(_LENGTH)),
                },
                ["value", "from_unit", "to_unit"],
            ),
            convert_length,
        ),
        (
            _spec(
                "get_stock_price",
                "Get the latest price of a stock.",
                {
                    "symbol": _p(_STR, "ticker symbol"),
                    "currency": _p(_STR, "ISO code of the quote currency", default="USD"),
                },
                ["symbol"],
            ),
            get_stock_price,
        ),
        (
            _spec(
                "translate_text",
                "Translate text into another language.",
                {
                    "text": _p(_STR, "text to translate"),
                    "target_language": _p(_STR, "target language", enum=list(_LANG_PREFIX)),
                },
                ["text", "target_language"],
            ),
            translate_text,
        ),
        (
            _spec(
                "search_web",
                "Search the web.",
                {"query": _p(_STR, "search terms"), "max_results": _p(_INT, "number of results", default=3)},
                ["query"],
            ),
            search_web,
        ),
        (
            _spec(
                "send_email",
                "Send an email.",
                {
                    "to": _p(_STR, "recipient address"),
                    "subject": _p(_STR, "subject line"),
                    "body": _p(_STR, "message text"),
                    "cc": _p("array", "addresses to copy", items={"type": _STR}),
                },
                ["to", "subject", "body"],
            ),
            send_email,
        ),
        (
            _spec(
                "create_calendar_event",
                "Add an event to the calendar.",
                {
                    "title": _p(_STR, "event title"),
                    "date": _p(_STR, "YYYY-MM-DD"),
                    "duration_minutes": _p(_INT, "length in minutes", default=60),
                    "attendees": _p("array", "names of the people invited", items={"type": _STR}),
                },
                ["title", "date"],
            ),
            create_calendar_event,
        ),
        (
            _spec(
                "set_timer",
                "Start a countdown timer.",
                {
                    "minutes": _p(_INT, "duration in minutes"),
                    "label": _p(_STR, "timer name", default="timer"),
                },
                ["minutes"],
            ),
            set_timer,
        ),
        (
            _spec("get_timezone", "Get the UTC offset of a city.", {"city": _p(_STR, "city name")}, ["city"]),
            get_timezone,
        ),
        (
            _spec(
                "calculate_bmi",
                "Compute the body mass index.",
                {"weight_kg": _p(_NUM, "weight in kg"), "height_m": _p(_NUM, "height in meters")},
                ["weight_kg", "height_m"],
            ),
            calculate_bmi,
        ),
        (
            _spec(
                "finance.compound_interest",
                "Final balance with compound interest.",
                {
                    "principal": _p(_NUM, "initial amount"),
                    "rate": _p(_NUM, "annual rate as a fraction"),
                    "years": _p(_INT, "number of years"),
                    "compounds_per_year": _p(_INT, "compounding periods per year", default=1),
                },
                ["principal", "rate", "years"],
            ),
            compound_interest,
        ),
        (
            _spec(
                "math.is_prime", "Check whether an integer is prime.", {"n": _p(_INT, "the integer")}, ["n"]
            ),
            is_prime,
        ),
        (
            _spec(
                "sort_numbers",
                "Sort a list of numbers.",
                {
                    "numbers": _p("array", "numbers to sort", items={"type": _NUM}),
                    "descending": _p(_BOOL, "largest first", default=False),
                },
                ["numbers"],
            ),
            sort_numbers,
        ),
        (
            _spec(
                "word_count",
                "Count the words in a text.",
                {
                    "text": _p(_STR, "the text"),
                    "unique": _p(_BOOL, "count each distinct word once", default=False),
                },
                ["text"],
            ),
            word_count,
        ),
        (
            _spec("reverse_string", "Reverse a string.", {"text": _p(_STR, "the text")}, ["text"]),
            reverse_string,
        ),
        (
            _spec(
                "days_between",
                "Number of days between two dates.",
                {
                    "start_date": _p(_STR, "YYYY-MM-DD"),
                    "end_date": _p(_STR, "YYYY-MM-DD"),
                    "inclusive": _p(_BOOL, "count both the start and the end day", default=False),
                },
                ["start_date", "end_date"],
            ),
            days_between,
        ),
        (
            _spec(
                "get_population",
                "Get the population of a country.",
                {
                    "country": _p(_STR, "country name"),
                    "year": _p(_INT, "year of the estimate", default=2024),
                },
                ["country"],
            ),
            get_population,
        ),
        (
            _spec(
                "find_restaurants",
                "Find restaurants in a city.",
                {
                    "city": _p(_STR, "city name"),
                    "cuisine": _p(_STR, "type of food"),
                    "max_price": _p(_INT, "price level 1-4", default=3),
                    "features": _p(
                        "array", "required features", items={"type": _STR, "enum": list(RESTAURANT_FEATURES)}
                    ),
                },
                ["city", "cuisine"],
            ),
            find_restaurants,
        ),
        (
            _spec(
                "book_hotel",
                "Book a hotel room.",
                {
                    "city": _p(_STR, "city name"),
                    "check_in": _p(_STR, "YYYY-MM-DD"),
                    "nights": _p(_INT, "number of nights"),
                    "guests": _p(_INT, "number of guests", default=1),
                },
                ["city", "check_in", "nights"],
            ),
            book_hotel,
        ),
        (
            _spec("math.factorial", "Compute n factorial.", {"n": _p(_INT, "a non-negative integer")}, ["n"]),
            factorial,
        ),
        (
            _spec(
                "math.gcd",
                "Greatest common divisor of two integers.",
                {"a": _p(_INT, "first integer"), "b": _p(_INT, "second integer")},
                ["a", "b"],
            ),
            gcd,
        ),
        (
            _spec(
                "geometry.circle_area",
                "Area of a circle.",
                {
                    "radius": _p(_NUM, "the radius"),
                    "decimals": _p(_INT, "decimal places of the result", default=2),
                },
                ["radius"],
            ),
            circle_area,
        ),
        (
            _spec(
                "geometry.triangle_area",
                "Area of a triangle.",
                {"base": _p(_NUM, "base length"), "height": _p(_NUM, "height")},
                ["base", "height"],
            ),
            triangle_area,
        ),
        (
            _spec(
                "physics.calculate_velocity",
                "Average velocity from distance and time.",
                {"distance": _p(_NUM, "distance in meters"), "time": _p(_NUM, "time in seconds")},
                ["distance", "time"],
            ),
            calculate_velocity,
        ),
        (
            _spec(
                "algebra.solve_quadratic",
                "Real roots of a*x^2 + b*x + c = 0.",
                {"a": _p(_NUM, "x^2 coefficient"), "b": _p(_NUM, "x coefficient"), "c": _p(_NUM, "constant")},
                ["a", "b", "c"],
            ),
            solve_quadratic,
        ),
        (
            _spec(
                "statistics.average",
                "Mean or median of a list of numbers.",
                {
                    "numbers": _p("array", "the numbers", items={"type": _NUM}),
                    "kind": _p(_STR, "which average", enum=["mean", "median"], default="mean"),
                },
                ["numbers"],
            ),
            average,
        ),
        (
            _spec(
                "get_movie_info",
                "Look up a movie.",
                {"title": _p(_STR, "movie title"), "year": _p(_INT, "release year (optional)")},
                ["title"],
            ),
            get_movie_info,
        ),
        (
            _spec(
                "generate_password",
                "Generate a random password.",
                {
                    "length": _p(_INT, "number of characters"),
                    "include_symbols": _p(_BOOL, "use symbols", default=True),
                },
                ["length"],
            ),
            generate_password,
        ),
        (
            _spec(
                "define_word", "Look up the definition of a word.", {"word": _p(_STR, "the word")}, ["word"]
            ),
            define_word,
        ),
        (
            _spec(
                "update_user_profile",
                "Update fields of a user's profile.",
                {
                    "user_id": _p(_INT, "the user's id"),
                    "profile": _p(
                        "object",
                        "the fields to change; leave out the others",
                        properties=PROFILE_PROPERTIES,
                    ),
                },
                ["user_id", "profile"],
            ),
            update_user_profile,
        ),
        (
            _spec(
                "get_distance",
                "Travel distance between two places.",
                {
                    "origin": _p(_STR, "start"),
                    "destination": _p(_STR, "end"),
                    "mode": _p(
                        _STR, "travel mode", enum=["driving", "walking", "cycling"], default="driving"
                    ),
                },
                ["origin", "destination"],
            ),
            get_distance,
        ),
    )
}


def spec(name: str) -> dict[str, Any]:
    """The JSON-schema spec of one tool."""
    return REGISTRY[name][0]


def execute(name: str, args: dict[str, Any]) -> Any:
    """Run tool `name` with keyword arguments `args`; errors come back as text, like a real tool API."""
    if name not in REGISTRY:
        return f"Error: unknown tool {name!r}"
    try:
        return REGISTRY[name][1](**args)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        return f"Error: {exc}"
