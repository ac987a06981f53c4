"""Synthetic corpora and their stores for the benchmark, built once and cached.

    python -m bench.stores 10000 100000 1000000     # corpus + store per N, with build figures
    python -m bench.stores reindex 1000000 [--ann-shard-docs S]   # only the ANN graph again

Each N gets ``bench/cache/corpus-N.jsonl``, a store ``bench/cache/stores/N/synth``
(one corpus folder, so MODEL_STORE=bench/cache/stores/N) and the build's
figures in ``bench/cache/build-N.json`` (wall time, docs/s, peak RSS of the
builder and of its whole process tree, sampled from /proc every 0.1 s, and
the CPU seconds of the builder and its workers: on a shared machine the wall
time says more about the neighbours than about the builder).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.corpus import write_corpus
from bench.procmem import PeakSampler, mib

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / "cache"
CORPUS_NAME = "synth"
# LSI trained on an even sample of this many documents at every N (the
# projection is learnt from a sample; every document is still projected)
LSI_TRAIN_DOCS = 20_000
BUILD_ARGS = ["--engines", "lsi", "--lsi-train-docs", str(LSI_TRAIN_DOCS), "--quiet"]
# one BLAS thread: OpenBLAS's spinning threads on a shared 2-core machine made
# gensim's SVD 5x slower (measured: 149 s vs 26 s for one 5k-document chunk)
BUILD_ENV = {"OPENBLAS_NUM_THREADS": "1"}


def corpus_path(n):
    return CACHE / f"corpus-{n}.jsonl"


def store_root(n):
    """MODEL_STORE for N documents (holds the one corpus 'synth')."""
    return CACHE / "stores" / str(n)


def build_figures_path(n):
    return CACHE / f"build-{n}.json"


def ensure_corpus(n):
    path = corpus_path(n)
    if not path.exists():
        print(f"generating {n} documents -> {path}", file=sys.stderr, flush=True)
        write_corpus(n, path)
    return path


def build_store(n, extra_args=()):
    """Build the store for N with the real builder in a child process; returns the figures."""
    corpus = ensure_corpus(n)
    out = store_root(n) / CORPUS_NAME
    command = [sys.executable, "-m", "function.build", "--input", str(corpus), "--out", str(out),
               "--name", CORPUS_NAME, *BUILD_ARGS, *extra_args]
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **BUILD_ENV}, stderr=subprocess.PIPE, text=True)
    sampler = PeakSampler(process.pid)
    _, err = process.communicate()
    sampler.stop()
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the builder and its reaped workers
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if process.returncode:
        raise RuntimeError(f"build of {n} failed:\n{err}")
    manifest = json.loads((out / (out / "CURRENT").read_text().strip() / "manifest.json").read_text())
    figures = {
        "documents": manifest["documents"],
        "seconds": round(seconds, 1),
        "docs_per_s": round(manifest["documents"] / seconds, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mib": mib(sampler.peak),
        "peak_rss_anon_mib": mib(sampler.peak_anon),
        "peak_rss_main_mib": mib(sampler.peak_main),
        "vocabulary": manifest["vocabulary"],
        "ann": manifest["engines"]["lsi"].get("ann"),
        "store_mib": mib(sum(f["bytes"] for f in manifest["files"].values())),
        "command": " ".join(command[1:]),
        "corpus_mib": mib(corpus.stat().st_size),
    }
    build_figures_path(n).write_text(json.dumps(figures, indent=2))
    return figures


def ensure_store(n):
    """The store root for N, building it (and its figures) when missing."""
    if not (store_root(n) / CORPUS_NAME / "CURRENT").exists() or not build_figures_path(n).exists():
        build_store(n)
    return store_root(n)


def reindex_ann(n, **ann_options):
    """Rebuild only the ANN index of N's store with the builder's own ``build_ann`` (new ANN
    options without re-reading a corpus that took most of an hour); returns its build figures."""
    from function.build import BuildOptions, ann_spec, build_ann
    from function.store import current_version_dir, describe_file

    version = current_version_dir(store_root(n) / CORPUS_NAME)
    root = version / "engines" / "lsi"
    manifest_path = version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    options = BuildOptions(**{**{k: v for k, v in manifest["parameters"].items() if k in BuildOptions.__dataclass_fields__
                                 and k != "engines"}, **ann_options})
    vectors = np.load(root / "vectors.npy", mmap_mode="r")
    for old in root.glob("ann*"):  # (the store is unusable until the manifest is written again)
        old.unlink()
    started, cpu = time.monotonic(), time.process_time()
    manifest["engines"]["lsi"]["ann"] = build_ann(root, vectors, ann_spec(options, vectors.shape), progress=False)
    figures = {"seconds": round(time.monotonic() - started, 1), "cpu_s": round(time.process_time() - cpu, 1),
               "ann": manifest["engines"]["lsi"]["ann"]}
    for name in [name for name in manifest["files"] if name.startswith("engines/lsi/ann")]:
        del manifest["files"][name]
    for path in sorted(root.glob("ann*")):  # the graphs and the rows they do not find
        manifest["files"][f"engines/lsi/{path.name}"] = describe_file(path)
    manifest["parameters"].update(ann_options)
    manifest["reindexed"] = figures
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return figures


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["reindex"]:
        p = argparse.ArgumentParser(prog="python -m bench.stores reindex", description="only the ANN graph again")
        p.add_argument("sizes", nargs="+", type=int, metavar="N")
        p.add_argument("--ann-shard-docs", type=int, help="rows per graph (0: one graph)")
        parsed = p.parse_args(args[1:])
        options = {} if parsed.ann_shard_docs is None else {"ann_shard_docs": parsed.ann_shard_docs}
        for n in parsed.sizes:
            print(json.dumps({"n": n, **reindex_ann(n, **options)}), flush=True)
        return
    p = argparse.ArgumentParser(prog="python -m bench.stores", description="corpus + store per N, with build figures")
    p.add_argument("sizes", nargs="+", type=int, metavar="N")
    for n in p.parse_args(args).sizes:
        figures = build_store(n)
        print(json.dumps({"n": n, **figures}), flush=True)


if __name__ == "__main__":
    main()
