// Verified readers (README, "Verified readers"): a signed-in reader's token goes with its events (in the query, since
// a beacon cannot send headers) and with its recommendation requests (Authorization header); readers without a
// token are anonymous, on the anonymous route, where the stack verifies readers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BASE, browser, COLLECT, RECS, reply } from "./fakes.js";

const TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZWFkZXItMSJ9.c2ln+/=";
const ACCEPT = (call) => (call.opts.method === "POST"
  ? reply(200, { accepted: call.events.length, failed: 0, failures: [] })
  : reply(200, { items: [], source: "fallback" }));

function setup(init = {}, beacon = () => true) {
  const b = browser({ handler: ACCEPT });
  const p = b.open({ beacon });
  p.tracker.init({ ...BASE, recommendationsUrl: RECS, servingApiKey: "k", ...init });
  return { b, p };
}

describe("verified readers", () => {
  it("sends a signed-in reader's events to the verified route with the token in the query", async () => {
    const { b, p } = setup();
    p.tracker.setUser("reader-1", { token: TOKEN });
    p.tracker.track("click", "post-1");
    await p.tracker.flush();
    const [call] = b.net.calls.filter((c) => c.opts.method === "POST");
    const url = new URL(call.url);
    assert.equal(url.origin + url.pathname, COLLECT + "/reader");
    assert.equal(url.searchParams.get("token"), TOKEN);
  });

  it("beacons go to the verified route too, and the token is never stored", async () => {
    const { p } = setup();
    p.tracker.setUser("reader-1", { token: TOKEN });
    p.tracker.track("click", "post-1");
    p.hide();
    assert.equal(new URL(p.beacons[0].url).searchParams.get("token"), TOKEN);
    assert.ok(!JSON.stringify({ ...p.g.localStorage }).includes(TOKEN));
    for (let i = 0; i < p.g.localStorage.length; i++) {
      assert.ok(!p.g.localStorage.getItem(p.g.localStorage.key(i)).includes(TOKEN));
    }
  });

  it("without a token, or after sign-out, events go to the anonymous route", async () => {
    const { b, p } = setup();
    p.tracker.setUser("reader-1", { token: TOKEN });
    p.tracker.setUser(null);
    p.tracker.track("click", "post-1");
    await p.tracker.flush();
    const [call] = b.net.calls.filter((c) => c.opts.method === "POST");
    assert.equal(call.url, COLLECT);
  });

  it("asks for a signed-in reader's recommendations with the token in the Authorization header", async () => {
    const { b, p } = setup({ verifiedReaders: true });
    p.tracker.setUser("reader-1", { token: TOKEN });
    await p.tracker.recommend(p.doc.createElement("div"));
    const [call] = b.net.calls.filter((c) => !c.opts.method);
    assert.equal(new URL(call.url).pathname, "/v1/recommendations/reader-1");
    assert.equal(call.headers.authorization, "Bearer " + TOKEN);
  });

  it("where readers are verified, a reader without a token asks anonymously with an anon- id", async () => {
    const { b, p } = setup({ verifiedReaders: true });
    p.tracker.setUser("reader-1");
    await p.tracker.recommend(p.doc.createElement("div"));
    const [call] = b.net.calls.filter((c) => !c.opts.method);
    assert.equal(new URL(call.url).pathname, "/v1/recommendations/anonymous/anon-" + p.tracker.stats().sessionId);
    assert.equal(call.headers.authorization, undefined);
  });

  it("a stack without reader verification keeps the plain route", async () => {
    const { b, p } = setup();
    await p.tracker.recommend(p.doc.createElement("div"));
    const [call] = b.net.calls.filter((c) => !c.opts.method);
    assert.equal(new URL(call.url).pathname, "/v1/recommendations/" + p.tracker.stats().sessionId);
  });
});
