"""`make bench` / `make bench-quick`: our way of serving against the seed's, in one run.

    python -m bench.run                      # N = 10k, 100k, 1M (stores built and cached on first use)
    python -m bench.run --quick              # N = 5k, short runs (< 2 min, store build included)
    python -m bench.run --sizes 10000,100000 --out bench/out/results.json

Prints one table per figure and writes them all to ``bench/results.json``
(keys in bench/README.md). Every ratio compares two measurements taken in
this run, on this machine, at the same load.
"""

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench import load
from bench.corpus import Generator
from bench.procmem import cpu_seconds, mib, rollup
from bench.servers import ROOT, PageServer, Server, article_html, text_path, url_path
from bench.stores import CORPUS_NAME, build_figures_path, ensure_store, store_root
from function.recommend import SLACK

RESULTS = ROOT / "bench" / "results.json"
K = 10


class Settings:
    def __init__(self, quick):
        self.quick = quick
        self.cold_runs = 1 if quick else 3
        self.baseline_cold_runs = 1 if quick else 2
        self.latency_queries = 50 if quick else 300
        self.baseline_seconds = 4 if quick else 45  # time budget for the baseline's sequential queries
        self.inprocess_queries = 100 if quick else 500
        self.ann_sweep = () if quick else (100, 200, 400, 1000, 1600)
        self.load_seconds = 3 if quick else 10
        self.load_runs = 1 if quick else 3
        self.connections = 8
        self.repeat_queries = 30 if quick else 300


def pct(values, q):
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def summary_ms(seconds, cpu=None):
    """Percentiles of wall time (ms); with ``cpu``, the median CPU time too (robust to a busy machine)."""
    ms = [s * 1000 for s in seconds]
    out = {"p50": pct(ms, 50), "p99": pct(ms, 99), "n": len(ms)}
    if cpu is not None:
        out["cpu_p50"] = pct([c * 1000 for c in cpu], 50)
    return out


def timed(fn, items):
    """Wall and CPU (this thread) seconds of ``fn(item)`` for each item."""
    wall, cpu = [], []
    for item in items:
        started, started_cpu = time.perf_counter(), time.thread_time()
        fn(item)
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return wall, cpu


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def query_texts(count, words=100):
    """Texts like the corpus's but not in it (a block far past any N), at most ``words`` words each."""
    _, _, texts = Generator().block(90_000, count)
    return [" ".join(t.split()[:words]) for t in texts]


# -- environments ---------------------------------------------------------------
def our_env(n, mongodb, **extra):
    return {"MODEL_STORE": str(store_root(n)), "DEFAULT_CORPUS": CORPUS_NAME, "MONGODB": mongodb,
            "CLICK_SECRET": "bench-" + secrets.token_hex(16), "FETCH_ALLOW_PRIVATE_HOSTS": "127.0.0.1", **extra}


def baseline_env(n, mongodb):
    from bench.baseline.prepare import prepare

    return {"BASELINE_DATA": str(prepare(n)), "MONGODB": mongodb}


def evict_page_cache(folder):
    """Drop a store's pages from the page cache (no root needed), for a cold-disk start."""
    for path in Path(folder).rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# -- 1 + 2: cold start and HTTP latency -----------------------------------------------
def cold_and_latency(n, mongodb, texts, settings, log):
    probe = text_path(texts[0])
    out = {}
    for kind in ("hello", "ours", "ours_cold_cache", "baseline"):
        runs = settings.baseline_cold_runs if kind == "baseline" else settings.cold_runs
        if kind == "baseline":
            env = baseline_env(n, mongodb)
        else:
            env = {} if kind == "hello" else our_env(n, mongodb)
        target = {"ours_cold_cache": "ours"}.get(kind, kind)
        seconds, cpu, server = [], [], None
        for run in range(runs):
            if kind == "ours_cold_cache":
                evict_page_cache(store_root(n))
            server = Server(target, env)
            try:
                seconds.append(server.wait_for_200("/" if kind == "hello" else probe))
                cpu.append(cpu_seconds(server.pids()))
            finally:
                if run < runs - 1 or kind in ("ours_cold_cache", "hello"):
                    server.stop()
        out[kind] = {"cold_start_s": round(statistics.median(seconds), 3), "runs": [round(s, 3) for s in seconds],
                     "cold_start_cpu_s": round(statistics.median(cpu), 3)}
        log(f"  cold start {kind:16} N={n}: {out[kind]['cold_start_s']} s {out[kind]['runs']}")
        if kind in ("ours_cold_cache", "hello"):
            continue
        try:  # sequential text queries on the warm server (no fetch)
            latencies, server_ms = [], []
            cpu_before = cpu_seconds(server.pids())
            budget = time.monotonic() + (settings.baseline_seconds if kind == "baseline" else 600)
            for text in texts[: settings.latency_queries]:
                status, s, data = server.get(text_path(text))
                assert status == 200, (status, data)
                latencies.append(s)
                server_ms.append(data["timings_ms"].get("lookup", data["timings_ms"]["total"]))
                if time.monotonic() > budget and len(latencies) >= 10:
                    break
            out[kind]["http_ms"] = summary_ms(latencies)
            out[kind]["server_cpu_ms_per_request"] = round(
                (cpu_seconds(server.pids()) - cpu_before) * 1000 / len(latencies), 3)
            out[kind]["server_lookup_ms_p50"] = pct(server_ms, 50)
            log(f"  http latency {kind:14} N={n}: {out[kind]['http_ms']}")
        finally:
            server.stop()
    return out


# -- 2 + 3: in-process lookup, exact vs ANN, recall@10 --------------------------------------
def inprocess(n, texts, settings, log):
    from function.store import Store, current_version_dir, top_k

    store = Store(current_version_dir(store_root(n) / CORPUS_NAME))
    engine = store.engines["lsi"]
    queries = texts[: settings.inprocess_queries]
    vectors = [engine.query_vector(store.terms(t)) for t in queries]
    exact_queries = queries if n < 1_000_000 else queries[:60]

    # steady state, as a serving worker is after its first requests: the index and vector pages
    # these lookups touch come into the page cache (other texts: no cached documents are reused)
    _, _, warm_up = Generator().block(95_000, settings.inprocess_queries)
    for text in warm_up:
        store.docs([h.row for h in engine.search(store.terms(" ".join(text.split()[:100])), K + SLACK)[:K]])
    # as the function asks: k + SLACK hits (some are dropped later), the best k kept
    full = timed(lambda t: store.docs([h.row for h in engine.search(store.terms(t), K + SLACK)[:K]]), queries)
    exact = timed(lambda v: top_k(engine.vectors @ v, K, ()), vectors[: len(exact_queries)])
    tokens = timed(lambda t: store.terms(t), queries)
    out = {"lookup_ms": summary_ms(*full), "exact_search_ms": summary_ms(*exact), "terms_ms": summary_ms(*tokens),
           "index": "usearch HNSW" if engine.ann is not None else "exact"}
    if engine.ann is not None:
        out["ann"] = engine.spec["ann"]
        truth = [{h.row for h in top_k(engine.vectors @ v, K, ())} for v in vectors[:200]]
        # the setting swept: re-ranked candidates (= expansion_search) when the store re-ranks,
        # else expansion_search alone
        sweep = {}
        default = engine.ann_candidates or engine.ann.expansion_search
        for setting in sorted({default, *settings.ann_sweep}):
            if engine.ann_candidates:
                engine.set_candidates(setting)
            else:
                engine.ann.expansion_search = setting
            ann_s = timed(lambda v: engine._search_vector(v, K + SLACK, ()), vectors)
            found = [{h.row for h in engine._search_vector(v, K + SLACK, ())[:K]} for v in vectors[:200]]
            sweep[setting] = {"recall_at_10": round(float(np.mean([len(f & t) / K for f, t in zip(found, truth)])), 4),
                              "search_ms": summary_ms(*ann_s)}
        engine.set_candidates(engine.spec["ann"].get("candidates", 0))
        default_ef = default
        out["ann_sweep"] = sweep
        out["recall_at_10"] = sweep[default_ef]["recall_at_10"]
        out["ann_search_ms"] = sweep[default_ef]["search_ms"]
    else:
        out["recall_at_10"] = 1.0
    # members: neighbours at request time vs a precomputed table (one memmap row)
    rows = np.random.default_rng(3).integers(0, store.size, 200)
    member = timed(lambda r: engine.search_member(int(r), K), rows)
    table = np.lib.format.open_memmap(tempfile.mktemp(suffix=".npy"), "w+", np.int32, (store.size, K))
    precomputed = timed(lambda r: [int(x) for x in table[int(r)]], rows)
    out["member_neighbours"] = {
        "request_time_ms": summary_ms(*member), "precomputed_read_ms": summary_ms(*precomputed),
        "precompute_build_cost_s_estimate": round(statistics.median(member[1]) * store.size / (os.cpu_count() or 1), 1),
        "precompute_table_mib": mib(store.size * K * 8),
    }
    Path(table.filename).unlink()
    log(f"  in-process N={n}: lookup {out['lookup_ms']}, exact {out['exact_search_ms']['p50']} ms, "
        f"recall@10 {out['recall_at_10']}")
    return out


def baseline_inprocess(n, texts, settings, log):
    """The baseline's lookup (vectorise, all N scores, sorted()) without its HTTP, JSON re-read and log."""
    from bench.baseline.prepare import prepare
    from gensim.corpora import Dictionary
    from gensim.models import LsiModel, TfidfModel
    from gensim.similarities import MatrixSimilarity

    from function.tokens import tokenize

    data = prepare(n)
    dictionary = Dictionary.load(str(data / "dictionary.gensim"))
    tfidf, lsi = TfidfModel.load(str(data / "tfidf.gensim")), LsiModel.load(str(data / "lsi.gensim"))
    index = MatrixSimilarity.load(str(data / "index.gensim"))
    budget = time.monotonic() + settings.baseline_seconds

    def lookup(text):
        scores = index[lsi[tfidf[dictionary.doc2bow(tokenize(text))]]]
        return sorted(enumerate(scores), key=lambda item: -item[1])[:K]

    wall, cpu = [], []
    for text in texts[: settings.inprocess_queries]:
        w, c = timed(lookup, [text])
        wall += w
        cpu += c
        if time.monotonic() > budget and len(wall) >= 10:
            break
    out = {"lookup_ms": summary_ms(wall, cpu)}
    log(f"  baseline in-process N={n}: {out['lookup_ms']}")
    return out


# -- 4: PSS of 1, 2, 4 workers ------------------------------------------------------------
def pss(n, mongodb, texts, log):
    out = {}
    paths = [text_path(t) for t in texts] + [f"/?id={i}&k={K}" for i in range(0, n, max(1, n // 400))]
    for workers in (1, 2, 4):
        server = Server("ours", our_env(n, mongodb, WORKERS=str(workers)))
        try:
            server.wait_for_200(paths[0])
            load.warm(server.base, paths * 2, connections=16, fresh_connections=True)
            pids = server.pids()
            parts = [rollup(p) for p in pids]
            out[workers] = {"total_pss_mib": mib(sum(p.get("Pss", 0) for p in parts)),
                            "anon_pss_mib": mib(sum(p.get("Pss_Anon", 0) for p in parts)),
                            "file_pss_mib": mib(sum(p.get("Pss_File", 0) for p in parts)),
                            "processes": len(pids),
                            # each worker's CPU seconds: every one of them served traffic
                            "cpu_s_per_process": [round(cpu_seconds([p]), 2) for p in pids]}
            log(f"  PSS N={n} workers={workers}: {out[workers]}")
        finally:
            server.stop()
    return {"n": n, "workers": out, "ratio_4_to_1": ratio(out[4]["total_pss_mib"], out[1]["total_pss_mib"])}


# -- 5: throughput against hello world -------------------------------------------------------
@contextmanager
def loaded_server(kind, env, paths, connections):
    """A server of ``kind`` answering, every path of ``paths`` asked once (caches and code warm), and
    stopped after."""
    server = Server(kind, env)
    try:
        server.wait_for_200(paths[0])
        load.warm(server.base, paths, connections=connections)
        yield server
    finally:
        server.stop()


def median_run(runs):
    """The run of median requests/s (a whole run, so its p99 and CPU figures are one run's)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def loaded_run(server, paths, connections, seconds, mongo_pids):
    """One load run on a started server, with the CPU each request cost it and the Mongo-wire server,
    and the cores the server kept busy."""
    before = cpu_seconds(server.pids()), cpu_seconds(mongo_pids)
    run = load.run_load(server.base, paths, connections, seconds)
    server_s = cpu_seconds(server.pids()) - before[0]
    mongo_s = cpu_seconds(mongo_pids) - before[1]
    requests = max(1, run["rps"] * seconds)
    run["server_cpu_ms_per_request"] = round(server_s * 1000 / requests, 3)
    run["mongo_cpu_ms_per_request"] = round(mongo_s * 1000 / requests, 3)
    run["server_cores"] = round(server_s / seconds, 2)
    return run


def throughput(sizes, mongodb, texts, settings, log, mongo_pid=None):
    """Requests/s of hello world and of ours at each N, same stack, same connections; with the CPU
    each request cost the server and the Mongo-wire server, and the cores the server kept busy
    (one worker's Python holds one GIL: near 1.0 the worker, not the machine, is the limit).

    Ours twice: 200 text queries, each answered by a lookup; and 200 article URLs asked again, as a
    widget's page views ask for their own page, answered from the worker's page caches (warmed
    first, one page at a time, so that every page is fetched once before the load)."""
    mongo_pids = [mongo_pid] if mongo_pid else []

    def measure(label, kind, env, paths, warm):
        # warming every path (pages to fetch): one at a time, so that each page is fetched once
        connections = settings.connections if warm < len(paths) else 1
        with loaded_server(kind, env, paths[:warm], connections) as server:
            runs = [loaded_run(server, paths, settings.connections, settings.load_seconds, mongo_pids)
                    for _ in range(settings.load_runs)]
        if any(r["non_2xx_or_errors"] for r in runs):  # e.g. a page that failed: its error answered from memory
            raise RuntimeError(f"throughput {label}: answers other than 200 ({[r['non_2xx_or_errors'] for r in runs]})")
        best = median_run(runs)
        figures = {**best, "runs_rps": [r["rps"] for r in runs],
                   **{key: round(statistics.median(r[key] for r in runs), 3)
                      for key in ("server_cpu_ms_per_request", "mongo_cpu_ms_per_request", "server_cores")}}
        log(f"  throughput {label}: {figures}")
        return figures

    # hello world before each N and after the last: each ratio is against the two runs around it,
    # since the shared machine's speed drifts over the minutes a run takes (hello alone moved from
    # 1,920 to 2,660 req/s between two runs a quarter of an hour apart)
    hellos = [measure("hello", "hello", {}, ["/"], warm=1)]
    out = {"ours": {}, "ratio": {}, "cpu_ratio": {}, "ours_repeat_url": {}, "ratio_repeat_url": {},
           "hello_rps_around": {}, "connections": settings.connections, "seconds": settings.load_seconds}
    articles = texts[:200]
    pages = PageServer(lambda path: article_html(f"Article {path}", _paragraphs(articles[int(path.rsplit("/", 1)[1])])))
    urls = [url_path(pages.url(f"/article/{i}"), K) for i in range(len(articles))]
    try:
        for n in sizes:
            env = our_env(n, mongodb)
            out["ours"][str(n)] = measure(f"ours N={n}", "ours", env, [text_path(t) for t in articles], warm=50)
            out["ours_repeat_url"][str(n)] = measure(f"ours N={n} repeat URL", "ours", env, urls, warm=len(urls))
            hellos.append(measure("hello", "hello", {}, ["/"], warm=1))
    finally:
        pages.close()
    for n, before, after in zip(sizes, hellos, hellos[1:]):
        hello_rps = (before["rps"] + after["rps"]) / 2
        hello_cpu = (before["server_cpu_ms_per_request"] + after["server_cpu_ms_per_request"]) / 2
        ours, repeat = out["ours"][str(n)], out["ours_repeat_url"][str(n)]
        out["hello_rps_around"][str(n)] = round(hello_rps, 1)
        out["ratio"][str(n)] = ratio(ours["rps"], hello_rps)
        out["ratio_repeat_url"][str(n)] = ratio(repeat["rps"], hello_rps)
        # what each request costs the server: the ratio a machine to itself would show
        out["cpu_ratio"][str(n)] = ratio(hello_cpu, ours["server_cpu_ms_per_request"])
    out["hello_runs"] = hellos
    out["hello"] = median_run(hellos)  # for the table
    return out


def _paragraphs(text, words=60):
    words_of = text.split()
    return [" ".join(words_of[i:i + words]) + "." for i in range(0, len(words_of), words)]


# -- 7 + issue 8: repeat URL, fetched URL, corpus-member URL, id ------------------------------
def sources(n, mongodb, texts, settings, log):
    from bench.stores import corpus_path

    paragraphs = [p for t in texts[:4] for p in _paragraphs(t)] * 5
    pages = PageServer(article_html("A synthetic article", paragraphs))
    server = Server("ours", our_env(n, mongodb))
    out = {}
    try:
        server.wait_for_200(text_path(texts[0]))
        members = []
        with open(corpus_path(n)) as f:
            for i, line in enumerate(f):
                if i % max(1, n // settings.repeat_queries) == 0:
                    members.append(json.loads(line)["url"])
                if len(members) >= settings.repeat_queries:
                    break

        def measure(paths, expect_source, cached=None):
            seconds, server_ms = [], []
            cpu_before = cpu_seconds(server.pids())
            for path in paths:
                status, s, data = server.get(path)
                assert status == 200 and data["source"] == expect_source, (status, data)
                if cached is not None:
                    assert data["page"]["cached"] is cached, data["page"]
                seconds.append(s)
                server_ms.append(data["timings_ms"]["total"])
            return {"http_ms": summary_ms(seconds), "server_total_ms_p50": pct(server_ms, 50),
                    "server_cpu_ms_per_request": round((cpu_seconds(server.pids()) - cpu_before) * 1000 / len(paths), 3)}

        count = settings.repeat_queries
        fresh = [url_path(pages.url(f"/article/{i}"), K) for i in range(count)]
        out["fetched_url"] = measure(fresh, "fetched", cached=False)
        repeat = url_path(pages.url("/article/0"), K)
        out["repeat_url"] = measure([repeat] * count, "fetched", cached=True)
        out["corpus_member_url"] = measure([url_path(u, K) for u in members], "corpus")
        out["id"] = measure([f"/?id={i}&k={K}" for i in range(0, n, max(1, n // count))][:count], "corpus")
        out["text"] = measure([text_path(t) for t in texts[:count]], "text")
        for name, figures in out.items():
            log(f"  {name:18} N={n}: {figures}")
    finally:
        server.stop()
        pages.close()
    out["n"] = n
    return out


# -- tables ---------------------------------------------------------------------------------
def table(title, header, rows):
    lines = [title, "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def tables(results):
    out = []
    sizes = results["meta"]["sizes"]
    cold, inproc, base = results["cold_start"], results["inprocess"], results["baseline_inprocess"]
    out.append(table("1. Cold start: process start to first 200 answer (s, median; CPU s of the server processes)",
                     ["N", "hello world (the stack's floor)", "hello CPU", "ours", "ours CPU",
                      "ours, store not in page cache", "baseline", "baseline CPU", "baseline / ours"],
                     [[n, c["hello"]["cold_start_s"], c["hello"]["cold_start_cpu_s"], c["ours"]["cold_start_s"],
                       c["ours"]["cold_start_cpu_s"], c["ours_cold_cache"]["cold_start_s"],
                       c["baseline"]["cold_start_s"], c["baseline"]["cold_start_cpu_s"],
                       ratio(c["baseline"]["cold_start_s"], c["ours"]["cold_start_s"])]
                      for n, c in ((n, cold[str(n)]) for n in sizes)]))
    out.append(table("2. Text queries, no fetch (ms): in-process lookup (text -> ranked docs), and HTTP round trip",
                     ["N", "ours p50", "ours p99", "ours CPU p50", "baseline p50", "baseline CPU p50",
                      "ratio p50", "ratio CPU", "ours HTTP p50", "ours HTTP p99", "baseline HTTP p50",
                      "HTTP ratio p50", "server CPU/req ours", "server CPU/req baseline"],
                     [[n, i["lookup_ms"]["p50"], i["lookup_ms"]["p99"], i["lookup_ms"]["cpu_p50"], b["lookup_ms"]["p50"],
                       b["lookup_ms"]["cpu_p50"], ratio(b["lookup_ms"]["p50"], i["lookup_ms"]["p50"]),
                       ratio(b["lookup_ms"]["cpu_p50"], i["lookup_ms"]["cpu_p50"]),
                       c["ours"]["http_ms"]["p50"], c["ours"]["http_ms"]["p99"], c["baseline"]["http_ms"]["p50"],
                       ratio(c["baseline"]["http_ms"]["p50"], c["ours"]["http_ms"]["p50"]),
                       c["ours"]["server_cpu_ms_per_request"], c["baseline"]["server_cpu_ms_per_request"]]
                      for n, c, i, b in ((n, cold[str(n)], inproc[str(n)], base[str(n)]) for n in sizes)]))
    out.append(table("3. Index and recall@10 against exact search (search only, ms)",
                     ["N", "index", "recall@10", "ANN p50", "ANN CPU p50", "exact p50", "exact CPU p50"],
                     [[n, i["index"], i["recall_at_10"], (i.get("ann_search_ms") or {}).get("p50"),
                       (i.get("ann_search_ms") or {}).get("cpu_p50"), i["exact_search_ms"]["p50"],
                       i["exact_search_ms"]["cpu_p50"]] for n, i in ((n, inproc[str(n)]) for n in sizes)]))
    for n in sizes:
        sweep = inproc[str(n)].get("ann_sweep")
        if sweep and len(sweep) > 1:
            label = "re-ranked candidates" if inproc[str(n)]["ann"].get("candidates") else "expansion_search"
            out.append(table(f"3b. HNSW {label} at N={n}",
                             [label, "recall@10", "p50 ms", "p99 ms", "CPU p50 ms"],
                             [[ef, v["recall_at_10"], v["search_ms"]["p50"], v["search_ms"]["p99"],
                               v["search_ms"]["cpu_p50"]] for ef, v in sweep.items()]))
    if results.get("pss"):
        p = results["pss"]
        out.append(table(f"4. Total PSS of gunicorn serving N={p['n']}, after traffic (MiB, master included)",
                         ["workers", "total PSS", "anonymous", "file-backed (store, code)", "processes"],
                         [[w, v["total_pss_mib"], v["anon_pss_mib"], v["file_pss_mib"], v["processes"]]
                          for w, v in p["workers"].items()]) + f"\n4 workers / 1 worker: {p['ratio_4_to_1']}")
    t = results["throughput"]
    def row(label, o, ratio):
        return [label, o["rps"], o["p50_ms"], o["p99_ms"], o["non_2xx_or_errors"], o["server_cpu_ms_per_request"],
                o.get("server_cores"), o.get("mongo_cpu_ms_per_request"), ratio]

    rows = [row(f"hello world, run {i + 1}", h, "") for i, h in enumerate(t.get("hello_runs", [t["hello"]]))]
    rows += [row(f"ours, N={n}, text", o, t["ratio"][n]) for n, o in t["ours"].items()]
    rows += [row(f"ours, N={n}, repeat URL", o, t["ratio_repeat_url"][n])
             for n, o in t.get("ours_repeat_url", {}).items()]
    out.append(table(f"5. Throughput, functions-framework + gunicorn (1 worker), {t['connections']} connections, "
                     "Mongo logging on: 200 text queries (each a lookup), 200 article URLs asked again (cached); "
                     "hello world before each N and after the last, each ratio against the two runs around its N",
                     ["handler", "requests/s", "p50 ms", "p99 ms", "errors", "server CPU ms/req", "server cores busy",
                      "Mongo-wire CPU ms/req", "ours / hello req/s"], rows))
    out.append(table("6. Store build (real builder, --engines lsi)",
                     ["N", "wall s", "docs/s", "CPU s (all processes)", "peak RSS MiB (all processes)",
                      "of it anonymous (not mapped files)", "peak RSS MiB (main)", "store MiB"],
                     [[n, b["seconds"], b["docs_per_s"], b.get("cpu_s"), b["peak_rss_mib"], b.get("peak_rss_anon_mib"),
                       b["peak_rss_main_mib"], b["store_mib"]] for n, b in ((n, results["build"][str(n)]) for n in sizes)]))
    src = results["sources"]
    out.append(table(f"7. Query kinds through HTTP at N={src['n']} (ms)",
                     ["query", "HTTP p50", "HTTP p99", "server total p50", "server CPU/req"],
                     [[k, src[k]["http_ms"]["p50"], src[k]["http_ms"]["p99"], src[k]["server_total_ms_p50"],
                       src[k]["server_cpu_ms_per_request"]]
                      for k in ("repeat_url", "fetched_url", "corpus_member_url", "id", "text")]))
    out.append(table("8. Member neighbours: at request time vs precomputed (ms)",
                     ["N", "request time p50", "request time CPU p50", "precomputed read p50",
                      "precompute build CPU s (estimate)", "table MiB"],
                     [[n, m["request_time_ms"]["p50"], m["request_time_ms"]["cpu_p50"], m["precomputed_read_ms"]["p50"],
                       m["precompute_build_cost_s_estimate"], m["precompute_table_mib"]]
                      for n, m in ((n, inproc[str(n)]["member_neighbours"]) for n in sizes)]))
    return "\n\n".join(out)


REMEASURABLE = ("pss", "throughput", "sources")


def _merged(old, new):
    """``old`` with ``new``'s values, dicts merged key by key: a figure re-measured at some sizes keeps
    the others' (--sizes 10000 had stopped at the first size the cache lacks, its store unbuilt)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    return {**old, **{key: _merged(old.get(key), value) for key, value in new.items()}}


def remeasure(out, names, settings, log, sizes=None):
    """Replace some figures of an earlier run's results (noted in meta.remeasured), at ``sizes`` (default:
    the run's own), merged into the figures of the run's other sizes."""
    from function.devserver import start_embedded_mongo, stop

    results = json.loads(out.read_text())
    sizes = sizes or results["meta"]["sizes"]
    largest = max(sizes)
    texts = query_texts(max(settings.latency_queries, settings.inprocess_queries))
    mongo_dir = Path(tempfile.mkdtemp(prefix="bench-mongo-", dir=ROOT / "bench" / "cache"))
    mongo, mongodb = start_embedded_mongo(mongo_dir)
    try:
        for name in names:
            figure = {"pss": lambda: pss(largest, mongodb, texts[:200], log),
                      "throughput": lambda: throughput(sizes, mongodb, texts, settings, log, mongo.pid),
                      "sources": lambda: sources(largest, mongodb, texts, settings, log)}[name]
            results[name] = _merged(results.get(name), figure())
            results["meta"].setdefault("remeasured", {})[name] = {
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average": os.getloadavg()}
    finally:
        stop(mongo)
        shutil.rmtree(mongo_dir, ignore_errors=True)
    print(tables(results))
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"updated {', '.join(names)} in {out}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", help="comma list of N (default: 10000,100000,1000000; quick: 5000)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--only", help=f"re-measure these figures into the existing --out file ({', '.join(REMEASURABLE)})")
    args = p.parse_args(argv)
    settings = Settings(args.quick)
    sizes = [int(s) for s in (args.sizes or ("5000" if args.quick else "10000,100000,1000000")).split(",")]

    def log(message):
        print(message, file=sys.stderr, flush=True)

    from function.devserver import start_embedded_mongo, stop

    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - set(REMEASURABLE))
        if unknown:
            p.error(f"--only: no figure named {', '.join(unknown)} (one or more of {', '.join(REMEASURABLE)})")
        if not args.out.is_file():
            p.error(f"--only re-measures figures into an earlier run's results, and {args.out} does not exist: "
                    f"run python -m bench.run first, or name one with --out")
        return remeasure(args.out, names, settings, log, sizes if args.sizes else None)
    started = time.time()
    results = {"meta": {"mode": "quick" if args.quick else "full", "sizes": sizes, "k": K,
                        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                    "load_average_start": os.getloadavg()},
                        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))},
               "build": {}, "cold_start": {}, "inprocess": {}, "baseline_inprocess": {}}
    for n in sizes:
        log(f"store N={n}")
        ensure_store(n)
        figures = json.loads(build_figures_path(n).read_text())
        watched = build_figures_path(n).with_name(f"cpu-{n}.json")  # CPU watched from outside for early builds
        if "cpu_s" not in figures and watched.exists():
            outside = json.loads(watched.read_text())
            figures.update({key: outside[key] for key in ("cpu_s", "peak_rss_anon_mib") if key in outside})
        results["build"][str(n)] = figures
    texts = query_texts(max(settings.latency_queries, settings.inprocess_queries))
    mongo_dir = Path(tempfile.mkdtemp(prefix="bench-mongo-", dir=ROOT / "bench" / "cache"))
    mongo, mongodb = start_embedded_mongo(mongo_dir)
    try:
        for n in sizes:
            log(f"N={n}")
            results["inprocess"][str(n)] = inprocess(n, texts, settings, log)
            results["baseline_inprocess"][str(n)] = baseline_inprocess(n, texts, settings, log)
            results["cold_start"][str(n)] = cold_and_latency(n, mongodb, texts, settings, log)
        largest = max(sizes)
        results["pss"] = pss(largest, mongodb, texts[:200], log) if (largest >= 1_000_000 or args.quick) else None
        results["throughput"] = throughput(sizes, mongodb, texts, settings, log, mongo.pid)
        results["sources"] = sources(largest, mongodb, texts, settings, log)
    finally:
        stop(mongo)
        shutil.rmtree(mongo_dir, ignore_errors=True)
    results["meta"]["seconds"] = round(time.time() - started, 1)
    results["meta"]["machine"]["load_average_end"] = os.getloadavg()
    text = tables(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out} in {results['meta']['seconds']} s")


if __name__ == "__main__":
    main()
