// The Clickstream tracker. `createTracker(g, limits)` takes the global object (window in a page, a fake in the
// tests) and the limits generated from the collection schema, and returns the public API.
//
// Storage model (localStorage, prefix "clickstream:"):
//   consent          "granted" | "denied"
//   session          {"id", "t": last activity}: shared by the origin's tabs, rotates after `sessionTimeout`
//   user             the signed-in reader (only stored with consent)
//   q:<tabId>        {"h": heartbeat, "e": [events]}: each tab writes only its own queue; a tab adopts another
//                    tab's queue once it is orphaned (h = 0, written on pagehide) or stale (no heartbeat for
//                    `staleMs`), under a Web Lock when the browser has them, so two tabs never send the same events.
// Every queued event is written to storage at once (a click that navigates away survives); the tab keeps a memory
// mirror of its own queue only to avoid parsing it on every event.
import { compile } from "./validate.js";
import { makeRecommend } from "./widget.js";

const P = "clickstream:";
const QP = P + "q:";
const CK = P + "consent";
const SK = P + "session";
const UK = P + "user";

export const DEFAULTS = {
  eventTypes: ["view", "click", "read", "share"],
  batchSize: 20,
  flushInterval: 3000,
  maxQueue: 500,
  maxQueueBytes: 150000,
  sessionTimeout: 1800000,
  retryBaseMs: 1000,
  retryMaxMs: 60000,
  keepaliveBytes: 16000,
  closeBudgetBytes: 60000,
  staleMs: 180000,
  heartbeatMs: 20000,
  trackView: true,
  readDepth: 0.75,
  readDwellMs: 15000,
  numResults: 5,
  recommendTimeoutMs: 3000,
  // Crawlers that run scripts: their "reads" are not a reader's (a page may pass its own pattern, or null).
  botPattern: /bot\b|crawl|spider|slurp|facebookexternalhit|lighthouse/i,
};

export function createTracker(g, limits) {
  const stats = { sent: 0, beaconed: 0, invalid: 0, rejected: 0, dropped: 0, retried: 0, adopted: 0 };
  const inflight = new Map(); // eventId -> the request carrying it
  const now = () => g.Date.now();
  const rnd = g.random || Math.random;
  const later = (f, ms) => g.setTimeout(f, ms);
  let c, v, st, tab, key, consent, user, token, busy, timer, pageItem, viewed, bot, alive = true;
  let blockedUntil = 0, attempt = 0;

  const uuid = () => (g.crypto?.randomUUID ? g.crypto.randomUUID()
    : now().toString(36) + "-" + rnd().toString(36).slice(2) + rnd().toString(36).slice(2));
  const get = (k) => { try { return st.getItem(k); } catch { return null; } };
  const set = (k, s) => { try { st.setItem(k, s); return true; } catch { return false; } };
  const del = (k) => { try { st.removeItem(k); } catch { /* storage gone: nothing to delete */ } };
  const parse = (s) => { try { return JSON.parse(s); } catch { return null; } };
  const keys = () => { const out = []; try { for (let i = 0; i < st.length; i++) out.push(st.key(i)); } catch { /* none */ } return out; };

  // A page whose localStorage throws (disabled, sandboxed) still tracks within the page.
  function storage() {
    try { g.localStorage.getItem(CK); return g.localStorage; } catch { /* fall back to memory */ }
    const m = new Map();
    return { getItem: (k) => m.get(k) ?? null, setItem: (k, s) => m.set(k, String(s)), removeItem: (k) => m.delete(k),
      key: (i) => [...m.keys()][i] ?? null, get length() { return m.size; } };
  }

  // This tab's queue, mirrored in memory (parsing it on every event would cost milliseconds at its bound). The tab
  // is the only writer of its key; other pages only delete it (adoption, consent withdrawn), which is checked on
  // every use, since a frozen or back-forward-cached page gets no storage event. Writes are coalesced to one per
  // task (a microtask), which still runs before the page can navigate away.
  let mem = null, pending = false;
  const own = () => {
    if (!pending && mem?.length && get(key) === null) mem = null;
    return (mem ||= parse(get(key))?.e || []);
  };
  const fresh = () => { if (!pending) mem = null; };

  function save(q) {
    const drop = Math.max(0, q.length - c.maxQueue);
    stats.dropped += drop;
    mem = q.slice(drop);
    if (!pending) {
      pending = true;
      Promise.resolve().then(() => pending && persist()); // unless written synchronously meanwhile
    }
  }

  // Writes the queue within maxQueueBytes; on a quota error drops the oldest quarter and tries again.
  function persist() {
    pending = false;
    let q = mem || [];
    for (;;) {
      mem = q;
      if (!q.length) return del(key);
      const s = JSON.stringify({ h: alive ? now() : 0, e: q });
      let drop = Math.ceil(q.length / 4);
      if (s.length > c.maxQueueBytes) drop = Math.max(1, Math.ceil(q.length * (1 - c.maxQueueBytes / s.length)));
      else if (set(key, s)) return;
      q = q.slice(drop);
      stats.dropped += drop;
    }
  }
  const remove = (events) => { const ids = new Set(events.map((e) => e.eventId)); save(own().filter((e) => !ids.has(e.eventId))); };
  const readd = (events) => { if (granted()) save(own().concat(events)); };

  function clearAll() {
    for (const k of keys()) if (k.startsWith(QP)) del(k);
    mem = null;
    del(SK);
    del(UK);
    g.clearTimeout(timer);
    timer = 0;
    blockedUntil = attempt = 0;
  }

  // Consent is read again from storage at send time: another tab may have withdrawn it.
  function granted() {
    const s = get(CK);
    if (s && s !== consent) {
      consent = s;
      if (s !== "granted") clearAll();
    }
    return consent === "granted";
  }

  function session(peek) {
    const s = parse(get(SK));
    const t = now();
    if (peek) return s && t - s.t <= c.sessionTimeout ? s.id : null;
    const id = s && s.id && t - s.t <= c.sessionTimeout ? s.id : uuid();
    set(SK, JSON.stringify({ id, t }));
    return id;
  }

  function track(eventType, itemId, o = {}) {
    if (!c || bot || !granted()) return false;
    let e = { eventId: uuid(), eventType, sessionId: session(), userId: user || undefined, itemId,
      timestamp: Math.round(now()), recommendationId: o.recommendationId, impression: o.impression,
      properties: o.properties };
    try { e = JSON.parse(JSON.stringify(e)); } catch { e = {}; } // what is sent is exactly what was checked
    if (!v.event(e)) { stats.invalid++; return false; }
    save(own().concat(e));
    if (own().length >= c.batchSize) flush();
    else if (!timer) timer = later(() => { timer = 0; flush(); }, c.flushInterval);
    return true;
  }

  // The first events (up to batchSize) that fit `bytes` once serialised; at least one.
  function take(q, bytes) {
    let size = 12, n = 0;
    while (n < q.length && n < c.batchSize && (size += JSON.stringify(q[n]).length + 1) <= bytes) n++;
    return q.slice(0, n || 1);
  }

  function backoff(retryAfter) {
    const exp = Math.min(c.retryMaxMs, c.retryBaseMs * 2 ** attempt++);
    const delay = Math.max((retryAfter || 0) * 1000, exp) * (1 + rnd() / 2);
    blockedUntil = now() + delay;
    g.clearTimeout(timer);
    timer = later(() => { timer = 0; blockedUntil = 0; flush(); }, delay); // the timer ends the backoff: timers may fire before Date.now() reaches it
    return false;
  }

  // Sends one batch; true when the caller may go on with the next one. `detached`: the events are out of storage
  // while in flight (a keepalive request the page may not outlive) and come back only if the reply says so.
  async function post(events, detached) {
    const body = JSON.stringify({ events });
    const req = { events, bytes: new g.Blob([body]).size, detached };
    req.keep = req.bytes <= c.keepaliveBytes;
    for (const e of events) inflight.set(e.eventId, req);
    if (detached) remove(events);
    let res;
    try {
      const headers = { "content-type": "application/json" };
      if (c.apiKey) headers["x-api-key"] = c.apiKey;
      res = await g.fetch(target(), { method: "POST", headers, body, keepalive: req.keep, credentials: "omit" });
    } catch { /* network error: retried below */ }
    for (const e of events) inflight.delete(e.eventId);
    const status = res ? res.status : 0;
    if (status >= 200 && status < 300) {
      const reply = await res.json().catch(() => ({}));
      const failed = (reply.failures || []).map((f) => events[f.index]).filter(Boolean);
      const done = events.filter((e) => !failed.includes(e));
      stats.sent += done.length;
      if (!req.detached) remove(done);
      else if (failed.length) readd(failed);
      if (!failed.length) {
        attempt = 0;
        return true;
      }
      stats.retried += failed.length;
      return backoff();
    }
    if (status === 400 || status === 413) {
      if (events.length === 1) {
        stats.rejected++;
        if (!req.detached) remove(events);
        return true;
      }
      if (req.detached) {
        readd(events); // the page outlived the request: the normal loop bisects them
        return true;
      }
      const half = events.length >> 1;
      return (await post(events.slice(0, half))) && post(events.slice(half));
    }
    if (req.detached) readd(events);
    stats.retried += events.length;
    return backoff(+res?.headers?.get("retry-after"));
  }

  async function loop() {
    while (c.collectUrl && granted() && now() >= blockedUntil) {
      fresh();
      const q = own().filter((e) => !inflight.has(e.eventId));
      if (!q.length || !(await post(take(q, c.keepaliveBytes)))) return;
    }
  }

  async function flush() {
    if (!c) return;
    if (busy) return busy;
    busy = loop();
    try { await busy; } finally { busy = null; }
  }

  // Page going away (or hidden, which on mobile may be the last chance): what is queued leaves now, in small
  // requests inside the ~64 KB that beacons and keepalive requests share. Without an API key a beacon (a Blob
  // typed exactly text/plain); with one a keepalive fetch, since a beacon cannot carry headers.
  // While the collector is failing (the last attempt failed), nothing is sent: a beacon's failure cannot be seen,
  // so the events wait for the next page instead of being lost.
  function onHide(final) {
    if (c.collectUrl && granted()) {
      let budget = c.closeBudgetBytes;
      for (const req of new Set(inflight.values())) {
        if (!req.keep) continue;
        budget -= req.bytes;
        // A keepalive request outlives the page: its events must not be sent again by the next page.
        if (!req.detached) { req.detached = true; remove(req.events); }
      }
      let q = attempt ? [] : own().filter((e) => !inflight.has(e.eventId));
      const beaconed = [];
      while (q.length) {
        const batch = take(q, c.keepaliveBytes);
        const blob = new g.Blob([JSON.stringify({ events: batch })], { type: "text/plain" });
        if (blob.size > budget) break;
        budget -= blob.size;
        if (c.apiKey || !g.navigator?.sendBeacon) post(batch, true);
        else if (g.navigator.sendBeacon(target(), blob)) beaconed.push(...batch);
        else break;
        q = q.slice(batch.length);
      }
      stats.beaconed += beaconed.length;
      remove(beaconed);
    }
    if (final) { alive = false; beat(); }
    if (pending) persist();
  }

  const beat = () => { const q = own(); if (q.length) save(q); };

  function adopt() {
    const run = () => {
      const q = [...own()];
      const seen = new Set(q.map((e) => e.eventId));
      for (const k of keys()) {
        const other = k.startsWith(QP) && k !== key && parse(get(k));
        if (!other || now() - other.h <= c.staleMs) continue;
        for (const e of other.e || []) if (!seen.has(e.eventId)) { seen.add(e.eventId); q.push(e); stats.adopted++; }
        del(k);
      }
      if (q.length > own().length && granted()) {
        save(q.sort((a, b) => a.timestamp - b.timestamp));
        flush();
      }
    };
    return g.navigator?.locks ? g.navigator.locks.request(P + "adopt", run).catch(run) : run();
  }

  function heartbeat() {
    fresh();
    beat();
    adopt();
    later(heartbeat, c.heartbeatMs);
  }

  // `view` once per page load, as soon as there is consent and the page names its item.
  function view() {
    if (!viewed && c.trackView && pageItem) viewed = track("view", pageItem);
  }

  // `read` once per page: scrolled at least `readDepth` of the page and visible for at least `readDwellMs`.
  function reading() {
    const d = g.document;
    let depth = 0, dwell = 0, since = d.visibilityState === "visible" ? now() : null, done, wait;
    const check = () => {
      if (done || !pageItem) return;
      const el = d.documentElement;
      depth = Math.max(depth, Math.min(1, (g.scrollY + g.innerHeight) / Math.max(1, el.scrollHeight)));
      const seen = dwell + (since == null ? 0 : now() - since);
      g.clearTimeout(wait);
      if (depth < c.readDepth) return;
      if (seen >= c.readDwellMs) {
        const properties = { scrollDepth: Math.round(depth * 100) / 100, dwellSeconds: Math.round(seen / 1000) };
        done = track("read", pageItem, { properties });
      } else if (since != null) wait = later(check, c.readDwellMs - seen);
    };
    d.addEventListener("visibilitychange", () => {
      if (d.visibilityState === "visible") { since = now(); check(); }
      else if (since != null) { dwell += now() - since; since = null; check(); }
    });
    g.addEventListener("scroll", check, { passive: true });
    check();
    return check;
  }

  let readCheck = () => {};

  function init(options = {}) {
    if (c) return api;
    c = { ...DEFAULTS, ...options };
    v = compile(limits, c.eventTypes);
    bot = !!c.botPattern?.test(g.navigator?.userAgent || "");
    st = storage();
    tab = uuid();
    key = QP + tab;
    const chosen = options.consent === "granted" || options.consent === "denied";
    if (chosen) set(CK, options.consent);
    consent = chosen ? options.consent : get(CK);
    if (consent === "denied") clearAll();
    setUser(options.userId !== undefined ? options.userId : get(UK));
    const d = g.document;
    pageItem = c.itemId ?? d?.querySelector?.('meta[name="clickstream:item-id"]')?.content;
    g.addEventListener("pagehide", () => onHide(true));
    g.addEventListener("pageshow", (e) => { if (e.persisted) { alive = true; beat(); } });
    d?.addEventListener("visibilitychange", () => { if (d.visibilityState === "hidden") onHide(false); });
    heartbeat();
    view();
    if (d) readCheck = reading();
    return api;
  }

  // A signed-in reader's token (kept in memory only): events go to the verified route, the token in the query
  // (a beacon cannot send headers); the stack takes the reader id from it.
  const target = () => (token ? c.collectUrl.replace(/\/+$/, "") + "/reader?token=" + encodeURIComponent(token) : c.collectUrl);

  function setUser(id, o = {}) {
    user = id != null && v.field("userId", id) ? id : null;
    token = user && typeof o.token === "string" && o.token ? o.token : null;
    if (user && granted()) set(UK, user);
    else if (!user) del(UK);
    return id == null || !!user;
  }

  function setConsent(choice) {
    if (!c || (choice !== "granted" && choice !== "denied")) return false;
    consent = choice;
    set(CK, choice);
    if (choice === "denied") clearAll();
    else { setUser(user, { token }); view(); readCheck(); }
    return true;
  }

  const api = {
    init, track, setUser, setConsent, flush,
    recommend: makeRecommend({
      g, later, track, config: () => c, field: (n, x) => v.field(n, x), maxImpression: limits.fields.impression?.x ?? 25,
      reader: () => user || (granted() ? session() : null), token: () => token,
      sessionId: () => (granted() ? session() : null),
    }),
    stats: () => ({ ...stats, bot: !!bot, queued: c ? own().length : 0, inflight: inflight.size, consent: consent || null,
      sessionId: c ? session(true) : null, userId: user || null, tabId: tab || null }),
  };
  return api;
}
