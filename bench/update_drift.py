"""How far incremental updates drift from a full build: the figures behind update.RebuildRule.

    .venv/bin/python bench/update_drift.py [--shares 0.05,0.1,0.2,0.3,0.5] [--lsi-dims 100]

For each share f, a store is built on (1 - f) of the corpus and the remaining f
are folded in with function.update; a full build of the whole corpus is the
reference. Printed per share and engine: how many of each document's 10
nearest neighbours the updated store shares with the full build (for the
folded-in documents, and for the others); how often the folded-in documents
are among the other documents' 10 nearest, over how often the same documents
are in the full build (over@10: above 1, folding in over-recommends them);
and the drift measures the update recorded (share folded in, share of unknown
words, LSI fit ratio).

The corpus ships with gensim: its Wikipedia sample (106 articles) and the Lee
news corpus (300 articles), so the figures are those of a small, mixed corpus.
"""

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from function.build import BuildOptions, build  # noqa: E402
from function.records import Record  # noqa: E402
from function.sources import open_source, wiki_sample_path  # noqa: E402
from function.store import Store  # noqa: E402
from function.update import update  # noqa: E402

K = 10


def corpus():
    from gensim.test.utils import datapath

    wiki = [r for r in open_source(wiki_sample_path()) if isinstance(r, Record)]
    with open(datapath("lee_background.cor"), encoding="utf-8", errors="replace") as lines:
        lee = [Record(f"lee-{n}", f"https://news.example/lee/{n}", f"Lee {n}", line.strip())
               for n, line in enumerate(lines) if line.strip()]
    return wiki + lee


def neighbours(store, engine, doc_id):
    row = store.row_for_id(doc_id)
    return {store.docs([h.row])[0].id for h in store.engines[engine].search_member(row, K)}


def overlap(a, b, engine, ids):
    return float(np.mean([len(neighbours(a, engine, i) & neighbours(b, engine, i)) / K for i in ids]))


def appearances(store, engine, ids):
    """How often the documents ``ids`` are among the other documents' K nearest."""
    rows = {store.row_for_id(i) for i in ids}
    return sum(hit.row in rows for row in range(store.size) if row not in rows
               for hit in store.engines[engine].search_member(row, K))


def over_recommended(updated, full, engine, ids):
    return appearances(updated, engine, ids) / max(1, appearances(full, engine, ids))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shares", default="0.05,0.1,0.2,0.3,0.5")
    parser.add_argument("--lsi-dims", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    records = corpus()
    random.Random(args.seed).shuffle(records)
    options = BuildOptions(name="bench", lsi_dims=args.lsi_dims, keep_versions=1)
    # every build (a full one, one per share, and the reference) goes under one folder removed at the end
    with tempfile.TemporaryDirectory(prefix="update-drift-") as folder:
        measure(records, options, Path(folder), args)


def measure(records, options, work, args):
    started = time.time()
    full = Store(build([iter(records)], work / "full", options, progress=False)[0])
    print(f"corpus: {len(records)} documents, full build {time.time() - started:.1f} s, "
          f"{full.manifest['vocabulary']} terms, lsi dims {full.engines['lsi'].vectors.shape[1]}")
    print(f"{'share':>6} {'engine':>6} {'folded@10':>10} {'others@10':>10} {'over@10':>8} {'unknown':>8} {'excess':>7} "
          f"{'lsi_fit':>8} {'update s':>9} {'rebuild due':>12}")
    for share in (float(s) for s in args.shares.split(",")):
        cut = int(len(records) * (1 - share))
        base_dir = work / f"share-{share}"
        build([iter(records[:cut])], base_dir, options, progress=False)
        started = time.time()
        result = update(base_dir, [iter(records[cut:])], progress=False)
        seconds = time.time() - started
        updated = Store(result.version_dir)
        folded = [r.id for r in records[cut:] if updated.row_for_id(r.id) is not None]
        others = [r.id for r in records[:cut:max(1, cut // 100)]]
        drift = result.drift
        for engine in ("lsi", "tfidf"):
            over = over_recommended(updated, full, engine, folded)
            print(f"{share:>6.2f} {engine:>6} {overlap(updated, full, engine, folded):>10.2f} "
                  f"{overlap(updated, full, engine, others):>10.2f} {over:>8.2f} "
                  f"{drift['oov_share']:>8.1%} {drift['oov_excess']:>7.1%} "
                  f"{drift['lsi_fit_ratio'] or 0:>8.2f} {seconds:>9.2f} {str(bool(result.rebuild_reasons)):>12}")
    # the reference: how much two full builds on the same documents agree (LSI is randomised)
    again = Store(build([iter(records)], work / "again", BuildOptions(name="bench", lsi_dims=args.lsi_dims,
                                                                      seed=options.seed + 1), progress=False)[0])
    sample = [r.id for r in records[::4]]
    print(f"two full builds with different seeds agree on lsi@10: {overlap(full, again, 'lsi', sample):.2f}")


if __name__ == "__main__":
    main()
