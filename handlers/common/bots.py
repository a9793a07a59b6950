r"""Known crawlers and automation, recognised by their user agent with the maintained list of the npm ``isbot``
package (``bot_patterns.json``, generated from the pinned version by ``npm run bots:generate``), not a regex of ours.

The list is written for JavaScript's engine. Python's ``re`` reads it the same way except for two constructs it
refuses, rewritten to equivalents: negative lookbehinds with alternatives of different lengths (``(?<!a|bc)x`` becomes
``(?<!a)(?<!bc)x``) and a ``-`` right after a class escape in a set (``[\w-.]``, where JavaScript reads a literal
``-``, becomes ``[\w\-.]``). The tests run isbot itself next to this module on a corpus of user agents and expect
the same answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path

PATTERNS_FILE = Path(__file__).resolve().parent / "bot_patterns.json"


def _syntax(pattern: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """Each ``(``, ``)`` and ``|`` from ``start`` that is syntax (not escaped, not in a set): its index, itself, and
    the group depth after it."""
    depth, index, in_class = 0, start, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()|":
            depth += {"(": 1, ")": -1, "|": 0}[char]
            yield index, char, depth
        index += 1


def _group_end(pattern: str, start: int) -> int:
    """The index of the parenthesis that closes the group opened at ``start``."""
    for index, char, depth in _syntax(pattern, start):
        if char == ")" and depth == 0:
            return index
    raise ValueError(f"unbalanced group in {pattern!r}")


def _top_level_alternatives(body: str) -> list[str]:
    bounds = [-1, *(i for i, char, depth in _syntax(body) if char == "|" and depth == 0), len(body)]
    return [body[a + 1:b] for a, b in pairwise(bounds)]


_CLASS_ESCAPE_DASH = re.compile(r"(?<!\\)(\\[wdsWDS])-")


def python_pattern(pattern: str) -> str:
    """``pattern`` (JavaScript) as Python reads it the same way (see the module's docstring)."""
    pattern = _CLASS_ESCAPE_DASH.sub(r"\1\\-", pattern)
    out, index = "", 0
    while (start := pattern.find("(?<!", index)) != -1:
        end = _group_end(pattern, start)
        alternatives = _top_level_alternatives(pattern[start + 4:end])
        out += pattern[index:start] + "".join(f"(?<!{alternative})" for alternative in alternatives)
        index = end + 1
    return out + pattern[index:]


@cache
def bot_pattern() -> re.Pattern[str]:
    document = json.loads(PATTERNS_FILE.read_text(encoding="utf-8"))
    # JavaScript's "i" flag without "u": ASCII classes (\w, \b, \d), case-insensitive.
    return re.compile("|".join(python_pattern(p) for p in document["patterns"]), re.IGNORECASE | re.ASCII)


# Python's engine takes about 0.3 ms for a browser's user agent against the whole list (benchmarks/bots.py); the events
# of one session share it, and a batch holds few distinct ones: judge each once.
@lru_cache(maxsize=4096)
def _listed(user_agent: str) -> bool:
    return bot_pattern().search(user_agent) is not None


def is_bot(user_agent: str | None) -> bool:
    """True for a user agent on the list; an absent or empty one is not judged (the stack may not record it)."""
    return bool(user_agent) and _listed(user_agent or "")
