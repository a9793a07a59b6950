// The recommendations widget: fetches a reader's recommendations, renders them as links carrying data-item-id,
// and ties clicks on those links to the shown list (impression) and the reply's recommendationId.
// Never throws: a failed or slow serving call leaves the container as it was and resolves {ok: false, error}.

// Only http(s) and relative links: a reply must not be able to inject a javascript: URL.
const safe = (u) => typeof u === "string" && !/^\s*(?!https?:)[a-z][a-z0-9+.-]*:/i.test(u);

export function makeRecommend({ g, later, track, config, field, maxImpression, reader, sessionId, token }) {
  const shown = new WeakMap(); // container -> {recommendationId, impression, ids}
  let anonymous;

  function link(doc, item, c) {
    const url = [item.url, c.itemUrl?.(item.itemId), "/" + encodeURIComponent(item.itemId)].find(safe);
    const li = doc.createElement("li");
    const a = doc.createElement("a");
    a.setAttribute("href", url);
    a.setAttribute("data-item-id", item.itemId);
    if (item.category) a.setAttribute("data-category", String(item.category));
    a.textContent = item.title || item.itemId;
    li.appendChild(a);
    return li;
  }

  function listen(container) {
    if (shown.has(container)) return;
    container.addEventListener("click", (ev) => {
      const s = shown.get(container);
      const id = ev.target?.closest?.("[data-item-id]")?.getAttribute("data-item-id");
      if (s && s.ids.includes(id)) track("click", id, { recommendationId: s.recommendationId, impression: s.impression });
    });
  }

  return async function recommend(container, o = {}) {
    let t;
    try {
      const c = config();
      if (!c || !c.recommendationsUrl) throw new Error("not initialised with a recommendationsUrl");
      const throwaway = () => (anonymous ||= "anon-" + g.Date.now().toString(36) + Math.random().toString(36).slice(2));
      const who = reader() || throwaway();
      const q = new URLSearchParams({ numResults: String(o.numResults || c.numResults) });
      if (o.filter) q.set("filter", o.filter);
      const sid = sessionId();
      if (sid) q.set("sessionId", sid);
      const abort = g.AbortController && new g.AbortController();
      const timeout = new Promise((_, reject) => {
        t = later(() => { abort?.abort(); reject(new Error("timeout")); }, o.timeoutMs || c.recommendTimeoutMs);
      });
      const headers = c.servingApiKey ? { "x-api-key": c.servingApiKey } : {};
      const tk = token?.();
      if (tk) headers.authorization = "Bearer " + tk;
      // Where readers are verified, a reader without a token is anonymous: its own route, an anon- id.
      const anon = sid ? "anon-" + sid : throwaway();
      const path = c.verifiedReaders && !tk ? "anonymous/" + encodeURIComponent(anon) : encodeURIComponent(who);
      const url = c.recommendationsUrl.replace(/\/+$/, "") + "/" + path + "?" + q;
      const res = await Promise.race([g.fetch(url, { headers, signal: abort?.signal, credentials: "omit" }), timeout]);
      if (!res.ok) throw new Error("HTTP " + res.status);
      const reply = await Promise.race([res.json(), timeout]);
      const items = (reply.items || []).filter((i) => field("itemId", i?.itemId));
      const recommendationId = field("recommendationId", reply.recommendationId) ? reply.recommendationId : undefined;
      const impression = items.slice(0, maxImpression).map((i) => i.itemId);
      const result = { ok: true, items, recommendationId, impression, source: reply.source };
      if (!items.length) return result;
      const doc = container.ownerDocument || g.document;
      const list = doc.createElement("ul");
      list.setAttribute("class", "clickstream-recommendations");
      for (const item of items) list.appendChild((o.render || c.render)?.(item) || link(doc, item, { ...c, ...o }));
      listen(container);
      shown.set(container, { recommendationId, impression: impression.length ? impression : undefined, ids: items.map((i) => i.itemId) });
      container.replaceChildren(list);
      return result;
    } catch (error) {
      return { ok: false, error: String(error?.message || error) };
    } finally {
      g.clearTimeout(t);
    }
  };
}
