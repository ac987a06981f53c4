"""How alike distinct documents among an answer's hits are, and how alike a repost is to its
original: the figures recommend.NEAR_DUPLICATE was chosen from.

    .venv/bin/python -m bench.near_duplicates model_store/wiki bench/cache/stores/10000/synth

For each store and engine: the cosines of every pair of the k + SLACK hits of the bench's query texts
(recommend.SLACK, bench.run.K). Then a corpus of Wikipedia sample articles, long and cut short (a
blog post's length), each with a repost (a sentence added, its title changed), built by the builder:
each repost's cosine with its original.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.run import K, query_texts
from function.recommend import SLACK
from function.store import Store, current_version_dir

THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)


def hits_pairs(store, engine, texts):
    """The cosines of the distinct pairs among each text's k + SLACK hits, all texts together."""
    found = []
    for text in texts:
        hits = engine.search(store.terms(text), K + SLACK)
        if len(hits) > 1:
            alike = engine.similarities([hit.row for hit in hits])
            found.append(alike[np.triu_indices(len(hits), 1)])
    return np.concatenate(found)


def reposts(articles=20):
    """(engine, length) -> each repost's cosine with its original, in a store the builder built."""
    from function.build import BuildOptions, build
    from function.records import Record
    from function.sources import open_source, wiki_sample_path

    originals = [record for record in open_source(wiki_sample_path()) if isinstance(record, Record)]
    figures = {}
    for length, chars in (("long", None), ("short", 1500)):
        records = [Record(r.id, r.url, r.title, r.text[:chars]) for r in originals]
        records += [Record(r.id + "-repost", r.url + "-repost", r.title + " (updated)",
                           r.text[:chars] + " Update: a reader asked about this, so I added a note here.")
                    for r in originals[:articles]]
        with tempfile.TemporaryDirectory() as folder:
            build([iter(records)], Path(folder) / "r", BuildOptions(name="r", engines=("lsi", "tfidf")), progress=False)
            store = Store(current_version_dir(Path(folder) / "r"))
            for name, engine in store.engines.items():
                pairs = [(store.row_for_id(r.id), store.row_for_id(r.id + "-repost")) for r in originals[:articles]]
                figures[name, length] = [float(engine.similarities(pair)[0, 1]) for pair in pairs]
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path, help="corpus folders")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args(argv)
    texts = query_texts(args.queries)
    for corpus in args.stores:
        store = Store(current_version_dir(corpus))
        for name, engine in store.engines.items():
            alike = hits_pairs(store, engine, texts)
            shares = ", ".join(f">= {t}: {np.mean(alike >= t):.4%}" for t in THRESHOLDS)
            print(f"{corpus} {name}: {len(alike)} pairs of hits, max {alike.max():.3f}, "
                  f"99.9th percentile {np.percentile(alike, 99.9):.3f}; {shares}")
    for (name, length), figures in reposts().items():
        print(f"reposts, {length} posts, {name}: min {min(figures):.3f}, median {np.median(figures):.3f}")


if __name__ == "__main__":
    main()
