"""The sandbox's demo blog: generated posts as static HTML, using the tracker the way a media site would.

Interface::

    build_site(out_dir: Path, *, collect_url: str, recommendations_url: str, serving_api_key: str,
               collect_api_key: str | None = None, tracker_url: str = "/tracker/clickstream.min.js",
               seed: int = 7, count: int = 36, now: float | None = None, filter_name: str | None = "unread",
               num_results: int = 5, refresh_seconds: float = 10.0) -> list[dict]
        # writes the site; returns the posts as POST /items entries (itemId, creationTimestamp, category, tags, title)
    generate_posts(seed=7, count=36, now=None) -> list[Post]    # deterministic for a seed and a day
    items_payloads(posts, per_request=100) -> list[{"items": [...]}]  # bodies for POST /items (≤ 100 each)

What it writes:

- ``index.html``: the latest posts, a "Recommended for you" block and a "Trending now" block (``GET /trending``);
- ``posts/<itemId>.html``: one page per post (article text long enough to scroll, so ``read`` tracking can fire),
  carrying ``<meta name="clickstream:item-id">`` (the tracker's page item: ``view`` on load, ``read`` on scroll
  depth and dwell), "More in <category>" links, "Related posts" (``GET /items/<itemId>/related``) and its own
  "Recommended for you" block; the related and trending blocks stay hidden when the stack does not serve them;
- ``config.js``: ``window.SANDBOX_CONFIG = {collectUrl, apiKey, recommendationsUrl, servingApiKey, filter,
  numResults, refreshSeconds}``, so no URL or key is baked into the pages;
- ``catalog.js``: ``window.BLOG_POSTS`` (itemId → title, category, url), to render recommended ids as titled links;
- ``site.js``: ``Clickstream.init(...)`` from the config, the consent banner (shown while no choice is stored; the
  tracker keeps the choice in localStorage, so it persists across page loads; "Privacy choices" in the footer
  reopens it), ``Clickstream.recommend(container, {numResults, filter})`` into every ``[data-recommendations]``
  block (again every ``refreshSeconds`` while the page is visible, and on "Refresh"), and a ``click`` event for
  post links outside those blocks (the widget itself tracks clicks on what it rendered, with the recommendation id
  and impression);
- ``style.css``.

Every post link carries ``data-item-id`` and ``data-category``; the tracker is a plain ``<script src>`` exposing
``window.Clickstream``. Pages link to each other relatively, so the site works under any path prefix.
"""

from __future__ import annotations

import html
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAY = 86_400
# Subjects are written as they read mid-sentence; a title starting with one gets its first letter capitalised.
CATEGORIES: dict[str, dict[str, Sequence[str]]] = {
    "technology": {
        "subjects": ("edge computing", "open-source databases", "browser privacy", "battery chemistry",
                     "home networking", "small language models", "Rust at work", "passwordless sign-in"),
        "angles": ("What nobody tells you about {s}", "{s}, explained in ten minutes", "Why {s} finally matters",
                   "A field guide to {s}", "{s}: five lessons from a year in production"),
        "words": ("latency", "benchmarks", "the release notes", "a migration plan", "the hardware budget",
                  "a rollback", "the on-call rota", "telemetry", "the default settings"),
        "tags": ("software", "hardware", "security", "cloud", "devices", "ai"),
    },
    "science": {
        "subjects": ("deep-sea vents", "sleep and memory", "exoplanet weather", "urban beekeeping",
                     "soil microbes", "the northern lights", "gravitational waves", "coral restoration"),
        "angles": ("What {s} can teach us", "The surprising physics of {s}", "{s} in five charts",
                   "A new study on {s}", "How scientists finally measured {s}"),
        "words": ("the data set", "a field station", "the control group", "peer review", "the instruments",
                  "a long winter", "the first results", "an old hypothesis", "the sample size"),
        "tags": ("space", "biology", "climate", "physics", "research", "nature"),
    },
    "travel": {
        "subjects": ("night trains in Europe", "the Faroe Islands", "Lisbon on foot", "slow travel in Japan",
                     "Alpine huts", "island hopping in Greece", "the Baltic coast", "desert camping"),
        "angles": ("{s} on a budget", "A first-timer's guide to {s}", "Seven days of {s}",
                   "{s}: where locals actually go", "Why we keep going back to {s}"),
        "words": ("the timetable", "a borrowed map", "the last ferry", "a rainy afternoon", "the border",
                  "a packing list", "the station café", "an early start", "the guesthouse"),
        "tags": ("europe", "asia", "outdoors", "budget", "rail", "islands"),
    },
    "food": {
        "subjects": ("sourdough at home", "fermented vegetables", "weeknight curries", "street food in Hanoi",
                     "cast-iron cooking", "coffee roasting", "seasonal soups", "baking with rye"),
        "angles": ("The only guide to {s} you need", "{s} without the fuss", "Getting started with {s}",
                   "{s}: mistakes we made so you don't", "A love letter to {s}"),
        "words": ("the pantry", "a market stall", "the oven", "a family recipe", "the spice drawer",
                  "a long simmer", "the first batch", "a sharp knife", "the leftovers"),
        "tags": ("recipes", "baking", "vegetarian", "restaurants", "coffee", "seasonal"),
    },
    "culture": {
        "subjects": ("independent cinemas", "graphic novels", "jazz in small clubs", "street photography",
                     "public libraries", "podcast storytelling", "modern dance", "vinyl collecting"),
        "angles": ("The quiet comeback of {s}", "{s} and the people who keep it alive", "Rediscovering {s}",
                   "An evening with {s}", "Ten recommendations for {s}"),
        "words": ("the audience", "a late show", "the archive", "a second-hand shop", "the program notes",
                  "an interview", "the rehearsal", "a small stage", "the critics"),
        "tags": ("film", "music", "books", "art", "photography", "events"),
    },
    "business": {
        "subjects": ("four-day weeks", "remote-first teams", "pricing experiments", "small-town startups",
                     "supply chains", "customer interviews", "bootstrapped companies", "hiring juniors"),
        "angles": ("What we learned from {s}", "{s}: the numbers behind the hype", "A practical look at {s}",
                   "The case for {s}", "{s}, one year later"),
        "words": ("the quarterly report", "a board meeting", "the first customers", "cash flow", "a hiring plan",
                  "the pricing page", "a difficult call", "the roadmap", "an offsite"),
        "tags": ("startups", "management", "economy", "work", "marketing", "finance"),
    },
}
_OPENINGS = ("It started with {w}.", "Nobody expected {w} to matter this much.", "Consider {w} for a moment.",
             "We went back to {w} more than once.", "The story is really about {w}.",
             "Everything changed once we looked at {w}.")
_MIDDLES = ("Looking closer, the details around {w} told a different story than the headline.",
            "Several readers wrote in about {w}, and their questions shaped this piece.",
            "The trade-offs only became clear when we compared {w} with what came before.",
            "There is a simple version of this story, and a more honest one involving {w}.",
            "Experts we spoke to kept returning to {w}, sometimes with visible frustration.",
            "A small change to {w} turned out to have an outsized effect on everything else.")
_CLOSINGS = ("That, in the end, is why {w} deserves more attention.", "We will keep watching {w} closely.",
             "The next chapter will probably be written around {w}.", "For now, {w} remains the open question.")


@dataclass(frozen=True)
class Post:
    item_id: str
    title: str
    category: str
    tags: tuple[str, ...]
    created: int  # epoch seconds
    author: str
    paragraphs: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"posts/{self.item_id}.html"

    def item(self) -> dict[str, Any]:
        """The POST /items entry (handlers/common/schemas/items.schema.json)."""
        return {"itemId": self.item_id, "creationTimestamp": self.created, "category": self.category,
                "tags": list(self.tags), "title": self.title}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].rstrip("-")


def _paragraph(rng: random.Random, words: Sequence[str]) -> str:
    sentences = [rng.choice(_OPENINGS), *rng.sample(_MIDDLES, 3), rng.choice(_CLOSINGS)]
    return " ".join(s.format(w=rng.choice(words)) for s in sentences)


def generate_posts(seed: int = 7, count: int = 36, now: float | None = None) -> list[Post]:
    """``count`` posts, spread over the categories and the last ~60 days before ``now`` (default: today, UTC
    midnight), newest first; the same seed and day give the same posts."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    anchor = int((time.time() if now is None else now) // DAY * DAY)
    rng = random.Random(seed)
    authors = ("Ana Ribeiro", "Tomás Novak", "Mei Tanaka", "Sam Okafor", "Lena Fischer", "Priya Raman")
    names = list(CATEGORIES)
    used: dict[str, list[str]] = {name: [] for name in names}
    posts = []
    for n in range(count):
        category = names[n % len(names)]
        pool = CATEGORIES[category]
        while True:
            title = rng.choice(pool["angles"]).format(s=rng.choice(pool["subjects"]))
            if title not in used[category] or len(used[category]) >= 40:
                break
        used[category].append(title)
        title = title[0].upper() + title[1:]
        created = anchor - n * (60 * DAY // count) - rng.randrange(3600, 20 * 3600)
        posts.append(Post(item_id=f"{n + 1:03d}-{_slug(title)}", title=title, category=category,
                          tags=tuple(rng.sample(list(pool["tags"]), 2)), created=created,
                          author=rng.choice(authors),
                          paragraphs=tuple(_paragraph(rng, pool["words"]) for _ in range(14))))
    return sorted(posts, key=lambda p: -p.created)


def items_payloads(posts: Sequence[Post], per_request: int = 100) -> list[dict[str, Any]]:
    """POST /items bodies: the API takes 1-100 items per request."""
    if not 1 <= per_request <= 100:
        raise ValueError("per_request must be 1-100 (the API's limit)")
    return [{"items": [p.item() for p in posts[i:i + per_request]]} for i in range(0, len(posts), per_request)]


# --- pages ---------------------------------------------------------------------------------------------------------

def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _date(epoch: int) -> str:
    return time.strftime("%d %B %Y", time.gmtime(epoch)).lstrip("0")


def _link(post: Post, base: str) -> str:
    return (f'<a href="{base}{_e(post.path)}" data-item-id="{_e(post.item_id)}" '
            f'data-category="{_e(post.category)}">{_e(post.title)}</a>')


def _recommended() -> str:
    return ('<section class="recommended" aria-labelledby="rec-title">\n'
            '  <h2 id="rec-title">Recommended for you</h2>\n'
            '  <div data-recommendations><p class="muted">Loading recommendations…</p></div>\n'
            '  <button type="button" class="link" data-refresh>Refresh</button>\n'
            '</section>')


def _surface(kind: str, title: str, attributes: str = "") -> str:
    """A block of another surface (related, trending), filled by site.js from the serving API; hidden when the stack
    does not serve it."""
    return (f'<section class="surface" data-surface-block hidden aria-label="{_e(title)}">\n'
            f'  <h2>{_e(title)}</h2>\n'
            f'  <ul class="posts" data-surface="{_e(kind)}"{attributes}></ul>\n'
            '</section>')


def _page(title: str, base: str, body: str, tracker_url: str, head: str = "") -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · The Sandbox Chronicle</title>
<link rel="stylesheet" href="{base}style.css">
{head}<script src="{_e(tracker_url)}"></script>
<script src="{base}config.js"></script>
<script src="{base}catalog.js"></script>
<script src="{base}site.js" defer></script>
</head>
<body>
<header class="masthead"><a href="{base}index.html" class="brand">The Sandbox Chronicle</a>
<span class="muted">a demo blog for the clickstream sandbox</span></header>
<div id="consent" class="consent" role="dialog" aria-live="polite" aria-label="Privacy choices" hidden>
  <p>We would like to record which posts you read, to recommend others. Nothing is collected until you agree,
  and withdrawing deletes what has not been sent yet.</p>
  <button type="button" data-consent="granted">Accept</button>
  <button type="button" data-consent="denied">Decline</button>
</div>
<main>
{body}
</main>
<footer><button type="button" class="link" data-privacy>Privacy choices</button>
<span class="muted" data-consent-state></span></footer>
</body>
</html>
"""


def _index(posts: Sequence[Post], tracker_url: str) -> str:
    latest = "\n".join(f'  <li>{_link(p, "")} <span class="meta">{_e(p.category)} · {_date(p.created)}</span></li>'
                       for p in posts)
    body = f"""{_recommended()}
{_surface("trending", "Trending now")}
<section class="latest" aria-labelledby="latest-title">
<h2 id="latest-title">Latest posts</h2>
<ul class="posts">
{latest}
</ul>
</section>"""
    return _page("Latest posts", "", body, tracker_url)


def _post_page(post: Post, posts: Sequence[Post], tracker_url: str) -> str:
    base = "../"
    related = [p for p in posts if p.category == post.category and p.item_id != post.item_id][:4]
    more = "\n".join(f"    <li>{_link(p, base)}</li>" for p in related)
    text = "\n".join(f"  <p>{_e(p)}</p>" for p in post.paragraphs)
    tags = ", ".join(_e(t) for t in post.tags)
    body = f"""<article data-item-id="{_e(post.item_id)}" data-category="{_e(post.category)}">
  <p class="meta">{_e(post.category)} · {_date(post.created)} · by {_e(post.author)} · tags: {tags}</p>
  <h1>{_e(post.title)}</h1>
{text}
</article>
<aside>
{_surface("related", "Related posts", f' data-related-to="{_e(post.item_id)}"')}
{_recommended()}
  <section class="more"><h2>More in {_e(post.category)}</h2>
  <ul class="posts">
{more}
  </ul></section>
</aside>"""
    head = (f'<meta name="clickstream:item-id" content="{_e(post.item_id)}">\n'
            f'<meta name="clickstream:category" content="{_e(post.category)}">\n')
    return _page(post.title, base, body, tracker_url, head)


_SITE_JS = r"""// The demo blog's glue: the tracker from config.js, the consent banner, the recommendation blocks.
(function () {
  "use strict";
  var cfg = window.SANDBOX_CONFIG || {};
  var posts = window.BLOG_POSTS || {};
  var C = window.Clickstream;
  var base = new URL("./", document.currentScript ? document.currentScript.src : location.href).href;
  if (!C) { console.error("clickstream.min.js did not load: window.Clickstream is missing"); return; }

  function render(item) {
    var post = posts[item.itemId];
    if (!post) return null;
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = base + post.url;
    a.setAttribute("data-item-id", item.itemId);
    a.setAttribute("data-category", post.category);
    a.textContent = post.title;
    var meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = " " + post.category;
    li.appendChild(a);
    li.appendChild(meta);
    return li;
  }

  C.init({
    collectUrl: cfg.collectUrl, apiKey: cfg.apiKey || undefined,
    recommendationsUrl: cfg.recommendationsUrl, servingApiKey: cfg.servingApiKey,
    itemUrl: function (id) { return posts[id] ? base + posts[id].url : base + "index.html"; },
    render: render
  });

  var banner = document.getElementById("consent");
  var state = document.querySelector("[data-consent-state]");
  function showState() {
    var consent = C.stats().consent;
    banner.hidden = consent === "granted" || consent === "denied";
    if (state) state.textContent = consent ? "tracking " + (consent === "granted" ? "on" : "off") : "";
  }
  document.querySelectorAll("[data-consent]").forEach(function (button) {
    button.addEventListener("click", function () {
      C.setConsent(button.getAttribute("data-consent"));
      showState();
      refresh();
    });
  });
  document.querySelectorAll("[data-privacy]").forEach(function (button) {
    button.addEventListener("click", function () { banner.hidden = false; });
  });
  showState();

  var blocks = document.querySelectorAll("[data-recommendations]");
  function refresh() {
    blocks.forEach(function (block) {
      var options = { numResults: cfg.numResults || 5 };
      if (cfg.filter) options.filter = cfg.filter;
      C.recommend(block, options).then(function (result) {
        block.setAttribute("data-state", result.ok ? (result.items.length ? "shown" : "empty") : "failed");
        if (result.ok) block.setAttribute("data-source", result.source || "");
        if (result.ok && !result.items.length) block.innerHTML = '<p class="muted">Nothing to recommend yet.</p>';
        if (!result.ok && !block.querySelector("a")) {
          block.innerHTML = '<p class="muted">Recommendations are unavailable right now.</p>';
        }
      });
    });
  }
  document.querySelectorAll("[data-refresh]").forEach(function (b) { b.addEventListener("click", refresh); });
  refresh();
  if (cfg.refreshSeconds > 0) {
    setInterval(function () { if (document.visibilityState === "visible") refresh(); }, cfg.refreshSeconds * 1000);
  }

  // Related posts and trending: GET <api>/items/<id>/related and GET <api>/trending, rendered here (the widget calls
  // only the for-you surface). Anonymous readers are asked for by session id, as their events are recorded.
  var api = String(cfg.recommendationsUrl || "").replace(/\/+$/, "").replace(/\/recommendations$/, "");
  var lists = document.querySelectorAll("[data-surface]");
  function surfaces() {
    var stats = C.stats();
    lists.forEach(function (list) {
      var kind = list.getAttribute("data-surface");
      var q = new URLSearchParams({ numResults: String(cfg.numResults || 5) });
      if (stats.userId) q.set("userId", stats.userId); else if (stats.sessionId) q.set("sessionId", stats.sessionId);
      var path = kind === "related"
        ? "/items/" + encodeURIComponent(list.getAttribute("data-related-to")) + "/related" : "/trending";
      fetch(api + path + "?" + q, { headers: { "x-api-key": cfg.servingApiKey || "" }, credentials: "omit" })
        .then(function (res) { if (!res.ok) throw new Error("HTTP " + res.status); return res.json(); })
        .then(function (reply) {
          var items = (reply.items || []).filter(function (i) { return posts[i.itemId]; });
          list.replaceChildren.apply(list, items.map(render));
          list.setAttribute("data-recommendation-id", reply.recommendationId || "");
          list.setAttribute("data-source", reply.source || "");
          list.closest("[data-surface-block]").hidden = !items.length;
        })
        .catch(function () { list.closest("[data-surface-block]").hidden = true; });
    });
  }
  surfaces();

  // Clicks on post links outside the recommendation blocks (the widget tracks its own, with the recommendation id).
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-item-id]");
    var list = link && link.closest("[data-surface]");
    if (list) {
      var shown = Array.prototype.map.call(list.querySelectorAll("a[data-item-id]"),
        function (a) { return a.getAttribute("data-item-id"); });
      C.track("click", link.getAttribute("data-item-id"), {
        recommendationId: list.getAttribute("data-recommendation-id") || undefined, impression: shown });
      return;
    }
    if (!link || link.closest("[data-recommendations]")) return;
    C.track("click", link.getAttribute("data-item-id"),
      { properties: { category: link.getAttribute("data-category") || "unknown" } });
  });
})();
"""

_STYLE = """body{font:17px/1.6 Georgia,serif;margin:0;color:#222;background:#fdfcf8}
main{max-width:46rem;margin:0 auto;padding:1rem}
.masthead{padding:1rem;border-bottom:1px solid #ddd;display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap}
.brand{font-weight:bold;font-size:1.4rem;color:#222;text-decoration:none}
.muted,.meta{color:#777;font-size:.9rem}
.posts{padding-left:1.2rem}.posts li{margin:.3rem 0}
.recommended{background:#f2f6fb;border:1px solid #d6e2f0;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.consent{position:sticky;top:0;background:#fff8e1;border-bottom:1px solid #e0c97f;padding:.5rem 1rem;z-index:1}
.consent[hidden]{display:none}
button{font:inherit;cursor:pointer}button.link{background:none;border:none;color:#2a5db0;padding:0}
footer{max-width:46rem;margin:2rem auto;padding:1rem;border-top:1px solid #ddd;display:flex;gap:1rem}
article p{margin:1rem 0}
"""


def build_site(out_dir: Path, *, collect_url: str, recommendations_url: str, serving_api_key: str,
               collect_api_key: str | None = None, tracker_url: str = "/tracker/clickstream.min.js",
               seed: int = 7, count: int = 36, now: float | None = None, filter_name: str | None = "unread",
               num_results: int = 5, refresh_seconds: float = 10.0) -> list[dict[str, Any]]:
    """Write the demo blog into ``out_dir``; returns its posts as POST /items entries."""
    if not collect_url or not recommendations_url:
        raise ValueError("the blog needs the collect URL and the recommendations URL")
    posts = generate_posts(seed, count, now)
    out = Path(out_dir)
    (out / "posts").mkdir(parents=True, exist_ok=True)
    config = {"collectUrl": collect_url, "apiKey": collect_api_key, "recommendationsUrl": recommendations_url,
              "servingApiKey": serving_api_key, "filter": filter_name, "numResults": num_results,
              "refreshSeconds": refresh_seconds}
    catalog = {p.item_id: {"title": p.title, "category": p.category, "url": p.path} for p in posts}
    files = {
        "config.js": f"window.SANDBOX_CONFIG = {json.dumps(config, indent=2)};\n",
        "catalog.js": f"window.BLOG_POSTS = {json.dumps(catalog, ensure_ascii=False)};\n",
        "site.js": _SITE_JS,
        "style.css": _STYLE,
        "index.html": _index(posts, tracker_url),
        **{p.path: _post_page(p, posts, tracker_url) for p in posts},
    }
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    return [p.item() for p in posts]
