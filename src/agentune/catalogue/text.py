"""The catalogue's text tools: each tool's function, schema (from its signature and docstring), request
generator and group, in one place (`catalogue.tool`)."""

from __future__ import annotations

from typing import Literal

from agentune.catalogue.common import stable_int
from agentune.catalogue.phrasing import LANGS, PHRASES, WORDS, pick
from agentune.catalogue.tool import Draw, Task, tool

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


@tool("text", order=8)
def translate_text(
    text: str,
    target_language: Literal[
        "French", "Spanish", "German", "Chinese", "Japanese", "Italian", "Korean", "Portuguese"
    ],
) -> str:
    """Translate text into another language.

    Args:
        text: text to translate
        target_language: target language
    """
    code = _LANG_PREFIX.get(target_language, target_language[:2].lower())
    return f"[{code}] {text}"


@translate_text.requests
def t_translate(r: Draw) -> Task:
    text, lang = r.choice(PHRASES), r.choice(LANGS)
    q = pick(
        r,
        f"Translate '{text}' into {lang}.",
        f"How do you say '{text}' in {lang}?",
        f'Please translate "{text}" to {lang}.',
    )
    return Task(
        tool="translate_text",
        question=q,
        args={"text": text, "target_language": lang},
        thought=f"I will translate the phrase into {lang}.",
        answer=lambda res: f"In {lang}: {res}",
        capability="translate text",
    )


@tool("text", order=18)
def word_count(text: str, unique: bool = False) -> int:
    """Count the words in a text.

    Args:
        text: the text
        unique: count each distinct word once
    """
    words = text.split()
    return len({w.strip(".,!?;:'\"").lower() for w in words}) if unique else len(words)


@word_count.requests
def t_wordcount(r: Draw) -> Task:
    text = r.choice(PHRASES).capitalize() + " and " + r.choice(PHRASES)
    if r.random() < 0.25:
        q = pick(r, f"How many different words does '{text}' use?", f"Count the distinct words in '{text}'.")
        args, what = {"text": text, "unique": True}, "distinct words"
    else:
        q = pick(r, f'How many words are in this sentence: "{text}"?', f"Count the words in '{text}'.")
        args, what = {"text": text}, "words"
    return Task(
        tool="word_count",
        question=q,
        args=args,
        thought="I will count the words.",
        answer=lambda res: f"The text has {res} {what}.",
        capability="count words",
    )


@tool("text", order=19)
def reverse_string(text: str) -> str:
    """Reverse a string.

    Args:
        text: the text
    """
    return text[::-1]


@reverse_string.requests
def t_reverse(r: Draw) -> Task:
    text = r.choice(WORDS + PHRASES)
    q = pick(r, f"Reverse the string '{text}'.", f"What is '{text}' spelled backwards?")
    return Task(
        tool="reverse_string",
        question=q,
        args={"text": text},
        thought="I will reverse the text.",
        answer=lambda res: f"Reversed: {res}",
        capability="reverse text",
    )


@tool("text", order=33)
def define_word(word: str) -> str:
    """Look up the definition of a word.

    Args:
        word: the word
    """
    return f"{word}: see dictionary entry {stable_int('dict', word) % 90000 + 10000}."


@define_word.requests
def t_define(r: Draw) -> Task:
    w = r.choice(WORDS)
    q = pick(r, f"Define the word '{w}'.", f"What does {w} mean?")
    return Task(
        tool="define_word",
        question=q,
        args={"word": w},
        thought=f"I will look up {w}.",
        answer=lambda res: f"{res}",
        capability="look up words",
    )
