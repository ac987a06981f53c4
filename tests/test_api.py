"""The HTTP contract, end to end through functions-framework's test client:
real store, real Mongo-wire server, real loopback web pages."""

import gc
import html
import logging
import time
import tracemalloc
import types
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pymongo
import pytest

from conftest import (BROWSER_AGENT, CHINESE_ARTICLES, READER, STATS_TOKEN, THAI_ARTICLES, basic_auth, make_client,
                      wait_for_events, wiki_article)

RESULT_KEYS = {"rank", "id", "url", "title", "score", "click_url"}
# a small blog's posts, two on cricket and two recipes: the tiny corpora of the tests below
POSTS = {"final": "The cricket final went to the last ball as the batsman hit a six over the bowler.",
         "league": "Cricket league results: the spin bowler took five wickets in the second innings.",
         "bread": "Knead the dough, let it rise twice and bake the bread in a hot oven.",
         "cake": "Whisk the eggs and sugar, fold in the flour and bake the cake for forty minutes."}


def titles(body):
    return [r["title"] for r in body["results"]]


def serving(function_env, tmp_path, name, records, **options):
    """A client of the function serving one corpus, ``name``, built from ``records`` (tfidf alone unless
    ``options``, BuildOptions', say otherwise)."""
    from function.build import BuildOptions, build

    build([iter(records)], tmp_path / name, BuildOptions(**{"name": name, "engines": ("tfidf",), **options}),
          progress=False)
    return make_client({**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": name})


def records_of(texts, site):
    """Records of ``texts`` ({name: text}), each at ``site``/name and titled by its name."""
    from function.records import Record

    return [Record(name, f"{site}/{name}", name, text) for name, text in texts.items()]


def test_text_query_answers_with_related_wikipedia_articles(client):
    response = client.get("/", query_string={"text": "moon landing astronaut"})
    assert response.status_code == 200
    body = response.get_json()
    assert {"request_id", "corpus", "engine", "results", "timings_ms"} <= set(body)
    assert body["corpus"] == "wiki" and body["source"] == "text"
    assert len(body["results"]) == 5
    assert set(titles(body)[:3]) == {"Astronaut", "Apollo 11", "Apollo 8"}
    for rank, result in enumerate(body["results"], 1):
        assert set(result) == RESULT_KEYS
        assert result["rank"] == rank
        assert result["url"].startswith("https://en.wikipedia.org/wiki/")
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert set(body["timings_ms"]) == {"fetch", "extract", "lookup", "total"}


def test_post_json_is_the_same_query(client):
    got = client.post("/", json={"text": "moon landing astronaut", "k": 3})
    assert got.status_code == 200
    assert titles(got.get_json()) == titles(client.get("/?text=moon+landing+astronaut&k=3").get_json())
    assert len(got.get_json()["results"]) == 3


def test_an_answers_json_is_what_json_dumps_writes(client, pages):
    """Answers are written by orjson (app.answer_response): byte for byte what json.dumps wrote, a
    title's quotes, backslashes and characters past ASCII as well."""
    import json

    title = 'Moon \\ "landing" é 🚀 <b>&amp;'
    page = pages.body("/moon-landing.html").replace(b"<h1>", f"<h1>{title} ".encode(), 1).replace(
        b'"Fifty', f'"{html.escape(title)} Fifty'.encode(), 1)  # og:title's too
    url = pages.add("/moon-landing-title.html", page)
    answers = (client.get("/", query_string={"url": url, "k": 10}), client.get("/?text=moon+landing&k=7"),
               client.post("/", json={"text": "moon landing astronaut", "min_score": 0.05}))
    for response in answers:
        body = response.get_json()
        assert response.status_code == 200 and body["results"], body
        assert response.data == (json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    assert answers[0].get_json()["page"]["title"].startswith(title)


def test_what_orjson_would_write_otherwise_is_written_by_json_dumps():
    """A body orjson refuses or would write otherwise (a datetime: it writes RFC 3339, json.dumps str();
    a 65-bit number, a numpy float) is json_response's, byte for byte."""
    import dataclasses
    from datetime import datetime, timezone

    import numpy as np

    from function.app import answer_response, json_response

    @dataclasses.dataclass
    class Point:
        x: int

    for odd in (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), 2 ** 64, np.float64(0.25), Point(1)):
        body = {"results": [{"score": 0.5, "odd": odd}], "title": "é"}
        assert answer_response(body).get_data() == json_response(body).get_data()
        assert answer_response(body).headers == json_response(body).headers


def test_url_query_fetches_extracts_and_answers(client, pages):
    body = client.get("/", query_string={"url": pages.url("/moon-landing.html")}).get_json()
    assert body["source"] == "fetched"
    assert {"Apollo 11", "Apollo 8"} <= set(titles(body)[:3])
    assert body["page"]["title"] == "Fifty years after the first Moon landing"
    assert body["page"]["lang"] == "en"
    assert body["timings_ms"]["fetch"] > 0 and body["timings_ms"]["extract"] > 0


@pytest.mark.parametrize("post", ["/short-photo-post.html", "/short-link-post.html"])
def test_a_short_post_is_answered_by_what_it_says(client, pages, post):
    # a caption, a link and a line: no paragraph jusText calls more than short, and the page had been
    # a 422 no_article_text (its widget showed nothing)
    response = client.get("/", query_string={"url": pages.url(post)})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["source"] == "fetched" and body["results"]
    assert any("Apollo" in title for title in titles(body)[:3])
    assert body["page"]["lang"] == "en"  # (what it is read as: test_extract's test_a_short_post_...)


# (not no-article.html: the refused-from-memory test counts the fetches of its path)
@pytest.mark.parametrize("page", ["/sign-in.html", "/soft-404.html", "/cookie-wall.html"])
def test_a_page_of_boilerplate_alone_is_still_no_article(client, pages, page):
    # a login form, a "not found" page answering 200, a consent wall: their site-wide description is no
    # article's, and the cookie wall's paragraph had been read as one
    response = client.get("/", query_string={"url": pages.url(page)})
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "no_article_text"


def test_a_chinese_article_page_gets_the_chinese_corpus_article_on_its_subject(pages, function_env, tmp_path):
    # fetch -> extract (paragraphs under 70 characters) -> character pairs -> lookup, end to end
    records = records_of(CHINESE_ARTICLES, "https://news.example")
    client = serving(function_env, tmp_path, "zh", records)
    url = pages.add("/zh-football.html", (
        "<html lang='zh'><head><title>球队逆转取胜</title></head><body><nav><a href='/'>首页</a></nav><article>"
        "<p>主队在今晚的足球比赛中表现出色，上半场落后一球，下半场连进两球完成逆转。</p>"
        "<p>球员们赛后说，球队的防守比上一场比赛好了很多，中场的传球也更加稳定。</p>"
        "<p>教练表示，下一场比赛的对手实力很强，球队还要继续加强进攻和体能训练。</p>"
        "<p>本场比赛吸引了三万多名球迷到场观看，球场气氛十分热烈。</p>"
        "<p>下一轮比赛将在下周六晚上举行，球队目前在积分榜上排名第三。</p></article></body></html>").encode())
    body = client.get("/", query_string={"url": url, "k": 3}).get_json()
    assert body.get("page", {}).get("lang") == "zh", body
    assert body["results"][0]["url"] == "https://news.example/football"


def test_a_page_is_answered_by_its_standfirst_s_words_too(pages, function_env, tmp_path):
    # the standfirst under the headline alone names the ferry; the body's words are in no document. Skipped
    # with every <header>, it had left the page no known word (a 422); it is the page's summary, read for
    # its vector after the title (Article.words), not its text
    texts = {"ferry": "The island ferry will sail through the night with a second crew, the port authority says.",
             "bread": POSTS["bread"], "cake": POSTS["cake"], "cricket": POSTS["final"]}
    records = records_of(texts, "https://blog.example")
    client = serving(function_env, tmp_path, "blog", records)
    body = ("Residents welcomed the decision on Monday evening, ending a campaign that had lasted for many years "
            "and drawn thousands of signatures from people who work late shifts in the city.",
            "Campaigners said they would keep pressing for lower prices for residents, which they say have risen "
            "faster than wages over the past decade, and for better connections at the other end.")
    url = pages.add("/standfirst-ferry.html", (
        "<html lang='en'><head><title>Good news at last</title></head><body><main><article><header>"
        "<h1>Good news at last</h1><p class='standfirst'>The island ferry will sail every hour through the night, "
        "after the port authority agreed to pay for a second crew.</p></header>"
        + "".join(f"<p>{line}</p>" for line in body) + "</article></main></body></html>").encode())
    answer = client.get("/", query_string={"url": url, "k": 3})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["results"][0]["url"] == "https://blog.example/ferry"


def test_a_brief_of_a_headline_and_a_standfirst_alone_is_answered_by_them(pages, function_env, tmp_path):
    # no body (a brief, a video page): the standfirst had not been read and the page was a 422 no_article_text
    texts = {"ferry": "The island ferry will sail through the night with a second crew, the port authority says.",
             "bread": POSTS["bread"], "cake": POSTS["cake"], "cricket": POSTS["final"]}
    client = serving(function_env, tmp_path, "blog", records_of(texts, "https://blog.example"))
    header = ("<html lang='en'><head><title>Good news at last</title></head><body><main><article><header>"
              "<h1>Good news at last</h1>{}</header><figure><video src='/ferry.mp4'></video></figure></article>"
              "</main></body></html>")
    url = pages.add("/ferry-video.html", header.format(
        "<p class='standfirst'>The island ferry will sail every hour through the night, after the port authority "
        "agreed to pay for a second crew.</p>").encode())
    answer = client.get("/", query_string={"url": url, "k": 3})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["results"][0]["url"] == "https://blog.example/ferry"
    # neither text nor standfirst: still no article
    bare = pages.add("/bare-video.html", header.format("").encode())
    refused = client.get("/", query_string={"url": bare, "k": 3})
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "no_article_text"


def test_a_tiny_corpus_keeps_a_word_found_in_most_of_its_documents(function_env, tmp_path):
    """Of 3 articles, 2 on cricket: "cricket" is in more than half of them, which --no-above (0.5)
    leaves out of a larger corpus; a cricket query had found nothing here (a 422)."""
    from function.build import BuildOptions, build

    texts = {name: POSTS[name] for name in ("final", "league", "bread")}
    records = records_of(texts, "https://blog.example")
    _, manifest = build([iter(records)], tmp_path / "blog", BuildOptions(name="blog", engines=("tfidf",)),
                        progress=False)
    assert manifest["parameters"]["no_above"] == 0.5  # as asked, and as applied:
    # "the", in all three, is pruned and listed: an update counts it among no document's unknown words
    assert manifest["pruning"] == {"no_below": 1, "no_above": round(2 / 3, 4), "too_common": ["the"]}
    client = make_client({**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": "blog"})
    answer = client.get("/", query_string={"text": "cricket"})
    assert answer.status_code == 200, answer.get_json()
    assert {r["title"] for r in answer.get_json()["results"]} == {"final", "league"}


def test_a_page_the_corpus_holds_twice_is_one_link(function_env, tmp_path):
    """An export with a post under its http and https addresses (or with and without a trailing slash)
    had answered two links to the one article."""
    from function.sources import Record

    texts = dict(POSTS)
    records = records_of(texts, "https://blog.example")
    records.append(Record("final-again", "http://blog.example/final/", "final", texts["final"]))
    client = serving(function_env, tmp_path, "blog", records)
    answer = client.get("/", query_string={"text": "cricket bowler", "k": 3}).get_json()
    assert sorted(r["title"] for r in answer["results"]) == ["final", "league"]
    assert [r["id"] for r in answer["results"]].count("final") + [r["id"] for r in answer["results"]].count(
        "final-again") == 1


def test_a_page_the_corpus_holds_in_two_editions_is_one_link(function_env, tmp_path):
    """An export with a post's first edition under its http address and the edited post under https: the
    texts are too far apart to be near-duplicates of each other, but they are one page, one link."""
    from function.sources import Record

    records = [
        Record("final", "https://blog.example/final", "final", POSTS["final"]),
        Record("final-first-edition", "http://blog.example/final/", "final",
               "Cricket report, first edition: rain stopped play twice while the visiting bowler waited inside."),
        Record("league", "https://blog.example/league", "league", POSTS["league"]),
        Record("bread", "https://blog.example/bread", "bread", POSTS["bread"])]
    client = serving(function_env, tmp_path, "blog", records)
    answer = client.get("/", query_string={"text": "cricket bowler", "k": 3}).get_json()
    assert sorted(r["title"] for r in answer["results"]) == ["final", "league"], answer["results"]


# a blog: a recipe and its repost (a sentence added, its title changed), another recipe sharing most of
# their words (similar, but a post of its own), and posts on other subjects
RECIPE = ("Mix the flour, water, salt and yeast in a large bowl until no dry flour is left. Knead the dough for "
          "ten minutes on a floured table until it is smooth and springs back. Let it rise twice in a warm "
          "kitchen, covered with a damp towel, until it has doubled. Shape the loaf, put it in a tin, score the "
          "top with a sharp knife and bake the bread in a hot oven until the crust is golden and the loaf sounds "
          "hollow when you tap it. Let it cool on a rack before you cut it.")
BLOG_POSTS = {
    "bread": ("My bread recipe", RECIPE),
    "bread-repost": ("My favourite bread recipe", RECIPE + " Update: readers asked, and rye flour works too."),
    "rolls": ("Bread rolls", "Knead the dough for ten minutes, let it rise once in a warm kitchen, shape small "
                             "rolls, brush them with milk and bake the rolls in a hot oven until golden."),
    "cake": ("Sponge cake", POSTS["cake"]),
    "final": ("The final", POSTS["final"]),
    "league": ("League", POSTS["league"]),
    "garden": ("Tomatoes", "Tomato plants on a balcony need sun, a deep pot and water every evening in summer."),
}


@pytest.mark.parametrize("engine", ["tfidf", "lsi"])
def test_a_near_duplicate_of_a_better_ranked_hit_is_left_out_and_the_answer_still_fills(function_env, tmp_path,
                                                                                       engine):
    """A blog's recipe and its lightly edited repost had been listed one below the other in every
    answer naming either: one of the answer's slots wasted. The other recipe, alike but distinct, stays."""
    from function.sources import Record

    records = [Record(name, f"https://blog.example/{name}", title, text) for name, (title, text) in BLOG_POSTS.items()]
    client = serving(function_env, tmp_path, "blog", records, engines=("tfidf", "lsi"))
    answer = client.get("/", query_string={"text": "bake the bread dough in a hot oven", "k": 4,
                                           "engine": engine}).get_json()
    ids = [r["id"] for r in answer["results"]]
    assert "rolls" in ids, ids  # the other recipe: alike, but a post of its own
    assert len({"bread", "bread-repost"} & set(ids)) == 1, ids  # the better-ranked one only
    assert len(ids) == 4, ids  # filled from the hits past k
    assert [r["rank"] for r in answer["results"]] == [1, 2, 3, 4]


def test_lsi_keeps_a_post_of_its_own_that_it_folds_close_to_another(function_env, tmp_path):
    """LSI folds texts of one subject together (on the bench store 4.3% of pairs are past 0.95): here, in
    5 dimensions, the recipe is 0.98 to the other recipe and 1.0 to its repost. Only the repost is left out:
    a lower threshold (tf-idf's 0.8, or 0.9) takes the other recipe out of the answer too."""
    from function.sources import Record

    records = [Record(name, f"https://blog.example/{name}", title, text) for name, (title, text) in BLOG_POSTS.items()]
    client = serving(function_env, tmp_path, "blog", records, engines=("lsi",), lsi_dims=5)
    ids = [r["id"] for r in client.get("/", query_string={"text": "bake the bread dough in a hot oven", "k": 4})
           .get_json()["results"]]
    assert "rolls" in ids and len({"bread", "bread-repost"} & set(ids)) == 1, ids


@pytest.mark.parametrize("engine", ["tfidf", "lsi"])
def test_a_members_repost_is_not_related_content_of_the_member(function_env, tmp_path, engine):
    """Asked about the recipe (by id or by its address), its repost is the same content, not a related post."""
    from function.sources import Record

    records = [Record(name, f"https://blog.example/{name}", title, text) for name, (title, text) in BLOG_POSTS.items()]
    client = serving(function_env, tmp_path, "blog", records, engines=("tfidf", "lsi"))
    for query in ({"id": "bread"}, {"url": "https://blog.example/bread-repost"}):
        answer = client.get("/", query_string={**query, "k": 3, "engine": engine}).get_json()
        ids = [r["id"] for r in answer["results"]]
        assert answer["source"] == "corpus" and not {"bread", "bread-repost"} & set(ids), (query, ids)
        assert ids[0] == "rolls" and len(ids) == 3, (query, ids)


def test_a_member_whose_address_has_a_query_keeps_the_member_at_its_address_without_it(function_env, tmp_path):
    """A forum's threads are one path and a query (thread?id=1): asked for such a member, the member
    at the bare path is another page, a link like any other (only a fetched page's query is dropped
    to find its member)."""

    texts = {"thread?id=1": POSTS["final"], "thread": POSTS["league"], "bread": POSTS["bread"], "cake": POSTS["cake"]}
    records = records_of(texts, "https://forum.example")
    client = serving(function_env, tmp_path, "forum", records)
    answer = client.get("/", query_string={"url": "https://forum.example/thread?id=1", "k": 3}).get_json()
    assert answer["source"] == "corpus" and answer["results"][0]["id"] == "thread"
    assert "thread?id=1" not in [r["id"] for r in answer["results"]]


def test_a_small_blogs_subject_words_are_found_in_its_titles_and_its_one_post(function_env, tmp_path):
    """A blog of 26 posts, each on its own subject: a subject's words are in one post only (and
    its title). With words of two posts or more kept, 10 of 17 one-word queries of a new user's
    28-post blog had been a 422, and "tomato plants on a balcony" had not found the tomato post."""
    from function.records import Record

    subjects = ["tomatoes", "espresso", "router", "password", "camera", "pizza", "budget", "roses", "chain",
                "compost", "lawn", "sourdough", "kayak", "telescope", "ukulele", "sauna", "chess", "beekeeping",
                "origami", "marathon", "aquarium", "pottery", "knitting", "podcast", "mortgage", "vinyl"]
    filler = "This week I tried something new, and here is what I learned along the way, step by step."
    records = [Record(str(i), f"https://blog.example/{subject}", f"Notes on {subject}",
                      f"{filler} More about {subject} next week." if i % 2 else filler)  # half: the title alone
               for i, subject in enumerate(subjects)]
    client = serving(function_env, tmp_path, "blog", records, engines=("lsi", "tfidf"))
    for subject in subjects:
        answer = client.get("/", query_string={"text": f"{subject} tips", "k": 3})
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["results"][0]["url"] == f"https://blog.example/{subject}"


def test_a_thai_article_page_gets_the_thai_corpus_article_on_its_subject(pages, function_env, tmp_path):
    # fetch -> extract -> pairs of clusters (Thai has no spaces between words) -> lookup, end to end
    records = records_of(THAI_ARTICLES, "https://news.example/th")
    client = serving(function_env, tmp_path, "th", records)
    page = ("<html lang='th'><head><title>ราคาข้าวสูงขึ้น</title></head><body><nav><a href='/'>หน้าแรก</a></nav>"
            "<article><p>ปีนี้ราคาข้าวในตลาดสูงขึ้นมาก ชาวนาหลายจังหวัดขายข้าวได้ราคาดีกว่าปีที่แล้ว</p>"
            "<p>พ่อค้าข้าวกล่าวว่าความต้องการข้าวจากต่างประเทศเพิ่มขึ้น ทำให้ราคาข้าวสารในเมืองแพงขึ้นด้วย</p>"
            "<p>ผู้ซื้อในกรุงเทพบ่นว่าข้าวแพง และหวังว่ารัฐบาลจะช่วยดูแลราคาข้าวให้เหมาะสม</p>"
            "</article></body></html>")
    # in UTF-8, and in Thai's legacy charset under the web's label for it (Python's is cp874)
    for charset, codec in (("utf-8", "utf-8"), ("windows-874", "cp874")):
        url = pages.add(f"/th-rice-{charset}.html", page.encode(codec), content_type=f"text/html; charset={charset}")
        body = client.get("/", query_string={"url": url, "k": 3}).get_json()
        assert body.get("page", {}).get("lang") == "th" and body["page"]["title"] == "ราคาข้าวสูงขึ้น", body
        assert body["results"][0]["url"] == "https://news.example/th/rice"


def test_repeat_url_is_served_from_the_cache(client, pages):
    url = pages.add("/cached-once.html", pages.body("/moon-landing.html"))
    first = client.get("/", query_string={"url": url}).get_json()
    hits_before = pages.hits["/cached-once.html"]
    second = client.get("/", query_string={"url": url + "#comments"}).get_json()  # same page, other spelling
    assert pages.hits["/cached-once.html"] == hits_before == 1
    assert second["page"]["cached"] is True and first["page"]["cached"] is False
    assert titles(first) == titles(second)


def test_a_repeat_url_is_not_parsed_again(client, pages):
    """A page's widget asks with the same url= on every view: its checks and keys are worked out once
    (remembered per process), the answer the same; a url= refused is refused again, never remembered."""
    from function import params, recommend

    url = pages.add("/parsed-once.html", pages.body("/moon-landing.html"))
    first = client.get("/", query_string={"url": url}).get_json()
    remembered = [cached.cache_info().misses for cached in (params._fetchable_url, recommend._url_key,
                                                             recommend._request_key)]
    second = client.get("/", query_string={"url": url}).get_json()
    assert [cached.cache_info().misses for cached in (params._fetchable_url, recommend._url_key,
                                                       recommend._request_key)] == remembered
    assert second["page"]["cached"] is True and titles(first) == titles(second)
    for _ in range(2):
        refused = client.get("/", query_string={"url": "http://user@" + urlsplit(url).netloc + "/a"})
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "invalid_url"


def test_a_url_cache_size_of_0_keeps_no_page(function_env, pages):
    client = make_client({**function_env, "URL_CACHE_SIZE": "0"})  # 0: off, whatever URL_CACHE_TTL says
    url = pages.add("/never-kept.html", pages.body("/moon-landing.html"))
    for _ in range(2):
        assert client.get("/", query_string={"url": url}).get_json()["page"]["cached"] is False
    assert pages.hits["/never-kept.html"] == 2


def test_the_fetched_articles_kept_are_bounded_by_their_memory(function_env, pages):
    """URL_CACHE_SIZE articles of MAX_TEXT_CHARS with an emoji in them (4 bytes a character) had
    been 200 MB a worker: the articles are bounded by URL_CACHE_SIZE x 64 KB of memory too. Pages
    of ordinary size are all kept, as before."""
    client = make_client({**function_env, "URL_CACHE_SIZE": "8"})
    sentence = "The astronauts of the moon landing walked on the surface for hours and came back 🚀. "
    heavy = "".join(f"<p>{sentence * 12}</p>" for _ in range(120))  # ~120,000 characters: cut at 100,000
    ordinary = "".join(f"<p>{sentence.replace('🚀', 'safely') * 12}</p>" for _ in range(5))
    for kind, body, count in (("heavy", heavy, 8), ("ordinary", ordinary, 8), ("many", ordinary, 12)):
        urls = [pages.add(f"/{kind}-{i}.html", f"<html><body><article>{body}</article></body></html>".encode())
                for i in range(count)]
        for _ in range(2):
            for url in urls:
                assert client.get("/", query_string={"url": url, "k": 1}).status_code == 200
        fetched = [pages.hits[urlsplit(url).path] for url in urls]
        if kind == "heavy":  # 8 x 64 KB holds one article of 400 KB: each was fetched again
            assert sum(fetched) >= 15, fetched
        elif kind == "many":  # and never more than 8 articles, however small (weighed alone, all 12 were kept)
            assert sum(fetched) > 12, fetched
        else:
            assert fetched == [1] * 8


def test_a_fetched_pages_article_is_read_up_to_max_text_chars(function_env, pages):
    """A page's article is read up to MAX_TEXT_CHARS, as a text past it is refused: what follows (here
    an ocean's article after the moon landing's) is not what the page is matched by, nor tokenised."""
    client = make_client({**function_env, "MAX_TEXT_CHARS": "4000"})

    def paragraphs(title, chars):
        return "".join(f"<p>{html.escape(line)}</p>" for line in wiki_article(title)[:chars].split("\n")
                       if line.strip())

    url = pages.add("/moon-then-ocean.html", ("<html><body><article>" + paragraphs("Apollo 11", 6000)
                                              + paragraphs("Atlantic Ocean", 30000) + "</article></body></html>").encode())
    page = titles(client.get("/", query_string={"url": url}).get_json())
    moon = titles(client.get("/", query_string={"text": wiki_article("Apollo 11")[:4000]}).get_json())
    assert page[0] == moon[0] != "Atlantic Ocean", (page, moon)


def test_a_fetched_page_s_summary_and_text_are_kept_up_to_max_text_chars_together(function_env, pages):
    """The summary, read first (Article.words), counts toward MAX_TEXT_CHARS: each cut to it alone, a page's
    words had been up to twice it, tokenised and kept. The summary is kept whole, the text up to what is left."""
    from function.app import create_app
    from function.urls import request_key

    app = create_app({**function_env, "MAX_TEXT_CHARS": "1000"})
    standfirst = ("The island ferry will sail every hour through the night for the first time, after the port "
                  "authority agreed to pay for a second crew.")
    body = [line.strip() for line in wiki_article("Atlantic Ocean").split("\n") if len(line) > 200][:10]
    url = pages.add("/standfirst-and-a-long-text.html", (
        f"<html lang='en'><body><article><header><h1>Ferry all night</h1><p>{standfirst}</p></header>"
        + "".join(f"<p>{html.escape(line)}</p>" for line in body) + "</article></body></html>").encode())
    article, _ = app.recommender.article(request_key(url), {})
    assert article.summary == standfirst
    assert article.text == "\n\n".join(body)[: 1000 - len(standfirst)]


def test_a_page_that_cannot_be_used_is_refused_from_memory_for_a_while(client, pages):
    """Each repeat would cost a fetch and, for a large page, seconds of extraction."""
    url = pages.add("/no-article.html", b"<html><body><nav><a href='/'>Home</a></nav></body></html>")
    gone = pages.add("/gone.html", b"<html><body>gone</body></html>", status=404)
    for target, status, code in ((url, 422, "no_article_text"), (gone, 422, "upstream_status")):
        first, second = (client.get("/", query_string={"url": target}) for _ in range(2))
        assert first.status_code == second.status_code == status
        assert first.get_json() == second.get_json() and second.get_json()["error"]["code"] == code
        assert pages.hits[urlsplit(target).path] == 1
    # a server that fails is asked again: it may be back
    broken = pages.add("/broken.html", b"oops", status=500)
    assert [client.get("/", query_string={"url": broken}).status_code for _ in range(2)] == [502, 502]
    assert pages.hits["/broken.html"] >= 2


def test_a_page_asked_for_more_links_than_before_gets_them_all(client, function_env, pages):
    """A site's sidebar asks for 2 links and its footer for 20, on the same page: the page's hits are kept
    by how many were asked for, not handed to a request wanting more (as a new process answers it)."""
    page = pages.add("/more-links.html", pages.body("/moon-landing.html"))
    for url in ("https://en.wikipedia.org/wiki/Apollo_11", page):  # a member's hits, a fetched page's
        assert len(client.get("/", query_string={"url": url, "k": 2}).get_json()["results"]) == 2
        more = client.get("/", query_string={"url": url, "k": 20}).get_json()["results"]
        fresh = make_client(function_env).get("/", query_string={"url": url, "k": 20}).get_json()["results"]
        assert len(more) == 20 and [r["id"] for r in more] == [r["id"] for r in fresh], url


def test_another_spelling_answered_with_another_article_is_not_kept_for_the_page(client, pages):
    """A spelling that its server answers otherwise (an added slash, http for https, another query
    order) had had its article kept for every spelling of the page, for URL_CACHE_TTL."""
    url = pages.add("/twin.html", pages.body("/moon-landing.html"))
    pages.add("/twin.html/", b"<html><head><title>Sourdough at home</title></head><body><article><p>"
              + b"Knead the dough, let it rise twice and bake the bread in a hot oven until golden. " * 4
              + b"</p></article></body></html>")
    assert client.get("/", query_string={"url": url + "/"}).get_json()["page"]["title"] == "Sourdough at home"
    page = client.get("/", query_string={"url": url}).get_json()["page"]
    assert page["title"] == "Fifty years after the first Moon landing" and page["cached"] is False
    # what no server reads is one key: the fragment, tracking parameters
    again = client.get("/", query_string={"url": url + "?utm_source=x#top"})
    assert again.get_json()["page"]["cached"] is True


def test_request_keys_keep_what_a_server_may_answer_otherwise():
    from function.urls import normalise_url, request_key

    one = ["HTTP://Example.COM:80/a?b=2&a=1#top", "http://example.com/a?b=2&utm_source=x&a=1&fbclid=z"]
    assert {request_key(u) for u in one} == {"http://example.com/a?b=2&a=1"}
    apart = ["http://example.com/a", "https://example.com/a", "http://example.com/a/", "http://example.com/a;x",
             "http://example.com/a%3Bx", "http://example.com/a?a=1&b=2"]
    assert len({request_key(u) for u in apart}) == len(apart) and len({normalise_url(u) for u in apart}) == 3
    assert request_key("https://例え.jp/パス?q=ü") == request_key("https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9?q=%C3%BC")
    assert request_key("http://h/p?utm_source=x;id=5") != request_key("http://h/p")  # ';' may split it
    # a session id written into a link (Java's ";jsessionid=", PHP's "?PHPSESSID=") is the reader's, not the page's
    for with_session in ("http://h/p;jsessionid=A1B2?x=1", "http://h/p;JSESSIONID=A1B2?x=1&PHPSESSID=zz"):
        assert request_key(with_session) == "http://h/p?x=1" and normalise_url(with_session) == "https://h/p?x=1"
    assert request_key("http://h/p;v=2") == "http://h/p;v=2"  # other path parameters stay
    # Matomo's campaign parameters go; a site's own "pk_id" (a primary key) names its article
    assert request_key("http://h/p?pk_campaign=x&pk_kwd=y&mtm_source=z") == request_key("http://h/p")
    assert len({request_key(f"http://h/p?pk_id={i}") for i in range(3)}) == len({
        normalise_url(f"http://h/p?pk_id={i}") for i in range(3)}) == 3


def test_another_spelling_that_fails_does_not_fail_the_page(client, pages):
    """A failure is remembered for the address as asked: the page under an added slash (one key,
    another request; so too http for https, a tracking parameter) had made it fail for everyone."""
    url = pages.add("/spelt.html", pages.body("/moon-landing.html"))
    pages.add("/spelt.html/", b"nothing here", status=404)
    assert [client.get("/", query_string={"url": url + "/"}).status_code for _ in range(2)] == [422, 422]
    assert pages.hits["/spelt.html/"] == 1  # its own failure, remembered
    answer = client.get("/", query_string={"url": url})
    assert answer.status_code == 200 and answer.get_json()["source"] == "fetched"


def test_a_page_is_fetched_as_its_key_spells_it_so_a_tracking_parameter_cannot_fail_it(client, pages):
    """The key drops tracking parameters, so the fetch does too: fetched with them, a
    "?utm_content=<script>" that a web firewall refuses (403) had been the page's answer for everyone."""
    url = pages.add("/guarded.html", pages.body("/moon-landing.html"))
    hostile = "/guarded.html?utm_content=%3Cscript%3E"
    pages.add(hostile, b"blocked", status=403)
    first = client.get("/", query_string={"url": url + "?utm_content=<script>"})
    assert first.status_code == 200 and pages.hits[hostile] == 0 and pages.hits["/guarded.html"] == 1
    assert client.get("/", query_string={"url": url}).get_json()["page"]["cached"] is True


def test_a_page_server_saying_not_now_is_asked_again_after_a_few_seconds(function_env, pages, monkeypatch):
    # 429 (too many requests), 408 and 425 are the server's state, not the page's: remembered for
    # TRANSIENT_PAGE_SECONDS (each page view would fetch otherwise), not for FAILED_PAGE_SECONDS
    from function import recommend

    monkeypatch.setattr(recommend, "TRANSIENT_PAGE_SECONDS", 0.5)
    client = make_client(function_env)
    url = pages.url("/busy.html")
    pages.script("/busy.html", [(429, b"slow down"), (200, pages.body("/moon-landing.html"))])
    for _ in range(2):
        refused = client.get("/", query_string={"url": url})
        assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "upstream_status"
    assert pages.hits["/busy.html"] == 1  # the second from memory
    time.sleep(0.6)
    assert client.get("/", query_string={"url": url}).status_code == 200 and pages.hits["/busy.html"] == 2


def test_a_members_page_asked_with_a_query_of_its_own_is_not_its_own_first_result(function_env, pages, tmp_path):
    # a widget on /post.html?ref=newsletter: the page is fetched (the query makes it another address),
    # and its member had come first, at 1.0: the page itself
    from function.records import Record

    posts = {"moon": pages.body("/moon-landing.html"),
             "apollo": b"<html><body><article><p>" + b"Astronauts of the Apollo program walked on the Moon. " * 6
             + b"</p></article></body></html>",
             "rice": b"<html><body><article><p>" + b"Rice harvest prices rose across the delta this year. " * 6
             + b"</p></article></body></html>"}
    records = [Record(name, pages.add(f"/own/{name}.html", body), name, body.decode()) for name, body in posts.items()]
    client = serving(function_env, tmp_path, "own", records, engines=("lsi", "tfidf"))
    pages.add("/own/moon.html?ref=newsletter", posts["moon"])
    answer = client.get("/", query_string={"url": pages.url("/own/moon.html?ref=newsletter")}).get_json()
    ids = [r["id"] for r in answer["results"]]
    assert answer["source"] == "fetched" and ids[0] == "apollo" and "moon" not in ids


def test_a_page_with_no_word_the_corpus_knows_is_a_422_as_such_text_is(client, pages):
    url = pages.add("/unknown-words.html", b"<html><body><article><p>" + b"zzqx vvkrw pplmq " * 12 + b"</p></article>"
                    b"</body></html>")
    response = client.get("/", query_string={"url": url})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "no_known_words"
    assert error["message"].startswith("the page has no words the corpus 'wiki' knows") and "--no-above" in error["message"]


def test_a_text_spelling_a_compound_run_together_meets_its_hyphenated_spelling(function_env, tmp_path):
    """"wifi" of a store of "Wi-Fi" had been a 422 no_known_words; a store built before (revision 4)
    still answers as it was built, and its 422 still says how it reads words."""
    from function.build import BuildOptions, build
    from function.records import Record
    from function.tokens import TokenizerOptions

    posts = {"wifi": ("Wi-Fi in the library", "The Wi-Fi network covers every reading room."),
             "email": ("Answering e-mail", "Read your e-mail twice a day, not every hour."),
             "bikes": ("Fixing a bike chain", "Shift to the smallest cog and clean every roller.")}
    for name, revision in (("posts", 5), ("posts-before", 4)):
        records = [Record(id_, f"https://blog.example/{id_}", title, text) for id_, (title, text) in posts.items()]
        build([iter(records)], tmp_path / name, BuildOptions(name=name, tokenizer=TokenizerOptions(revision=revision)),
              progress=False)
    client = make_client({**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": "posts"})
    for text, expected in (("wifi", "wifi"), ("Wi-Fi", "wifi"), ("email", "email")):
        response = client.get("/", query_string={"text": text})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["results"][0]["id"] == expected, text
    unknown = client.get("/", query_string={"text": "zzqx"}).get_json()["error"]
    assert unknown["code"] == "no_known_words" and "'wi-fi' is 'wi', 'fi' and 'wifi'" in unknown["message"]
    assert "words are matched as written" in unknown["message"]
    before = client.get("/", query_string={"text": "wifi", "corpus": "posts-before"})
    assert before.status_code == 422
    error = before.get_json()["error"]
    assert error["code"] == "no_known_words" and error["message"].startswith(
        "the text has no words the corpus 'posts-before' knows: words are matched as written")
    assert "wifi" not in error["message"]  # revision 4 reads no compound joined: the message does not say it does
    answered = client.get("/", query_string={"text": "Wi-Fi", "corpus": "posts-before"}).get_json()
    assert answered["results"][0]["id"] == "wifi"


def test_a_page_refused_from_memory_is_remembered_without_its_body(client, pages):
    """What is kept of a failed page is its error: the raised error's traceback holds the fetch's
    frames, and the page's body among them (up to FETCH_MAX_BYTES, for each of URL_CACHE_SIZE pages)."""
    body = b"<html><body><!--" + b"x" * 2_000_000 + b"--></body></html>"
    urls = [pages.add(f"/all-comment-{i}.html", body) for i in range(7)]  # six bodies kept if tracebacks were
    client.get("/", query_string={"url": urls.pop()})  # the first fetch imports extraction's libraries
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for url in urls:
            assert client.get("/", query_string={"url": url}).get_json()["error"]["code"] == "no_article_text"
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert client.get("/", query_string={"url": urls[0]}).status_code == 422
    assert pages.hits["/all-comment-0.html"] == 1  # refused from memory
    assert kept < 2_000_000, kept  # less than one body


def _at_once(client, queries):
    """The JSON answers and statuses of ``queries``, all sent together from threads of their own."""
    from concurrent.futures import ThreadPoolExecutor

    def ask(query):
        response = client.application.test_client().get("/", query_string=query)
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(len(queries)) as pool:
        return list(pool.map(ask, queries))


def test_a_new_page_asked_for_at_once_is_fetched_once(function_env, pages):
    client = make_client({**function_env, "FETCH_CONCURRENCY": "6"})  # all six may wait on the fetch
    url = pages.add("/just-published.html", pages.body("/moon-landing.html"))
    pages.delays["/just-published.html"] = 0.5  # every request arrives while the first fetch runs
    answers = _at_once(client, [{"url": url}] * 6)
    assert pages.hits["/just-published.html"] == 1
    assert [status for status, _ in answers] == [200] * 6
    assert len({tuple(titles(body)) for _, body in answers}) == 1
    assert sorted(body["page"]["cached"] for _, body in answers) == [False] + [True] * 5


def test_a_failed_fetch_is_shared_by_those_who_waited_for_it(function_env, pages):
    client = make_client({**function_env, "FETCH_CONCURRENCY": "4"})
    url = pages.add("/failing.html", b"<html><body>down</body></html>", status=503)
    pages.delays["/failing.html"] = 0.5
    answers = _at_once(client, [{"url": url}] * 4)
    assert pages.hits["/failing.html"] == 1
    assert {(status, body["error"]["code"]) for status, body in answers} == {(502, "upstream_status")}
    pages.delays["/failing.html"] = 0
    assert client.get("/", query_string={"url": url}).status_code == 502 and pages.hits["/failing.html"] == 2


def test_id_query_gives_a_members_neighbours_without_itself(client):
    body = client.get("/?id=662&k=4").get_json()  # Apollo 11
    assert body["source"] == "corpus"
    assert "662" not in [r["id"] for r in body["results"]]
    assert titles(body)[0] == "Apollo 8"
    for numeric in (662, 662.0):  # a numeric id is the same id; 662.0 is the integer 662 to JSON Schema
        posted = client.post("/", json={"id": numeric, "k": 4}).get_json()
        assert [r["id"] for r in posted.get("results", [])] == [r["id"] for r in body["results"]], posted
    refused = client.post("/", json={"id": 662.5})
    assert refused.status_code == 400  # and it is told what an id may be: it may be a number
    assert refused.get_json()["error"]["message"] == "'id' must be a string or a whole number"


def test_url_of_a_corpus_member_is_answered_from_the_store_without_itself(client, pages):
    hits_before = sum(pages.hits.values())
    body = client.get("/", query_string={"url": "HTTPS://EN.wikipedia.org/wiki/Apollo_11/?utm_source=x"}).get_json()
    assert body["source"] == "corpus"
    assert sum(pages.hits.values()) == hits_before
    assert "https://en.wikipedia.org/wiki/Apollo_11" not in [r["url"] for r in body["results"]]
    assert titles(body)[0] == "Apollo 8"


def test_a_page_whose_canonical_link_names_a_member_is_not_answered_with_that_member(client, pages):
    """An AMP, print or mobile version, or the same article under another address, names the
    original as canonical: that original is the page itself and is no recommendation."""
    body = pages.body("/moon-landing.html")
    plain = client.get("/", query_string={"url": pages.add("/moon-copy.html", body)}).get_json()
    assert "Apollo 11" in titles(plain)[:3]  # what the page is most like
    for href in ("https://en.wikipedia.org/wiki/Apollo_11", "HTTPS://EN.wikipedia.org/wiki/./Apollo%5F11/"):
        page = body.replace(b"</head>", f'<link rel="canonical" href="{href}"></head>'.encode(), 1)
        answer = client.get("/", query_string={"url": pages.add(f"/moon-amp-{len(href)}.html", page)}).get_json()
        assert answer["source"] == "fetched"
        assert "Apollo 11" not in titles(answer), href
        assert titles(answer)[:2] == [t for t in titles(plain) if t != "Apollo 11"][:2]


def test_a_member_spelled_with_escapes_or_dot_segments_is_the_member(client, pages):
    """A browser's location.href escapes what a link spelled raw: the member must still be found,
    and kept out of its own answer (it had been fetched, and answered as its own first result)."""
    hits_before = sum(pages.hits.values())
    for spelling in ("https://en.wikipedia.org/wiki/./Apollo%5F11", "https://en.wikipedia.org/wiki/x/../Apollo_%31%31"):
        body = client.get("/", query_string={"url": spelling}).get_json()
        assert body["source"] == "corpus", body
        assert "https://en.wikipedia.org/wiki/Apollo_11" not in [r["url"] for r in body["results"]]
    assert sum(pages.hits.values()) == hits_before


def test_min_score_and_k(client):
    body = client.get("/?text=moon+landing+astronaut&k=20&min_score=0.1").get_json()
    assert body["results"] and all(r["score"] >= 0.1 for r in body["results"])
    assert len(body["results"]) < 20


def test_click_redirects_and_records_a_click_with_its_delay(client, function_env):
    body = client.get("/?text=moon+landing+astronaut").get_json()
    second = body["results"][1]
    response = client.get(second["click_url"].split("localhost", 1)[-1])
    assert response.status_code == 302
    assert response.headers["Location"] == second["url"]
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 1)
    assert len(clicks) == 1
    click = clicks[0]
    assert click["request_id"] == body["request_id"]
    assert click["rank"] == 2 and click["doc_id"] == second["id"] and click["engine"] == body["engine"]
    assert click["delay_ms"] >= 0


@pytest.mark.parametrize("length", [16, 63, 64, 65, 200])  # SHA-256's block is 64 bytes: a longer key is hashed
def test_a_links_tag_is_the_hmac_sha256_of_its_message_whatever_the_keys_length(length):
    import base64
    import hashlib
    import hmac
    import secrets

    from function import clicks

    key = secrets.token_bytes(length)
    for message in (b"", b"click-v1\x1fr\x1fwiki", "view-v1\x1fé\x1f🚀".encode() * 40):
        expected = base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()[:16]).rstrip(b"=")
        assert clicks._tag(key, message) == expected.decode()


def test_an_answers_links_signed_together_are_each_its_own_clicks_link():
    """clicks.sign_answer (an answer's links, what they share worked out once) gives for each target
    what sign() gives for its Click alone: the same bytes, verified by verify()."""
    from werkzeug.datastructures import MultiDict

    from function import clicks

    key = b"k" * 40
    targets = [(1, "doc 1", "https://example.com/a?b=c&d=e"), (2, "é/🚀", "https://例え.jp/パス"), (10, "x", "http://h/")]
    links = clicks.sign_answer(key, "ab12" * 8, "wiki-2", "lsi", 1790000000000, targets)
    for link, (rank, doc_id, url) in zip(links, targets, strict=True):
        click = clicks.Click("ab12" * 8, "wiki-2", "lsi", rank, doc_id, url, 1790000000000)
        assert link == clicks.sign(key, click)
        assert clicks.verify([key], MultiDict(parse_qs(link))) == click


def test_an_answers_links_are_signed_without_setting_the_key_up_again(client, function_env):
    """Each link's HMAC is a copy of one set up for the key once (hmac.new had set OpenSSL's HMAC
    up for the key again for every link); and an answer's
    links are one clicks.sign_answer, each link what clicks.sign gives for its Click."""
    from function import clicks

    client.get("/?text=moon+landing+astronaut&k=1")
    before = clicks._keyed.cache_info()
    body = client.get("/?text=moon+landing+astronaut&k=5").get_json()
    after = clicks._keyed.cache_info()
    assert len(body["results"]) == 5 and after.misses == before.misses and after.hits > before.hits
    key = function_env["CLICK_SECRET"].encode()
    for result in body["results"]:  # and the links are the function's own
        link = urlsplit(result["click_url"]).query
        args = {name: values[0] for name, values in parse_qs(link).items()}
        assert link == clicks.sign(key, clicks.Click(args["r"], args["c"], args["e"], int(args["k"]), args["d"],
                                                     args["u"], int(args["t"])))
        assert client.get(result["click_url"]).status_code == 302


def test_a_click_link_followed_again_is_recorded_once(client, function_env):
    """A replay or a link prefetcher: recorded each time, 120 replays of one link had filled
    /stats' newest clicks, and its window then held no request at all."""
    body = client.get("/?text=moon+landing+astronaut").get_json()
    first, second = (result["click_url"] for result in body["results"][:2])
    for _ in range(50):
        assert client.get(first).status_code == 302
    assert client.get(second).status_code == 302  # written after the others: events keep their order
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 2)
    assert [click["rank"] for click in clicks] == [1, 2]
    # the database's duplicates are the writer's to drop, quietly: no event counted lost
    deadline = time.monotonic() + 10
    while (events := client.get("/healthz").get_json()["events"])["buffered"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (events["buffered"], events["dropped"], events["written"]) == (0, 0, 1 + 51)


@pytest.mark.parametrize("header", [("Sec-Purpose", "prefetch"), ("Sec-Purpose", "prefetch;prerender"),
                                    ("Purpose", "prefetch"), ("X-Moz", "prefetch"),
                                    # Safari's preview of a page; a proxy's fold of two header lines into one
                                    ("X-Purpose", "preview"), ("Purpose", "prefetch, prerender")])
def test_a_prefetched_click_link_is_no_click_and_the_readers_own_click_is(client, function_env, header):
    """A site whose speculation rules prefetch the links in view (Chromium: Sec-Purpose: prefetch)
    had five clicks, a click-through of 100% and a median delay of 0.15 s for each page view, with no
    reader clicking; the reader's own click, served from the prefetch, never reached the function.
    The prefetch is refused (a browser keeps no prefetch that is not a 2xx) and the click counts."""
    body = client.get("/?text=moon+landing+astronaut").get_json()
    links = [result["click_url"] for result in body["results"]]
    for link in links:
        refused = client.get(link, headers=[header])
        assert refused.status_code == 503 and "Location" not in refused.headers
        assert refused.get_json()["error"]["code"] == "prefetch_refused"
        assert refused.headers["Cache-Control"] == "no-store"
    path, args = _click_path(client)
    args["s"] = "AAAA" + args["s"][4:] if not args["s"].startswith("AAAA") else "BBBB" + args["s"][4:]
    assert client.get(path, query_string=args, headers=[header]).status_code == 403  # still checked
    time.sleep(1.2)  # the reader clicks later: its delay is the click's, not the prefetch's
    followed = client.get(links[2])
    assert followed.status_code == 302 and followed.headers["Location"] == body["results"][2]["url"]
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 1)
    time.sleep(0.3)  # a prefetch's click, were it written, is in the same batch or before
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 1)
    assert [(c["request_id"], c["rank"]) for c in clicks] == [(body["request_id"], 3)]
    assert clicks[0]["delay_ms"] >= 1200
    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["clicks"], stats["ctr_by_rank"]["1"]["clicks"]) == (2, 1, 0)


def test_an_expired_click_link_redirects_and_records_no_click(client, function_env):
    """Past CLICK_TTL_DAYS a link still takes its reader to the article (a cached archive page had
    shown a JSON 410), but is no click: the delay of a months-old link says nothing of the answer."""
    from function import clicks

    body = client.get("/?text=moon+landing+astronaut").get_json()
    first, second = body["results"][:2]
    args = {name: values[0] for name, values in parse_qs(urlsplit(first["click_url"]).query).items()}
    old = clicks.Click(args["r"], args["c"], args["e"], int(args["k"]), args["d"], args["u"],
                       int(time.time() * 1000) - 31 * 86400 * 1000)
    expired = client.get("/click?" + clicks.sign(function_env["CLICK_SECRET"].encode(), old))
    assert expired.status_code == 302 and expired.headers["Location"] == first["url"]
    assert client.get(second["click_url"]).status_code == 302  # written after it, were it written
    recorded = wait_for_events(function_env["MONGODB"], "clicks", 1)
    assert [click["rank"] for click in recorded] == [2]


def test_a_click_link_just_inside_its_lifetime_records_its_click(client, function_env):
    """A link of 29 days (CLICK_TTL_DAYS is 30) is a click like a fresh one, with its delay: both
    kinds of link redirect, so only the event tells a live link from an expired one."""
    from function import clicks

    first = client.get("/?text=moon+landing+astronaut").get_json()["results"][0]
    args = {name: values[0] for name, values in parse_qs(urlsplit(first["click_url"]).query).items()}
    issued = int(time.time() * 1000) - 29 * 86400 * 1000
    recent = clicks.Click(args["r"], args["c"], args["e"], int(args["k"]), args["d"], args["u"], issued)
    response = client.get("/click?" + clicks.sign(function_env["CLICK_SECRET"].encode(), recent))
    assert response.status_code == 302 and response.headers["Location"] == first["url"]
    (recorded,) = wait_for_events(function_env["MONGODB"], "clicks", 1)
    assert (recorded["rank"], recorded["doc_id"]) == (1, first["id"])
    assert recorded["delay_ms"] >= 29 * 86400 * 1000


def test_a_link_issued_by_an_instance_whose_clock_is_ahead_has_no_negative_delay(client, function_env):
    """Another instance's clock may be ahead (by up to clicks.CLOCK_SKEW_MS): its link's click and view
    are recorded with a delay of 0, not one below, which had pulled the median time to click down."""
    from function import clicks

    reader = READER
    body = client.get("/?text=moon+landing+astronaut", headers=reader).get_json()
    args = {name: values[0] for name, values in parse_qs(urlsplit(body["results"][0]["click_url"]).query).items()}
    ahead = int(time.time() * 1000) + 60_000
    key = function_env["CLICK_SECRET"].encode()
    click = clicks.Click(args["r"], args["c"], args["e"], int(args["k"]), args["d"], args["u"], ahead)
    assert client.get("/click?" + clicks.sign(key, click), headers=reader).status_code == 302
    view = clicks.View(args["r"], args["c"], args["e"], ahead)
    assert client.post("/seen?" + clicks.sign_view(key, view), headers=reader).status_code == 204
    (recorded,) = wait_for_events(function_env["MONGODB"], "clicks", 1)
    (seen,) = wait_for_events(function_env["MONGODB"], "views", 1)
    assert recorded["delay_ms"] == seen["delay_ms"] == 0
    # a minute ahead is a clock's drift, within CLOCK_SKEW_MS: not marked as a clock that is off
    assert "issued_ahead_ms" not in recorded and "issued_ahead_ms" not in seen
    assert client.get("/stats").get_json()["click_delay_ms"]["median"] == 0


def test_a_link_issued_past_the_clock_skew_keeps_its_click_marked_and_one_past_the_ttl_records_none(
        client, function_env, caplog):
    """A link an hour ahead is an instance's whose clock ran ahead (it is signed): it had been a 400, the
    reader's click and view lost. Kept with a delay of 0, marked with how far ahead it was, and said;
    one ahead by more than CLICK_TTL_DAYS is as an expired one, a redirect recording nothing."""
    from function import clicks

    caplog.set_level(logging.WARNING, logger="related")
    reader = READER
    body = client.get("/?text=moon+landing+astronaut", headers=reader).get_json()
    args = [{name: values[0] for name, values in parse_qs(urlsplit(result["click_url"]).query).items()}
            for result in body["results"][:3]]
    key = function_env["CLICK_SECRET"].encode()

    def link(arg, issued):
        return "/click?" + clicks.sign(key, clicks.Click(arg["r"], arg["c"], arg["e"], int(arg["k"]), arg["d"],
                                                         arg["u"], issued))

    hour_ahead = int(time.time() * 1000) + 3600 * 1000
    response = client.get(link(args[0], hour_ahead), headers=reader)
    assert response.status_code == 302 and response.headers["Location"] == args[0]["u"]
    view = clicks.View(args[0]["r"], args[0]["c"], args[0]["e"], hour_ahead)
    assert client.post("/seen?" + clicks.sign_view(key, view), headers=reader).status_code == 204
    beyond_ttl = int(time.time() * 1000) + 31 * 86400 * 1000
    assert client.get(link(args[2], beyond_ttl), headers=reader).status_code == 302
    assert client.get(body["results"][1]["click_url"], headers=reader).status_code == 302  # recorded after it
    recorded = {click["rank"]: click for click in wait_for_events(function_env["MONGODB"], "clicks", 2)}
    assert sorted(recorded) == [1, 2]  # rank 3's link, past the TTL, recorded nothing
    (seen,) = wait_for_events(function_env["MONGODB"], "views", 1)
    for event in (recorded[1], seen):
        assert event["delay_ms"] == 0 and 3000 * 1000 < event["issued_ahead_ms"] <= 3600 * 1000, event
    assert "issued_ahead_ms" not in recorded[2]
    # said once, though a click and a view were ahead: a line for each would flood the log while a clock is off
    assert caplog.text.count("s ahead of this instance's clock") == 1


def test_a_click_link_is_one_event_whichever_worker_records_it(client, function_env):
    """The database keeps one event per link, whichever worker records it and whenever: a memory
    per worker, bounded, had let an attacker cycling through 20,001 links have each recorded again."""
    body = client.get("/?text=moon+landing+astronaut").get_json()
    link = body["results"][0]["click_url"]
    other_worker = make_client(function_env)  # a Recommender, and an event writer, of its own
    assert client.get(link).status_code == other_worker.get(link).status_code == 302
    assert other_worker.get(body["results"][1]["click_url"]).status_code == 302  # written after the others
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 2)
    assert sorted(click["rank"] for click in clicks) == [1, 2]


def test_a_rotated_click_secret_still_follows_the_links_signed_with_a_previous_key(function_env):
    """Rotating CLICK_SECRET had made every link on readers' pages a 403, their clicks lost. With the
    old key in CLICK_SECRET_PREVIOUS its click and seen links are followed and recorded, and new
    links are signed with the new key alone; a key not listed is refused, as before."""
    mongodb, reader = function_env["MONGODB"], READER
    old_key, new_key = "the-old-click-key-0123", "the-new-click-key-4567"
    before = make_client({**function_env, "CLICK_SECRET": old_key})
    old = before.get("/?text=moon+landing+astronaut", headers=reader).get_json()
    unlisted = make_client({**function_env, "CLICK_SECRET": new_key})
    rotated = make_client({**function_env, "CLICK_SECRET": new_key,
                           "CLICK_SECRET_PREVIOUS": f"an-even-older-click-key-89, {old_key}"})

    refused_click = unlisted.get(old["results"][1]["click_url"], headers=reader)
    refused_view = unlisted.post(old["seen_url"], headers=reader)
    assert refused_click.status_code == refused_view.status_code == 403
    assert "Location" not in refused_click.headers
    assert refused_click.get_json()["error"]["code"] == "invalid_click_signature"
    assert refused_view.get_json()["error"]["code"] == "invalid_seen_signature"

    followed = rotated.get(old["results"][0]["click_url"], headers=reader)
    assert followed.status_code == 302 and followed.headers["Location"] == old["results"][0]["url"]
    assert rotated.post(old["seen_url"], headers=reader).status_code == 204

    new = rotated.get("/?text=greek+philosopher", headers=reader).get_json()
    for link in (new["results"][0]["click_url"], new["seen_url"]):  # not the old key's
        assert before.open(link, method="POST" if "/seen?" in link else "GET").status_code == 403
    # the new key alone follows them; written after the refused click, were it written
    assert unlisted.get(new["results"][0]["click_url"], headers=reader).status_code == 302
    assert unlisted.post(new["seen_url"], headers=reader).status_code == 204

    recorded = wait_for_events(mongodb, "clicks", 2)
    assert sorted(click["_id"] for click in recorded) == sorted([f"{old['request_id']}-1", f"{new['request_id']}-1"])
    views = wait_for_events(mongodb, "views", 2)
    assert sorted(view["_id"] for view in views) == sorted([old["request_id"], new["request_id"]])


def test_a_click_secret_with_a_space_at_its_end_verifies_its_links_once_moved_to_the_previous_keys(function_env):
    """CLICK_SECRET is used as given, a pasted space too; CLICK_SECRET_PREVIOUS's entries were read
    without their spaces, so moving that key there had made every link it signed a 403."""
    reader = {"User-Agent": BROWSER_AGENT}
    padded_key = "the-old-click-key-0123 "
    before = make_client({**function_env, "CLICK_SECRET": padded_key})
    old = before.get("/?text=moon+landing+astronaut", headers=reader).get_json()
    rotated = make_client({**function_env, "CLICK_SECRET": "the-new-click-key-4567",
                           "CLICK_SECRET_PREVIOUS": f"an-even-older-click-key-89, {padded_key}"})
    followed = rotated.get(old["results"][0]["click_url"], headers=reader)
    assert followed.status_code == 302 and followed.headers["Location"] == old["results"][0]["url"]
    assert rotated.post(old["seen_url"], headers=reader).status_code == 204


def test_a_click_secret_rid_of_its_pasted_space_verifies_the_links_signed_with_it(function_env):
    """The space at the end of CLICK_SECRET taken out, the key as it was moved to the previous ones: the
    entry, the new key but for its space, had been left out as the signing key, with its spaced form,
    and every link signed with that form was a 403."""
    reader = {"User-Agent": BROWSER_AGENT}
    key = "the-click-key-0123456"
    before = make_client({**function_env, "CLICK_SECRET": f"{key} "})
    old = before.get("/?text=moon+landing+astronaut", headers=reader).get_json()
    fixed = make_client({**function_env, "CLICK_SECRET": key, "CLICK_SECRET_PREVIOUS": f"{key} "})
    followed = fixed.get(old["results"][0]["click_url"], headers=reader)
    assert followed.status_code == 302 and followed.headers["Location"] == old["results"][0]["url"]


def test_requests_are_logged_with_results_and_timings(client, function_env):
    body = client.get("/?text=moon+landing+astronaut").get_json()
    events = wait_for_events(function_env["MONGODB"], "requests", 1)
    assert len(events) == 1
    event = events[0]
    assert event["_id"] == body["request_id"] and event["status"] == 200
    assert event["corpus"] == "wiki" and event["engine"] == body["engine"]
    assert [r["id"] for r in event["results"]] == [r["id"] for r in body["results"]]
    assert event["total_ms"] > 0 and len(event["text_sha256"]) == 64
    assert "text" not in event  # a hash, not the text


def test_stats_reflect_requests_and_clicks(client, function_env):
    for text in ("moon landing astronaut", "greek philosopher", "atlantic ocean"):
        body = client.get("/", query_string={"text": text}).get_json()
    client.get(body["results"][0]["click_url"])
    client.get("/?k=0&text=x")  # an error: counted apart
    wait_for_events(function_env["MONGODB"], "requests", 4)
    wait_for_events(function_env["MONGODB"], "clicks", 1)
    stats = client.get("/stats").get_json()
    assert stats["requests"] == 3 and stats["clicks"] == 1
    assert stats["ctr"] == pytest.approx(1 / 3, abs=1e-3)
    assert stats["ctr_by_rank"]["1"]["clicks"] == 1 and stats["ctr_by_rank"]["2"]["clicks"] == 0
    assert stats["latency_ms"]["p50"] > 0 and stats["latency_ms"]["p95"] >= stats["latency_ms"]["p50"]
    assert stats["click_delay_ms"]["median"] >= 0
    assert 0 < stats["mean_top_score"] <= 1
    assert stats["engines"][body["engine"]]["requests"] == 3
    assert client.get("/stats?corpus=wiki").get_json()["requests"] == 3


def test_crawlers_answers_and_clicks_are_kept_apart_from_the_readers_figures(client, function_env):
    """A search engine's renderer runs the widget (its answers were counted as page views nobody
    read) and crawlers follow click links: marked by their User-Agent, counted apart. A backend's
    HTTP library is on crawlerdetect's list too, but asks for a reader's page view: a reader's."""
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    reader = READER
    read = client.get("/?text=moon+landing+astronaut", headers=reader).get_json()
    crawled = client.get("/?text=greek+philosopher", headers={"User-Agent": googlebot}).get_json()
    backend = client.get("/?text=atlantic+ocean", headers={"User-Agent": "WordPress/6.7; https://blog.example"})
    backend = backend.get_json()
    assert client.get(crawled["results"][0]["click_url"], headers={"User-Agent": googlebot}).status_code == 302
    # a link checker first, then the reader: the reader's click is not the checker's duplicate
    assert client.get(read["results"][1]["click_url"], headers={"User-Agent": "curl/8.5.0"}).status_code == 302
    assert client.get(read["results"][1]["click_url"], headers=reader).status_code == 302
    assert client.get(backend["results"][0]["click_url"], headers=reader).status_code == 302
    assert client.get(backend["results"][2]["click_url"], headers={"User-Agent": ""}).status_code == 302

    requests = {e["_id"]: e for e in wait_for_events(function_env["MONGODB"], "requests", 3)}
    clicks = wait_for_events(function_env["MONGODB"], "clicks", 5)
    assert requests[crawled["request_id"]]["bot"] == "Googlebot"
    assert "bot" not in requests[read["request_id"]] and "bot" not in requests[backend["request_id"]]
    assert sorted((c["request_id"], c["rank"], c.get("bot", "")) for c in clicks) == sorted([
        (crawled["request_id"], 1, "Googlebot"), (read["request_id"], 2, "curl"), (read["request_id"], 2, ""),
        (backend["request_id"], 1, ""), (backend["request_id"], 3, "no User-Agent")])
    assert not any("user_agent" in event for event in [*requests.values(), *clicks])  # a name, not the agent
    # an 8 KB agent is read in its first characters (AGENT_CHARS, as buffered events keep it), where the
    # crawler says who it is
    long_agent = googlebot + " " + "x" * 8000
    assert client.get("/?text=moon+landing", headers={"User-Agent": long_agent}).status_code == 200
    assert [e.get("bot") for e in wait_for_events(function_env["MONGODB"], "requests", 4)].count("Googlebot") == 2

    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["clicks"]) == (2, 2)
    assert stats["ctr"] == 1.0 and stats["ctr_by_rank"]["2"]["clicks"] == 1
    assert stats["left_out"] == {"crawler_requests": 2, "crawler_clicks": 3,
                                 "try_it_answers": 0, "other_clicks": 0, "unverified_clicks": 0}
    page = client.get("/dashboard", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert 'data-left-out="true"' in page and "2 answers and 3 clicks\n      by crawlers" in page


CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
          "Safari/537.36")
SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Mobile/15E148 Safari/604.1")
OLD_FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:78.0) Gecko/20100101 Firefox/78.0"
WEBVIEW = ("Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
           "Chrome/131.0.6778.39 Mobile Safari/537.36")
NAVIGATION = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


def test_clicks_that_claim_a_browser_without_its_fetch_metadata_are_counted_apart_and_readers_kept(client,
                                                                                                  function_env):
    """A script giving itself a browser's User-Agent (requests, curl -A) had its clicks counted as readers':
    a browser that sends Fetch Metadata (Chrome 76+, Firefox 90+, Safari 16.4+) sends it with every click.
    Counted apart, kept, and a reader's own click on the same link still counts; Safari (which never sends
    Sec-Fetch-User), an older browser, an app's WebView and a click recorded before are readers'."""
    body = client.get("/", query_string={"text": "moon landing astronaut", "k": 8}, headers=READER).get_json()
    links = [result["click_url"] for result in body["results"]]
    followed = [
        (1, {"User-Agent": BROWSER_AGENT}),  # the agent alone: a script's
        (1, READER),  # then the reader, on the same link
        (2, {"User-Agent": CHROME, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors",
             "Sec-Fetch-Dest": "empty"}),  # a page's fetch() of the link: no navigation
        (3, {"User-Agent": CHROME, **NAVIGATION}),  # a script following it (location.href, meta refresh)
        (4, {"User-Agent": SAFARI, **NAVIGATION}),  # Safari: no Sec-Fetch-User, ever
        (5, {"User-Agent": OLD_FIREFOX}),  # before Fetch Metadata
        (6, {"User-Agent": WEBVIEW}),  # an app's WebView: not judged
        (7, {"User-Agent": CHROME, **NAVIGATION, "Sec-Fetch-Site": "same-site", "Sec-Fetch-User": "?1"}),
    ]
    for rank, headers in followed:
        response = client.get(links[rank - 1], headers=headers)
        assert response.status_code == 302 and response.headers["Location"] == body["results"][rank - 1]["url"]
    # an <a ping> naming a click link posts to it: refused, no click
    ping = {"User-Agent": CHROME, "Content-Type": "text/ping", "Ping-To": body["results"][7]["url"]}
    assert client.post(links[7], headers=ping, data="PING").status_code == 405
    clicks = wait_for_events(function_env["MONGODB"], "clicks", len(followed))
    recorded = sorted((c["rank"], c["_id"].removeprefix(body["request_id"]), c["sec_fetch"], c.get("unverified"))
                      for c in clicks)
    assert recorded == [(1, "-1", "xn1", None), (1, "-1-unverified", "---", "no_fetch_metadata"),
                        (2, "-2-unverified", "xc-", "not_a_navigation"),
                        (3, "-3-unverified", "xn-", "no_user_activation"), (4, "-4", "xn-", None),
                        (5, "-5", "---", None), (6, "-6", "---", None), (7, "-7", "sn1", None)]
    # a click written before clicks recorded their Fetch Metadata counts as it did
    database = pymongo.MongoClient(function_env["MONGODB"], tz_aware=True).get_default_database()
    database["clicks"].insert_one({"_id": f"{body['request_id']}-8", "ts": clicks[0]["ts"], "rank": 8,
                                   "request_id": body["request_id"], "corpus": "wiki", "engine": body["engine"],
                                   "doc_id": "x", "url": "x", "delay_ms": 1000})

    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["clicks"]) == (1, 6)
    assert [stats["ctr_by_rank"][str(rank)]["clicks"] for rank in range(1, 9)] == [1, 0, 0, 1, 1, 1, 1, 1]
    assert stats["left_out"] == {"crawler_requests": 0, "crawler_clicks": 0,
                                 "try_it_answers": 0, "other_clicks": 0, "unverified_clicks": 3}
    page = client.get("/dashboard", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "and 3 clicks claiming a browser without what that browser sends" in page


def test_a_browsers_click_over_plain_http_is_a_readers_and_over_https_is_judged(client, function_env):
    """Browsers send Fetch Metadata only to https (and loopback) addresses: a click link of a plain http
    address comes without it from every reader, and is not judged by it; behind a proxy that says https
    (X-Forwarded-Proto), or under an https PUBLIC_URL, it is."""
    body = client.get("/", query_string={"text": "moon landing astronaut"}, headers=READER).get_json()
    agent = {"User-Agent": BROWSER_AGENT, "Host": "related.example"}
    assert client.get(body["results"][0]["click_url"], headers=agent).status_code == 302
    assert client.get(body["results"][1]["click_url"],
                      headers={**agent, "X-Forwarded-Proto": "https"}).status_code == 302
    clicks = sorted(wait_for_events(function_env["MONGODB"], "clicks", 2), key=lambda c: c["rank"])
    assert [(c["rank"], c.get("unverified")) for c in clicks] == [(1, None), (2, "no_fetch_metadata")]
    public = make_client({**function_env, "PUBLIC_URL": "https://related.example"})
    public.get(body["results"][2]["click_url"], headers=agent)
    third = [c for c in wait_for_events(function_env["MONGODB"], "clicks", 3) if c["rank"] == 3]
    assert [c.get("unverified") for c in third] == ["no_fetch_metadata"]


def test_user_agents_are_read_within_a_budget_and_remembered(caplog, monkeypatch):
    """A new agent with every click (a crafted run of letters costs one pattern 17-65 ms) had made the
    event writer classify 60 events a second and its buffer fill: past the budget of the second, an
    agent is not read (its event counts as a reader's, which the log says), and agents read before are
    remembered."""
    from function import crawlers
    from function.crawlers import AGENT_CHARS, Reader

    # a host booted 5 s ago (a fresh microVM): its first unread agent had not been warned of for a minute
    clock = types.SimpleNamespace(monotonic=lambda: 5.0, perf_counter=time.perf_counter)
    monkeypatch.setattr(crawlers, "time", clock)  # the module's clock only: other threads keep the real one

    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    spent = Reader(budget=0.0)
    assert spent(googlebot) is None and spent.unread == 1
    assert "1 new User-Agents left unread" in caplog.text
    reader = Reader()
    assert reader(googlebot) == "Googlebot" and reader.unread == 0
    reader.budget = 0.0
    assert reader(googlebot) == "Googlebot" and reader("Mozilla/5.0 (compatible; bingbot/2.0)") is None
    assert reader.unread == 1
    # Googlebot's smartphone agent names it near its end: within the characters read
    smartphone = ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    assert Reader()(smartphone[:AGENT_CHARS]) == "Googlebot"


def test_the_budget_is_each_seconds_and_its_warning_counts_the_agents_unread_since_the_last(caplog, monkeypatch):
    """Each reading's cost adds up within its second, and a new second starts a new budget (one spent
    for good had left every new agent unread from then on). Agents read are remembered, more than one;
    the unread are warned of once a minute, each warning counting those since the last one."""
    import itertools

    from function import crawlers
    from function.crawlers import Reader

    now = [5.0]
    ticks = itertools.count()  # each reading costs 0.03 s: two of them spend the 0.05 s of a second
    clock = types.SimpleNamespace(monotonic=lambda: now[0], perf_counter=lambda: next(ticks) * 0.03)
    monkeypatch.setattr(crawlers, "time", clock)  # the module's clock only: other threads keep the real one
    google, bing, yandex, duck = (f"Mozilla/5.0 (compatible; {name}; +http://example.com/bot)"
                                  for name in ("Googlebot/2.1", "bingbot/2.0", "YandexBot/3.0", "DuckDuckBot/1.1"))
    reader = Reader()
    assert (reader(google), reader(bing), reader(yandex), reader(duck)) == ("Googlebot", "bingbot", None, None)
    assert reader.unread == 2 and (reader(google), reader(bing)) == ("Googlebot", "bingbot")  # remembered, both
    assert caplog.text.count("left unread") == 1 and "1 new User-Agents left unread" in caplog.text
    now[0] = 6.0  # a new second, a new budget
    assert (reader(yandex), reader(duck)) == ("Yandex", "DuckDuckBot")
    assert reader("Mozilla/5.0 (compatible; Applebot/0.1)") is None and reader.unread == 3
    assert caplog.text.count("left unread") == 1  # within the minute: said once
    now[0] = 70.0
    reader.budget = 0.0
    assert reader("Mozilla/5.0 (compatible; Applebot/0.1)") is None and reader.unread == 4
    assert caplog.text.count("left unread") == 2 and "3 new User-Agents left unread since the last" in caplog.text


def test_a_crawler_named_past_the_characters_read_counts_as_a_reader(client, function_env):
    """An agent is read in its first AGENT_CHARS characters (an 8 KB one had been held whole in the
    buffer, and read whole at a regular expression's cost): a crawler named past them is a reader."""
    from function.crawlers import AGENT_CHARS, Reader

    agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " + "AppleWebKit/537.36 (KHTML, like Gecko) " * 6 + "Googlebot/2.1"
    assert agent.index("Googlebot") > AGENT_CHARS and Reader()(agent) == "Googlebot"  # read whole, a crawler
    answer = client.get("/?text=moon+landing+astronaut", headers={"User-Agent": agent}).get_json()
    assert client.get(answer["results"][0]["click_url"], headers={"User-Agent": agent}).status_code == 302
    (request,) = wait_for_events(function_env["MONGODB"], "requests", 1)
    (click,) = wait_for_events(function_env["MONGODB"], "clicks", 1)
    assert "bot" not in request and "bot" not in click and click["_id"] == f"{answer['request_id']}-1"
    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["clicks"], stats["left_out"]["crawler_requests"]) == (1, 1, 0)


def test_compiling_the_crawler_patterns_is_not_charged_to_reading_agents():
    """A worker's first agent compiles crawlerdetect's 1,400 patterns (36-80 ms, once a process): charged
    to the second's budget of 50 ms, it had left the other new agents of a new worker's first second
    unread (a crawler's events counted as readers') and logged an attack warning at every start."""
    import subprocess
    import sys

    from conftest import ROOT

    script = ("from function.crawlers import Reader\n"
              "reader = Reader(budget=0.005)\n"  # a tenth of the default: what a reading costs is far below
              "print(reader('Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'),\n"
              "      reader('Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)'), reader.unread)\n")
    # a process of its own: the patterns are compiled once a process, and this one's tests have done it
    said = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert said.stdout.split() == ["Googlebot", "bingbot", "0"], said.stderr


def test_an_answers_seen_link_records_one_view_and_stats_count_the_click_through_of_answers_seen(client,
                                                                                                 function_env):
    """The widget posts an answer's seen_url once its list is in view: a list below the fold that nobody
    scrolled to had counted as shown. A view is signed as a click is, under a tag of its own kind."""
    from function import clicks
    from function.stats import wilson

    mongodb = function_env["MONGODB"]
    reader = READER
    answers = [client.get("/", query_string={"text": text}, headers=reader).get_json()
               for text in ("moon landing astronaut", "greek philosopher", "atlantic ocean")]
    seen_paths = [urlsplit(answer["seen_url"]) for answer in answers]
    assert all(answer["seen_url"].startswith("http://localhost/seen?") for answer in answers)
    seen = [f"{link.path}?{link.query}" for link in seen_paths]
    for path in (seen[0], seen[0], seen[1]):  # the first twice: one view an answer
        response = client.post(path, headers=reader)
        assert response.status_code == 204 and response.get_data() == b""
    assert client.post(seen[2], headers={"User-Agent": "curl/8.5.0"}).status_code == 204  # a crawler's
    assert client.get(seen[0]).status_code == 405
    for path in (answers[0]["results"][0]["click_url"], answers[2]["results"][1]["click_url"]):
        assert client.get(path, headers=reader).status_code == 302

    args = {name: values[0] for name, values in parse_qs(seen_paths[2].query).items()}
    forged = client.post("/seen?" + urlencode({**args, "r": answers[0]["request_id"]}), headers=reader)
    assert forged.status_code == 403 and forged.get_json()["error"]["code"] == "invalid_seen_signature"
    # a click link's fields and tag are no seen link
    click_args = {name: values[0] for name, values in parse_qs(urlsplit(answers[0]["results"][0]["click_url"]).query).items()}
    as_view = {name: click_args[name] for name in ("r", "c", "e", "t", "s")}
    assert client.post("/seen?" + urlencode(as_view), headers=reader).status_code == 403
    # nor are they with the click's engine, rank, doc id and url run into one field at the separator its
    # tag's message puts between them (that message and a view's would be one text, were the kinds one)
    joined = {**as_view, "e": "\x1f".join(click_args[name] for name in ("e", "k", "d", "u"))}
    assert client.post("/seen?" + urlencode(joined), headers=reader).status_code == 403
    missing = client.post("/seen?" + urlencode({k: v for k, v in args.items() if k != "t"}), headers=reader)
    assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "invalid_seen_link"
    old = clicks.View(args["r"], args["c"], args["e"], int(time.time() * 1000) - 31 * 86400 * 1000)
    expired = client.post("/seen?" + clicks.sign_view(function_env["CLICK_SECRET"].encode(), old), headers=reader)
    assert expired.status_code == 204  # a page cached past CLICK_TTL_DAYS: nothing recorded

    views = wait_for_events(mongodb, "views", 3)
    assert sorted((v["_id"], v.get("bot", "")) for v in views) == sorted([
        (answers[0]["request_id"], ""), (answers[1]["request_id"], ""), (answers[2]["request_id"] + "-bot", "curl")])
    assert all(v["delay_ms"] >= 0 and v["corpus"] == "wiki" for v in views)
    wait_for_events(mongodb, "clicks", 2)
    stats = client.get("/stats").get_json()
    # seen: the first two (the third's view was a crawler's); clicked: the first (seen) and the third (not)
    assert (stats["requests"], stats["seen"], stats["clicks"]) == (3, 2, 2)
    assert stats["ctr"] == pytest.approx(2 / 3, abs=1e-4) and stats["ctr_seen"] == 0.5
    assert stats["ctr_seen_ci95"] == wilson(1, 2)  # over the answers seen, as ctr_seen is
    assert stats["engines"][answers[0]["engine"]]["seen"] == 2
    empty = client.get("/?text=moon+landing&min_score=0.9999").get_json()
    assert empty["results"] == [] and "seen_url" not in empty  # nothing to see


def test_click_through_counts_answers_shown_and_the_clicks_on_them(client, function_env):
    """An empty answer (min_score) shows nothing; a click counts with its answer, so a day's figures
    leave out a click on yesterday's answer (a tab left open overnight, where a day had held more
    clicks than answers clicked); the try-it page's answers are the site owner's, not a reader's."""
    mongodb = function_env["MONGODB"]
    reader = READER
    today = client.get("/?text=moon+landing+astronaut", headers=reader).get_json()
    yesterday = client.get("/?text=greek+philosopher", headers=reader).get_json()
    empty = client.get("/?text=atlantic+ocean&min_score=0.9999", headers=reader).get_json()
    assert empty["results"] == []
    tried = client.get("/?text=alkali+metal", headers={**reader, "Accept": "text/html"})
    assert tried.status_code == 200 and "/click?" in tried.get_data(as_text=True)
    events = wait_for_events(mongodb, "requests", 4)
    db = pymongo.MongoClient(mongodb).get_default_database()
    db["requests"].update_one({"_id": yesterday["request_id"]}, {"$set": {"ts": events[0]["ts"] - timedelta(days=1, minutes=1)}})
    assert [e.get("via") for e in events].count("try-it") == 1
    for link in (today["results"][0]["click_url"], yesterday["results"][1]["click_url"]):
        assert client.get(link, headers=reader).status_code == 302
    wait_for_events(mongodb, "clicks", 2)

    day = client.get("/stats?days=1").get_json()
    assert (day["requests"], day["empty_answers"], day["clicks"]) == (2, 1, 1)
    same_day = client.get("/stats?days=%EF%BC%91").get_json()  # "days=１" is read as "k=５" is: 1
    assert (same_day["requests"], same_day["empty_answers"], same_day["clicks"]) == (2, 1, 1)
    assert day["ctr"] == 1.0 and day["clicks_per_request"] == 1.0  # 1 of the 1 answer shown
    assert day["ctr_by_rank"]["1"] == {"ctr": 1.0, "ci95": day["ctr_by_rank"]["1"]["ci95"], "clicks": 1, "shown": 1}
    assert day["left_out"] == {"crawler_requests": 0, "crawler_clicks": 0,
                               "try_it_answers": 1, "other_clicks": 1, "unverified_clicks": 0}
    ever = client.get("/stats").get_json()
    assert (ever["requests"], ever["empty_answers"], ever["clicks"], ever["ctr"]) == (3, 1, 2, 1.0)
    assert ever["ctr_by_rank"]["2"]["clicks"] == 1 and ever["left_out"]["other_clicks"] == 0
    page = client.get("/dashboard?days=1", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "1 empty" in page and "1 answer of the try-it page" in page and "1 click on answers not counted" in page
def test_error_answers_are_errors_whoever_met_them_not_crawlers_or_try_it_answers(client, function_env):
    """A crawler's error and the try-it page's are counted in ``errors``, as every error is: not
    again in left_out, whose crawlers' and try-it answers are answers (a 200)."""
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    unknown = "/?text=zzqxw+vvqzk"  # no word the corpus knows: a 422
    assert client.get(unknown, headers={"User-Agent": googlebot}).status_code == 422
    assert client.get(unknown, headers={"User-Agent": BROWSER_AGENT, "Accept": "text/html"}).status_code == 422
    events = wait_for_events(function_env["MONGODB"], "requests", 2)
    assert sorted((e.get("bot", ""), e.get("via", "")) for e in events) == [("", "try-it"), ("Googlebot", "")]
    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["errors"]) == (0, 2)
    assert stats["left_out"] == {"crawler_requests": 0, "crawler_clicks": 0,
                                 "try_it_answers": 0, "other_clicks": 0, "unverified_clicks": 0}


def test_stats_figures_are_those_of_the_events_stored(client, function_env):
    """Each figure of /stats from events as the event writer stores them: latency percentiles by
    nearest rank, click-through as the share of answers clicked at least once (not clicks per
    answer), each rank shown by every answer that had that many results, and a click whose answer
    is not among those read left out (counted in left_out)."""
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).replace(microsecond=0)
    answer = {"status": 200, "corpus": "wiki", "engine": "lsi", "top_score": 0.5}
    requests = [{"_id": f"r{i}", "ts": now - timedelta(seconds=i + 1), "total_ms": float(i + 1),
                 "n_results": 5 if i < 10 else 3, **answer} for i in range(20)]
    click = {"ts": now, "corpus": "wiki", "engine": "lsi", "delay_ms": 1000}
    clicks = [{"_id": f"c{i}", "request_id": request_id, "rank": rank, **click}
              for i, (request_id, rank) in enumerate([("r0", 1), ("r0", 5), ("r12", 2), ("gone", 1)])]
    with pymongo.MongoClient(function_env["MONGODB"], tz_aware=True) as mongo:
        mongo.get_default_database()["requests"].insert_many(requests)
        mongo.get_default_database()["clicks"].insert_many(clicks)
    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["errors"], stats["clicks"], stats["left_out"]["other_clicks"]) == (20, 0, 3, 1)
    assert stats["ctr"] == 0.1 and stats["clicks_per_request"] == 0.15  # r0 and r12 of 20 answers; 3 clicks
    assert stats["latency_ms"] == {"p50": 10.0, "p95": 19.0}  # the 10th and 19th of 1..20 ms
    by_rank = {rank: (figures["clicks"], figures["shown"]) for rank, figures in stats["ctr_by_rank"].items()}
    assert by_rank == {"1": (1, 20), "2": (1, 20), "3": (0, 20), "4": (0, 10), "5": (1, 10)}


def test_click_through_by_score_counts_each_link_shown_in_the_band_of_its_score(client, function_env):
    """A site owner chooses min_score by the click-through of links by their score: each link shown
    counts in its band, [low, high), a click in the band of the link it followed (its answer's
    results, by rank). A crawler's click, the try-it page's answer and a click on it count nowhere."""
    import html
    import re
    from datetime import datetime, timezone

    from function.stats import score_bands, wilson

    mongodb = function_env["MONGODB"]
    reader, googlebot = READER, {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}
    read = client.get("/?text=moon+landing+astronaut&k=5", headers=reader).get_json()
    tried = client.get("/?text=greek+philosopher&k=5", headers={**reader, "Accept": "text/html"}).get_data(as_text=True)
    tried_link = html.unescape(re.search(r'class="result-title" href="([^"]+)"', tried).group(1))
    for link, agent in ((read["results"][1]["click_url"], reader), (read["results"][4]["click_url"], googlebot),
                        (tried_link, reader)):
        assert client.get(link, headers=agent).status_code == 302
    wait_for_events(mongodb, "requests", 2)
    wait_for_events(mongodb, "clicks", 3)
    # the reader's answer with scores of our own, and two more answers as the event writer stores them
    now = datetime.now(timezone.utc)
    answer = {"ts": now, "status": 200, "corpus": "wiki", "engine": read["engine"], "engine_named": False,
              "total_ms": 1.0}
    scored = {read["request_id"]: [0.45, 0.3, 0.12, 0.06, 0.01], "r1": [1.0, 0.5, 0.19, 0.05, -0.01],
              "r2": [0.35, 0.1, 0.0999], "r3": []}  # r3: an empty answer shows nothing
    clicked = [("r1", 1), ("r1", 2), ("r1", 5), ("r2", 1), ("r2", 3)]
    with pymongo.MongoClient(mongodb, tz_aware=True) as mongo:
        db = mongo.get_default_database()
        db["requests"].update_one({"_id": read["request_id"]}, {"$set": {"results": [
            {"id": result["id"], "score": score} for result, score in zip(read["results"], scored[read["request_id"]])],
            "score_bands": score_bands(scored[read["request_id"]])}})  # what /stats reads of it
        db["requests"].insert_many([{**answer, "_id": request_id, "n_results": len(scores),
                                     "top_score": scores[0] if scores else None,
                                     "results": [{"id": f"d{rank}", "score": score} for rank, score in enumerate(scores, 1)]}
                                    for request_id, scores in scored.items() if request_id != read["request_id"]])
        db["clicks"].insert_many([{"_id": f"{request_id}-{rank}", "ts": now, "request_id": request_id, "rank": rank,
                                   "corpus": "wiki", "engine": read["engine"], "delay_ms": 1000}
                                  for request_id, rank in clicked])

    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["clicks"]) == (4, 6)
    assert stats["left_out"] == {"crawler_requests": 0, "crawler_clicks": 1,
                                 "try_it_answers": 1, "other_clicks": 1, "unverified_clicks": 0}
    by_score = {band: (row["shown"], row["clicks"], row["ctr"]) for band, row in stats["ctr_by_score"].items()}
    assert by_score == {  # shown (the scores), clicked: by hand
        "0-0.05": (2, 1, 0.5),  # 0.01 (the crawler's), -0.01 (clicked)
        "0.05-0.1": (3, 1, 0.3333),  # 0.06, 0.05, 0.0999 (clicked)
        "0.1-0.2": (3, 0, 0.0),  # 0.12, 0.19, 0.1
        "0.2-0.3": (0, 0, None),
        "0.3-0.5": (3, 2, 0.6667),  # 0.45, 0.3 (clicked), 0.35 (clicked)
        "0.5-1": (2, 2, 1.0),  # 1.0 (clicked), 0.5 (clicked)
    }
    assert list(by_score) == list(stats["ctr_by_score"])  # low to high
    for row in stats["ctr_by_score"].values():
        assert row["ci95"] == wilson(row["clicks"], row["shown"])  # None with none shown
    assert stats["engines"][read["engine"]]["ctr_by_score"] == stats["ctr_by_score"]
    assert stats["ctr_by_score_by_engine"] == {read["engine"]: stats["ctr_by_score"]}  # one engine: the same


def test_an_answer_records_the_band_of_each_link_and_older_answers_without_them_count_alike(client, function_env):
    """/stats reads an answer's ``score_bands`` (one band digit a rank), not its ``results``: the answer event
    the function writes has them, by the scores it answered; an answer written before them (none recorded)
    counts its links in the same bands, read from its results."""
    from function.stats import SCORE_BANDS, band_index

    mongodb = function_env["MONGODB"]
    answers = [client.get("/", query_string={"text": text, "k": 8}, headers=READER).get_json()
               for text in ("moon landing astronaut", "greek philosopher", "atlantic ocean")]
    for answer, rank in zip(answers, (1, 3, 8)):
        assert client.get(answer["results"][rank - 1]["click_url"],
                          headers=READER).status_code == 302
    events = {event["_id"]: event for event in wait_for_events(mongodb, "requests", 3)}
    wait_for_events(mongodb, "clicks", 3)
    for answer in answers:
        bands = events[answer["request_id"]]["score_bands"]
        assert [SCORE_BANDS[int(digit)] for digit in bands] == [SCORE_BANDS[band_index(r["score"])] for r in answer["results"]]
    recorded = client.get("/stats").get_json()
    assert sum(row["shown"] for row in recorded["ctr_by_score"].values()) == sum(len(a["results"]) for a in answers)
    assert sum(row["clicks"] for row in recorded["ctr_by_score"].values()) == 3
    with pymongo.MongoClient(mongodb) as mongo:
        mongo.get_default_database()["requests"].update_many({}, {"$unset": {"score_bands": ""}})
    older = client.get("/stats").get_json()
    assert older["ctr_by_score"] == recorded["ctr_by_score"]
    assert older["engines"] == recorded["engines"]
    assert older["ctr_by_score_by_engine"] == recorded["ctr_by_score_by_engine"] != {}


def test_stats_of_a_corpus_nobody_serves_or_asked_for_is_a_404(client, function_env):
    """A typo in ?corpus= had answered figures of zero, which read as a corpus nobody asks for."""
    response = client.get("/stats?corpus=wikki")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "unknown_corpus" and "'wikki'" in error["message"] and "served: wiki" in error["message"]
    page = client.get("/dashboard?corpus=wikki")
    html = page.get_data(as_text=True)
    assert page.status_code == 404 and "unknown corpus &#39;wikki&#39;" in html
    # the page heads no figures for the typo, and its form offers the served corpora, not the typo
    assert "Corpus <b>wikki</b>" not in html and 'value="wikki"' not in html and 'value="wiki"' in html
    assert client.get("/stats?corpus=wiki").get_json()["requests"] == 0  # served, not asked for yet
    # a corpus no longer served keeps its figures while its events last
    client.get("/", query_string={"text": "moon landing astronaut"})
    (event,) = wait_for_events(function_env["MONGODB"], "requests", 1)
    with pymongo.MongoClient(function_env["MONGODB"]) as mongo:
        mongo.get_default_database()["requests"].insert_one(
            {**event, "_id": "retired-1", "corpus": "retired", "ts": event["ts"] - timedelta(days=10)})
    assert client.get("/stats?corpus=retired").get_json()["requests"] == 1
    assert client.get("/dashboard?corpus=retired").status_code == 200
    assert client.get("/stats?corpus=retired&days=30").get_json()["requests"] == 1
    outside = client.get("/stats?corpus=retired&days=7")  # its only event is older
    assert outside.status_code == 404 and "over the last 7 days" in outside.get_json()["error"]["message"]
    # a corpus whose only answers went to a crawler is named by them too: no typo, its figures say where they went
    with pymongo.MongoClient(function_env["MONGODB"]) as mongo:
        mongo.get_default_database()["requests"].insert_one(
            {**event, "_id": "crawled-1", "corpus": "crawled", "bot": "Googlebot"})
    crawled = client.get("/stats?corpus=crawled")
    assert crawled.status_code == 200 and crawled.get_json()["left_out"]["crawler_requests"] == 1


@pytest.fixture
def owners_client(function_env):
    """A client of a function whose figures need STATS_TOKEN."""
    return make_client({**function_env, "STATS_TOKEN": STATS_TOKEN})


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer not-the-token-at-all"}, basic_auth("owner", "not-the-token-at-all"),
    {"Authorization": STATS_TOKEN}, {"Authorization": "Bearer " + STATS_TOKEN[:-1]},
    basic_auth(STATS_TOKEN, ""),  # the token as the user name: it is the password's place
    {"Authorization": "Basic " + STATS_TOKEN}, {"Authorization": "Digest " + STATS_TOKEN},
], ids=["none", "wrong-bearer", "wrong-basic", "no-scheme", "bearer-short", "basic-as-user", "basic-undecoded",
        "digest"])
def test_with_a_stats_token_the_figures_refuse_a_request_without_it(owners_client, headers):
    """A competitor who knows the function's address had read a site's traffic and click-through."""
    for path in ("/stats", "/stats?corpus=wikki"):  # before any other check: not even which corpora there are
        response = owners_client.get(path, headers={"Origin": "https://rival.example", **headers})
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "not_authorized"
        # the challenge a browser prompts on; and no page of another origin may read with its credentials
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="')
        assert "Access-Control-Allow-Credentials" not in response.headers
        assert STATS_TOKEN not in response.get_data(as_text=True)
    assert owners_client.head("/stats", headers=headers).status_code == 401


def test_with_a_stats_token_the_figures_answer_to_it_as_bearer_or_as_basics_password(owners_client, function_env):
    body = owners_client.get("/?text=moon+landing+astronaut").get_json()
    owners_client.get(body["results"][0]["click_url"], headers=READER)
    wait_for_events(function_env["MONGODB"], "clicks", 1)
    for headers in ({"Authorization": "Bearer " + STATS_TOKEN}, {"Authorization": "bearer  " + STATS_TOKEN},
                    basic_auth("owner", STATS_TOKEN), basic_auth("", STATS_TOKEN)):
        response = owners_client.get("/stats", headers=headers)
        assert response.status_code == 200, headers
        assert (response.get_json()["requests"], response.get_json()["clicks"]) == (1, 1)
    assert owners_client.get("/stats?corpus=wikki", headers=basic_auth("owner", STATS_TOKEN)).status_code == 404


def test_with_a_stats_token_what_readers_browsers_use_stays_open(owners_client, function_env):
    reader = READER
    body = owners_client.get("/?text=moon+landing+astronaut", headers=reader).get_json()
    assert body["results"]
    assert owners_client.post("/", json={"text": "greek philosophy"}).status_code == 200
    assert owners_client.get(body["results"][0]["click_url"], headers=reader).status_code == 302
    seen = urlsplit(body["seen_url"])
    assert owners_client.post(f"{seen.path}?{seen.query}", headers=reader).status_code == 204
    for path in ("/healthz", "/openapi.json", "/assets/widget.js"):
        assert owners_client.get(path).status_code == 200, path
    assert owners_client.get("/?text=moon", headers={"Accept": "text/html"}).status_code == 200  # try-it
    assert owners_client.options("/stats").status_code == 204  # a preflight carries no credentials
    assert len(wait_for_events(function_env["MONGODB"], "clicks", 1)) == 1


def test_with_a_stats_token_healthz_counts_no_traffic_but_for_the_owner(owners_client):
    """/healthz's event counts (written, buffered, dropped) and fetches in flight had told anyone who
    polled it the site's traffic: one more written for each answer, click and view."""
    reader = READER
    owners_client.get("/?text=moon+landing+astronaut", headers=reader)
    stranger = owners_client.get("/healthz")
    assert stranger.status_code == 200 and stranger.get_json()["status"] == "ok"
    health = stranger.get_json()
    assert not {"written", "buffered", "dropped"} & set(health["events"]), health["events"]
    assert not {"waiting", "refused"} & (set(health["fetches"]) | set(health["stats_reads"]))
    owners = owners_client.get("/healthz", headers=basic_auth("owner", STATS_TOKEN)).get_json()
    assert {"written", "buffered", "dropped"} <= set(owners["events"]) and "waiting" in owners["fetches"]


def test_a_stats_token_pasted_with_spaces_at_its_ends_answers_as_bearer_and_the_start_says_so(function_env, caplog):
    """A token copied with a space or a line end around it had matched HTTP Basic's password but never
    Authorization: Bearer, whose value is read without them: the spaces are dropped, and said."""
    caplog.set_level(logging.INFO, logger="related")
    client = make_client({**function_env, "STATS_TOKEN": f" {STATS_TOKEN}\t\n"})
    for headers in ({"Authorization": "Bearer " + STATS_TOKEN}, basic_auth("owner", STATS_TOKEN)):
        assert client.get("/stats", headers=headers).status_code == 200, headers
    assert "STATS_TOKEN has spaces or line ends at its start or end: dropped" in caplog.text
    assert STATS_TOKEN not in caplog.text


def test_a_stats_token_given_with_its_pasted_spaces_as_basics_password_is_the_token(function_env):
    """The README's curl -u "owner:$STATS_TOKEN", in the shell where the owner exported the token with its
    pasted space, sends the space in Basic's password: it had been a 401 (and /healthz's counts hidden),
    where Bearer, read without it, answered. The token has no space at its ends to lose, so a guess
    gains nothing; a space inside the password is still no match."""
    client = make_client({**function_env, "STATS_TOKEN": f"{STATS_TOKEN} "})
    for password in (f"{STATS_TOKEN} ", f" {STATS_TOKEN}\t\n"):
        for path in ("/stats", "/dashboard"):
            assert client.get(path, headers=basic_auth("owner", password)).status_code == 200, (path, password)
        assert "written" in client.get("/healthz", headers=basic_auth("owner", password)).get_json()["events"]
    spaced_inside = STATS_TOKEN[:8] + " " + STATS_TOKEN[8:]
    assert client.get("/stats", headers=basic_auth("owner", spaced_inside)).status_code == 401


def _last_error(client, headers=None):
    """/healthz's events.last_error once the writer has met Mongo's absence (its first attempt's 2 s)."""
    deadline = time.monotonic() + 15
    while (said := client.get("/healthz", headers=headers).get_json()["events"]["last_error"]) is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    return said


def test_with_a_stats_token_healthz_names_mongos_error_by_its_kind_only_but_to_the_owner(function_env):
    """pymongo's message names the Mongo hosts (and their ports): /healthz, open to probes, had
    told them to anyone. With the token set, anyone reads the error's kind, the owner the whole of it."""
    from function.devserver import free_port

    away = {**function_env, "MONGODB": f"mongodb://127.0.0.1:{free_port()}/away", "EVENT_FLUSH_SECONDS": "0"}
    owners = make_client({**away, "STATS_TOKEN": STATS_TOKEN})
    assert owners.get("/?text=moon+landing").status_code == 200  # an event for the writer to fail on
    assert _last_error(owners) == "ServerSelectionTimeoutError"
    said = _last_error(owners, basic_auth("owner", STATS_TOKEN))
    assert said.startswith("ServerSelectionTimeoutError: ") and "127.0.0.1:" in said
    # without a token, unchanged: the whole of it to anyone
    anyones = make_client(away)
    assert anyones.get("/?text=moon+landing").status_code == 200
    said = _last_error(anyones)
    assert said.startswith("ServerSelectionTimeoutError: ") and "127.0.0.1:" in said


def test_without_a_stats_token_the_figures_stay_open_whatever_authorization_comes(client):
    # a proxy in front with its own sign-in passes its Authorization on: it is not ours to judge
    for headers in ({}, basic_auth("editor", "the-proxys-password"), {"Authorization": "Bearer something"}):
        assert client.get("/stats", headers=headers).status_code == 200
        assert client.get("/dashboard", headers=headers).status_code == 200


def test_the_start_says_whether_the_figures_need_the_token_and_never_the_token(function_env, caplog):
    caplog.set_level(logging.INFO, logger="related")
    make_client(function_env)
    assert "figures (/stats, /dashboard) open to anyone (no STATS_TOKEN)" in caplog.text
    caplog.clear()
    make_client({**function_env, "STATS_TOKEN": STATS_TOKEN})
    assert "figures (/stats, /dashboard) need STATS_TOKEN" in caplog.text and STATS_TOKEN not in caplog.text


def test_a_store_removed_while_served_is_a_503_to_retry_and_healthz_says_not_ready(function_env, tmp_path, caplog):
    """An operator removed MODEL_STORE under a running worker: a thread that had not read the
    version yet answered 500s, and /healthz went on saying "ok" with no store to answer from."""
    import shutil

    shutil.copytree(function_env["MODEL_STORE"] + "/wiki", tmp_path / "wiki", symlinks=True)
    client = make_client({**function_env, "MODEL_STORE": str(tmp_path), "STORE_CHECK_SECONDS": "3600"})
    assert client.get("/healthz").status_code == 200
    shutil.rmtree(tmp_path / "wiki")
    gone = client.get("/?id=662")
    assert gone.status_code == 503 and gone.headers["Retry-After"] == "1"
    assert gone.get_json()["error"]["code"] == "store_unavailable"
    # a worker that looks at the stores again finds none: not ready, said with a 503, and logged
    shutil.copytree(function_env["MODEL_STORE"] + "/wiki", tmp_path / "again" / "wiki", symlinks=True)
    watching = make_client({**function_env, "MODEL_STORE": str(tmp_path / "again"), "STORE_CHECK_SECONDS": "0"})
    assert watching.get("/healthz").status_code == 200
    shutil.rmtree(tmp_path / "again" / "wiki")
    with caplog.at_level(logging.INFO, logger="related.store"):
        health = watching.get("/healthz")
    assert health.status_code == 503 and health.get_json()["status"] == "no_store"
    assert "corpus wiki: no longer served" in caplog.text


def test_healthz_reports_store_and_mongo(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["store"]["name"] == "wiki" and body["store"]["documents"] == 106
    assert body["store"]["version"].startswith("v")
    assert body["mongo"]["configured"] is True and body["mongo"]["reachable"] is True
    assert set(body["mongo"]) == {"configured", "reachable", "checked_seconds_ago"}
    # the client's first /healthz makes the check itself: its answer is no older than this request (a bound in
    # seconds here had been a wall-clock assertion)
    assert body["mongo"]["checked_seconds_ago"] == 0


@pytest.mark.parametrize("threads, fetch_concurrency, expected_reads", [
    ("2", "", 1), ("4", "", 1), ("8", "", 1), ("64", "", 1), ("16", "4", 4), ("16", "12", 3)])
def test_slow_fetches_and_event_reads_together_leave_healthz_a_thread(function_env, threads, fetch_concurrency,
                                                                      expected_reads):
    """Each kind of slow work had its own bound (THREADS - 2 page fetches, THREADS / 4 event reads):
    together, 6 stalled pages and 2 slow dashboards held all 8 threads, and /healthz waited 6 s."""
    env = {**function_env, "THREADS": threads, **({"FETCH_CONCURRENCY": fetch_concurrency} if fetch_concurrency else {})}
    fetches, reads = (make_client(env).get("/healthz").get_json()[kind]["limit"] for kind in ("fetches", "stats_reads"))
    assert reads == expected_reads and fetches >= 1
    assert fetches + reads < int(threads) or threads == "2"  # two threads: one of each


# -- tampered links ----------------------------------------------------------------
def _click_path(client):
    url = client.get("/?text=moon+landing").get_json()["results"][0]["click_url"]
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


@pytest.mark.parametrize("field,value", [
    ("u", "https://evil.example/"), ("k", "1"), ("d", "1"), ("t", "9999999999999"), ("e", "tfidf"), ("s", "AAAA"),
])
def test_tampered_click_link_is_refused_without_redirect(client, field, value):
    path, args = _click_path(client)
    if args[field] == value:
        value += "0"
    args[field] = value
    response = client.get(path, query_string=args)
    assert response.status_code == 403
    assert "Location" not in response.headers
    assert response.get_json()["error"]["code"] == "invalid_click_signature"


def test_click_link_with_tracking_parameters_appended_still_redirects(client, function_env):
    """Platforms append utm_* or fbclid to the links they pass on; other additions are refused."""
    path, args = _click_path(client)
    tracked = client.get(path, query_string={**args, "fbclid": "IwAR0x", "utm_source": "newsletter"})
    assert tracked.status_code == 302 and tracked.headers["Location"] == args["u"]
    assert len(wait_for_events(function_env["MONGODB"], "clicks", 1)) == 1
    other = client.get(path, query_string={**args, "colour": "blue"})
    assert other.status_code == 400 and other.get_json()["error"]["code"] == "invalid_click_link"


@pytest.mark.parametrize("path", ["/?text=moon+landing&k=3", "/stats?days=7"])
def test_a_shared_link_with_tracking_parameters_is_answered_as_without(client, path):
    """A platform appends fbclid or utm_* to a link it passes on (a dashboard's, an answer's): they
    had been a 400 "unknown parameter". The answer is the link's own; other additions stay 400s."""
    plain = client.get(path)
    tracked = client.get(path + "&fbclid=IwAR0x&utm_source=news&fbclid=again")
    assert plain.status_code == tracked.status_code == 200, tracked.get_data(as_text=True)
    if path.startswith("/?"):
        assert [r["id"] for r in tracked.get_json()["results"]] == [r["id"] for r in plain.get_json()["results"]]
    other = client.get(path + "&colour=blue")
    assert other.status_code == 400 and other.get_json()["error"]["code"] == "unknown_parameter"


def test_click_link_missing_a_field_is_a_400(client):
    path, args = _click_path(client)
    del args["u"]
    response = client.get(path, query_string=args)
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.get_json()["error"]["code"] == "invalid_click_link"


# -- bad input -------------------------------------------------------------------------
def test_a_null_or_empty_field_counts_as_not_given(client):
    """As the API's description says of every field: "?k=" (a form's empty box) and {"k": null}
    had been a 400 "'k' must be an integer"."""
    given = [client.get("/?text=moon+landing&k=&min_score=&corpus=&engine="),
             client.post("/", json={"text": "moon landing", "k": None, "min_score": None, "corpus": None,
                                    "engine": "", "url": None, "id": ""})]
    default = client.get("/?text=moon+landing").get_json()
    for response in given:
        assert response.status_code == 200, response.get_data(as_text=True)
        assert [r["id"] for r in response.get_json()["results"]] == [r["id"] for r in default["results"]]
    assert len(default["results"]) == 5


@pytest.mark.parametrize("query,status,code", [
    ("", 400, "missing_query"),
    ("text=", 400, "missing_query"),
    ("text=%20%20", 400, "missing_query"),
    ("url=", 400, "missing_query"),
    ("text=moon&url=http://example.com/", 400, "ambiguous_query"),
    ("text=moon&k=0", 400, "invalid_parameter"),
    ("text=moon&k=101", 400, "invalid_parameter"),
    ("text=moon&k=abc", 400, "invalid_parameter"),
    ("text=moon&k=1&k=2", 400, "invalid_parameter"),
    ("text=moon&min_score=2", 400, "invalid_parameter"),
    ("text=moon&min_score=nan", 400, "invalid_parameter"),
    ("text=moon&corpus=nope", 404, "unknown_corpus"),
    ("text=moon&corpus=../etc", 400, "invalid_parameter"),
    ("text=moon&engine=nope", 400, "unknown_engine"),
    ("text=moon&colour=blue", 400, "unknown_parameter"),
    ("text=zzzzqqq+xxyyzz", 422, "no_known_words"),
    ("id=no-such-id", 404, "unknown_id"),
    ("url=ftp://example.com/file", 400, "invalid_url"),
    ("url=http://", 400, "invalid_url"),
    ("id=caf%E9", 400, "invalid_parameter"),  # Latin-1, not UTF-8: werkzeug had kept "caf%E9" as the id
    ("text=%FF%FEmoon", 400, "invalid_parameter"),
    ("text=moon&%C3=1", 400, "invalid_parameter"),
    ("text=caf%e9+moon", 400, "invalid_parameter"),  # lower-case hex: the same byte
    ("text=moon+%C3%A9%e9", 400, "invalid_parameter"),  # a bad byte after good ones
])
def test_bad_query_strings_get_a_clear_4xx(client, query, status, code):
    response = client.get("/?" + query)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]


def test_a_pages_title_of_megabytes_is_cut_in_the_answer_and_the_event(client, pages, function_env):
    """A title goes into every answer and request event for its page: 4 MB had made each 4 MB."""
    moon = pages.body("/moon-landing.html").decode()
    huge = "Moon landing anniversary " * 80_000  # 2 MB, in <title> and og:title (the h1 keeps its words)
    url = pages.add("/huge-title.html", moon.replace("Fifty years after the first Moon landing", huge, 2).encode())
    response = client.get("/", query_string={"url": url})
    page = response.get_json()["page"]
    assert response.status_code == 200 and len(response.get_data()) < 20_000
    assert len(page["title"]) <= 300 and page["title"].startswith("Moon landing anniversary Moon")
    assert page["title"].rsplit(" ", 1)[1] in ("Moon…", "landing…", "anniversary…")
    (event,) = wait_for_events(function_env["MONGODB"], "requests", 1)
    assert event["title"] == page["title"]


@pytest.mark.parametrize("address", ["http://en.wikipedia.org/wiki/Apollo_11", "https://EN.wikipedia.org/wiki/Apollo_11/"])
def test_an_id_given_as_a_members_address_is_answered_with_the_id_to_ask_for(client, address):
    """A crawled page's id is its normalised URL, which a reader rarely types: the 404 names it."""
    error = client.get("/", query_string={"id": address}).get_json()["error"]
    assert error["code"] == "unknown_id"
    assert error["message"].endswith(": the page at that address is the document '662' (or ask with url=)")
    assert client.get("/", query_string={"id": "662"}).status_code == 200


def test_an_id_that_is_the_address_of_no_member_gets_the_plain_404(client):
    error = client.get("/", query_string={"id": "https://en.wikipedia.org/wiki/No_such_page"}).get_json()["error"]
    assert error == {"code": "unknown_id", "message": "no document with id "
                     "'https://en.wikipedia.org/wiki/No_such_page' in corpus 'wiki'"}


@pytest.mark.parametrize("kwargs,status,code", [
    ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
    ({"data": "[1, 2]", "content_type": "application/json"}, 400, "invalid_json"),
    ({"data": "text=moon", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ({"json": {"text": 42}}, 400, "invalid_parameter"),
    ({"json": {"text": "moon", "k": "5"}}, 400, "invalid_parameter"),
    ({"json": {"text": "moon", "k": True}}, 400, "invalid_parameter"),
    ({"json": {"text": "moon", "k": 2.5}}, 400, "invalid_parameter"),
    ({"json": {"text": "moon", "min_score": "high"}}, 400, "invalid_parameter"),
    ({"json": {"text": "moon", "corpus": ["wiki"]}}, 400, "invalid_parameter"),
    ({"json": {"text": "x" * 100_001}}, 413, "text_too_large"),
    ({"json": {"url": "http://a", "id": "1"}}, 400, "ambiguous_query"),
    ({"json": {}}, 400, "missing_query"),
    ({"data": '{"text": "moon", "text": "sun"}', "content_type": "application/json"}, 400, "invalid_json"),
    ({"data": '{"text": "moon", "k": 2, "k": 3}', "content_type": "application/json"}, 400, "invalid_json"),
    ({"query_string": "id=662", "json": {"text": "moon"}}, 400, "unknown_parameter"),  # not dropped silently
    ({"query_string": "k", "json": {"text": "moon"}}, 400, "unknown_parameter"),
])
def test_bad_json_bodies_get_a_clear_4xx(client, kwargs, status, code):
    response = client.post("/", **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def test_oversized_body_is_a_413(client):
    response = client.post("/", data=b'{"text": "' + b"a" * 1_100_000 + b'"}', content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("path,status,headers", [
    ("/html-but-binary", 415, {}),
    ("/gone", 422, {}),
    ("/no-article.html", 422, {}),
    ("/server-error", 502, {}),
])
def test_pages_that_cannot_be_used_get_the_right_status(client, pages, path, status, headers):
    pages.add("/html-but-binary", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, content_type="image/png")
    pages.add("/gone", b"<html><body>gone</body></html>", status=404)
    pages.add("/server-error", b"oops", status=500)
    response = client.get("/", query_string={"url": pages.url(path)})
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["message"]


def test_unreachable_host_is_a_clear_error(client):
    response = client.get("/", query_string={"url": "http://no-such-host.invalid/article"})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "unresolvable_host"


def test_private_address_is_refused_without_the_test_switch(function_env, pages):
    # any port: the address check is what refuses the page's loopback address
    strict = make_client({**function_env, "FETCH_ALLOW_PRIVATE_HOSTS": "", "FETCH_PORTS": "any"})
    before = sum(pages.hits.values())
    response = strict.get("/", query_string={"url": pages.url("/moon-landing.html")})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden_address"
    assert "FETCH_ALLOW_PRIVATE_HOSTS" not in response.get_json()["error"]["message"]  # unset: not spoken of
    assert sum(pages.hits.values()) == before


def test_a_port_outside_fetch_ports_is_refused_with_its_reason(function_env, pages):
    # FETCH_PORTS at its default (80, 443): the page's random port is refused before the address check
    strict = make_client({**function_env, "FETCH_ALLOW_PRIVATE_HOSTS": ""})
    before = sum(pages.hits.values())
    response = strict.get("/", query_string={"url": pages.url("/moon-landing.html")})
    assert response.status_code == 403 and response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "forbidden_port"
    assert f"port {pages.port} " in error["message"] and "FETCH_PORTS: 80, 443" in error["message"]
    assert "FETCH_ALLOW_PRIVATE_HOSTS" not in error["message"]  # unset, as deployed: not spoken of
    assert sum(pages.hits.values()) == before


@pytest.mark.parametrize("ports, code", [("", "forbidden_port"), ("any", "forbidden_address")], ids=["port", "address"])
@pytest.mark.parametrize("exempt", ["localhost:{port}", "127.0.0.1:1,localhost", "localhost:1"],
                         ids=["other-spelling", "other-port-and-bare", "nothing-near"])
def test_a_refusal_says_why_fetch_allow_private_hosts_does_not_exempt_it_when_set(function_env, pages, ports, code,
                                                                                 exempt):
    """An exemption that does not cover the URL's spelling of its host (or its port): the refusal says how
    entries are read, so the user who set it sees why it does not apply; it names none of them (anyone may
    ask, and they are the private hosts this service fetches)."""
    entries = exempt.format(port=pages.port)
    client = make_client({**function_env, "FETCH_PORTS": ports, "FETCH_ALLOW_PRIVATE_HOSTS": entries})
    before = sum(pages.hits.values())
    response = client.get("/", query_string={"url": pages.url("/moon-landing.html")})
    assert response.status_code == 403 and response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert (f"FETCH_ALLOW_PRIVATE_HOSTS is set but does not exempt 127.0.0.1:{pages.port}: an entry covers its host"
            " only as the URL writes it (localhost is not 127.0.0.1)") in error["message"]
    assert not any(entry in error["message"] for entry in ("localhost:", "127.0.0.1:1,", "localhost,"))
    assert sum(pages.hits.values()) == before


def test_errors_are_logged_with_their_status(client, function_env, caplog):
    client.get("/?text=moon&k=0")  # refused before its query is known: counted all the same
    client.get("/?id=no-such-id")
    client.put("/?text=moon")  # a method / does not take: an error answer of /, counted (it was not)
    client.put("/stats")  # not a request for recommendations: not counted
    client.get("/?id=662&corpus=wiki%0A")  # a name's final newline: a bad parameter, not an unknown corpus
    events = wait_for_events(function_env["MONGODB"], "requests", 4)
    assert sorted((e["status"], e["error"]) for e in events) == [
        (400, "invalid_parameter"), (400, "invalid_parameter"), (404, "unknown_id"), (405, "method_not_allowed")]
    # a request refused before its query is known has no User-Agent to read: no crawler's, and no fault
    assert not any("bot" in e for e in events) and "could not be read for crawlers" not in caplog.text


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nowhere", 404), ("DELETE", "/", 405), ("PUT", "/stats", 405), ("GET", "/robots.txt", 404),
    ("OPTIONS", "/static/x", 404), ("OPTIONS", "/robots.txt", 404),
])
def test_unknown_routes_and_methods_are_json(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] in ("not_found", "method_not_allowed")


def test_flasks_own_static_route_serves_nothing(function_env, tmp_path, monkeypatch):
    """Flask gives functions-framework's app a /static/<file> route onto the working directory's
    static/ folder: a deployment's stray folder there was served, and OPTIONS answered 200 HTML."""
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "notes.txt").write_text("not for the public")
    monkeypatch.chdir(tmp_path)
    client = make_client(function_env)
    for method in ("GET", "HEAD", "OPTIONS", "POST"):
        response = client.open("/static/notes.txt", method=method)
        assert (response.status_code, response.mimetype) == (404, "application/json"), method
        assert b"not for the public" not in response.data


@pytest.mark.parametrize("method,path,allowed", [
    ("DELETE", "/", "GET, HEAD, OPTIONS, POST"), ("PUT", "/seen", "OPTIONS, POST"),
    ("POST", "/click", "GET, HEAD, OPTIONS"), ("OPTIONS", "/click", "GET, HEAD, OPTIONS"),
])
def test_allow_names_every_method_a_path_answers(client, method, path, allowed):
    response = client.open(path, method=method)
    assert response.status_code == (204 if method == "OPTIONS" else 405)
    assert response.headers["Allow"] == allowed
    for other in allowed.split(", "):  # each one named is answered, not refused
        assert client.open(path, method=other).status_code != 405, other


def test_cors_preflight_allows_browser_posts(client):
    response = client.options("/", headers={"Origin": "https://blog.example", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("url", ["https://Straße.example/a/", "http://BÜCHER.example/x", "https://faß.de",
                                 "https://xn--strae-oqa.example/a", "https://EXAMPLE.com:443/"])
def test_member_keys_spell_hosts_as_the_fetcher_does(url):
    # one key per host: a member URL given in Unicode or in punycode must find the same document
    from function.fetch_policy import parse_url
    from function.urls import normalise_url

    assert urlsplit(normalise_url(url)).hostname == parse_url(url).host


@pytest.mark.parametrize("url,key", [
    ("example.com/a", "https://example.com/a"),  # keys spell http and https alike
    ("example.com:8080/a", "https://example.com:8080/a"),
    ("example.com/a?next=https://b.example/c", "https://example.com/a?next=https%3A%2F%2Fb.example%2Fc"),
    ("HTTPS://Example.com/a/", "https://example.com/a"),
    ("https://example.com./a", "https://example.com/a"),  # a host spelt with its root's dot is the host
    ("https://h.example/s?page=2&tag=moon", "https://h.example/s?page=2&tag=moon"),
    ("https://h.example/s?tag=moon&page=2", "https://h.example/s?page=2&tag=moon"),  # a query in any order
    # one spelling of each path character, no dot segments (RFC 3986 normalisation)
    ("https://h.example/any/луна-é", "https://h.example/any/%D0%BB%D1%83%D0%BD%D0%B0-%C3%A9"),
    ("https://h.example/any/%d0%bb%d1%83%d0%bd%d0%b0-%c3%a9", "https://h.example/any/%D0%BB%D1%83%D0%BD%D0%B0-%C3%A9"),
    ("https://h.example/%65n/./a/b/../c", "https://h.example/en/a/c"),
    ("https://h.example/../a", "https://h.example/a"),  # a ".." above the root stays at the root
    ("https://h.example/a/../../b", "https://h.example/b"),
    ("https://h.example/a%2Fb", "https://h.example/a%2Fb"),  # an escaped '/' is no separator
    ("https://h.example/s?q=%E4", "https://h.example/s?q=%E4"),  # not UTF-8: the byte kept, not U+FFFD
    ("https://h.example/s?q=%F6", "https://h.example/s?q=%F6"),
])
def test_member_keys_read_an_address_without_a_scheme_as_a_web_address(url, key):
    from function.urls import normalise_url

    assert normalise_url(url) == key


@pytest.fixture
def small_stats_client(function_env):
    """A client whose /stats and /dashboard read at most 100 events of each collection."""
    return make_client({**function_env, "STATS_MAX_EVENTS": "100"})


def test_stats_past_the_event_limit_count_the_newest_and_say_so(small_stats_client, function_env):
    client = small_stats_client
    answers = [client.get("/", query_string={"text": f"moon landing {i}"}).get_json() for i in range(130)]
    for answer in (answers[0], answers[-1]):  # the oldest answer falls outside the window read
        assert client.get(answer["results"][0]["click_url"]).status_code == 302
    requests = wait_for_events(function_env["MONGODB"], "requests", 130)
    wait_for_events(function_env["MONGODB"], "clicks", 2)
    stats = client.get("/stats").get_json()
    times = sorted((event["ts"] for event in requests), reverse=True)
    in_window = sum(1 for ts in times if ts >= times[99])  # the 100 newest, and others of the 100th's millisecond
    assert stats["truncated"] is True and stats["requests"] == in_window < 130
    assert stats["clicks"] == 1 and stats["left_out"]["other_clicks"] == 1  # the oldest answer's: not in the window
    assert stats["since"] == times[99].isoformat(timespec="milliseconds")
    assert stats["ctr"] == pytest.approx(1 / in_window, abs=1e-4)  # the oldest answer's click has no answer in the window
    assert client.get("/stats?days=1").get_json()["truncated"] is True
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'data-truncated="true"' in page and "STATS_MAX_EVENTS" in page


def test_a_flood_of_errors_does_not_push_the_answers_out_of_the_window(small_stats_client, function_env):
    # 20,000 free 400s (a bare "/?") had left /stats with requests 0 and errors 20,000
    client = small_stats_client
    answers = [client.get("/", query_string={"text": f"atlantic ocean {i}"}).get_json() for i in range(5)]
    assert client.get(answers[0]["results"][0]["click_url"]).status_code == 302
    for _ in range(130):
        assert client.get("/?").status_code == 400
    wait_for_events(function_env["MONGODB"], "requests", 135)
    wait_for_events(function_env["MONGODB"], "clicks", 1)
    stats = client.get("/stats").get_json()
    assert (stats["requests"], stats["clicks"], stats["ctr"]) == (5, 1, 0.2) and stats["truncated"] is False
    # the newest STATS_MAX_EVENTS of them (and any others of the 100th's time): not all 130
    assert 100 <= stats["errors"] < 130 and stats["errors_truncated"] is True and stats["errors_since"]
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'data-errors-truncated="true"' in page and 'data-truncated="true"' not in page


def test_stats_past_the_click_limit_narrow_the_window_for_both(small_stats_client, function_env):
    client = small_stats_client
    answers = [client.get("/", query_string={"text": f"greek philosopher {i}"}).get_json() for i in range(21)]
    links = [result["click_url"] for answer in answers for result in answer["results"]][:104]
    for link in links:  # each followed once: a link followed again is not recorded again
        assert client.get(link).status_code == 302
    times = sorted((click["ts"] for click in wait_for_events(function_env["MONGODB"], "clicks", 104)), reverse=True)
    stats = client.get("/stats").get_json()
    # the 100 newest clicks, and any others of the 100th's millisecond, start after every answer:
    # no answer is inside the window they span, so none of its clicks is on an answer counted
    assert stats["truncated"] is True and stats["requests"] == 0 and stats["clicks"] == 0
    assert stats["left_out"]["other_clicks"] == sum(1 for ts in times if ts >= times[99])


def test_stats_cut_among_events_of_one_millisecond_keep_them_all(small_stats_client, function_env):
    """More events than the limit, the oldest read sharing its millisecond with some not read:
    all of that millisecond are counted, with their clicks, and `since` is that millisecond."""
    from datetime import datetime, timedelta, timezone

    import pymongo

    now = datetime.now(timezone.utc).replace(microsecond=0)
    cut = now - timedelta(minutes=10, milliseconds=1)
    answer = {"status": 200, "corpus": "wiki", "engine": "lsi", "n_results": 5, "total_ms": 1.0, "top_score": 0.5}
    newer = [{"_id": f"n{i}", "ts": now - timedelta(seconds=i), **answer} for i in range(98)]
    tied = [{"_id": f"t{i}", "ts": cut, **answer} for i in range(5)]
    older = [{"_id": f"o{i}", "ts": cut - timedelta(seconds=5 + i), **answer} for i in range(3)]
    clicks = [{"_id": f"c{i}", "ts": now, "corpus": "wiki", "request_id": f"t{i}", "engine": "lsi", "rank": 1,
               "delay_ms": 1000} for i in range(5)]
    client = pymongo.MongoClient(function_env["MONGODB"], tz_aware=True)
    db = client.get_default_database()
    db["requests"].insert_many(newer + tied + older)
    db["clicks"].insert_many(clicks)
    client.close()
    stats = small_stats_client.get("/stats").get_json()
    assert stats["truncated"] is True and stats["since"] == cut.isoformat(timespec="milliseconds")
    assert stats["requests"] == 98 + 5 and stats["clicks"] == 5
    assert stats["ctr"] == pytest.approx(5 / 103, abs=1e-4)


def test_stats_cut_by_their_clicks_keep_the_answers_and_clicks_of_the_cut_and_narrow_the_errors(small_stats_client,
                                                                                                 function_env):
    """More clicks than the limit: the window starts at the oldest click read, for the answers and
    the errors too, and keeps what is of that very time (an answer and the clicks of its millisecond)."""
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).replace(microsecond=0)
    cut = now - timedelta(minutes=10)
    answer = {"status": 200, "corpus": "wiki", "engine": "lsi", "n_results": 5, "total_ms": 1.0, "top_score": 0.5}
    requests = [{"_id": "at-cut", "ts": cut, **answer}, {"_id": "before", "ts": cut - timedelta(hours=1), **answer},
                {"_id": "error", "ts": cut - timedelta(hours=1), "status": 400, "error": "invalid_parameter"}]
    click = {"corpus": "wiki", "engine": "lsi", "delay_ms": 1000}
    clicks = ([{"_id": f"c{i}", "ts": now - timedelta(seconds=i), "request_id": "at-cut", "rank": 1 + i % 5, **click}
               for i in range(99)]
              + [{"_id": f"tied{i}", "ts": cut, "request_id": "at-cut", "rank": 1, **click} for i in range(2)]
              + [{"_id": "old", "ts": cut - timedelta(hours=1), "request_id": "before", "rank": 1, **click}])
    with pymongo.MongoClient(function_env["MONGODB"], tz_aware=True) as mongo:
        mongo.get_default_database()["requests"].insert_many(requests)
        mongo.get_default_database()["clicks"].insert_many(clicks)
    stats = small_stats_client.get("/stats").get_json()
    assert stats["truncated"] is True and stats["since"] == cut.isoformat(timespec="milliseconds")
    assert (stats["requests"], stats["errors"], stats["clicks"], stats["left_out"]["other_clicks"]) == (1, 0, 101, 0)
    assert stats["ctr"] == 1.0


def test_stats_at_the_limit_are_not_truncated(small_stats_client, function_env):
    client = small_stats_client
    for i in range(100):  # exactly STATS_MAX_EVENTS: every event is read
        client.get("/", query_string={"text": f"atlantic ocean {i}"})
    wait_for_events(function_env["MONGODB"], "requests", 100)
    stats = client.get("/stats").get_json()
    assert stats["truncated"] is False and stats["since"] is None and stats["requests"] == 100
    assert "data-truncated" not in client.get("/dashboard").get_data(as_text=True)
