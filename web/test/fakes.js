// Small fakes for the tracker's browser dependencies: a shared clock with per-page timers, localStorage (with a
// quota), fetch (scripted replies, optionally held in flight), sendBeacon, Web Locks, window/document events and
// a minimal DOM for the widget.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { limitsFromSchema } from "../src/limits.js";
import { createTracker } from "../src/tracker.js";

const here = dirname(fileURLToPath(import.meta.url));
export const SCHEMA_PATH = join(here, "..", "..", "handlers", "common", "schemas", "collect_events.schema.json");
export const SCHEMA = JSON.parse(readFileSync(SCHEMA_PATH, "utf8"));
export const LIMITS = limitsFromSchema(SCHEMA);
export const COLLECT = "https://collect.example/v1/events";
export const RECS = "https://serve.example/v1/recommendations";
export const T0 = Date.UTC(2026, 11, 1, 9, 0, 0);

/** Lets pending promise callbacks (fake fetch replies, res.json()) run. */
export async function settle() {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** One time source for every page; each page registers its timers here and can be killed (a crashed tab). */
export class Clock {
  constructor(t = T0) {
    this.t = t;
    this.timers = [];
    this.seq = 0;
    this.dead = new Set();
    this.frozen = new Set();
  }

  timersFor(owner) {
    return {
      setTimeout: (fn, ms = 0) => {
        const id = ++this.seq;
        if (this.dead.has(owner)) return id;
        this.timers.push({ id, at: this.t + Math.max(0, ms), fn, owner });
        return id;
      },
      clearTimeout: (id) => { this.timers = this.timers.filter((x) => x.id !== id); },
    };
  }

  /** A frozen (background) tab: its timers wait until it is thawed. */
  freeze(owner) { this.frozen.add(owner); }

  thaw(owner) { this.frozen.delete(owner); }

  /** A crashed tab: its timers never fire and it schedules no more. */
  kill(owner) {
    this.dead.add(owner);
    this.timers = this.timers.filter((x) => x.owner !== owner);
  }

  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((x) => x.at <= end && !this.frozen.has(x.owner)).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
    await settle();
  }
}

export class QuotaError extends Error {
  constructor() {
    super("The quota has been exceeded.");
    this.name = "QuotaExceededError";
  }
}

/** localStorage over a Map; `quota` bounds the total characters of keys and values, like a browser's. */
export class FakeStorage {
  constructor({ quota = Infinity, broken = false } = {}) {
    this.map = new Map();
    this.quota = quota;
    this.broken = broken;
  }

  check() {
    if (this.broken) throw new Error("SecurityError: access denied");
  }

  getItem(k) { this.check(); return this.map.has(k) ? this.map.get(k) : null; }

  setItem(k, v) {
    this.check();
    const s = String(v);
    let used = k.length + s.length;
    for (const [key, value] of this.map) if (key !== k) used += key.length + value.length;
    if (used > this.quota) throw new QuotaError();
    this.map.set(k, s);
  }

  removeItem(k) { this.check(); this.map.delete(k); }

  key(i) { this.check(); return [...this.map.keys()][i] ?? null; }

  get length() { this.check(); return this.map.size; }

  queues() {
    return [...this.map].filter(([k]) => k.startsWith("clickstream:q:")).map(([k, v]) => ({ key: k, ...JSON.parse(v) }));
  }

  queuedIds() {
    return this.queues().flatMap((q) => q.e.map((e) => e.eventId));
  }
}

export function reply(status, body = {}, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

export const accepted = (events) => reply(200, { accepted: events.length, failed: 0, failures: [] });

/**
 * fetch for every page: records each call; `handler(call)` answers (a Response, a promise of one, or throws for a
 * network error). Default handler accepts everything. `hold()` keeps the next replies pending until released.
 */
export class FakeFetch {
  constructor(handler = (call) => accepted(call.events)) {
    this.calls = [];
    this.handler = handler;
    this.held = [];
    this.holding = false;
    this.delivered = []; // ids of the events the collector accepted (not named in failures)
    this.fetch = async (url, opts = {}) => {
      if (opts.signal?.aborted) throw new DOMException("aborted", "AbortError");
      const call = { url: String(url), opts, headers: opts.headers || {}, body: opts.body };
      if (opts.method === "POST") call.events = JSON.parse(opts.body).events;
      this.calls.push(call);
      if (this.holding) {
        await new Promise((resolve, reject) => {
          this.held.push(resolve);
          opts.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
        });
      }
      const res = await this.handler(call);
      if (res.status === 200 && call.events) {
        const failed = new Set(((await res.clone().json()).failures || []).map((f) => f.index));
        call.events.forEach((e, i) => { if (!failed.has(i)) this.delivered.push(e.eventId); });
      }
      return res;
    };
  }

  hold() { this.holding = true; }

  release() {
    this.holding = false;
    for (const resolve of this.held.splice(0)) resolve();
  }

  posts() { return this.calls.filter((c) => c.opts.method === "POST"); }

  sentIds() { return this.posts().flatMap((c) => c.events.map((e) => e.eventId)); }
}

/** Web Locks: one holder per name at a time, others wait (what keeps two tabs from adopting the same queue). */
export class FakeLocks {
  constructor() { this.tails = new Map(); this.names = []; }

  request(name, fn) {
    this.names.push(name);
    const prev = this.tails.get(name) || Promise.resolve();
    const run = prev.then(() => fn());
    this.tails.set(name, run.catch(() => {}));
    return run;
  }
}

// ---- a minimal DOM for the widget ----
export class FakeElement extends EventTarget {
  constructor(tag, doc) {
    super();
    this.tagName = tag.toUpperCase();
    this.ownerDocument = doc;
    this.attributes = {};
    this.children = [];
    this.parentNode = null;
    this.ownText = "";
  }

  setAttribute(k, v) { this.attributes[k] = String(v); }

  getAttribute(k) { return k in this.attributes ? this.attributes[k] : null; }

  appendChild(child) { child.parentNode = this; this.children.push(child); return child; }

  replaceChildren(...nodes) { this.children = []; this.ownText = ""; nodes.forEach((n) => this.appendChild(n)); }

  set textContent(s) { this.children = []; this.ownText = String(s); }

  get textContent() { return this.ownText + this.children.map((c) => c.textContent).join(""); }

  /** Supports the one selector the widget uses: [attribute]. */
  closest(selector) {
    const attr = /^\[([a-z-]+)\]$/.exec(selector)[1];
    for (let el = this; el; el = el.parentNode) if (el.getAttribute?.(attr) != null) return el;
    return null;
  }

  all(tag) {
    const out = [];
    for (const c of this.children) {
      if (c.tagName === tag.toUpperCase()) out.push(c);
      out.push(...c.all(tag));
    }
    return out;
  }

  click() { this.dispatchEvent(new Event("click", { bubbles: true })); }
}

/** EventTarget in Node does not bubble: deliver a click to every ancestor with the real target. */
export function click(el) {
  for (let node = el; node; node = node.parentNode) {
    const ev = new Event("click");
    Object.defineProperty(ev, "target", { value: el });
    node.dispatchEvent(ev);
  }
}

export class FakeDocument extends EventTarget {
  constructor({ itemId, scrollHeight = 1000 } = {}) {
    super();
    this.visibilityState = "visible";
    this.documentElement = { scrollHeight };
    this.itemId = itemId;
  }

  createElement(tag) { return new FakeElement(tag, this); }

  querySelector(selector) {
    return selector === 'meta[name="clickstream:item-id"]' && this.itemId ? { content: this.itemId } : null;
  }

  setVisibility(state) {
    this.visibilityState = state;
    this.dispatchEvent(new Event("visibilitychange"));
  }
}

let pageSeq = 0;

/**
 * One page (tab) of the same origin. Pages built with the same `storage`, `clock`, `net` share localStorage, time
 * and network, as tabs of one browser do.
 */
export function page({ clock, storage, net, beacon = () => true, locks, doc = new FakeDocument(), random = () => 0.5,
  scrollY = 0, innerHeight = 800, peers = [] } = {}) {
  const owner = ++pageSeq;
  const g = new EventTarget();
  peers.push({ g, owner });
  // Like a browser, a write is announced to the origin's other pages (not the writer, not a frozen or cached page)
  // with a storage event.
  const notify = (key) => {
    for (const other of peers) {
      if (other.g === g || clock.frozen.has(other.owner)) continue;
      queueMicrotask(() => other.g.dispatchEvent(Object.assign(new Event("storage"), { key })));
    }
  };
  const local = {
    getItem: (k) => storage.getItem(k),
    setItem: (k, v) => { storage.setItem(k, v); notify(k); },
    removeItem: (k) => { storage.removeItem(k); notify(k); },
    key: (i) => storage.key(i),
    get length() { return storage.length; },
  };
  const timers = clock.timersFor(owner);
  const beacons = [];
  Object.assign(g, {
    Date: { now: () => clock.t },
    random,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    localStorage: local,
    fetch: (...args) => (clock.dead.has(owner) ? new Promise(() => {}) : net.fetch(...args)),
    Blob,
    AbortController,
    crypto: globalThis.crypto,
    document: doc,
    scrollY,
    innerHeight,
    navigator: {
      sendBeacon: (url, data) => {
        const ok = beacon(url, data);
        beacons.push({ url, data, ok });
        return ok;
      },
      locks,
    },
  });
  const tracker = createTracker(g, LIMITS);
  return {
    g, doc, tracker, beacons, owner,
    kill: () => clock.kill(owner),
    freeze: () => clock.freeze(owner),
    thaw: () => clock.thaw(owner),
    hide: () => { doc.visibilityState = "hidden"; doc.dispatchEvent(new Event("visibilitychange")); g.dispatchEvent(new Event("pagehide")); },
    scrollTo: (y) => { g.scrollY = y; g.dispatchEvent(new Event("scroll")); },
    beaconEvents: async () => (await Promise.all(beacons.filter((b) => b.ok).map((b) => b.data.text())))
      .flatMap((text) => JSON.parse(text).events),
  };
}

/** A shared browser: one clock, one origin's localStorage, one network. */
export function browser({ storage = new FakeStorage(), handler, locks } = {}) {
  const clock = new Clock();
  const net = new FakeFetch(handler);
  const peers = [];
  return { clock, storage, net, locks, open: (opts = {}) => page({ clock, storage, net, locks, peers, ...opts }) };
}

export const BASE = { collectUrl: COLLECT, consent: "granted", trackView: false };

// A fresh browser and one page whose tracker is initialised with BASE.
export function started() {
  const b = browser();
  const p = b.open();
  p.tracker.init(BASE);
  return { b, p };
}
