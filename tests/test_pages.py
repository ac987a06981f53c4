"""The try-it page and the dashboard, through functions-framework's test client:
content negotiation, links, error messages, escaping, and the dashboard's data.
(tests/test_browser.py drives the same pages in a real Chromium.)"""

import gzip
import hashlib
import logging
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import lxml.html
import pytest

from conftest import STATS_TOKEN, basic_auth, make_client, wait_for_events, wiki_article
from function import charts
from function import pages as page_views
from function.stats import CLICK_DELAY_EDGES_S, LATENCY_EDGES_MS, histogram, timeline, top_articles

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"}


def html_of(response):
    assert response.mimetype == "text/html", response.get_data(as_text=True)[:300]
    return lxml.html.fromstring(response.get_data(as_text=True))


def results_of(doc):
    return [{"title": li.cssselect(".result-title")[0].text_content().strip(),
             "href": li.cssselect("a.result-title")[0].get("href"),
             "more": li.cssselect("a.more")[0].get("href")} for li in doc.cssselect("li.result")]


# -- content negotiation -------------------------------------------------------------
def test_a_browser_gets_the_form_with_the_corpora(client):
    response = client.get("/", headers=BROWSER)
    assert response.status_code == 200
    doc = html_of(response)
    form = doc.cssselect("form.ask-form")[0]
    assert form.get("method") == "post" and form.get("action") == "/"
    assert {field.get("name") for field in form.cssselect("input, textarea, select")} == {"url", "text", "corpus", "k"}
    assert [o.get("value") for o in form.cssselect("select[name=corpus] option")] == ["wiki"]
    assert not doc.cssselect("li.result") and not doc.cssselect("[role=alert]")


def test_a_shared_link_to_the_form_with_tracking_parameters_is_the_bare_form(client):
    """/?fbclid=... (the page's link shared on a social network) had been a "give one of url, text
    or id" error page."""
    for path in ("/?fbclid=IwAR0x", "/?utm_source=news&utm_medium=mail"):
        for response in (client.get(path, headers=BROWSER), client.head(path, headers=BROWSER)):
            assert response.status_code == 200
        doc = html_of(client.get(path, headers=BROWSER))
        assert doc.cssselect("form.ask-form") and not doc.cssselect("[role=alert]")
    assert client.get("/dashboard?days=7&fbclid=IwAR0x").status_code == 200
    assert client.get("/dashboard?days=7&colour=blue").status_code == 400


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html",
                                    "text/html;q=0.5, application/json"])
def test_api_clients_keep_getting_json(client, accept):
    headers = {"Accept": accept} if accept else {}
    answer = client.get("/?text=moon+landing", headers=headers)
    assert answer.is_json and answer.get_json()["results"]
    missing = client.get("/", headers=headers)
    assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "missing_query"


def test_post_stays_json_even_for_a_browser(client):
    response = client.post("/", json={"text": "moon landing", "k": 2}, headers=BROWSER)
    assert response.is_json and len(response.get_json()["results"]) == 2


# -- results ----------------------------------------------------------------------------------
def test_a_results_address_shows_its_letters_as_an_address_bar_does():
    """A French site's results had read "soupe-%C3%A0-l-oignon"; escapes that are not UTF-8 or
    spell what no one sees (a space, a bidi override) stay escaped."""
    from function.pages import display_url

    assert display_url("http://blog.example/recettes/cr%C3%A8me-br%C3%BBl%C3%A9e/") == "blog.example/recettes/crème-brûlée"
    assert display_url("https://blog.example/a%20b%c3%a9?q=%C3%A9t%C3%A9") == "blog.example/a%20bé?q=été"
    hidden = ["%E2%80%AE", "%E2%80%8B", "%C2%A0", "%D8%9C", "%E1%A0%8E", "%E3%85%A4", "%E1%85%9F", "%F3%A0%80%81",
              "%CC%81", "%EE%80%80"]  # bidi, zero width, no-break space, Arabic letter mark, Mongolian vowel
    # separator, Hangul fillers, a tag, a lone combining accent, private use
    for kept in ["https://a.example/caf%E9"] + [f"https://a.example/x{escape}y" for escape in hidden]:
        assert display_url(kept) == kept.split("//", 1)[1], kept
    assert display_url("https://g%D0%BEogle.com/login") == "g%D0%BEogle.com/login"  # not a look-alike host
    # a record's URL written with them as they are: escaped too
    assert display_url("https://ex.com/\u202egnp.exe\u200b\u00ad/cr\u00e8me") == "ex.com/%E2%80%AEgnp.exe%E2%80%8B%C2%AD/cr\u00e8me"


def test_submitting_the_form_shows_the_results_of_the_api(client):
    form = {"url": "", "text": "moon landing astronaut", "corpus": "wiki", "k": "4"}  # as a browser submits it
    doc = html_of(client.get("/", query_string=form, headers=BROWSER))
    expected = client.get("/", query_string={"text": "moon landing astronaut", "k": 4}).get_json()
    shown = results_of(doc)
    assert [r["title"] for r in shown] == [r["title"] for r in expected["results"]]
    for result, api in zip(shown, expected["results"]):
        assert result["href"].startswith("http://localhost/click?")  # through the click tracker
        assert parse_qs(urlsplit(result["href"]).query)["u"] == [api["url"]]
        assert result["more"] == f"/?id={api['id']}&corpus=wiki&k=4"
    assert "moon landing astronaut" in doc.cssselect("#results-title")[0].text_content()
    assert doc.cssselect("textarea[name=text]")[0].text == "moon landing astronaut"  # the form keeps the query
    assert doc.cssselect("input[name=k]")[0].get("value") == "4"


def test_a_refused_query_keeps_k_in_the_form_as_the_api_reads_it(client):
    # full-width digits, as a Japanese keyboard types them, are the API's 10: the form had shown its default 5
    response = client.get("/?text=zzqxv+wvqzz&k=%EF%BC%91%EF%BC%90", headers=BROWSER)
    assert response.status_code == 422  # no word the corpus knows: the form is shown again to mend the query
    assert html_of(response).cssselect("input[name=k]")[0].get("value") == "10"


def test_a_posted_form_that_fits_in_a_url_is_sent_on_to_its_address(client, function_env):
    """The form is posted; what fits in a URL is answered at one (303), which can be bookmarked,
    shared and reloaded, and is recorded once, by the GET."""
    form = {"url": "", "text": "moon landing astronaut", "corpus": "wiki", "k": "4"}
    posted = client.post("/", data=form, headers=BROWSER)
    assert posted.status_code == 303 and posted.headers["Content-Security-Policy"] == page_views.CSP
    location = posted.headers["Location"]
    assert location.startswith("/?")
    # the fields given, not the empty ones: a tidy link to keep and share
    assert parse_qs(urlsplit(location).query, keep_blank_values=True) == {name: [v] for name, v in form.items() if v}
    doc = html_of(client.get(location, headers=BROWSER))
    expected = client.get("/", query_string={"text": "moon landing astronaut", "k": 4}).get_json()
    assert [r["title"] for r in results_of(doc)] == [r["title"] for r in expected["results"]]
    client.get("/", query_string={"text": "moon", "k": 0})  # written after the others: events keep their order
    events = wait_for_events(function_env["MONGODB"], "requests", 3)
    assert [e.get("kind", e.get("error")) for e in events] == ["text", "text", "invalid_parameter"]


def test_a_pasted_article_too_long_for_a_url_is_answered_from_the_form(client, function_env):
    article = wiki_article("Apollo 11")
    assert len(urlencode({"text": article})) > 8000  # over MAX_QUERY_BYTES' most: no GET can carry it
    response = client.post("/", data={"url": "", "text": article, "corpus": "wiki", "k": "6"}, headers=BROWSER)
    assert response.status_code == 200
    doc = html_of(response)
    api = client.post("/", json={"text": article, "k": 6}).get_json()
    assert len(api["results"]) == 6
    assert [r["title"] for r in results_of(doc)] == [r["title"] for r in api["results"]]
    assert doc.cssselect("textarea[name=text]")[0].text_content().strip() == article.strip()  # kept to edit
    assert doc.cssselect("input[name=k]")[0].get("value") == "6"
    assert_inert(response)
    events = wait_for_events(function_env["MONGODB"], "requests", 2)
    assert {e["text_sha256"] for e in events} == {hashlib.sha256(article.strip().encode()).hexdigest()}


@pytest.mark.parametrize("path,body,status,code,message", [
    ("/", "text=moon&text=sun", 400, "invalid_parameter", "'text' given more than once"),
    ("/", "text=caf%E9", 400, "invalid_parameter", "not UTF-8"),
    ("/?k=3", "text=moon", 400, "unknown_parameter", "not in the query string"),
    ("/", "text=" + "a" * 1_000_001, 413, "body_too_large", "over 1000000 bytes"),
    ("/", "text=" + "moon+" * 3000 + "&colour=blue", 400, "unknown_parameter", "'colour'"),
])
def test_a_bad_posted_form_is_a_message_in_the_page(client, function_env, path, body, status, code, message):
    response = client.post(path, data=body, content_type="application/x-www-form-urlencoded", headers=BROWSER)
    assert response.status_code == status
    alert = html_of(response).cssselect("[role=alert]")[0].text_content()
    assert message in alert and code in alert
    assert [e["error"] for e in wait_for_events(function_env["MONGODB"], "requests", 1)] == [code]


def test_more_like_this_asks_by_the_results_id(client):
    first = results_of(html_of(client.get("/?text=moon+landing+astronaut", headers=BROWSER)))
    apollo = next(r for r in first if r["title"] == "Apollo 11")
    response = client.get(apollo["more"], headers=BROWSER)
    assert response.status_code == 200
    doc = html_of(response)
    assert doc.cssselect("#results-title")[0].text_content().split() == ["More", "like", "Apollo", "11"]
    titles = [r["title"] for r in results_of(doc)]
    assert titles and "Apollo 11" not in titles and titles[0] == "Apollo 8"
    assert doc.cssselect("input[name=url]")[0].get("value") == "https://en.wikipedia.org/wiki/Apollo_11"


def test_a_corpus_members_url_is_named_by_its_stored_title(client):
    # it had been headed by its address ("Related to en.wikipedia.org/wiki/Apollo_11")
    doc = html_of(client.get("/", query_string={"url": "http://en.wikipedia.org/wiki/Apollo_11/"}, headers=BROWSER))
    assert doc.cssselect("#results-title")[0].text_content().split() == ["Related", "to", "Apollo", "11"]


def test_a_fetched_page_is_named_by_its_title(client, pages):
    doc = html_of(client.get("/", query_string={"url": pages.url("/moon-landing.html")}, headers=BROWSER))
    assert "Fifty years after the first Moon landing" in doc.cssselect("#results-title")[0].text_content()
    assert "Apollo 11" in [r["title"] for r in results_of(doc)]


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("query,status,code", [
    ({"url": "", "text": ""}, 400, "missing_query"),
    ({"text": "moon", "k": "0"}, 400, "invalid_parameter"),
    ({"text": "moon", "k": "\u00b2"}, 400, "invalid_parameter"),  # a digit to str.isdigit(), not to int()
    ({"text": "moon", "k": "9" * 5000}, 400, "invalid_parameter"),
    ({"text": "moon", "corpus": "nope"}, 404, "unknown_corpus"),
    ({"id": "no-such-id"}, 404, "unknown_id"),
    ({"text": "zzzzqqq xxyyzz"}, 422, "no_known_words"),
    ({"url": "ftp://example.com/file"}, 400, "invalid_url"),
])
def test_errors_are_a_message_in_the_page_with_the_apis_status(client, query, status, code):
    page = client.get("/", query_string=query, headers=BROWSER)
    api = client.get("/", query_string=query)
    assert page.status_code == api.status_code == status
    alert = html_of(page).cssselect("[role=alert]")[0].text_content()
    # the form has no id field: its own words for a missing query
    message = "give an article URL or some text" if code == "missing_query" else api.get_json()["error"]["message"]
    assert message in alert and code in alert
    assert "{" not in alert  # a message, not a JSON dump
    if code == "no_known_words":  # a text's: it had been headed "No article to work with"
        assert "No word the corpus knows" in alert and "'testing' is not 'tests': function.build's --stem" in alert


def test_a_page_that_cannot_be_fetched_is_a_message_too(client, pages):
    pages.add("/gone-for-page", b"<html><body>gone</body></html>", status=404)
    page = client.get("/", query_string={"url": pages.url("/gone-for-page")}, headers=BROWSER)
    assert page.status_code == 422
    assert html_of(page).cssselect("[role=alert] h2")[0].text == "No article to work with"


# -- safety ------------------------------------------------------------------------------------------
SCRIPT = "<script>alert(1)</script>"


def assert_inert(response):
    """No script element, no inline handler or style, no javascript: link made it into the page."""
    text = response.get_data(as_text=True)
    assert SCRIPT not in text
    doc = lxml.html.fromstring(text)
    assert not doc.cssselect("script") and not doc.xpath("//@*[starts-with(name(), 'on')]") and \
        not doc.xpath("//@style")
    for href in doc.xpath("//@href | //@action | //@src"):
        assert href.startswith(("/", "http://", "https://")), href
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe-inline" not in csp


def test_queries_and_titles_holding_markup_are_escaped(client, pages):
    text_page = client.get("/", query_string={"text": SCRIPT + " moon landing"}, headers=BROWSER)
    assert text_page.status_code == 200 and "&lt;script&gt;" in text_page.get_data(as_text=True)
    assert_inert(text_page)

    article = pages.body("/moon-landing.html").replace(
        b"<title>Fifty years", b"<title>&lt;script&gt;alert(1)&lt;/script&gt; Fifty years").replace(
        b'content="Fifty years', b'content="&lt;script&gt;alert(1)&lt;/script&gt; Fifty years')
    fetched = client.get("/", query_string={"url": pages.add("/xss-title.html", article)}, headers=BROWSER)
    assert fetched.status_code == 200
    assert SCRIPT in html_of(fetched).cssselect("#results-title")[0].text_content()  # shown as text
    assert_inert(fetched)

    error = client.get("/", query_string={SCRIPT: "1", "text": "moon"}, headers=BROWSER)
    assert error.status_code == 400 and SCRIPT in html_of(error).cssselect("[role=alert]")[0].text_content()
    assert_inert(error)


def test_only_http_links_are_rendered():
    answer = {"corpus": "wiki", "engine": "lsi", "source": "text", "timings_ms": {"total": 1.0}, "results": [
        {"rank": 1, "id": "1", "url": "javascript:alert(1)", "title": SCRIPT, "score": 0.5,
         "click_url": "javascript:alert(1)"},
        {"rank": 2, "id": '2"><b>', "url": "https://example.com/a", "title": "fine", "score": 0.4,
         "click_url": "https://related.example/click?x=1"},
    ]}
    response = page_views.render("try.html", nav="try", form={"url": "", "text": "", "corpus": "wiki", "k": 5},
                            corpora=[], max_k=10, answer=answer, error=None, error_title="",
                            subject=("Related to", SCRIPT))
    assert_inert(response)
    doc = lxml.html.fromstring(response.get_data(as_text=True))
    assert [a.get("href") for a in doc.cssselect("a.result-title")] == ["https://related.example/click?x=1"]
    assert doc.cssselect("a.more")[1].get("href") == "/?id=2%22%3E%3Cb%3E&corpus=wiki"


def test_the_stylesheet_and_icon_the_pages_link_are_served(client):
    doc = html_of(client.get("/", headers=BROWSER))
    for href, kind in ((doc.cssselect("link[rel=stylesheet]")[0].get("href"), "text/css"),
                       (doc.cssselect("link[rel=icon]")[0].get("href"), "image/svg+xml")):
        response = client.get(href)
        assert response.status_code == 200 and response.mimetype == kind and response.data
        assert "immutable" in response.headers["Cache-Control"]  # versioned by its hash
    assert client.get("/assets/nothing.css").status_code == 404


@pytest.mark.parametrize("name", sorted(page_views.STATIC_FILES))
def test_the_assets_go_compressed_to_a_client_that_takes_gzip(client, name):
    plain = client.get(f"/assets/{name}")
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]  # a shared cache keeps the two apart
    for refused in ("identity", "gzip;q=0", "br"):
        response = client.get(f"/assets/{name}", headers={"Accept-Encoding": refused})
        assert "Content-Encoding" not in response.headers and response.data == plain.data
    packed = client.get(f"/assets/{name}", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    if name == "widget.js":  # the one a site's readers fetch: a third of its size
        assert packed.headers["Content-Encoding"] == "gzip" and len(packed.data) * 2 < len(plain.data)
    if packed.headers.get("Content-Encoding") == "gzip":
        assert gzip.decompress(packed.data) == plain.data and packed.mimetype == plain.mimetype
    else:  # too small to gain from it
        assert packed.data == plain.data


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_an_asset_the_browser_has_already_is_a_304(client, encoding):
    headers = {"Accept-Encoding": encoding} if encoding else {}
    first = client.get("/assets/widget.js", headers=headers)
    assert first.status_code == 200 and first.headers["ETag"]
    again = client.get("/assets/widget.js", headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and not again.data
    other = "gzip" if not encoding else "identity"  # a copy of the other encoding is another copy
    assert client.get("/assets/widget.js", headers={"Accept-Encoding": other,
                                                    "If-None-Match": first.headers["ETag"]}).status_code == 200



def test_an_asset_asked_for_as_another_copy_only_is_a_json_412(client):
    # If-Match of another copy (a resumed download's): the 412 had carried the asset itself, typed as JavaScript
    response = client.get("/assets/widget.js", headers={"Accept-Encoding": "gzip", "If-Match": '"an-old-copy"'})
    assert response.status_code == 412 and response.mimetype == "application/json"
    assert "Content-Encoding" not in response.headers and response.json["error"]["code"] == "precondition_failed"
    same = client.get("/assets/widget.js", headers={"If-Match": client.get("/assets/widget.js").headers["ETag"]})
    assert same.status_code == 200 and same.mimetype == "text/javascript"

# -- the dashboard ---------------------------------------------------------------------------------
def seed(client, mongodb, texts=("moon landing astronaut", "greek philosopher", "atlantic ocean", "alkali metal")):
    """Answers to ``texts`` and to the first of them again; clicks on the first's first and third
    results, the first result of its repeat (the same article, clicked twice) and the second's first."""
    answers = [client.get("/", query_string={"text": text, "k": 6}).get_json() for text in texts + texts[:1]]
    clicked = [answers[0]["results"][0], answers[-1]["results"][0], answers[0]["results"][2]]
    clicked += [answer["results"][0] for answer in answers[1:min(2, len(texts))]]
    for result in clicked:
        client.get(result["click_url"])
    client.get("/?id=no-such-id")
    wait_for_events(mongodb, "requests", len(answers) + 1)
    wait_for_events(mongodb, "clicks", len(clicked))
    return answers


def chart_states(doc):
    return {f.get("data-chart"): f.get("data-empty") for f in doc.cssselect("figure.chart")}


def test_dashboard_draws_every_chart_from_the_events(client, function_env):
    answers = seed(client, function_env["MONGODB"])
    response = client.get("/dashboard")
    assert response.status_code == 200
    doc = html_of(response)
    assert chart_states(doc) == dict.fromkeys(
        ["timeline", "engines", "ranks", "scores", "latency", "delay", "errors", "recommended", "clicked"], "false")
    for figure in doc.cssselect("figure.chart"):
        assert figure.cssselect("svg .mark"), figure.get("data-chart")
    # a description list: a screen reader had read the tiles' spans as one run ("Answers 5 1 error (16.7%) Clicks 4")
    tiles = {t.cssselect("dt.label")[0].text: t.cssselect("dd.big")[0].text_content()
             for t in doc.cssselect("dl.tiles > div.tile")}
    assert tiles["Answers"] == "5" and tiles["Clicks"] == "4" and tiles["Click-through"] == "60.0%"
    fine = {t.cssselect("dt.label")[0].text: t.cssselect("dd.fine")[0].text_content()
            for t in doc.cssselect("dl.tiles > div.tile")}
    assert fine["Answers"] == "1 error (16.7%)"  # the plural filter, as in "3 answers seen in view"
    # a chart or table that scrolls sideways on a phone is a Tab stop there (Chromium's focusable scrollers):
    # a region named after its chart, not an unnamed div
    scrollers = doc.cssselect(".scroll, .table-wrap")
    assert len(scrollers) == 10 and all(s.get("role") == "region" for s in scrollers)
    assert [s.get("aria-label") for s in doc.cssselect('figure[data-chart="engines"] [role=region]')] == \
        ["Which engine wins?", "Which engine wins?, in figures"]
    assert len({s.get("aria-label") for s in scrollers}) == 10
    # role="img" makes a chart's children presentational: the charts whose labels are links are a group
    for figure in doc.cssselect("figure.chart"):
        linked = figure.get("data-chart") in ("recommended", "clicked")
        svg = figure.cssselect("svg")[0]
        assert svg.get("role") == ("group" if linked else "img"), figure.get("data-chart")
        assert bool(svg.cssselect("a")) == linked and svg.cssselect("title") and svg.cssselect("desc")
    stats = client.get("/stats").get_json()
    interval = f"{stats['ctr_ci95'][0] * 100:.1f}%–{stats['ctr_ci95'][1] * 100:.1f}%"
    assert interval in doc.cssselect(".tile.accent")[0].text_content()
    engine_row = doc.cssselect("table.engines tbody tr")[0].text_content()
    assert "60.0%" in engine_row and interval in engine_row
    top = [t.text for t in doc.cssselect('figure[data-chart="clicked"] svg a text')]
    assert top[0] == answers[0]["results"][0]["title"] and len(top) == 3  # clicked twice: first, by its title
    assert "unknown_id" in doc.cssselect('figure[data-chart="errors"]')[0].text_content()
    assert_inert(response)


def test_requests_refused_before_their_query_count_as_errors(client, function_env):
    """A bad parameter, body or Host is an error the site owner should see, as a failed lookup is."""
    client.get("/", query_string={"text": "moon", "k": 0})
    client.get("/", query_string={"text": "moon", "corpus": "nope"})
    client.get("/", headers={"Accept": "text/html"}, query_string={"text": "moon", "colour": "blue"})  # the page
    client.post("/", data="text=moon", content_type="application/x-www-form-urlencoded")
    client.head("/", query_string={"text": "moon", "k": 0})  # not a reader: not counted
    client.get("/", query_string={"text": "moon"})
    wait_for_events(function_env["MONGODB"], "requests", 5)
    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["errors"]) == (1, 4)  # answered, and answered with an error
    errors = html_of(client.get("/dashboard")).cssselect('figure[data-chart="errors"]')[0].text_content()
    for code in ("invalid_parameter", "unknown_corpus", "unknown_parameter", "unsupported_media_type"):
        assert code in errors


def test_dashboard_filters_like_stats(client, function_env):
    empty = html_of(client.get("/dashboard?corpus=wiki&days=7"))  # served, no events yet
    assert set(chart_states(empty).values()) == {"true"}
    assert empty.cssselect("select[name=days] option[selected]")[0].get("value") == "7"
    seed(client, function_env["MONGODB"], texts=("moon landing",))
    assert set(chart_states(html_of(client.get("/dashboard?corpus=wiki&days=7"))).values()) != {"true"}
    assert client.get("/dashboard?days=30").status_code == 200
    for query in ("days=abc", "days=0", "days=%C2%B2", "days=" + "9" * 5000, "corpus=../x", "colour=blue",
                  "corpus=%E9", "corpus=other"):
        response = client.get("/dashboard?" + query)
        assert response.status_code == (404 if query == "corpus=other" else 400)
        assert html_of(response).cssselect("[role=alert]")
        assert response.status_code == client.get("/stats?" + query).status_code


def test_dashboard_draws_click_through_by_score_and_suggests_a_min_score_only_where_no_link_under_it_was_clicked(
        client, function_env):
    """150 readers' answers, each linking at scores 0.4, 0.25, 0.15, 0.08 and 0.03; readers clicked the
    first link of 20 and the third of 10: none of the 300 links under 0.1. Then one reader clicks a
    link at 0.08, and under no edge are there 300 links unclicked: no suggestion."""
    import pymongo

    now = datetime.now(timezone.utc)
    scores = [0.4, 0.25, 0.15, 0.08, 0.03]
    answers = [{"_id": f"r{i}", "ts": now - timedelta(seconds=i), "status": 200, "corpus": "wiki", "engine": "tfidf",
                "engine_named": False, "total_ms": 1.0, "n_results": 5, "top_score": scores[0],
                "results": [{"id": f"d{rank}", "score": score} for rank, score in enumerate(scores, 1)]}
               for i in range(150)]
    click = {"ts": now, "corpus": "wiki", "engine": "tfidf", "delay_ms": 1000}
    clicks = [{"_id": f"r{i}-{rank}", "request_id": f"r{i}", "rank": rank, "doc_id": f"d{rank}", **click}
              for i, rank in [(i, 1) for i in range(20)] + [(i, 3) for i in range(20, 30)]]
    mongo = pymongo.MongoClient(function_env["MONGODB"], tz_aware=True)
    events = mongo.get_default_database()
    events["requests"].insert_many(answers)
    events["clicks"].insert_many(clicks)

    doc = html_of(client.get("/dashboard"))
    figure = doc.cssselect('figure[data-chart="scores"]')[0]
    assert figure.get("data-empty") == "false"
    assert [t.text for t in figure.cssselect("svg text.tick")][-6:] == ["<0.05", "0.05–0.1", "0.1–0.2", "0.2–0.3",
                                                                        "0.3–0.5", "≥0.5"]
    assert [mark.text_content() for mark in figure.cssselect("svg .mark title")] == [  # no link scored 0.5 or more
        "score <0.05: 0.0% of 150 links clicked (95% interval 0.0%–2.5%)",
        "score 0.05–0.1: 0.0% of 150 links clicked (95% interval 0.0%–2.5%)",
        "score 0.1–0.2: 6.7% of 150 links clicked (95% interval 3.7%–11.8%)",
        "score 0.2–0.3: 0.0% of 150 links clicked (95% interval 0.0%–2.5%)",
        "score 0.3–0.5: 13.3% of 150 links clicked (95% interval 8.8%–19.7%)"]
    (advice,) = figure.cssselect("[data-suggested-min-score]")
    assert advice.get("data-suggested-min-score") == "0.1"
    assert advice.get("data-engine") == "tfidf"
    assert " ".join(advice.text_content().split()) == (
        'For tfidf: readers clicked none of the 300 links tfidf answered with a score under 0.1: '
        'data-min-score="0.1" would leave such links out of tfidf\'s answers.')

    events["clicks"].insert_one({"_id": "r40-4", "request_id": "r40", "rank": 4, "doc_id": "d4", **click})
    mongo.close()
    figure = html_of(client.get("/dashboard")).cssselect('figure[data-chart="scores"]')[0]
    assert "score 0.05–0.1: 0.7% of 150 links clicked" in figure.text_content()
    assert not figure.cssselect("[data-suggested-min-score]") and "Readers clicked none" not in figure.text_content()


@pytest.mark.parametrize("chosen_by", ["split", "named"])
def test_click_through_by_score_and_a_min_score_are_each_engines_own(function_env, chosen_by):
    """Real answers of a split (ENGINE_WEIGHTS), or of a backend naming the engine (engine=) on every request,
    and real clicks on their links, with scores set as each engine scores: tfidf's low (its 0.2-0.3 links never
    clicked), lsi's high (a link at 0.25 clicked). Pooled, lsi's click had held tfidf's suggestion at 0.2 and
    drawn one 0.2-0.3 band of both; each engine gets its own figures, panel and suggestion, named: tfidf 0.3,
    lsi 0.2. A backend naming its engine had got none: ``engines`` holds the split's answers alone."""
    import pymongo

    from function.stats import SCORE_BANDS, score_bands

    split = chosen_by == "split"
    client = make_client({**function_env, "ENGINE_WEIGHTS": "lsi=50,tfidf=50"} if split else function_env)
    scores = {"tfidf": [0.4, 0.35, 0.25, 0.25, 0.15, 0.15, 0.08, 0.08, 0.03, 0.03],  # 8 under 0.3
              "lsi": [0.9, 0.8, 0.25, 0.15, 0.15, 0.12, 0.12, 0.11, 0.11, 0.04]}  # 7 under 0.2
    answers = {"tfidf": [], "lsi": []}
    for i in range(400):  # until each engine has answered 45: 360 and 315 links under its edge
        named = {} if split else {"engine": ("lsi", "tfidf")[i % 2]}
        answer = client.get("/", query_string={"text": f"moon landing astronaut {i}", "k": 3, **named}).get_json()
        answers[answer["engine"]].append(answer)
        if min(len(a) for a in answers.values()) >= 45:
            break
    clicked_rank = {"tfidf": 1, "lsi": 3}  # tfidf's 0.4, lsi's 0.25
    for engine, rank in clicked_rank.items():
        for answer in answers[engine][:10]:
            assert client.get(answer["results"][rank - 1]["click_url"]).status_code == 302
    mongodb = function_env["MONGODB"]
    wait_for_events(mongodb, "requests", sum(len(a) for a in answers.values()))
    wait_for_events(mongodb, "clicks", 20)
    with pymongo.MongoClient(mongodb) as mongo:
        events = mongo.get_default_database()["requests"]
        for engine, engine_scores in scores.items():
            events.update_many({"engine": engine}, {"$set": {
                "results": [{"id": f"d{rank}", "score": score} for rank, score in enumerate(engine_scores, 1)],
                "n_results": len(engine_scores), "top_score": engine_scores[0],
                "score_bands": score_bands(engine_scores)}})

    stats = client.get("/stats").get_json()
    n = {engine: len(a) for engine, a in answers.items()}  # answers of each engine
    if split:
        assert {engine: figures["requests"] for engine, figures in stats["engines"].items()} == n
    else:  # left out of the comparison, not out of their engine's scores
        assert stats["engines"] == {} and stats["engine_named_requests"] == sum(n.values())
    shown_clicked = {  # (links shown, clicked) by band, by hand from the scores
        "tfidf": [(2 * n["tfidf"], 0), (2 * n["tfidf"], 0), (2 * n["tfidf"], 0), (2 * n["tfidf"], 0),
                  (2 * n["tfidf"], 10), (0, 0)],
        "lsi": [(n["lsi"], 0), (0, 0), (6 * n["lsi"], 0), (n["lsi"], 10), (0, 0), (2 * n["lsi"], 0)]}
    by_engine = stats["ctr_by_score_by_engine"]
    assert {engine: [(row["shown"], row["clicks"]) for row in by_score.values()]
            for engine, by_score in by_engine.items()} == shown_clicked
    pooled = [(stats["ctr_by_score"][band]["shown"], stats["ctr_by_score"][band]["clicks"]) for band in SCORE_BANDS]
    assert pooled == [(t[0] + l[0], t[1] + l[1]) for t, l in zip(shown_clicked["tfidf"], shown_clicked["lsi"])]
    for engine in by_engine:  # in 0.2-0.3, where lsi's clicks had hidden that nobody clicks tfidf's
        assert by_engine[engine]["0.2-0.3"]["ctr"] != stats["ctr_by_score"]["0.2-0.3"]["ctr"]

    figure = html_of(client.get("/dashboard")).cssselect('figure[data-chart="scores"]')[0]
    (svg,) = figure.cssselect("svg")
    assert [t.text for t in svg.cssselect("text.big")] == ["lsi", "tfidf"]  # one panel each, headed by its name
    tips = [mark.text_content() for mark in svg.cssselect(".mark title")]
    assert [tip.split(",")[0] for tip in tips] == ["lsi"] * 4 + ["tfidf"] * 5  # the bands each showed links in
    assert f"lsi, score 0.2–0.3: {10 / n['lsi']:.1%} of {n['lsi']} links clicked" in tips[2]
    assert tips[8].startswith(f"tfidf, score 0.3–0.5: {10 / (2 * n['tfidf']):.1%} of {2 * n['tfidf']} links")
    assert "each engine apart" in figure.cssselect("figcaption")[0].text_content()
    advice = {p.get("data-engine"): p for p in figure.cssselect("[data-suggested-min-score]")}
    assert {engine: p.get("data-suggested-min-score") for engine, p in advice.items()} == {"lsi": "0.2",
                                                                                            "tfidf": "0.3"}
    assert " ".join(advice["tfidf"].text_content().split()) == (
        f"For tfidf: readers clicked none of the {8 * len(answers['tfidf'])} links tfidf answered with a score "
        "under 0.3: data-min-score=\"0.3\" would leave such links out of tfidf's answers.")
    assert f"none of the {7 * len(answers['lsi'])} links lsi answered" in advice["lsi"].text_content()


# engine_named: a backend naming its engine on every request has a suggestion (each engine's scores are
# over all its answers) and no split figures; its mean top score had been the split's, so the line unsaid
@pytest.mark.parametrize("engine_named", [False, True])
def test_a_suggested_min_score_over_the_answers_mean_top_score_says_it_would_empty_many_lists(client, function_env,
                                                                                              engine_named):
    """A small site's dashboard suggested data-min-score="0.2" while its answers' best link scored 0.16 on
    average: set, the widget would have shown nothing on most pages, and the dashboard did not say so."""
    import pymongo

    now = datetime.now(timezone.utc)

    def answer(i, scores):
        return {"_id": f"r{i}", "ts": now - timedelta(seconds=i), "status": 200, "corpus": "wiki", "engine": "tfidf",
                "engine_named": engine_named, "total_ms": 1.0, "n_results": len(scores), "top_score": scores[0],
                "results": [{"id": f"d{rank}", "score": score} for rank, score in enumerate(scores, 1)]}

    # 150 answers whose links all score under 0.2, none clicked; 10 with a first link at 0.45, clicked
    answers = [answer(i, [0.15, 0.08, 0.03]) for i in range(150)] + [answer(i, [0.45, 0.1]) for i in range(150, 160)]
    click = {"ts": now, "corpus": "wiki", "engine": "tfidf", "delay_ms": 1000}
    mongo = pymongo.MongoClient(function_env["MONGODB"], tz_aware=True)
    events = mongo.get_default_database()
    events["requests"].insert_many(answers)
    events["clicks"].insert_many([{"_id": f"r{i}-1", "request_id": f"r{i}", "rank": 1, "doc_id": "d1", **click}
                                  for i in range(150, 160)])
    mongo.close()
    (advice,) = html_of(client.get("/dashboard")).cssselect("[data-suggested-min-score]")
    assert advice.get("data-suggested-min-score") == "0.3"
    assert " ".join(advice.text_content().split()).endswith(
        "would leave such links out of tfidf's answers. Mind: the best link of tfidf's answers scores 0.1688 on "
        "average, under 0.3, so many of them would show no list at all.")


@pytest.mark.parametrize("low, middle, high, suggested", [
    ((200, 0), (100, 0), (50, 3), (0.1, 300)),  # 300 unclicked under 0.1, clicks above
    ((200, 0), (99, 0), (50, 3), None),  # 299: too few to tell
    ((300, 0), (100, 0), (50, 0), None),  # no click at all: nothing to say about scores
    ((300, 1), (100, 0), (50, 3), None),  # a link of the lowest band was clicked
    ((300, 0), (100, 1), (50, 3), (0.05, 300)),  # the highest edge under which none was
    # one click in 140 links above 800 unclicked: a click lands above one time in 7 whatever the scores
    # (a small site's dashboard had suggested an edge on a single click); three: 1 in 314
    ((400, 0), (400, 0), (139, 1), None),
    ((400, 0), (400, 0), (139, 3), (0.1, 800)),
])
def test_a_min_score_is_suggested_under_300_links_unclicked_with_a_click_above(low, middle, high, suggested):
    """(shown, clicks) of the bands under 0.05, 0.05-0.1 and 0.1-0.2."""
    from function.stats import SCORE_BANDS, suggested_min_score

    rows = [low, middle, high] + [(0, 0)] * (len(SCORE_BANDS) - 3)
    by_score = {band: {"shown": shown, "clicks": clicks} for band, (shown, clicks) in zip(SCORE_BANDS, rows)}
    assert suggested_min_score(by_score) == suggested


@pytest.mark.parametrize("mongodb_uri,title", [
    ("", "No events are stored"),
    ("mongodb://127.0.0.1:9/related", "The event database does not answer"),  # nothing listens on port 9
])
def test_dashboard_without_a_database_says_so(function_env, mongodb_uri, title):
    app = make_client({**function_env, "MONGODB": mongodb_uri})
    response = app.get("/dashboard")
    assert response.status_code == 503
    assert html_of(response).cssselect("[role=alert] h2")[0].text == title


@pytest.mark.parametrize("path", ["/dashboard", "/stats"])
def test_figures_with_mongo_unreachable_log_one_short_line_naming_its_host(function_env, caplog, path):
    """Not pymongo's whole topology description (500 characters and more, a line of each server's state,
    on each request): its hosts and the error's kind. /stats had logged nothing of it at all."""
    from function.devserver import free_port

    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    app = make_client({**function_env, "MONGODB": f"mongodb://{host}/away"})
    caplog.set_level(logging.WARNING, logger="related")
    caplog.clear()
    assert app.get(path).status_code == 503
    said = [r.getMessage() for r in caplog.records if r.name.startswith("related") and r.levelno >= logging.WARNING]
    assert len(said) == 1 and len(said[0]) < 160, said
    assert host in said[0] and "ServerSelectionTimeoutError" in said[0] and "Topology" not in said[0]


def test_with_a_stats_token_the_dashboard_asks_a_browser_for_it(function_env):
    """A browser prompts on the 401's challenge and sends the token as Basic's password (any user name)."""
    client = make_client({**function_env, "STATS_TOKEN": STATS_TOKEN})
    seed(client, function_env["MONGODB"], texts=("moon landing",))
    for headers in ({}, basic_auth("owner", "not-the-token-at-all")):
        refused = client.get("/dashboard?corpus=wikki", headers={**BROWSER, **headers})  # no 404 told either
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith('Basic realm="')
        doc = html_of(refused)
        assert doc.cssselect("[role=alert] h2")[0].text == "The figures are private"
        assert not doc.cssselect(".tile, figure.chart") and STATS_TOKEN not in refused.get_data(as_text=True)
        assert_inert(refused)
    signed_in = client.get("/dashboard", headers={**BROWSER, **basic_auth("owner", STATS_TOKEN)})
    assert signed_in.status_code == 200
    tiles = {t.cssselect(".label")[0].text: t.cssselect(".big")[0].text_content()
             for t in html_of(signed_in).cssselect(".tile")}
    assert tiles["Answers"] == "2" and tiles["Clicks"] == "3"


# -- the dashboard's figures ----------------------------------------------------------------------
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_timeline_buckets_fit_the_span():
    requests = [{"ts": NOW - timedelta(seconds=s), "status": 200} for s in (0, 1, 1, 20)]
    requests.append({"ts": NOW - timedelta(seconds=2), "status": 404})
    clicks = [{"ts": NOW - timedelta(seconds=1)}]
    short = timeline(requests, clicks, None, NOW)
    assert short["step_seconds"] == 1 and len(short["buckets"]) == 24  # at least 24: older ones empty
    assert short["buckets"][-1]["start"] == NOW.isoformat(timespec="seconds")
    assert sum(b["requests"] for b in short["buckets"]) == 4 and sum(b["errors"] for b in short["buckets"]) == 1
    assert short["buckets"][-2] == {"start": "2026-05-01T11:59:59+00:00", "requests": 2, "errors": 0, "clicks": 1}
    week = timeline(requests, clicks, NOW - timedelta(days=7), NOW)
    assert week["step_seconds"] == 6 * 3600 and len(week["buckets"]) <= 48 + 1
    assert sum(b["requests"] + b["errors"] for b in week["buckets"]) == 5
    for days in (365, 3650):  # ?days= allows ten years: 30-day bars had made 122 of them
        longest = timeline(requests, clicks, NOW - timedelta(days=days), NOW)
        assert len(longest["buckets"]) <= 48 + 1 and sum(b["requests"] for b in longest["buckets"]) == 4
        # a window asked for starts at its first bar: a year's 13 bars had been padded to 24, 11 months before it
        first = datetime.fromisoformat(longest["buckets"][0]["start"])
        assert first <= NOW - timedelta(days=days) < first + timedelta(seconds=longest["step_seconds"])


def test_histograms_and_top_articles():
    bins = histogram([0.2, 1.0, 1.5, 45, 90000], CLICK_DELAY_EDGES_S)
    assert [b["count"] for b in bins] == [1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert bins[-1] == {"low": 86400, "high": None, "count": 1}
    requests = [{"status": 200, "corpus": "wiki", "results": [{"id": "a"}, {"id": "b"}]},
                {"status": 200, "corpus": "wiki", "results": [{"id": "b"}]},
                {"status": 404, "corpus": "wiki", "results": [{"id": "c"}]}]
    clicks = [{"corpus": "wiki", "doc_id": "a", "url": "https://e.org/a"}] * 2
    top = top_articles(requests, clicks)
    assert [(r["id"], r["recommended"], r["clicks"]) for r in top["recommended"]] == [("b", 2, 0), ("a", 1, 2)]
    assert [(r["id"], r["clicks"], r["url"]) for r in top["clicked"]] == [("a", 2, "https://e.org/a")]


def test_axis_labels_never_run_into_each_other():
    """Latencies in every bin: thirteen labels up to "5000–10000 ms" under a half-width chart."""
    values = [edge + 0.5 for edge in LATENCY_EDGES_MS]
    svg = lxml.html.fromstring(str(charts.histogram_chart(histogram(values, LATENCY_EDGES_MS), "ms", "latency", "t")))
    bottom = max(float(t.get("y")) for t in svg.cssselect("text.tick"))
    labels = sorted((float(t.get("x")), t.text) for t in svg.cssselect("text.tick") if float(t.get("y")) == bottom)
    assert len(labels) >= 4 and labels[0][1] == "<1 ms"
    for (x, text), (next_x, next_text) in zip(labels, labels[1:]):
        # with the gap kept between two too: every other label leaves "50–100 ms" 3 px from "200–500 ms"
        room = (len(text) + len(next_text)) / 2 * charts.TICK_CHAR_WIDTH + charts.TICK_GAP
        assert next_x - x >= room, (text, next_text)


def test_chart_labels_and_axes():
    assert charts.ticks(21) == [0, 10, 20, 30] and charts.ticks(3) == [0, 1, 2, 3]
    assert charts.ticks(0.37, whole=False) == [0, 0.1, 0.2, 0.3, 0.4]
    assert [charts.duration_label(b["low"], b["high"], "s") for b in histogram([], (0, 1, 60, 7200))] == \
        ["<1 s", "1 s–1 min", "1 min–2 h", "≥2 h"]
    assert charts.duration_label(2, 5, "ms") == "2–5 ms"
    assert charts.engine_verdict({"a": {"requests": 100, "ctr": 0.5, "ctr_ci95": [0.4, 0.6]},
                                  "b": {"requests": 100, "ctr": 0.2, "ctr_ci95": [0.13, 0.29]}}).startswith("a wins")
    assert charts.engine_verdict({"a": {"requests": 9, "ctr": 0.5, "ctr_ci95": [0.2, 0.8]},
                                  "b": {"requests": 9, "ctr": 0.4, "ctr_ci95": [0.15, 0.7]}}).startswith("No clear")
    assert charts.timeline_chart({"step_seconds": 60, "buckets": [
        {"start": "2026-05-01T12:00:00+00:00", "requests": 0, "errors": 0, "clicks": 0}]}).empty


def test_a_small_count_axis_ticks_whole_numbers_up_to_a_round_top():
    # a step exactly at a round value (1, 0.1) is that value, not the next (4 events on 0, 2, 4); and a count axis
    # never ticks halves, which its whole-number labels would show as "0, 0, 1, 1, 2"
    assert charts.ticks(2) == [0, 1, 2] and charts.ticks(4) == [0, 1, 2, 3, 4]
    assert charts.nice_ceiling(1) == 1 and charts.ticks(0.4, whole=False) == [0, 0.1, 0.2, 0.3, 0.4]


def test_engines_whose_intervals_only_touch_have_no_clear_winner():
    verdict = charts.engine_verdict({"a": {"requests": 50, "ctr": 0.4, "ctr_ci95": [0.3, 0.5]},
                                     "b": {"requests": 50, "ctr": 0.2, "ctr_ci95": [0.1, 0.3]}})
    assert verdict.startswith("No clear winner"), verdict


def test_a_bar_charts_labels_are_escaped_as_text():
    # an article's title is a label: a store's own markup must reach the dashboard as text, never as elements
    chart = charts.bar_list_chart([{"label": "<script>alert(1)</script> & co", "clicks": 2}], "t", "clicks", "s-clicks")
    svg = str(chart.svg)
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in svg


def test_an_engine_nobody_clicked_keeps_its_row_in_the_engine_chart():
    engines = {"lsi": {"requests": 40, "ctr": 0.0, "ctr_ci95": [0.0, 0.0876]},
               "tfidf": {"requests": 40, "ctr": 0.1, "ctr_ci95": [0.04, 0.23]}}
    svg = lxml.html.fromstring(str(charts.engine_ctr_chart(engines).svg))
    assert [label.text for label in svg.cssselect("text.row-label")] == ["lsi", "tfidf"]


@pytest.mark.parametrize("label", ["Apollo 11", "A" * 60, "Growing tomatoes on a small balcony, week by week",
                                   "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiWWWWWWWWWWWWWWWW", "A" * 200_000])
def test_a_label_is_cut_to_the_longest_start_that_fits(label):
    # cut a character at a time and measured again, a 200,000-character title took /dashboard half an hour
    cut = charts._truncate(label, 200, 12.5)
    assert charts.text_width(cut, 12.5) <= 200
    if cut != label:
        start = cut[:-1]
        assert cut.endswith("…") and label.startswith(start)
        rest = label[len(start):]
        kept = len(start) + len(rest) - len(rest.lstrip(" "))  # the spaces the cut let go
        assert charts.text_width(label[:kept + 1] + "…", 12.5) > 200  # one more letter would not fit


def test_a_charts_figures_are_its_text_alternative_for_a_screen_reader():
    # role="img" hides a chart's parts from assistive technology: its <title> alone ("Click-through by rank")
    # had been all a screen reader said, none of the figures a sighted owner reads from the bars
    rows = {"1": {"ctr": 0.5, "ci95": [0.3, 0.7], "clicks": 10, "shown": 20},
            "2": {"ctr": 0.25, "ci95": [0.1, 0.47], "clicks": 5, "shown": 20}}
    svg = lxml.html.fromstring(str(charts.rank_ctr_chart(rows).svg))
    assert svg.get("role") == "img" and svg.cssselect("title")[0].text == "Click-through by rank"
    assert svg.cssselect("desc")[0].text == ("rank 1: 50.0% of 20 answers clicked (95% interval 30.0%–70.0%); "
                                             "rank 2: 25.0% of 20 answers clicked (95% interval 10.0%–47.0%)")
    # links inside role="img" are presentational (VoiceOver may hide them): a chart with links is a group
    linked = charts.bar_list_chart([{"label": "Apollo", "clicks": 2, "url": "https://e.org/a"}], "t", "clicks",
                                   "s-clicks", link=lambda row: row["url"])
    svg = lxml.html.fromstring(str(linked.svg))
    assert svg.get("role") == "group" and svg.cssselect("a")[0].get("href") == "https://e.org/a"
    assert svg.cssselect("title")[0].text == "t" and svg.cssselect("desc")[0].text == "Apollo: 2"
    # a timeline's bar of answers, errors and clicks is one figure, told once; markup in a label stays text
    chart = charts.bar_list_chart([{"label": "<b>Apollo</b> & co", "clicks": 2}], "t", "clicks", "s-clicks")
    assert "<desc>&lt;b&gt;Apollo&lt;/b&gt; &amp; co: 2</desc>" in str(chart.svg)
    buckets = [{"start": "2026-05-01T12:00:00+00:00", "requests": 3, "errors": 1, "clicks": 2}]
    svg = lxml.html.fromstring(str(charts.timeline_chart({"step_seconds": 60, "buckets": buckets}).svg))
    assert svg.cssselect("desc")[0].text == "12:00 UTC: 3 answered, 1 error, 2 clicks"
