"""Bot filtering cost per event: the isbot list against browsers' and bots' user agents, uncached and cached.

    .venv/bin/python -m benchmarks.bots
"""

from __future__ import annotations

import timeit

import components  # noqa: F401 (puts handlers/ on the path)
from common import bots
from tests.test_bots import BOTS, BROWSERS


def per_call_us(user_agents: list[str], *, cached: bool, rounds: int = 20) -> float:
    bots.bot_pattern()
    if not cached:
        def judge() -> None:
            for ua in user_agents:
                bots.bot_pattern().search(ua)
    else:
        def judge() -> None:
            for ua in user_agents:
                bots.is_bot(ua)
        judge()  # warm the cache, as the events of one session do
    return timeit.timeit(judge, number=rounds) / rounds / len(user_agents) * 1e6


def main() -> None:
    for name, corpus in (("browsers", BROWSERS), ("bots", BOTS)):
        print(f"{name:8s} uncached {per_call_us(corpus, cached=False):8.1f} us/event   "
              f"cached {per_call_us(corpus, cached=True):6.2f} us/event")


if __name__ == "__main__":
    main()
