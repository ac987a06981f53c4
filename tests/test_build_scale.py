"""The builder's parallel pass 1 and the ANN index with exact re-ranking (issue #4)."""

import numpy as np
import pytest

from conftest import wiki_sample_path
from function.build import BuildOptions, build
from function.sources import Record, open_source
from function.store import Store


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
    options = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=8, ann_candidates=40)
    final, manifest = build([iter(many_records)], tmp_path / "w", options, progress=False)
    assert manifest["engines"]["lsi"]["ann"]["dims"] == 8
    # the graph was built over vectors in a scratch file (copy=False); only the index remains
    assert sorted(p.name for p in (final / "engines" / "lsi").iterdir()) == [
        "ann.usearch", "projection.npy", "vectors.npy", "weights.npy"]
    lsi = Store(final).engines["lsi"]
    for row in range(0, len(many_records), 97):
        hits = lsi.search_member(row, 5)
        assert row not in [h.row for h in hits] and len(hits) == 5
        exact = lsi.vectors @ lsi.vectors[row]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(abs(h.score - exact[h.row]) < 1e-5 for h in hits)  # full-vector cosines, not the index's

    wide = BuildOptions(name="w", engines=("lsi",), ann="on", ann_dims=8, ann_candidates=len(many_records))
    lsi = Store(build([iter(many_records)], tmp_path / "x", wide, progress=False)[0]).engines["lsi"]
    row = 5
    exact = np.argsort(-(lsi.vectors @ lsi.vectors[row]), kind="stable")
    assert [h.row for h in lsi.search_member(row, 3)] == [r for r in exact if r != row][:3]
