#!/usr/bin/env python3
"""Relevance of the store's engines per build configuration (``make eval-relevance``).

For each configuration it builds a real store with ``function.build`` (in a
temporary folder), asks every engine for each query document's neighbours
(``search_member``: the ``/?id=`` path; a member's stored vector is what its
text would give) and scores the rankings against the judgements of
bench/relevance_judgements.py:

  P@5      share of the first 5 answers that are relevant
  nDCG@10  gain of the first 10 answers against the best order possible
  r        (lee only) Pearson correlation of the engine's scores with the mean
           human rating over the 1,225 rated pairs, the figure Lee et al. report

Besides the stored engines, ``blendA`` rows score A x LSI cosine + (1 - A) x
sparse cosine over both engines' candidates (computed here, not an engine of
the store), and "random order" gives the expected figures of chance. The
store's default engine is marked with *. Then paired bootstrap intervals for
the nDCG@10 differences that chose the defaults. Writes bench/out/relevance.json.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

if __name__ == "__main__":
    # One BLAS thread: on 2 shared cores OpenBLAS's threads fight other processes
    # and a 106-document LSI takes 20+ s instead of 1; the figures stay comparable.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.relevance_judgements import EVALUATIONS  # noqa: E402
from function.build import BuildOptions, build  # noqa: E402
from function.store import Store  # noqa: E402

OUT = REPO / "bench" / "out" / "relevance.json"
BLEND_WEIGHTS = (0.1, 0.2, 0.3)
BOOTSTRAP_ROUNDS = 4000


# -- metrics ------------------------------------------------------------------------
def precision_at(ranking, gains, k, min_gain):
    return sum(1 for doc in ranking[:k] if gains.get(doc, 0.0) >= min_gain) / k


def ndcg_at(ranking, gains, k):
    dcg = sum(gains.get(doc, 0.0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def score_rankings(evaluation, rankings):
    """Mean P@5 and nDCG@10 over the queries, and nDCG@10 per query (sorted query ids)."""
    queries = sorted(evaluation.judgements)
    p5 = [precision_at(rankings[q], evaluation.judgements[q], 5, evaluation.min_relevant_gain) for q in queries]
    ndcg = [ndcg_at(rankings[q], evaluation.judgements[q], 10) for q in queries]
    return {"p5": float(np.mean(p5)), "ndcg10": float(np.mean(ndcg)), "per_query_ndcg10": ndcg}


def pearson(evaluation, scores):
    """Correlation of engine scores with the human ratings (a pair without a score: 0)."""
    if not evaluation.human:
        return None
    pairs = list(evaluation.human)
    machine = [scores.get(a, {}).get(b, 0.0) for a, b in pairs]
    return float(np.corrcoef(machine, [evaluation.human[p] for p in pairs])[0, 1])


def random_baseline(evaluation, rounds=200, seed=0):
    """Expected figures of a random order of the candidates (Monte Carlo)."""
    rng = np.random.default_rng(seed)
    ids = sorted(evaluation.candidates or {r.id for r in evaluation.records})
    totals = {"p5": 0.0, "ndcg10": 0.0}
    for _ in range(rounds):
        rankings = {}
        for q in evaluation.judgements:
            others = [d for d in ids if d != q]
            rankings[q] = [others[i] for i in rng.permutation(len(others))]
        figures = score_rankings(evaluation, rankings)
        for key in totals:
            totals[key] += figures[key] / rounds
    return totals


def paired_interval(a, b, rounds=BOOTSTRAP_ROUNDS, seed=0):
    """Mean of a - b (paired per query) and its 95% bootstrap interval."""
    diff = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (rounds, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# -- one configuration ----------------------------------------------------------------
def all_scores(store, engine, ids, queries, candidates):
    """query id -> {candidate id: score} for every candidate the engine scores."""
    row_of = {doc: row for row, doc in enumerate(ids)}
    out = {}
    for q in queries:
        hits = engine.search_member(row_of[q], store.size)
        out[q] = {ids[h.row]: h.score for h in hits if candidates is None or ids[h.row] in candidates}
    return out


def blend(lsi, sparse, weight):
    """weight x LSI cosine + (1 - weight) x sparse cosine; a missing score counts 0."""
    return {q: {d: weight * lsi[q].get(d, 0.0) + (1 - weight) * sparse[q].get(d, 0.0)
                for d in lsi[q].keys() | sparse[q].keys()} for q in lsi}


def ranking_of(scores):
    return {q: sorted(s, key=lambda d: (-s[d], d)) for q, s in scores.items()}


def evaluate(evaluation, options, blend_weights=BLEND_WEIGHTS):
    """Build a store with ``options`` and score each engine (and blends); returns a dict."""
    with tempfile.TemporaryDirectory(prefix="relevance-") as tmp:
        started = time.perf_counter()
        final, manifest = build([iter(evaluation.records)], Path(tmp) / evaluation.name, options, progress=False)
        build_seconds = time.perf_counter() - started
        store = Store(final, verify=False)
        ids = [doc.id for doc in store.docs(list(range(store.size)))]
        queries = sorted(evaluation.judgements)
        scores = {name: all_scores(store, engine, ids, queries, evaluation.candidates)
                  for name, engine in store.engines.items()}
        kinds = {name: engine.kind for name, engine in store.engines.items()}
        default_engine = store.default_engine
    lsi = next((n for n, k in kinds.items() if k == "lsi"), None)
    sparse = next((n for n, k in kinds.items() if k == "sparse"), None)
    if lsi and sparse:
        for weight in blend_weights:
            scores[f"blend{weight:g}"] = blend(scores[lsi], scores[sparse], weight)
    engines = {}
    for name, by_query in scores.items():
        engines[name] = score_rankings(evaluation, ranking_of(by_query))
        r = pearson(evaluation, by_query)
        if r is not None:
            engines[name]["r"] = r
    return {
        "build_seconds": round(build_seconds, 2),
        "documents": manifest["documents"],
        "vocabulary": manifest["vocabulary"],
        "lsi_dims": manifest["engines"].get(lsi, {}).get("dims"),
        "default_engine": default_engine,
        "parameters": manifest["parameters"],
        "tokenizer": manifest["tokenizer"],
        "engines": engines,
    }


# -- configurations -------------------------------------------------------------------
def options_for(overrides, name):
    """BuildOptions: the defaults with ``overrides`` (tokenizer fields under "tokenizer")."""
    overrides = dict(overrides)
    tokenizer = overrides.pop("tokenizer", {})
    base = BuildOptions(name=name, keep_versions=1)
    return replace(base, tokenizer=replace(base.tokenizer, **tokenizer), **overrides)


# The seed: TF-IDF -> LSI with 300 topics answering, tokens of 2+ letters, the text alone, gensim's
# filter_extremes defaults (no_below 5 and no_above 0.5 there; 2 here, as our builder first had it).
SEED = {"lsi_dims": 300, "local": "tf", "global_weight": "idf", "default_engine": "lsi",
        "tokenizer": {"min_len": 2}, "index_titles": False, "no_below": 2}

# The defaults (BuildOptions as they are), then one change at a time from them.
CONFIGS = {
    "seed: tf-idf, LSI 300": SEED,
    "defaults": {},
    "weights tf-idf": {"local": "tf", "global_weight": "idf"},
    "weights log-idf": {"local": "log", "global_weight": "idf"},
    "weights tf-entropy": {"local": "tf", "global_weight": "entropy"},
    "LSI 25": {"lsi_dims": 25},
    "LSI 50": {"lsi_dims": 50},
    "LSI 100": {"lsi_dims": 100},
    "LSI 300": {"lsi_dims": 300},
    "tokens of 2+ letters": {"tokenizer": {"min_len": 2}},
    "tokens of 3+ letters": {"tokenizer": {"min_len": 3}},
    "numbers kept": {"tokenizer": {"numbers": True}},
    "accents kept": {"tokenizer": {"deaccent": False}},
    "English stop words": {"tokenizer": {"stopwords": "english"}},
    "English stemmer": {"tokenizer": {"stem": "english"}},
    "English stop words and stemmer": {"tokenizer": {"stopwords": "english", "stem": "english"}},
    "titles not indexed": {"index_titles": False},
    "no_below 2": {"no_below": 2},
    "no_above 1.0": {"no_above": 1.0},
}

# Paired nDCG@10 comparisons, (configuration, engine) minus (configuration, engine);
# engine None: that store's default engine.
COMPARISONS = [
    (("defaults", None), ("seed: tf-idf, LSI 300", None)),
    (("defaults", "lsi"), ("defaults", None)),
    (("defaults", "blend0.2"), ("defaults", None)),
    (("LSI 50", "blend0.2"), ("defaults", None)),
    (("LSI 25", "blend0.1"), ("defaults", None)),
    (("tokens of 2+ letters", None), ("defaults", None)),
    (("defaults", None), ("titles not indexed", None)),
    (("defaults", None), ("no_below 2", None)),
    (("English stop words", None), ("defaults", None)),
    (("English stemmer", None), ("defaults", None)),
    (("English stop words and stemmer", None), ("defaults", None)),
]


# -- report ---------------------------------------------------------------------------
def table(results, evaluations):
    """Markdown: one row per configuration and engine."""
    head = ["configuration", "engine"]
    for name in evaluations:
        head += [f"{name} P@5", f"{name} nDCG@10"] + (["lee r"] if name == "lee" else [])
    head += [f"{name} build s" for name in evaluations]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for config, per_eval in results.items():
        first = per_eval[evaluations[0]]
        for i, engine in enumerate(first["engines"]):
            marked = engine + (" *" if engine == first.get("default_engine") else "")
            cells = [config if i == 0 else "", marked]
            for name in evaluations:
                figures = per_eval[name]["engines"].get(engine, {})
                cells += [f"{figures['p5']:.3f}", f"{figures['ndcg10']:.3f}"]
                if name == "lee":
                    cells.append(f"{figures['r']:.3f}" if "r" in figures else "")
            cells += [f"{per_eval[name]['build_seconds']:.1f}" if i == 0 and "build_seconds" in per_eval[name] else ""
                      for name in evaluations]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparisons(results, evaluations):
    """Paired bootstrap intervals of nDCG@10 differences, per evaluation and pooled."""
    out = []
    for (config_a, engine_a), (config_b, engine_b) in COMPARISONS:
        if config_a not in results or config_b not in results:
            continue
        row = {"a": f"{config_a} / {engine_a or 'default engine'}", "b": f"{config_b} / {engine_b or 'default engine'}"}
        pooled_a, pooled_b = [], []
        for name in evaluations:
            ra, rb = results[config_a][name], results[config_b][name]
            a = ra["engines"][engine_a or ra["default_engine"]]["per_query_ndcg10"]
            b = rb["engines"][engine_b or rb["default_engine"]]["per_query_ndcg10"]
            row[name] = paired_interval(a, b)
            pooled_a += a
            pooled_b += b
        if len(evaluations) > 1:
            row["pooled"] = paired_interval(pooled_a, pooled_b)
        out.append(row)
    return out


def comparison_lines(rows, evaluations):
    columns = list(evaluations) + (["pooled"] if len(evaluations) > 1 else [])
    lines = ["nDCG@10 difference, mean [95% paired bootstrap interval]:"]
    for row in rows:
        cells = "  ".join(f"{c} {row[c][0]:+.3f} [{row[c][1]:+.3f}, {row[c][2]:+.3f}]" for c in columns)
        lines.append(f"  {row['a']}  minus  {row['b']}:  {cells}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", default=",".join(EVALUATIONS), help="comma list of: " + ", ".join(EVALUATIONS))
    parser.add_argument("--configs", default="", help="comma list of configuration names (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.eval.split(",") if n.strip()]
    wanted = [c.strip() for c in args.configs.split(",") if c.strip()]
    configs = {k: v for k, v in CONFIGS.items() if not wanted or k in wanted}
    evaluations = {}
    for name in names:
        evaluations[name] = EVALUATIONS[name]()
        print(f"{name}: {evaluations[name].note}", file=sys.stderr)

    results = {"random order": {name: {"engines": {"random": random_baseline(e)}} for name, e in evaluations.items()}}
    for config, overrides in configs.items():
        results[config] = {name: evaluate(e, options_for(overrides, name)) for name, e in evaluations.items()}
        print(f"built and scored: {config}", file=sys.stderr)

    report = table(results, names)
    compared = comparisons(results, names)
    print(report)
    print()
    print(comparison_lines(compared, names))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "evaluations": {n: e.note for n, e in evaluations.items()},
        "configurations": {"seed: tf-idf, LSI 300": SEED, **configs},
        "results": results,
        "comparisons": compared,
        "table": report,
    }, indent=1))
    print(f"written: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
