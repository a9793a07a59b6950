import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  accepted, BASE, browser, COLLECT, FakeDocument, FakeLocks, FakeStorage, reply, settle, started,
} from "./fakes.js";

const ids = (events) => events.map((e) => e.eventId);
const dupes = (list) => list.filter((x, i) => list.indexOf(x) !== i);

describe("consent", () => {
  it("collects nothing, not even in storage, before consent", async () => {
    // GIVEN a page whose reader has not chosen yet
    const b = browser();
    const p = b.open({ doc: new FakeDocument({ itemId: "post-1" }) });
    p.tracker.init({ collectUrl: COLLECT });
    // WHEN the page tracks and time passes
    const tracked = p.tracker.track("click", "post-2");
    await b.clock.advance(60000);
    // THEN nothing was queued, stored or sent
    assert.equal(tracked, false);
    assert.deepEqual([...b.storage.map.keys()], []);
    assert.equal(b.net.calls.length, 0);
    assert.equal(p.tracker.stats().queued, 0);
  });

  it("tracks the page view once consent is granted, and remembers the choice on the next page", async () => {
    // GIVEN a post page without consent
    const b = browser();
    const first = b.open({ doc: new FakeDocument({ itemId: "post-1" }) });
    first.tracker.init({ collectUrl: COLLECT });
    // WHEN the reader consents
    assert.equal(first.tracker.setConsent("granted"), true);
    await b.clock.advance(3000);
    // THEN the view is sent, and the next page load (no consent option) tracks without asking again
    assert.deepEqual(b.net.sentIds().length, 1);
    assert.equal(b.net.posts()[0].events[0].eventType, "view");
    const second = b.open({ doc: new FakeDocument({ itemId: "post-2" }) });
    second.tracker.init({ collectUrl: COLLECT });
    await b.clock.advance(3000);
    assert.deepEqual(b.net.posts().map((c) => c.events[0].itemId), ["post-1", "post-2"]);
    assert.equal(b.storage.getItem("clickstream:consent"), "granted");
  });

  it("rejects a consent value other than granted or denied", () => {
    const b = browser();
    const p = b.open();
    p.tracker.init({ collectUrl: COLLECT });
    assert.equal(p.tracker.setConsent("yes"), false);
    assert.equal(p.tracker.track("click", "post-1"), false);
  });

  it("deletes every queue and the session when consent is withdrawn, and sends nothing more", async () => {
    // GIVEN two tabs with queued events while the collector is down
    const b = browser({ handler: () => { throw new TypeError("Failed to fetch"); } });
    const a = b.open();
    const c = b.open();
    a.tracker.init(BASE);
    c.tracker.init(BASE);
    a.tracker.track("click", "post-1");
    c.tracker.track("click", "post-2");
    await settle(); // writes are coalesced to one per task
    assert.equal(b.storage.queues().length, 2);
    // WHEN the reader withdraws consent in one tab
    a.tracker.setConsent("denied");
    b.net.handler = (call) => accepted(call.events);
    const before = b.net.calls.length;
    await b.clock.advance(600000);
    c.hide();
    // THEN both queues and the session are gone and neither tab sends again (the other tab reads it at send time)
    assert.deepEqual(b.storage.queues(), []);
    assert.equal(b.storage.getItem("clickstream:session"), null);
    assert.equal(b.net.calls.length, before);
    assert.equal(c.beacons.length, 0);
    assert.equal(c.tracker.track("click", "post-3"), false);
  });

  it("does not put back the events of a request in flight when consent is withdrawn meanwhile", async () => {
    // GIVEN a batch in flight that the collector will answer with a partial failure
    const b = browser({ handler: (call) => reply(200, { accepted: 1, failed: 1, failures: [{ index: 1, errorCode: "X" }] }) });
    const p = b.open();
    p.tracker.init({ ...BASE, batchSize: 2 });
    b.net.hold();
    p.tracker.track("click", "post-1");
    p.tracker.track("click", "post-2");
    await settle();
    assert.equal(b.net.posts().length, 1);
    // WHEN consent is withdrawn before the reply comes
    p.tracker.setConsent("denied");
    b.net.release();
    await b.clock.advance(120000);
    // THEN the failed event is not queued again nor resent
    assert.deepEqual(b.storage.queues(), []);
    assert.equal(b.net.posts().length, 1);
  });

  it("starts with consent denied from init and clears what an earlier page left", () => {
    const b = browser();
    b.storage.setItem("clickstream:q:old", JSON.stringify({ h: 0, e: [{ eventId: "x" }] }));
    b.storage.setItem("clickstream:session", JSON.stringify({ id: "s-old", t: b.clock.t }));
    const p = b.open();
    p.tracker.init({ collectUrl: COLLECT, consent: "denied" });
    assert.deepEqual(b.storage.queues(), []);
    assert.equal(b.storage.getItem("clickstream:session"), null);
    assert.equal(p.tracker.track("click", "post-1"), false);
  });
});

describe("event ids, sessions and users", () => {
  it("gives each event a unique id and keeps the session across events and setUser", async () => {
    // GIVEN an anonymous reader
    const { b, p } = started();
    p.tracker.track("click", "post-1");
    // WHEN the reader signs in and clicks again
    assert.equal(p.tracker.setUser("reader-1"), true);
    p.tracker.track("click", "post-2");
    await b.clock.advance(3000);
    // THEN both events share the session; only the second carries the user; the ids differ
    const [e1, e2] = b.net.posts()[0].events;
    assert.equal(e1.sessionId, e2.sessionId);
    assert.equal(e1.userId, undefined);
    assert.equal(e2.userId, "reader-1");
    assert.notEqual(e1.eventId, e2.eventId);
    assert.equal(e1.timestamp, b.clock.t - 3000);
  });

  it("rotates the session after 30 minutes without activity, not before", async () => {
    const { b, p } = started();
    p.tracker.track("click", "post-1");
    await b.clock.advance(29 * 60000);
    p.tracker.track("click", "post-2");
    await b.clock.advance(30 * 60000 + 1);
    p.tracker.track("click", "post-3");
    await b.clock.advance(3000);
    const sessions = b.net.posts().flatMap((c) => c.events.map((e) => e.sessionId));
    assert.equal(sessions[0], sessions[1]);
    assert.notEqual(sessions[1], sessions[2]);
  });

  it("shares the session between tabs of the same origin", async () => {
    const b = browser();
    const a = b.open();
    const c = b.open();
    a.tracker.init(BASE);
    c.tracker.init(BASE);
    a.tracker.track("click", "post-1");
    c.tracker.track("click", "post-2");
    await b.clock.advance(3000);
    const sessions = new Set(b.net.posts().flatMap((x) => x.events.map((e) => e.sessionId)));
    assert.equal(sessions.size, 1);
  });

  it("never sends placeholder or malformed user ids: the reader stays anonymous", async () => {
    const { b, p } = started();
    for (const bad of ["null", "undefined", "", "has space", 42]) {
      assert.equal(p.tracker.setUser(bad), false, String(bad));
      assert.equal(p.tracker.stats().userId, null);
    }
    p.tracker.track("click", "post-1");
    await b.clock.advance(3000);
    assert.equal(b.net.posts()[0].events[0].userId, undefined);
  });

  it("signs out with setUser(null) and remembers a signed-in reader on the next page", async () => {
    const b = browser();
    const first = b.open();
    first.tracker.init(BASE);
    first.tracker.setUser("reader-7");
    const second = b.open();
    second.tracker.init(BASE);
    assert.equal(second.tracker.stats().userId, "reader-7");
    assert.equal(second.tracker.setUser(null), true);
    const third = b.open();
    third.tracker.init(BASE);
    assert.equal(third.tracker.stats().userId, null);
  });
});

describe("validation before queueing", () => {
  it("refuses a bad event, counts it, and sends the good ones of the same batch", async () => {
    // GIVEN a collector that, like the API, fails a whole batch with 400 if one event is invalid
    const { b, p } = started();
    // WHEN the page tracks good and bad events
    const results = [
      p.tracker.track("click", "post-1"),
      p.tracker.track("click", "post with space"),
      p.tracker.track("click", "undefined"),
      p.tracker.track("click", undefined),
      p.tracker.track("purchase", "post-2"),
      p.tracker.track("click", "post-3", { properties: { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 } }),
      p.tracker.track("click", "post-4", { impression: Array.from({ length: 26 }, (_, i) => `p${i}`) }),
      p.tracker.track("click", "post-5", { recommendationId: "r".repeat(41) }),
      p.tracker.track("click", "post-6", { properties: { n: Number.NaN } }),
      p.tracker.track("click", "post-7", { properties: { section: "engineering", depth: 0.5, ok: true } }),
    ];
    await b.clock.advance(3000);
    // THEN only the valid ones were queued and sent, in one batch
    assert.deepEqual(results, [true, false, false, false, false, false, false, false, false, true]);
    assert.equal(p.tracker.stats().invalid, 8);
    assert.deepEqual(b.net.posts().map((c) => c.events.map((e) => e.itemId)), [["post-1", "post-7"]]);
  });

  it("tracks nothing for a crawler's user agent, and a page can turn that off", () => {
    const b = browser();
    const crawler = b.open();
    crawler.g.navigator.userAgent = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    crawler.tracker.init(BASE);
    assert.equal(crawler.tracker.track("click", "post-1"), false);
    assert.equal(crawler.tracker.stats().bot, true);
    const allowed = b.open();
    allowed.g.navigator.userAgent = crawler.g.navigator.userAgent;
    allowed.tracker.init({ ...BASE, botPattern: null });
    assert.equal(allowed.tracker.track("click", "post-1"), true);
    const headless = b.open();
    headless.g.navigator.userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";
    headless.tracker.init(BASE);
    assert.equal(headless.tracker.track("click", "post-1"), true); // the browser tests' Chromium is a reader
  });

  it("uses the event types given at init", () => {
    const b = browser();
    const p = b.open();
    p.tracker.init({ ...BASE, eventTypes: ["view", "purchase"] });
    assert.equal(p.tracker.track("purchase", "post-1"), true);
    assert.equal(p.tracker.track("click", "post-1"), false);
  });

  it("copies the options: a caller mutating its object later does not change the queued event", async () => {
    const { b, p } = started();
    const properties = { section: "a" };
    p.tracker.track("click", "post-1", { properties });
    properties.section = "b c d";
    properties.extra = { nested: true };
    await b.clock.advance(3000);
    assert.deepEqual(b.net.posts()[0].events[0].properties, { section: "a" });
  });
});

describe("batching and sending", () => {
  it("sends a full batch at once and the rest after the interval, as JSON with the API key", async () => {
    const b = browser();
    const p = b.open();
    p.tracker.init({ ...BASE, apiKey: "key-1", batchSize: 3, flushInterval: 5000 });
    for (let i = 0; i < 2; i++) p.tracker.track("click", `post-${i}`);
    await settle();
    assert.equal(b.net.posts().length, 0);
    p.tracker.track("click", "post-2");
    await settle();
    assert.equal(b.net.posts().length, 1);
    assert.equal(b.net.posts()[0].events.length, 3);
    p.tracker.track("click", "post-3");
    await b.clock.advance(4999);
    assert.equal(b.net.posts().length, 1);
    await b.clock.advance(1);
    const calls = b.net.posts();
    assert.equal(calls.length, 2);
    assert.equal(calls[0].url, COLLECT);
    assert.equal(calls[0].headers["content-type"], "application/json");
    assert.equal(calls[0].headers["x-api-key"], "key-1");
    assert.equal(calls[0].opts.keepalive, true);
    assert.deepEqual(Object.keys(JSON.parse(calls[0].body)), ["events"]);
    assert.deepEqual(b.storage.queues(), []);
    assert.equal(p.tracker.stats().sent, 4);
  });

  it("waits for the interval on page load too, when there was nothing to adopt", async () => {
    const b = browser({ locks: new FakeLocks() });
    const p = b.open({ doc: new FakeDocument({ itemId: "post-1" }) });
    p.tracker.init({ collectUrl: COLLECT, consent: "granted", flushInterval: 5000 });
    await b.clock.advance(4999);
    assert.equal(b.net.posts().length, 0);
    await b.clock.advance(1);
    assert.equal(b.net.posts().length, 1);
  });

  it("sends no x-api-key header without an apiKey", async () => {
    const { b, p } = started();
    p.tracker.track("click", "post-1");
    await p.tracker.flush();
    assert.equal(b.net.posts()[0].headers["x-api-key"], undefined);
  });

  it("does not send events in flight again from a concurrent flush", async () => {
    const { b, p } = started();
    b.net.hold();
    p.tracker.track("click", "post-1");
    const first = p.tracker.flush();
    await settle();
    p.tracker.track("click", "post-2");
    const second = p.tracker.flush();
    await settle();
    assert.equal(b.net.posts().length, 1);
    b.net.release();
    await Promise.all([first, second]);
    await p.tracker.flush();
    assert.deepEqual(b.net.posts().map((c) => c.events.map((e) => e.itemId)), [["post-1"], ["post-2"]]);
    assert.deepEqual(dupes(b.net.sentIds()), []);
  });

  it("keeps requests small enough for keepalive", async () => {
    const b = browser();
    const p = b.open();
    p.tracker.init({ ...BASE, batchSize: 500, keepaliveBytes: 2000 });
    b.net.hold();
    for (let i = 0; i < 40; i++) p.tracker.track("click", `post-${i}`, { properties: { section: "x".repeat(60) } });
    b.net.release();
    await p.tracker.flush();
    await b.clock.advance(0);
    const sizes = b.net.posts().map((c) => c.body.length);
    assert.ok(sizes.length > 1);
    assert.ok(Math.max(...sizes) <= 2000, String(sizes));
    assert.equal(b.net.sentIds().length, 40);
  });
});

describe("retries", () => {
  it("resends only the events named in failures[].index", async () => {
    // GIVEN a collector that refuses the 2nd and 4th events of the first call (Kinesis throttling)
    let n = 0;
    const b = browser({
      handler: (call) => (n++ === 0
        ? reply(200, { accepted: 2, failed: 2, failures: [{ index: 1, errorCode: "ProvisionedThroughputExceededException" }, { index: 3, errorCode: "X" }] })
        : accepted(call.events)),
    });
    const p = b.open();
    p.tracker.init({ ...BASE, batchSize: 4 });
    for (let i = 0; i < 4; i++) p.tracker.track("click", `post-${i}`);
    // WHEN the retry happens
    await b.clock.advance(10000);
    // THEN the second call carried exactly the two refused events and nothing was sent twice
    const calls = b.net.posts();
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[1].events.map((e) => e.itemId), ["post-1", "post-3"]);
    assert.equal(b.net.delivered.length, 4);
    assert.deepEqual(dupes(b.net.delivered), []);
    assert.equal(p.tracker.stats().sent, 4);
    assert.equal(p.tracker.stats().retried, 2);
  });

  for (const status of [429, 503]) {
    it(`waits at least Retry-After seconds after ${status}, plus bounded jitter`, async () => {
      let n = 0;
      const b = browser({ handler: (call) => (n++ === 0 ? reply(status, { message: "slow down" }, { "retry-after": "3" }) : accepted(call.events)) });
      const p = b.open({ random: () => 0.99 });
      p.tracker.init(BASE);
      p.tracker.track("click", "post-1");
      await p.tracker.flush();
      await b.clock.advance(2999);
      p.tracker.flush(); // an explicit flush does not jump the wait either
      await settle();
      assert.equal(b.net.posts().length, 1);
      await b.clock.advance(3000 * 0.5);
      assert.equal(b.net.posts().length, 2);
      assert.equal(p.tracker.stats().sent, 1);
    });
  }

  it("retries when the backoff timer fires a little before Date.now() reaches the end of the wait", async () => {
    // Chromium runs a timer whose delay has a fraction up to 1 ms before Date.now() catches up.
    let n = 0;
    const b = browser({ handler: (call) => (n++ === 0 ? reply(503, { message: "busy" }, { "retry-after": "1" }) : accepted(call.events)) });
    const timersFor = b.clock.timersFor.bind(b.clock);
    b.clock.timersFor = (owner) => {
      const timers = timersFor(owner);
      return { ...timers, setTimeout: (fn, ms = 0) => timers.setTimeout(fn, Math.max(0, ms - 1)) };
    };
    const p = b.open({ random: () => 0 });
    p.tracker.init(BASE);
    p.tracker.track("click", "post-1");
    await p.tracker.flush();
    await b.clock.advance(1000);
    assert.equal(b.net.posts().length, 2);
    assert.equal(p.tracker.stats().sent, 1);
  });

  it("backs off exponentially on network errors and 5xx, then delivers once", async () => {
    let n = 0;
    const b = browser({
      handler: (call) => {
        n++;
        if (n === 1) throw new TypeError("Failed to fetch");
        if (n === 2) return reply(500, { message: "The events could not be accepted; retry later." });
        return accepted(call.events);
      },
    });
    const p = b.open({ random: () => 0 });
    p.tracker.init({ ...BASE, retryBaseMs: 1000 });
    p.tracker.track("click", "post-1");
    await p.tracker.flush();
    const t1 = b.clock.t;
    await b.clock.advance(999);
    assert.equal(b.net.posts().length, 1);
    await b.clock.advance(1);
    assert.equal(b.net.posts().length, 2); // 1 s after the network error
    await b.clock.advance(1999);
    assert.equal(b.net.posts().length, 2);
    await b.clock.advance(1);
    assert.equal(b.net.posts().length, 3); // 2 s after the 500
    assert.equal(b.clock.t - t1, 3000);
    assert.equal(p.tracker.stats().retried, 2);
    assert.deepEqual(b.storage.queues(), []);
    assert.equal(new Set(b.net.sentIds()).size, 1);
  });

  it("caps the backoff at retryMaxMs", async () => {
    const b = browser({ handler: () => reply(503, {}) });
    const p = b.open({ random: () => 0 });
    p.tracker.init({ ...BASE, retryBaseMs: 1000, retryMaxMs: 4000 });
    p.tracker.track("click", "post-1");
    await p.tracker.flush();
    await b.clock.advance(1000 + 2000 + 4000 + 4000 + 4000);
    assert.equal(b.net.posts().length, 6);
  });

  it("isolates the event a 400 names by bisecting, drops only it and sends the others once", async () => {
    // GIVEN a collector stricter than the tracker's limits about one item
    const b = browser({ handler: (call) => (call.events.some((e) => e.itemId === "poison") ? reply(400, { message: "Invalid request body" }) : accepted(call.events)) });
    const p = b.open();
    p.tracker.init({ ...BASE, batchSize: 7 });
    for (const id of ["a", "b", "c", "poison", "d", "e", "f"]) p.tracker.track("click", id);
    await b.clock.advance(3000);
    const delivered = b.net.posts().filter((c) => !c.events.some((e) => e.itemId === "poison")).flatMap((c) => c.events.map((e) => e.itemId));
    assert.deepEqual(delivered.sort(), ["a", "b", "c", "d", "e", "f"]);
    assert.equal(p.tracker.stats().rejected, 1);
    assert.deepEqual(b.storage.queues(), []);
  });

  it("keeps the events when the collector answers 403 (a wrong key) and retries later", async () => {
    const b = browser({ handler: () => reply(403, { message: "Forbidden" }) });
    const p = b.open();
    p.tracker.init(BASE);
    p.tracker.track("click", "post-1");
    await p.tracker.flush();
    assert.equal(p.tracker.stats().queued, 1);
    assert.equal(p.tracker.stats().rejected, 0);
  });
});

describe("the persisted queue", () => {
  it("drops the oldest events beyond maxQueue and counts them", async () => {
    const b = browser({ handler: () => { throw new TypeError("offline"); } });
    const p = b.open();
    p.tracker.init({ ...BASE, maxQueue: 5 });
    for (let i = 0; i < 8; i++) p.tracker.track("click", `post-${i}`);
    await settle();
    const queued = b.storage.queues()[0].e.map((e) => e.itemId);
    assert.deepEqual(queued, ["post-3", "post-4", "post-5", "post-6", "post-7"]);
    assert.equal(p.tracker.stats().dropped, 3);
  });

  it("writes the queue once per task however many events the task tracks", async () => {
    const b = browser({ handler: () => { throw new TypeError("offline"); } });
    const writes = [];
    const setItem = b.storage.setItem.bind(b.storage);
    b.storage.setItem = (k, v) => { if (k.startsWith("clickstream:q:")) writes.push(k); setItem(k, v); };
    const p = b.open();
    p.tracker.init({ ...BASE, batchSize: 100 });
    for (let i = 0; i < 10; i++) p.tracker.track("click", `post-${i}`);
    await null;
    assert.equal(writes.length, 1);
    assert.equal(b.storage.queues()[0].e.length, 10);
  });

  it("bounds the queue's size in characters", async () => {
    const b = browser({ handler: () => { throw new TypeError("offline"); } });
    const p = b.open();
    p.tracker.init({ ...BASE, maxQueueBytes: 3000 });
    for (let i = 0; i < 50; i++) {
      p.tracker.track("click", `post-${i}`);
      await settle();
    }
    const stored = [...b.storage.map].find(([k]) => k.startsWith("clickstream:q:"))[1];
    assert.ok(stored.length <= 3000, String(stored.length));
    const queued = b.storage.queues()[0].e;
    assert.equal(queued.at(-1).itemId, "post-49");
    assert.equal(p.tracker.stats().dropped, 50 - queued.length);
  });

  it("survives a full localStorage: drops the oldest, counts them, never throws", async () => {
    // GIVEN a nearly full origin storage
    const storage = new FakeStorage({ quota: 4000 });
    storage.setItem("site-data", "x".repeat(2000));
    const b = browser({ storage, handler: () => { throw new TypeError("offline"); } });
    const p = b.open();
    p.tracker.init(BASE);
    // WHEN many events are tracked
    for (let i = 0; i < 30; i++) {
      assert.equal(p.tracker.track("click", `post-${i}`), true);
      await settle();
    }
    // THEN the newest are kept within the quota and the losses are counted
    const queued = b.storage.queues()[0].e;
    assert.equal(queued.at(-1).itemId, "post-29");
    assert.ok(p.tracker.stats().dropped > 0);
    assert.equal(p.tracker.stats().dropped + queued.length, 30);
  });

  it("still tracks within the page when localStorage is unavailable", async () => {
    const b = browser({ storage: new FakeStorage({ broken: true }) });
    const p = b.open();
    p.tracker.init(BASE);
    assert.equal(p.tracker.track("click", "post-1"), true);
    await p.tracker.flush();
    assert.equal(b.net.sentIds().length, 1);
  });

  it("replays on the next page what could not be sent before the page closed", async () => {
    // GIVEN a page whose collector is down and whose beacon is refused
    const b = browser({ handler: () => { throw new TypeError("offline"); } });
    const first = b.open({ beacon: () => false });
    first.tracker.init(BASE);
    first.tracker.track("click", "post-1");
    first.tracker.track("click", "post-2");
    await b.clock.advance(3000);
    first.hide();
    first.kill();
    // WHEN the collector is back and the next page loads
    b.net.handler = (call) => accepted(call.events);
    const second = b.open();
    second.tracker.init(BASE);
    await b.clock.advance(3000);
    // THEN the next page adopted and sent the events, once
    const delivered = b.net.posts().filter((c) => c.events).slice(-1)[0].events.map((e) => e.itemId);
    assert.deepEqual(delivered, ["post-1", "post-2"]);
    assert.equal(second.tracker.stats().adopted, 2);
    assert.deepEqual(b.storage.queues(), []);
  });
});

describe("page close", () => {
  it("sends what is queued with a beacon typed exactly text/plain and forgets it", async () => {
    const { b, p } = started();
    p.tracker.track("click", "post-1");
    p.tracker.track("click", "post-2");
    p.hide();
    assert.equal(p.beacons.length, 1);
    assert.equal(p.beacons[0].url, COLLECT);
    assert.equal(p.beacons[0].data.type, "text/plain");
    assert.deepEqual((await p.beaconEvents()).map((e) => e.itemId), ["post-1", "post-2"]);
    assert.deepEqual(b.storage.queues(), []);
    assert.equal(p.tracker.stats().beaconed, 2);
    await b.clock.advance(10000);
    assert.equal(b.net.posts().length, 0);
  });

  it("does not beacon events already in flight, and the next page does not resend them", async () => {
    // GIVEN a keepalive request in flight and one more queued event
    const { b, p } = started();
    b.net.hold();
    p.tracker.track("click", "post-1");
    p.tracker.flush();
    await settle();
    p.tracker.track("click", "post-2");
    // WHEN the page closes
    p.hide();
    p.kill();
    const next = b.open();
    next.tracker.init(BASE);
    b.net.release();
    await b.clock.advance(10000);
    // THEN the beacon carried only the queued event, and every event went out exactly once
    assert.deepEqual((await p.beaconEvents()).map((e) => e.itemId), ["post-2"]);
    const all = [...b.net.sentIds(), ...ids(await p.beaconEvents())];
    assert.equal(all.length, 2);
    assert.deepEqual(dupes(all), []);
  });

  it("does not beacon the events of a request too large for keepalive; they stay for the next page", async () => {
    const b = browser();
    const p = b.open();
    p.tracker.init({ ...BASE, keepaliveBytes: 100 });
    b.net.hold();
    p.tracker.track("click", "post-1");
    p.tracker.flush();
    await settle();
    assert.equal(b.net.posts()[0].opts.keepalive, false);
    p.tracker.track("click", "post-2");
    p.hide();
    assert.deepEqual((await p.beaconEvents()).map((e) => e.itemId), ["post-2"]);
    assert.deepEqual(b.storage.queues()[0].e.map((e) => e.itemId), ["post-1"]);
  });

  it("with an API key, closes with small keepalive fetches carrying the key, within the budget", async () => {
    const b = browser();
    const p = b.open();
    p.tracker.init({ ...BASE, apiKey: "key-1", batchSize: 500, keepaliveBytes: 1500, closeBudgetBytes: 5000 });
    b.net.hold();
    for (let i = 0; i < 60; i++) p.tracker.track("click", `post-${i}`);
    p.hide();
    const calls = b.net.posts();
    assert.equal(p.beacons.length, 0);
    assert.ok(calls.length >= 2);
    assert.ok(calls.every((c) => c.opts.keepalive && c.headers["x-api-key"] === "key-1" && c.body.length <= 1500));
    assert.ok(calls.reduce((n, c) => n + c.body.length, 0) <= 5000);
    const sentNow = b.net.sentIds().length;
    assert.equal(sentNow + p.tracker.stats().queued, 60); // the rest waits in storage
    b.net.release();
    await settle();
    assert.equal(p.tracker.stats().sent, sentNow);
  });

  it("puts back the events a close-time keepalive request failed for, when the page lived on", async () => {
    const b = browser({ handler: () => reply(503, {}, { "retry-after": "1" }) });
    const p = b.open();
    p.tracker.init({ ...BASE, apiKey: "key-1" });
    p.tracker.track("click", "post-1");
    b.doc = p.doc;
    p.doc.setVisibility("hidden"); // tab switched away, not closed
    assert.equal(p.tracker.stats().queued, 0);
    await settle();
    assert.equal(p.tracker.stats().queued, 1);
    b.net.handler = (call) => accepted(call.events);
    await b.clock.advance(5000);
    assert.equal(p.tracker.stats().sent, 1);
    assert.equal(new Set(b.net.sentIds()).size, 1);
  });

  it("does not beacon while backing off from a failing collector: the next page sends the events", async () => {
    // GIVEN a collector answering 503 when the page closes
    const b = browser({ handler: () => reply(503, {}, { "retry-after": "30" }) });
    const first = b.open();
    first.tracker.init(BASE);
    first.tracker.track("click", "post-1");
    await first.tracker.flush();
    // WHEN the page closes and the reader opens another page once the collector is back
    first.hide();
    first.kill();
    b.net.handler = (call) => accepted(call.events);
    const second = b.open();
    second.tracker.init(BASE);
    await b.clock.advance(3000);
    // THEN no beacon went into the failing collector; the next page delivered the event
    assert.equal(first.beacons.length, 0);
    assert.equal(b.net.delivered.length, 1);
    assert.equal(second.tracker.stats().adopted, 1);
  });

  it("closing while a retry is in flight: no beacon, and the retry's events are not resent by the next page", async () => {
    // GIVEN a failed first attempt, then a retry in flight (keepalive) when the page closes
    let n = 0;
    const b = browser({ handler: (call) => (n++ === 0 ? reply(503, {}, { "retry-after": "1" }) : accepted(call.events)) });
    const first = b.open();
    first.tracker.init(BASE);
    first.tracker.track("click", "post-1");
    await first.tracker.flush();
    first.tracker.track("click", "post-2");
    b.net.hold();
    await b.clock.advance(1500);
    assert.equal(first.tracker.stats().inflight, 2);
    // WHEN the page closes and another loads, then the retry succeeds
    first.hide();
    first.kill();
    const second = b.open();
    second.tracker.init(BASE);
    b.net.release();
    await b.clock.advance(10000);
    // THEN nothing was beaconed and each event was delivered once
    assert.equal(first.beacons.length, 0);
    assert.equal(b.net.delivered.length, 2);
    assert.deepEqual(dupes(b.net.delivered), []);
  });

  it("leaves what the beacon budget cannot take for the next page", async () => {
    const b = browser();
    const p = b.open();
    p.tracker.init({ ...BASE, batchSize: 500, keepaliveBytes: 1000, closeBudgetBytes: 2500 });
    b.net.hold();
    for (let i = 0; i < 40; i++) p.tracker.track("click", `post-${i}`);
    p.hide();
    const beaconed = (await p.beaconEvents()).length;
    assert.ok(beaconed > 0 && beaconed < 40);
    assert.equal(b.storage.queues()[0].h, 0); // orphaned: the next page may adopt it right away
    assert.equal(b.storage.queuedIds().length, 40 - beaconed);
  });
});

describe("two tabs", () => {
  it("each tab sends only its own events while both are alive", async () => {
    const b = browser({ locks: new FakeLocks() });
    const a = b.open();
    const c = b.open();
    a.tracker.init(BASE);
    c.tracker.init(BASE);
    b.net.hold();
    a.tracker.track("click", "a-1");
    c.tracker.track("click", "c-1");
    await b.clock.advance(3000);
    a.tracker.track("click", "a-2");
    await b.clock.advance(600000);
    b.net.release();
    await b.clock.advance(10000);
    const all = b.net.sentIds();
    assert.equal(all.length, 3);
    assert.deepEqual(dupes(all), []);
  });

  it("a tab adopts the queue of a tab that crashed (no heartbeat) and sends it once", async () => {
    // GIVEN tab A with unsent events that dies without pagehide
    const b = browser({ locks: new FakeLocks(), handler: () => { throw new TypeError("offline"); } });
    const a = b.open();
    const c = b.open();
    a.tracker.init({ ...BASE, staleMs: 60000 });
    c.tracker.init({ ...BASE, staleMs: 60000 });
    a.tracker.track("click", "a-1");
    a.kill();
    b.net.handler = (call) => accepted(call.events);
    // WHEN less than staleMs passes, B leaves A's queue alone; after, B adopts it
    await b.clock.advance(40000);
    assert.equal(b.net.sentIds().length, 0);
    await b.clock.advance(120000);
    // THEN it was sent once, by B
    assert.equal(b.net.sentIds().length, 1);
    assert.equal(c.tracker.stats().adopted, 1);
    assert.deepEqual(b.storage.queues(), []);
  });

  it("a frozen tab whose queue was adopted meanwhile does not send those events again when it wakes", async () => {
    // GIVEN tab A with an unsent event, frozen in the background past staleMs while the collector is down
    const b = browser({ locks: new FakeLocks(), handler: () => { throw new TypeError("offline"); } });
    const a = b.open();
    const c = b.open();
    a.tracker.init({ ...BASE, staleMs: 60000 });
    c.tracker.init({ ...BASE, staleMs: 60000 });
    a.tracker.track("click", "a-1");
    await a.tracker.flush();
    a.freeze();
    b.net.handler = (call) => accepted(call.events);
    // WHEN tab C adopts and sends it, then A wakes up and tracks again
    await b.clock.advance(120000);
    assert.equal(c.tracker.stats().adopted, 1);
    a.thaw();
    a.tracker.track("click", "a-2");
    await b.clock.advance(120000);
    // THEN each event was delivered exactly once
    assert.equal(b.net.delivered.length, 2);
    assert.deepEqual(dupes(b.net.delivered), []);
  });

  it("two tabs loading at once adopt an orphaned queue only once", async () => {
    const b = browser({ locks: new FakeLocks() });
    b.storage.setItem("clickstream:consent", "granted");
    const orphan = { eventId: "e-orphan", eventType: "click", sessionId: "s-1", itemId: "post-1", timestamp: b.clock.t - 1000 };
    b.storage.setItem("clickstream:q:gone", JSON.stringify({ h: 0, e: [orphan] }));
    const a = b.open();
    const c = b.open();
    a.tracker.init({ collectUrl: COLLECT, trackView: false });
    c.tracker.init({ collectUrl: COLLECT, trackView: false });
    await b.clock.advance(5000);
    assert.deepEqual(b.net.sentIds(), ["e-orphan"]);
    assert.equal(a.tracker.stats().adopted + c.tracker.stats().adopted, 1);
    // (a fake's storage is consistent across pages; in a browser the Web Lock is what serialises the adoption)
    assert.ok(b.locks.names.length >= 2 && b.locks.names.every((n) => n === "clickstream:adopt"));
  });

  it("a page restored from the back-forward cache does not resend what the next page adopted", async () => {
    // GIVEN a page closed (into the bfcache) with an unsent event, adopted and sent by the next page
    const b = browser({ handler: () => { throw new TypeError("offline"); } });
    const first = b.open({ beacon: () => false });
    first.tracker.init(BASE);
    first.tracker.track("click", "post-1");
    first.hide();
    first.freeze();
    b.net.handler = (call) => accepted(call.events);
    const second = b.open();
    second.tracker.init(BASE);
    await b.clock.advance(3000);
    // WHEN the reader goes back (no storage event reaches a cached page) and the page tracks again
    first.g.dispatchEvent(Object.assign(new Event("pageshow"), { persisted: true }));
    first.thaw();
    first.tracker.track("click", "post-2");
    await b.clock.advance(10000);
    // THEN post-1 went out once
    assert.deepEqual(b.net.posts().flatMap((c) => c.events.map((e) => e.itemId)).filter((i) => i === "post-1").length, 1);
    assert.equal(b.net.delivered.length, 2);
  });

  it("a tab restored from the back-forward cache keeps its queue alive", async () => {
    const b = browser({ handler: () => { throw new TypeError("offline"); } });
    const p = b.open({ beacon: () => false });
    p.tracker.init({ ...BASE, staleMs: 60000 });
    p.tracker.track("click", "post-1");
    p.hide();
    assert.equal(b.storage.queues()[0].h, 0);
    const e = new Event("pageshow");
    e.persisted = true;
    p.g.dispatchEvent(e);
    await settle();
    assert.equal(b.storage.queues()[0].h, b.clock.t);
  });
});

describe("automatic view and read", () => {
  it("tracks view on load with the item from the page's meta tag", async () => {
    const b = browser();
    const p = b.open({ doc: new FakeDocument({ itemId: "post-9" }) });
    p.tracker.init({ collectUrl: COLLECT, consent: "granted" });
    await b.clock.advance(3000);
    assert.deepEqual(b.net.posts()[0].events.map((e) => [e.eventType, e.itemId]), [["view", "post-9"]]);
  });

  it("tracks nothing automatically on a page without an item", async () => {
    const b = browser();
    const p = b.open();
    p.tracker.init({ collectUrl: COLLECT, consent: "granted", readDwellMs: 10 });
    p.scrollTo(5000);
    await b.clock.advance(60000);
    assert.equal(b.net.posts().length, 0);
  });

  it("tracks read once the page was visible long enough, not counting hidden time, and only once", async () => {
    // GIVEN a long post scrolled past the depth threshold
    const b = browser();
    const p = b.open({ doc: new FakeDocument({ itemId: "post-1", scrollHeight: 4000 }), innerHeight: 1000 });
    p.tracker.init({ collectUrl: COLLECT, consent: "granted", trackView: false, readDepth: 0.75, readDwellMs: 20000 });
    p.scrollTo(2100);
    // WHEN the page is visible 5 s, hidden 30 s, then visible again
    await b.clock.advance(5000);
    p.doc.setVisibility("hidden");
    await b.clock.advance(30000);
    p.doc.setVisibility("visible");
    await b.clock.advance(14999);
    // THEN read waits for 20 s of visible time, is sent once, with the depth and dwell
    assert.equal(b.net.posts().length, 0);
    await b.clock.advance(1);
    p.scrollTo(3000);
    await b.clock.advance(60000);
    const reads = b.net.posts().flatMap((c) => c.events).filter((e) => e.eventType === "read");
    assert.equal(reads.length, 1);
    assert.deepEqual(reads[0].properties, { scrollDepth: 0.78, dwellSeconds: 20 });
  });

  it("tracks read only once the reader scrolled to the configured depth", async () => {
    const b = browser();
    const p = b.open({ doc: new FakeDocument({ itemId: "post-1", scrollHeight: 4000 }), innerHeight: 1000 });
    p.tracker.init({ collectUrl: COLLECT, consent: "granted", trackView: false, readDepth: 0.9, readDwellMs: 1000 });
    p.scrollTo(2500); // 87.5 %
    await b.clock.advance(60000);
    assert.equal(b.net.posts().length, 0);
    p.scrollTo(2600); // 90 %
    await b.clock.advance(3000);
    const [read] = b.net.posts()[0].events;
    assert.equal(read.eventType, "read");
    assert.equal(read.properties.scrollDepth, 0.9);
  });
});
