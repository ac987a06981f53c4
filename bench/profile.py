"""Where a request's CPU goes, on a bench store (built by `make bench` first).

    .venv/bin/python -m bench.profile 1000000            # lookup stages, first and second pass
    .venv/bin/python -m bench.profile 10000 --requests   # + whole requests (the WSGI app called, Mongo on)

Stage times are thread CPU time, so a busy machine moves them less than wall time.
"""

import argparse
import cProfile
import os
import pstats
import resource
import statistics
import sys
import tempfile
import time
from urllib.parse import quote_plus

import numpy as np

from bench.run import K, query_texts  # the queries `make bench` times: texts no store contains
from bench.servers import ROOT
from bench.stores import CORPUS_NAME, store_root
from function.recommend import SLACK, _near_duplicates


def lookup_stages(n, texts):
    """Median CPU ms of each step between a request's text and its rows, twice over the same
    texts: the first pass touches the index pages for the first time in this process."""
    from function.store import Store, current_version_dir

    store = Store(current_version_dir(store_root(n) / CORPUS_NAME))
    engine = store.engines["lsi"]
    for label in ("first pass", "second pass"):
        stages = {"terms": [], "query_vector": [], "search": [], "near_duplicates": [], "rows": []}
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for text in texts:
            marks = [time.thread_time()]
            terms = store.terms(text)
            marks.append(time.thread_time())
            vector = engine.query_vector(terms)
            marks.append(time.thread_time())
            hits = engine._search_vector(vector, K + SLACK, ())
            marks.append(time.thread_time())
            _near_duplicates(engine, hits, None)
            marks.append(time.thread_time())
            store.docs([hit.row for hit in hits[:K]])
            marks.append(time.thread_time())
            for name, start, end in zip(stages, marks, marks[1:]):
                stages[name].append((end - start) * 1000)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / len(texts)
        medians = {name: round(statistics.median(values), 3) for name, values in stages.items()}
        total = round(statistics.median(map(sum, zip(*stages.values()))), 3)
        print(f"{label}: {medians} total {total} ms, minor page faults per query {faults:.1f}")
    if engine.ann is not None and engine.ann_candidates:
        search, gather = [], []
        for text in texts:
            vector = engine.query_vector(store.terms(text))
            query = vector[: engine.ann_dims] / np.linalg.norm(vector[: engine.ann_dims])
            start = time.thread_time()
            rows, _ = engine.ann.search(query, engine.ann_candidates)
            middle = time.thread_time()
            engine.vectors[np.sort(rows)] @ vector
            search.append((middle - start) * 1000)
            gather.append((time.thread_time() - middle) * 1000)
        print(f"  of the search: HNSW ({len(engine.ann.shards)} shards) over {engine.ann_candidates} candidates {statistics.median(search):.3f} ms, "
              f"their full vectors gathered and scored {statistics.median(gather):.3f} ms")


def profile_requests(n, texts):
    """CPU per text request through functions-framework's WSGI app, Mongo logging on, then
    cProfile's cumulative view of the same requests. The app is called as gunicorn calls it, with
    each request's environ built before the clock starts: werkzeug's test client works out every
    request's URL twice, unquoting each escape of a 100-word query one by one (0.5-1 ms a request of
    ours, 0.3 of a bare Flask app's: none of it the server's)."""
    from function.devserver import start_embedded_mongo, stop

    mongo, uri = start_embedded_mongo(tempfile.mkdtemp(prefix="bench-profile-mongo-"))
    try:
        os.environ.update(MODEL_STORE=str(store_root(n)), DEFAULT_CORPUS=CORPUS_NAME, MONGODB=uri,
                          CLICK_SECRET="bench-profile-" + "x" * 32)
        import functions_framework
        from werkzeug.test import EnvironBuilder

        app = functions_framework.create_app(target="handle", source=str(ROOT / "function" / "main.py"))
        environs = [EnvironBuilder(path="/", query_string=f"k={K}&text={quote_plus(text)}").get_environ()
                    for text in texts]
        warm, timed = environs[: len(environs) // 5], environs[len(environs) // 5: len(environs) // 2]
        profiled = environs[len(environs) // 2:]
        statuses = []

        def start_response(status, headers, exc_info=None):
            statuses.append(status)

        def run(batch):
            start = time.process_time()  # the whole process: the event writer thread included
            for environ in batch:
                body = app(dict(environ), start_response)
                b"".join(body)
                body.close()  # as a WSGI server does: what the app runs at a response's end
            return (time.process_time() - start) * 1000 / len(batch)

        run(warm)
        assert set(statuses) == {"200 OK"}, set(statuses)

        print(f"CPU per request (the WSGI app called directly, no HTTP server): {run(timed):.3f} ms")
        profiler = cProfile.Profile()
        profiler.enable()
        run(profiled)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(40)
    finally:
        stop(mongo)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="store size (a store `make bench` built)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--requests", action="store_true", help="also profile whole requests")
    args = parser.parse_args(argv)
    if not (store_root(args.n) / CORPUS_NAME).exists():
        sys.exit(f"no store for N={args.n} under {store_root(args.n)}: run make bench (or python -m bench.stores {args.n})")
    texts = query_texts(args.queries)
    lookup_stages(args.n, texts)
    if args.requests:
        profile_requests(args.n, query_texts(max(args.queries, 1000)))


if __name__ == "__main__":
    main()
