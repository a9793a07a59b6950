"""Benchmark of the reader loop in the sandbox: click-to-changed-recommendation latency (run on demand):

    .venv/bin/python -m benchmarks.sandbox_loop [--clicks 50] [--seed 11] [--poll-ms 100]

Starts ``python -m tools.sandbox --faults`` (the fault proxy stays in ``pass``: it only timestamps what the browser
sent, ~1 ms) and drives one reader in headless Chromium (/usr/bin/chromium through the ``playwright`` package).

What is measured, per click (``--clicks`` of them):

1. The loop is made quiet first: the page's view is flushed, every event the reader sent so far has reached the
   Personalize stand-in's PutEvents, and the recommendations block is refreshed: list L.
2. **t0**: a recommended link (seeded random, not the current post) is clicked (``Date.now()`` just before
   ``click()``); the browser navigates to that post.
3. **t1**: on the next page, the block is asked again every ``--poll-ms`` (``Clickstream.recommend``, as its
   Refresh button does) until it renders a list different from L; t1 is when that list is rendered.

**latency = t1 - t0**: how long a reader waits, on the page their click opened, until the recommendations follow
it, when the page asks often enough. The stages (each from timestamps of the same click):

- click → collector: pagehide and the beacon (proxy's receive time);
- collector → stream: API Gateway (LocalStack) + Kinesis PutRecords (the record's ApproximateArrivalTimestamp);
- stream → PutEvents: the event source mapping emulation (polling, ``maximumBatchingWindowInSeconds``), the Lambda
  host and the event processor (first seen in the stand-in's calls, polled every 50 ms: ±50 ms);
- PutEvents → changed list: the rest (next page loaded, the ``--poll-ms`` cadence, GetRecommendations through the
  serving handler).

Not in the figure, but what a reader of the demo blog also waits for: the blog re-asks only every 10 s
(``refreshSeconds``) or on load, and a click that does not navigate waits for the tracker's batch interval (3 s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.browser_fixtures import CHROMIUM_FLAGS, Sandbox, chromium_path, running_sandbox, wait_for

BLOCK = "[data-recommendations]"
SHOWN = '[data-recommendations][data-state="shown"]'
WAIT_CHANGE_MS = 10_000

# On the next page: the time of the click (kept in sessionStorage across the navigation), the first render, and
# the first render that differs from the list shown before the click.
UNTIL_CHANGED = """async ([before, pollMs, limitMs]) => {
  const block = document.querySelector("[data-recommendations]");
  const ids = () => [...block.querySelectorAll("a[data-item-id]")].map((a) => a.dataset.itemId);
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  const t0 = Number(sessionStorage.getItem("bench:t0"));
  while (!block.hasAttribute("data-state")) await pause(10);
  const firstRender = Date.now();
  const calls = [];
  while (Date.now() - t0 < limitMs) {
    const now = ids();
    if (now.length && now.join() !== before.join()) return { t0, firstRender, changed: Date.now(), calls, ids: now };
    await pause(pollMs);
    const a = Date.now();
    await Clickstream.recommend(block, { numResults: (window.SANDBOX_CONFIG || {}).numResults || 5,
                                          filter: (window.SANDBOX_CONFIG || {}).filter || undefined });
    calls.push(Date.now() - a);
  }
  return { t0, firstRender, changed: null, calls, ids: ids() };
}"""

CLICK = """(target) => {
  const link = document.querySelector(`[data-recommendations] a[data-item-id="${target}"]`);
  setTimeout(() => { sessionStorage.setItem("bench:t0", String(Date.now())); link.click(); }, 0);
}"""


class PutEventsWatch:
    """Polls the stand-in's calls every 50 ms while armed and notes when each eventId was first seen."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.seen: dict[str, float] = {}
        self.armed, self.stopped = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            if self.armed.wait(0.1):
                now = time.time()
                for _, event in self.sandbox.put_events():
                    self.seen.setdefault(event["eventId"], now)
                self.stopped.wait(0.05)

    def __enter__(self) -> PutEventsWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.armed.set()
        self.thread.join(5)


@dataclass
class Click:
    latency_ms: float | None
    to_collector: float
    to_stream: float
    to_put_events: float
    to_changed: float | None
    first_render_ms: float
    recommend_ms: list[int]
    seen_late: bool  # the poller saw the click in PutEvents only after the list had changed (its resolution)


def quiet(sandbox: Sandbox, page: Any, session: str) -> list[str]:
    """Flush, wait until all that was sent is in PutEvents, then refresh the block; returns its list."""
    page.evaluate("Clickstream.flush()")
    wait_for(lambda: (s := page.evaluate("Clickstream.stats()"))["queued"] == 0 and s["inflight"] == 0, 20,
             "the tracker's queue to drain")
    sent = {i for e in sandbox.posts(session) for i in e["accepted"]}
    sandbox.wait_in_put_events(sent)
    page.evaluate(f"document.querySelector('{BLOCK}').removeAttribute('data-state')")
    page.click("[data-refresh]")
    page.wait_for_selector(SHOWN)
    ids: list[str] = page.eval_on_selector_all(f"{BLOCK} a[data-item-id]", "els => els.map(a => a.dataset.itemId)")
    return ids


def one_click(sandbox: Sandbox, page: Any, rng: random.Random, watch: PutEventsWatch,
              poll_ms: int) -> Click:
    session = page.evaluate("Clickstream.stats().sessionId")
    before = quiet(sandbox, page, session)
    current = page.eval_on_selector('meta[name="clickstream:item-id"]', "m => m.content")
    target = rng.choice([i for i in before if i != current])
    watch.armed.set()
    page.evaluate(CLICK, target)
    page.wait_for_url(f"**/posts/{target}.html")
    page.wait_for_function("() => window.Clickstream && Clickstream.stats().tabId")
    result = page.evaluate(UNTIL_CHANGED, [before, poll_ms, WAIT_CHANGE_MS])
    t0 = result["t0"] / 1000

    def click_record() -> dict[str, Any] | None:
        return next((r for r in sandbox.stream() if r["data"]["event"]["eventType"] == "click"
                     and r["data"]["event"]["itemId"] == target and r["data"]["event"]["sessionId"] == session
                     and r["data"]["event"]["timestamp"] >= result["t0"] - 5), None)

    record = wait_for(click_record, 20, "the click in the stream")
    event_id = record["data"]["event"]["eventId"]
    exchange = next(e for e in sandbox.posts(session) if event_id in e["received"])
    seen = wait_for(lambda: watch.seen.get(event_id), 20, "the click in PutEvents")
    watch.armed.clear()
    changed = result["changed"] / 1000 if result["changed"] else None
    # The list cannot change before the stand-in has the click (scores only change with events: decay keeps their
    # order), so a change seen first bounds when PutEvents happened.
    put_events = min(seen, changed) if changed else seen
    return Click(latency_ms=(changed - t0) * 1000 if changed else None,
                 to_collector=(exchange["at"] - t0) * 1000,
                 to_stream=(record["arrival"] - exchange["at"]) * 1000,
                 to_put_events=(put_events - record["arrival"]) * 1000,
                 to_changed=(changed - put_events) * 1000 if changed else None,
                 first_render_ms=result["firstRender"] - result["t0"],
                 recommend_ms=result["calls"],
                 seen_late=bool(changed and changed < seen))


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * (len(ordered) - 1))))]


def report(clicks: list[Click], poll_ms: int, window: Any) -> None:
    done = [c for c in clicks if c.latency_ms is not None]
    latencies = [c.latency_ms for c in done if c.latency_ms is not None]
    print(f"\nclick-to-changed-recommendation over {len(clicks)} clicks (re-asking every {poll_ms} ms):")
    if latencies:
        print(f"  p50 {percentile(latencies, 0.5):7.0f} ms   p95 {percentile(latencies, 0.95):7.0f} ms   "
              f"min {min(latencies):.0f}  max {max(latencies):.0f}")
    print(f"  unchanged within {WAIT_CHANGE_MS / 1000:.0f} s: {len(clicks) - len(done)};"
          f" PutEvents seen by the 50 ms poller only after the change (then bounded by it):"
          f" {sum(c.seen_late for c in clicks)}")
    stages = [("click -> collector (pagehide, beacon)", [c.to_collector for c in clicks]),
              ("collector -> stream (API Gateway, PutRecords)", [c.to_stream for c in clicks]),
              ("stream -> PutEvents (mapping poll + batching window, event processor)",
               [c.to_put_events for c in clicks]),
              ("PutEvents -> changed list (next page, re-ask cadence, GetRecommendations)",
               [c.to_changed for c in done if c.to_changed is not None])]
    total = sum(statistics.mean(v) for _, v in stages if v) or 1.0
    print("  stage                                                                       p50 ms   p95 ms   share")
    for name, values in stages:
        if values:
            print(f"  {name:74} {percentile(values, 0.5):7.0f}  {percentile(values, 0.95):7.0f}"
                  f"   {statistics.mean(values) / total:5.0%}")
    dominant = max((n for n, v in stages if v), key=lambda n: statistics.mean(dict(stages)[n]))
    print(f"  dominated by: {dominant}; the mapping's maximumBatchingWindowInSeconds is {window} s")
    recommend = [ms for c in clicks for ms in c.recommend_ms]
    if recommend:
        print("  GetRecommendations from the page (serving handler + stand-in):"
              f" p50 {percentile(recommend, 0.5):.0f} ms  p95 {percentile(recommend, 0.95):.0f} ms")
    print(f"  next page's first render after the click: p50 {percentile([c.first_render_ms for c in clicks], 0.5):.0f}"
          " ms")
    print("  not included: the demo blog re-asks only on load and every 10 s, and a click that does not navigate"
          " waits for the tracker's 3 s batch interval")


def batching_window() -> Any:
    from tools.sandbox.collect_api import synthesize_sandbox
    from tools.sandbox.stream_consumer import kinesis_mapping

    try:
        config, _ = kinesis_mapping(synthesize_sandbox(["http://localhost:8000"]))
    except Exception as error:  # noqa: BLE001 (only a label in the report)
        return f"unknown ({error})"
    return config.batching_window_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--poll-ms", type=int, default=100)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    rng = random.Random(args.seed)  # noqa: S311 (a reproducible choice of links, not a secret)
    clicks: list[Click] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sandbox-loop-") as workdir, running_sandbox(Path(workdir)) as sandbox:
        print(f"sandbox ready in {time.monotonic() - began:.1f} s", flush=True)
        with sync_playwright() as playwright, PutEventsWatch(sandbox) as watch:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            try:
                context = browser.new_context()
                context.set_default_timeout(20_000)
                page = context.new_page()
                page.goto(sandbox.site)
                page.click('[data-consent="granted"]')
                page.click(".latest a[data-item-id]")
                page.wait_for_selector(SHOWN)
                for n in range(args.clicks):
                    clicks.append(one_click(sandbox, page, rng, watch, args.poll_ms))
                    if (n + 1) % 10 == 0:
                        print(f"  {n + 1} clicks", flush=True)
            finally:
                browser.close()
    report(clicks, args.poll_ms, batching_window())
    return 0


if __name__ == "__main__":
    sys.exit(main())
