"""Done means: from a website's sitemap to a served store, clicks by engine, and a live update.

A loopback site (sitemap index -> .xml.gz sitemap -> HTML pages, a robots.txt
that forbids one path) is crawled by the real builder command into a store; a
real functions-framework process serves it with traffic split between two
engines; requests and clicks show up in /stats by engine; then a page of the
site changes, the update command writes a new version, and the running
process answers with the new content without a restart.
"""

import os
import subprocess
import sys
import time

import pytest
import requests

from conftest import READER, ROOT, wait_for_events
from function.store import Store, current_version_dir
from function.urls import normalise_url
from website import ARTICLE_PATHS, Site, article_html, publish, write_sitemaps

WEIGHTS = "lsi=50,tfidf=50"
# the changed page's new text: on the site's volcano topic, in sentences of its own (another mix of the
# volcano articles' sentences would be a near-duplicate of one of them, which an answer leaves out)
VOLCANO_NEWS = [
    "The bakery closed the week the mountain above the town began to rumble again. By the morning the "
    "first eruption had covered the square in grey ash, and lava glowed on the upper slopes at night.",
    "Geologists from the observatory measured the swelling of the ground as magma rose under the crater. "
    "They warned that a larger eruption could send ash clouds over the harbour and close the airport.",
]


@pytest.fixture
def site():
    server = Site()
    yield server
    server.close()


def command(*args):
    """A command line of ours, run as a user would, allowed to crawl loopback."""
    env = {**os.environ, "FETCH_ALLOW_PRIVATE_HOSTS": "127.0.0.1"}
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def topic_of(url):
    return url.rstrip("/").split("/")[-2]


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_a_website_becomes_a_served_store_with_clicks_by_engine_and_live_updates(site, tmp_path,
                                                                                  function_process, mongodb):
    sitemap = publish(site)
    stores = tmp_path / "model_store"
    said = command("function.build", "--input", sitemap, "--out", str(stores / "site"), "--rate", "50", "--quiet")
    assert "12 documents" in said
    built = Store(current_version_dir(stores / "site"))
    assert built.size == len(ARTICLE_PATHS) and site.hits["/private/secret"] == 0

    fn = function_process(MODEL_STORE=str(stores), DEFAULT_CORPUS="site", ENGINE_WEIGHTS=WEIGHTS,
                          STORE_CHECK_SECONDS="0.2").wait_ready()
    http = requests.Session()
    http.headers.update(READER)  # a reader's clicks

    # every page of the site asks for its related pages: they are on its own topic
    engines, clicks = {}, {"lsi": 0, "tfidf": 0}
    for path in ARTICLE_PATHS:
        body = http.get(fn.base + "/", params={"url": site.url(path), "k": 2}).json()
        assert body["source"] == "corpus" and body["store_version"] == built.version
        assert [topic_of(r["url"]) for r in body["results"]] == [topic_of(path)] * 2
        assert http.get(fn.base + "/", params={"url": site.url(path) + "?utm_source=x"}).json()["engine"] == \
            body["engine"]  # the same page keeps its engine
        engines[path] = body["engine"]
        click = http.get(body["results"][0]["click_url"], allow_redirects=False)
        assert click.status_code == 302 and click.headers["Location"] == body["results"][0]["url"]
        clicks[body["engine"]] += 1
    for n in range(12):  # and some text queries, so that both engines surely get traffic
        body = http.get(fn.base + "/", params={"text": f"lava eruption and ash cloud {n}", "k": 2}).json()
        engines[n] = body["engine"]
    assert set(engines.values()) == {"lsi", "tfidf"}

    # the clicks, by engine, in /stats (events are written off the request path)
    wait_for_events(mongodb, "clicks", len(ARTICLE_PATHS))
    wait_for_events(mongodb, "requests", 2 * len(ARTICLE_PATHS) + 12)
    stats = http.get(fn.base + "/stats", params={"corpus": "site"}).json()
    for engine in ("lsi", "tfidf"):
        figures = stats["engines"][engine]
        pages = [p for p, e in engines.items() if e == engine and isinstance(p, str)]
        texts = [p for p, e in engines.items() if e == engine and not isinstance(p, str)]
        assert figures["requests"] == 2 * len(pages) + len(texts)
        assert figures["clicks"] == clicks[engine] == figures["ctr_by_rank"]["1"]["clicks"]
        assert figures["ctr_ci95"][0] <= figures["ctr"] <= figures["ctr_ci95"][1]

    # a page of the site changes topic; the update folds it in and a new version goes live
    changed = "/baking/2"
    site.add(changed, article_html("Baking gave way to volcanoes", VOLCANO_NEWS))
    write_sitemaps(site, {p: "2024-07-01" if p == changed else "2024-05-01" for p in ARTICLE_PATHS})
    said = command("function.update", str(stores / "site"), "--input", sitemap, "--prune", "--rate", "50", "--quiet")
    assert "0 added, 1 changed, 0 deleted, 11 unchanged" in said and "full rebuild" in said
    assert site.hits[changed] == 2 and all(site.hits[p] == 1 for p in ARTICLE_PATHS if p != changed)
    updated = Store(current_version_dir(stores / "site"))
    assert updated.version != built.version

    def answer_from_new_version():
        body = http.get(fn.base + "/", params={"url": site.url(changed), "k": 2}).json()
        return body if body["store_version"] == updated.version else None

    body = wait_for(answer_from_new_version)
    assert body, "the running function did not pick up the new version"
    assert [topic_of(r["url"]) for r in body["results"]] == ["volcano", "volcano"]
    found = http.get(fn.base + "/", params={"text": "volcano lava magma eruption", "k": 4, "engine": "tfidf"}).json()
    assert "Baking gave way to volcanoes" in [r["title"] for r in found["results"]]
    assert fn.process.poll() is None  # the same process all along: no restart
    assert normalise_url(site.url(changed)) in {r["id"] for r in found["results"]}
