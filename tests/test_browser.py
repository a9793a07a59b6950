"""The reader loop in headless Chromium, through the whole sandbox (issue 11, item 4).

One sandbox (``python -m tools.sandbox --faults``) serves the module: the demo blog and its tracker, the collection
API in LocalStack behind the fault proxy, the stream, the real event processor, the Personalize stand-in and the
serving API. Each test is one reader (a browser context with its own storage and a user agent naming it, so the
proxy's log tells whose requests it saw). What the browser sent is read from the proxy; what arrived, from the
Kinesis stream and from the PutEvents calls the stand-in received. Every wait is on a condition with a timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser_fixtures import CHROMIUM_FLAGS, Sandbox, chromium_path, running_sandbox, wait_for

ROOT = Path(__file__).resolve().parent.parent
PUT_RECORDS_TEMPLATE = ROOT / "components" / "templates" / "collect_put_records.request.vtl"
BLOCK = "[data-recommendations]"
SHOWN = '[data-recommendations][data-state="shown"]'


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path_factory.mktemp("browser-sandbox")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(autouse=True)
def no_fault(sandbox: Sandbox) -> Iterator[None]:
    sandbox.fault("pass")
    yield
    sandbox.fault("pass")


class Reader:
    """One reader: a browser context (its own localStorage). Its requests are told apart by its session id (a
    beacon sent while a page closes carries the browser's own User-Agent, not the context's)."""

    def __init__(self, browser: Browser, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session: str | None = None
        self.context: BrowserContext = browser.new_context()
        self.context.set_default_timeout(15_000)

    def remember_session(self, page: Page) -> str:
        self.session = stats(page)["sessionId"]
        assert self.session, "the reader has no session yet"
        return self.session

    def open(self, path: str = "", consent: bool = True) -> Page:
        page = self.context.new_page()
        page.goto(self.sandbox.site + path)
        page.wait_for_function("() => window.Clickstream && Clickstream.stats().tabId")
        if consent and page.locator("#consent").is_visible():
            page.click('[data-consent="granted"]')
        return page

    def open_post(self) -> Page:
        """The index, then its first post (a click the site tracks), recommendations shown, and both events (the
        click, which left in a beacon as the index closed, and the post's view) accepted."""
        page = self.open()
        page.click(".latest a[data-item-id]")
        page.wait_for_selector(SHOWN)
        self.remember_session(page)
        page.evaluate("Clickstream.flush()")
        drained(page)
        self.wait_sent(2)
        return page

    def posts(self) -> list[dict[str, Any]]:
        """The collection requests (POST) of this reader the proxy answered, oldest first."""
        assert self.session, "the reader has no session yet"
        return self.sandbox.posts(self.session)

    def sent_ids(self) -> set[str]:
        """eventIds the proxy was told were accepted, for this reader."""
        return {i for e in self.posts() for i in e["accepted"]}

    def wait_sent(self, count: int) -> set[str]:
        """``sent_ids`` once there are at least ``count``: a beacon is on its own way, however drained the page."""
        ids: set[str] = wait_for(lambda: len(sent := self.sent_ids()) >= count and sent, 15,
                                 f"{count} events of this reader to be accepted")
        return ids

    def received_ids(self) -> set[str]:
        """eventIds this reader's requests carried, whatever happened to them."""
        return {i for e in self.posts() for i in e["received"]}

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def reader(browser: Browser, sandbox: Sandbox) -> Iterator[Reader]:
    one = Reader(browser, sandbox)
    try:
        yield one
    finally:
        one.close()


def stats(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("Clickstream.stats()")
    return result


def shown(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(f"{BLOCK} a[data-item-id]", "els => els.map(a => a.dataset.itemId)")
    return ids


def refresh_recommendations(page: Page) -> list[str]:
    """Ask again (the block's Refresh button) and wait for the new answer to be rendered."""
    page.evaluate(f"document.querySelector('{BLOCK}').removeAttribute('data-state')")
    page.click("[data-refresh]")
    page.wait_for_selector(SHOWN)
    return shown(page)


def drained(page: Page) -> dict[str, Any]:
    """Waits until the tracker has nothing queued or in flight."""
    last: dict[str, Any] = {}

    def empty() -> dict[str, Any] | None:
        last.update(stats(page))
        return dict(last) if last["queued"] == 0 and last["inflight"] == 0 else None

    try:
        result: dict[str, Any] = wait_for(empty, 20, "the tracker's queue to drain")
    except AssertionError as error:
        raise AssertionError(f"{error}; last stats: {last}") from None
    return result


def track(page: Page, count: int, tag: str) -> None:
    """``count`` click events in one task (so they go as one batch), each on its own item."""
    page.evaluate("""([count, tag]) => { for (let i = 0; i < count; i++)
        Clickstream.track("click", tag + "-" + i, { properties: { category: "test", position: i } }); }""",
                  [count, tag])


def record_version() -> int:
    """The ``v`` the PutRecords template writes into every record (``{"v": N, "event": ..., "server": ...}``)."""
    match = re.search(r"\{\$\{q\}v\$\{q\}:(\d+),\$\{q\}event\$\{q\}:", PUT_RECORDS_TEMPLATE.read_text())
    assert match, f"no record version in {PUT_RECORDS_TEMPLATE}"
    return int(match.group(1))


def assert_exactly_once(sandbox: Sandbox, ids: set[str]) -> None:
    counts = sandbox.wait_in_put_events(ids)
    assert set(counts.values()) == {1}, f"events sent to Personalize more than once: {counts}"
    stream = sandbox.stream_counts(ids)
    assert set(stream) == ids and set(stream.values()) == {1}, f"stream records per event: {stream}"


# --- a. the loop ------------------------------------------------------------------------------------------------------

def test_a_readers_clicks_reach_personalize_and_change_the_recommendations(reader: Reader, sandbox: Sandbox) -> None:
    # GIVEN a new reader on the blog: the consent banner asks first
    page = reader.open(consent=False)
    assert page.locator("#consent").is_visible()
    page.click('[data-consent="granted"]')
    page.wait_for_selector(SHOWN)
    before = shown(page)

    # WHEN they open a post from the index, then click a recommendation other than that post
    page.click(".latest a[data-item-id]")
    page.wait_for_selector(SHOWN)
    session = reader.remember_session(page)
    first = page.eval_on_selector('meta[name="clickstream:item-id"]', "m => m.content")
    impression = shown(page)
    target = next(i for i in impression if i != first)
    page.click(f'{BLOCK} a[data-item-id="{target}"]')
    page.wait_for_url(f"**/posts/{target}.html")
    page.wait_for_selector(SHOWN)
    page.evaluate("Clickstream.flush()")  # the second post's view, without waiting for the batch interval
    assert drained(page)["sessionId"] == session

    # THEN four events left the page: click, view, recommended click, view; all reach the stream and Personalize
    ids = reader.wait_sent(4)
    assert len(ids) == 4, reader.posts()
    assert_exactly_once(sandbox, ids)
    records = sorted((r for r in sandbox.stream() if r["data"]["event"]["eventId"] in ids),
                     key=lambda r: r["data"]["event"]["timestamp"])
    version = record_version()
    for record in records:
        assert set(record["data"]) == {"v", "event", "server"} and record["data"]["v"] == version
        assert record["partitionKey"] == session == record["data"]["event"]["sessionId"]
        server = record["data"]["server"]
        assert any(k.startswith("requestId") and server[k] for k in server)  # requestId (v1) / requestIdB64 (v2)
        assert server["receivedAt"] >= record["data"]["event"]["timestamp"] - 5000
    events = [r["data"]["event"] for r in records]
    assert [(e["eventType"], e["itemId"]) for e in events] == [("click", first), ("view", first),
                                                               ("click", target), ("view", target)]
    assert events[0]["properties"]["category"] and "recommendationId" not in events[0]
    assert events[2]["impression"] == impression and events[2]["recommendationId"].startswith("RID-")

    # ... PutEvents grouped by the reader's session, the recommended click with its id and impression
    calls = [call for call in sandbox.calls()["putEvents"] if any(e["eventId"] in ids for e in call["eventList"])]
    assert {call["sessionId"] for call in calls} == {session}
    tracking = next(v for k, v in sandbox.urls["parameters"].items() if k.endswith("/tracking-id"))
    assert {call["trackingId"] for call in calls} == {tracking}
    sent = {e["eventId"]: e for call in calls for e in call["eventList"]}
    click = sent[events[2]["eventId"]]
    assert click["recommendationId"] == events[2]["recommendationId"] and click["impression"] == impression
    assert click["sentAt"] == events[2]["timestamp"] // 1000  # whole seconds, as in the bulk import
    answered = {g["response"]["recommendationId"] for g in sandbox.calls()["getRecommendations"]
                if g["request"].get("userId") == session}
    assert click["recommendationId"] in answered  # the id of the answer this reader was shown

    # ... and the recommendations now shown differ from those shown before the clicks
    after = refresh_recommendations(page)
    assert after and after != before


# --- b. resilience ----------------------------------------------------------------------------------------------------

def _fail_once_then_recover(sandbox: Sandbox, page: Page, mode: str) -> None:
    """Faults without ``times`` (connection faults): back to pass once the tracker saw the failure."""
    flushed = stats(page)
    page.evaluate("Clickstream.flush()")
    wait_for(lambda: stats(page)["retried"] > flushed["retried"], 15, f"the tracker to see {mode}")
    sandbox.fault("pass")


@pytest.mark.parametrize("mode", ["down", "reset"])
def test_a_collector_down_then_back_gets_every_event_exactly_once(reader: Reader, sandbox: Sandbox,
                                                                  mode: str) -> None:
    # GIVEN a reader on a post, everything sent so far
    page = reader.open_post()
    # WHEN the collector goes down (refused / reset) while four events are sent, then comes back
    sandbox.fault(mode)
    track(page, 4, f"{mode}-item")
    _fail_once_then_recover(sandbox, page, mode)

    # THEN the tracker's backoff sends them again and every event arrives exactly once
    final = drained(page)
    assert final["retried"] >= 4 and final["dropped"] == 0
    ids = reader.wait_sent(6)
    assert len(ids) == 6  # the index click, the post's view, the four
    assert_exactly_once(sandbox, ids)


@pytest.mark.parametrize(("status", "retry_after"), [(503, 2), (429, None)])
def test_a_refusing_collector_is_retried_after_retry_after(reader: Reader, sandbox: Sandbox, status: int,
                                                           retry_after: int | None) -> None:
    page = reader.open_post()
    # WHEN the next request is refused with 503 + Retry-After: 2 (or 429 without it)
    options = {"times": 1} if retry_after is None else {"times": 1, "retryAfter": retry_after}
    sandbox.fault(str(status), **options)
    track(page, 4, f"s{status}-item")
    page.evaluate("Clickstream.flush()")
    drained(page)

    # THEN the same four events come again, not before Retry-After (read through CORS' expose-headers), once each
    refused, retried = reader.posts()[-2:]
    assert refused["status"] == status and retried["status"] == 200
    assert retried["received"] == refused["received"] and len(refused["received"]) == 4
    waited = retried["at"] - refused["answered_at"]
    assert waited >= (retry_after or 1)  # without Retry-After: the tracker's own first backoff, >= 1 s
    assert_exactly_once(sandbox, reader.sent_ids())


def test_a_partial_failure_resends_only_the_failed_events(reader: Reader, sandbox: Sandbox) -> None:
    page = reader.open_post()
    # WHEN a 200 reply reports the events at index 0 and 2 failed (they were not forwarded)
    sandbox.fault("partial", indexes=[0, 2], times=1)
    track(page, 4, "partial-item")
    page.evaluate("Clickstream.flush()")
    final = drained(page)

    # THEN only those two are sent again, and all four arrive exactly once
    partial, resent = reader.posts()[-2:]
    batch = partial["received"]
    assert partial["mode"] == "partial" and partial["forwarded"] == [batch[1], batch[3]]
    assert resent["received"] == [batch[0], batch[2]] and resent["status"] == 200
    assert final["retried"] == 2
    assert_exactly_once(sandbox, set(batch))
    assert_exactly_once(sandbox, reader.sent_ids())


# Timers and Date.now() are different clocks: Chromium truncates a fractional delay to whole milliseconds and may run
# a timer up to ~1 ms before Date.now() reaches the time it was set for. The page below makes that happen every time.
EARLY_TIMERS = """{ const setTimer = window.setTimeout.bind(window);
  window.setTimeout = (f, ms, ...a) => setTimer(f, Math.max(0, Math.floor(ms || 0) - 1), ...a); }"""


def test_a_backoff_timer_firing_a_millisecond_early_still_retries(reader: Reader, sandbox: Sandbox) -> None:
    # GIVEN a page whose timers run 1 ms before Date.now() reaches their deadline (what Chromium does now and then)
    reader.context.add_init_script(EARLY_TIMERS)
    page = reader.open_post()
    # WHEN one request is refused (429, no Retry-After: the tracker's own backoff)
    sandbox.fault("429", times=1)
    track(page, 2, "early-timer-item")
    page.evaluate("Clickstream.flush()")

    # THEN the backoff's timer still sends the batch again (a retry must not depend on which clock ticks first)
    final = drained(page)
    assert final["retried"] == 2
    assert_exactly_once(sandbox, reader.sent_ids())


# --- c. page close ----------------------------------------------------------------------------------------------------

def test_a_page_closed_mid_batch_loses_nothing(reader: Reader, sandbox: Sandbox) -> None:
    # GIVEN a batch in flight (the collector is slow to answer) and three more events queued, not yet sent
    page = reader.open_post()
    sandbox.fault("delay", delayMs=1500, times=1)
    track(page, 2, "inflight-item")
    page.evaluate("void Clickstream.flush()")
    wait_for(lambda: stats(page)["inflight"] == 2, 10, "the batch in flight")
    track(page, 3, "queued-item")
    assert stats(page)["queued"] == 5 and stats(page)["inflight"] == 2

    # WHEN the reader closes the page
    page.close()

    # THEN the request in flight completes (keepalive), the queued events leave in a beacon (a Blob typed
    # text/plain), and each arrives exactly once
    reader.wait_sent(7)  # the in-flight batch and the beacon
    [delayed] = [e for e in reader.posts() if e["mode"] == "delay"]
    [beacon] = [e for e in reader.posts() if e["content_type"] == "text/plain" and e["at"] > delayed["at"]]
    assert len(delayed["received"]) == 2 and delayed["status"] == 200 and len(beacon["received"]) == 3
    assert not set(delayed["received"]) & set(beacon["received"])
    assert_exactly_once(sandbox, reader.sent_ids())

    # ... and the reader's next page on the site sends none of them again
    following = reader.open()
    following.evaluate("Clickstream.flush()")
    assert drained(following)["adopted"] == 0
    assert len(reader.received_ids()) == 7
    assert_exactly_once(sandbox, reader.sent_ids())


def test_a_page_closed_during_an_outage_sends_its_events_from_the_next_page(reader: Reader,
                                                                            sandbox: Sandbox) -> None:
    # GIVEN the collector refusing, two events queued after a failed attempt
    page = reader.open_post()
    sandbox.fault("503", retryAfter=30)
    track(page, 2, "outage-item")
    page.evaluate("Clickstream.flush()")
    assert stats(page)["retried"] == 2 and stats(page)["queued"] == 2
    # WHEN the page is closed during the outage (a beacon's failure would be invisible: nothing is beaconed)
    page.close()
    sandbox.fault("pass")

    # THEN the next page of the site adopts the orphaned queue and sends it, exactly once
    following = reader.open()
    following.evaluate("Clickstream.flush()")
    final = wait_for(lambda: (s := stats(following))["adopted"] == 2 and s["queued"] == 0 and s, 20,
                     "the next page to adopt and send the queue")
    refused, adopted = reader.posts()[-2:]
    assert refused["status"] == 503 and adopted["status"] == 200 and final["sent"] == 2
    assert adopted["received"] == refused["received"] and adopted["content_type"] == "application/json"
    assert_exactly_once(sandbox, reader.sent_ids())


# --- d. consent -------------------------------------------------------------------------------------------------------

def test_withdrawn_consent_deletes_the_queue_and_sends_nothing_more(reader: Reader, sandbox: Sandbox,
                                                                     browser: Browser) -> None:
    # GIVEN a reader whose events are queued while the collector refuses them
    page = reader.open_post()
    sandbox.fault("503", retryAfter=30)
    track(page, 2, "withdrawn-item")
    page.evaluate("Clickstream.flush()")
    sent_before = reader.sent_ids()
    queued = reader.received_ids() - sent_before
    assert stats(page)["queued"] == 2 and len(queued) == 2

    # WHEN they withdraw consent in the banner ("Privacy choices", "Decline"), and the collector comes back
    withdrawn_at = time.time()
    page.click("[data-privacy]")
    page.click('[data-consent="denied"]')
    sandbox.fault("pass")

    # THEN the queue, the session and the user are deleted, and tracking refuses
    keys: list[str] = page.evaluate("Object.keys(localStorage)")
    assert keys == ["clickstream:consent"]
    assert page.evaluate("localStorage.getItem('clickstream:consent')") == "denied"
    assert stats(page)["queued"] == 0 and stats(page)["consent"] == "denied"
    assert page.evaluate("Clickstream.track('click', 'after-withdrawal')") is False

    # ... the choice persists: another post opens without the banner and tracks no view; closing sends nothing
    page.click(f"{BLOCK} a[data-item-id]")
    page.wait_for_selector(SHOWN)
    assert page.locator("#consent").is_hidden() and stats(page)["queued"] == 0
    page.close()

    # ... and once a barrier event from another reader went all the way, none of this reader's arrived
    other = Reader(browser, sandbox)
    try:
        other.open_post()
        sandbox.wait_in_put_events(other.sent_ids())
    finally:
        other.close()
    later = [e for e in sandbox.posts() if e["at"] >= withdrawn_at and other.session not in e["sessions"]]
    assert later == []  # nothing from the reader, under its old session or a new one
    assert reader.sent_ids() == sent_before
    assert sandbox.put_event_counts(queued) == {} and sandbox.stream_counts(queued) == {}
