"""The catalogue's math tools: each tool's function, schema (from its signature and docstring), request
generator and group, in one place (`catalogue.tool`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date as _date
from typing import Any, Literal

from agentune.catalogue.common import RATES, round_result
from agentune.catalogue.phrasing import (
    CURRENCIES,
    LENGTH_UNITS,
    amount,
    date_said,
    fmt,
    pick,
    say_amount,
    say_list,
    say_rate,
)
from agentune.catalogue.tool import Draw, Task, tool

_OPS: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


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


@tool("math", order=2)
def calculator(a: float, b: float, operator: Literal["+", "-", "*", "/"]) -> int | float | str:
    """Compute a operator b for one binary operator.

    Args:
        a: first operand
        b: second operand
        operator: the operator
    """
    if operator not in _OPS:
        return f"Error: unknown operator {operator!r}; use one of + - * /"
    if operator == "/" and b == 0:
        return "Error: division by zero"
    return round_result(_OPS[operator](float(a), float(b)))


@calculator.requests
def t_calc(r: Draw) -> Task:
    op = r.choice("+-*/")
    a = r.choice((r.randint(1, 100), r.randint(100, 99999), round(r.uniform(0, 1000), 2)))
    b = r.choice((r.randint(1, 100), r.randint(2, 9999), round(r.uniform(0.5, 100), 1)))
    word = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}[op]
    q = pick(
        r,
        f"What is {a} {op} {b}?",
        f"Calculate {a} {word} {b}.",
        f"Compute {a} {op} {b} please.",
        f"What's {a} {word} {b}?",
    )
    return Task(
        tool="calculator",
        question=q,
        args={"a": a, "b": b, "operator": op},
        thought=f"I will compute {a} {op} {b}.",
        answer=lambda res: f"{a} {op} {b} = {res}.",
        capability="do arithmetic",
    )


@tool("math", order=5)
def convert_currency(amount: float, from_currency: str, to_currency: str) -> float | str:
    """Convert an amount of money between currencies.

    Args:
        amount: amount to convert
        from_currency: ISO code, e.g. USD
        to_currency: ISO code, e.g. EUR
    """
    f, t = from_currency.upper(), to_currency.upper()
    if f not in RATES or t not in RATES:
        return f"Error: unsupported currency; supported: {', '.join(sorted(RATES))}"
    return round(float(amount) / RATES[f] * RATES[t], 2)


@convert_currency.requests
def t_currency(r: Draw) -> Task:
    amt = r.choice((amount(r), amount(r), r.choice((25_000, 300_000, 1_200_000, 4_000_000))))
    f, t = r.sample(CURRENCIES, 2)
    said = say_amount(r, amt)
    q = pick(
        r,
        f"Convert {said} {f} to {t}.",
        f"How much is {said} {f} in {t}?",
        f"I have {said} {f}. What is that in {t}?",
    )
    return Task(
        tool="convert_currency",
        question=q,
        args={"amount": amt, "from_currency": f, "to_currency": t},
        thought=f"I will convert {amt} {f} to {t}.",
        answer=lambda res: f"{amt} {f} is {res} {t}.",
        capability="convert currencies",
    )


@tool("math", order=6)
def convert_length(
    value: float,
    from_unit: Literal["mm", "cm", "m", "km", "inch", "foot", "yard", "mile"],
    to_unit: Literal["mm", "cm", "m", "km", "inch", "foot", "yard", "mile"],
) -> float | str:
    """Convert a length between units.

    Args:
        value: the length
        from_unit: unit
        to_unit: unit
    """
    if from_unit not in _LENGTH or to_unit not in _LENGTH:
        return f"Error: unit must be one of {', '.join(_LENGTH)}"
    return round_result(round(float(value) * _LENGTH[from_unit] / _LENGTH[to_unit], 4))


@convert_length.requests
def t_length(r: Draw) -> Task:
    v = r.choice((r.randint(1, 500), round(r.uniform(0.1, 100), 1)))
    f, t = r.sample(LENGTH_UNITS, 2)
    q = pick(r, f"Convert {v} {f} to {t}.", f"How many {t} is {v} {f}?", f"{v} {f} in {t}?")
    return Task(
        tool="convert_length",
        question=q,
        args={"value": v, "from_unit": f, "to_unit": t},
        thought=f"I will convert {v} {f} into {t}.",
        answer=lambda res: f"{v} {f} = {res} {t}.",
        capability="convert lengths",
    )


@tool("math", order=14)
def calculate_bmi(weight_kg: float, height_m: float) -> float:
    """Compute the body mass index.

    Args:
        weight_kg: weight in kg
        height_m: height in meters
    """
    return round(float(weight_kg) / float(height_m) ** 2, 1)


@calculate_bmi.requests
def t_bmi(r: Draw) -> Task:
    w, h = r.randint(40, 130), round(r.uniform(1.45, 2.05), 2)
    q = pick(
        r, f"I weigh {w} kg and I am {h} m tall. What is my BMI?", f"Calculate the BMI for {w} kg and {h} m."
    )
    return Task(
        tool="calculate_bmi",
        question=q,
        args={"weight_kg": w, "height_m": h},
        thought="I will compute the BMI.",
        answer=lambda res: f"The BMI is {res}.",
        capability="compute BMI",
    )


@tool("math", order=15, name="finance.compound_interest")
def compound_interest(principal: float, rate: float, years: int, compounds_per_year: int = 1) -> float:
    """Final balance with compound interest.

    Args:
        principal: initial amount
        rate: annual rate as a fraction
        years: number of years
        compounds_per_year: compounding periods per year
    """
    n = int(compounds_per_year)
    return round(float(principal) * (1 + float(rate) / n) ** (n * int(years)), 2)


@compound_interest.requests
def t_interest(r: Draw) -> Task:
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
    q = f"What will {say_amount(r, p)} dollars grow to at a {say_rate(r, rate)} annual rate over {y} years{tail}?"
    return Task(
        tool="finance.compound_interest",
        question=q,
        args=args,
        thought="I will compute the compound interest.",
        answer=lambda res: f"The final balance is {res} dollars.",
        capability="compute interest",
    )


@tool("math", order=16, name="math.is_prime")
def is_prime(n: int) -> bool:
    """Check whether an integer is prime.

    Args:
        n: the integer
    """
    n = int(n)
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


@is_prime.requests
def t_prime(r: Draw) -> Task:
    n = r.randint(2, 10000)
    q = pick(r, f"Is {n} a prime number?", f"Check if {n} is prime.")
    return Task(
        tool="math.is_prime",
        question=q,
        args={"n": n},
        thought=f"I will check whether {n} is prime.",
        answer=lambda res: f"{n} is {'a prime' if res is True else 'not a prime'} number.",
        capability="check primes",
    )


@tool("math", order=17)
def sort_numbers(numbers: list[float], descending: bool = False) -> list[float]:
    """Sort a list of numbers.

    Args:
        numbers: numbers to sort
        descending: largest first
    """
    return sorted(numbers, reverse=bool(descending))


@sort_numbers.requests
def t_sort(r: Draw) -> Task:
    nums = [r.randint(-50, 200) for _ in range(r.randint(3, 7))]
    desc = r.random() < 0.4
    args: dict[str, Any] = {"numbers": nums}
    if desc:
        args["descending"] = True
    order = "from largest to smallest" if desc else "in ascending order"
    q = f"Sort these numbers {order}: {say_list(r, nums)}."
    return Task(
        tool="sort_numbers",
        question=q,
        args=args,
        thought="I will sort the numbers.",
        answer=lambda res: f"Sorted: {fmt(res)}.",
        capability="sort numbers",
    )


@tool("math", order=20)
def days_between(start_date: str, end_date: str, inclusive: bool = False) -> int | str:
    """Number of days between two dates.

    Args:
        start_date: YYYY-MM-DD
        end_date: YYYY-MM-DD
        inclusive: count both the start and the end day
    """
    try:
        days = (_date.fromisoformat(end_date) - _date.fromisoformat(start_date)).days
    except ValueError:
        return "Error: dates must be YYYY-MM-DD"
    return days + 1 if inclusive else days


@days_between.requests
def t_days(r: Draw) -> Task:
    (a, sa), (b, sb) = sorted((date_said(r), date_said(r)))
    args: dict[str, Any] = {"start_date": a, "end_date": b}
    tail = ""
    if r.random() < 0.25:
        args["inclusive"] = True
        tail = ", counting both days"
    q = pick(
        r, f"How many days are there between {sa} and {sb}{tail}?", f"Count the days from {sa} to {sb}{tail}."
    )
    return Task(
        tool="days_between",
        question=q,
        args=args,
        thought=f"I will count the days from {a} to {b}.",
        answer=lambda res: f"There are {res} days between {a} and {b}.",
        capability="count days between dates",
    )


@tool("math", order=24, name="math.factorial")
def factorial(n: int) -> int | str:
    """Compute n factorial.

    Args:
        n: a non-negative integer
    """
    n = int(n)
    if n < 0 or n > 50:
        return "Error: n must be between 0 and 50"
    return math.factorial(n)


@factorial.requests
def t_factorial(r: Draw) -> Task:
    n = r.randint(0, 20)
    q = pick(r, f"What is the factorial of {n}?", f"Compute {n}!.", f"Calculate {n} factorial.")
    return Task(
        tool="math.factorial",
        question=q,
        args={"n": n},
        thought=f"I will compute {n} factorial.",
        answer=lambda res: f"{n}! = {res}.",
        capability="compute factorials",
    )


@tool("math", order=25, name="math.gcd")
def gcd(a: int, b: int) -> int:
    """Greatest common divisor of two integers.

    Args:
        a: first integer
        b: second integer
    """
    return math.gcd(int(a), int(b))


@gcd.requests
def t_gcd(r: Draw) -> Task:
    k = r.randint(1, 30)
    a, b = k * r.randint(1, 60), k * r.randint(1, 60)
    q = pick(r, f"What is the greatest common divisor of {a} and {b}?", f"Find the GCD of {a} and {b}.")
    return Task(
        tool="math.gcd",
        question=q,
        args={"a": a, "b": b},
        thought=f"I will compute gcd({a}, {b}).",
        answer=lambda res: f"The GCD of {a} and {b} is {res}.",
        capability="compute GCDs",
    )


@tool("math", order=26, name="geometry.circle_area")
def circle_area(radius: float, decimals: int = 2) -> float:
    """Area of a circle.

    Args:
        radius: the radius
        decimals: decimal places of the result
    """
    return round(math.pi * float(radius) ** 2, int(decimals))


@circle_area.requests
def t_circle(r: Draw) -> Task:
    rad = r.choice((r.randint(1, 50), round(r.uniform(0.5, 20), 1)))
    args: dict[str, Any] = {"radius": rad}
    dec = r.choice((None, None, None, 0, 1, 4))
    tail = "" if dec is None else f", rounded to {dec} decimal places"
    if dec is not None:
        args["decimals"] = dec
    q = pick(
        r,
        f"What is the area of a circle with radius {rad}{tail}?",
        f"Calculate the area of a circle of radius {rad} units{tail}.",
    )
    return Task(
        tool="geometry.circle_area",
        question=q,
        args=args,
        thought="I will compute the circle's area.",
        answer=lambda res: f"The area is {res} square units.",
        capability="compute circle areas",
    )


@tool("math", order=27, name="geometry.triangle_area")
def triangle_area(base: float, height: float) -> float:
    """Area of a triangle.

    Args:
        base: base length
        height: height
    """
    return round_result(0.5 * float(base) * float(height))


@triangle_area.requests
def t_triangle(r: Draw) -> Task:
    b, h = r.randint(1, 100), r.randint(1, 100)
    q = pick(
        r,
        f"Find the area of a triangle with a base of {b} units and height of {h} units.",
        f"What is the area of a triangle with base {b} and height {h}?",
    )
    return Task(
        tool="geometry.triangle_area",
        question=q,
        args={"base": b, "height": h},
        thought="I will compute the triangle's area.",
        answer=lambda res: f"The area is {res} square units.",
        capability="compute triangle areas",
    )


@tool("math", order=28, name="physics.calculate_velocity")
def calculate_velocity(distance: float, time: float) -> float:
    """Average velocity from distance and time.

    Args:
        distance: distance in meters
        time: time in seconds
    """
    return round_result(round(float(distance) / float(time), 3))


@calculate_velocity.requests
def t_velocity(r: Draw) -> Task:
    d, t = r.randint(10, 5000), r.randint(1, 600)
    q = pick(
        r,
        f"An object travels {d} meters in {t} seconds. What is its velocity?",
        f"Calculate the average velocity for {d} m covered in {t} s.",
    )
    return Task(
        tool="physics.calculate_velocity",
        question=q,
        args={"distance": d, "time": t},
        thought="I will compute the velocity.",
        answer=lambda res: f"The average velocity is {res} m/s.",
        capability="compute velocities",
    )


@tool("math", order=29, name="algebra.solve_quadratic")
def solve_quadratic(a: float, b: float, c: float) -> list[float] | str:
    """Real roots of a*x^2 + b*x + c = 0.

    Args:
        a: x^2 coefficient
        b: x coefficient
        c: constant
    """
    a, b, c = float(a), float(b), float(c)
    d = b * b - 4 * a * c
    if a == 0 or d < 0:
        return "No real roots"
    r = math.sqrt(d)
    return sorted({round_result((-b - r) / (2 * a)), round_result((-b + r) / (2 * a))})


@solve_quadratic.requests
def t_quadratic(r: Draw) -> Task:
    x1, x2, a = r.randint(-9, 9), r.randint(-9, 9), r.choice((1, 1, 2, 3))
    b, c = -a * (x1 + x2), a * x1 * x2
    q = pick(
        r,
        f"Solve the quadratic equation with a={a}, b={b}, c={c}.",
        f"Find the roots of {a}x^2 + {b}x + {c} = 0.",
    )
    return Task(
        tool="algebra.solve_quadratic",
        question=q,
        args={"a": a, "b": b, "c": c},
        thought="I will solve the quadratic equation.",
        answer=lambda res: f"The roots are {fmt(res)}.",
        capability="solve equations",
    )


@tool("math", order=30, name="statistics.average")
def average(numbers: list[float], kind: Literal["mean", "median"] = "mean") -> float | str:
    """Mean or median of a list of numbers.

    Args:
        numbers: the numbers
        kind: which average
    """
    if kind not in ("mean", "median"):
        return "Error: kind must be mean or median"
    if not numbers:
        return 0
    if kind == "median":
        s, mid = sorted(numbers), len(numbers) // 2
        return round_result(s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2)
    return round_result(sum(numbers) / len(numbers))


@average.requests
def t_average(r: Draw) -> Task:
    nums = [r.randint(0, 100) for _ in range(r.randint(3, 6))]
    if r.random() < 0.3:
        said = say_list(r, nums)
        q = pick(r, f"What is the median of {said}?", f"Find the median of these numbers: {said}.")
        args, what = {"numbers": nums, "kind": "median"}, "median"
    else:
        said = say_list(r, nums)
        q = pick(r, f"What is the average of {said}?", f"Compute the mean of these numbers: {said}.")
        args, what = {"numbers": nums}, "mean"
    return Task(
        tool="statistics.average",
        question=q,
        args=args,
        thought=f"I will compute the {what}.",
        answer=lambda res: f"The {what} is {res}.",
        capability="compute averages",
    )
