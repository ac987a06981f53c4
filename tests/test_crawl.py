"""The crawler and the other new inputs, against a real loopback website.

Sitemaps of every kind, robots.txt, retries and politeness, state on disk
(an interrupted build resumes without fetching again), and the CSV, HTML
folder and URL-list readers through the builder's command line.
"""

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from function.build import main as build_main
from function.crawl import (CrawlError, CrawlOptions, CrawlState, HostThrottle, Listed, SiteCrawl, needs_fetch,
                            parse_lastmod, parse_sitemap)
from function.extract import EXTRACTION_REVISION
from function.fetch import FetchLimits
from function.records import Record, Skip
from function.sources import detect_format
from function.store import Store, current_version_dir
from function.update import main as update_main
from function.urls import normalise_url
from website import (ARTICLE_PATHS, Site, article_html, page_for, page_paragraphs, paragraphs, publish, sitemap_index,
                     title_of, write_sitemaps)

LOOPBACK = FetchLimits(allow_private_hosts=frozenset({"127.0.0.1"}))


def options(**overrides):
    return CrawlOptions(**{"rate": 200.0, "backoff": 0.01, "limits": LOOPBACK, "progress": False, **overrides})


@pytest.fixture
def site():
    server = Site()
    yield server
    server.close()


def split(items):
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Skip)]


# -- sitemaps, robots.txt ----------------------------------------------------------------------------
def test_a_sitemap_index_with_gzip_sitemaps_gives_every_article_and_honours_robots(site, tmp_path):
    root = publish(site)
    records, skips = split(SiteCrawl([root], "sitemap", options(state=tmp_path / "state")))

    assert [r.id for r in records] == [normalise_url(site.url(p)) for p in ARTICLE_PATHS]
    assert [r.title for r in records] == [title_of(p) for p in ARTICLE_PATHS]
    assert all(r.url == site.url(p) for r, p in zip(records, ARTICLE_PATHS))
    assert page_paragraphs("volcano", 1)[0] in records[0].text and "Copyright" not in records[0].text
    reasons = {s.where: s for s in skips}
    assert reasons[site.url("/private/secret")].reason == "disallowed by robots.txt"
    assert site.hits["/private/secret"] == 0
    missing = reasons[site.url("/missing")]
    assert "404" in missing.reason and not missing.transient and site.hits["/missing"] == 1
    assert all(site.hits[p] == 1 for p in ARTICLE_PATHS) and site.hits["/robots.txt"] == 1


def test_a_gzip_sitemap_is_read_whole_or_refused():
    urls = [f"https://example.com/{i}" for i in range(2000)]
    text = "\n".join(urls).encode() + b"\n"
    # two gzip members, one file (cat a.gz b.gz): every URL, not the first member's
    members = gzip.compress(text[:len(text) // 2]) + gzip.compress(text[len(text) // 2:])
    assert [loc for loc, _ in parse_sitemap(members)[1]] == urls
    assert [loc for loc, _ in parse_sitemap(gzip.compress(text) + b"\0\0")[1]] == urls  # padded, as gzip allows
    with pytest.raises(CrawlError, match="corrupt"):  # anything else after it: not read as a listing
        parse_sitemap(gzip.compress(text) + b"\n")
    # many members, none of them holding much: read in linear time (quadratic, these had taken minutes)
    many = gzip.compress(b"", mtime=0) * 80_000 + gzip.compress(text)
    assert [loc for loc, _ in parse_sitemap(many)[1]] == urls
    # cut short: refused, not read in part (an update's --prune would delete what it lacks)
    whole = gzip.compress(text)
    for cut in (len(whole) // 2, len(whole) - 4):
        with pytest.raises(CrawlError, match="cut off"):
            parse_sitemap(whole[:cut])
    with pytest.raises(CrawlError, match="cut off"):
        parse_sitemap(members[: len(members) - 100])


def test_sitemap_parsing_refuses_bombs_and_never_expands_entities(tmp_path):
    bomb = gzip.compress(b"<urlset>" + b" " * (4 << 20) + b"</urlset>")
    assert len(bomb) < 10_000
    with pytest.raises(CrawlError, match="expands to more than"):
        parse_sitemap(bomb, cap=1 << 20)
    with pytest.raises(CrawlError, match="larger than"):
        parse_sitemap(b"<urlset>" + b" " * 2000 + b"</urlset>", cap=1000)

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    hostile = f"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file://{secret}"><!ENTITY a "aaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
 <url><loc>&xxe;</loc></url><url><loc>http://example.com/&c;</loc></url>
 <url><loc> http://example.com/fine?a=1&amp;b=2 </loc><lastmod>2024-05-01T12:00:00+02:00</lastmod></url>
</urlset>""".encode()
    kind, entries = parse_sitemap(hostile)
    assert kind == "urlset"
    # never expanded, the entities leave their entries without a location: listed as skipped by the crawl
    assert entries == [("", None), ("", None), ("http://example.com/fine?a=1&b=2", "2024-05-01T10:00:00+00:00")]

    assert parse_sitemap(b"http://example.com/a\n\n# no\nhttp://example.com/b\n") == \
        ("urlset", [("http://example.com/a", None), ("http://example.com/b", None)])
    with pytest.raises(CrawlError, match="not a sitemap"):
        parse_sitemap(b"<html><body>hello</body></html>")
    assert parse_lastmod("2024-05-01") == "2024-05-01T00:00:00+00:00" and parse_lastmod("soon") is None


def test_a_broken_child_sitemap_is_listed_and_a_broken_root_stops_the_crawl(site):
    publish(site)
    root = site.add("/partial.xml", sitemap_index([site.url("/sitemaps/more.xml"), site.url("/nope.xml")]),
                    content_type="application/xml")
    crawl = SiteCrawl([root], "sitemap", options())
    records, skips = split(crawl)
    assert not crawl.listing_complete
    assert any(s.where == site.url("/nope.xml") and "sitemap not read" in s.reason for s in skips)
    with pytest.raises(CrawlError, match="cannot read the sitemap"):
        SiteCrawl([site.url("/nope.xml")], "sitemap", options()).prepare()


def test_transient_failures_are_retried_and_client_errors_are_not(site, tmp_path):
    site.add("/robots.txt", b"", content_type="text/plain")
    good = page_for("/chess/1")
    urls = [site.script("/flaky", [(503, b"busy"), (502, b"busy"), (200, good)]),
            site.script("/gone", [(404, b"no")]),
            site.script("/down", [(500, b"broken")]),
            site.add("/empty", b"<html><body><nav><a href='/'>Home</a></nav></body></html>")]
    listing = tmp_path / "urls.txt"
    listing.write_text("# pages\n" + "\n".join(urls) + "\nftp://not-the-web/\n")

    records, skips = split(SiteCrawl([listing], "urls", options(retries=2)))
    assert [r.url for r in records] == [urls[0]] and site.hits["/flaky"] == 3
    reasons = {s.where: s for s in skips}
    assert site.hits["/gone"] == 1 and not reasons[urls[1]].transient
    assert site.hits["/down"] == 3 and reasons[urls[2]].transient and "500" in reasons[urls[2]].reason
    assert reasons[urls[3]].reason == "no article text found on the page" and not reasons[urls[3]].transient
    assert any("not an http(s) URL" in s.reason for s in skips)


@pytest.mark.parametrize("redirect_first", [False, True])
def test_every_listed_url_is_a_record_or_a_listed_skip_duplicates_and_redirects_too(site, tmp_path, redirect_first):
    # each line was a record or a skip, except a URL listed twice and a redirect to a listed page:
    # the first was dropped unsaid, the second stored the page twice. Whatever the order, the page
    # keeps its own id (an update would otherwise prune it and keep the redirect's)
    site.add("/robots.txt", b"", content_type="text/plain")
    one, two = site.add("/chess/1", page_for("/chess/1")), site.add("/chess/2", page_for("/chess/2"))
    moved = site.add("/old/2", b"", status=301, headers={"Location": "/chess/2"})
    listing = tmp_path / "urls.txt"
    lines = [one, one + "#comments"] + ([moved, two] if redirect_first else [two, moved])
    listing.write_text("\n".join(lines) + "\n")
    records, skips = split(SiteCrawl([listing], "urls", options()))
    assert [(r.id, r.url) for r in records] == [(normalise_url(one), one), (normalise_url(two), two)]
    assert len(records) + len(skips) == len(lines)
    assert [s.where for s in skips if "listed before" in s.reason] == [f"{listing} line 2"]
    assert [(s.where, s.id) for s in skips if "which is listed too" in s.reason] == [(moved, normalise_url(moved))]


def test_a_crawled_page_s_record_text_opens_with_its_standfirst(site, tmp_path):
    # the builder indexes a record's title and text: the standfirst, the page's summary (not in the
    # extracted text), is read first, as a fetched page's is
    site.add("/robots.txt", b"", content_type="text/plain")
    standfirst = ("The island ferry will sail every hour through the night for the first time, after the port "
                  "authority agreed to pay for a second crew.")
    story = page_paragraphs("sailing", 1)
    html = ("<html lang='en'><body><main><article><header><h1>Ferry all night</h1>"
            f"<p class='standfirst'>{standfirst}</p></header>" + "".join(f"<p>{p}</p>" for p in story)
            + "</article></main></body></html>")
    listing = tmp_path / "urls.txt"
    listing.write_text(site.add("/ferry/1", html.encode()) + "\n")
    [record], _ = split(SiteCrawl([listing], "urls", options()))
    assert record.text == "\n\n".join([standfirst] + story)


def test_a_folder_page_s_record_text_opens_with_its_standfirst_as_a_crawled_page_s(tmp_path):
    # a folder of HTML files is "extracted as serving does": its documents had been indexed without the
    # standfirst that a crawled page's record and a fetched page's words read first
    from function.sources import read_html_folder

    standfirst = ("The island ferry will sail every hour through the night for the first time, after the port "
                  "authority agreed to pay for a second crew.")
    story = page_paragraphs("sailing", 1)
    (tmp_path / "ferry.html").write_text(
        "<html lang='en'><body><main><article><header><h1>Ferry all night</h1>"
        f"<p class='standfirst'>{standfirst}</p></header>" + "".join(f"<p>{p}</p>" for p in story)
        + "</article></main></body></html>")
    [record] = read_html_folder(tmp_path, base_url="https://blog.example/")
    assert record.text == "\n\n".join([standfirst] + story)


BRIEF = ("<html lang='en'><body><main><article><header><h1>Ferry all night</h1>{}</header>"
         "<figure><video src='/ferry.mp4'></video></figure></article></main></body></html>")


def test_a_brief_s_record_is_its_standfirst_crawled_or_in_a_folder(site, tmp_path):
    # a brief, a video page: a headline and a standfirst, no body. Its record had been skipped ("no article
    # text"); the standfirst is its words, as a fetched page's. A page with neither stays a skip
    from function.sources import read_html_folder

    site.add("/robots.txt", b"", content_type="text/plain")
    standfirst = ("The island ferry will sail every hour through the night for the first time, after the port "
                  "authority agreed to pay for a second crew.")
    brief, bare = BRIEF.format(f"<p class='standfirst'>{standfirst}</p>"), BRIEF.format("")
    listing = tmp_path / "urls.txt"
    listing.write_text(site.add("/ferry/1", brief.encode()) + "\n" + site.add("/ferry/2", bare.encode()) + "\n")
    [record], [skip] = split(SiteCrawl([listing], "urls", options()))
    assert (record.title, record.text) == ("Ferry all night", standfirst)
    assert skip.where.endswith("/ferry/2") and skip.reason == "no article text found on the page"
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "brief.html").write_text(brief)
    (folder / "bare.html").write_text(bare)
    [record], [skip] = split(list(read_html_folder(folder, base_url="https://blog.example/")))
    assert (record.text, skip.where, skip.reason) == (standfirst, "bare.html", "no article text found on the page")

def test_a_listed_page_that_fails_is_kept_under_the_url_that_redirected_to_it(site, tmp_path):
    site.add("/robots.txt", b"", content_type="text/plain")
    two = site.script("/chess/2", [(200, page_for("/chess/2")), (404, b"gone")])  # first the redirect's fetch
    moved = site.add("/old/2", b"", status=301, headers={"Location": "/chess/2"})
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{moved}\n{two}\n")
    records, skips = split(SiteCrawl([listing], "urls", options(concurrency=1, per_host=1)))
    assert [(r.id, r.url) for r in records] == [(normalise_url(moved), two)]
    assert [s.where for s in skips] == [two] and "404" in skips[0].reason


def test_a_redirect_into_what_robots_txt_forbids_is_not_stored(site, tmp_path):
    # the fetcher follows redirects; the crawl had stored the forbidden page under the redirecting URL
    site.add("/robots.txt", b"User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    site.add("/private/2", page_for("/chess/2"))
    moved = site.add("/old/2", b"", status=301, headers={"Location": "/private/2"})
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{moved}\n")
    records, skips = split(SiteCrawl([listing], "urls", options()))
    assert records == [] and [(s.where, s.transient) for s in skips] == [(moved, False)]
    assert "which robots.txt keeps out" in skips[0].reason


def test_a_sitemap_index_entry_without_a_location_is_listed_and_stops_a_prune(site, tmp_path):
    root = publish(site)
    index = tmp_path / "index.xml"
    index.write_text(sitemap_index([root]).decode().replace("</sitemapindex>",
                                                             "<sitemap><loc></loc></sitemap></sitemapindex>"))
    crawl = SiteCrawl([str(index)], "sitemap", options())
    records, skips = split(crawl)
    assert records and not crawl.listing_complete
    assert [(s.where, s.reason, s.unread) for s in skips if "without a <loc>" in s.reason] == [
        (str(index), "a sitemap index entry without a <loc>", True)]


def test_a_site_at_a_private_address_is_said_to_be_one_with_the_way_round(tmp_path):
    # it had been listed as "robots.txt unavailable", and the sitemap's refusal had named no way round
    listing = tmp_path / "urls.txt"
    listing.write_text("http://10.0.0.1/notes/1\n")
    _, skips = split(SiteCrawl([listing], "urls", options()))
    # the host as the setting takes it, where "host:port" had left the user to work it out
    assert skips[0].reason.startswith("forbidden address (") and "FETCH_ALLOW_PRIVATE_HOSTS=10.0.0.1 " in skips[0].reason
    with pytest.raises(CrawlError, match="cannot read the sitemap .* FETCH_ALLOW_PRIVATE_HOSTS=10.0.0.1:8195 "):
        split(SiteCrawl(["http://10.0.0.1:8195/sitemap.xml"], "sitemap", options()))
    # a port outside FETCH_PORTS is refused before the address: its reason and both ways round are said
    listing.write_text("http://10.0.0.1:8195/notes/1\n")
    _, skips = split(SiteCrawl([listing], "urls", options()))
    assert skips[0].reason.startswith("forbidden port (The port 8195 of 10.0.0.1 ")
    assert "FETCH_ALLOW_PRIVATE_HOSTS=10.0.0.1:8195 " in skips[0].reason and "add its port to FETCH_PORTS" in skips[0].reason


def test_robots_txt_that_fails_keeps_the_crawler_out_and_one_that_is_missing_lets_it_in(site, tmp_path):
    page = site.add("/chess/1", page_for("/chess/1"))
    listing = tmp_path / "urls.txt"
    listing.write_text(page + "\n")
    site.script("/robots.txt", [(503, b"busy")])
    records, skips = split(SiteCrawl([listing], "urls", options(retries=1)))
    assert not records and skips[0].transient and "robots.txt unavailable" in skips[0].reason
    assert site.hits["/chess/1"] == 0

    site.script("/robots.txt", [(404, b"none")])
    records, _ = split(SiteCrawl([listing], "urls", options()))
    assert [r.url for r in records] == [page]


def test_a_host_gets_at_most_per_host_requests_at_once(site, tmp_path):
    site.add("/robots.txt", b"User-agent: *\nAllow: /\n", content_type="text/plain")
    urls = [site.add(f"/slow/{n}", page_for("/sailing/1")) for n in range(8)]
    for n in range(8):
        site.delays[f"/slow/{n}"] = 0.2
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls))
    records, _ = split(SiteCrawl([listing], "urls", options(concurrency=6, per_host=2)))
    assert len(records) == 8
    assert site.max_in_flight == 2


def test_request_starts_are_spaced_per_host_and_slowed_down_on_request():
    throttle = HostThrottle(interval=0.5, per_host=2)
    first, second = throttle.reserve("http://a"), throttle.reserve("http://a")
    assert second - first == pytest.approx(0.5)
    assert throttle.reserve("http://b") < second  # another host does not wait for this one
    third = throttle.reserve("http://a", asked=2.0)  # robots.txt Crawl-delay: 2
    assert third - second == pytest.approx(0.5) and throttle.reserve("http://a") - third == pytest.approx(2.0)
    throttle.slow_down("http://a")
    assert throttle.interval_for("http://a") == 1.0 and throttle.interval_for("http://b") == 0.5


def test_a_crawl_delay_is_honoured_up_to_a_minute():
    from function.crawl import SiteRules
    from urllib.robotparser import RobotFileParser

    def rules(text):
        parser = RobotFileParser()
        parser.parse(text.splitlines())
        return SiteRules(parser)

    assert rules("User-agent: *\nCrawl-delay: 2").delay() == 2.0
    assert rules("User-agent: *\nRequest-rate: 1/10").delay() == 10.0
    assert rules("User-agent: *\nCrawl-delay: 100000").delay() == 60.0  # 8 pages had taken days


# -- state on disk -----------------------------------------------------------------------------------
def test_lastmod_and_age_decide_what_is_fetched_again(site, tmp_path):
    root = publish(site, lastmod="2024-05-01")
    state = tmp_path / "state"
    list(SiteCrawl([root], "sitemap", options(state=state)))
    site.add("/volcano/2", page_for("/volcano/2", topic="chess", title="Volcano turned chess"))
    write_sitemaps(site, {p: ("2024-06-01" if p == "/volcano/2" else "2024-05-01") for p in ARTICLE_PATHS})

    crawl = SiteCrawl([root], "sitemap", options(state=state))
    records, _ = split(crawl)
    assert crawl.counts["to_fetch"] == 1 and crawl.counts["from_state"] == len(ARTICLE_PATHS)  # and /missing
    assert site.hits["/volcano/2"] == 2 and all(site.hits[p] == 1 for p in ARTICLE_PATHS if p != "/volcano/2")
    changed = next(r for r in records if r.url.endswith("/volcano/2"))
    assert changed.title == "Volcano turned chess" and page_paragraphs("chess", 2)[0] in changed.text

    list(SiteCrawl([root], "sitemap", options(state=state, max_age=0)))
    assert all(site.hits[p] >= 2 for p in ARTICLE_PATHS)


def test_pages_read_by_an_older_extraction_are_said_and_those_it_found_no_text_in_are_fetched_again(site, tmp_path, capsys):
    """The state keeps each page's text, not its HTML: a rebuild after an upgrade had read the old
    extraction's text unsaid, and a page it had found no text in stayed skipped for good."""
    root = publish(site)
    state = tmp_path / "state"
    list(SiteCrawl([root], "sitemap", options(state=state)))
    lines = [json.loads(line) for line in (state / "pages.jsonl").read_text().splitlines()]
    assert {line["extraction"] for line in lines} == {EXTRACTION_REVISION}
    for line in lines:  # as a version before the revision wrote them, one page found textless then
        del line["extraction"]
        if line["url"].endswith("/volcano/2"):
            line.update(status="failed", reason="no article text found on the page", transient=False)
            del line["text"], line["title"]
    (state / "pages.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    crawl = SiteCrawl([root], "sitemap", options(state=state, progress=True))
    records, _ = split(crawl)
    assert crawl.counts["to_fetch"] == 1 and crawl.counts["older_extraction"] == len(ARTICLE_PATHS) - 1
    assert site.hits["/volcano/2"] == 2 and all(site.hits[p] == 1 for p in ARTICLE_PATHS if p != "/volcano/2")
    assert any(r.url.endswith("/volcano/2") for r in records) and len(records) == len(ARTICLE_PATHS)
    said = capsys.readouterr().err
    assert f"{len(ARTICLE_PATHS) - 1} of the pages already fetched were read by an older version's article extraction" in said
    assert "--max-age 0 fetches and reads them again" in said

    again = SiteCrawl([root], "sitemap", options(state=state))  # the others only when asked (--max-age 0)
    list(again)
    assert again.counts["to_fetch"] == 0 and again.counts["older_extraction"] == len(ARTICLE_PATHS) - 1


def test_needs_fetch_rules():
    listed = Listed("http://a/x", "https://a/x", "2024-05-02T00:00:00+00:00")
    ok = {"status": "ok", "transient": None, "lastmod": "2024-05-01T00:00:00+00:00",
          "fetched_at": "2024-05-03T00:00:00+00:00"}
    assert needs_fetch(listed, None) and needs_fetch(listed, ok)
    assert not needs_fetch(Listed("http://a/x", "https://a/x", ok["lastmod"]), ok)
    assert not needs_fetch(Listed("http://a/x", "https://a/x"), ok)
    assert needs_fetch(Listed("http://a/x", "https://a/x"), {**ok, "status": "failed", "transient": True})
    textless = {**ok, "status": "failed", "transient": False, "no_text": True}
    assert needs_fetch(Listed("http://a/x", "https://a/x"), {**textless, "older_extraction": True})
    assert not needs_fetch(Listed("http://a/x", "https://a/x"), {**textless, "older_extraction": False})
    assert not needs_fetch(Listed("http://a/x", "https://a/x"), {**ok, "older_extraction": True})


def test_state_survives_a_torn_last_line_and_one_crawl_at_a_time(tmp_path):
    state = CrawlState(tmp_path)
    state.write({"key": "k1", "status": "ok", "text": "one"})
    with pytest.raises(CrawlError, match="another crawl"):
        CrawlState(tmp_path)
    state.close()
    with open(tmp_path / "pages.jsonl", "ab") as f:
        f.write(b'{"key": "k2", "status": "ok", "te')
    again = CrawlState(tmp_path)
    assert list(again.pages) == ["k1"] and again.read("k1")["text"] == "one"
    again.write({"key": "k3", "status": "ok", "text": "three"})
    assert again.read("k3")["text"] == "three"
    again.close()


def crawl_env():
    return {**os.environ, "FETCH_ALLOW_PRIVATE_HOSTS": "127.0.0.1"}


def ok_keys(state_file):
    keys = set()
    if state_file.exists():
        for line in state_file.read_bytes().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("status") == "ok":
                keys.add(entry["key"])
    return keys


def test_an_interrupted_build_resumes_where_it_stopped(site, tmp_path):
    root = publish(site)
    out = tmp_path / "store" / "site"
    command = [sys.executable, "-m", "function.build", "--input", root, "--out", str(out), "--quiet"]
    slow = subprocess.Popen(command + ["--rate", "4"], cwd=ROOT, env=crawl_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = out / ".crawl" / "pages.jsonl"
    deadline = time.monotonic() + 60
    while len(ok_keys(state_file)) < 4 and slow.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    fetched_before = ok_keys(state_file)
    assert 4 <= len(fetched_before) < len(ARTICLE_PATHS)
    assert not (out / "CURRENT").exists()

    done = subprocess.run(command + ["--rate", "100"], cwd=ROOT, env=crawl_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    store = Store(current_version_dir(out))
    assert store.size == len(ARTICLE_PATHS)
    for path in ARTICLE_PATHS:
        if normalise_url(site.url(path)) in fetched_before:
            assert site.hits[path] == 1, path
        else:  # fetched once, or twice when the first fetch was cut short by the kill
            assert site.hits[path] in (1, 2), path
    skipped = [json.loads(line) for line in open(store.path / "skipped.jsonl")]
    assert {"where": site.url("/private/secret"), "reason": "disallowed by robots.txt"} in skipped
    assert any(s["where"] == site.url("/missing") and "404" in s["reason"] for s in skipped)


def test_ctrl_c_stops_a_crawl_without_the_pages_it_was_waiting_to_fetch(site, tmp_path):
    # workers waiting for their host's turn (2 s apart here) had each fetched its page after the stop,
    # and the build had ended in a KeyboardInterrupt traceback
    root = publish(site)
    out = tmp_path / "store" / "site"
    command = [sys.executable, "-m", "function.build", "--input", root, "--out", str(out), "--rate", "0.5",
               "--per-host", "4", "--concurrency", "4"]
    build = subprocess.Popen(command, cwd=ROOT, env=crawl_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    state_file = out / ".crawl" / "pages.jsonl"
    deadline = time.monotonic() + 60
    while len(ok_keys(state_file)) < 2 and build.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    hits = sum(site.hits[path] for path in ARTICLE_PATHS)
    build.send_signal(signal.SIGINT)
    _, stderr = build.communicate(timeout=60)
    assert build.returncode == 130 and "Traceback" not in stderr, stderr
    assert "crawl interrupted: run the same command again" in stderr and "build stopped" in stderr
    assert sum(site.hits[path] for path in ARTICLE_PATHS) <= hits + 1  # at most the one in flight
    assert not (out / "CURRENT").exists()


# -- CSV, a folder of HTML files, a file of URLs ------------------------------------------------------
def test_csv_with_a_column_mapping_builds_a_store(tmp_path):
    import csv

    path = tmp_path / "posts.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["post_id", "link", "headline", "body"])
        for n, topic in enumerate(["volcano", "baking", "sailing", "chess"] * 2):
            writer.writerow([f"p{n}", f"https://blog.example/{topic}/{n}", f"{topic} {n}",
                             " ".join(paragraphs(topic, n))])
        writer.writerow(["bad", "not-a-url", "x", "words"])
    out = tmp_path / "store" / "csv"
    assert build_main(["--input", str(path), "--out", str(out), "--quiet",
                       "--columns", "id=post_id,url=link,title=headline,text=body"]) == 0
    store = Store(current_version_dir(out))
    assert store.size == 8 and store.docs([store.row_for_id("p3")])[0].title == "chess 3"
    assert build_main(["--input", str(path), "--out", str(tmp_path / "x"), "--quiet"]) == 1  # no 'id' column


def test_a_folder_of_html_files_builds_a_store(tmp_path, capsys):
    folder = tmp_path / "site"
    for path in ARTICLE_PATHS[:6]:
        target = folder / path.strip("/") / "index.html"
        target.parent.mkdir(parents=True)
        target.write_bytes(page_for(path))
    (folder / "about.html").write_bytes(b"<html><body><nav>menu</nav></body></html>")
    out = tmp_path / "store" / "html"
    assert build_main(["--input", str(folder), "--out", str(out), "--quiet",
                       "--base-url", "https://www.example.org/blog/"]) == 0
    store = Store(current_version_dir(out))
    assert store.size == 6
    assert store.docs([store.row_for_id("https://www.example.org/blog/volcano/1")])[0].title == "Volcano notes, part 1"
    skipped = [json.loads(line) for line in open(store.path / "skipped.jsonl")]
    assert skipped == [{"where": "about.html", "reason": "no article text found on the page"}]
    # a base URL without its scheme had stored "www.example.org/blog/..." as the documents' links
    assert build_main(["--input", str(folder), "--out", str(tmp_path / "store" / "bad"), "--quiet",
                       "--base-url", "www.example.org/blog/"]) == 1
    assert "--base-url 'www.example.org/blog/' is not an http(s) address" in capsys.readouterr().err

    # without --base-url a page's canonical link is its address; a page without one is listed
    for path, canonical in (("volcano/1", "https://chess.example/one"), ("baking/1", "https://bake.example/")):
        (folder / path / "index.html").write_bytes(
            article_html(path, paragraphs(path.split("/")[0], 1), canonical=canonical))
    assert build_main(["--input", str(folder), "--out", str(tmp_path / "store" / "canon"), "--quiet"]) == 0
    store = Store(current_version_dir(tmp_path / "store" / "canon"))
    assert store.size == 2 and store.row_for_id("https://chess.example/one") is not None
    skipped = [json.loads(line) for line in open(store.path / "skipped.jsonl")]
    assert {"where": "volcano/2/index.html",
            "reason": "no URL: give --base-url, or the page needs a <link rel=canonical>"} in skipped


def test_formats_are_told_from_the_input(tmp_path):
    (tmp_path / "folder").mkdir()
    assert detect_format("https://example.com/sitemap_index.xml") == "sitemap"
    assert detect_format(tmp_path / "folder") == "html"
    assert detect_format("sitemap.xml.gz") == detect_format("pages.xml") == "sitemap"
    assert detect_format("enwiki-latest-pages-articles1.xml-p10p30302.bz2") == "wikidump"
    assert detect_format("posts.csv") == detect_format("posts.tsv") == "csv"
    assert detect_format("urls.txt") == "urls" and detect_format("a.jsonl") == "jsonl"
    with pytest.raises(ValueError, match="give --format"):
        detect_format("mystery.bin")


def test_a_file_of_urls_builds_a_store(site, tmp_path, monkeypatch):
    publish(site)
    listing = tmp_path / "pages.txt"
    listing.write_text("\n".join(site.url(p) for p in ARTICLE_PATHS[:4]))
    out = tmp_path / "store" / "urls"
    monkeypatch.setenv("FETCH_ALLOW_PRIVATE_HOSTS", "127.0.0.1")
    assert build_main(["--input", str(listing), "--out", str(out), "--quiet", "--rate", "100"]) == 0
    assert Store(current_version_dir(out)).size == 4 and (out / ".crawl" / "pages.jsonl").exists()


def test_an_update_that_rebuilds_reads_the_crawl_it_made_and_fetches_nothing_again(site, tmp_path, monkeypatch):
    """--rebuild-if-due builds from the update's own crawl: a page fetched twice would have doubled a
    site's requests, and the site could have changed between the update's reading and the build's."""
    root = publish(site)
    out = tmp_path / "store" / "site"
    monkeypatch.setenv("FETCH_ALLOW_PRIVATE_HOSTS", "127.0.0.1")
    assert build_main(["--input", root, "--out", str(out), "--quiet", "--rate", "100"]) == 0
    built = Store(current_version_dir(out))
    # two new pages, on a topic the site had no page on: their words are new, so a rebuild is due
    new = {"/garden/1": "Tomatoes, compost and raised beds", "/garden/2": "Pruning roses and apple trees"}
    for n, (path, title) in enumerate(new.items()):
        site.add(path, article_html(title, [f"{title}: the gardener's spring list, mulch, seedlings and slugs.",
                                            paragraphs("baking", n, count=1)[0]]))
    write_sitemaps(site, {**{p: "2024-05-01" for p in ARTICLE_PATHS}, **{p: "2024-06-01" for p in new}})
    hits = dict(site.hits)
    assert update_main([str(out), "--input", root, "--prune", "--rebuild-if-due", "--quiet", "--rate", "100"]) == 0
    rebuilt = Store(current_version_dir(out))
    assert rebuilt.manifest["builder"].startswith("function.build") and rebuilt.version != built.version
    assert rebuilt.size == built.size + 2 and rebuilt.row_for_id(normalise_url(site.url("/garden/2"))) is not None
    # the sitemaps once, the new pages once, nothing else: the build read the update's crawl
    fetched = {path: count - hits.get(path, 0) for path, count in site.hits.items() if count > hits.get(path, 0)}
    assert fetched == {"/sitemap_index.xml": 1, "/sitemaps/articles.xml.gz": 1, "/sitemaps/more.xml": 1,
                       "/robots.txt": 1, "/garden/1": 1, "/garden/2": 1}


def test_a_failed_first_crawl_s_build_keeps_its_crawl_state_and_not_its_lock(site, tmp_path, monkeypatch, capsys):
    # no page read: the build fails. Its folder had kept the lock too; the crawl's state stays, to resume
    site.add("/robots.txt", b"", content_type="text/plain")
    listing = tmp_path / "pages.txt"
    listing.write_text(site.url("/gone/1") + "\n")
    out = tmp_path / "store" / "gone"
    monkeypatch.setenv("FETCH_ALLOW_PRIVATE_HOSTS", "127.0.0.1")
    assert build_main(["--input", str(listing), "--out", str(out), "--quiet", "--rate", "100"]) == 1
    assert "build failed: no usable documents in the input" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".crawl"]


def test_a_short_post_is_a_document_and_a_page_of_boilerplate_is_listed_as_skipped(site, tmp_path, monkeypatch):
    # a photo and its caption had been "no article text" and listed in skipped.jsonl with the cookie wall
    publish(site)
    posts = ["/short-photo-post.html", "/cookie-wall.html"]
    for path in posts:
        site.add(path, (ROOT / "tests" / "pages" / path.strip("/")).read_bytes())
    listing = tmp_path / "pages.txt"
    listing.write_text("\n".join(site.url(p) for p in ARTICLE_PATHS[:3] + posts))
    out = tmp_path / "store" / "short"
    monkeypatch.setenv("FETCH_ALLOW_PRIVATE_HOSTS", "127.0.0.1")
    assert build_main(["--input", str(listing), "--out", str(out), "--quiet", "--rate", "100"]) == 0
    store = Store(current_version_dir(out))
    assert store.size == 4
    photo = store.docs([store.row_for_id(normalise_url(site.url(posts[0])))])[0]
    assert photo.title == "Moon over the harbour"
    skipped = [json.loads(line) for line in open(store.path / "skipped.jsonl")]
    assert skipped == [{"where": site.url(posts[1]), "reason": "no article text found on the page"}]
