"""The ANN "missed rows" shard (rows a graph does not find for their own vector, scanned exactly):
what it costs the builder and serving, and what it gains in recall.

    python -m bench.missed_rows 100000          # writes bench/out/missed-rows-N.json

On N's bench store (``python -m bench.stores N`` first), in one process:

* ``missed``: how many rows the builder listed, how many have nothing in the indexed
  dimensions, and how many a search of the whole graph (expansion_search = shard size) still
  does not return among its best ANN_MISSED_CHECK for their own vector, or at all (truly
  unreachable), on a sample of the first shard's missed rows (``--sample``), each in its graph.
* ``build``: ``build_ann`` over the store's vectors with this commit's builder and with the
  parent's (git show 6cba942^:function/build.py, loaded as a scratch module), interleaved.
* ``serving``: lookup (engine.search + store.docs, as bench/run.py ``inprocess``) p50/p99 and
  recall@10 against exact search, with the missed shard and without it (emptied on the same
  loaded store), at several candidate counts, the two settings interleaved in rounds.
* ``truth``: of the exact top-10 lists, those holding a missed row, and how many of those
  rows each setting's answer has.
"""

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.corpus import Generator
from bench.run import K, pct, query_texts, ratio, timed
from bench.stores import CACHE, CORPUS_NAME, ROOT, store_root
from function.build import ANN_MISSED_CHECK, build_ann
from function.recommend import SLACK
from function.store import Store, current_version_dir, top_k

PARENT = "6cba942^"  # the builder before the missed rows


def parent_builder():
    """The parent commit's function/build.py as a module of the package (its relative imports work)."""
    source = subprocess.run(["git", "show", f"{PARENT}:function/build.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = CACHE / "build_parent.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("function._build_parent", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def missed_figures(engine, sample):
    ann = engine.ann
    rows = np.asarray(ann.missed_rows)
    index, size = ann.shards[0]  # the first shard's rows, searched in their own graph (rows 0 to size)
    saved = index.expansion_search
    index.expansion_search = size  # as far as the graph goes
    vectors = np.asarray(ann.missed_vectors, np.float32)
    indexed = np.linalg.norm(vectors, axis=1) > 0  # (the empty rows are not in the graph)
    searched, vectors = rows[indexed & (rows < size)], vectors[indexed & (rows < size)]
    if len(searched) > sample:  # a whole-graph search is about a second at 100,000 rows
        pick = np.sort(np.random.default_rng(7).choice(len(searched), sample, replace=False))
        searched, vectors = searched[pick], vectors[pick]
    started = time.perf_counter()
    top, anywhere = [], []  # per row: among the best ANN_MISSED_CHECK; returned at all
    for start in range(0, len(searched), 32):  # (a whole graph's keys for each: in small batches)
        rows_ = searched[start:start + 32]
        keys = np.asarray(index.search(vectors[start:start + 32], size, threads=2).keys).reshape(len(rows_), -1)
        top += (keys[:, :ANN_MISSED_CHECK] == rows_[:, None]).any(axis=1).tolist()
        anywhere += (keys == rows_[:, None]).any(axis=1).tolist()
    seconds = time.perf_counter() - started
    index.expansion_search = saved
    unreachable = searched[~np.array(top, bool)]
    return {"rows": len(engine.vectors), "shards": len(ann.shards), "missed": len(rows), "empty": int((~indexed).sum()),
            "not_in_top_at_full_expansion": len(unreachable),
            "searched_at_full_expansion": len(searched),
            "never_returned_at_full_expansion": int(len(searched) - sum(anywhere)), "full_expansion_search_s": round(seconds, 1),
            "unreachable_sample": unreachable[:20].tolist()}


def build_cost(engine, rounds):
    """Wall and CPU seconds of build_ann with this builder and the parent's, interleaved."""
    spec = {k: v for k, v in engine.spec["ann"].items()}
    vectors = engine.vectors
    builders = {"new": build_ann, "parent": parent_builder().build_ann}
    out = {name: {"wall_s": [], "cpu_s": []} for name in builders}
    for r in range(rounds):
        for name in (["new", "parent"] if r % 2 == 0 else ["parent", "new"]):
            scratch = Path(tempfile.mkdtemp(dir=CACHE))
            started, cpu = time.perf_counter(), time.process_time()  # process: usearch's threads count
            builders[name](scratch, vectors, dict(spec), progress=False)
            out[name]["wall_s"].append(round(time.perf_counter() - started, 1))
            out[name]["cpu_s"].append(round(time.process_time() - cpu, 1))
            shutil.rmtree(scratch)
            print(f"  build_ann {name}: {out[name]['wall_s'][-1]} s wall, {out[name]['cpu_s'][-1]} s CPU",
                  file=sys.stderr, flush=True)
    for name in out:
        out[name]["wall_median_s"] = float(np.median(out[name]["wall_s"]))
        out[name]["cpu_median_s"] = float(np.median(out[name]["cpu_s"]))
    out["ratio_wall"] = ratio(out["new"]["wall_median_s"], out["parent"]["wall_median_s"])
    out["ratio_cpu"] = ratio(out["new"]["cpu_median_s"], out["parent"]["cpu_median_s"])
    return out


def serving(store, engine, queries, truth_count, candidates, rounds):
    ann = engine.ann
    settings = {"with": (ann.missed_rows, ann.missed_vectors),
                "without": (np.zeros(0, np.int64), np.zeros((0, ann.ndim), np.float32))}
    missed = set(np.asarray(ann.missed_rows).tolist())
    vectors = [engine.query_vector(store.terms(t)) for t in queries]
    truth = [{h.row for h in top_k(engine.vectors @ v, K, ())} for v in vectors[:truth_count]]
    # steady state, as in bench/run.py inprocess: other texts bring the touched pages in
    _, _, warm_up = Generator().block(95_000, len(queries))
    for text in warm_up:
        store.docs([h.row for h in engine.search(store.terms(" ".join(text.split()[:100])), K + SLACK)[:K]])
    lookup = lambda t: store.docs([h.row for h in engine.search(store.terms(t), K + SLACK)[:K]])  # noqa: E731
    wall = {(s, c): [] for s in settings for c in candidates}
    recall, truth_found = {}, {}
    for r in range(rounds):
        for setting in (list(settings) if r % 2 == 0 else list(settings)[::-1]):
            ann.missed_rows, ann.missed_vectors = settings[setting]
            for c in candidates:
                engine.set_candidates(c)
                wall[setting, c] += timed(lookup, queries)[0]
                if r == 0:  # the answers do not change from round to round
                    found = [{h.row for h in engine._search_vector(v, K + SLACK, ())[:K]} for v in vectors[:truth_count]]
                    recall[setting, c] = float(np.mean([len(f & t) / K for f, t in zip(found, truth)]))
                    truth_found[setting, c] = sum(len(f & t & missed) for f, t in zip(found, truth))
    ann.missed_rows, ann.missed_vectors = settings["with"]
    engine.set_candidates(engine.spec["ann"].get("candidates", 0))
    table = []
    for c in candidates:
        row = {"candidates": c}
        for s in settings:
            ms = [w * 1000 for w in wall[s, c]]
            row[s] = {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "recall_at_10": round(recall[s, c], 4),
                      "missed_rows_in_answers": truth_found[s, c]}
        row["ratio_p50"] = ratio(row["with"]["p50_ms"], row["without"]["p50_ms"])
        row["ratio_p99"] = ratio(row["with"]["p99_ms"], row["without"]["p99_ms"])
        table.append(row)
    # the graph search alone (AnnGraph.search at the store's candidates), with the missed rows and
    # without, in turn: their part without the noise of the lookup's other steps
    leading = [v[: engine.ann_dims] / np.linalg.norm(v[: engine.ann_dims]) for v in vectors]
    graph = {s: [] for s in settings}
    for r in range(rounds):
        for setting in (list(settings) if r % 2 == 0 else list(settings)[::-1]):
            ann.missed_rows, ann.missed_vectors = settings[setting]
            graph[setting] += timed(lambda q: ann.search(q, engine.ann_candidates, K + SLACK), leading)[0]
    ann.missed_rows, ann.missed_vectors = settings["with"]
    lists = [t & missed for t in truth]
    return {"queries": len(queries), "rounds": rounds, "truth_lists": len(truth),
            "truth_lists_with_missed_row": sum(1 for m in lists if m),
            "missed_rows_in_truth": sum(len(m) for m in lists), "table": table,
            "graph_search_ms": {s: {"p50": pct([w * 1000 for w in graph[s]], 50),
                                    "p99": pct([w * 1000 for w in graph[s]], 99)} for s in graph},
            "round_p50_ms": {f"{s} {c}": [pct([w * 1000 for w in wall[s, c][i * len(queries):(i + 1) * len(queries)]], 50)
                                                 for i in range(rounds)]
                             for s, c in wall}}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.missed_rows", description=__doc__.split("\n")[0])
    p.add_argument("n", type=int)
    p.add_argument("--sample", type=int, default=160, help="missed rows of the first shard searched over its whole graph")
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--truth", type=int, default=200, help="exact top-10 lists for recall")
    p.add_argument("--candidates", default="100,200,400")
    p.add_argument("--rounds", type=int, default=4, help="serving rounds, the two settings in turn (0: skip)")
    p.add_argument("--build-rounds", type=int, default=2, help="build_ann runs of each builder (0: skip)")
    args = p.parse_args(argv)
    store = Store(current_version_dir(store_root(args.n) / CORPUS_NAME))
    engine = store.engines["lsi"]
    if engine.ann is None:
        sys.exit(f"the {args.n} store has no ANN graph")
    out = {"n": args.n, "ann": engine.spec["ann"], "missed": missed_figures(engine, args.sample)}
    print(json.dumps(out["missed"]), file=sys.stderr, flush=True)
    if args.rounds:
        out["serving"] = serving(store, engine, query_texts(args.queries), args.truth,
                                 [int(c) for c in args.candidates.split(",")], args.rounds)
        print(json.dumps(out["serving"], indent=1), file=sys.stderr, flush=True)
    if args.build_rounds:
        out["build"] = build_cost(engine, args.build_rounds)
    path = ROOT / "bench" / "out" / f"missed-rows-{args.n}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
