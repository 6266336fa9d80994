"""Word lists and the ways requests say values, shared by the catalogue's request generators."""

from __future__ import annotations

from typing import Any

from agentune.catalogue.tool import Draw

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


def date_said(r: Draw) -> tuple[str, str]:
    """A date as (ISO argument, how the user writes it)."""
    y, m, d = r.randint(2024, 2026), r.randint(1, 12), r.randint(1, 28)
    iso = f"{y:04d}-{m:02d}-{d:02d}"
    return iso, iso if r.random() < 0.75 else f"{MONTHS[m - 1]} {d}, {y}"


def amount(r: Draw) -> int | float:
    return r.choice((r.randint(1, 999), r.randint(10, 20000), round(r.uniform(1, 500), 2)))


def fmt(x: Any) -> str:
    if isinstance(x, list):
        return ", ".join(fmt(v) for v in x)
    return str(x)


def pick(r: Draw, *phrasings: str) -> str:
    return r.choice(phrasings)


def say_amount(r: Draw, x: int | float) -> str:
    """`x` as written in a request: plain, with thousands separators, or in thousands / millions."""
    if r.random() >= r.mix.spoken_share or not isinstance(x, int) or x < 1000:
        return str(x)
    for unit, word in ((1_000_000, "million"), (1_000, "thousand")):
        if x % (unit // 10) == 0 and x >= unit:
            return f"{x / unit:g} {word}"
    return f"{x:,}"


def say_rate(r: Draw, rate: float) -> str:
    """A fraction such as 0.05 as written in a request: 0.05 or 5%."""
    return f"{rate * 100:g}%" if r.random() < r.mix.spoken_share else str(rate)


def say_list(r: Draw, xs: list) -> str:
    """A list as written in a request: comma-separated or in brackets."""
    return f"[{fmt(xs)}]" if r.random() < r.mix.spoken_share else fmt(xs)
