"""The builder's parallel pass 1 and the ANN index with exact re-ranking (issue #4)."""

import numpy as np
import pytest

from conftest import wiki_sample_path
from function.build import BuildOptions, build
from function.records import Record
from function.sources import open_source
from function.store import Store, StoreError


@pytest.fixture(scope="module")
def many_records():
    """~640 records (the sample five times over, ids and URLs made unique): several tokenising batches."""
    base = [r for r in open_source(wiki_sample_path()) if isinstance(r, Record)]
    return [Record(f"{copy}-{r.id}", f"{r.url}?copy={copy}", r.title, r.text[: 3000 * (copy + 1)])
            for copy in range(6) for r in base]


def test_the_store_does_not_depend_on_the_number_of_tokenising_processes(many_records, tmp_path):
    stores = []
    for workers in (1, 2):
        options = BuildOptions(name="w", engines=("lsi", "tfidf"), workers=workers)
        final, manifest = build([iter(many_records)], tmp_path / f"w{workers}", options, progress=False)
        stores.append(Store(final))
    one, two = stores
    assert one.size == two.size == len(many_records)
    assert np.array_equal(np.load(one.path / "vocab.npy"), np.load(two.path / "vocab.npy"))
    assert np.array_equal(np.load(one.path / "engines" / "tfidf" / "post_rows.npy"),
                          np.load(two.path / "engines" / "tfidf" / "post_rows.npy"))
    assert np.allclose(one.engines["lsi"].vectors, two.engines["lsi"].vectors, atol=1e-5)
    assert one.docs([0, 300, len(many_records) - 1]) == two.docs([0, 300, len(many_records) - 1])


def test_the_ann_index_over_leading_dimensions_is_reranked_with_exact_scores(many_records, tmp_path):
    # one graph (ann_shard_docs=0): also the layout of stores built before shards
    options = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=8, ann_candidates=40, ann_shard_docs=0)
    final, manifest = build([iter(many_records)], tmp_path / "w", options, progress=False)
    assert manifest["engines"]["lsi"]["ann"]["dims"] == 8
    # the graph was built over vectors in a scratch file (copy=False); only the index remains
    assert sorted(p.name for p in (final / "engines" / "lsi").iterdir()) == [
        "ann-missed-rows.npy", "ann-missed-vectors.npy", "ann.usearch", "projection.npy", "vectors.npy", "weights.npy"]
    lsi = Store(final).engines["lsi"]
    for row in range(0, len(many_records), 97):
        hits = lsi.search_member(row, 5)
        assert row not in [h.row for h in hits] and len(hits) == 5
        exact = lsi.vectors @ lsi.vectors[row]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(abs(h.score - exact[h.row]) < 1e-5 for h in hits)  # full-vector cosines, not the index's

    # re-ranking as many as there are rows is the exact search (the graph could miss some)
    wide = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=8, ann_candidates=len(many_records))
    lsi = Store(build([iter(many_records)], tmp_path / "x", wide, progress=False)[0]).engines["lsi"]
    for row in range(0, len(many_records), 53):
        scores = lsi.vectors @ lsi.vectors[row]
        exact = [r for r in np.argsort(-scores, kind="stable") if r != row][:3]
        assert [h.row for h in lsi.search_member(row, 3)] == exact


def test_rows_the_graph_does_not_find_are_scanned_exactly_so_every_document_can_be_recommended(many_records,
                                                                                                  tmp_path):
    """An HNSW graph leaves some rows out of the searches for their own vectors, even of the widest
    (with two links a node, tens of these 636). The builder lists them, and a search scans them
    as one more shard of the graph."""
    documents = len(many_records)
    options = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=8, ann_connectivity=2,
                           ann_candidates=40, ann_shard_docs=0)
    final, manifest = build([iter(many_records)], tmp_path / "w", options, progress=False)
    assert {"engines/lsi/ann-missed-rows.npy", "engines/lsi/ann-missed-vectors.npy"} <= set(manifest["files"])
    lsi = Store(final).engines["lsi"]
    graph, _ = lsi.ann.shards[0]
    leading = np.array(lsi.vectors[:, :8], np.float32)
    leading /= np.linalg.norm(leading, axis=1)[:, None]
    graph.expansion_search = documents
    unreachable = [row for row in range(documents) if row not in np.asarray(graph.search(leading[row], documents).keys)]
    assert unreachable  # else this graph shows nothing
    assert set(unreachable) <= set(lsi.ann.missed_rows.tolist())
    assert np.allclose(lsi.ann.missed_vectors, leading[lsi.ann.missed_rows], atol=1e-6)
    lsi.set_candidates(40)  # as served
    for row in range(documents):  # each row is found for its own vector (it or a copy: the sample's short
        rows, _ = lsi.ann.search(leading[row], 40)  # articles are here 6 times, ties a shard's share may cut)
        assert len(set(rows.tolist())) == len(rows)
        assert any(np.allclose(lsi.vectors[found], lsi.vectors[row], atol=1e-6) for found in rows)


def test_a_sharded_graph_lists_the_rows_it_does_not_find_at_the_expansion_each_shard_is_served_with(many_records,
                                                                                                     tmp_path):
    """Serving gives each shard its share of the expansion (here 64 x 100 / 636 = 11, not 64): the
    builder checks each shard at that share, else rows it finds at 64 are lost at 11 (20 of these 636)."""
    options = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=8, ann_connectivity=2,
                           ann_candidates=40, ann_shard_docs=100)
    lsi = Store(build([iter(many_records)], tmp_path / "w", options, progress=False)[0]).engines["lsi"]
    assert max(index.expansion_search for index, _ in lsi.ann.shards) < options.ann_expansion_search
    leading = np.array(lsi.vectors[:, :8], np.float32)
    leading /= np.linalg.norm(leading, axis=1)[:, None]
    lost = []
    for row in range(len(many_records)):  # as a member's 10 neighbours ask: 10 + itself
        rows, _ = lsi.ann.search(leading[row], 40, at_least=11)
        if not any(np.allclose(lsi.vectors[found], lsi.vectors[row], atol=1e-6) for found in rows):
            lost.append(row)
    assert lost == []


@pytest.mark.parametrize("damage", ["vectors gone", "rows gone", "other dims"])
def test_a_store_whose_list_of_rows_the_graph_misses_is_half_there_does_not_open(damage, tmp_path):
    """Stores built before the list have neither file and serve as they did; one file without the
    other, or vectors of other dimensions, would fail each search (or the open) with a 500."""
    records = [r for r in open_source(wiki_sample_path()) if isinstance(r, Record)]
    options = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=8, ann_candidates=0)
    final, _ = build([iter(records)], tmp_path / "w", options, progress=False)
    lsi = final / "engines" / "lsi"
    if damage == "other dims":
        np.save(lsi / "ann-missed-vectors.npy", np.zeros((len(np.load(lsi / "ann-missed-rows.npy")), 4), np.float32))
    else:
        (lsi / f"ann-missed-{damage.split()[0]}.npy").unlink()
    with pytest.raises(StoreError, match="ann-missed"):
        Store(final, verify=False)  # (verify=True would catch a listed file's loss or change first)


def test_the_graph_is_built_in_shards_and_a_search_asks_each_for_its_share(many_records, tmp_path):
    documents = len(many_records)
    options = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=8, ann_candidates=80, ann_shard_docs=200)
    final, manifest = build([iter(many_records)], tmp_path / "w", options, progress=False)
    shards = -(-documents // 200)
    assert shards >= 3
    graphs = sorted(p.name for p in (final / "engines" / "lsi").glob("*.usearch"))
    assert graphs == [f"ann-{i}.usearch" for i in range(shards)]
    assert all(f"engines/lsi/ann-{i}.usearch" in manifest["files"] for i in range(shards))
    lsi = Store(final).engines["lsi"]
    # each graph holds its own run of rows, and only those
    for i, (index, rows) in enumerate(lsi.ann.shards):
        first, end = i * 200, min(i * 200 + 200, documents)
        assert rows == end - first and len(index) == rows
        assert index.contains(first) and index.contains(end - 1) and not index.contains(end)
    assert len(lsi.ann) == documents and lsi.ann.ndim == 8
    # a search gathers each shard's share of the candidates, so the best rows of every shard compete
    query = lsi.vectors[3, :8] / np.linalg.norm(lsi.vectors[3, :8])
    rows, distances = lsi.ann.search(query, 80)
    assert len(set(rows.tolist())) == len(rows) >= 80
    assert set((rows // 200).tolist()) == set(range(shards))
    assert 3 in rows.tolist() and distances[rows.tolist().index(3)] < 1e-3
    # and the re-ranked answers are those of an exact search, as with one graph
    agree = []
    for row in range(0, documents, 13):
        exact = np.argsort(-(lsi.vectors @ lsi.vectors[row]), kind="stable")
        best = [r for r in exact if r != row][:5]
        agree.append(len(set(best) & {h.row for h in lsi.search_member(row, 5)}) / 5)
    assert np.mean(agree) >= 0.9


def test_past_prune_at_the_rarest_words_are_forgotten_and_ids_never_reused():
    """As gensim's add_documents: past ``prune_at`` the vocabulary keeps the words in the most
    documents (the first seen among equals), and a word seen again later gets a new id."""
    from function.counting import Vocabulary, count_batch
    from function.tokens import TokenizerOptions

    vocabulary = Vocabulary(prune_at=3)
    texts = ["moon rocket alpha", "moon rocket beta", "moon orbit gamma", "moon orbit rocket delta"]
    words, ids, counts, sizes = count_batch(texts, TokenizerOptions())
    vocabulary.merge(words, ids, counts, np.repeat(np.arange(len(texts)), sizes), len(texts))
    assert sorted(vocabulary.token2id) == ["moon", "orbit", "rocket"]  # in 4, 2 and 3 documents
    assert vocabulary.num_docs == 4 and vocabulary.next_id == 7
    texts = ["alpha moon", "alpha", "alpha"]  # alpha, forgotten, comes back in more documents than orbit
    words, ids, counts, sizes = count_batch(texts, TokenizerOptions())
    vocabulary.merge(words, ids, counts, np.repeat(np.arange(len(texts)), sizes), len(texts))
    assert vocabulary.token2id == {"moon": 1, "rocket": 2, "alpha": 7}  # alpha had been 0


def test_a_sharded_graph_without_re_ranking_gives_each_shard_a_say_in_the_best(tmp_path):
    """Without re-ranking (ann_candidates=0) a member's neighbours are the graph's own: every shard
    gives at least k + 1 of its best, so that the best rows, wherever they are, are merged by distance."""
    records = [r for r in open_source(wiki_sample_path()) if isinstance(r, Record)]
    options = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=0, ann_candidates=0, ann_shard_docs=25,
                           ann_dtype="f32")
    lsi = Store(build([iter(records)], tmp_path / "w", options, progress=False)[0]).engines["lsi"]
    assert len(lsi.ann.shards) == -(-len(records) // 25) >= 4
    agree = []
    for row in range(len(records)):
        exact = np.argsort(-(lsi.vectors @ lsi.vectors[row]), kind="stable")
        best = [r for r in exact if r != row][:5]
        agree.append(len(set(best) & {h.row for h in lsi.search_member(row, 5)}) / 5)
    assert np.mean(agree) >= 0.95
