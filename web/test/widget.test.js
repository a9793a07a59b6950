import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BASE, browser, click, COLLECT, RECS, reply, settle } from "./fakes.js";

const REPLY = {
  userId: "reader-1",
  items: [
    { itemId: "post-1", score: 0.9, title: "Kinesis at scale", url: "/posts/post-1", category: "engineering" },
    { itemId: "post-2", score: 0.5 },
  ],
  recommendationId: "rid-7c1e",
  source: "personalize",
};

function serving(handler) {
  return (call) => (call.opts.method === "POST" ? reply(200, { accepted: call.events.length, failed: 0, failures: [] }) : handler(call));
}

function setup({ handler = () => reply(200, REPLY), init = {}, consent = "granted" } = {}) {
  const b = browser({ handler: serving(handler) });
  const p = b.open();
  p.tracker.init({ ...BASE, consent, recommendationsUrl: RECS + "/", servingApiKey: "serve-key", ...init });
  const container = p.doc.createElement("div");
  container.appendChild(p.doc.createElement("p")).textContent = "Popular posts";
  return { b, p, container };
}

const gets = (b) => b.net.calls.filter((c) => !c.opts.method);

describe("recommend", () => {
  it("asks for the signed-in reader with the serving key, numResults, filter and session", async () => {
    const { b, p, container } = setup();
    p.tracker.setUser("reader-1");
    const result = await p.tracker.recommend(container, { numResults: 3, filter: "unread" });
    assert.equal(result.ok, true);
    const [call] = gets(b);
    const url = new URL(call.url);
    assert.equal(url.origin + url.pathname, RECS + "/reader-1");
    assert.equal(url.searchParams.get("numResults"), "3");
    assert.equal(url.searchParams.get("filter"), "unread");
    assert.equal(url.searchParams.get("sessionId"), p.tracker.stats().sessionId);
    assert.equal(call.headers["x-api-key"], "serve-key");
  });

  it("asks for an anonymous reader by session id", async () => {
    const { b, p, container } = setup();
    await p.tracker.recommend(container);
    const url = new URL(gets(b)[0].url);
    const sid = p.tracker.stats().sessionId;
    assert.equal(url.pathname.split("/").pop(), sid);
    assert.equal(url.searchParams.get("numResults"), "5");
  });

  it("without consent asks with a throwaway id, stores nothing and sends no session", async () => {
    const { b, p, container } = setup({ consent: null });
    const result = await p.tracker.recommend(container);
    assert.equal(result.ok, true);
    const url = new URL(gets(b)[0].url);
    assert.match(url.pathname, /\/anon-[a-z0-9]+$/);
    assert.equal(url.searchParams.get("sessionId"), null);
    assert.deepEqual([...b.storage.map.keys()], []);
  });

  it("renders links with data-item-id, data-category, the title and url, and a fallback url", async () => {
    const { p, container } = setup({ init: { itemUrl: (id) => `/p/${id}.html` } });
    const result = await p.tracker.recommend(container);
    const links = container.all("a");
    assert.deepEqual(links.map((a) => [a.getAttribute("href"), a.getAttribute("data-item-id"), a.getAttribute("data-category"), a.textContent]), [
      ["/posts/post-1", "post-1", "engineering", "Kinesis at scale"],
      ["/p/post-2.html", "post-2", null, "post-2"],
    ]);
    assert.deepEqual(result.impression, ["post-1", "post-2"]);
    assert.equal(result.recommendationId, "rid-7c1e");
    assert.equal(container.textContent.includes("Popular posts"), false);
  });

  it("never renders a javascript: url from the reply", async () => {
    const bad = { ...REPLY, items: [{ itemId: "post-1", url: "javascript:alert(1)" }, { itemId: "post-2", url: " JavaScript:x" }] };
    const { p, container } = setup({ handler: () => reply(200, bad) });
    await p.tracker.recommend(container);
    assert.deepEqual(container.all("a").map((a) => a.getAttribute("href")), ["/post-1", "/post-2"]);
  });

  it("uses the page's render function", async () => {
    const { p, container } = setup();
    const render = (item) => {
      const el = p.doc.createElement("article");
      el.setAttribute("data-item-id", item.itemId);
      el.textContent = `custom ${item.itemId}`;
      return el;
    };
    await p.tracker.recommend(container, { render });
    assert.deepEqual(container.all("article").map((a) => a.textContent), ["custom post-1", "custom post-2"]);
  });

  it("tags a click on a shown link with the recommendationId and impression, stored within the task, beaconed on close", async () => {
    // GIVEN rendered recommendations
    const { b, p, container } = setup();
    await p.tracker.recommend(container);
    // WHEN the reader clicks the second one, which navigates away
    click(container.all("a")[1]);
    await null; // the click's task ends: its write is done before any navigation
    const queued = b.storage.queues()[0].e;
    p.hide();
    // THEN the click is persisted immediately and leaves with the close-time beacon
    assert.equal(queued.length, 1);
    const [sent] = await p.beaconEvents();
    assert.deepEqual([sent.eventType, sent.itemId, sent.recommendationId, sent.impression], ["click", "post-2", "rid-7c1e", ["post-1", "post-2"]]);
    await b.clock.advance(10000);
    assert.equal(b.net.posts().length, 0);
  });

  it("ignores clicks elsewhere in the container", async () => {
    const { b, p, container } = setup();
    await p.tracker.recommend(container);
    const other = container.appendChild(p.doc.createElement("span"));
    click(other);
    await settle();
    assert.deepEqual(b.storage.queues(), []);
  });

  it("keeps at most 25 items in the impression and drops an invalid recommendationId", async () => {
    const many = { items: Array.from({ length: 30 }, (_, i) => ({ itemId: `post-${i}` })), recommendationId: "x".repeat(41) };
    const { b, p, container } = setup({ handler: () => reply(200, many) });
    const result = await p.tracker.recommend(container, { numResults: 30 });
    assert.equal(result.impression.length, 25);
    click(container.all("a")[29]);
    await settle();
    const [event] = b.storage.queues()[0].e;
    assert.equal(event.itemId, "post-29");
    assert.equal(event.recommendationId, undefined);
    assert.equal(event.impression.length, 25);
  });

  it("re-rendering the same container attaches the new recommendationId, with one listener", async () => {
    let n = 0;
    const { b, p, container } = setup({ handler: () => reply(200, { ...REPLY, recommendationId: `rid-${++n}` }) });
    await p.tracker.recommend(container);
    await p.tracker.recommend(container);
    click(container.all("a")[0]);
    await settle();
    const events = b.storage.queues()[0].e;
    assert.deepEqual(events.map((e) => e.recommendationId), ["rid-2"]);
  });

  for (const [name, handler] of [
    ["a 500", () => reply(500, { message: "boom" })],
    ["a network error", () => { throw new TypeError("Failed to fetch"); }],
    ["a body that is not JSON", () => new Response("<html>", { status: 200 })],
  ]) {
    it(`leaves the container as it was and resolves an error on ${name}`, async () => {
      const { p, container } = setup({ handler });
      const result = await p.tracker.recommend(container);
      assert.equal(result.ok, false);
      assert.equal(typeof result.error, "string");
      assert.equal(container.textContent, "Popular posts");
    });
  }

  it("gives up on a slow serving call after the timeout", async () => {
    const { b, p, container } = setup({ init: { recommendTimeoutMs: 2000 } });
    b.net.hold();
    const pending = p.tracker.recommend(container);
    await b.clock.advance(2000);
    const result = await pending;
    assert.deepEqual(result, { ok: false, error: "timeout" });
    assert.equal(container.textContent, "Popular posts");
    b.net.release();
    await settle();
    assert.equal(container.textContent, "Popular posts");
  });

  it("leaves the container alone on an empty list", async () => {
    const { p, container } = setup({ handler: () => reply(200, { items: [], source: "fallback" }) });
    const result = await p.tracker.recommend(container);
    assert.equal(result.ok, true);
    assert.equal(container.textContent, "Popular posts");
  });

  it("never throws: no recommendationsUrl, no container, before init", async () => {
    const { p } = setup({ init: { recommendationsUrl: undefined } });
    assert.equal((await p.tracker.recommend(null)).ok, false);
    const b = browser();
    const fresh = b.open();
    assert.equal((await fresh.tracker.recommend(null)).ok, false);
    fresh.tracker.init({ collectUrl: COLLECT, recommendationsUrl: RECS });
    assert.equal((await fresh.tracker.recommend(null)).ok, false);
  });
});
