"""Build a model store from a corpus (apart from the serving path).

    python -m function.build --input CORPUS.jsonl --out model_store/NAME

Every pass streams, so memory does not grow with the corpus:
  1. read + tokenise each record: metadata into SQLite, bags of words into
     scratch files, document frequencies into a Vocabulary (function.counting);
  2. prune the vocabulary (as a gensim Dictionary); global term weights (IDF or entropy);
  3. per engine: train the LSI (gensim) chunk by chunk and write the document
     vectors (plus an ANN index for large corpora), or write the postings;
  4. a manifest with checksums, then the finished folder is renamed into
     place and CURRENT points at it: a half-built store never serves.
"""

import argparse
import ctypes
import ctypes.util
import fcntl
import json
import os
import re
import shlex
import shutil
import sqlite3
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# gensim, scipy, usearch and tqdm are imported in the functions that use them: they take seconds to
# load, which --help, a refused argument and the updater (it imports this module's helpers) skip
from . import __version__, cli
from .records import Skip
from .sources import INPUT_HELP, add_source_arguments, open_source, prepare_sources, source_settings
from .store import (ANN_MISSED_ROWS, ANN_MISSED_VECTORS, FORMAT, FORMAT_VERSION, VOCAB_DTYPE, StoreError,
                    ann_expansion, ann_share, ann_shards, describe_version, local_weight)
from .article import indexed_text
from .config import NAME
from .counting import BATCH_DOCS, BatchCounter, Vocabulary
from .tokens import REVISION, TokenizerOptions, stoplist_name, stoplist_names
from .urls import host_of, normalise_url

CHUNK_DOCS = 10_000
# a row is found by the graph when it is among the best this many for its own vector (twins share it)
ANN_MISSED_CHECK = 10
TINY_CORPUS = 20  # documents: below it, a word's share of them says little (see --no-above)
SCRATCH_FILES = ("bag_ids.bin", "bag_counts.bin", "bag_offsets.bin")


@dataclass
class BuildOptions:
    name: str = "corpus"
    engines: tuple = ("lsi", "tfidf")
    # defaults chosen on bench/relevance.py's figures (README, "Relevance"): on small
    # corpora the sparse engine with log-entropy weights ranks best; LSI does not beat it
    default_engine: str = "tfidf"
    lsi_dims: int = 200
    local: str = "log"  # "tf" or "log"
    global_weight: str = "entropy"  # "idf" or "entropy"
    # keep terms found in at least this many documents (at most a tenth of them): 1 keeps a word only one
    # article has, what a short query for its subject asks for ("tomatoes" of a 28-post blog had been a
    # 422); neutral on both evaluations (README), and keep_n bounds the vocabulary all the same
    no_below: int = 1
    no_above: float = 0.5  # ... and in at most this share of them (of fewer than TINY_CORPUS: all but one)
    keep_n: int = 200_000
    index_titles: bool = True  # a document's title is indexed with its text (article.indexed_text)
    lsi_train_docs: int = 0  # 0: train the LSI on every document; else on an even sample
    ann: str = "auto"  # "auto" (from ann_min_docs), "on" or "off"
    ann_min_docs: int = 20_000
    ann_dtype: str = "f16"
    ann_connectivity: int = 16
    ann_expansion_add: int = 128
    ann_expansion_search: int = 64
    # The graph indexes the leading LSI components only and serving re-ranks
    # its best ann_candidates exactly on the full vectors. Measured on the
    # bench corpora (bench/README.md): over all 200 dimensions recall@10 stayed
    # under 0.85 at 1M documents even at expansion 384; 96 dimensions and
    # re-ranking reach 0.95 with about N/1000 candidates.
    ann_dims: int = 96  # 0: all dimensions
    ann_candidates: int = -1  # -1: N / 1000, within 200..2000; 0: no re-ranking, the index's own order
    # The graph of a shard is built in memory (about 0.2 KB a document): shards of this many rows
    # keep the builder's peak that of one shard's graph, under the LSI training's, at any N.
    # A query asks each shard for its share of the candidates (bench/README.md: the cost).
    ann_shard_docs: int = 500_000
    seed: int = 42
    keep_versions: int = 2
    workers: int = 0  # tokenising processes; 0: one per core (the result does not depend on it)
    prune_at: int = 2_000_000  # vocabulary kept while reading (rarest forgotten past it), as gensim's
    tokenizer: TokenizerOptions = field(default_factory=TokenizerOptions)

    def parameters(self):
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "tokenizer", "workers")}
        out["engines"] = list(self.engines)
        return out


def options_for_engine(name, options):
    """An engine's parameters: the build's, except that an LSI named "lsi-N" has N dimensions
    (two LSI sizes in one store: an experiment for ENGINE_WEIGHTS)."""
    kind, _, size = name.partition("-")
    if kind == "lsi" and size.isdigit() and int(size) > 0:
        return replace(options, lsi_dims=int(size))
    return options


class Bags:
    """Bags of words appended to flat scratch files, read back in chunks. Where each bag starts
    is a scratch file too (a list of a million offsets was 40 MB of the builder's memory)."""

    def __init__(self, folder):
        self.paths = [folder / name for name in SCRATCH_FILES]
        self._files = [open(p, "wb") for p in self.paths]
        self._files[2].write(np.zeros(1, np.int64).tobytes())  # offsets: bag i is [offsets[i], offsets[i + 1])
        self._size = 0
        self._end = 0

    def append_batch(self, ids, counts, sizes):
        """Many bags at once: flat ids and counts, ``sizes[i]`` entries for bag i."""
        ends = self._end + np.cumsum(np.asarray(sizes, np.int64))
        self._files[0].write(np.asarray(ids, np.int32).tobytes())
        self._files[1].write(np.asarray(counts, np.int32).tobytes())
        self._files[2].write(ends.tobytes())
        self._size += len(ends)
        self._end = int(ends[-1]) if len(ends) else self._end

    def __len__(self):
        return self._size

    def close(self):
        for f in self._files:
            f.close()
        ids, counts, offsets = self.paths
        self.offsets = np.memmap(offsets, np.int64, "r")
        self.ids, self.counts = (np.memmap(p, np.int32, "r") if p.stat().st_size else np.empty(0, np.int32)
                                 for p in (ids, counts))

    def remove(self):
        """Delete the scratch files (the maps over them are dropped first)."""
        self.ids = self.counts = self.offsets = None
        for path in self.paths:
            path.unlink(missing_ok=True)

    def chunks(self, remap, vocab_size):
        """(first row, CSR of raw counts over the final vocabulary) per chunk of CHUNK_DOCS bags."""
        from scipy.sparse import csr_matrix

        for first in range(0, len(self), CHUNK_DOCS):
            last = min(first + CHUNK_DOCS, len(self))
            lo, hi = self.offsets[first], self.offsets[last]
            terms = remap[self.ids[lo:hi]]
            keep = terms >= 0
            kept_before = np.concatenate([[0], np.cumsum(keep)])
            indptr = kept_before[self.offsets[first:last + 1] - lo]
            counts = np.asarray(self.counts[lo:hi], np.float32)[keep]
            yield first, csr_matrix((counts, terms[keep], indptr), shape=(last - first, vocab_size))


def weighted_rows(counts, local, global_weights):
    """The (local x global) weights of a CSR count matrix, not normalised."""
    from scipy.sparse import diags

    m = counts.astype(np.float64)
    m.data = local_weight(m.data, local)
    return m @ diags(global_weights.astype(np.float64))


def weigh_rows(counts, local, global_weights):
    """Row-normalised (local x global) weights of a CSR count matrix."""
    from scipy.sparse import diags

    m = weighted_rows(counts, local, global_weights)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    m = (diags(1.0 / norms) @ m).tocsr()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def unit_rows(dense):
    """``dense`` with each row scaled to unit length (a row of zeros stays zeros)."""
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return dense / norms


def idf_weights(dfs, documents):
    from gensim.models.tfidfmodel import df2idf  # gensim's IDF: log2(N / df)

    return np.asarray([df2idf(df, documents) for df in dfs], np.float32)


def entropy_weights(bags, remap, vocab_size, documents):
    """Log-entropy global weights, 1 + sum_d p log p / log N with p = tf / total tf."""
    totals = np.zeros(vocab_size)
    for _, counts in bags.chunks(remap, vocab_size):
        totals += np.asarray(counts.sum(axis=0)).ravel()
    totals[totals == 0] = 1
    acc = np.zeros(vocab_size)
    for _, counts in bags.chunks(remap, vocab_size):
        coo = counts.tocoo()
        p = coo.data / totals[coo.col]
        np.add.at(acc, coo.col, p * np.log(p))
    return (1.0 + acc / np.log(max(documents, 2))).astype(np.float32)


def build_lsi(root, bags, remap, words, global_weights, options, progress):
    from gensim.models import LsiModel
    from gensim.models.lsimodel import Projection
    from numpy.lib.format import open_memmap
    from scipy import sparse as scipy_sparse
    from tqdm import tqdm

    vocab_size, documents = len(words), len(bags)
    dims = max(1, min(options.lsi_dims, vocab_size - 1, documents - 1))
    lsi = LsiModel(num_topics=dims, id2word=dict(enumerate(words)), chunksize=CHUNK_DOCS,
                   random_seed=options.seed)
    stride = max(1, documents // options.lsi_train_docs) if options.lsi_train_docs else 1
    with tqdm(total=documents, desc="lsi: training", unit=" docs", disable=not progress, file=sys.stderr) as bar:
        sample = []  # a sampled corpus is trained in full chunks: each merge costs the same however small
        for first, counts in bags.chunks(remap, vocab_size):
            rows = weigh_rows(counts, options.local, global_weights)
            if stride > 1:
                rows = rows[(first + np.arange(rows.shape[0])) % stride == 0]
            sample.append(rows)
            bar.update(counts.shape[0])
            if sum(r.shape[0] for r in sample) < CHUNK_DOCS and first + counts.shape[0] < documents:
                continue
            rows, sample = scipy_sparse.vstack(sample, format="csr"), []
            if rows.nnz:
                # not lsi.add_documents(): for a sparse matrix it drops random_seed, and a
                # truncated LSI (dims + 100 < documents) then changed from build to build
                lsi.projection.merge(Projection(vocab_size, dims, rows.T.tocsc(), extra_dims=lsi.extra_samples,
                                                power_iters=lsi.power_iters, dtype=lsi.dtype,
                                                random_seed=options.seed))
    projection = np.ascontiguousarray(lsi.projection.u[:, :dims], np.float32)
    del lsi, sample  # the SVD's float64 matrices: not held through the passes that follow
    # a singular vector's sign is arbitrary (and varies run to run): fix it so
    # that each column's largest entry is positive, and builds are repeatable
    signs = np.sign(projection[np.abs(projection).argmax(axis=0), np.arange(projection.shape[1])])
    projection *= np.where(signs == 0, 1, signs).astype(np.float32)
    dims = projection.shape[1]
    np.save(root / "projection.npy", projection)

    vectors = open_memmap(root / "vectors.npy", "w+", np.float32, (documents, dims))
    with tqdm(total=documents, desc="lsi: vectors", unit=" docs", disable=not progress, file=sys.stderr) as bar:
        for first, counts in bags.chunks(remap, vocab_size):
            dense = np.asarray(weigh_rows(counts, options.local, global_weights) @ projection, np.float32)
            vectors[first:first + len(dense)] = unit_rows(dense)
            bar.update(len(dense))
    vectors.flush()

    spec = {"dims": dims, "trained_on": documents // stride, "ann": None}
    if options.ann == "on" or (options.ann == "auto" and documents >= options.ann_min_docs):
        spec["ann"] = build_ann(root, vectors, ann_spec(options, vectors.shape), progress)
    del vectors
    return spec


def append_mapped(path, block):
    """Append ``block``'s rows to the raw file ``path`` and return them memory-mapped from it:
    their memory is then the file's pages, which the kernel can drop and read again."""
    with open(path, "ab") as out:
        offset = out.tell()
        out.write(np.ascontiguousarray(block).tobytes())
    return np.memmap(path, dtype=block.dtype, mode="r", offset=offset, shape=block.shape)


def ann_spec(options, shape):
    """The ANN index's manifest entry for ``shape`` (documents, dimensions) of vectors, from the
    build options: what build_ann builds and serving reads."""
    documents, dims = shape
    if options.ann_shard_docs < 0:
        raise ValueError(f"ann_shard_docs is {options.ann_shard_docs}: give 0 (one graph) or more rows per graph")
    candidates = options.ann_candidates
    if candidates < 0:
        candidates = min(2000, max(200, documents // 1000))
    return {"library": "usearch", "metric": "cos", "dtype": options.ann_dtype,
            "connectivity": options.ann_connectivity, "expansion_add": options.ann_expansion_add,
            "expansion_search": options.ann_expansion_search, "dims": min(options.ann_dims or dims, dims),
            "candidates": candidates, "shard_docs": options.ann_shard_docs}


def build_ann(root, vectors, spec, progress):
    """HNSW graphs (usearch) over the document vectors as ``spec`` (a manifest's ``ann``) says, one
    per shard of rows, each saved to be memory-mapped and freed before the next; and the rows the
    graphs do not find (``ANN_MISSED_ROWS``, ``ANN_MISSED_VECTORS``), which serving scans exactly.
    Returns ``spec``."""
    from tqdm import tqdm

    missed = []
    with tqdm(total=len(vectors), desc="ann: indexing", unit=" docs", disable=not progress, file=sys.stderr) as bar:
        for name, first, end in ann_shards(spec, len(vectors)):
            missed.append(build_ann_shard(root / name, vectors, first, end, spec, bar))
    rows = np.concatenate([np.zeros(0, np.int64), *missed])
    np.save(root / ANN_MISSED_ROWS, rows)
    np.save(root / ANN_MISSED_VECTORS, _leading_unit_rows(vectors, rows, spec["dims"]))
    if progress:
        print(f"ann: {len(rows):,} of {len(vectors):,} rows not found by the graph for their own vector: "
              "scanned exactly", file=sys.stderr)
    return spec


def _leading_unit_rows(vectors, rows, dims):
    """The ``dims`` leading components of ``rows`` (row numbers or a slice), scaled to unit length
    (all-zero rows stay zero)."""
    block = np.array(vectors[rows, :dims], np.float32)
    norms = np.linalg.norm(block, axis=1)
    return block / np.where(norms > 0, norms, 1)[:, None]


def _unfound_rows(index, rows, block):
    """Which of ``rows`` the graph does not give back among the best when asked for their own
    vectors (``block``). An HNSW graph leaves some rows out of every search however far it goes
    (27 of the bench's 10,000 at the builder's settings), and others out of most: their documents
    could never, or hardly ever, be recommended."""
    count = min(ANN_MISSED_CHECK, len(index))
    keys = np.asarray(index.search(block, count, threads=os.cpu_count() or 1).keys).reshape(len(rows), -1)
    return rows[~(keys == rows[:, None]).any(axis=1)]


def build_ann_shard(path, vectors, first, end, spec, bar):
    """One shard's graph, saved to ``path``; returns the shard's rows it does not find (those
    with nothing in the indexed dimensions among them)."""
    from usearch.index import Index

    dims = spec["dims"]
    index = Index(ndim=dims, metric=spec["metric"], dtype=spec["dtype"], connectivity=spec["connectivity"],
                  expansion_add=spec["expansion_add"], expansion_search=spec["expansion_search"])
    # The graph's own copy of the vectors would be anonymous memory growing with the shard; in
    # the index's type they can stay in a scratch file the graph reads through a memory map (copy=False).
    scratch_type = {"f16": np.float16, "f32": np.float32}.get(spec["dtype"])
    scratch = path.with_suffix(".scratch")
    mapped_blocks = []  # the graph points into these maps: they must outlive it
    missed = [np.zeros(0, np.int64)]
    try:
        for start in range(first, end, CHUNK_DOCS):
            stop = min(start + CHUNK_DOCS, end)
            block, rows, empty = _unit_block(vectors, start, stop, dims)
            missed.append(empty)
            if len(rows) and scratch_type is None:
                index.add(rows, block, threads=os.cpu_count() or 1)
            elif len(rows):
                mapped_blocks.append(append_mapped(scratch, block.astype(scratch_type)))
                index.add(rows, mapped_blocks[-1], copy=False, threads=os.cpu_count() or 1)
            bar.update(stop - start)
        # Every row is in the graph now: can it be found at the expansion serving gives this shard (its
        # share, less than the builder's when the shards are many)? Asked first at no more than the
        # builder's, then only the rows not found there at the served one when it is wider (500 a
        # shard at 1M): a search costs about as its expansion (10k rows: 0.4 s at 64, 1.1 s at 200)
        served = ann_share(ann_expansion(spec, spec.get("candidates", 0)), end - first, len(vectors))
        index.expansion_search = min(spec["expansion_search"], served)
        unfound = [np.zeros(0, np.int64)]
        for start in range(first, end, CHUNK_DOCS):
            block, rows, _ = _unit_block(vectors, start, min(start + CHUNK_DOCS, end), dims)
            if len(rows):
                unfound.append(_unfound_rows(index, rows, block))
        unfound = np.concatenate(unfound)
        if served > index.expansion_search and len(unfound):
            index.expansion_search = served
            unfound = _unfound_rows(index, unfound, _leading_unit_rows(vectors, unfound, dims))
        missed.append(unfound)
        index.save(str(path))
    finally:
        del index
        mapped_blocks.clear()
        scratch.unlink(missing_ok=True)
    return np.sort(np.concatenate(missed)).astype(np.int64)


def _unit_block(vectors, start, end, dims):
    """Rows ``start:end``'s leading ``dims`` components at unit length, their row numbers, and the
    rows with nothing there (nobody's neighbour in the graph, so left out of it)."""
    block = _leading_unit_rows(vectors, slice(start, end), dims)
    rows = np.arange(start, end)
    nonzero = block.any(axis=1)
    return block[nonzero], rows[nonzero], rows[~nonzero]


def build_sparse(root, bags, remap, words, global_weights, options, progress):
    """Doc-major rows and term-major postings of the weighted vectors."""
    from tqdm import tqdm

    vocab_size, documents = len(words), len(bags)
    doc_ptr = [np.zeros(1, np.int64)]
    with open(root / "doc_terms.bin", "wb") as terms_out, open(root / "doc_weights.bin", "wb") as weights_out:
        with tqdm(total=documents, desc="tfidf: rows", unit=" docs", disable=not progress, file=sys.stderr) as bar:
            for _, counts in bags.chunks(remap, vocab_size):
                rows = weigh_rows(counts, options.local, global_weights)
                terms_out.write(rows.indices.astype(np.int32).tobytes())
                weights_out.write(rows.data.astype(np.float32).tobytes())
                doc_ptr.append(doc_ptr[-1][-1] + rows.indptr[1:])
                bar.update(rows.shape[0])
    finish_sparse(root, np.concatenate(doc_ptr), vocab_size)


def finish_sparse(root, doc_ptr, vocab_size):
    """A sparse engine's files from its rows written to doc_terms.bin and doc_weights.bin
    (where each starts: ``doc_ptr``): the rows as .npy, and the postings from them."""
    np.save(root / "doc_ptr.npy", doc_ptr)
    nnz = int(doc_ptr[-1])
    doc_terms = bin_to_npy(root / "doc_terms.bin", np.int32, nnz)
    doc_weights = bin_to_npy(root / "doc_weights.bin", np.float32, nnz)
    write_postings(root, doc_ptr, doc_terms, doc_weights, vocab_size)


def write_postings(root, doc_ptr, doc_terms, doc_weights, vocab_size):
    """Term-major postings from doc-major rows, chunk by chunk (rows stay ascending within a term)."""
    from numpy.lib.format import open_memmap

    documents = len(doc_ptr) - 1
    per_term = np.zeros(vocab_size, np.int64)
    entries = CHUNK_DOCS * 100  # term ids, not documents: a million of the mapped file's (4 MB) at a time
    for first in range(0, len(doc_terms), entries):
        per_term += np.bincount(doc_terms[first:first + entries], minlength=vocab_size)
    post_ptr = np.concatenate([[0], np.cumsum(per_term)])
    np.save(root / "post_ptr.npy", post_ptr)
    post_rows = open_memmap(root / "post_rows.npy", "w+", np.int32, (len(doc_terms),))
    post_weights = open_memmap(root / "post_weights.npy", "w+", np.float32, (len(doc_terms),))
    cursor = post_ptr[:-1].copy()
    for first in range(0, documents, CHUNK_DOCS):
        last = min(first + CHUNK_DOCS, documents)
        lo, hi = doc_ptr[first], doc_ptr[last]
        terms = np.asarray(doc_terms[lo:hi])
        rows = np.repeat(np.arange(first, last, dtype=np.int32), np.diff(doc_ptr[first:last + 1]))
        order = np.argsort(terms, kind="stable")
        terms, rows, weights = terms[order], rows[order], np.asarray(doc_weights[lo:hi])[order]
        unique, starts, counts = np.unique(terms, return_index=True, return_counts=True)
        where = np.repeat(cursor[unique], counts) + (np.arange(len(terms)) - np.repeat(starts, counts))
        post_rows[where], post_weights[where] = rows, weights
        cursor[unique] += counts
    post_rows.flush()
    post_weights.flush()


def bin_to_npy(path, dtype, count):
    from numpy.lib.format import open_memmap

    target = open_memmap(path.with_suffix(".npy"), "w+", dtype, (count,))
    if count:
        target[:] = np.memmap(path, dtype, "r", shape=(count,))
    target.flush()
    path.unlink()
    return np.load(path.with_suffix(".npy"), mmap_mode="r")


def read_corpus(sources, tmp, options, progress):
    """Pass 1: metadata into SQLite, bags into scratch files; returns (dictionary, bags, skipped)."""
    from tqdm import tqdm

    db = sqlite3.connect(tmp / "docs.sqlite")
    db.executescript(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
        "CREATE TABLE docs (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, url TEXT NOT NULL,"
        " url_key TEXT NOT NULL, host TEXT NOT NULL, title TEXT NOT NULL);"
    )
    vocabulary, bags, skipped = Vocabulary(options.prune_at), Bags(tmp), 0
    counter = BatchCounter(options.tokenizer, options.workers)
    with open(tmp / "skipped.jsonl", "w", encoding="utf-8") as skips, \
            tqdm(desc="reading", unit=" docs", disable=not progress, file=sys.stderr) as bar:
        def skip(where, reason):
            nonlocal skipped
            skipped += 1
            skips.write(json.dumps({"where": where, "reason": reason}) + "\n")

        def texts(records):
            return [indexed_text(r.title, r.text, r.url, options.index_titles) for r in records]

        def store(records, counted):
            # in input order: rows, token ids and skips come out as from one process
            words, ids, counts, sizes = counted
            kept = np.zeros(len(records), bool)
            for i, item in enumerate(records):
                if not sizes[i]:
                    skip(item.id, "no words")
                    continue
                try:
                    url_key = normalise_url(item.url)
                    db.execute("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?)",
                               (len(bags) + int(kept.sum()), item.id, item.url, url_key, host_of(item.url),
                                item.title))
                    kept[i] = True
                except ValueError:
                    skip(item.id, "bad url")
                except sqlite3.IntegrityError:
                    skip(item.id, "duplicate id")
            entries = np.repeat(kept, sizes)
            doc_of_entry = np.repeat(np.cumsum(kept) - 1, sizes)[entries]
            global_ids, counts = vocabulary.merge(words, ids[entries], counts[entries], doc_of_entry, int(kept.sum()))
            bags.append_batch(global_ids, counts, sizes[kept])
            bar.update(len(records))

        try:
            batch = []
            for source in sources:
                for item in source:
                    if isinstance(item, Skip):
                        skip(item.where, item.reason)
                        bar.update()
                        continue
                    batch.append(item)
                    if len(batch) == BATCH_DOCS:
                        for records, counted in counter.submit(batch, texts(batch)):
                            store(records, counted)
                        batch = []
            done = counter.submit(batch, texts(batch)) if batch else []
            for records, counted in done + counter.drain():
                store(records, counted)
        finally:
            counter.close()
    db.execute("CREATE INDEX docs_url_key ON docs (url_key)")
    db.commit()
    db.close()
    bags.close()
    bags.id_space = vocabulary.next_id
    return vocabulary.to_gensim(), bags, skipped


def release_freed_arrays():
    """Have glibc give every large allocation its own mapping, unmapped when freed. By default its
    threshold for that rises to 32 MB as arrays are freed, and the builder's chunk-sized temporary
    arrays then came from a heap that fragmented chunk after chunk: the peak grew with the number
    of chunks (measured: 594 MiB at 100k documents, 699 at 1M; 483 at 100k with this). The setting
    is the whole process's: the builder and updater run in their own."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD; not glibc (musl): nothing to do
    except (OSError, AttributeError):
        pass


# the name an update's lock had alone: an updater of an earlier release and a build still exclude each other
LOCK_FILE = ".update.lock"


@contextmanager
def corpus_lock(corpus_dir, create=False):
    """One build or update of a corpus folder at a time, refused at once, not waited for: two at once
    each pointed CURRENT at their own version and pruned, so one could delete the other's new version
    and leave CURRENT naming it (the corpus served no more). The file stays: unlinked, a third process
    would lock a new file while the second still held the old one; a lock taken on a file unlinked since
    it was opened is refused as the one held.

    ``create``: the folder (and its parents) is made if missing, and when what runs in it fails, what
    was made goes again: the lock file and each folder left empty (a failed first build had left an
    empty corpus folder holding the lock). A folder that was there is left as it was."""
    corpus_dir = Path(corpus_dir)
    made = [folder for folder in (corpus_dir, *corpus_dir.parents) if not folder.exists()] if create else []
    if create:
        corpus_dir.mkdir(parents=True, exist_ok=True)
    path = corpus_dir / LOCK_FILE
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(lock.fileno()).st_ino != os.stat(path).st_ino:  # unlinked by a failed first build
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            raise StoreError(f"another build or update of {corpus_dir} is running: "
                             "run this one when it is done") from None
        try:
            yield
        except BaseException:
            if made:  # the lock file first, while held, then each folder made, if left empty
                path.unlink(missing_ok=True)
                for folder in made:
                    try:
                        folder.rmdir()
                    except OSError:  # not empty (a crawl's state, kept to resume), or made again meanwhile
                        break
            raise


def build(sources, out, options, progress=True):
    """Build a new version of the store at ``out`` from ``sources`` (iterables
    of Record/Skip); returns (version folder, manifest)."""
    out = Path(out)
    with corpus_lock(out, create=True):
        return build_locked(sources, out, options, progress)


def build_locked(sources, out, options, progress=True):
    """build(), in a folder ``out`` that exists, with corpus_lock(out) held by the caller."""
    release_freed_arrays()
    started = time.time()
    stamp = datetime.now(timezone.utc).strftime("v%Y%m%dT%H%M%S%f")
    tmp = out / f".tmp-{stamp}-{os.getpid()}"
    tmp.mkdir()
    try:
        dictionary, bags, skipped = read_corpus(sources, tmp, options, progress)
        documents = len(bags)
        if documents == 0:
            raise StoreError(f"no usable documents in the input{skips_said(tmp, skipped)}")

        # pass 2: vocabulary (sorted: a token's id is its position) and weights
        old_ids = dict(dictionary.token2id)
        # tiny corpora keep their words: in 3 documents, one word in 2 of them is no noise (a cricket
        # query of a corpus of 2 cricket articles had found nothing); a word in all of them weighs 0
        no_below = min(options.no_below, max(1, documents // 10))
        no_above = options.no_above if documents >= TINY_CORPUS else max(options.no_above, (documents - 1) / documents)
        # the words pruned as too common (gensim's rule): an update must not count them among a folded
        # document's unknown words, as a full build would prune them again (update.unknown_weight)
        most = int(no_above * documents)
        too_common = sorted(w for w, i in dictionary.token2id.items() if dictionary.dfs.get(i, 0) > most)
        dictionary.filter_extremes(no_below=no_below, no_above=no_above, keep_n=options.keep_n)
        words = sorted(dictionary.token2id)
        if not words:
            raise StoreError(f"no vocabulary left after pruning: the corpus ({documents} document"
                             f"{'s' * (documents != 1)}) is too small or too uniform{skips_said(tmp, skipped)}")
        remap = np.full(max(max(old_ids.values()) + 1, bags.id_space), -1, np.int32)  # pruned ids: -1
        remap[[old_ids[w] for w in words]] = np.arange(len(words), dtype=np.int32)
        np.save(tmp / "vocab.npy", np.asarray(words, dtype=VOCAB_DTYPE))
        if options.global_weight == "idf":
            dfs = [dictionary.dfs[dictionary.token2id[w]] for w in words]
            global_weights = idf_weights(dfs, documents)
        else:
            global_weights = entropy_weights(bags, remap, len(words), documents)
        if not np.any(global_weights > 0):
            raise ValueError(f"every term's {options.global_weight} weight is 0 (the documents are all alike, or "
                             "there is one): there is nothing to rank by; add documents that differ")

        # pass 3: engines
        engines = {}
        for name in options.engines:
            root = tmp / "engines" / name
            root.mkdir(parents=True)
            np.save(root / "weights.npy", global_weights)
            spec = {"kind": "lsi" if name.startswith("lsi") else "sparse",
                    "local": options.local, "global": options.global_weight}
            builder = build_lsi if spec["kind"] == "lsi" else build_sparse
            spec.update(builder(root, bags, remap, words, global_weights, options_for_engine(name, options),
                                progress) or {})
            engines[name] = spec
        bags.remove()

        # pass 4: manifest, then into place
        files, version = describe_version(tmp, stamp)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": options.name,
            "version": version,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "builder": f"function.build {__version__}",
            "build_seconds": round(time.time() - started, 2),
            "documents": documents,
            "skipped": skipped,
            "vocabulary": len(words),
            # share of the corpus's words the pruned vocabulary kept (updates compare new documents with it)
            "token_coverage": round(sum(dictionary.cfs.values()) / max(1, dictionary.num_pos), 4),
            "tokenizer": options.tokenizer.to_dict(),
            "parameters": options.parameters(),
            # no_below/no_above as applied: a small corpus eases what was asked (see above)
            "pruning": {"no_below": no_below, "no_above": round(no_above, 4), "too_common": too_common},
            "engines": engines,
            "default_engine": options.default_engine if options.default_engine in engines else next(iter(engines)),
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        final = out / version
        os.rename(tmp, final)
        previous = live_version(out)
        point_current(out, version)
        prune_versions(out, keep=options.keep_versions, previous=previous)
        return final, manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def skips_said(tmp, skipped, shown=3):
    """The first skips of a build that failed: its skipped.jsonl goes with its temporary folder."""
    if not skipped:
        return ""
    with open(tmp / "skipped.jsonl", encoding="utf-8") as skips:
        first = [json.loads(line) for line, _ in zip(skips, range(shown))]
    said = "; ".join(f"{skip['where'][:200]}: {skip['reason']}" for skip in first)  # a URL may be 2,048 long
    return f" ({skipped} skipped: {said}{'; ...' if skipped > shown else ''})"


def point_current(corpus_dir, version):
    """Make ``version`` the live one: CURRENT is replaced in one atomic rename."""
    staging = corpus_dir / f".CURRENT.{os.getpid()}"
    staging.write_text(version + "\n")
    os.replace(staging, corpus_dir / "CURRENT")


def live_version(corpus_dir):
    """The name in a corpus folder's CURRENT, or None before its first build."""
    try:
        return (corpus_dir / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None


def prune_versions(corpus_dir, keep, previous=None):
    """Delete all but ``keep`` versions: the live one, ``previous`` (the one live before it), then the
    newest. Running workers serve ``previous`` until their next look at CURRENT (STORE_CHECK_SECONDS),
    and a build with --keep-versions 1 had deleted it under them (500s); after a rollback (CURRENT
    pointed at an older version) it is not among the newest, and the version rolled back from had
    been kept in its place."""
    keep = max(2, keep)
    kept = {live_version(corpus_dir), previous}
    versions = sorted((p for p in corpus_dir.iterdir() if p.is_dir() and p.name.startswith("v")), reverse=True)
    room = keep - sum(p.name in kept for p in versions)
    for version in versions:
        if version.name in kept:
            continue
        if room > 0:
            room -= 1
        else:
            shutil.rmtree(version, ignore_errors=True)


def parse_args(argv):
    defaults = BuildOptions()
    tok = TokenizerOptions()
    p = argparse.ArgumentParser(prog="python -m function.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", action="append", required=True, metavar="PATH", help=INPUT_HELP)
    p.add_argument("--out", required=True, type=Path, help="corpus folder, e.g. model_store/NAME")
    p.add_argument("--name", help="corpus name (default: the --out folder's name)")
    p.add_argument("--engines", default=",".join(defaults.engines), help="comma list: lsi, tfidf; lsi-N is an LSI of N dimensions (default %(default)s)")
    p.add_argument("--default-engine",
                   help=f"the engine a request names none gets (default {defaults.default_engine} when built, else the first)")
    p.add_argument("--lsi-dims", type=int, default=defaults.lsi_dims,
                   help="dimensions of the lsi engine (default %(default)s)")
    p.add_argument("--local", choices=["tf", "log"], default=defaults.local,
                   help="term weight in a document: raw count or 1 + log (default %(default)s)")
    p.add_argument("--global-weight", choices=["idf", "entropy"], default=defaults.global_weight,
                   help="term weight across the corpus (default %(default)s)")
    p.add_argument("--no-below", type=int, default=defaults.no_below,
                   help="keep terms found in at least this many documents (default %(default)s; at most a tenth "
                        "of them, at least 1)")
    p.add_argument("--index-titles", action=argparse.BooleanOptionalAction, default=defaults.index_titles,
                   help="index each document's title with its text, and a fetched page's (default: yes)")
    p.add_argument("--no-above", type=float, default=defaults.no_above,
                   help=f"... and in at most this share of them (default %(default)s; in a corpus of fewer than "
                        f"{TINY_CORPUS} documents, all but one)")
    p.add_argument("--keep-n", type=int, default=defaults.keep_n,
                   help="then the most frequent this many terms (default %(default)s)")
    p.add_argument("--lsi-train-docs", type=int, default=defaults.lsi_train_docs,
                   help="train the LSI on an even sample of this many documents (default %(default)s: all)")
    p.add_argument("--ann", choices=["auto", "on", "off"], default=defaults.ann,
                   help="an ANN graph for the lsi engine; auto: from --ann-min-docs documents (default %(default)s)")
    p.add_argument("--ann-min-docs", type=int, default=defaults.ann_min_docs,
                   help="(default %(default)s; below it exact search is fast enough)")
    p.add_argument("--ann-dtype", choices=["f32", "f16", "i8"], default=defaults.ann_dtype,
                   help="the graph's vector type (default %(default)s)")
    p.add_argument("--ann-connectivity", type=int, default=defaults.ann_connectivity,
                   help="the graph's links per node (default %(default)s)")
    p.add_argument("--ann-expansion-add", type=int, default=defaults.ann_expansion_add,
                   help="candidates weighed per node while building (default %(default)s)")
    p.add_argument("--ann-expansion-search", type=int, default=defaults.ann_expansion_search,
                   help="candidates weighed while searching (default %(default)s)")
    p.add_argument("--ann-dims", type=int, default=defaults.ann_dims,
                   help="leading LSI dimensions the ANN graph indexes (default %(default)s; 0: all)")
    p.add_argument("--ann-candidates", type=int, default=defaults.ann_candidates,
                   help="ANN hits re-ranked exactly on the full vectors (default: N/1000 within 200..2000; 0: none)")
    p.add_argument("--ann-shard-docs", type=int, default=defaults.ann_shard_docs,
                   help="rows per ANN graph (default %(default)s; 0: one graph): the builder holds one graph in memory")
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help="of the LSI's random projection and sample (default %(default)s)")
    p.add_argument("--keep-versions", type=int, default=defaults.keep_versions,
                   help="store versions kept, the live one and the one before among them (default %(default)s; at least 2)")
    p.add_argument("--min-token-len", type=int, default=tok.min_len,
                   help="shortest word kept, in characters (default %(default)s)")
    p.add_argument("--max-token-len", type=int, default=tok.max_len,
                   help="longest word kept (default %(default)s)")
    p.add_argument("--numbers", action=argparse.BooleanOptionalAction, default=tok.numbers,
                   help="keep words made only of digits (default %(default)s)")
    p.add_argument("--deaccent", action=argparse.BooleanOptionalAction, default=tok.deaccent,
                   help="read café as cafe (default %(default)s)")
    p.add_argument("--stopwords", default=tok.stopwords,
                   help="a language's stop list (stop-words' lists), e.g. english, french or fr: its function "
                        "words are left out (default: none)")
    p.add_argument("--stem", default=tok.stem, type=str.lower,
                   help="a Snowball stemmer, e.g. english: tomatoes and tomato are one word (default: none)")
    p.add_argument("--workers", type=int, default=defaults.workers,
                   help="tokenising processes (default: one per core; the store does not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_source_arguments(p)
    return cli.parse_args(p, argv)


BUILDABLE_ENGINE = re.compile(r"^(?:lsi(?:-[1-9][0-9]*)?|tfidf)\Z")


# The least each count can be (0: "all" or "one per core"); a negative --keep-versions had built a
# store, and --keep-n -1 one that silently lost its rarest word. Two versions at least: with one, a
# build deleted the version running workers still served until their next look (500s).
COUNT_MINIMUMS = {"workers": 0, "ann_dims": 0, "lsi_train_docs": 0, "ann_min_docs": 0, "ann_shard_docs": 0,
                  "lsi_dims": 1, "no_below": 1, "keep_n": 1, "keep_versions": 2, "ann_connectivity": 2,
                  "ann_expansion_add": 1, "ann_expansion_search": 1}


def _checked_arguments(args):
    """The --engines list and --default-engine, checked with the counts and --name: ValueError says
    what is wrong."""
    if args.name is not None and not NAME.match(args.name):  # messages print it, as requests name a corpus
        raise ValueError(f"--name {ascii(args.name)[:80]} is not a corpus name: letters, digits, '.', '_', '-'")
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if not engines:
        raise ValueError("--engines names no engine: give lsi, tfidf or both")
    unknown = [e for e in engines if not BUILDABLE_ENGINE.match(e)]
    if unknown:
        raise ValueError(f"--engines: unknown engine(s) {', '.join(map(repr, unknown))}: "
                         "lsi, lsi-N (N dimensions) or tfidf")
    if len(set(engines)) < len(engines):
        raise ValueError(f"--engines names an engine twice: {args.engines}")
    if args.default_engine is not None and args.default_engine not in engines:
        raise ValueError(f"--default-engine {args.default_engine!r} is not one of --engines ({', '.join(engines)})")
    for name, least in COUNT_MINIMUMS.items():
        if getattr(args, name) < least:
            raise ValueError(f"--{name.replace('_', '-')} must be {least} or more, not {getattr(args, name)}")
    if not 0 < args.no_above <= 1:
        raise ValueError(f"--no-above is a share of the documents, above 0 and at most 1, not {args.no_above}")
    return engines, args.default_engine or BuildOptions.default_engine


def options_from_args(args):
    engines, default_engine = _checked_arguments(args)
    return BuildOptions(
        name=args.name or args.out.name,
        engines=engines,
        default_engine=default_engine, lsi_dims=args.lsi_dims, local=args.local,
        global_weight=args.global_weight, no_below=args.no_below, no_above=args.no_above,
        keep_n=args.keep_n, index_titles=args.index_titles, lsi_train_docs=args.lsi_train_docs, ann=args.ann,
        ann_min_docs=args.ann_min_docs, ann_dtype=args.ann_dtype, ann_connectivity=args.ann_connectivity,
        ann_expansion_add=args.ann_expansion_add, ann_expansion_search=args.ann_expansion_search,
        ann_dims=args.ann_dims, ann_candidates=args.ann_candidates, ann_shard_docs=args.ann_shard_docs,
        seed=args.seed, keep_versions=args.keep_versions, workers=args.workers,
        tokenizer=TokenizerOptions(min_len=args.min_token_len, max_len=args.max_token_len,
                                   numbers=args.numbers, deaccent=args.deaccent, stopwords=args.stopwords,
                                   stem=args.stem),
    )


def rebuild_command(corpus_dir, manifest, inputs=("CORPUS",), source_options=()):
    """(command, notes): rebuild_arguments() as one line for a shell."""
    arguments, notes = rebuild_arguments(corpus_dir, manifest, inputs, source_options)
    # quoted for a shell, and what a terminal would act on escaped: a store's folder or name holding
    # "\r\x1b[1A" had printed another command over this one
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in shlex.join(arguments)), notes


def rebuild_arguments(corpus_dir, manifest, inputs=("CORPUS",), source_options=()):
    """(arguments, notes): the build that makes ``corpus_dir``'s store again from ``inputs``, read with
    ``source_options`` (flags, as given to the update that asks for it), with the options it was
    built with that are not the defaults ("--stopwords french --stem french"): a rebuild must give
    them again, or it builds with the defaults, unsaid. A store of a tokenizer revision before
    stop-words' lists is given the list of its language, and the notes say so, as they say that a
    store of an older revision is read by the current one."""
    defaults = BuildOptions()
    default_parameters = defaults.parameters()
    arguments = ["python", "-m", "function.build", *(arg for path in inputs for arg in option("input", path)),
                 *source_options, *option("out", corpus_dir)]
    notes = []
    if manifest.get("name", Path(corpus_dir).name) != Path(corpus_dir).name:
        arguments += option("name", manifest["name"])
    for name, value in manifest.get("parameters", {}).items():
        if name == "prune_at" or value == default_parameters.get(name, value):
            continue  # no flag, or the default (a key an older store lacks is not said)
        arguments += _flag(name.replace("_", "-"), ",".join(value) if name == "engines" else value)
    tokenizer = dict(manifest.get("tokenizer", {}))
    revision = tokenizer.get("revision", 1)
    if tokenizer.get("stopwords") and revision < 4:  # jusText's lists; stop-words' from revision 4
        old = tokenizer["stopwords"]
        tokenizer["stopwords"] = stoplist_name(old)
        if tokenizer["stopwords"] in stoplist_names():
            notes.append(f"its stop list was jusText's {old}; a rebuild takes stop-words' {tokenizer['stopwords']}")
        else:
            notes.append(f"its stop list was jusText's {old}, which stop-words has no list for: a rebuild has none")
            tokenizer["stopwords"] = ""
    if revision < REVISION:  # the rebuild reads text as the builder does now, unsaid otherwise
        notes.append(f"its text was read by tokenizer revision {revision}; a rebuild reads it by revision {REVISION} "
                     "(function/tokens.py; since 5 'wi-fi' is 'wifi' too, since 6 'E-Mail-Adresse' 'email', "
                     "since 7 'Grande-Bretagne' 'grandebretagne' with a stop list), "
                     "so its answers can change")
    for name, value in tokenizer.items():
        if name != "revision" and value != getattr(defaults.tokenizer, name, value):
            arguments += _flag({"min_len": "min-token-len", "max_len": "max-token-len"}.get(name, name), value)
    return arguments, notes


def _flag(name, value):
    if isinstance(value, bool):
        return [f"--{name}" if value else f"--no-{name}"]
    return option(name, value)


def option(name, value):
    """``--name value`` as arguments, ``--name=value`` when argparse would read the value as an option: an
    input "-notes.jsonl" (given as --input=-notes.jsonl) had made a rebuild exit on 'expected one argument'."""
    value = str(value)
    return [f"--{name}={value}"] if value.startswith("-") else [f"--{name}", value]


def main(argv=None):
    args = parse_args(argv)
    try:
        options = options_from_args(args)
        settings = source_settings(args, args.out, progress=not args.quiet)
        sources = [open_source(path, args.format, settings) for path in args.input]
        with corpus_lock(args.out, create=True):  # before a crawl: a refused build fetches nothing
            prepare_sources(sources)  # a crawl fetches now, before the builder's own progress bars
            final, manifest = build_locked(sources, args.out, options, progress=not args.quiet)
    except (StoreError, ValueError, OSError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # said, not a traceback (a crawl has said how to resume)
        print(f"build stopped: nothing of it was made live in {args.out}", file=sys.stderr)
        return 130
    print(built_line(final, manifest), file=sys.stderr)
    return 0


def built_line(final, manifest):
    """What a finished build says (the build's command, and an update that rebuilt)."""
    return (f"built {final}: {manifest['documents']} documents, {manifest['vocabulary']} terms, "
            f"engines {', '.join(manifest['engines'])}, {manifest['skipped']} skipped "
            f"(see {final / 'skipped.jsonl'}), {manifest['build_seconds']} s")


if __name__ == "__main__":
    raise SystemExit(main())
