"""The catalogue's travel tools: each tool's function, schema (from its signature and docstring), request
generator and group, in one place (`catalogue.tool`)."""

from __future__ import annotations

from typing import Any, Literal

from agentune.catalogue.common import stable_int
from agentune.catalogue.phrasing import CITIES, date_said, pick
from agentune.catalogue.tool import Draw, Task, tool

_AIRLINES = ("CA", "MU", "CZ", "HU", "LH", "AF", "BA", "UA", "DL", "NH")


@tool("travel", order=0)
def get_flight_number(departure: str, destination: str, date: str) -> str:
    """Get the flight number between two cities on a date.

    Args:
        departure: departure city
        destination: destination city
        date: date, YYYY-MM-DD
    """
    h = stable_int("flight", departure, destination, date)
    return f"{_AIRLINES[h % len(_AIRLINES)]}{1000 + (h >> 8) % 9000}"


@get_flight_number.requests
def t_flight(r: Draw) -> Task:
    dep, dst = r.sample(CITIES, 2)
    iso, said = date_said(r)
    q = pick(
        r,
        f"What is the flight number from {dep} to {dst} on {said}?",
        f"Find the flight from {dep} to {dst} on {said}.",
        f"I fly from {dep} to {dst} on {said}. Which flight is it?",
        f"Which flight goes {dep} to {dst} on {said}?",
    )
    return Task(
        tool="get_flight_number",
        question=q,
        args={"departure": dep, "destination": dst, "date": iso},
        thought=f"I need the flight number from {dep} to {dst} on {iso}.",
        answer=lambda res: f"The flight from {dep} to {dst} on {iso} is {res}.",
        capability="look up flights",
    )


@tool("travel", order=1)
def get_ticket_price(flight_number: str, date: str) -> int:
    """Get the ticket price of a flight on a date.

    Args:
        flight_number: flight number
        date: date, YYYY-MM-DD
    """
    return 80 + stable_int("price", flight_number, date) % 1200


@get_ticket_price.requests
def t_price(r: Draw) -> Task:
    fn = f"{r.choice(('CA', 'MU', 'LH', 'BA', 'UA'))}{r.randint(1000, 9999)}"
    iso, said = date_said(r)
    q = pick(
        r,
        f"How much is a ticket on flight {fn} on {said}?",
        f"What does flight {fn} cost on {said}?",
        f"Ticket price for {fn}, {said}?",
    )
    return Task(
        tool="get_ticket_price",
        question=q,
        args={"flight_number": fn, "date": iso},
        thought=f"I should look up the price of {fn} on {iso}.",
        answer=lambda res: f"A ticket on {fn} on {iso} costs {res} USD.",
        capability="look up ticket prices",
    )


@tool("travel", order=23)
def book_hotel(city: str, check_in: str, nights: int, guests: int = 1) -> str:
    """Book a hotel room.

    Args:
        city: city name
        check_in: YYYY-MM-DD
        nights: number of nights
        guests: number of guests
    """
    ref = stable_int("hotel", city, check_in, nights, guests) % 1000000
    return (
        f"Booked {int(nights)} night(s) in {city} from {check_in} for {int(guests)} guest(s), ref H{ref:06d}."
    )


@book_hotel.requests
def t_hotel(r: Draw) -> Task:
    city, (iso, said), nights = r.choice(CITIES), date_said(r), r.randint(1, 10)
    args: dict[str, Any] = {"city": city, "check_in": iso, "nights": nights}
    g = r.choice((0, 0, 2, 3, 4))
    tail = f" for {g} guests" if g else ""
    if g:
        args["guests"] = g
    q = pick(
        r,
        f"Book a hotel in {city} from {said} for {nights} nights{tail}.",
        f"I need a room in {city}, checking in {said}, {nights} nights{tail}.",
    )
    return Task(
        tool="book_hotel",
        question=q,
        args=args,
        thought=f"I will book a hotel in {city}.",
        answer=lambda res: f"{res}",
        capability="book hotels",
    )


@tool("travel", order=35)
def get_distance(
    origin: str, destination: str, mode: Literal["driving", "walking", "cycling"] = "driving"
) -> str:
    """Travel distance between two places.

    Args:
        origin: start
        destination: end
        mode: travel mode
    """
    km = 5 + stable_int("dist", origin, destination) % 2500
    return f"{origin} to {destination}: {km} km by {mode}"


@get_distance.requests
def t_distance(r: Draw) -> Task:
    a, b = r.sample(CITIES, 2)
    args: dict[str, Any] = {"origin": a, "destination": b}
    mode = r.choice(("", "", "walking", "cycling", "driving"))
    tail = f" by {mode}" if mode else ""
    if mode:
        args["mode"] = mode
    q = pick(r, f"How far is {b} from {a}{tail}?", f"What's the distance from {a} to {b}{tail}?")
    return Task(
        tool="get_distance",
        question=q,
        args=args,
        thought=f"I need the distance from {a} to {b}.",
        answer=lambda res: f"{res}.",
        capability="compute travel distances",
    )


@tool("travel", order=13)
def get_timezone(city: str) -> str:
    """Get the UTC offset of a city.

    Args:
        city: city name
    """
    offset = stable_int("tz", city) % 25 - 12
    return f"UTC{offset:+d}" if offset else "UTC"


@get_timezone.requests
def t_timezone(r: Draw) -> Task:
    city = r.choice(CITIES)
    q = pick(r, f"What time zone is {city} in?", f"What's the UTC offset of {city}?")
    return Task(
        tool="get_timezone",
        question=q,
        args={"city": city},
        thought=f"I need the time zone of {city}.",
        answer=lambda res: f"{city} is in {res}.",
        capability="look up time zones",
    )
