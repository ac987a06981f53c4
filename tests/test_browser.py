"""The pages in a real headless Chromium (Debian's `chromium`, driven by playwright),
against a real functions-framework process with events from real requests and clicks.

Screenshots go to the test's tmp folder and are copied to tests/out/ (git-ignored)
for a person to look at.
"""

import dataclasses
import html
import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import READER, ROOT, STATS_TOKEN, wait_for_events, wiki_article, wiki_sample_path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUT = ROOT / "tests" / "out"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: `apt-get install -y chromium` (as root; .ci/run does it). "
                    "These tests drive it through playwright and never download a browser.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser tab that records console errors and uncaught exceptions, and saves screenshots."""

    def __init__(self, browser, folder, viewport=DESKTOP, credentials=None):
        # a reader's Chromium: the headless one calls itself HeadlessChrome, a crawler's name (function.crawlers),
        # whose answers and clicks /stats counts apart
        agent = (f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                 f"Chrome/{browser.version} Safari/537.36")
        # credentials: what a person types into the prompt a 401's Basic challenge opens
        self.context = browser.new_context(viewport=viewport, user_agent=agent, http_credentials=credentials)
        self.tab = self.context.new_page()
        self.tab.set_default_timeout(20_000)
        self.folder = folder
        self.problems = []
        self.tab.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.tab.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def screenshot(self, name):
        path = self.folder / f"{name}.png"
        self.tab.screenshot(path=str(path), full_page=True)
        OUT.mkdir(exist_ok=True)
        shutil.copy(path, OUT / path.name)
        return path

    def close(self):
        self.context.close()


@pytest.fixture
def tab(browser, tmp_path):
    opened = []

    def open_tab(viewport=DESKTOP, credentials=None):
        page = Page(browser, tmp_path, viewport, credentials)
        opened.append(page)
        return page

    yield open_tab
    for page in opened:
        page.close()


# -- a corpus whose articles live on the loopback web server ----------------------------------
@pytest.fixture(scope="module")
def site_store(tmp_path_factory, model_store, pages):
    """MODEL_STORE with 'site' (the Wikipedia sample, its articles served by the `pages`
    server, so a followed click lands on a real page) next to the usual 'wiki'."""
    from function.build import BuildOptions, build
    from function.records import Record
    from function.sources import open_source

    root = tmp_path_factory.mktemp("site_store")
    (root / "wiki").symlink_to(model_store / "wiki")

    def records():
        for record in open_source(wiki_sample_path()):
            if isinstance(record, Record):
                body = (f"<html><head><title>{html.escape(record.title)}</title>"
                        '<link rel="icon" href="data:,"></head><body><h1>'  # no /favicon.ico 404 in the console
                        f"{html.escape(record.title)}</h1><p>{html.escape(record.text[:3000])}</p></body></html>")
                record = dataclasses.replace(record, url=pages.add(f"/site/{record.id}.html", body.encode()))
            yield record

    build([records()], root / "site", BuildOptions(name="site"), progress=False)
    return root


def test_try_it_query_results_more_like_this_and_a_click(site_store, function_process, function_env, tab):
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    page = tab()
    browser_tab = page.tab
    browser_tab.goto(server.base + "/")
    assert browser_tab.title().startswith("Find related articles")
    page.screenshot("try-it-form")

    browser_tab.fill("#text", "moon landing astronaut")
    browser_tab.select_option("#corpus", "site")
    browser_tab.fill("#k", "6")
    browser_tab.click("button[type=submit]")
    browser_tab.wait_for_selector("li.result")
    titles = browser_tab.locator(".result-title").all_inner_texts()
    assert len(titles) == 6 and {"Apollo 11", "Astronaut"} <= set(titles[:3])
    assert "corpus=site" in browser_tab.url and "Related to the text moon landing astronaut" in \
        browser_tab.inner_text("#results-title")
    page.screenshot("try-it-results")

    # "More like this" on Apollo 11: a query by its id, in the same corpus
    apollo = browser_tab.locator("li.result", has=browser_tab.locator(".result-title", has_text="Apollo 11")).first
    apollo.locator("a.more").click()
    browser_tab.wait_for_url("**/?id=*")
    assert browser_tab.inner_text("#results-title") == "More like Apollo 11"
    more_titles = browser_tab.locator(".result-title").all_inner_texts()
    assert more_titles[0] == "Apollo 8" and "Apollo 11" not in more_titles
    page.screenshot("try-it-more-like-this")

    # a result link goes through the click tracker and lands on the article
    link = browser_tab.locator("a.result-title").first
    href = link.get_attribute("href")
    assert href.startswith(server.base + "/click?")
    link.click()
    browser_tab.wait_for_url("**/site/*.html")
    assert browser_tab.inner_text("h1") == more_titles[0]
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 1)
    assert [(c["corpus"], c["rank"], c["url"]) for c in clicks] == [("site", 1, browser_tab.url)]
    assert page.problems == []


def test_try_it_shows_errors_in_the_page_and_reads_on_a_phone(function_process, tab):
    server = function_process().wait_ready()
    page = tab(PHONE)
    browser_tab = page.tab
    browser_tab.goto(server.base + "/")
    browser_tab.click("button[type=submit]")  # nothing typed
    alert = browser_tab.wait_for_selector("[role=alert]")
    assert "give an article URL or some text" in alert.inner_text()
    page.screenshot("try-it-error-phone")

    browser_tab.fill("#text", "greek philosopher logic")
    browser_tab.click("button[type=submit]")
    browser_tab.wait_for_selector("li.result")
    assert not browser_tab.query_selector("[role=alert]")
    # readable on a phone: nothing wider than the screen, results one under the other
    assert browser_tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    boxes = [r.bounding_box() for r in browser_tab.query_selector_all("li.result")]
    assert all(b["width"] > PHONE["width"] * 0.85 for b in boxes)
    assert all(a["y"] + a["height"] <= b["y"] for a, b in zip(boxes, boxes[1:]))
    page.screenshot("try-it-results-phone")
    # the error page (400) is reported by Chromium as a failed load; nothing else may be
    assert all("status of 400" in p for p in page.problems), page.problems


def test_a_pasted_article_too_long_for_a_url_gets_its_results(function_process, tab):
    server = function_process().wait_ready()
    article = wiki_article("Apollo 11")  # 41,000 characters: the form posts it, a GET could not carry it
    asked = urllib.request.Request(server.base + "/", data=json.dumps({"text": article}).encode(),
                                   headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(asked, timeout=20) as response:
        expected = [r["title"] for r in json.load(response)["results"]]
    page = tab()
    browser_tab = page.tab
    browser_tab.goto(server.base + "/")
    browser_tab.fill("#text", article)
    browser_tab.click("button[type=submit]")
    browser_tab.wait_for_selector("li.result")
    assert browser_tab.locator(".result-title").all_inner_texts() == expected and len(expected) == 5
    assert browser_tab.input_value("#text").strip() == article.strip()
    page.screenshot("try-it-pasted-article")
    assert page.problems == []


# -- the widget on a site's own pages ----------------------------------------------------------------
def site_page(title, head="", body=""):
    return (f"<html><head><title>{html.escape(title)}</title>" '<link rel="icon" href="data:,">'
            f"{head}</head><body><h1>{html.escape(title)}</h1>{body}</body></html>").encode()


def answer(base, **query):
    with urllib.request.urlopen(f"{base}/?{urllib.parse.urlencode(query)}", timeout=20) as response:
        return json.load(response)


def test_the_widget_lists_a_pages_related_articles_and_a_click_lands_on_one(site_store, function_process,
                                                                             function_env, pages, tab):
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    member = pages.url("/site/662.html")  # Apollo 11 in the 'site' corpus
    # another origin than the function's (another port): the widget's request is a cross-origin one
    blog = pages.add("/blog/fifty-years-on.html", site_page(
        "Fifty years on", head=f'<link rel="canonical" href="{member}">',
        body="<article><p>Our look back at the first landing.</p>"
             f'<script src="{server.base}/assets/widget.js" data-corpus="site" data-k="4" async></script>'
             '<p id="comments">Comments</p></article>'))
    expected = answer(server.base, url=member, corpus="site", k=4)
    titles = [result["title"] for result in expected["results"]]
    assert len(titles) == 4 and "Apollo 11" not in titles

    page = tab()
    browser_tab = page.tab
    browser_tab.goto(blog)
    links = browser_tab.locator("a.related-content-link")
    links.first.wait_for()
    assert links.all_inner_texts() == titles  # asked about the canonical address: the member, not itself
    assert all(links.nth(i).get_attribute("href").startswith(server.base + "/click?") for i in range(4))
    assert browser_tab.inner_text(".related-content-heading") == "Related articles"
    assert browser_tab.evaluate("document.querySelector('script[src$=\"widget.js\"]')"
                                ".nextElementSibling.className") == "related-content"  # where the tag is
    page.screenshot("widget")

    links.first.click()
    browser_tab.wait_for_url("**/site/*.html")
    assert browser_tab.inner_text("h1") == titles[0]
    # the article is told the reader came from the site, as the browser's default policy tells it
    # past another origin (the click's "no-referrer" had made every recommended read "direct" in
    # the site's analytics)
    assert browser_tab.evaluate("document.referrer") == blog.split("/blog/")[0] + "/"
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 1)
    assert [(c["corpus"], c["rank"], c["url"]) for c in clicks] == [("site", 1, browser_tab.url)]
    asked = {r["_id"]: r for r in wait_for_events(function_env["MONGODB"], "requests", 2)}
    widgets = asked[clicks[0]["request_id"]]  # the widget's own request, not the test's
    assert widgets["_id"] != expected["request_id"] and widgets["url"] == member
    assert page.problems == []


def test_the_widget_keeps_its_lists_place_while_it_loads(site_store, function_process, pages, tab):
    """Nothing was shown while the answer was asked for, so the site's text below the tag jumped down by
    the list's height when it came (Cumulative Layout Shift). A placeholder of the heading and k blank
    lines, busy to screen readers, keeps the place; an answer with nothing to show takes it away."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    member = pages.url("/site/662.html")

    def post(path, tag=""):
        return pages.add(path, site_page(
            "Fifty years on", head=f'<link rel="canonical" href="{member}">',
            body=f'<article><p>Our look back.</p>{tag}<p id="comments">Comments</p></article>'))

    tag = f'<script src="{server.base}/assets/widget.js" data-corpus="site" data-k="4" {{}} async></script>'
    page = tab()
    browser_tab = page.tab
    held = []  # the widget's question to the function, held until the test has measured the page
    browser_tab.route(lambda url: url.startswith(server.base + "/?"), lambda route: held.append(route))
    comments = "document.getElementById('comments').getBoundingClientRect().top"

    def loading(path, attributes=""):
        browser_tab.goto(post(path, tag.format(attributes)))
        browser_tab.wait_for_load_state("load")
        deadline = time.monotonic() + 20
        while not held and time.monotonic() < deadline:
            browser_tab.wait_for_timeout(20)
        assert held, "the widget asked nothing"
        return browser_tab.evaluate(comments)

    before = loading("/blog/shift.html")
    busy = browser_tab.evaluate("""() => { const box = document.querySelector('.related-content');
        return box && [box.getAttribute('aria-busy'), box.getAttribute('aria-label'), box.innerText.trim(),
                       box.querySelectorAll('[aria-hidden=true] li').length, box.querySelectorAll('a').length]; }""")
    held.pop().continue_()
    browser_tab.locator("a.related-content-link").first.wait_for()
    shift = browser_tab.evaluate(comments) - before
    assert shift == 0, f"the comments moved {shift} px when the list came"
    assert busy == ["true", "Related articles", "Related articles", 4, 0]
    assert browser_tab.locator(".related-content").get_attribute("aria-busy") is None
    assert browser_tab.locator(".related-content").count() == 1
    page.screenshot("widget-loaded")

    # nothing to show: the placeholder goes, and the page is as if the tag had not been there
    without = tab().tab
    without.goto(post("/blog/no-widget.html"))
    alone = without.evaluate(comments)
    assert loading("/blog/strict.html", 'data-min-score="0.999"') > alone  # the place kept meanwhile
    held.pop().continue_()
    browser_tab.wait_for_function("() => !document.querySelector('.related-content')")
    assert browser_tab.evaluate(comments) == alone
    assert page.problems == []


def long_read(pages, server, path, *, before_px, after_px=0, item_px=None, k=5, member="/site/662.html"):
    """A long article whose canonical link names a member of the 'site' corpus, with the widget after
    ``before_px`` of text and ``after_px`` of comments, its items ``item_px`` tall (a phone's cards)."""
    style = f"<style>li {{ height: {item_px}px }}</style>" if item_px else ""
    comments = f'<p style="height: {after_px}px">Comments</p>' if after_px else ""
    return pages.add(path, site_page(
        "A long read", head=f'<link rel="canonical" href="{pages.url(member)}">{style}',
        body=f'<article><p style="height: {before_px}px">A long article.</p>'
             f'<script src="{server.base}/assets/widget.js" data-corpus="site" data-k="{k}" async></script>'
             f"{comments}</article>"))


def reading(tab, article, viewport=DESKTOP):
    """A reader's tab on ``article``, once the widget has put its list in the page (in view or not)."""
    page = tab(viewport)
    page.tab.goto(article)
    page.tab.locator("a.related-content-link").first.wait_for(state="attached")
    return page


def test_the_widgets_list_is_seen_once_it_is_scrolled_into_view(site_store, function_process, function_env, pages,
                                                                 tab):
    """A list below the fold that nobody scrolled to had counted as an impression: the widget posts
    the answer's seen link once half the list is in view, and once only."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    page = reading(tab, long_read(pages, server, "/blog/long-read.html", before_px=3000, k=3, member="/site/664.html"))
    browser_tab = page.tab
    asked = wait_for_events(function_env["MONGODB"], "requests", 1)
    assert wait_for_events(function_env["MONGODB"], "views", 1, timeout=2) == []  # below the fold: not seen
    browser_tab.mouse.wheel(0, 900)  # half-way: the list is still out of view
    assert wait_for_events(function_env["MONGODB"], "views", 1, timeout=1.5) == []
    # flicked past: in view for a tenth of a second, not the second that makes it seen
    browser_tab.evaluate("""() => new Promise((done) => {
        document.querySelector('.related-content').scrollIntoView();
        setTimeout(() => { window.scrollTo(0, 0); done(); }, 100);
    })""")
    assert wait_for_events(function_env["MONGODB"], "views", 1, timeout=2.5) == []
    browser_tab.locator(".related-content").scroll_into_view_if_needed()
    views = wait_for_events(function_env["MONGODB"], "views", 1)
    assert [v["request_id"] for v in views] == [asked[0]["_id"]] and "bot" not in views[0]
    browser_tab.evaluate("window.scrollTo(0, 0)")
    browser_tab.locator(".related-content").scroll_into_view_if_needed()  # seen again: no second view
    assert len(wait_for_events(function_env["MONGODB"], "views", 2, timeout=2)) == 1
    stats = json.load(urllib.request.urlopen(server.base + "/stats", timeout=20))
    assert (stats["requests"], stats["seen"]) == (1, 1)
    assert page.problems == []


def test_a_click_on_a_list_not_yet_half_in_view_counts_it_seen(site_store, function_process, function_env, pages,
                                                                 tab):
    """On a phone a list of five is taller than the screen: a reader who taps its first link while it
    fills a third of the screen had made a click on an answer never seen, so ctr_seen read below ctr.
    A click on one of its links says the list was seen."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    page = reading(tab, long_read(pages, server, "/blog/phone-read.html", before_px=1500, after_px=1500, item_px=250),
                   PHONE)
    browser_tab = page.tab
    height, screen = browser_tab.evaluate("[document.querySelector('.related-content').offsetHeight, innerHeight]")
    assert height > screen
    browser_tab.evaluate("window.scrollTo(0, document.querySelector('.related-content').offsetTop - innerHeight * 0.7)")
    assert wait_for_events(function_env["MONGODB"], "views", 1, timeout=2) == []  # a third of the screen: not yet
    browser_tab.locator("a.related-content-link").first.click()
    browser_tab.wait_for_url("**/site/*.html")
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 1)
    views = wait_for_events(function_env["MONGODB"], "views", 1)
    assert [v["request_id"] for v in views] == [c["request_id"] for c in clicks]
    stats = json.load(urllib.request.urlopen(server.base + "/stats", timeout=20))
    assert (stats["requests"], stats["seen"], stats["clicks"], stats["ctr"], stats["ctr_seen"]) == (1, 1, 1, 1.0, 1.0)
    assert page.problems == []


def test_a_readers_click_middle_click_and_enter_are_readers_clicks_and_a_scripts_follow_is_not(
        site_store, function_process, function_env, pages, tab):
    """Chromium sends Fetch Metadata with each way a reader follows the widget's link (Sec-Fetch-User: ?1
    with a middle click into a new tab and with Enter too): all readers' clicks. A page's script that
    follows a click link by itself sends no Sec-Fetch-User, and /stats counts its click apart."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    page = reading(tab, long_read(pages, server, "/blog/three-ways.html", before_px=100, k=4))
    links = page.tab.locator("a.related-content-link")
    links.nth(1).click(button="middle")  # a new tab; this one stays
    wait_for_events(function_env["MONGODB"], "clicks", 1)
    links.nth(2).focus()
    page.tab.keyboard.press("Enter")
    page.tab.wait_for_url("**/site/*.html")
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 2)
    # the script's own answer, followed by the page once it loads, with no reader's activation
    scripted = answer(server.base, url=pages.url("/site/662.html"), corpus="site", k=1)["results"][0]["click_url"]
    robot = pages.add("/blog/robot.html", site_page("Robot", body=f"<script>location.href = {json.dumps(scripted)}"
                                                                  "</script>"))
    tab().tab.goto(robot)
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 3)
    followed = sorted((c["rank"], c["sec_fetch"], c.get("unverified")) for c in clicks)
    # the site's pages and the function: one host, two ports, so same-site ("s"); a navigation ("n")
    assert followed == [(1, "sn-", "no_user_activation"), (2, "sn1", None), (3, "sn1", None)]
    stats = json.load(urllib.request.urlopen(server.base + "/stats", timeout=20))
    # the middle click's new tab is the only one the context's reader's User-Agent does not reach
    # (playwright): it says HeadlessChrome there, a crawler's name
    assert [c.get("bot") for c in sorted(clicks, key=lambda c: c["rank"])] == [None, "Headless", None]
    left_out = stats["left_out"]
    assert (stats["clicks"], left_out["crawler_clicks"], left_out["unverified_clicks"]) == (1, 1, 1)
    assert page.problems == []


@pytest.mark.parametrize("button", ["middle", "right", "menu key"])
def test_a_link_opened_in_a_new_tab_counts_its_list_seen(site_store, function_process, function_env, pages, tab,
                                                        button):
    """A middle click, or "open in new tab" from a link's menu (right click, the menu key, a long press),
    on a list not yet half in view had made a click on an answer never seen: each says the list was seen."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    page = reading(tab, long_read(pages, server, f"/blog/{button.replace(' ', '-')}-read.html", before_px=1500, after_px=1500,
                                  item_px=250), PHONE)
    browser_tab = page.tab
    browser_tab.evaluate("window.scrollTo(0, document.querySelector('.related-content').offsetTop - innerHeight * 0.7)")
    assert wait_for_events(function_env["MONGODB"], "views", 1, timeout=2) == []  # a third of the screen: not yet
    browser_tab.evaluate("document.addEventListener('click', (e) => e.preventDefault())")  # the tab stays here
    link = browser_tab.locator("a.related-content-link").first
    if button == "menu key":  # a menu with no mouse button (auxclick): the keyboard's, as a long press
        link.focus()
        browser_tab.keyboard.press("ContextMenu")
    else:
        link.click(button=button)
    asked = wait_for_events(function_env["MONGODB"], "requests", 1)
    views = wait_for_events(function_env["MONGODB"], "views", 1)
    assert [v["request_id"] for v in views] == [asked[0]["_id"]]
    assert page.problems == []


def test_a_list_several_screens_tall_is_seen_once_it_fills_half_the_screen(site_store, function_process,
                                                                          function_env, pages, tab):
    """The observer was told of the list at each quarter of it: on a phone, a list of five 800 px cards
    (4,000 px, past four screens) scrolled through a frame at a time filled the whole screen and
    never reached a quarter, so it was never seen; one of 2,500 px was seen only past 74% of it."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    page = reading(tab, long_read(pages, server, "/blog/cards.html", before_px=1500, after_px=3000, item_px=800),
                   PHONE)
    browser_tab = page.tab
    scroll = """(filled) => new Promise((done) => {  // as a reader's finger does: 40 px a frame
        const list = document.querySelector(".related-content");
        const target = list.offsetTop - innerHeight * (1 - filled);
        (function step() {
            if (scrollY >= target) { return done(list.offsetHeight); }
            scrollTo(0, Math.min(target, scrollY + 40));
            requestAnimationFrame(step);
        })();
    })"""
    assert browser_tab.evaluate(scroll, 0.4) > 4 * PHONE["height"]
    assert wait_for_events(function_env["MONGODB"], "views", 1, timeout=2) == []  # 40% of the screen: not yet
    browser_tab.evaluate(scroll, 1.0)  # the list fills the screen
    views = wait_for_events(function_env["MONGODB"], "views", 1)
    asked = wait_for_events(function_env["MONGODB"], "requests", 1)
    assert [v["request_id"] for v in views] == [asked[0]["_id"]]
    assert page.problems == []


def test_a_prerendered_page_asks_once_the_reader_opens_it(site_store, function_process, function_env, pages, tab):
    """A page prerendered by speculation rules and never opened had asked all the same: an answer in
    /stats' requests, lowering ctr, for nobody. The widget asks once the page is shown. (Chromium
    prerenders nothing under DevTools, PrerenderingDisabledByDevTools: document.prerendering and its
    prerenderingchange are played here as Chromium plays them.)"""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    member = pages.url("/site/662.html")
    ahead = pages.add("/blog/ahead.html", site_page(
        "Read next", head=f'<link rel="canonical" href="{member}">',
        body=f'<script src="{server.base}/assets/widget.js" data-corpus="site" data-k="3" async></script>'))
    page = tab()
    browser_tab = page.tab
    browser_tab.add_init_script("""(() => {
        let prerendering = true;
        Object.defineProperty(Document.prototype, "prerendering", {get: () => prerendering, configurable: true});
        window.activate = () => { prerendering = false; document.dispatchEvent(new Event("prerenderingchange")); };
    })()""")
    browser_tab.goto(ahead)
    browser_tab.wait_for_function("() => [...document.scripts].some((s) => s.src.endsWith('widget.js'))")
    assert wait_for_events(function_env["MONGODB"], "requests", 1, timeout=2.5) == []  # nobody has opened it
    # its place is kept (opened, the list moves nothing), but nothing is in it
    assert browser_tab.locator(".related-content").get_attribute("aria-busy") == "true"
    assert browser_tab.locator("a.related-content-link").count() == 0
    browser_tab.evaluate("window.activate()")
    browser_tab.locator("a.related-content-link").first.wait_for()
    asked = wait_for_events(function_env["MONGODB"], "requests", 1)
    views = wait_for_events(function_env["MONGODB"], "views", 1)
    assert len(asked) == 1 and [v["request_id"] for v in views] == [asked[0]["_id"]]
    assert page.problems == []


def test_a_long_list_in_a_frame_of_another_origin_is_seen_once_it_fills_the_screen(site_store, function_process,
                                                                                  function_env, pages, tab):
    """In a frame of another origin, sized to its content (5000 px), IntersectionObserver gives no
    rootBounds: half the frame's height had been taken for half the screen's, so a list of 2,500 px
    filling the reader's whole screen was never seen."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    inner = long_read(pages, server, "/embed/long-list.html", before_px=1000, item_px=500)
    other_origin = inner.replace("http://127.0.0.1:", "http://localhost:")
    host = pages.add("/blog/embeds.html", site_page(
        "Embeds", body=f'<iframe src="{other_origin}" style="width: 800px; height: 5000px; border: 0"></iframe>'))
    page = tab()
    browser_tab = page.tab
    browser_tab.goto(host)
    frame = browser_tab.frame_locator("iframe")
    frame.locator("a.related-content-link").first.wait_for(state="attached")
    assert wait_for_events(function_env["MONGODB"], "views", 1, timeout=1.5) == []  # below the fold
    browser_tab.evaluate("window.scrollTo(0, 1600)")  # the list fills the screen: a fifth of it
    views = wait_for_events(function_env["MONGODB"], "views", 1)
    asked = wait_for_events(function_env["MONGODB"], "requests", 1)
    assert [v["request_id"] for v in views] == [asked[0]["_id"]]
    assert page.problems == []


def test_the_widget_of_a_single_page_app_follows_it_to_another_page(site_store, function_process, pages, tab):
    """A single-page app shows another article without loading a page: the script ran once, and its
    list had stayed the first article's. Told so by an event, it asks again and replaces its list."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    first, second = pages.url("/site/662.html"), pages.url("/site/664.html")  # Apollo 11, Astronaut
    app = pages.add("/app/index.html", site_page(
        "An app", head=f'<link rel="canonical" href="{first}">',
        body=f'<main id="view"><p>Apollo 11</p></main><script src="{server.base}/assets/widget.js" '
             'data-corpus="site" data-k="3" async></script>'))
    titles = {url: [r["title"] for r in answer(server.base, url=url, corpus="site", k=3)["results"]]
              for url in (first, second)}
    assert titles[first] != titles[second]
    page = tab()
    browser_tab = page.tab
    browser_tab.goto(app)
    links = browser_tab.locator("a.related-content-link")
    links.first.wait_for()
    assert links.all_inner_texts() == titles[first]
    browser_tab.evaluate("""(second) => {
        history.pushState({}, "", "/app/astronaut");
        document.querySelector("link[rel=canonical]").href = second;
        document.getElementById("view").textContent = "Astronaut";
        document.dispatchEvent(new Event("related-content:refresh"));
    }""", second)
    browser_tab.wait_for_function("(titles) => JSON.stringify([...document.querySelectorAll("
                                  "'a.related-content-link')].map((a) => a.textContent)) === titles",
                                  arg=json.dumps(titles[second], separators=(",", ":"), ensure_ascii=False))
    assert links.all_inner_texts() == titles[second]
    assert browser_tab.locator(".related-content").count() == 1  # replaced, not added
    assert page.problems == []


def test_a_single_page_apps_refresh_told_twice_is_one_request(site_store, function_process, function_env, pages,
                                                               tab):
    """A router that announces one route change twice: the widget had asked twice and shown only the
    last answer, so /stats counted three answers (the denominator of its click-through) for the two
    lists its reader saw."""
    server = function_process(MODEL_STORE=str(site_store), DEFAULT_CORPUS="wiki").wait_ready()
    first, second = pages.url("/site/662.html"), pages.url("/site/664.html")
    app = pages.add("/app/twice.html", site_page(
        "An app", head=f'<link rel="canonical" href="{first}">',
        body=f'<script src="{server.base}/assets/widget.js" data-corpus="site" data-k="3" async></script>'))
    page = tab()
    browser_tab = page.tab
    browser_tab.goto(app)
    browser_tab.locator("a.related-content-link").first.wait_for()
    shown = browser_tab.evaluate("""(second) => new Promise((done) => {
        let lists = 0;
        new MutationObserver((changes) => changes.forEach((change) => change.addedNodes.forEach((node) => {
            lists += node.className === "related-content" ? 1 : 0;
        }))).observe(document.body, {childList: true, subtree: true});
        document.querySelector("link[rel=canonical]").href = second;
        document.dispatchEvent(new Event("related-content:refresh"));
        document.dispatchEvent(new Event("related-content:refresh"));
        setTimeout(() => done(lists), 3000);
    })""", second)
    assert shown == 1
    asked = wait_for_events(function_env["MONGODB"], "requests", 3, timeout=2)
    assert sorted(r["url"] for r in asked) == sorted([first, second])
    stats = json.load(urllib.request.urlopen(server.base + "/stats", timeout=20))
    assert stats["requests"] == 2
    assert page.problems == []


@pytest.fixture(scope="module")
def tricky_store(tmp_path_factory, model_store, pages):
    """MODEL_STORE with 'tricky': three articles, one titled with markup."""
    from function.build import BuildOptions, build
    from function.records import Record

    root = tmp_path_factory.mktemp("tricky_store")
    (root / "wiki").symlink_to(model_store / "wiki")
    records = [Record("1", pages.url("/tricky/1.html"), '<img src=x onerror="window.pwned=1">Moon rocks',
                      "moon rocks brought back by astronauts from the lunar surface"),
               Record("2", pages.url("/tricky/2.html"), "Moon landing",
                      "the moon landing of the astronauts on the lunar surface"),
               Record("3", pages.url("/tricky/3.html"), "Tomato soup", "a soup of tomatoes and basil")]
    build([records], root / "tricky", BuildOptions(name="tricky"), progress=False)
    return root


def test_the_widget_sets_titles_as_text_fills_its_target_and_fails_quietly(tricky_store, function_process,
                                                                           pages, tab):
    server = function_process(MODEL_STORE=str(tricky_store), DEFAULT_CORPUS="wiki").wait_ready()
    widget = f"{server.base}/assets/widget.js"
    page = tab()
    browser_tab = page.tab
    warnings = []
    browser_tab.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
    # in <head>, with a target further down the page and no heading; asked about data-url
    browser_tab.goto(pages.add("/tricky/reader.html", site_page(
        "Reader", head=f'<script src="{widget}" data-url="/tricky/2.html" data-corpus="tricky" data-heading="" '
                       'data-target="#see-also" async></script>',
        body='<p>Text.</p><div id="see-also"></div><p id="last">End.</p>')))
    links = browser_tab.locator("#see-also a.related-content-link")
    links.first.wait_for()
    assert links.first.inner_text() == '<img src=x onerror="window.pwned=1">Moon rocks'
    assert browser_tab.locator("#see-also img, #see-also h2").count() == 0
    # no heading, no name: "Related articles", English whatever the site's language, had named it
    assert browser_tab.locator("#see-also aside").get_attribute("aria-label") is None
    assert browser_tab.evaluate("window.pwned") is None
    assert warnings == [] and page.problems == []

    def warned(path, tag):  # nothing shown to readers, the reason in the console
        warnings.clear()
        browser_tab.goto(pages.add(path, site_page("Quiet", body=f'<p>Text.</p><script src="{widget}" {tag} async>'
                                                                  "</script>")))
        deadline = time.monotonic() + 10
        while not warnings and time.monotonic() < deadline:
            browser_tab.wait_for_timeout(50)
        assert browser_tab.locator(".related-content").count() == 0
        assert len(warnings) == 1, warnings
        return warnings[0]

    # in <head> without a target: at the end of the page
    browser_tab.goto(pages.add("/tricky/head.html", site_page(
        "Head", head=f'<script src="{widget}" data-url="2.html" data-corpus="tricky" async></script>',
        body='<p>Text.</p><p id="last">End.</p>')))
    browser_tab.locator(".related-content a").first.wait_for()
    assert browser_tab.evaluate("document.body.lastElementChild.className") == "related-content"
    assert "data-min-score too high" in warned("/tricky/strict.html", 'data-url="2.html" data-corpus="tricky" '
                                                                       'data-min-score="0.999"')
    assert "no element matches data-target" in warned("/tricky/target.html", 'data-url="2.html" '
                                                      'data-corpus="tricky" data-target="##"')  # not a selector
    assert "is not a URL" in warned("/tricky/url.html", 'data-url="http://[" data-corpus="tricky"')
    assert page.problems == []  # nothing thrown into the site's page
    said = warned("/tricky/typo.html", 'data-corpus="trickyy"')  # a corpus that does not exist
    assert "unknown_corpus" in said and "/tricky/typo.html" in said
    # the 404 is the one problem Chromium reports (a failed resource load), nothing else
    assert all("404" in problem for problem in page.problems), page.problems


def test_the_widget_is_not_fooled_by_markup_named_current_script(tricky_store, function_process, pages, tab):
    # an <img name="currentScript"> (a sanitiser lets "name" through) had been taken for the script tag:
    # its src chose the server asked and its data- attributes the box, a phishing heading among them
    server = function_process(MODEL_STORE=str(tricky_store), DEFAULT_CORPUS="wiki").wait_ready()
    decoy = pages.add("/decoy/assets/widget.js", b"", content_type="image/png")
    page = tab()
    browser_tab = page.tab
    browser_tab.goto(pages.add("/tricky/clobbered.html", site_page(
        "Comments", body=f'<p><img name="currentScript" src="{decoy}" data-heading="Security notice"></p>'
                         f'<script src="{server.base}/assets/widget.js" data-url="2.html" data-corpus="tricky" '
                         'async></script>')))
    links = browser_tab.locator("a.related-content-link")
    links.first.wait_for()
    assert browser_tab.inner_text(".related-content-heading") == "Related articles"
    assert links.first.get_attribute("href").startswith(server.base + "/click?")
    assert not [path for path in pages.hits if path.startswith("/decoy/?")]  # nothing asked of the decoy's server


def test_the_widgets_heading_takes_the_level_and_name_its_owner_gives(tricky_store, function_process, pages, tab):
    """A fixed h2 broke the outline of a page whose list sits under its own h2s, and its name was English."""
    server = function_process(MODEL_STORE=str(tricky_store), DEFAULT_CORPUS="wiki").wait_ready()
    page = tab()
    warnings = []
    page.tab.on("console", lambda m: m.type == "warning" and warnings.append(m.text))

    def heading(path, attributes):
        page.tab.goto(pages.add(path, site_page("Lune", body=f'<h2>Suite</h2><script src="{server.base}/assets/'
                                                f'widget.js" data-url="2.html" data-corpus="tricky" {attributes} '
                                                'async></script>')))
        page.tab.locator("a.related-content-link").first.wait_for()
        title = page.tab.locator(".related-content-heading")
        return (title.evaluate("e => e.tagName"), title.inner_text(),
                page.tab.locator("aside.related-content").get_attribute("aria-label"))

    assert heading("/tricky/fr.html", 'data-heading="À lire aussi" data-heading-level="3"') == \
        ("H3", "À lire aussi", "À lire aussi")
    assert warnings == []
    assert heading("/tricky/level.html", 'data-heading-level="7"') == ("H2", "Related articles", "Related articles")
    assert len(warnings) == 1 and "data-heading-level" in warnings[0], warnings
    assert page.problems == []


def test_an_error_page_that_is_not_json_is_warned_by_its_status(pages, tab):
    """A proxy's HTML 502 had been warned as a JSON parse error (Unexpected token '<'), not as the 502 it was."""
    widget = pages.add("/proxy/assets/widget.js", (ROOT / "function" / "static" / "widget.js").read_bytes(),
                       content_type="text/javascript")
    asked = pages.url("/proxy/article.html")
    pages.add("/proxy/?" + urllib.parse.urlencode({"url": asked}), b"<html><body>502 Bad Gateway</body></html>",
              status=502)
    page = tab()
    warnings = []
    page.tab.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
    page.tab.goto(pages.add("/proxy/article.html", site_page("Article", body=f'<script src="{widget}" async></script>')))
    deadline = time.monotonic() + 10
    while not warnings and time.monotonic() < deadline:
        page.tab.wait_for_timeout(50)
    assert len(warnings) == 1 and "(HTTP 502, not JSON: text/html; charset=utf-8)" in warnings[0], warnings
    assert page.tab.locator(".related-content").count() == 0


# -- the dashboard ----------------------------------------------------------------------------------
class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def seed_traffic(base, mongodb):
    """Real requests and clicks: both engines, a few ranks clicked, some errors."""
    topics = ["moon landing astronaut", "greek philosopher logic", "atlantic ocean", "alkali metal", "abraham lincoln",
              "american civil war", "algebra mathematics", "animal farm novel", "academy award film", "alchemy gold",
              "apollo program", "aristotle ethics", "asia continent", "anarchism politics", "austria vienna",
              "actinium element", "ada lovelace", "amphibian frog", "alabama state", "archaeology dig"]
    no_redirect = urllib.request.build_opener(NoRedirects)
    requests = clicks = 0
    for i, topic in enumerate(topics):
        status, body = get(f"{base}/?text={urllib.request.quote(topic)}&k=8")
        assert status == 200
        requests += 1
        results = json.loads(body)["results"]
        for rank in ((1,), (1, 3), (), (2,), (1, 5))[i % 5]:
            try:
                # a reader's browser: urllib's own User-Agent is a crawler's, whose clicks are counted apart
                no_redirect.open(urllib.request.Request(results[rank - 1]["click_url"],
                                                        headers=READER), timeout=20)
            except urllib.error.HTTPError as exc:
                assert exc.code == 302
            clicks += 1
    for bad in ("/?id=no-such-id", "/?text=zzzzqqq+xxyyzz", "/?id=also-missing"):
        assert get(base + bad)[0] in (404, 422)
        requests += 1
    wait_for_events(mongodb, "requests", requests)
    wait_for_events(mongodb, "clicks", clicks)
    return requests, clicks


CHARTS = ["timeline", "engines", "ranks", "scores", "latency", "delay", "recommended", "clicked", "errors"]


def test_dashboard_draws_every_chart_without_errors(function_process, function_env, tab):
    server = function_process(ENGINE_WEIGHTS="lsi=50,tfidf=50").wait_ready()
    requests, clicks = seed_traffic(server.base, function_env["MONGODB"])
    page = tab()
    browser_tab = page.tab
    response = browser_tab.goto(server.base + "/dashboard")
    assert response.status == 200
    browser_tab.wait_for_load_state("load")

    figures = browser_tab.locator("figure.chart")
    assert [figures.nth(i).get_attribute("data-chart") for i in range(figures.count())] == CHARTS
    for name in CHARTS:
        figure = browser_tab.locator(f'figure[data-chart="{name}"]')
        assert figure.get_attribute("data-empty") == "false", name
        marks = figure.locator("svg .mark")
        assert marks.count() > 0, name
        drawn = [box for box in (marks.nth(i).bounding_box() for i in range(marks.count())) if box]
        assert any(box["width"] >= 1 and box["height"] >= 1 for box in drawn), f"{name}: nothing visible"
        svg_box = figure.locator("svg").bounding_box()
        assert svg_box["width"] > 300 and svg_box["height"] > 40, name
    engines = browser_tab.locator('figure[data-chart="engines"] table tbody tr th').all_inner_texts()
    assert sorted(engines) == ["lsi", "tfidf"]
    tiles = browser_tab.locator(".tile .big").all_inner_texts()
    assert tiles[0] == str(requests - 3) and tiles[1] == str(clicks)
    # the stylesheet applied (a card has its background and border), with no script on the page
    assert browser_tab.locator(".card").first.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    assert browser_tab.evaluate("document.scripts.length") == 0
    page.screenshot("dashboard")
    assert page.problems == []

    phone = tab(PHONE)
    phone.tab.goto(server.base + "/dashboard")
    assert phone.tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.screenshot("dashboard-phone")
    assert phone.problems == []


def test_dashboard_without_mongodb_says_so_in_the_page(function_process, tab):
    server = function_process(MONGODB="").wait_ready()
    page = tab()
    response = page.tab.goto(server.base + "/dashboard")
    assert response.status == 503
    assert "MONGODB is not set" in page.tab.inner_text("[role=alert]")
    page.screenshot("dashboard-no-mongodb")


def test_with_a_stats_token_the_owner_signs_in_to_the_dashboard_and_its_stats_link(function_process, tab):
    """The 401's challenge makes a browser ask; signed in, the dashboard's link to /stats (the same realm)
    is answered to the same credentials."""
    server = function_process(STATS_TOKEN=STATS_TOKEN).wait_ready()
    # a wrong password: headless Chromium cancels a prompt that nobody answers (ERR_INVALID_AUTH_CREDENTIALS)
    stranger = tab(credentials={"username": "rival", "password": "a-guess-of-some-length"})
    assert stranger.tab.goto(server.base + "/dashboard").status == 401
    assert "STATS_TOKEN" in stranger.tab.inner_text("[role=alert]")
    stranger.screenshot("dashboard-private")

    owner = tab(credentials={"username": "owner", "password": STATS_TOKEN})
    assert owner.tab.goto(server.base + "/dashboard").status == 200
    assert owner.tab.locator(".tile").count() > 0 and owner.problems == []
    # (checked before: the JSON viewer of /stats asks for a /favicon.ico, a 404 in the console)
    with owner.tab.expect_response(lambda response: response.url == server.base + "/stats") as answer:
        owner.tab.click('a[href="/stats"]')
    assert answer.value.status == 200 and answer.value.json()["requests"] == 0


# WCAG 2's contrast ratio of the colours a page computes: each text's (SVG text: its fill) against the first
# opaque background behind it, and each keyboard focus ring against the background it is drawn on
CONTRAST = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => p - q); return (y + 0.05) / (x + 0.05); };
  const behind = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor);
                           if (c.length === 3 || c[3] === 1) return c; } return [255, 255, 255]; };
  const low = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    const el = node.parentElement;
    if (!node.textContent.trim() || el.closest("title, option") || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    const size = parseFloat(style.fontSize), large = size >= 24 || (parseInt(style.fontWeight) >= 700 && size >= 18.66);
    const r = ratio(rgb(el instanceof SVGElement ? style.fill : style.color), behind(el));
    if (r < (large ? 3 : 4.5)) low.add(`text ${el.tagName}.${el.getAttribute("class")}: ${r.toFixed(2)}`);
  }
  return [...low];
}"""
FOCUS_RING = """() => {
  const el = document.activeElement, style = getComputedStyle(el);
  if (el === document.body || style.outlineStyle !== "solid") return null;  // Chromium's own 'auto' ring is two-tone
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  let bg = [255, 255, 255];
  for (let p = el.parentElement; p; p = p.parentElement) { const c = rgb(getComputedStyle(p).backgroundColor);
                                                         if (c.length === 3 || c[3] === 1) { bg = c; break; } }
  const [x, y] = [lum(rgb(style.outlineColor)), lum(bg)].sort((p, q) => p - q);
  return [el.tagName + " " + (el.getAttribute("href") || el.getAttribute("name") || el.textContent.trim()), (y + 0.05) / (x + 0.05)];
}"""


def test_the_pages_text_and_focus_rings_stand_out_from_their_background(function_process, function_env, tab):
    """Text at WCAG AA's 4.5:1 (3:1 large), the focus ring a keyboard user follows at 3:1 (WCAG 1.4.11):
    the charts' tick labels (#7b8794 on white, 3.7:1) and the yellow ring on the white cards (1.9:1) were below."""
    server = function_process().wait_ready()
    seed_traffic(server.base, function_env["MONGODB"])
    page = tab()
    for path in ("/dashboard", "/?text=moon+landing+astronaut"):
        page.tab.goto(server.base + path)
        assert page.tab.evaluate(CONTRAST) == [], path
        rings = []
        for _ in range(60):
            page.tab.keyboard.press("Tab")
            ring = page.tab.evaluate(FOCUS_RING)
            if ring:
                rings.append(ring)
        assert len(rings) > 10, path  # the walk reached the header, the form, and the charts' or results' links
        assert [(name, round(ratio, 2)) for name, ratio in rings if ratio < 3] == [], path
    assert page.problems == []


FOCUSED = """() => {
  const el = document.activeElement;
  if (el === document.body) return null;
  return {tag: el.tagName, native: el.matches("a[href], button, input, select, textarea"), role: el.getAttribute("role"),
          name: el.getAttribute("aria-label"), outline: getComputedStyle(el).outlineStyle};
}"""


def test_a_chart_that_scrolls_sideways_on_a_phone_is_a_named_tab_stop(function_process, function_env, tab):
    """At 360 px Chromium makes each chart and table that scrolls sideways a Tab stop (overflow: auto): seven
    had been unnamed divs, stops a keyboard or screen reader user could not tell apart. Each is a region named
    after its chart, with the page's focus ring."""
    server = function_process().wait_ready()
    seed_traffic(server.base, function_env["MONGODB"])
    page = tab({"width": 360, "height": 800})
    page.tab.goto(server.base + "/dashboard")
    scrollers = []
    for _ in range(80):
        page.tab.keyboard.press("Tab")
        stop = page.tab.evaluate(FOCUSED)
        if stop and not stop["native"]:
            scrollers.append(stop)
    assert len(scrollers) >= 7, scrollers
    assert [s for s in scrollers if s["role"] != "region" or not s["name"] or s["outline"] != "solid"] == []
    assert "Which engine wins?, in figures" in {s["name"] for s in scrollers}
    assert page.problems == []


def widget_alone(pages, tab, folder):
    """A tab and widget.js served from the loopback site under /``folder``/, its questions held unanswered
    (the placeholders stay), with no function process: what the page shows while it waits."""
    widget = pages.add(f"/{folder}/assets/widget.js", (ROOT / "function" / "static" / "widget.js").read_bytes(),
                       content_type="text/javascript")
    page = tab()
    held = []
    page.tab.route(lambda url: url.startswith(pages.url(f"/{folder}/?")), lambda route: held.append(route))
    return page, widget, held


PLACEHOLDER = """sel => { const box = document.querySelector(sel + ' > .related-content-loading');
    return box && [box.previousElementSibling && box.previousElementSibling.id, box.querySelectorAll('li').length,
                   box.nextElementSibling && box.nextElementSibling.id]; }"""


def test_the_placeholder_is_placed_as_the_tag_runs_where_its_place_is_read(pages, tab):
    """A tag without async (or whose data-target the page had read) waited for DOMContentLoaded to place the
    placeholder: on a long page still being read, what followed moved when it came. Placed at once where its
    place exists and is read; kept for the end of the page where it is not (a target below the tag, or one
    that holds the tag and is still being read)."""
    page, widget, held = widget_alone(pages, tab, "at-once")
    early = (f"<script>window.early = window.early || {{}}; window.early[document.currentScript.id] = "
             f"({PLACEHOLDER})(document.currentScript.dataset.in);</script>")

    def after(name, where):  # records, as the page is read, what the placeholder looks like then
        return early.replace("<script>", f'<script id="{name}" data-in="{where}">')

    page.tab.goto(pages.add("/at-once/article.html", site_page(
        "At once",
        head=f'<script src="{widget}" data-target="#below" data-k="1"></script>{after("head", "#below")}',
        body=f'<article id="article"><p id="text">Text.</p><script id="tag" src="{widget}" data-k="3"></script>'
             f'{after("in-body", "#article")}<div id="above"></div><p id="mid">More text.</p>'
             f'<script src="{widget}" data-target="#above" data-k="2"></script>{after("above", "#above")}'
             f'<div id="open"><script src="{widget}" data-target="#open" data-k="4"></script>'
             f'{after("open", "#open")}<p id="last">Last.</p></div>'
             '<div id="below"></div><p id="comments">Comments</p></article>')))
    page.tab.wait_for_load_state("domcontentloaded")
    # the parser, after each tag, already found its placeholder after it or in its target
    assert page.tab.evaluate("window.early") == {
        "head": None, "in-body": ["tag", 3, "in-body"], "above": [None, 2, None], "open": None}
    # the others, once the page has been read: the target below, and the end of the one that held its tag
    assert page.tab.evaluate(PLACEHOLDER, "#below") == [None, 1, None]
    assert page.tab.evaluate(PLACEHOLDER, "#open") == ["last", 4, None]
    assert page.tab.evaluate(PLACEHOLDER, "#article") == ["tag", 3, "in-body"]
    assert page.tab.locator(".related-content").count() == 4
    assert page.problems == []


def test_the_placeholder_holds_the_lines_the_function_answers_for_data_k(pages, tab):
    """data-k="100", an answer of up to 100 links (MAX_K's default), had kept 5 lines, its own rule (1 to 99)
    not the function's; and a k the function refuses (a 400: nothing is shown) kept 5 lines for nothing. Any
    script's digits are k's, as the function reads them ("５" had kept no line for its 5 links)."""
    page, widget, held = widget_alone(pages, tab, "k-lines")
    given = {"none": None, "empty": "", "k100": "100", "k7": "+7", "k05": "05", "k5000": "5000", "spaces": " ",
             "zero": "0", "word": "many", "half": "2.5", "underscore": "1_0", "past": "10001",
             "wide": "５", "arabic": "٥٠", "persian": "+۸", "nbsp": "\xa0１２\xa0", "mixed": "1٣",
             "math": "\U0001d7e1", "wide_past": "１００００１", "wide_zero": "０", "minus": "-５"}

    def tag(name, k):  # the value as written, spaces past ASCII included (a repr escapes them)
        k_attribute = "" if k is None else f' data-k="{html.escape(k)}"'
        return f'<section id="{name}"><script src="{widget}" data-target="#{name}"{k_attribute}></script></section>'

    page.tab.goto(pages.add("/k-lines/article.html", site_page("Lines", body="".join(
        tag(name, k) for name, k in given.items()))))
    page.tab.wait_for_load_state("domcontentloaded")
    lines = {name: page.tab.evaluate(PLACEHOLDER, f"#{name}") for name in given}
    assert lines == {"none": ["", 5, None], "empty": ["", 5, None], "k100": ["", 100, None],
                     "k7": ["", 7, None], "k05": ["", 5, None], "k5000": ["", 100, None], "spaces": None,
                     "zero": None, "word": None, "half": None, "underscore": None, "past": None,
                     "wide": ["", 5, None], "arabic": ["", 50, None], "persian": ["", 8, None], "nbsp": ["", 12, None],
                     "mixed": ["", 13, None], "math": ["", 9, None], "wide_past": None, "wide_zero": None, "minus": None}
    # each asked the function, which says why it refuses a k (the placeholder had been shown for nothing)
    deadline = time.monotonic() + 20
    while len(held) < len(given) and time.monotonic() < deadline:
        page.tab.wait_for_timeout(20)
    asked = sorted(urllib.parse.parse_qs(urllib.parse.urlsplit(route.request.url).query).get("k", [""])[0]
                   for route in held)
    assert asked == sorted(k or "" for k in given.values())
    assert page.problems == []


def test_a_browser_without_unicode_classes_reads_data_k_in_ascii_digits(pages, tab):
    """A browser before Unicode's classes in its patterns (\\p{Nd}: 2018-2020) had not run the widget at all
    once data-k was read in any script's digits: the class is tried, and without it ASCII digits are k's,
    as before. Such a browser is stood in for by a RegExp that refuses the class, as it does."""
    page, widget, held = widget_alone(pages, tab, "old-regexp")
    page.tab.add_init_script("""(() => {
        const Native = RegExp;
        window.RegExp = function (pattern, flags) {
            if (String(pattern).includes("\\\\p{")) { throw new SyntaxError("Invalid escape"); }
            return new Native(pattern, flags);
        };
    })();""")
    given = {"k7": "+7", "k12": " 12 ", "wide": "５"}
    page.tab.goto(pages.add("/old-regexp/article.html", site_page("Old", body="".join(
        f'<section id="{name}"><script src="{widget}" data-target="#{name}" data-k="{html.escape(k)}"></script>'
        "</section>" for name, k in given.items()))))
    page.tab.wait_for_load_state("domcontentloaded")
    lines = {name: page.tab.evaluate(PLACEHOLDER, f"#{name}") for name in given}
    assert lines == {"k7": ["", 7, None], "k12": ["", 12, None], "wide": None}
    assert page.problems == []
