// The built files: the IIFE works as a classic script (window.Clickstream) with the schema's limits compiled in,
// and the ES module exports the same tracker.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import vm from "node:vm";
import { buildTracker } from "../build.mjs";
import { Clock, COLLECT, FakeFetch, FakeStorage, SCHEMA } from "./fakes.js";

const API = ["init", "track", "setUser", "setConsent", "flush", "recommend", "stats"];

function windowLike() {
  const clock = new Clock();
  const net = new FakeFetch();
  const timers = clock.timersFor(1);
  const win = new EventTarget();
  Object.assign(win, {
    Date: { now: () => clock.t }, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout,
    localStorage: new FakeStorage(), fetch: net.fetch, Blob, navigator: { sendBeacon: () => true },
    crypto: globalThis.crypto, URLSearchParams, JSON, Math, Promise, Set, Map, WeakMap, Object, Array, Error,
    RegExp, Number, String,
  });
  win.globalThis = win;
  return { win, net, clock };
}

describe("the built bundle", () => {
  let dir;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "clickstream-build-"));
    await buildTracker(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("exposes Clickstream as a classic script and checks the schema's limits", async () => {
    // GIVEN the IIFE run as a classic script in a window-like context
    const { win, net } = windowLike();
    const code = readFileSync(join(dir, "clickstream.min.js"), "utf8");
    assert.doesNotMatch(code, /\bexport\b|\bimport\b/);
    vm.runInNewContext(code, win);
    // WHEN the page uses it
    const cs = win.Clickstream;
    assert.deepEqual(API.filter((k) => typeof cs[k] !== "function"), []);
    cs.init({ collectUrl: COLLECT, consent: "granted", trackView: false });
    const results = [cs.track("click", "post-1"), cs.track("click", "x".repeat(129)), cs.track("click", "a b")];
    await cs.flush();
    // THEN the limits compiled in from the schema were applied
    assert.deepEqual(results, [true, false, false]);
    assert.equal(cs.stats().invalid, 2);
    assert.equal(net.sentIds().length, 1);
  });

  it("takes its limits from the schema file at build time", async () => {
    // GIVEN a schema whose itemId may have at most 10 characters
    const schema = JSON.parse(JSON.stringify(SCHEMA));
    schema.properties.events.items.properties.itemId.maxLength = 10;
    const other = mkdtempSync(join(tmpdir(), "clickstream-schema-"));
    try {
      writeFileSync(join(other, "schema.json"), JSON.stringify(schema));
      await buildTracker(other, join(other, "schema.json"));
      // WHEN the bundle built from it tracks
      const { win } = windowLike();
      vm.runInNewContext(readFileSync(join(other, "clickstream.min.js"), "utf8"), win);
      win.Clickstream.init({ collectUrl: COLLECT, consent: "granted", trackView: false });
      // THEN the 10-character limit applies
      assert.deepEqual([win.Clickstream.track("click", "x".repeat(10)), win.Clickstream.track("click", "x".repeat(11))], [true, false]);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("exports the same tracker from the ES module build", async () => {
    try {
      const mod = await import(pathToFileURL(join(dir, "clickstream.min.mjs")).href);
      assert.equal(mod.default, globalThis.Clickstream);
      assert.deepEqual(API.filter((k) => typeof mod[k] !== "function"), []);
      assert.equal(mod.track, mod.default.track);
    } finally {
      delete globalThis.Clickstream;
    }
  });
});
