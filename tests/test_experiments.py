"""Engine experiments: traffic split between a store's engines by ENGINE_WEIGHTS, the same engine for
the same page, every event carrying its engine, and click-through by engine and rank in /stats."""

import hashlib
from urllib.parse import urlsplit

import numpy as np
import pytest

from conftest import wait_for_events
from function.recommend import choose_engine
from function.store import StoreSet
from function.urls import normalise_url


@pytest.fixture
def function_env(function_env):
    return {**function_env, "ENGINE_WEIGHTS": "lsi=50,tfidf=50"}


@pytest.fixture(scope="module")
def wiki(model_store):
    return StoreSet(model_store).get("wiki")


def shares(store, weights, keys):
    chosen = [choose_engine(store, weights, key).name for key in keys]
    return {name: chosen.count(name) / len(chosen) for name in set(chosen)}, chosen


def test_the_split_follows_the_weights_and_a_page_keeps_its_engine(wiki):
    keys = [normalise_url(f"https://blog.example/posts/{n}") for n in range(4000)]
    even, chosen = shares(wiki, {"lsi": 50, "tfidf": 50}, keys)
    assert 0.46 < even["lsi"] < 0.54
    assert chosen == [choose_engine(wiki, {"lsi": 50, "tfidf": 50}, key).name for key in keys]
    skewed, _ = shares(wiki, {"lsi": 0.8, "tfidf": 0.2}, keys)
    assert 0.77 < skewed["lsi"] < 0.83
    assert shares(wiki, {"lsi": 0, "tfidf": 1}, keys)[0] == {"tfidf": 1.0}
    assert shares(wiki, {"bm25": 1}, keys[:50])[0] == {wiki.default_engine: 1.0}  # unknown engines: the default
    # weights are read for every corpus: one whose only weighted engine is at 0 is served by its default
    other = next(name for name in wiki.engines if name != wiki.default_engine)
    assert shares(wiki, {other: 0, "bm25": 1}, keys[:50])[0] == {wiki.default_engine: 1.0}
    # one page, however its link is spelled, is one key and so one engine
    spellings = ["http://Blog.example/posts/7/", "https://blog.example/posts/7?utm_source=news#top"]
    assert {choose_engine(wiki, {"lsi": 1, "tfidf": 1}, normalise_url(s)).name for s in spellings} == \
        {chosen[7]}


def test_requests_and_clicks_carry_their_engine_and_stats_compare_the_engines(client, function_env, wiki):
    texts = [f"{topic} history and science number {n}" for n in range(12)
             for topic in ("moon landing", "greek philosophy")]
    answers = {}
    for text in texts:
        body = client.get("/", query_string={"text": text, "k": 3}).get_json()
        split_key = "text:" + hashlib.sha256(text.encode()).hexdigest()
        assert body["engine"] == choose_engine(wiki, {"lsi": 50, "tfidf": 50}, split_key).name
        again = client.get("/", query_string={"text": text, "k": 3}).get_json()
        assert again["engine"] == body["engine"]
        answers[text] = body
    engines = [a["engine"] for a in answers.values()]
    assert set(engines) == {"lsi", "tfidf"}
    forced = client.get("/", query_string={"text": texts[0], "engine": "tfidf", "k": 4}).get_json()
    assert forced["engine"] == "tfidf"
    for result in forced["results"]:  # a caller's own engine and own clicks: five such had made "lsi wins"
        link = urlsplit(result["click_url"])
        assert client.get(f"{link.path}?{link.query}").status_code == 302

    clicked = {"lsi": 0, "tfidf": 0}
    for n, body in enumerate(answers.values()):
        if n % 3 == 0:  # a third of the answers get a click on rank 1, some on rank 2 as well
            for result in body["results"][: 1 + (n % 2)]:
                link = urlsplit(result["click_url"])
                assert client.get(f"{link.path}?{link.query}").status_code == 302
                clicked[body["engine"]] += 1
    requests = wait_for_events(function_env["MONGODB"], "requests", 2 * len(texts) + 1)
    clicks = wait_for_events(function_env["MONGODB"], "clicks", sum(clicked.values()) + 4)
    assert all(r["engine"] in ("lsi", "tfidf") for r in requests)
    by_request = {r["_id"]: r["engine"] for r in requests}
    assert all(c["engine"] == by_request[c["request_id"]] for c in clicks)

    stats = client.get("/stats").get_json()
    assert stats["engine_named_requests"] == 1 and stats["requests"] == 2 * len(texts) + 1
    for engine in ("lsi", "tfidf"):
        figures = stats["engines"][engine]
        assert figures["requests"] == 2 * engines.count(engine)  # the split's alone
        assert figures["clicks"] == clicked[engine]
        low, high = figures["ctr_ci95"]
        assert 0 <= low <= figures["ctr"] <= high <= 1
        assert figures["ctr_by_rank"]["1"]["shown"] == figures["requests"]
        assert len(figures["ctr_by_rank"]["1"]["ci95"]) == 2
    assert stats["clicks"] == sum(clicked.values()) + 4
    dashboard = client.get("/dashboard", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "1 answer named its engine (<code>engine=</code>) and is left out of this comparison." in dashboard


def test_each_engine_counts_the_answers_of_its_own_seen(client, function_env, wiki):
    """An engine's ``seen`` and ``ctr_seen`` are over its own answers seen in view: not another
    engine's, nor an answer that named its engine."""
    from conftest import READER

    reader = READER
    by_engine = {}
    for n in range(40):
        body = client.get("/", query_string={"text": f"moon landing history number {n}"}, headers=reader).get_json()
        by_engine.setdefault(body["engine"], body)
        if len(by_engine) == 2:
            break
    forced = client.get("/", query_string={"text": "greek philosophy", "engine": "lsi"}, headers=reader).get_json()
    for body in (*by_engine.values(), forced):
        link = urlsplit(body["seen_url"])
        assert client.post(f"{link.path}?{link.query}", headers=reader).status_code == 204
    link = urlsplit(by_engine["lsi"]["results"][0]["click_url"])
    assert client.get(f"{link.path}?{link.query}", headers=reader).status_code == 302
    wait_for_events(function_env["MONGODB"], "views", 3)
    wait_for_events(function_env["MONGODB"], "clicks", 1)
    stats = client.get("/stats").get_json()
    assert (stats["seen"], stats["ctr_seen"]) == (3, pytest.approx(1 / 3, abs=1e-4))
    figures = {engine: (stats["engines"][engine]["seen"], stats["engines"][engine]["ctr_seen"]) for engine in by_engine}
    assert figures == {"lsi": (1, 1.0), "tfidf": (1, 0.0)}


def test_a_store_can_hold_two_lsi_sizes_and_traffic_splits_between_them(tmp_path):
    from function.build import BuildOptions, build
    from function.records import Record
    from function.store import Store
    from function.update import update
    from website import TOPICS, paragraphs

    docs = [Record(f"{topic}-{n}", f"https://site.example/{topic}/{n}", f"{topic} {n}",
                   " ".join(paragraphs(topic, n))) for topic in TOPICS for n in range(8)]
    final, manifest = build([iter(docs[:24])], tmp_path / "two", progress=False,
                            options=BuildOptions(name="two", engines=("lsi", "lsi-4", "tfidf")))
    store = Store(final)
    assert store.engines["lsi-4"].vectors.shape[1] == 4 < store.engines["lsi"].vectors.shape[1]
    assert manifest["engines"]["lsi-4"]["dims"] == 4
    keys = [f"https://site.example/page/{n}" for n in range(1000)]
    split, _ = shares(store, {"lsi": 1, "lsi-4": 1}, keys)
    assert set(split) == {"lsi", "lsi-4"} and 0.44 < split["lsi"] < 0.56

    result = update(tmp_path / "two", [iter(docs[24:])], progress=False)  # both sizes are updated
    updated = Store(result.version_dir)
    assert set(result.drift["lsi_fit"]) == {"lsi", "lsi-4"}
    for name in ("lsi", "lsi-4"):
        row = updated.row_for_id(docs[-1].id)
        assert updated.engines[name].vectors.shape[0] == len(docs)
        vector = updated.engines[name].vectors[row]  # shorter than a built row (update.lsi_lengths)
        assert updated.engines[name].query_vector(updated.terms(docs[-1].text)) @ vector / np.linalg.norm(vector) \
            > 0.999
