"""The demo blog: generated posts, pages wired for the tracker, and the POST /items payload."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from common.catalog import parse_items
from tools.fake_personalize import LoopbackServer
from tools.sandbox.blog import CATEGORIES, build_site, generate_posts, items_payloads
from tools.sandbox.gateway import GatewayReply, StaticSite

NOW = 1_796_000_000.0
COLLECT = "http://127.0.0.1:4566/restapis/abc/v1/_user_request_/events"
RECOMMEND = "http://127.0.0.1:8001/v1/recommendations"
TRACKER = "/tracker/clickstream.min.js"
REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Page(HTMLParser):
    """The parts of a page the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.meta: dict[str, str] = {}
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_article = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag == "a":
            self.links.append(attributes)
        elif tag == "script":
            self.scripts.append(attributes)
        elif tag == "meta" and attributes.get("name"):
            self.meta[str(attributes["name"])] = str(attributes.get("content"))
        elif tag == "article":
            self._in_article = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._in_article = False

    def handle_data(self, data: str) -> None:
        if self._in_article:
            self.text.append(data)

    def has(self, tag: str, attribute: str, value: str | None = None) -> bool:
        return any(t == tag and attribute in a and (value is None or a[attribute] == value)
                   for t, a in self.elements)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("blog")
    items = build_site(out, collect_url=COLLECT, recommendations_url=RECOMMEND, serving_api_key="serving-key",
                       collect_api_key="collect-key", tracker_url=TRACKER, now=NOW)
    return out, items


def _catalog(out: Path) -> dict[str, dict[str, str]]:
    text = (out / "catalog.js").read_text(encoding="utf-8")
    catalog: dict[str, dict[str, str]] = json.loads(text.removeprefix("window.BLOG_POSTS = ").rstrip().rstrip(";"))
    return catalog


def test_posts_are_many_spread_over_categories_dated_and_deterministic() -> None:
    posts = generate_posts(seed=7, now=NOW)
    assert len(posts) >= 30 and len({p.item_id for p in posts}) == len(posts)
    assert {p.category for p in posts} == set(CATEGORIES)
    assert all(NOW - 62 * 86_400 < p.created < NOW for p in posts)
    assert [p.created for p in posts] == sorted((p.created for p in posts), reverse=True)  # newest first
    assert all(p.title[0].isupper() and "{" not in p.title for p in posts)
    assert generate_posts(seed=7, now=NOW) == posts
    assert [p.title for p in generate_posts(seed=8, now=NOW)] != [p.title for p in posts]


def test_a_post_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        generate_posts(count=0)


def test_the_items_payload_is_what_the_items_handler_accepts(site: tuple[Path, list[dict[str, Any]]]) -> None:
    _, items = site
    parsed = parse_items({"items": items})  # the handler's own validation (items.schema.json)
    assert len(parsed) == len(items) >= 30
    assert all(i.category and i.title and i.tags for i in parsed)
    bodies = items_payloads(generate_posts(count=230, now=NOW))
    assert [len(b["items"]) for b in bodies] == [100, 100, 30]
    assert all(parse_items(b) for b in bodies)
    with pytest.raises(ValueError, match="1-100"):
        items_payloads(generate_posts(now=NOW), per_request=101)


def test_the_index_lists_the_posts_and_has_a_recommended_block(site: tuple[Path, list[dict[str, Any]]]) -> None:
    out, items = site
    page = Page((out / "index.html").read_text(encoding="utf-8"))
    listed = [link["data-item-id"] for link in page.links if link.get("data-item-id")]
    assert listed == [i["itemId"] for i in items]  # every post, newest first
    assert page.has("div", "data-recommendations")
    assert "Recommended for you" in (out / "index.html").read_text(encoding="utf-8")


def test_every_post_link_carries_its_item_id_and_category_and_resolves(site: tuple[Path, list[dict[str, Any]]],
                                                                       ) -> None:
    out, items = site
    categories = {i["itemId"]: i["category"] for i in items}
    for file in [out / "index.html", *sorted((out / "posts").glob("*.html"))]:
        for link in Page(file.read_text(encoding="utf-8")).links:
            href = str(link["href"])
            target = (file.parent / href).resolve()
            assert target.is_file(), f"{file.name}: {href} does not exist"
            if "/posts/" in target.as_posix():
                item = target.stem
                assert link.get("data-item-id") == item and link.get("data-category") == categories[item], href


def test_each_post_page_names_its_item_for_the_tracker_and_is_long_enough_to_scroll(
        site: tuple[Path, list[dict[str, Any]]]) -> None:
    out, items = site
    assert len(list((out / "posts").glob("*.html"))) == len(items)
    for item in items:
        page = Page((out / "posts" / f"{item['itemId']}.html").read_text(encoding="utf-8"))
        assert page.meta["clickstream:item-id"] == item["itemId"]
        assert page.meta["clickstream:category"] == item["category"]
        assert page.has("div", "data-recommendations")
        assert len(" ".join(page.text).split()) > 800


def test_the_tracker_is_a_plain_script_and_urls_and_keys_live_only_in_config_js(
        site: tuple[Path, list[dict[str, Any]]]) -> None:
    out, _ = site
    for file in [out / "index.html", *(out / "posts").glob("*.html")]:
        text = file.read_text(encoding="utf-8")
        page = Page(text)
        tracker = [s for s in page.scripts if s.get("src") == TRACKER]
        assert len(tracker) == 1 and "type" not in tracker[0]  # a classic script: window.Clickstream
        assert [s["src"].rsplit("/", 1)[-1] for s in page.scripts if s.get("src")][1:] == [  # type: ignore[union-attr]
            "config.js", "catalog.js", "site.js"]
        assert COLLECT not in text and RECOMMEND not in text and "serving-key" not in text
    config = json.loads((out / "config.js").read_text(encoding="utf-8")
                        .removeprefix("window.SANDBOX_CONFIG = ").rstrip().rstrip(";"))
    assert config == {"collectUrl": COLLECT, "apiKey": "collect-key", "recommendationsUrl": RECOMMEND,
                      "servingApiKey": "serving-key", "filter": "unread", "numResults": 5, "refreshSeconds": 10.0}


def test_the_catalog_lets_the_widget_render_titles_for_recommended_ids(site: tuple[Path, list[dict[str, Any]]]) -> None:
    out, items = site
    catalog = _catalog(out)
    assert set(catalog) == {i["itemId"] for i in items}
    for item in items:
        entry = catalog[item["itemId"]]
        assert entry["title"] == item["title"] and (out / entry["url"]).is_file()


def test_the_site_script_uses_the_trackers_public_api(site: tuple[Path, list[dict[str, Any]]]) -> None:
    script = (site[0] / "site.js").read_text(encoding="utf-8")
    for call in ("C.init(", "C.setConsent(", "C.recommend(", "C.track(\"click\"", "C.stats().consent"):
        assert call in script, call
    # every consent button of the banner names a choice setConsent accepts
    page = Page((site[0] / "index.html").read_text(encoding="utf-8"))
    choices = {a["data-consent"] for t, a in page.elements if t == "button" and "data-consent" in a}
    assert choices == {"granted", "denied"}


def test_titles_are_escaped_in_the_html(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tools.sandbox.blog as blog

    monkeypatch.setitem(blog.CATEGORIES, "technology", {**blog.CATEGORIES["technology"],
                                                        "angles": ("<script>alert({s})</script> & co",)})
    build_site(tmp_path, collect_url=COLLECT, recommendations_url=RECOMMEND, serving_api_key="k", now=NOW)
    text = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in text and "&lt;script&gt;alert" in text
    assert re.search(r'data-item-id="001-script-alert', text)


def test_missing_urls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="collect URL"):
        build_site(tmp_path, collect_url="", recommendations_url=RECOMMEND, serving_api_key="k")


# --- in Chromium, with the real tracker build (web/dist) --------------------------------------------------------

class StubApis:
    """The collection and serving APIs as a page sees them: CORS, recorded requests, fixed answers."""

    def __init__(self, recommended: Sequence[str]) -> None:
        self.recommended = list(recommended)
        self.trending: list[str] = []
        self.related: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.server = LoopbackServer(self.handle)

    def handle(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> GatewayReply:
        self.requests.append((method, target, {k.lower(): v for k, v in headers}, body))
        cors = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Headers", "Content-Type,X-Api-Key"),
                ("Content-Type", "application/json")]
        if method == "OPTIONS":
            return GatewayReply(200, cors, b"")
        if target.startswith("/events"):
            return GatewayReply(200, cors, b'{"accepted": 1, "failed": 0, "failures": []}')
        listed = (self.trending if "/trending" in target else self.related if "/related" in target
                  else self.recommended)
        reply = {"items": [{"itemId": i} for i in listed], "recommendationId": "RID-stub", "source": "personalize"}
        return GatewayReply(200, cors, json.dumps(reply).encode())

    def events(self) -> list[dict[str, Any]]:
        return [e for m, t, _, b in self.requests if m == "POST" and t.startswith("/events")
                for e in json.loads(b)["events"]]

    def recommendation_calls(self) -> list[tuple[str, dict[str, str]]]:
        return [(t, h) for m, t, h, _ in self.requests if m == "GET" and "/recommendations/" in t]


@pytest.fixture()
def browser_site(tmp_path: Path) -> Iterator[tuple[str, StubApis, list[dict[str, Any]], Path]]:
    if not Path(CHROMIUM).exists() or not (REPO / "web" / "dist" / "clickstream.min.js").is_file():
        pytest.skip("needs Debian's chromium and the tracker build (npm run build)")
    apis = StubApis([])
    out = tmp_path / "site"
    items = build_site(out, collect_url=f"{apis.server.url}/events",
                       recommendations_url=f"{apis.server.url}/v1/recommendations", serving_api_key="serving-key",
                       tracker_url=TRACKER, now=NOW, refresh_seconds=0)
    apis.recommended = [i["itemId"] for i in items[3:6]]
    apis.trending = [i["itemId"] for i in items[10:12]]
    apis.related = [i["itemId"] for i in items[20:22]]
    index = (out / "index.html").read_text(encoding="utf-8")
    for choice in ("granted", "denied"):  # the reader's click on the banner, on an otherwise identical page
        click = (f"<script>addEventListener('DOMContentLoaded', () => setTimeout(() => "
                 f"document.querySelector('[data-consent={choice}]').click(), 50))</script></body>")
        (out / f"choose-{choice}.html").write_text(index.replace("</body>", click), encoding="utf-8")
    site = StaticSite({"/": out, "/tracker/": REPO / "web" / "dist"}).serve()
    try:
        yield site.url, apis, items, tmp_path / "profile"
    finally:
        site.stop()
        apis.server.stop()


def dom_after_load(url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran (virtual time: timers fire without waiting), in a persistent profile."""
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                          "--virtual-time-budget=5000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def _consent_banner(dom: Page) -> dict[str, str | None]:
    return next(a for t, a in dom.elements if t == "div" and a.get("id") == "consent")


def test_in_chromium_the_index_asks_for_consent_and_renders_recommendations_as_post_links(
        browser_site: tuple[str, StubApis, list[dict[str, Any]], Path]) -> None:
    url, apis, items, profile = browser_site
    dom = Page(dom_after_load(f"{url}/index.html", profile))
    # THEN the banner shows (no choice stored yet), nothing was collected
    assert "hidden" not in _consent_banner(dom) and apis.events() == []
    # and the recommended ids are rendered with titles, as post links carrying their id and category
    block = [a for a in dom.links if a.get("href", "") and a.get("data-item-id") in apis.recommended
             and str(a["href"]).startswith("http")]
    categories = {i["itemId"]: i["category"] for i in items}
    assert [a["data-item-id"] for a in block] == apis.recommended
    assert all(a["data-category"] == categories[str(a["data-item-id"])] for a in block)
    assert all(str(a["href"]).endswith(f"/posts/{a['data-item-id']}.html") for a in block)
    target, headers = apis.recommendation_calls()[0]
    assert headers["x-api-key"] == "serving-key" and "filter=unread" in target and "numResults=5" in target


def surface_links(dom: Page, ids: Sequence[str]) -> list[str]:
    return [str(a["data-item-id"]) for a in dom.links if a.get("data-item-id") in ids
            and str(a.get("href", "")).startswith("http")]


def test_in_chromium_the_index_shows_trending_and_a_post_page_its_related_posts(
        browser_site: tuple[str, StubApis, list[dict[str, Any]], Path]) -> None:
    url, apis, items, profile = browser_site
    # GIVEN a reader who accepted (anonymous: asked for by session id)
    dom_after_load(f"{url}/choose-granted.html", profile)
    # WHEN the index loads, THEN the trending block renders GET /trending's posts as links
    index = Page(dom_after_load(f"{url}/index.html", profile))
    assert surface_links(index, apis.trending) == apis.trending
    trending = [t for m, t, _, _ in apis.requests if m == "GET" and t.startswith("/v1/trending")]
    assert trending and "sessionId=" in trending[-1]
    # WHEN a post page loads, THEN its related block renders GET /items/<id>/related's posts
    post = items[4]
    page = Page(dom_after_load(f"{url}/posts/{post['itemId']}.html", profile))
    assert surface_links(page, apis.related) == apis.related
    assert any(t.startswith(f"/v1/items/{post['itemId']}/related?") for m, t, _, _ in apis.requests if m == "GET")


def test_in_chromium_an_accepted_consent_persists_across_page_loads_and_a_post_page_tracks_its_view(
        browser_site: tuple[str, StubApis, list[dict[str, Any]], Path]) -> None:
    url, apis, items, profile = browser_site
    # GIVEN a reader who accepted on one page load
    dom_after_load(f"{url}/choose-granted.html", profile)
    # WHEN they come back later (a new browser process, the same profile)
    dom = Page(dom_after_load(f"{url}/index.html", profile))
    # THEN the banner stays hidden, and the tracker reads recommendations for the reader's session
    assert "hidden" in _consent_banner(dom)
    assert "sessionId=" in apis.recommendation_calls()[-1][0]
    # WHEN they open a post, THEN its view is collected with the page's item id
    post = items[4]
    dom_after_load(f"{url}/posts/{post['itemId']}.html", profile)
    views = [e for e in apis.events() if e["eventType"] == "view"]
    assert [e["itemId"] for e in views] == [post["itemId"]]


def test_in_chromium_a_declined_consent_persists_and_collects_nothing(
        browser_site: tuple[str, StubApis, list[dict[str, Any]], Path]) -> None:
    url, apis, items, profile = browser_site
    dom_after_load(f"{url}/choose-denied.html", profile)
    dom = Page(dom_after_load(f"{url}/posts/{items[0]['itemId']}.html", profile))
    assert "hidden" in _consent_banner(dom)
    assert apis.events() == []
