"""The catalogue's info tools: each tool's function, schema (from its signature and docstring), request
generator and group, in one place (`catalogue.tool`)."""

from __future__ import annotations

from typing import Any, Literal

from agentune.catalogue.common import RATES, round_result, stable_int
from agentune.catalogue.phrasing import CITIES, COUNTRIES, CUISINES, MOVIES, SYMBOLS, TOPICS, fmt, pick
from agentune.catalogue.tool import Draw, Task, tool

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


#: Papers held out for evaluation: the reference scenarios look them up (`evalsets.scenarios`), so no
#: generated request names them, in any wording.
EVALUATION_PAPERS: tuple[str, ...] = ("2403.17297", "2106.09685")
#: the papers a generated request may name
REQUESTABLE_PAPERS = tuple(p for p in ARXIV_PAPERS if p[0] not in EVALUATION_PAPERS)


def _words(text: str) -> set[str]:
    return {w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if len(w) > 1}


_CONDITIONS = ("sunny", "cloudy", "light rain", "heavy rain", "snow", "windy", "foggy", "partly cloudy")


RESTAURANT_FEATURES = ("outdoor seating", "vegan options", "wifi", "parking", "live music", "delivery")


@tool(
    "info",
    order=3,
    name="ArxivSearch.get_arxiv_article_information",
    return_data=[{"name": "content", "description": "a list of 3 arxiv search papers", "type": "STRING"}],
)
def arxiv_search(query: str) -> str:
    """Run Arxiv search and get the article meta information.

    Args:
        query: the content of search query
    """
    q = _words(query)
    best = max(ARXIV_PAPERS, key=lambda p: (len(q & _words(p[2])), -ARXIV_PAPERS.index(p)))
    if not q & _words(best[2]):
        return f"No article found for {query!r}."
    arxiv_id, published, title, authors = best
    return f"Published: {published}; Title: {title}; Authors: {authors}; arXiv: {arxiv_id}"


@arxiv_search.requests
def t_arxiv(r: Draw) -> Task:
    paper = r.choice(REQUESTABLE_PAPERS)
    title = paper[2].split(":")[0] if r.random() < 0.4 else paper[2]
    q = pick(
        r,
        f"Please help me search the {title}.",
        f"Find the arXiv paper '{title}'.",
        f"Search arXiv for {title}.",
        f"Who wrote {title}? Look it up on arXiv.",
        f"Can you get information about the paper {title}?",
    )
    return Task(
        tool="ArxivSearch.get_arxiv_article_information",
        question=q,
        args={"query": title},
        thought=f"I will search arXiv for {title}.",
        answer=lambda res: f"Here is what I found: {res}",
        capability="search for papers",
    )


@tool("info", order=4)
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the current weather in a city.

    Args:
        city: city name
        unit: temperature unit
    """
    h = stable_int("weather", city)
    c = -5 + h % 38
    temp = c if unit == "celsius" else round(c * 9 / 5 + 32)
    sym = "C" if unit == "celsius" else "F"
    return f"{city}: {_CONDITIONS[(h >> 8) % len(_CONDITIONS)]}, {temp} degrees {sym}"


@get_weather.requests
def t_weather(r: Draw) -> Task:
    city = r.choice(CITIES)
    args: dict[str, Any] = {"city": city}
    unit = r.choice(("", "", "celsius", "fahrenheit"))
    tail = f" in {unit}" if unit else ""
    if unit:
        args["unit"] = unit
    q = pick(
        r,
        f"What's the weather in {city}{tail}?",
        f"How is the weather in {city} today{tail}?",
        f"Tell me the current weather for {city}{tail}.",
    )
    return Task(
        tool="get_weather",
        question=q,
        args=args,
        thought=f"I need the current weather in {city}.",
        answer=lambda res: f"The weather now: {res}.",
        capability="check the weather",
    )


@tool("info", order=7)
def get_stock_price(symbol: str, currency: str = "USD") -> float | str:
    """Get the latest price of a stock.

    Args:
        symbol: ticker symbol
        currency: ISO code of the quote currency
    """
    cur = currency.upper()
    if cur not in RATES:
        return f"Error: unsupported currency; supported: {', '.join(sorted(RATES))}"
    usd = 5 + (stable_int("stock", symbol) % 90000) / 100
    return round(usd * RATES[cur], 2)


@get_stock_price.requests
def t_stock(r: Draw) -> Task:
    s = r.choice(SYMBOLS)
    args: dict[str, Any] = {"symbol": s}
    cur = r.choice(("", "", "", "EUR", "GBP", "JPY", "CNY"))
    tail = f" in {cur}" if cur else ""
    if cur:
        args["currency"] = cur
    q = pick(
        r,
        f"What is the stock price of {s}{tail}?",
        f"How much is {s} trading at{tail}?",
        f"Get me the {s} share price{tail}.",
    )
    return Task(
        tool="get_stock_price",
        question=q,
        args=args,
        thought=f"I need the latest price of {s}.",
        answer=lambda res: f"{s} is trading at {res} {cur or 'USD'}.",
        capability="get stock prices",
    )


@tool("info", order=9)
def search_web(query: str, max_results: int = 3) -> list[str]:
    """Search the web.

    Args:
        query: search terms
        max_results: number of results
    """
    h = stable_int("web", query)
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


@search_web.requests
def t_search(r: Draw) -> Task:
    topic = r.choice(TOPICS)
    args: dict[str, Any] = {"query": topic}
    n = r.choice((0, 0, 2, 5))
    if n:
        args["max_results"] = n
    q = (
        f"Search the web for {topic} and give me {n} results."
        if n
        else pick(
            r, f"Search the web for {topic}.", f"Look up {topic} online.", f"Find web pages about {topic}."
        )
    )
    return Task(
        tool="search_web",
        question=q,
        args=args,
        thought=f"I will search the web for {topic}.",
        answer=lambda res: f"Top results: {fmt(res)}.",
        capability="search the web",
    )


@tool("info", order=21)
def get_population(country: str, year: int = 2024) -> str:
    """Get the population of a country.

    Args:
        country: country name
        year: year of the estimate
    """
    base = 1 + stable_int("pop", country) % 300
    millions = round(base * (1 + 0.008 * (int(year) - 2024)), 1)
    return f"{country} in {int(year)}: about {round_result(millions)} million people"


@get_population.requests
def t_population(r: Draw) -> Task:
    c = r.choice(COUNTRIES)
    args: dict[str, Any] = {"country": c}
    year = r.choice((0, 0, 0, r.randint(1990, 2023)))
    tail = f" in {year}" if year else ""
    if year:
        args["year"] = year
    q = pick(r, f"What was the population of {c}{tail}?", f"How many people lived in {c}{tail}?")
    if not year:
        q = pick(r, f"What is the population of {c}?", f"How many people live in {c}?")
    return Task(
        tool="get_population",
        question=q,
        args=args,
        thought=f"I need the population of {c}.",
        answer=lambda res: f"{res}.",
        capability="look up populations",
    )


@tool("info", order=22)
def find_restaurants(
    city: str,
    cuisine: str,
    max_price: int = 3,
    features: list[Literal["outdoor seating", "vegan options", "wifi", "parking", "live music", "delivery"]]
    | None = None,
) -> list[str] | str:
    """Find restaurants in a city.

    Args:
        city: city name
        cuisine: type of food
        max_price: price level 1-4
        features: required features
    """
    unknown = [f for f in features or () if f not in RESTAURANT_FEATURES]
    if unknown:
        return f"Error: unknown features {unknown}; use any of {', '.join(RESTAURANT_FEATURES)}"
    h = stable_int("food", city, cuisine, sorted(features or ()))
    names = ("Golden", "Blue", "Little", "Royal", "Green", "Old Town", "Corner", "Lucky")
    kinds = ("Kitchen", "Table", "House", "Bistro", "Garden", "Place")
    tags = f"; {', '.join(features)}" if features else ""
    return [
        f"{names[(h >> (3 * i)) % 8]} {kinds[(h >> (5 * i)) % 6]} "
        f"({cuisine}, {'$' * (1 + (h >> i) % int(max_price))}{tags})"
        for i in range(2)
    ]


@find_restaurants.requests
def t_restaurants(r: Draw) -> Task:
    city, cuisine = r.choice(CITIES), r.choice(CUISINES)
    args: dict[str, Any] = {"city": city, "cuisine": cuisine}
    mp = r.choice((0, 0, 1, 2, 4))
    tail = f" with price level at most {mp}" if mp else ""
    if mp:
        args["max_price"] = mp
    if r.random() < 0.35:
        args["features"] = r.sample(RESTAURANT_FEATURES, r.randint(1, 2))
        tail += f" that have {' and '.join(args['features'])}"
    q = pick(
        r, f"Find {cuisine} restaurants in {city}{tail}.", f"Where can I eat {cuisine} food in {city}{tail}?"
    )
    return Task(
        tool="find_restaurants",
        question=q,
        args=args,
        thought=f"I will look for {cuisine} restaurants in {city}.",
        answer=lambda res: f"Try these: {fmt(res)}.",
        capability="find restaurants",
    )


@tool("info", order=31)
def get_movie_info(title: str, year: int | None = None) -> str:
    """Look up a movie.

    Args:
        title: movie title
        year: release year (optional)
    """
    h = stable_int("movie", title, year)
    genres = ("drama", "comedy", "science fiction", "thriller", "animation", "documentary")
    y = year if year else 1970 + h % 55
    return f"{title} ({y}): {genres[(h >> 8) % len(genres)]}, rated {5 + (h >> 16) % 50 / 10:.1f}/10"


@get_movie_info.requests
def t_movie(r: Draw) -> Task:
    title = r.choice(MOVIES)
    args: dict[str, Any] = {"title": title}
    year = r.choice((0, 0, r.randint(1960, 2024)))
    if year:
        args["year"] = year
    q = (
        f"Tell me about the movie {title} from {year}."
        if year
        else pick(r, f"Tell me about the movie {title}.", f"Look up the film {title}.")
    )
    return Task(
        tool="get_movie_info",
        question=q,
        args=args,
        thought=f"I will look up {title}.",
        answer=lambda res: f"{res}.",
        capability="look up movies",
    )
