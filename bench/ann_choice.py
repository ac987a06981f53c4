"""Which ANN settings: usearch HNSW over a store's vectors, per dtype and connectivity.

    python -m bench.ann_choice 100000      # writes bench/out/ann-choice-N.json

Builds each candidate index in memory from the store's vectors.npy (as the
builder does), then for 200 held-out text queries measures recall@10 against
exact search and the search time (wall and CPU) at several expansion_search
settings, plus the index's size on disk (what serving maps).
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.run import K, query_texts, summary_ms, timed
from bench.stores import CORPUS_NAME, ROOT, store_root
from function.recommend import SLACK
from function.store import Store, current_version_dir, top_k

CANDIDATES = [("f16", 16), ("i8", 16), ("f16", 32), ("f32", 16)]
EXPANSIONS = (32, 64, 128, 256)


def main(argv=None):
    from usearch.index import Index

    n = int((argv or sys.argv[1:])[0])
    store = Store(current_version_dir(store_root(n) / CORPUS_NAME))
    engine = store.engines["lsi"]
    vectors = np.asarray(engine.vectors)
    queries = [engine.query_vector(store.terms(t)) for t in query_texts(200)]
    truth = [{h.row for h in top_k(vectors @ q, K, ())} for q in queries]
    out = {"n": n, "candidates": []}
    for dtype, connectivity in CANDIDATES:
        index = Index(ndim=vectors.shape[1], metric="cos", dtype=dtype, connectivity=connectivity, expansion_add=128)
        started, started_cpu = time.perf_counter(), time.process_time()
        index.add(np.arange(len(vectors)), vectors, threads=os.cpu_count() or 1)
        build = {"wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(time.process_time() - started_cpu, 1)}
        path = Path(tempfile.mkdtemp(dir=ROOT / "bench" / "cache")) / "ann.usearch"
        index.save(str(path))
        size = path.stat().st_size
        view = Index.restore(str(path), view=True)
        row = {"dtype": dtype, "connectivity": connectivity, "build": build, "file_mib": round(size / 2**20, 1),
               "expansion_search": {}}
        for ef in EXPANSIONS:
            view.expansion_search = ef
            found = [{int(k) for k in view.search(q, K + SLACK).keys[:K]} for q in queries]
            recall = float(np.mean([len(f & t) / K for f, t in zip(found, truth)]))
            row["expansion_search"][ef] = {"recall_at_10": round(recall, 4),
                                           "search_ms": summary_ms(*timed(lambda q: view.search(q, K + SLACK), queries))}
        print(json.dumps(row), flush=True)
        out["candidates"].append(row)
        del view
        path.unlink()
        path.parent.rmdir()
    target = ROOT / "bench" / "out" / f"ann-choice-{n}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
