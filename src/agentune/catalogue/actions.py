"""The catalogue's actions tools: each tool's function, schema (from its signature and docstring), request
generator and group, in one place (`catalogue.tool`)."""

from __future__ import annotations

from typing import Annotated, Any

from agentune.catalogue.common import stable_int
from agentune.catalogue.phrasing import CITIES, DOMAINS, EVENTS, NAMES, date_said, pick
from agentune.catalogue.tool import Draw, Task, tool

# update_user_profile's fields: its schema's `properties`, and the names it accepts (others are refused)
PROFILE_PROPERTIES = {
    "name": {"type": "string", "description": "full name"},
    "age": {"type": "integer", "description": "age in years"},
    "email": {"type": "string", "description": "email address"},
    "city": {"type": "string", "description": "home city"},
}


PROFILE_FIELDS = tuple(PROFILE_PROPERTIES)


@tool("actions", order=10)
def send_email(to: str, subject: str, body: str, cc: list[str] | None = None) -> str:
    """Send an email.

    Args:
        to: recipient address
        subject: subject line
        body: message text
        cc: addresses to copy
    """
    copies = f", cc {', '.join(cc)}" if cc else ""
    return f"Email sent to {to}{copies} (id msg-{stable_int('mail', to, subject, body, cc) % 100000:05d})."


@send_email.requests
def t_email(r: Draw) -> Task:
    to = f"{r.choice(NAMES)}@{r.choice(DOMAINS)}"
    ev = r.choice(EVENTS)
    subject = f"{ev.capitalize()}"
    body = r.choice(
        (f"The {ev} is moved to Friday.", f"Please confirm the {ev}.", f"Reminder: {ev} tomorrow.")
    )
    args: dict[str, Any] = {"to": to, "subject": subject, "body": body}
    q = pick(
        r,
        f"Send an email to {to} with subject '{subject}' saying: {body}",
        f'Email {to}, subject "{subject}", body: {body}',
    )
    if r.random() < 0.3:
        names = r.sample([n for n in NAMES if n not in to], r.randint(1, 2))
        args["cc"] = [f"{n}@{r.choice(DOMAINS)}" for n in names]
        q += f" Copy {' and '.join(args['cc'])}."
    return Task(
        tool="send_email",
        question=q,
        args=args,
        thought=f"I will send the email to {to}.",
        answer=lambda res: f"Done. {res}",
        capability="send emails",
    )


@tool("actions", order=11)
def create_calendar_event(
    title: str, date: str, duration_minutes: int = 60, attendees: list[str] | None = None
) -> str:
    """Add an event to the calendar.

    Args:
        title: event title
        date: YYYY-MM-DD
        duration_minutes: length in minutes
        attendees: names of the people invited
    """
    people = f" with {', '.join(attendees)}" if attendees else ""
    return f"Event '{title}' created on {date} for {int(duration_minutes)} minutes{people}."


@create_calendar_event.requests
def t_calendar(r: Draw) -> Task:
    title = r.choice(EVENTS)
    iso, said = date_said(r)
    args: dict[str, Any] = {"title": title, "date": iso}
    dur = r.choice((0, 30, 45, 90, 120))
    tail = f" for {dur} minutes" if dur else ""
    if dur:
        args["duration_minutes"] = dur
    if r.random() < 0.3:
        args["attendees"] = [n.capitalize() for n in r.sample(NAMES, r.randint(1, 3))]
        tail += f" with {' and '.join(args['attendees'])}"
    q = pick(r, f"Add '{title}' to my calendar on {said}{tail}.", f"Schedule a {title} on {said}{tail}.")
    return Task(
        tool="create_calendar_event",
        question=q,
        args=args,
        thought=f"I will create the event '{title}' on {iso}.",
        answer=lambda res: f"{res}",
        capability="manage the calendar",
    )


@tool("actions", order=12)
def set_timer(minutes: int, label: str = "timer") -> str:
    """Start a countdown timer.

    Args:
        minutes: duration in minutes
        label: timer name
    """
    return f"Timer '{label}' set for {int(minutes)} minutes."


@set_timer.requests
def t_timer(r: Draw) -> Task:
    m = r.randint(1, 120)
    args: dict[str, Any] = {"minutes": m}
    label = r.choice(("", "", "tea", "pasta", "workout", "laundry", "break"))
    if label:
        args["label"] = label
    q = (
        f"Set a {label} timer for {m} minutes."
        if label
        else pick(r, f"Set a timer for {m} minutes.", f"Start a {m} minute countdown.")
    )
    return Task(
        tool="set_timer",
        question=q,
        args=args,
        thought=f"I will set a timer for {m} minutes.",
        answer=lambda res: f"{res}",
        capability="set timers",
    )


@tool("actions", order=32)
def generate_password(length: int, include_symbols: bool = True) -> str:
    """Generate a random password.

    Args:
        length: number of characters
        include_symbols: use symbols
    """
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789" + (
        "!@#$%&*" if include_symbols else ""
    )
    h = stable_int("pw", length, include_symbols)
    out = []
    for _ in range(max(4, min(int(length), 64))):
        out.append(alphabet[h % len(alphabet)])
        h = stable_int(h)
    return "".join(out)


@generate_password.requests
def t_password(r: Draw) -> Task:
    n = r.randint(8, 32)
    args: dict[str, Any] = {"length": n}
    sym = r.choice((None, True, False))
    tail = "" if sym is None else (" with symbols" if sym else " without symbols")
    if sym is not None:
        args["include_symbols"] = sym
    q = pick(r, f"Generate a {n}-character password{tail}.", f"Make me a password of length {n}{tail}.")
    return Task(
        tool="generate_password",
        question=q,
        args=args,
        thought=f"I will generate a {n}-character password.",
        answer=lambda res: f"Your password: {res}",
        capability="generate passwords",
    )


@tool("actions", order=34)
def update_user_profile(
    user_id: int, profile: Annotated[dict[str, Any], {"properties": PROFILE_PROPERTIES}]
) -> str:
    """Update fields of a user's profile.

    Args:
        user_id: the user's id
        profile: the fields to change; leave out the others
    """
    unknown = sorted(set(profile) - set(PROFILE_FIELDS))
    if unknown:
        return f"Error: unknown profile fields {unknown}; use any of {', '.join(PROFILE_FIELDS)}"
    fields = ", ".join(sorted(profile))
    return f"User {int(user_id)} updated: {fields}."


@update_user_profile.requests
def t_profile(r: Draw) -> Task:
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
        tool="update_user_profile",
        question=q,
        args={"user_id": uid, "profile": profile},
        thought=f"I will update user {uid}.",
        answer=lambda res: f"{res}",
        capability="update user profiles",
    )
