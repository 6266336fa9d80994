"""Formula tools: many small calculators whose names and parameter names change from record to record.

The sample's catalogue (`agentune.catalogue`) has 36 fixed tools, so a model trained on it can
learn each tool by heart instead of reading the tool list. The tools here are written as a table: each
formula has several tool names, several names per parameter, request phrasings and a true function, and
every record draws one variant. A record must then be answered by reading the offered spec: which tool
does the request need, which parameter takes which value, and whether any offered tool can do it at all
(a request for one formula with only other formulas of its subject offered is declined, the way BFCL's
irrelevance prompts offer a plausible function that cannot answer).

Every formula, name and phrasing is written here; none is taken from an evaluation set.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One parameter: its name variants (the first is the function's own), schema type, description
    and how a value is drawn. An optional parameter has a default and a phrase a request adds to ask
    for another value (`{v}` is the value)."""

    names: tuple[str, ...]
    type: str
    description: str
    draw: Callable[[random.Random], int | float]
    default: int | float | None = None
    ask: str = ""
    rate: bool = False  # a decimal rate: requests say "0.05" or "5%" alike, the call carries 0.05


@dataclass(frozen=True)
class Formula:
    names: tuple[str, ...]  # tool name variants
    description: str
    subject: str  # formulas of one subject are each other's near misses
    capability: str  # "compute cylinder volumes": what a decline says it cannot do
    params: tuple[Param, ...]
    fn: Callable[..., float]
    asks: tuple[str, ...]  # request phrasings; `{name}` is the value of the parameter `name`
    answer: str  # the Final Answer; `{r}` is the result


def _i(lo: int, hi: int) -> Callable[[random.Random], int]:
    return lambda r: r.randint(lo, hi)


def _f(lo: int, hi: int) -> Callable[[random.Random], float]:
    """A value with one decimal, an integer a third of the time."""
    return lambda r: r.randint(lo, hi) if r.random() < 0.34 else round(r.uniform(lo, hi), 1)


_DECIMALS = Param(
    ("decimals", "round_to", "precision"),
    "integer",
    "decimal places of the result",
    _i(0, 4),
    default=2,
    ask=" Round it to {v} decimal places.",
)


def _p(names: str, type_: str, description: str, draw: Callable[[random.Random], Any], **kw: Any) -> Param:
    return Param(tuple(names.split()), type_, description, draw, **kw)


def _round(x: float, decimals: int = 2) -> int | float:
    x = round(float(x), int(decimals))
    return int(x) if x.is_integer() else x


FORMULAS: tuple[Formula, ...] = (
    Formula(
        ("calculate_rectangle_area", "geometry.rectangle_area", "rectangleArea", "area_of_rectangle"),
        "Area of a rectangle from its length and width.",
        "geometry",
        "compute rectangle areas",
        (
            _p("length l len", "number", "the length", _f(2, 90)),
            _p("width w", "number", "the width", _f(1, 60)),
        ),
        lambda length, width: _round(length * width),
        (
            "What is the area of a rectangle {length} m long and {width} m wide?",
            "Find the area of a rectangle with length {length} and width {width}.",
        ),
        "The area is {r}.",
    ),
    Formula(
        ("calculate_cylinder_volume", "geometry.cylinder_volume", "cylinderVolume", "volume_of_cylinder"),
        "Volume of a cylinder from its radius and height.",
        "geometry",
        "compute cylinder volumes",
        (
            _p("radius r", "number", "the base radius", _f(1, 30)),
            _p("height h", "number", "the height", _f(1, 50)),
            _DECIMALS,
        ),
        lambda radius, height, decimals=2: _round(math.pi * radius**2 * height, decimals),
        (
            "What is the volume of a cylinder with radius {radius} cm and height {height} cm?",
            "A tank is a cylinder {height} m tall with a radius of {radius} m. How much does it hold?",
        ),
        "The volume is {r}.",
    ),
    Formula(
        ("calculate_sphere_volume", "geometry.sphere_volume", "sphereVolume"),
        "Volume of a sphere from its radius.",
        "geometry",
        "compute sphere volumes",
        (_p("radius r", "number", "the radius", _f(1, 40)), _DECIMALS),
        lambda radius, decimals=2: _round(4 / 3 * math.pi * radius**3, decimals),
        (
            "What is the volume of a sphere of radius {radius}?",
            "How big is a ball with a {radius} cm radius, in volume?",
        ),
        "The volume is {r}.",
    ),
    Formula(
        ("calculate_circumference", "geometry.circle_circumference", "circleCircumference"),
        "Circumference of a circle from its radius.",
        "geometry",
        "compute circle circumferences",
        (_p("radius r", "number", "the radius", _f(1, 100)), _DECIMALS),
        lambda radius, decimals=2: _round(2 * math.pi * radius, decimals),
        (
            "What is the circumference of a circle with radius {radius}?",
            "How long is the edge of a round table of radius {radius} cm?",
        ),
        "The circumference is {r}.",
    ),
    Formula(
        ("calculate_hypotenuse", "geometry.hypotenuse", "rightTriangleHypotenuse"),
        "Length of the hypotenuse of a right triangle from its two other sides.",
        "geometry",
        "compute hypotenuses",
        (
            _p("side_a a leg1", "number", "one short side", _i(1, 60)),
            _p("side_b b leg2", "number", "the other short side", _i(1, 60)),
            _DECIMALS,
        ),
        lambda side_a, side_b, decimals=2: _round(math.hypot(side_a, side_b), decimals),
        (
            "A right triangle has legs of {side_a} and {side_b}. How long is the hypotenuse?",
            "Find the hypotenuse for sides {side_a} and {side_b} of a right triangle.",
        ),
        "The hypotenuse is {r}.",
    ),
    Formula(
        ("calculate_trapezoid_area", "geometry.trapezoid_area", "trapezoidArea"),
        "Area of a trapezoid from its two parallel sides and height.",
        "geometry",
        "compute trapezoid areas",
        (
            _p("base1 top a", "number", "one parallel side", _i(2, 40)),
            _p("base2 bottom b", "number", "the other parallel side", _i(2, 40)),
            _p("height h", "number", "the height", _i(1, 30)),
        ),
        lambda base1, base2, height: _round((base1 + base2) / 2 * height),
        ("What is the area of a trapezoid with parallel sides {base1} and {base2} and height {height}?",),
        "The area is {r}.",
    ),
    Formula(
        ("calculate_kinetic_energy", "physics.kinetic_energy", "kineticEnergy"),
        "Kinetic energy in joules of a moving mass.",
        "physics",
        "compute kinetic energy",
        (
            _p("mass m", "number", "mass in kg", _f(1, 2000)),
            _p("velocity speed v", "number", "speed in m/s", _f(1, 80)),
        ),
        lambda mass, velocity: _round(0.5 * mass * velocity**2),
        (
            "What is the kinetic energy of a {mass} kg object moving at {velocity} m/s?",
            "A car of {mass} kg drives at {velocity} m/s. How much kinetic energy does it have?",
        ),
        "The kinetic energy is {r} J.",
    ),
    Formula(
        ("calculate_force", "physics.force", "netForce"),
        "Force in newtons from mass and acceleration.",
        "physics",
        "compute forces",
        (
            _p("mass m", "number", "mass in kg", _f(1, 500)),
            _p("acceleration a accel", "number", "acceleration in m/s^2", _f(1, 30)),
        ),
        lambda mass, acceleration: _round(mass * acceleration),
        (
            "What force accelerates a {mass} kg mass at {acceleration} m/s^2?",
            "How many newtons push {mass} kg at an acceleration of {acceleration} m/s^2?",
        ),
        "The force is {r} N.",
    ),
    Formula(
        ("calculate_density", "physics.density", "materialDensity"),
        "Density from mass and volume.",
        "physics",
        "compute densities",
        (
            _p("mass m", "number", "mass in kg", _f(1, 900)),
            _p("volume v vol", "number", "volume in cubic meters", _f(1, 50)),
            _DECIMALS,
        ),
        lambda mass, volume, decimals=2: _round(mass / volume, decimals),
        (
            "What is the density of an object of {mass} kg and {volume} cubic meters?",
            "Find the density for mass {mass} kg and volume {volume} m^3.",
        ),
        "The density is {r} kg/m^3.",
    ),
    Formula(
        ("calculate_potential_energy", "physics.potential_energy", "potentialEnergy"),
        "Gravitational potential energy in joules.",
        "physics",
        "compute potential energy",
        (
            _p("mass m", "number", "mass in kg", _f(1, 300)),
            _p("height h", "number", "height in meters", _f(1, 200)),
            _p(
                "gravity g",
                "number",
                "gravitational acceleration in m/s^2",
                lambda r: r.choice((1.6, 3.7, 24.8)),
                default=9.81,
                ask=" Use g = {v} m/s^2.",
            ),
        ),
        lambda mass, height, gravity=9.81: _round(mass * gravity * height),
        (
            "What is the potential energy of {mass} kg lifted {height} m?",
            "How much potential energy does a {mass} kg box have on a {height} m shelf?",
        ),
        "The potential energy is {r} J.",
    ),
    Formula(
        ("calculate_momentum", "physics.momentum", "linearMomentum"),
        "Momentum of a moving mass.",
        "physics",
        "compute momentum",
        (
            _p("mass m", "number", "mass in kg", _f(1, 1000)),
            _p("velocity v speed", "number", "velocity in m/s", _f(1, 60)),
        ),
        lambda mass, velocity: _round(mass * velocity),
        ("What is the momentum of {mass} kg moving at {velocity} m/s?",),
        "The momentum is {r} kg*m/s.",
    ),
    Formula(
        ("calculate_voltage", "electricity.ohms_law_voltage", "ohmsLawVoltage"),
        "Voltage from current and resistance (Ohm's law).",
        "physics",
        "compute voltages",
        (
            _p("current i amps", "number", "current in amperes", _f(1, 20)),
            _p("resistance r ohms", "number", "resistance in ohms", _f(1, 500)),
        ),
        lambda current, resistance: _round(current * resistance),
        (
            "What voltage drives {current} A through {resistance} ohms?",
            "Find the voltage across a {resistance} ohm resistor carrying {current} amps.",
        ),
        "The voltage is {r} V.",
    ),
    Formula(
        ("calculate_electric_power", "electricity.power", "electricPower"),
        "Electric power in watts from voltage and current.",
        "physics",
        "compute electric power",
        (
            _p("voltage v volts", "number", "voltage in volts", _f(1, 400)),
            _p("current i amps", "number", "current in amperes", _f(1, 30)),
        ),
        lambda voltage, current: _round(voltage * current),
        ("How much power does a device use at {voltage} V and {current} A?",),
        "The power is {r} W.",
    ),
    Formula(
        ("calculate_travel_time", "physics.travel_time", "travelTime"),
        "Time needed to cover a distance at a constant speed.",
        "physics",
        "compute travel times",
        (
            _p("distance d dist", "number", "distance in km", _f(5, 2000)),
            _p("speed v velocity", "number", "speed in km/h", _f(5, 900)),
            _DECIMALS,
        ),
        lambda distance, speed, decimals=2: _round(distance / speed, decimals),
        (
            "How many hours does it take to travel {distance} km at {speed} km/h?",
            "At {speed} km/h, how long is a {distance} km trip?",
        ),
        "It takes {r} hours.",
    ),
    Formula(
        ("calculate_acceleration", "physics.acceleration", "averageAcceleration"),
        "Average acceleration from initial velocity, final velocity and time.",
        "physics",
        "compute accelerations",
        (
            _p("initial_velocity v0 start_speed", "number", "initial velocity in m/s", _i(0, 30)),
            _p("final_velocity v1 end_speed", "number", "final velocity in m/s", _i(31, 90)),
            _p("time t seconds", "number", "time in seconds", _i(1, 20)),
        ),
        lambda initial_velocity, final_velocity, time: _round((final_velocity - initial_velocity) / time),
        (
            "A car goes from {initial_velocity} m/s to {final_velocity} m/s in {time} s. What is its acceleration?",
        ),
        "The acceleration is {r} m/s^2.",
    ),
    Formula(
        ("calculate_simple_interest", "finance.simple_interest", "simpleInterest"),
        "Simple interest earned on a principal; the rate is a decimal (0.05 for 5%).",
        "finance",
        "compute simple interest",
        (
            _p(
                "principal amount p",
                "number",
                "the principal",
                lambda r: r.choice((500, 1000, 2500, 8000, 20000)),
            ),
            _p(
                "rate annual_rate r",
                "number",
                "annual rate as a decimal",
                lambda r: r.choice((0.02, 0.03, 0.04, 0.05, 0.07)),
                rate=True,
            ),
            _p("years time t", "integer", "number of years", _i(1, 15)),
        ),
        lambda principal, rate, years: _round(principal * rate * years),
        ("How much simple interest does {principal} earn at {rate} per year over {years} years?",),
        "The interest is {r}.",
    ),
    Formula(
        ("calculate_discounted_price", "shopping.discount_price", "discountPrice"),
        "Price after a percentage discount.",
        "finance",
        "compute discounted prices",
        (
            _p("price original_price amount", "number", "the original price", _f(5, 900)),
            _p("discount_percent percent discount", "number", "the discount in percent", _i(5, 70)),
        ),
        lambda price, discount_percent: _round(price * (1 - discount_percent / 100)),
        (
            "What do I pay for an item of {price} dollars with {discount_percent} percent off?",
            "A jacket costs {price}; it is {discount_percent}% off. What is the new price?",
        ),
        "The discounted price is {r}.",
    ),
    Formula(
        ("calculate_tip", "finance.tip_amount", "tipCalculator"),
        "Tip amount for a bill.",
        "finance",
        "compute tips",
        (
            _p("bill_amount bill total", "number", "the bill", _f(10, 400)),
            _p("tip_percent percent rate", "number", "tip in percent", _i(5, 25)),
        ),
        lambda bill_amount, tip_percent: _round(bill_amount * tip_percent / 100),
        ("How much is a {tip_percent}% tip on a bill of {bill_amount}?",),
        "The tip is {r}.",
    ),
    Formula(
        ("calculate_profit_margin", "finance.profit_margin", "profitMargin"),
        "Profit margin in percent from revenue and cost.",
        "finance",
        "compute profit margins",
        (
            _p("revenue sales income", "number", "the revenue", _i(1000, 90000)),
            _p("cost costs expenses", "number", "the cost", _i(100, 900)),
        ),
        lambda revenue, cost: _round((revenue - cost) / revenue * 100),
        ("What is the profit margin with revenue {revenue} and cost {cost}?",),
        "The margin is {r}%.",
    ),
    Formula(
        ("calculate_loan_payment", "finance.monthly_payment", "loanPayment"),
        "Monthly payment of a loan; the rate is a yearly decimal (0.05 for 5%).",
        "finance",
        "compute loan payments",
        (
            _p(
                "principal loan_amount amount",
                "number",
                "the amount borrowed",
                lambda r: r.choice((5000, 12000, 150000, 300000)),
            ),
            _p(
                "annual_rate rate interest_rate",
                "number",
                "yearly rate as a decimal",
                lambda r: r.choice((0.03, 0.045, 0.06)),
                rate=True,
            ),
            _p("years term term_years", "integer", "loan term in years", lambda r: r.choice((5, 10, 15, 30))),
        ),
        lambda principal, annual_rate, years: _round(
            principal * (annual_rate / 12) / (1 - (1 + annual_rate / 12) ** (-12 * years))
        ),
        ("What is the monthly payment on a loan of {principal} at {annual_rate} yearly for {years} years?",),
        "The monthly payment is {r}.",
    ),
    Formula(
        ("calculate_population_growth", "demography.population_growth", "populationGrowth"),
        "Population after some years of growth at a yearly rate (a decimal).",
        "finance",
        "compute population growth",
        (
            _p(
                "initial_population population start",
                "integer",
                "population now",
                lambda r: r.choice((5000, 80000, 1200000)),
            ),
            _p(
                "growth_rate rate r",
                "number",
                "yearly growth rate as a decimal",
                lambda r: r.choice((0.01, 0.02, 0.035)),
                rate=True,
            ),
            _p("years t time", "integer", "number of years", _i(1, 30)),
        ),
        lambda initial_population, growth_rate, years: round(initial_population * (1 + growth_rate) ** years),
        (
            "A town of {initial_population} grows at {growth_rate} per year. How many people after {years} years?",
        ),
        "The population will be {r}.",
    ),
    Formula(
        ("calculate_lcm", "math.lcm", "leastCommonMultiple"),
        "Least common multiple of two integers.",
        "math",
        "compute least common multiples",
        (
            _p("a x num1", "integer", "first integer", _i(2, 200)),
            _p("b y num2", "integer", "second integer", _i(2, 200)),
        ),
        lambda a, b: math.lcm(a, b),
        ("What is the least common multiple of {a} and {b}?", "Find the LCM of {a} and {b}."),
        "The LCM is {r}.",
    ),
    Formula(
        ("calculate_power", "math.power", "raiseToPower"),
        "A number raised to a power.",
        "math",
        "raise numbers to powers",
        (
            _p("base x number", "number", "the base", _i(2, 15)),
            _p("exponent n power", "integer", "the exponent", _i(2, 9)),
        ),
        lambda base, exponent: base**exponent,
        ("What is {base} to the power of {exponent}?", "Compute {base} raised to {exponent}."),
        "The result is {r}.",
    ),
    Formula(
        ("calculate_square_root", "math.sqrt", "squareRoot"),
        "Square root of a number.",
        "math",
        "compute square roots",
        (_p("number x value", "number", "the number", _i(2, 99999)), _DECIMALS),
        lambda number, decimals=2: _round(math.sqrt(number), decimals),
        ("What is the square root of {number}?", "Find the square root of {number}."),
        "The square root is {r}.",
    ),
    Formula(
        ("fibonacci_number", "math.fibonacci", "nthFibonacci"),
        "The n-th Fibonacci number (F(1) = F(2) = 1).",
        "math",
        "compute Fibonacci numbers",
        (_p("n index position", "integer", "which Fibonacci number", _i(3, 60)),),
        lambda n: _fib(n),
        ("What is the {n}th Fibonacci number?", "Give me Fibonacci number {n}."),
        "It is {r}.",
    ),
    Formula(
        ("count_combinations", "math.combinations", "nChooseK"),
        "Number of ways to choose k items out of n, order ignored.",
        "math",
        "count combinations",
        (
            _p("n total items", "integer", "how many items", _i(5, 40)),
            _p("k choose picks", "integer", "how many are chosen", _i(1, 5)),
        ),
        lambda n, k: math.comb(n, k),
        (
            "In how many ways can I choose {k} out of {n} items?",
            "How many combinations of {k} from {n} are there?",
        ),
        "There are {r} combinations.",
    ),
    Formula(
        ("count_permutations", "math.permutations", "nPermuteK"),
        "Number of ordered arrangements of k items out of n.",
        "math",
        "count permutations",
        (
            _p("n total items", "integer", "how many items", _i(5, 30)),
            _p("k choose picks", "integer", "how many are arranged", _i(1, 5)),
        ),
        lambda n, k: math.perm(n, k),
        ("How many ordered arrangements of {k} out of {n} items are there?",),
        "There are {r} permutations.",
    ),
    Formula(
        ("celsius_to_fahrenheit", "units.c_to_f", "toFahrenheit"),
        "Converts a temperature from Celsius to Fahrenheit.",
        "math",
        "convert temperatures",
        (_p("celsius temp_c degrees", "number", "temperature in Celsius", _i(-40, 120)),),
        lambda celsius: _round(celsius * 9 / 5 + 32),
        ("What is {celsius} degrees Celsius in Fahrenheit?", "Convert {celsius} C to Fahrenheit."),
        "It is {r} degrees Fahrenheit.",
    ),
    Formula(
        ("calculate_percentage_change", "math.percent_change", "percentChange"),
        "Percentage change from an old value to a new one.",
        "math",
        "compute percentage changes",
        (
            _p("old_value old before", "number", "the old value", _i(10, 900)),
            _p("new_value new after", "number", "the new value", _i(10, 900)),
        ),
        lambda old_value, new_value: _round((new_value - old_value) / old_value * 100),
        ("By what percent did a value change from {old_value} to {new_value}?",),
        "The change is {r}%.",
    ),
)


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


SUBJECTS: dict[str, tuple[Formula, ...]] = {}
for _formula in FORMULAS:
    SUBJECTS.setdefault(_formula.subject, ())
    SUBJECTS[_formula.subject] += (_formula,)
_BY_DESCRIPTION = {f.description: f for f in FORMULAS}


@dataclass
class Variant:
    """One formula as a record offers it: its drawn tool name and parameter names."""

    formula: Formula
    name: str
    param_names: dict[str, str]  # own name -> offered name

    def spec(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for p in self.formula.params:
            prop: dict[str, Any] = {"type": p.type, "description": p.description}
            if p.default is not None:
                prop["default"] = p.default
            props[self.param_names[p.names[0]]] = prop
        required = [self.param_names[p.names[0]] for p in self.formula.params if p.default is None]
        return {
            "name": self.name,
            "description": self.formula.description,
            "parameters": {"type": "object", "properties": props, "required": required},
        }


def variant(formula: Formula, r: random.Random) -> Variant:
    """The formula under a drawn tool name and drawn parameter names (its own names half the time)."""
    own = r.random() < 0.5
    names = {p.names[0]: p.names[0] if own else r.choice(p.names) for p in formula.params}
    if len(set(names.values())) < len(names):
        names = {p.names[0]: p.names[0] for p in formula.params}
    return Variant(formula, r.choice(formula.names), names)


@dataclass
class Request:
    """A request for one formula: the question, the call's arguments under the offered names, the true
    result and the Final Answer."""

    question: str
    args: dict[str, Any]
    result: Any
    thought: str
    answer: str


def request(v: Variant, r: random.Random) -> Request:
    """A request the variant serves; an optional parameter is asked for (and passed) a third of the time."""
    f = v.formula
    values = {p.names[0]: p.draw(r) for p in f.params if p.default is None}
    said = {p.names[0]: f"{values[p.names[0]] * 100:g}%" for p in f.params if p.rate and r.random() < 0.5}
    question = r.choice(f.asks).format(**{**values, **said})
    for p in f.params:
        if p.default is not None and r.random() < 0.33:
            values[p.names[0]] = p.draw(r)
            question += p.ask.format(v=values[p.names[0]])
    args = {v.param_names[k]: x for k, x in values.items()}
    result = f.fn(**values)
    return Request(
        question, args, result, f"I will call it with {named_values(args)}.", f.answer.format(r=result)
    )


def named_values(args: dict[str, Any]) -> str:
    """Each argument after the parameter that takes it, its value as JSON: `radius 3, unit "cm" and
    decimals 1`, as a call's Thought says them before the Action Input."""
    pairs = [f"{k} {json.dumps(x, ensure_ascii=False)}" for k, x in args.items()]
    return " and ".join([", ".join(pairs[:-1]), pairs[-1]] if len(pairs) > 1 else pairs)


def run(spec: dict[str, Any], args: dict[str, Any]) -> Any:
    """The true result of a call to an offered formula tool (`spec` as the record offers it)."""
    f = _BY_DESCRIPTION[spec["description"]]
    own = {name: p.names[0] for p in f.params for name in p.names}  # no two parameters share a name
    return f.fn(**{own[k]: x for k, x in args.items()})


def is_formula(spec: dict[str, Any]) -> bool:
    return spec.get("description") in _BY_DESCRIPTION


def near_misses(formula: Formula, r: random.Random, k: int) -> list[Formula]:
    """Up to `k` other formulas of the same subject: plausible tools that cannot serve the request."""
    others = [f for f in SUBJECTS[formula.subject] if f is not formula]
    return r.sample(others, min(k, len(others)))
