"""The builder and the store: determinism, atomicity, integrity checks, and that
serving computes exactly what the builder computed."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import CHINESE_ARTICLES, ROOT, THAI_ARTICLES, FunctionProcess, wiki_sample_path
from function.build import BuildOptions, build, main as build_main
from function.article import indexed_text
from function.records import Record, Skip
from function.sources import open_source
from function.store import FORMAT_VERSION, Store, StoreError, StoreSet, current_version_dir
from function.tokens import REVISION


@pytest.fixture(scope="module")
def records():
    return [r for r in open_source(wiki_sample_path()) if isinstance(r, Record)]


@pytest.fixture(scope="module")
def corpus_jsonl(records, tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "wiki.jsonl"
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps({"id": r.id, "url": r.url, "title": r.title, "text": r.text}) + "\n")
        f.write("not json\n")
        f.write(json.dumps({"id": "x", "url": "ftp://nope", "title": "t", "text": "words"}) + "\n")
        # a CR LF would split the Location header of the document's clicks; no host, nowhere to go
        f.write(json.dumps({"id": "y", "url": "https://a.example/x\r\nSet-Cookie: a=b", "text": "words"}) + "\n")
        f.write(json.dumps({"id": "z", "url": "https:///x", "text": "words"}) + "\n")
        f.write(json.dumps({"id": "w", "url": "https://a .example/x", "text": "words"}) + "\n")  # a space in the host
        f.write(json.dumps({"id": records[0].id, "url": records[0].url, "title": "dup", "text": "dup"}) + "\n")
    return path


def neighbours(store, engine, text, k=5):
    return [h.row for h in store.engines[engine].search(store.terms(text), k)]


def test_cli_builds_a_store_and_lists_what_it_skipped(corpus_jsonl, tmp_path, records):
    assert build_main(["--input", str(corpus_jsonl), "--out", str(tmp_path / "wiki"), "--quiet"]) == 0
    store = Store(current_version_dir(tmp_path / "wiki"))
    assert store.size == len(records)
    manifest = store.manifest
    assert manifest["format_version"] == FORMAT_VERSION and manifest["documents"] == len(records)
    assert manifest["parameters"]["lsi_dims"] == 200 and manifest["tokenizer"]["min_len"] == 1
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    skipped = [json.loads(line) for line in open(store.path / "skipped.jsonl")]
    reasons = sorted(s["reason"] for s in skipped)
    assert "bad JSON at column 1: Expecting value" in reasons  # one line number: the file's, not json's
    assert "duplicate id" in reasons and "missing or non-http(s) url" in reasons
    assert reasons.count("url with no host, a host no IDNA name can be, a space in its host, or control characters") == 3


# -- corpus inputs that are broken in one place: a clear one-line error, or the record listed -----
def _jsonl_lines(records, n=12):
    return [json.dumps({"id": r.id, "url": r.url, "title": r.title, "text": r.text}) for r in records[:n]]


def _build(tmp_path, name, data, *options):
    path = tmp_path / name
    path.write_bytes(data)
    code = build_main(["--input", str(path), "--out", str(tmp_path / "out"), "--quiet", *options])
    return code, (Store(current_version_dir(tmp_path / "out")) if code == 0 else None)


def _skips(store):
    return [json.loads(line) for line in open(store.path / "skipped.jsonl")]


def test_a_byte_order_mark_is_not_the_first_records(records, tmp_path):
    code, store = _build(tmp_path, "c.jsonl", "\n".join(_jsonl_lines(records)).encode("utf-8-sig"))
    assert code == 0 and store.size == 12 and _skips(store) == []


def test_a_line_nested_too_deeply_is_listed_and_the_rest_is_built(records, tmp_path):
    code, store = _build(tmp_path, "c.jsonl", "\n".join(_jsonl_lines(records) + ["[" * 100_000 + "]" * 100_000]).encode())
    assert code == 0 and store.size == 12 and _skips(store) == [{"where": "line 13", "reason": "bad JSON: nested too deeply"}]


def test_bytes_that_are_not_utf8_skip_a_record_by_its_id_and_are_replaced_in_its_text(records, tmp_path):
    lines = [line.encode() for line in _jsonl_lines(records, 10)]
    lines.append(b'{"id": "caf\xe9", "url": "https://a.example/1", "text": "words"}')  # a Latin-1 export
    lines.append(json.dumps({"id": "byte", "url": "https://a.example/2", "title": "Caf", "text": records[12].text})
                 .encode().replace(b'"Caf"', b'"Caf\xe9"').replace(b'"}', b' caf\xe9"}'))
    # half of an emoji, cut off by an export at a UTF-16 boundary: it had stopped the whole build
    lines.append(json.dumps({"id": "emoji", "url": "https://a.example/3", "title": "Ok", "text": records[13].text})
                 .encode().replace(b'"}', b' \\ud83d"}'))
    code, store = _build(tmp_path, "c.jsonl", b"\n".join(lines))
    assert code == 0 and store.size == 12
    assert _skips(store) == [{"where": "line 11", "reason": "id or url is not valid UTF-8 (or holds a lone surrogate)"}]
    assert store.docs([store.row_for_id("byte")])[0].title == "Caf\ufffd"
    assert store.row_for_id("emoji") is not None


def test_a_csv_quote_closed_rows_later_is_a_listed_skip_of_those_lines(records, tmp_path):
    # csv pairs the stray quote with the next row's, reads both rows as one: the second had gone unsaid.
    # And skips name the line the row is on, past blank lines.
    text = [records[i].text[:300].replace('"', "").replace(",", " ").replace("\n", " ") for i in range(14)]
    rows = [f"r{i},https://a.example/{i},t,{text[i]}" for i in range(12)]
    rows[5] = f'r5,https://a.example/5,t,"{text[12]}'  # a quote never closed where its cell ends
    rows[6] = f'r6,https://a.example/6,t,"{text[13]}"'
    data = ("id,url,title,text\n" + "\n".join(rows[:3]) + "\n\n\n" + "\n".join(rows[3:]) +
            "\nbad,ftp://a.example/x,t,x\nshort,https://a.example/s\n")
    code, store = _build(tmp_path, "c.csv", data.encode())
    assert code == 0 and store.size == 10
    assert _skips(store) == [
        {"where": "lines 9 to 10", "reason": "a quote that does not end where its cell should: csv read these lines "
                                             "as one row, whatever rows they hold"},
        {"where": "line 16", "reason": "missing or non-http(s) url"},
        {"where": "line 17", "reason": "fewer cells than the header has columns"}]  # had been "empty text"


def test_csv_exports_with_the_usual_quirks_build(records, tmp_path):
    # a space after a closing quote, a cell opening with a quotation, MySQL's \" and an inner quote:
    # csv's strict mode had refused each (the whole file), where its usual reading takes them as meant
    quirks = ['"A title" ,{text}', '"Weird Al" Yankovic,{text}', 'T,"He said \\"hi\\" {text}"', 'T,"He said "hi" {text}"']
    rows = [f"q{i},https://a.example/q{i}," + quirk.format(text=records[i].text[:300].replace('"', "")
                                                          .replace(",", " ").replace("\n", " "))
            for i, quirk in enumerate(quirks * 3)]
    code, store = _build(tmp_path, "c.csv", ("id,url,title,text\n" + "\n".join(rows) + "\n").encode())
    assert code == 0 and store.size == len(rows)


@pytest.mark.parametrize("name, data, message", [
    ("c.jsonl.bz2", lambda lines: __import__("bz2").compress("\n".join(lines).encode())[:300], "ends early or is corrupt"),
    ("dump.xml.bz2", lambda lines: __import__("bz2").compress(b""), "not a MediaWiki XML dump"),
    ("c.csv", lambda lines: b'id,url,title,text\nx1,https://a.example/x,"never closed,text\nx2,https://a.example/y,t,text\n',
     "a quote opened on line 2 is never closed, so csv read the rest of the file as one cell"),
])
def test_a_file_broken_part_way_is_a_one_line_error(records, tmp_path, capsys, name, data, message):
    code, _ = _build(tmp_path, name, data(_jsonl_lines(records)))
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err and str(tmp_path / name) in err


@pytest.mark.parametrize("options, message", [
    (["--engines", ","], "--engines names no engine"),
    (["--engines", "lsi,foo"], "unknown engine(s) 'foo'"),
    (["--engines", "lsi,lsi"], "names an engine twice"),
    (["--default-engine", "bm25"], "--default-engine 'bm25' is not one of --engines"),
    (["--workers", "-2"], "--workers must be 0 or more"),
    (["--ann", "on", "--ann-dims", "-5"], "--ann-dims must be 0 or more"),
    (["--keep-versions", "1"], "--keep-versions must be 2 or more"),  # 1 had deleted a version still served
    (["--keep-n", "-1"], "--keep-n must be 1 or more"),  # had built one without its rarest word
    (["--no-below", "-1"], "--no-below must be 1 or more"),
    (["--lsi-dims", "-3"], "--lsi-dims must be 1 or more"),
    (["--max-token-len", "0"], "token lengths must satisfy"),
    (["--no-above", "0"], "--no-above is a share of the documents"),
    (["--no-above", "nan"], "--no-above is a share of the documents"),
    (["--stopwords", "francais"], "no stop list 'francais'"),  # had been said after the whole crawl
    (["--name", "x'\r\x1b[2K"], "is not a corpus name"),
    (["--columns", "title=headline"], "no column 'headline'"),
    # the crawl's options, read for any input: their fields' names had been said, not the options'
    (["--rate", "-1"], "--rate, the crawl's requests per second per host, must be above 0, not -1.0"),
    (["--per-host", "0"], "--per-host must be at least 1, not 0"),
    (["--retries", "-2"], "--retries cannot be negative, not -2"),
    (["--max-age", "-1"], "--max-age cannot be negative, not -1 (hours"),  # had been taken: every page fetched again
])
def test_options_that_cannot_work_are_refused_before_reading(records, tmp_path, capsys, options, message):
    header = "id,url,title,text\n"
    data = header + "".join(f'{r.id},{r.url},t,"{r.text[:200]}"\n' for r in records[:12])
    code, _ = _build(tmp_path, "c.csv", data.encode(), *options)
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err


def test_documents_all_alike_are_a_clear_error_not_a_crash(tmp_path, capsys):
    same = [json.dumps({"id": f"d{i}", "url": f"https://a.example/{i}", "text": "alpha beta gamma"}) for i in range(20)]
    code, _ = _build(tmp_path, "c.jsonl", "\n".join(same).encode(), "--no-above", "1")
    assert code == 1 and "nothing to rank by" in capsys.readouterr().err


def test_same_input_same_results(records, tmp_path):
    options = BuildOptions(name="wiki")
    first, _ = build([iter(records)], tmp_path / "a", options, progress=False)
    second, _ = build([iter(records)], tmp_path / "b", options, progress=False)
    a, b = Store(first), Store(second)
    for text in ("moon landing astronaut", "ancient greek philosophy", "ocean climate"):
        for engine in ("lsi", "tfidf"):
            assert neighbours(a, engine, text) == neighbours(b, engine, text)
    assert np.allclose(a.engines["lsi"].vectors, b.engines["lsi"].vectors, atol=1e-5)


def test_serving_vectorises_exactly_as_the_builder(records, tmp_path):
    final, _ = build([iter(records)], tmp_path / "w", BuildOptions(name="w", local="log"), progress=False)
    store = Store(final)
    lsi = store.engines["lsi"]
    for record in records[:10]:
        row = store.row_for_id(record.id)
        text = indexed_text(record.title, record.text, record.url)  # as a fetched page of it is read
        query = lsi.query_vector(store.terms(text))
        assert np.allclose(query, lsi.vectors[row], atol=1e-4)
        assert store.engines["tfidf"].search(store.terms(text), 1)[0].row == row


def test_a_documents_title_is_indexed_with_its_text(tmp_path):
    # crawled pages lose their heading to extraction, and a title is often the one place a post names
    # its subject: a query for it had found nothing
    posts = {"Growing tomatoes on a balcony": "Pots of at least twenty litres, a sunny wall and water daily.",
             "Roses in a small garden": "Prune in late winter and feed them in spring; water at the roots.",
             "Fixing a bike chain": "Shift to the smallest cog, find the quick link and clean every roller."}
    records = [Record(str(i), f"https://blog.example/{i}", title, text) for i, (title, text) in enumerate(posts.items())]
    with_titles, _ = build([iter(records)], tmp_path / "a", BuildOptions(name="a"), progress=False)
    store = Store(with_titles)
    assert store.index_titles and store.manifest["parameters"]["index_titles"] is True
    for word, expected in (("tomatoes", "0"), ("bike", "2"), ("roses", "1")):
        hits = store.engines["tfidf"].search(store.terms(word), 3)
        assert [store.docs([hit.row])[0].id for hit in hits] == [expected], word
    without, _ = build([iter(records)], tmp_path / "b", BuildOptions(name="b", index_titles=False), progress=False)
    assert not Store(without).index_titles and not len(Store(without).terms("tomatoes bike roses"))
    untitled = Record("9", "https://blog.example/9", "https://blog.example/9", "only the text")  # a title by default
    assert indexed_text(untitled.title, untitled.text, untitled.url) == "only the text"
    # a crawled page without a title, listed under the address it was redirected from: no URL words
    assert indexed_text("http://blog.example/9/", "only the text", "https://blog.example/9") == "only the text"


def test_tfidf_scores_match_gensim(records, tmp_path):
    """Our sparse engine against gensim's own TF-IDF + cosine index."""
    from gensim.corpora import Dictionary
    from gensim.models import TfidfModel
    from gensim.similarities import SparseMatrixSimilarity

    from function.tokens import tokenize

    final, _ = build([iter(records)], tmp_path / "w", BuildOptions(name="w", no_below=1, no_above=1.0,
                                                                   local="tf", global_weight="idf",
                                                                   index_titles=False),
                     progress=False)
    store = Store(final)
    texts = [tokenize(r.text, store.tokenizer) for r in records]
    dictionary = Dictionary(texts)
    tfidf = TfidfModel(dictionary=dictionary)
    index = SparseMatrixSimilarity(tfidf[[dictionary.doc2bow(t) for t in texts]], num_features=len(dictionary))
    query = "the first crewed lunar landing mission"
    expected = index[tfidf[dictionary.doc2bow(tokenize(query, store.tokenizer))]]
    hits = store.engines["tfidf"].search(store.terms(query), 5)
    for hit in hits:
        doc = store.docs([hit.row])[0]
        assert hit.score == pytest.approx(expected[[r.id for r in records].index(doc.id)], abs=1e-4)
    assert [h.row for h in hits] == list(np.argsort(-expected)[:5])


def test_a_failed_build_leaves_the_live_version_untouched(records, tmp_path):
    final, _ = build([iter(records[:20])], tmp_path / "w", BuildOptions(name="w"), progress=False)

    def broken():
        yield from records[:10]
        raise OSError("disk went away")

    with pytest.raises(OSError):
        build([broken()], tmp_path / "w", BuildOptions(name="w"), progress=False)
    assert current_version_dir(tmp_path / "w") == final
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == sorted([".update.lock", "CURRENT", final.name])
    assert Store(final).size == 20


def test_rebuild_is_picked_up_without_restart_and_old_versions_pruned(records, tmp_path):
    first, _ = build([iter(records[:20])], tmp_path / "w", BuildOptions(name="w", keep_versions=2), progress=False)
    stores = StoreSet(tmp_path, check_every=0)
    assert stores.get("w").size == 20
    second, _ = build([iter(records[:30])], tmp_path / "w", BuildOptions(name="w", keep_versions=2), progress=False)
    assert stores.get("w").size == 30 and stores.get("w").path == second
    third, _ = build([iter(records[:40])], tmp_path / "w", BuildOptions(name="w", keep_versions=2), progress=False)
    assert not first.exists() and second.exists() and third.exists()


def test_a_build_after_a_rollback_keeps_the_version_rolled_back_to(records, tmp_path):
    """The README's rollback points CURRENT at an older version: the next build's pruning kept the
    newest versions by name, so it deleted the version live until then (served by running workers
    until their next look at CURRENT) and kept the one rolled back from."""
    options = BuildOptions(name="w", keep_versions=2)
    first, _ = build([iter(records[:20])], tmp_path / "w", options, progress=False)
    second, _ = build([iter(records[:30])], tmp_path / "w", options, progress=False)
    (tmp_path / "w" / "CURRENT").write_text(first.name + "\n")  # rolled back
    stores = StoreSet(tmp_path, check_every=0)
    assert stores.get("w").path == first
    third, _ = build([iter(records[:40])], tmp_path / "w", options, progress=False)
    assert first.exists() and third.exists()
    assert Store(first).size == 20  # what to go back to, again, if the new one is bad
    assert not second.exists()  # the version rolled back from is the one past --keep-versions


def test_a_new_corpus_is_named_without_a_restart(records, tmp_path):
    """The query's corpus is checked against names(): a corpus built while serving had been refused
    (404 unknown_corpus) until something called get()."""
    build([iter(records[:20])], tmp_path / "w", BuildOptions(name="w"), progress=False)
    stores = StoreSet(tmp_path, check_every=0)
    assert stores.names() == ["w"]
    build([iter(records[:20])], tmp_path / "v", BuildOptions(name="v"), progress=False)
    assert stores.names() == ["v", "w"]


def test_a_store_broken_while_serving_never_fails_a_request(records, tmp_path, caplog):
    first, _ = build([iter(records[:20])], tmp_path / "w", BuildOptions(name="w", keep_versions=3), progress=False)
    stores = StoreSet(tmp_path, check_every=0)
    second, _ = build([iter(records[:30])], tmp_path / "w", BuildOptions(name="w", keep_versions=3), progress=False)
    (second / "docs.sqlite").write_bytes(b"not a database")  # a broken new version: the old one stays
    assert stores.get("w").path == first
    late, _ = build([iter(records[:25])], tmp_path / "late", BuildOptions(name="late"), progress=False)
    (late / "manifest.json").unlink()  # a new corpus that cannot open: not served, nothing raised
    assert stores.get("late") is None and stores.names() == ["w"]
    moved = tmp_path.with_name(tmp_path.name + "-moved")
    tmp_path.rename(moved)  # MODEL_STORE gone: the open stores keep serving
    try:
        assert stores.get("w").path == first and stores.get("w").size == 20
    finally:
        moved.rename(tmp_path)
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "still serving the previous version" in messages and "corpus not served" in messages
    assert "serving the stores already open" in messages


def test_a_corpus_whose_current_file_goes_while_serving_keeps_being_served(records, tmp_path, caplog):
    """CURRENT gone (an operator's slip, a copy half done) is no reason to stop serving the version
    open: only a corpus whose folder is gone is no longer served."""
    final, _ = build([iter(records[:20])], tmp_path / "w", BuildOptions(name="w"), progress=False)
    build([iter(records[:25])], tmp_path / "v", BuildOptions(name="v"), progress=False)
    stores = StoreSet(tmp_path, check_every=0)
    (tmp_path / "w" / "CURRENT").unlink()
    assert stores.get("w").path == final and stores.names() == ["v", "w"]
    assert "no longer served" not in caplog.text
    (tmp_path / "v").rename(tmp_path / ".v-gone")  # a hidden folder is no corpus: v is gone
    assert stores.names() == ["w"] and "corpus v: no longer served" in caplog.text


def test_a_bare_version_folder_is_read_as_its_own_corpus(records, tmp_path, capsys):
    """A version folder (its manifest, no CURRENT) given where a corpus folder goes is that version:
    as MODEL_STORE's corpus folder (a version copied out of its corpus) and to verify."""
    final, _ = build([iter(records[:20])], tmp_path / "built" / "w", BuildOptions(name="w"), progress=False)
    assert current_version_dir(final) == final
    root = tmp_path / "store"
    root.mkdir()
    final.rename(root / "copied")
    stores = StoreSet(root, check_every=0)
    assert stores.names() == ["copied"] and stores.get("copied").path == root / "copied"
    assert stores.get("copied").size == 20
    from function.store import main as store_main

    assert store_main(["verify", str(root / "copied")]) == 0
    assert capsys.readouterr().out.startswith(f"ok  {root / 'copied'}  20 documents")
    (root / "empty").mkdir()  # neither CURRENT nor a manifest: no corpus, said so
    with pytest.raises(StoreError, match="no store at .*empty .missing .*CURRENT"):
        current_version_dir(root / "empty")
    assert stores.names() == ["copied"]

def test_empty_input_is_refused(tmp_path):
    with pytest.raises(StoreError, match="no usable documents in the input [(]1 skipped: line 1: empty text[)]"):
        build([iter([Skip("line 1", "empty text")])], tmp_path / "w", BuildOptions(name="w"), progress=False)
    assert not (tmp_path / "w" / "CURRENT").exists()


def test_a_records_url_past_2048_characters_is_skipped_and_its_title_is_cut():
    from function.records import record_from_fields

    # its click link had been 60,000 characters and a 414; a 200,000-character title went into every answer
    long_url = record_from_fields({"id": "1", "url": "https://a.example/" + "x" * 3000, "text": "words"}, "line 1")
    assert isinstance(long_url, Skip) and long_url.reason == "url longer than 2048 characters"
    titled = record_from_fields({"id": "2", "url": "https://a.example/2", "title": "Moon " * 40_000, "text": "w"}, "")
    assert len(titled.title) <= 300 and titled.title.endswith("Moon…")


def test_a_record_is_held_to_what_a_fetched_page_is_held_to():
    """A corpus record had given click links to a URL with a password in it, a title that turned
    the rest of a widget's line around (U+202E, taken out of a fetched page's), and an id with
    control characters, which click links and events carry as they are."""
    from function.records import record_from_fields

    def read(**fields):
        return record_from_fields({"id": "1", "url": "https://a.example/1", "text": "words", **fields}, "line 1")

    for url in ("https://user:secret@a.example/1", "https://user@a.example/1"):
        assert read(url=url) == Skip("line 1", "url holds a user name or password")
    assert read(url="https://a.example/@user").url == "https://a.example/@user"  # an @ in the path is a path
    for bad_id in ("a\x1fb", "\u202e", "a14 \u2028x"):
        assert read(id=bad_id) == Skip("line 1", "id holds control or invisible characters", unread=True)
    # a host no Location header can spell had made every click a 500; a bidi override in a path is
    # shown to readers as it is, and an empty title fell back to that URL as it was
    for url in ("https://\u202eevil.com/x", "https://\u00e9..com/", "https://" + "\u00e9" * 70 + ".com/"):
        assert read(url=url).reason.startswith("url with no host, a host no IDNA name can be"), url
    for url in ("https://ex.com/\u202egnp.exe", "https://ex.com/a\u200bb", "https://ex.com/\u2029"):
        assert read(url=url, title="").reason.startswith("url with invisible characters"), url
    assert read(url="https://caf\u00e9.example/cr\u00e8me", title="").title == "https://caf\u00e9.example/cr\u00e8me"
    assert read(title="Moon\u200f landing\ufeff \u061c").title == "Moon landing"
    assert read(id=" 42\r\n").id == "42"  # an export's line end around an id is not part of it, as before
    assert read(title="\u202egnp.exe Moon \u2066landing\u2069").title == "gnp.exe Moon landing"


def test_a_build_that_fails_says_what_it_skipped(tmp_path):
    # its skipped.jsonl goes with its temporary folder: the message is all that is left of a bad line
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(json.dumps({"id": "1", "url": "https://a.example/1", "text": "hello world"}) + "\n"
                      + '{"id": 2, bad\n' + "\n".join(f'{{"id": "{i}"}}' for i in range(3, 7)) + "\n")
    with pytest.raises(StoreError) as failed:
        build([open_source(corpus)], tmp_path / "w", BuildOptions(name="w"), progress=False)
    assert str(failed.value).startswith("no vocabulary left after pruning: the corpus (1 document) is too small")
    assert str(failed.value).endswith("(5 skipped: line 2: bad JSON at column 11: Expecting property name enclosed "
                                      "in double quotes; line 3: missing or non-http(s) url; line 4: missing "
                                      "or non-http(s) url; ...)")


# -- a store that cannot serve stops the function at start ----------------------------
@pytest.fixture
def small_store(records, tmp_path):
    final, _ = build([iter(records[:30])], tmp_path / "store" / "wiki", BuildOptions(name="wiki"), progress=False)
    return tmp_path / "store", final


def corrupt_same_size(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,expect", [
    (lambda v: (v / "engines" / "lsi" / "vectors.npy").unlink(), "missing"),
    (lambda v: (v / "docs.sqlite").write_bytes((v / "docs.sqlite").read_bytes()[:1000]), "truncated"),
    (lambda v: corrupt_same_size(v / "engines" / "tfidf" / "post_weights.npy"), "checksum"),
    (lambda v: (v / "manifest.json").write_text(json.dumps({**json.loads((v / "manifest.json").read_text()),
                                                             "format_version": 999})), "version 999"),
    (lambda v: (v / "manifest.json").unlink(), "missing"),
])
def test_damaged_store_refuses_to_start_naming_the_file(small_store, function_env, damage, expect):
    root, version_dir = small_store
    damage(version_dir)
    with pytest.raises(StoreError, match=expect):
        Store(version_dir)
    proc = FunctionProcess({**function_env, "MODEL_STORE": str(root)})
    assert proc.process.wait(60) != 0
    output = proc.output()
    assert "cannot start" in output and expect in output
    assert "Rebuild the store" in output or "Build it" in output


def test_missing_store_refuses_to_start_with_what_to_do(function_env, tmp_path):
    proc = FunctionProcess({**function_env, "MODEL_STORE": str(tmp_path)})
    assert proc.process.wait(60) != 0
    output = proc.output()
    assert "DEFAULT_CORPUS='wiki' has no store" in output and f"--out {tmp_path / 'wiki'}" in output
    # make model-store builds the repository's model_store/wiki: offered for it alone (a MODEL_STORE
    # elsewhere had been told to run it, which built the sample where it was not looked for)
    assert "make model-store" not in output
    from function.app import resolve_default_corpus
    from function.config import Settings
    from function.store import MAKE_MODEL_STORE_BUILDS, build_advice, store_advice

    assert build_advice(MAKE_MODEL_STORE_BUILDS).startswith("make model-store, or python -m function.build")
    assert store_advice(MAKE_MODEL_STORE_BUILDS.parent).startswith("make model-store, or ")
    assert store_advice(tmp_path / "none") == f"python -m function.build --input CORPUS --out {tmp_path / 'none' / 'NAME'}."
    with pytest.raises(StoreError, match="is not a folder. Build a store: python -m function.build") as refused:
        StoreSet(tmp_path / "none")

    with pytest.raises(StoreError) as refused:
        resolve_default_corpus(Settings.from_env({**function_env, "DEFAULT_CORPUS": "blog"}), ["wiki"])
    assert "make model-store" not in str(refused.value) and "--out" in str(refused.value)


def test_store_verify_cli_hashes_everything(small_store):
    root, version_dir = small_store
    ok = subprocess.run([sys.executable, "-m", "function.store", "verify", str(root / "wiki")], cwd=ROOT,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "ok" in ok.stdout
    corrupt_same_size(version_dir / "engines" / "lsi" / "projection.npy")
    bad = subprocess.run([sys.executable, "-m", "function.store", "verify", str(root / "wiki")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "checksum" in bad.stdout


def test_store_verify_cli_finds_damage_the_sampled_start_check_misses(small_store):
    """A file past FULL_HASH_MAX_BYTES is checked at start by sampled blocks only; verify hashes it
    all. A large docs.sqlite (here padded past the bound, as a big corpus's is) damaged between two
    blocks opens, and verify says it is corrupt."""
    import sqlite3

    from function.store import FULL_HASH_MAX_BYTES, SAMPLE_BLOCK_BYTES, SAMPLE_BLOCKS, describe_file

    root, version_dir = small_store
    docs = version_dir / "docs.sqlite"
    with sqlite3.connect(docs) as db:
        db.execute("CREATE TABLE pad (b BLOB)")
        db.execute("INSERT INTO pad VALUES (zeroblob(?))", (FULL_HASH_MAX_BYTES + (1 << 20),))
    db.close()
    manifest_path = version_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["docs.sqlite"] = describe_file(docs)
    manifest_path.write_text(json.dumps(manifest))
    size = docs.stat().st_size
    assert size > FULL_HASH_MAX_BYTES
    # the middle of the gap after the middle block: no sampled block reads it
    step = (size - SAMPLE_BLOCK_BYTES) // (SAMPLE_BLOCKS - 1)
    middle = SAMPLE_BLOCKS // 2
    offset = middle * step + SAMPLE_BLOCK_BYTES + (step - SAMPLE_BLOCK_BYTES) // 2
    with open(docs, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert Store(version_dir).size == 30  # the start's sampled check does not see it
    bad = subprocess.run([sys.executable, "-m", "function.store", "verify", str(root / "wiki")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and f"store file {docs} fails its checksum" in bad.stdout

@pytest.mark.parametrize("name", ["vocab.npy", "engines/lsi/vectors.npy", "engines/tfidf/post_ptr.npy"])
def test_store_verify_cli_names_a_truncated_file_and_how_to_rebuild_its_corpus(records, tmp_path, name):
    # a truncated .npy had failed while the store was opened, before the check: numpy's traceback
    final, _ = build([iter(records[:30])], tmp_path / "blog", BuildOptions(name="blog"), progress=False)
    path = final / name
    path.write_bytes(path.read_bytes()[:40])
    bad = subprocess.run([sys.executable, "-m", "function.store", "verify", str(tmp_path / "blog")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stdout + bad.stderr, bad.stderr
    assert f"store file {path} has 40 bytes" in bad.stdout
    assert f"--out {tmp_path / 'blog'}" in bad.stdout and "make model-store" not in bad.stdout  # it builds wiki


def test_term_ids_are_right_while_threads_share_a_small_word_cache(model_store):
    """The word -> id cache is swapped for a new dict when full; a request in another thread
    must still see every one of its words."""
    import threading

    from function.store import Vocabulary
    from function.tokens import tokenize

    store = Store(current_version_dir(model_store / "wiki"))
    texts = [" ".join(store.docs([row])[0].title for row in range(start, start + 8)) * 3
             for start in range(0, 96, 8)]
    expected = [store.vocabulary.terms(tokenize(text, store.tokenizer)) for text in texts]
    vocabulary = Vocabulary(store.vocabulary.tokens, remember=20)  # swapped every few requests
    wrong = []

    def ask(repeats):
        for _ in range(repeats):
            for text, want in zip(texts, expected):
                got = vocabulary.terms(tokenize(text, store.tokenizer))
                if not (np.array_equal(got.ids, want.ids) and np.array_equal(got.counts, want.counts)):
                    wrong.append(text)

    threads = [threading.Thread(target=ask, args=(150,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(want) for want in expected)
    assert wrong == []


def test_the_first_and_last_words_of_the_vocabulary_are_known(model_store):
    """The words at either end of the sorted vocabulary have ids like any other, and a word that
    sorts after every one of them is unknown, not an error."""
    from function.store import Vocabulary

    tokens = Store(current_version_dir(model_store / "wiki")).vocabulary.tokens
    first, last = str(tokens[0]), str(tokens[-1])
    terms = Vocabulary(tokens).terms([last, first, last, "\U0010fffd"])  # the last sorts after every word
    assert terms.ids.tolist() == [0, len(tokens) - 1] and terms.counts.tolist() == [1, 2]


@pytest.mark.parametrize("size", [7, 900, 64 * 60 + 13, 10_017, 40_000])
def test_top_k_is_the_head_of_a_full_sort(size):
    """The selection (group maxima, then the rows of the groups that reach their floor) against
    sorting every score: the same rows in the same order, ties by row, excluded and -inf rows
    left out; with many ties, mostly zero or -inf scores (a sparse engine's), and NaN."""
    from function.store import top_k

    rng = np.random.default_rng(size)
    for trial in range(60):
        scores = rng.standard_normal(size).astype(np.float32)
        if trial % 3 == 0:
            scores = np.round(scores, 1)  # ties, also across the k-th place
        if trial % 4 == 0:
            scores[rng.integers(0, size, size // 2)] = -np.inf
        if trial % 5 == 0:  # a few matches, zero elsewhere
            scores = np.where(rng.random(size) < 0.002, np.abs(scores), 0).astype(np.float32)
        if trial % 6 == 0:  # a sparse engine's: a few matches, -inf elsewhere
            scores = np.where(rng.random(size) < 0.002, np.abs(scores), -np.inf).astype(np.float32)
        if trial % 7 == 0:  # NaN: last in a full sort, so never among the hits
            scores[rng.integers(0, size, 1 + size // 100)] = np.nan
        k = int(rng.integers(1, 40))
        exclude = tuple(int(row) for row in rng.integers(0, size, int(rng.integers(0, 3))))
        masked = scores.copy()
        masked[list(exclude)] = -np.inf
        order = np.lexsort((np.arange(size), -masked))[:k]
        want = [(int(row), float(masked[row])) for row in order if masked[row] > -np.inf]
        got = top_k(scores, k, exclude)
        assert [(hit.row, hit.score) for hit in got] == want  # ties: the lowest rows, in row order
        assert not set(exclude) & {hit.row for hit in got}


def test_top_k_ties_in_many_groups_go_to_the_lowest_rows():
    """The k-th best is tied in more groups than the floor narrows the search to (every row is
    read again): the lowest tied rows win."""
    from function.store import top_k

    scores = np.zeros(1280, np.float32)
    scores[:64] = np.resize([3, 1], 64)  # 3 at even rows, 1 at odd, 0 past row 63
    assert [hit.row for hit in top_k(scores, 3, ())] == [0, 2, 4]


def test_top_k_larger_than_a_sparse_engines_matches_gives_them_all():
    """MAX_K allows k in the thousands: more than the rows a sparse query matches (the rest -inf)."""
    from function.store import PYTHON_RANKS, top_k

    rng = np.random.default_rng(7)
    scores = np.full(100_000, -np.inf)
    matches = np.sort(rng.choice(len(scores), 2 * PYTHON_RANKS, replace=False))
    scores[matches] = np.round(rng.random(len(matches)), 2)  # ties too
    got = top_k(scores, 3 * PYTHON_RANKS, ())
    assert [hit.row for hit in got] == matches[np.lexsort((matches, -scores[matches]))].tolist()


def test_a_sparse_engine_answers_only_the_documents_sharing_a_word(model_store):
    """k past the matches: the documents holding the word, each scored above 0, and none of the
    others (a document sharing no word is not related at all, not related with a score of 0)."""
    store = Store(current_version_dir(model_store / "wiki"))
    tfidf = store.engines["tfidf"]
    terms = store.terms("astronaut")
    (word,) = terms.ids.tolist()
    holding = [row for row in range(store.size)
               if word in tfidf.doc_terms[tfidf.doc_ptr[row]:tfidf.doc_ptr[row + 1]].tolist()]
    hits = tfidf.search(terms, store.size)
    assert 0 < len(holding) < store.size // 10
    assert sorted(hit.row for hit in hits) == holding and min(hit.score for hit in hits) > 0


def _sparse_cosine(engine, first, second):
    """Two rows' cosine, term by term from their own weights (a row's terms are in ascending order)."""
    (terms, weights), (other_terms, other_weights) = [
        (engine.doc_terms[engine.doc_ptr[row]:engine.doc_ptr[row + 1]],
         engine.doc_weights[engine.doc_ptr[row]:engine.doc_ptr[row + 1]]) for row in (first, second)]
    shared, at, other_at = np.intersect1d(terms, other_terms, assume_unique=True, return_indices=True)
    return float(weights[at] @ other_weights[other_at])


def test_a_sparse_engines_near_duplicate_screen_loses_no_pair(model_store):
    """The sketches only bound a pair's cosine: every pair at or past a threshold is found, as its
    rows' cosines term by term say, and no other. The Wikipedia sample's articles are distinct (at most
    0.42 apart), so the thresholds here are low ones, to have near pairs to find."""
    store = Store(current_version_dir(model_store / "wiki"))
    tfidf = store.engines["tfidf"]
    rng = np.random.default_rng(7)
    found = 0
    for _ in range(40):
        rows = [int(row) for row in rng.choice(store.size, int(rng.integers(2, 25)), replace=False)]
        exact = np.array([[_sparse_cosine(tfidf, a, b) for b in rows] for a in rows])
        off_diagonal = ~np.eye(len(rows), dtype=bool)
        assert np.allclose(tfidf.similarities(rows)[off_diagonal], exact[off_diagonal], atol=1e-5)
        for threshold in (0.15, 0.25, 0.35):
            near = tfidf.near_duplicates(rows, threshold)
            assert (near == ((exact >= threshold) & off_diagonal)).all(), (rows, threshold)
            found += int(near.sum())
    assert found > 100  # the screen was passed, and read term by term, many times


def test_an_lsi_engines_near_duplicates_are_the_pairs_its_vectors_put_past_the_threshold(model_store):
    """The pairs of an answer's rows (a row given twice among them) at or past a threshold, as the rows'
    vectors say, and no other: the row's copy is near it."""
    store = Store(current_version_dir(model_store / "wiki"))
    lsi = store.engines["lsi"]
    rng = np.random.default_rng(11)
    found = 0
    for size in (2, 6, 11, 40):
        for _ in range(10):
            rows = [int(row) for row in rng.choice(store.size, size - 1, replace=False)]
            rows.insert(int(rng.integers(0, size)), rows[0])  # a row twice: its copy is near it
            vectors = np.asarray(lsi.vectors[rows], dtype=np.float64)
            cosines = vectors @ vectors.T
            off_diagonal = ~np.eye(size, dtype=bool)
            for threshold in (0.3, 0.5, 0.99):
                near = lsi.near_duplicates(rows, threshold)
                sure = np.abs(cosines - threshold) > 1e-4  # float32's rounding aside
                assert (near == ((cosines >= threshold) & off_diagonal))[sure].all(), (rows, threshold)
                assert near[rows.index(rows[0]), len(rows) - 1 - rows[::-1].index(rows[0])]
                found += int(near.sum())
    assert found > 40


def test_a_sparse_engines_near_duplicates_past_its_screen_are_read_together(model_store):
    """An answer's hits that are all one text (a corpus that holds a page many times) pass the screen
    in every pair: all are near one another, and the one other row near none (read pair by pair, 105
    hits, 5,460 pairs at ~45 us each, had cost 240 ms an answer; they are read together)."""
    store = Store(current_version_dir(model_store / "wiki"))
    tfidf = store.engines["tfidf"]
    rows = [3] * 105 + [4]
    near = tfidf.near_duplicates(rows, 0.8)
    assert near[:105, :105].sum() == 105 * 104 and not near[105].any() and not near[:, 105].any()


def test_top_k_many_ties_in_the_groups_read_again_go_to_the_lowest_rows():
    """Hundreds of rows tied at the k-th best, all in the few groups the floor selects (rows g,
    g + groups, g + 2 groups, ...): the lowest of them win."""
    from function.store import GROUP_ROWS, PYTHON_RANKS, top_k

    scores = np.zeros(10_017, np.float32)
    groups = len(scores) // GROUP_ROWS
    tied = np.concatenate([np.arange(g, groups * GROUP_ROWS, groups) for g in range(3, 60, 3)])
    scores[tied] = 1
    assert len(tied) > PYTHON_RANKS  # past what the selection ranks in Python
    assert [hit.row for hit in top_k(scores, 10, ())] == sorted(tied)[:10]


def test_membership_by_url_is_kept_in_bounded_memory(model_store):
    """Every URL request asks whether its page is a member; the answers are kept per store, and
    long addresses (a normalised URL %-escapes what it holds: up to 24 KB) cost no more than short."""
    import tracemalloc

    store = Store(current_version_dir(model_store / "wiki"))
    member = store.docs([0])[0]
    assert store.row_for_url_key(member.url_key) == store.row_for_url_key(member.url_key) == 0
    assert store.row_for_url_key(member.url_key + "/not-a-member") is None
    assert store.row_for_url_key(member.url_key + "/not-a-member") is None  # again: a kept "not a member"
    tail = "%F0%9F%8C%8D" * 1300  # 15.6 KB
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5000):  # each a new string, as each request's key is
            assert store.row_for_url_key(f"https://example.org/{i}/{tail}") is None
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 2_000_000, kept  # 4,096 of these keys kept whole would be 64 MB
    assert store.row_for_url_key(member.url_key) == 0


# -- Chinese, Japanese and Korean: no spaces between words (Hangul: particles joined to them) -------


def test_a_chinese_corpus_finds_the_article_on_the_same_subject(tmp_path):
    lines = [json.dumps({"id": name, "url": f"https://news.example/{name}", "title": name, "text": text},
                        ensure_ascii=False) for name, text in CHINESE_ARTICLES.items()]
    code, store = _build(tmp_path, "zh.jsonl", "\n".join(lines).encode(), "--engines", "tfidf")
    assert code == 0 and store.manifest["tokenizer"]["revision"] == REVISION
    for query, subject in [("主队在足球比赛中进了两球", "football"), ("卫星由火箭发射升空", "rocket"),
                           ("医院门诊的病人挂号", "hospital"), ("明天降雪，气温下降", "weather")]:
        hits = store.engines["tfidf"].search(store.terms(query), 3)
        assert hits[0].row == store.row_for_id(subject), query


def test_a_thai_corpus_finds_the_article_on_the_same_subject(tmp_path):
    """Thai is written without spaces between words: its runs had been words of their own, most
    past max_len and dropped, and its tone marks stripped as accents."""
    lines = [json.dumps({"id": name, "url": f"https://news.example/th/{name}", "title": name, "text": text},
                        ensure_ascii=False) for name, text in THAI_ARTICLES.items()]
    code, store = _build(tmp_path, "th.jsonl", "\n".join(lines).encode(), "--engines", "tfidf")
    assert code == 0 and store.size == len(THAI_ARTICLES)
    for query, subject in [("ทีมฟุตบอลชนะการแข่งขัน", "football"), ("ดาวเทียมขึ้นสู่อวกาศ", "rocket"),
                           ("ผู้ป่วยที่โรงพยาบาล", "hospital"), ("ฝนตกหนักและน้ำท่วม", "weather"),
                           ("ข้าวแพง", "rice"), ("ผนังสีขาว", "white"), ("สอบเข้ามหาวิทยาลัย", "exam")]:
        hits = store.engines["tfidf"].search(store.terms(query), 3)
        assert hits and hits[0].row == store.row_for_id(subject), query


def test_a_word_of_max_len_letters_is_kept_and_a_longer_one_left_out():
    from function.tokens import TokenizerOptions, tokenize

    assert tokenize("x" * 20 + " " + "y" * 21) == ["x" * 20]
    assert tokenize("ab abc", TokenizerOptions(min_len=3, max_len=3)) == ["abc"]


def test_words_are_read_whole_in_every_script():
    from function.tokens import TokenizerOptions, tokenize

    assert tokenize("召开会议，讨论预算。") == ["召开", "开会", "会议", "讨论", "论预", "预算"]  # CJK: pairs
    assert tokenize("2026年iPhone发布") == ["年", "iphone", "发布"]  # digits dropped, as anywhere
    assert tokenize("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert tokenize("ドイツのバス") == ["ドイ", "イツ", "ツの", "のバ", "バス"]  # not "トイ", "ハス"
    assert tokenize("ﾄﾞｲﾂ") == ["ドイ", "イツ"]  # half-width kana, as the full-width
    assert tokenize("㍿") == ["株式", "式会", "会社"]
    assert tokenize("시의회는 회의를") == ["시의", "의회", "회는", "회의", "의를"]  # syllables, not their letters
    # vowel signs inside a word: they had cut it apart ("क", "त", "ब"); the virama spells it too
    assert tokenize("किताब हिन्दी पक्का") == ["किताब", "हिन्दी", "पक्का"]
    assert tokenize("বোন তামিল") == ["বোন", "তামিল"] and tokenize("தமிழ்") == ["தமிழ்"]
    assert tokenize("Café au lait, naïve 2026") == ["cafe", "au", "lait", "naive"]
    # accents writers may leave off go: Greek, Cyrillic stress, Arabic and Hebrew vowel points
    assert tokenize("Ἀθῆναι Москва́ مُحَمَّد שָׁלוֹם") == ["αθηναι", "москва", "محمد", "שלום"]
    # Thai, Lao, Khmer, Myanmar: no spaces between words, so pairs of clusters (a letter and its marks)
    assert tokenize("ข้าว ขาว") == ["ข้า", "าว", "ขา", "าว"]  # rice, white: a tone mark apart
    assert tokenize("ภาษาไทย") == ["ภา", "าษ", "ษา", "าไ", "ไท", "ทย"]
    assert tokenize("ພາສາລາວ") == ["ພາ", "າສ", "ສາ", "າລ", "ລາ", "າວ"]
    assert tokenize("ភាសាខ្មែរ") == ["ភាសា", "សាខ្មែ", "ខ្មែរ"]  # a letter stacked under another is its cluster
    assert tokenize("မြန်မာစာ") == ["မြန်", "န်မာ", "မာစာ"]
    assert tokenize("ไทย2026ไทย") == ["ไท", "ทย", "ไท", "ทย"]  # the digits between, dropped as anywhere
    longer = TokenizerOptions(min_len=3)  # a pair is a word, as a CJK pair is, whatever min_len says
    assert tokenize("ข้าวแพง 会议室 ab abc", longer) == ["ข้า", "าว", "วแ", "แพ", "พง", "会议", "议室", "abc"]
    # a word is read alike whatever stands beside it
    for word in ("ஔவையார்", "ဦးသိန်းစိန်", "café", "বোন"):  # Tamil's and Myanmar's two-part letters too
        assert tokenize(word + " 会")[:-1] == tokenize(word), word
    assert tokenize("佐々木さん") == ["佐々", "々木", "木さ", "さん"]  # the iteration mark is part of the name


def test_a_store_built_before_revisions_reads_its_text_as_it_was_built():
    from function.tokens import TokenizerOptions, tokenize

    before = TokenizerOptions.from_dict({"min_len": 1, "max_len": 20, "numbers": False, "deaccent": True,
                                         "stopwords": ""})
    assert before.revision == 1
    assert tokenize("召开会议，讨论预算。", before) == ["召开会议", "讨论预算"]
    assert tokenize("किताब", before) == ["क", "त", "ब"]
    clause = "市议会周二晚间召开会议讨论明年的预算安排道路维修" * 2  # past max_len: dropped, as it was
    assert tokenize(clause + "，好。", TokenizerOptions.from_dict({"min_len": 2})) == []
    # and revision 2's stores, as they were built: every mark stripped, Thai runs whole
    second = TokenizerOptions.from_dict({**before.to_dict(), "revision": 2})
    assert tokenize("किताब हिन्दी", second) == ["किताब", "हिनदी"] and tokenize("தமிழ்", second) == ["தமிழ"]
    assert tokenize("ข้าว ภาษาไทย", second) == ["ขาว", "ภาษาไทย"]
    assert tokenize("召开会议，讨论预算。", second) == tokenize("召开会议，讨论预算。")
    # and revision 3's: letters such as œ kept, jusText's stop lists (with subjects among them)
    third = TokenizerOptions.from_dict({**before.to_dict(), "revision": 3, "stopwords": "English"})
    assert tokenize("Œufs at school", third) == ["œufs"] and third.stopwords == "English"
    # and revision 4's: a hyphenated compound is its words only, a soft hyphen cuts a word in two
    fourth = TokenizerOptions.from_dict({**before.to_dict(), "revision": 4})
    assert tokenize("Wi-Fi e-mail", fourth) == ["wi", "fi", "e", "mail"]
    assert tokenize("inter\u00adnational", fourth) == ["inter", "national"]
    # and revision 5's: a compound with an elided second word joined too
    fifth = TokenizerOptions.from_dict({**before.to_dict(), "revision": 5})
    assert tokenize("main-d'œuvre", fifth) == ["main", "d", "oeuvre", "maind"]
    # and a one-letter first word kept as a word, a chain joined nowhere
    assert tokenize("E-Mail-Adresse, X-ray", fifth) == ["e", "mail", "adresse", "x", "ray", "xray"]
    # and revision 6's: a chain joined on a second word of two letters, a compound of two long words
    # one of which is a stop word not joined
    sixth = TokenizerOptions.from_dict({**before.to_dict(), "revision": 6, "stopwords": "french"})
    assert tokenize("i-dm-i, Grande-Bretagne", sixth) == ["i", "dm", "i", "bretagne", "idm"]
    with pytest.raises(ValueError, match="revision 8"):
        TokenizerOptions.from_dict({"revision": 8})


def test_a_hyphenated_compound_meets_its_spelling_run_together():
    """Readers and writers spell compounds both ways: a query "wifi" had no word a store of "Wi-Fi"
    knew (a 422), nor "email" one of "e-mail". A compound is its words and, as well, the two run
    together; a phrase, a range or a date is its words only."""
    from function.tokens import TokenizerOptions, tokenize

    for hyphenated, joined in (("Wi-Fi", "wifi"), ("e-mail", "email"), ("co-operate", "cooperate"),
                               ("on-line", "online"), ("week-end", "weekend"), ("pre\u2011war", "prewar")):
        assert set(tokenize(joined)) < set(tokenize(hyphenated)), hyphenated  # each meets the other
        assert tokenize(hyphenated)[:2] == tokenize(hyphenated.replace("-", " ").replace("\u2011", " "))
    assert tokenize("Wi-Fi") == ["wi", "fi", "wifi"]  # its words still: "Wi-Fi" meets "Wi-Fi" as before
    assert tokenize("state-of-the-art decision-making") == ["state", "of", "the", "art", "decision", "making"]
    assert tokenize("1990-2000, 2026-11-27, COVID-19, 10th-century", TokenizerOptions(numbers=True)) == \
        ["1990", "2000", "2026", "11", "27", "covid", "19", "10th", "century"]
    assert tokenize("pre- and post-war") == ["pre", "and", "post", "war", "postwar"]
    assert tokenize("1990\u20132000 wi\u2014fi", TokenizerOptions(numbers=True)) == ["1990", "2000", "wi", "fi"]  # dashes
    assert tokenize("inter\u00adnational Wi\u00adFi") == ["international", "wifi"]  # a soft hyphen only breaks lines
    assert tokenize("Café-crème, माता-पिता") == ["cafe", "creme", "माता", "पिता", "cafecreme", "मातापिता"]
    assert tokenize("中文-英文") == ["中文", "英文"]  # read as pairs: no pair across the hyphen
    # run together before the stop list and the stemmer: "on" and "line" are stop words, "online" is not
    assert tokenize("On-line e-mails", TokenizerOptions(stopwords="en", stem="english")) == ["mail", "onlin", "email"]


def test_letters_readers_spell_plainly_meet_their_plain_spelling():
    """A French reader types "oeufs" for "œufs", a German "strasse": they had not met."""
    from function.tokens import tokenize

    assert tokenize("Œufs, bœuf, cœur, Straße, Ærø, Łódź, Đakovo") == \
        tokenize("oeufs, boeuf, coeur, strasse, aero, lodz, dakovo")


def test_umlauts_typed_as_two_letters_meet_only_through_the_german_stemmer():
    """As the README says: a German reader without umlaut keys types "Muenchen"; the Snowball German
    stemmer (PyStemmer 3.1) reads ae/oe/ue as the umlauts, deaccenting alone does not."""
    from function.tokens import TokenizerOptions, tokenize

    german = TokenizerOptions(stopwords="de", stem="german")
    assert tokenize("Muenchen Spaetzle Gruesse", german) == tokenize("München Spätzle Grüße", german)
    assert tokenize("Muenchen Spaetzle") != tokenize("München Spätzle")
    # a chain of three is its words alone in revision 5: "E-Mail-Adresse" had no "email", where "E-Mail" has
    fifth = TokenizerOptions(revision=5)
    assert tokenize("E-Mail-Adresse", fifth) == ["e", "mail", "adresse"] and "email" in tokenize("E-Mail", fifth)


def test_a_chain_whose_first_word_is_one_letter_joins_its_first_pair_from_revision_6(tmp_path):
    """A German reader asking "email" had missed an article that writes only "E-Mail-Adresse": a
    chain of three joined nothing (a phrase's rule, "state-of-the-art"). From revision 6 a chain's
    first pair is joined when its first word is one letter and its second is not."""
    from function.tokens import TokenizerOptions, tokenize

    assert tokenize("E-Mail-Adresse") == ["e", "mail", "adresse", "email"]
    assert tokenize("U-Bahn-Station, X-ray-like") == ["u", "bahn", "station", "x", "ray", "like", "ubahn", "xray"]
    # a phrase, a longer first word, French "a-t-il" (its second word one letter) join nothing still
    assert tokenize("state-of-the-art, Vitamin-D-Mangel") == ["state", "of", "the", "art", "vitamin", "d", "mangel"]
    assert tokenize("Y a-t-il de la main-d'œuvre ?") == ["y", "a", "t", "il", "de", "la", "main", "d", "oeuvre"]
    # two words read as revision 5 read them; the letter stays a word, as "x ray" is typed
    assert tokenize("e-mail, X-ray, T-shirt, vitamin-D, Formula-1, Kfz-Steuer, Baden-Württemberg, week-end") == \
        ["e", "mail", "x", "ray", "t", "shirt", "vitamin", "d", "formula", "kfz", "steuer", "baden", "wurttemberg",
         "week", "end", "email", "xray", "tshirt", "vitamind", "kfzsteuer", "badenwurttemberg", "weekend"]
    # a store of revision 5 reads as it was built: no chain joined
    assert tokenize("E-Mail-Adresse, U-Bahn-Station", TokenizerOptions(revision=5)) == \
        ["e", "mail", "adresse", "u", "bahn", "station"]
    records = [Record(name, f"https://magazin.example/{name}", title, text) for name, (title, text) in
               {"kontakt": ("Kontakt", "Schreiben Sie an unsere E-Mail-Adresse, wir antworten bald."),
                "bahn": ("Anreise", "Von der U-Bahn-Station sind es fünf Minuten zu Fuß."),
                "wetter": ("Wetter", "Morgen regnet es im ganzen Land.")}.items()]
    for revision, expected in ((6, ["kontakt", "bahn"]), (5, [])):
        options = BuildOptions(name=f"r{revision}", tokenizer=TokenizerOptions(revision=revision))
        store = Store(build([iter(records)], tmp_path / f"r{revision}", options, progress=False)[0])
        hits = [store.engines["tfidf"].search(store.terms(query), 3) for query in ("email", "ubahn")]
        assert [store.docs([found[0].row])[0].id for found in hits if found] == expected, revision


def test_a_stop_list_leaves_out_function_words_as_the_text_is_read():
    """Its words are read as the text is: "été" and "à" leave out the deaccented "ete" and "a", and
    "qu'" the "qu" of "qu'on". A list is named by its language, in any case, or its ISO code."""
    from function.tokens import TokenizerOptions, tokenize

    french = TokenizerOptions(stopwords="French")
    assert french.stopwords == "french" == TokenizerOptions(stopwords="fr").stopwords
    assert tokenize("Qu'on a été à la plage du château, que faire à Marseille ?", french) == \
        ["plage", "chateau", "marseille"]
    # jusText's lists, which stores before revision 4 use, had left out subjects: "school", "city"
    english = TokenizerOptions(stopwords="en")
    assert tokenize("How do I get to a school in the city", english) == ["school", "city"]
    # an entry's two-letter piece that is no entry alone: Ukrainian "ім'я" (name) is read "ім", "я" and
    # leaves both out ("ім" alone is "їм" deaccented, an entry: only --no-deaccent tells them apart)
    assert tokenize("Qu'on", french) == [] and tokenize("Qu'on", TokenizerOptions()) == ["qu", "on"]
    assert tokenize("ім'я, сад", TokenizerOptions(stopwords="uk", deaccent=False)) == ["сад"]
    with pytest.raises(ValueError, match="no stop list 'klingon' .*french"):
        TokenizerOptions(stopwords="klingon")
    # Chinese, Japanese, Korean are read as pairs: a list of words cut into pairs had left out
    # pairs of other words (Korean 게다가's "다가", of 다가오는)
    for language in ("zh", "Japanese", "korean"):
        with pytest.raises(ValueError, match="read as pairs of characters"):
            TokenizerOptions(stopwords=language)
    # Vietnamese's entries are mostly of several syllables ("bác sĩ"): their syllables, taken as
    # words, had left out "hồ", "cá", "mẹ"; and with its tones stripped as accents, every syllable
    # spelt like a stop syllable went with it ("Hồ Chí Minh, máy bay": nothing left)
    vietnamese = TokenizerOptions(stopwords="vi", deaccent=False)
    assert {"hồ", "cá", "cổ", "da", "mẹ", "máy", "bay"} <= set(tokenize("Hồ Chí Minh, con cá, cổ áo, da, mẹ, máy bay",
                                                                        vietnamese))
    with pytest.raises(ValueError, match="--no-deaccent"):
        TokenizerOptions(stopwords="vi")


def test_a_stemmed_store_meets_a_words_other_forms(tmp_path):
    # "tomato" had not found "Growing tomatoes", nor "hike" "Hiking in the rain": words match as written
    from function.tokens import TokenizerOptions, tokenize

    stemmed = TokenizerOptions(stem="english")
    assert tokenize("Tomatoes, hiking and photos", stemmed) == ["tomato", "hike", "and", "photo"]
    assert tokenize("Tomatoes", TokenizerOptions.from_dict({"min_len": 1})) == ["tomatoes"]  # a store without
    with pytest.raises(ValueError, match="no stemmer 'klingon' .*english"):
        TokenizerOptions(stem="klingon")
    from function.recommend import _how_words_are_read  # what a no_known_words answer says of such a store

    said = _how_words_are_read(TokenizerOptions(stem="english", stopwords="English"), 0.8, 2)
    assert "by their stems (english)" in said and "stop words (english) are left out" in said and "--stem" not in said
    assert "more than 80% of its documents (--no-above) or in fewer than 2 (--no-below)" in said  # the store's own
    posts = {"Growing tomatoes on a balcony": "Pots, a sunny wall and water daily.",
             "Hiking in the rain": "A good jacket and dry socks in the bag.",
             "Fixing a bike chain": "Shift to the smallest cog and clean every roller."}
    records = [Record(str(i), f"https://blog.example/{i}", title, text) for i, (title, text) in enumerate(posts.items())]
    final, _ = build([iter(records)], tmp_path / "w", BuildOptions(name="w", tokenizer=stemmed), progress=False)
    store = Store(final)
    assert store.tokenizer.stem == "english" and store.manifest["tokenizer"]["stem"] == "english"
    for query, expected in (("tomato", "0"), ("hike", "1"), ("bikes", "2")):
        hits = store.engines["tfidf"].search(store.terms(query), 3)
        assert [store.docs([hit.row])[0].id for hit in hits] == [expected], query


COMPOUND_POSTS = {"wifi": ("Wi-Fi in the library", "The Wi-Fi network covers every reading room."),
                  "email": ("Answering email", "Read your email twice a day, not every hour."),
                  "weekend": ("A week-end in Lyon", "Markets, the old town and a week-end of good food."),
                  "bikes": ("Fixing a bike chain", "Shift to the smallest cog and clean every roller.")}


def test_the_builder_writes_the_current_revision_and_a_compound_meets_its_other_spelling(tmp_path):
    lines = [json.dumps({"id": name, "url": f"https://blog.example/{name}", "title": title, "text": text})
             for name, (title, text) in COMPOUND_POSTS.items()]
    code, store = _build(tmp_path, "posts.jsonl", "\n".join(lines).encode(), "--engines", "tfidf")
    assert code == 0 and store.manifest["tokenizer"]["revision"] == REVISION == store.tokenizer.revision
    for query, expected in (("wifi", "wifi"), ("Wi-Fi", "wifi"), ("e-mail", "email"), ("weekend", "weekend"),
                            ("week-end", "weekend")):
        hits = store.engines["tfidf"].search(store.terms(query), 3)
        assert hits and store.docs([hits[0].row])[0].id == expected, query


def test_a_revision_4_store_reads_compounds_as_it_was_built(tmp_path):
    from function.tokens import TokenizerOptions

    records = [Record(name, f"https://blog.example/{name}", title, text)
               for name, (title, text) in COMPOUND_POSTS.items()]
    final, _ = build([iter(records)], tmp_path / "old", BuildOptions(name="old", tokenizer=TokenizerOptions(revision=4)),
                     progress=False)
    store = Store(final)
    assert store.manifest["tokenizer"]["revision"] == 4 == store.tokenizer.revision
    assert not len(store.terms("wifi")) and not len(store.terms("weekend"))  # as before: no word it knows
    hits = store.engines["tfidf"].search(store.terms("Wi-Fi"), 3)
    assert store.docs([hits[0].row])[0].id == "wifi"


def test_a_chain_joins_its_first_pair_only_on_a_word_of_three_letters_from_revision_7():
    """Revision 6 joined a linguist's "i-dm-i" into "idm" (the wiki sample's one chain joined),
    "à-la-carte" into "ala", "A-to-Z" into "ato": words no one types."""
    from function.tokens import TokenizerOptions, tokenize

    assert tokenize("i-dm-i, à-la-carte, A-to-Z") == ["i", "dm", "i", "a", "la", "carte", "a", "to", "z"]
    assert tokenize("i-dm-i, A-to-Z", TokenizerOptions(revision=6)) == ["i", "dm", "i", "a", "to", "z", "idm", "ato"]
    # a word of three letters or more is joined still
    assert tokenize("E-Mail-Adresse, K-pop-Star, X-ray-like") == \
        ["e", "mail", "adresse", "k", "pop", "star", "x", "ray", "like", "email", "kpop", "xray"]


FRENCH_POSTS = {"londres": ("Londres", "Londres est la capitale de la Grande-Bretagne."),
                "crepes": ("Crêpes", "Les crêpes de Bretagne : la Bretagne en cuisine."),
                "gouvernement": ("Gouvernement", "Le porte-parole du gouvernement a parlé ce matin.")}


@pytest.mark.parametrize("revision, london_first", [({}, True), ({"revision": 6}, False)])
def test_a_compound_with_a_stop_word_is_joined_whatever_its_length_from_revision_7(tmp_path, revision,
                                                                                     london_first):
    """French's stop list holds "grande" (stop-words' list has common words besides function words:
    "parole", "état", "sujet"), so revision 6 read "Grande-Bretagne", two words over five letters,
    as "bretagne" alone, and a query "Grande-Bretagne" found Brittany's crêpes first. From
    revision 7 a compound one of whose words is a stop word is joined too: "grandebretagne"."""
    from function.tokens import TokenizerOptions

    records = [Record(name, f"https://journal.example/{name}", title, text)
               for name, (title, text) in FRENCH_POSTS.items()]
    options = BuildOptions(name="fr", tokenizer=TokenizerOptions(stopwords="french", stem="french", **revision))
    store = Store(build([iter(records)], tmp_path / "fr", options, progress=False)[0])
    hits = store.engines["tfidf"].search(store.terms("Grande-Bretagne"), 3)
    assert (store.docs([hits[0].row])[0].id == "londres") is london_first
    # "parole" is a stop word, "porte" stems to "port": "porte-parole" is found on its joined word
    hits = store.engines["tfidf"].search(store.terms("porte-parole"), 3)
    assert store.docs([hits[0].row])[0].id == "gouvernement"


ELIDED_POSTS = {"emploi": ("La main-d’œuvre manque", "Les usines cherchent de la main-d'œuvre qualifiée."),
                "vins": ("Les vins de Côte-d’Or", "Les vignerons de la Côte-d’Or vendangent."),
                "mains": ("Soins des mains", "Une crème pour les mains abîmées par le froid.")}


@pytest.mark.parametrize("revision, junk", [({}, []), ({"revision": 5}, ["maind", "coted"])])
def test_a_compound_with_an_elided_second_word_is_not_joined_from_revision_6(tmp_path, revision, junk):
    from function.tokens import TokenizerOptions

    records = [Record(name, f"https://journal.example/{name}", title, text)
               for name, (title, text) in ELIDED_POSTS.items()]
    options = BuildOptions(name="fr", tokenizer=TokenizerOptions(stopwords="french", **revision))
    store = Store(build([iter(records)], tmp_path / "fr", options, progress=False)[0])
    # revision 5 read "main-d'œuvre" as "maind" too, and "Côte-d'Or" as "coted": words no one types;
    # its stores keep reading them so
    assert [word for word in ("maind", "coted") if len(store.terms(word))] == junk
    for query, expected in (("main-d’œuvre", "emploi"), ("main-d'oeuvre", "emploi"), ("Côte-d'Or", "vins")):
        hits = store.engines["tfidf"].search(store.terms(query), 3)
        assert store.docs([hits[0].row])[0].id == expected, query


@pytest.mark.parametrize("tokenizer", [{"revision": REVISION + 1}, {"min_len": 1, "a_later_option": True}])
def test_a_store_whose_tokenizer_this_version_cannot_read_is_a_clear_error(small_store, tokenizer):
    _, version = small_store
    manifest_path = version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tokenizer"] = tokenizer
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="tokenizer .* is not one this function reads"):
        Store(version)
