"""The model store: what serving reads, opened without reading the corpus.

Layout of ``MODEL_STORE`` (one folder per corpus, one sub-folder per build)::

    model_store/
      wiki/
        CURRENT                 name of the live version (replaced atomically)
        v20261126T090000123456-1a2b3c4d/  one build (its time, then its docs' checksum)
          manifest.json         format, sizes, parameters, checksums
          vocab.npy             sorted token strings (token id = position)
          docs.sqlite           row -> id, url, url key, host, title
          engines/lsi/          weights.npy, projection.npy, vectors.npy[, ann-0.usearch ...,
                                ann-missed-rows.npy, ann-missed-vectors.npy]
          engines/tfidf/        weights.npy, postings (term-major) and rows (doc-major)

Arrays are memory-mapped: opening a store costs the same at 100 documents
and at a million, and every worker of a machine shares one copy in the page
cache. gensim is not imported here; the builder (``function.build``) uses it.
"""

import argparse
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from cachetools import LRUCache

from . import cli
from .errors import ApiError
from .tokens import MAX_TOKEN_CHARS, TokenizerOptions, tokenize

log = logging.getLogger("related.store")

FORMAT = "related-content-store"
FORMAT_VERSION = 1
VOCAB_DTYPE = f"<U{MAX_TOKEN_CHARS}"

# Files up to this size are hashed in full at start; larger ones by sampled
# blocks, so start-up stays constant in the corpus size
# (`python -m function.store verify` hashes everything).
FULL_HASH_MAX_BYTES = 32 << 20
SAMPLE_BLOCKS = 64
SAMPLE_BLOCK_BYTES = 64 << 10
DOC_CACHE_SIZE = 100_000  # documents kept per store and process (a few hundred bytes each)
URL_ROW_CACHE_SIZE = 4_096  # page addresses whose membership is kept per store and process (~0.5 MB)
WORD_CACHE_SIZE = 200_000  # token ids kept per store and process
# A sparse row's near-duplicate screen (SparseEngine.near_duplicates): its weights' norm in each of
# SKETCH_BUCKETS buckets of its terms. Comparing an answer's hits term by term had cost ~0.7 ms at k=5 on
# the Wikipedia sample's ~1,100-term articles (8 ms at k=100), three times the search; with 1,024 buckets
# 0.09% of its distinct pairs get past the screen at 0.79, with 512 9%. Kept for SKETCH_CACHE_SIZE rows
# per sparse engine and process (4 KB each, 8 MB): an answer's hits come back again and again.
SKETCH_BUCKETS = 1024
SKETCH_CACHE_SIZE = 2_048
# numpy (2.4) releases the GIL around its calls on more than about this many values, and
# around every partition, sort, np.dot, np.arange and 2-D fancy index whatever the size
# (counted with perf). Under concurrent requests each release hands the GIL to another
# thread: ~20 us of switching a release (measured), more than these small calls cost.
GIL_FREE_SIZE = 500


def mapped(path):
    """A read-only memory map of an .npy file, as a plain ndarray: slicing a
    numpy.memmap builds a memmap object each time, which costs more than the
    small slices a query takes."""
    return np.asarray(np.load(path, mmap_mode="r"))


class StoreError(Exception):
    """A store that cannot serve; the message says which file and what to do."""


def file_digests(path, full=True):
    """sha256 of the whole file (``full``) or of evenly spaced sample blocks."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if full or size <= SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        else:
            step = (size - SAMPLE_BLOCK_BYTES) // (SAMPLE_BLOCKS - 1)
            for i in range(SAMPLE_BLOCKS):
                f.seek(i * step)
                digest.update(f.read(SAMPLE_BLOCK_BYTES))
    return digest.hexdigest()


def describe_file(path):
    """The manifest entry for one store file."""
    return {"bytes": path.stat().st_size, "sha256": file_digests(path), "sample_sha256": file_digests(path, full=False)}


def describe_version(folder, stamp):
    """The manifest's ``files`` for a store version being written in ``folder``, and the
    version's name: its time ``stamp`` and the start of the documents' checksum. The list of
    skipped inputs is a report, not part of the store."""
    skipped = folder / "skipped.jsonl"
    files = {str(p.relative_to(folder)): describe_file(p)
             for p in sorted(folder.rglob("*")) if p.is_file() and p != skipped}
    return files, f"{stamp}-{files['docs.sqlite']['sha256'][:8]}"


def sqlite_uri(path, **parameters):
    """A SQLite "file:" URI of ``path``, %-escaped: a '#' or '?' in a folder's name had cut the path."""
    query = "&".join(f"{name}={value}" for name, value in parameters.items())
    return f"file:{quote(str(path))}" + (f"?{query}" if query else "")


# what `make model-store` builds: the Makefile's model_store/wiki, in the repository's folder
MAKE_MODEL_STORE_BUILDS = Path(__file__).resolve().parent.parent / "model_store" / "wiki"


def build_advice(corpus_dir):
    """The command that builds the corpus of ``corpus_dir``: make model-store builds the repository's
    model_store/wiki alone (a MODEL_STORE elsewhere had been told to run it: the sample was built where
    it was not looked for, and the start failed again)."""
    wiki = "make model-store, or " if Path(corpus_dir).resolve() == MAKE_MODEL_STORE_BUILDS else ""
    return f"{wiki}python -m function.build --input CORPUS --out {corpus_dir}."


def store_advice(root):
    """The commands that build a store under MODEL_STORE ``root``."""
    wiki = "make model-store, or " if (Path(root) / "wiki").resolve() == MAKE_MODEL_STORE_BUILDS else ""
    return f"{wiki}python -m function.build --input CORPUS --out {Path(root) / 'NAME'}."


def rebuild_advice(version_dir):
    """What rebuilds the corpus of ``version_dir``."""
    return f"Rebuild the store: {build_advice(Path(version_dir).parent)}"


def verify_files(root, files, full=False):
    """Raise StoreError for the first file that is missing, truncated or corrupt."""
    for name, entry in files.items():
        path = root / name
        if not path.is_file():
            raise StoreError(f"store file missing: {path}. {rebuild_advice(root)}")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise StoreError(
                f"store file {path} has {size} bytes, the manifest says {entry['bytes']}: truncated or "
                f"replaced. {rebuild_advice(root)}"
            )
        whole = full or size <= FULL_HASH_MAX_BYTES
        expected = entry["sha256"] if whole else entry["sample_sha256"]
        if file_digests(path, full=whole) != expected:
            raise StoreError(
                f"store file {path} fails its checksum: the file is corrupt. {rebuild_advice(root)}"
            )


@dataclass(frozen=True)
class Doc:
    row: int
    id: str
    url: str
    url_key: str
    title: str


@dataclass(frozen=True)
class Hit:
    row: int
    score: float


class Terms:
    """A bag of words in the store's vocabulary: term ids with their counts."""

    __slots__ = ("ids", "counts")

    def __init__(self, ids, counts):
        self.ids = ids
        self.counts = counts

    def __len__(self):
        return len(self.ids)


class Vocabulary:
    """Token -> id. The sorted, memory-mapped token array is searched (nothing
    to load at start); the ids found are remembered in a bounded dict, since
    the same few thousand words make up most of the text a process sees."""

    def __init__(self, tokens, remember=WORD_CACHE_SIZE):
        self.tokens = tokens
        self._ids = {}  # token -> id, or -1 for a word the vocabulary lacks
        self._remember = remember

    def __len__(self):
        return len(self.tokens)

    def _look_up(self, words):
        found = np.array(words, dtype=self.tokens.dtype)
        pos = np.searchsorted(self.tokens, found)
        pos[pos == len(self.tokens)] = 0
        ids = dict(zip(words, np.where(self.tokens[pos] == found, pos, -1).tolist()))
        if len(self._ids) + len(ids) > self._remember:
            self._ids = ids  # crude but bounded; refilled by the next requests
        else:
            self._ids.update(ids)
        return ids

    def terms(self, tokens):
        counts = Counter(tokens)
        # this request's own view: another thread may swap self._ids for a new dict meanwhile
        known = self._ids
        unseen = [word for word in counts if word not in known]
        found = self._look_up(unseen) if unseen else {}
        pairs = sorted((known[word] if word in known else found[word], count) for word, count in counts.items())
        pairs = [pair for pair in pairs if pair[0] >= 0]
        return Terms(np.fromiter((i for i, _ in pairs), np.int64, len(pairs)),
                     np.fromiter((c for _, c in pairs), np.float32, len(pairs)))


def unit(vector):
    """``vector`` at unit length (all zeros: as it is). The norm not by np.dot or np.linalg.norm, which
    release the GIL (GIL_FREE_SIZE)."""
    norm = float(np.sqrt(vector @ vector))
    return vector / norm if norm else vector


def local_weight(counts, local):
    """A word's local weight in a document from its ``counts`` there: the count ("tf") or log(1 + count)
    ("log"), as the builder, an update and a query weigh it."""
    return counts if local == "tf" else np.log1p(counts)


def row_norms(vectors):
    """Each row's length (einsum: as unit(), not np.linalg.norm)."""
    return np.sqrt(np.einsum("ij,ij->i", vectors, vectors))


def weigh(terms, local, global_weights):
    """L2-normalised term weights (local weight x global weight), zeros dropped."""
    weights = local_weight(terms.counts, local) * global_weights[terms.ids]
    keep = weights > 0
    ids, weights = terms.ids[keep], weights[keep]
    return ids, unit(weights)


GROUP_ROWS = 32  # rows per group of the selection's first pass (see _candidate_rows)
# Up to this many candidates are ranked in Python (~20 us); past it numpy's partition and sort
# are quicker, although each releases the GIL.
PYTHON_RANKS = 128
_STEPS = np.arange(GROUP_ROWS)  # made once: np.arange releases the GIL, whatever the size


def _kth_largest(values, k):
    if len(values) <= GIL_FREE_SIZE:
        return sorted(values.tolist(), reverse=True)[k - 1]
    # negated: numpy's selection of a k-th smallest stays fast with many equal values
    return -np.partition(-values, k - 1)[k - 1]


def _candidate_rows(scores, k):
    """Ascending rows holding the ``k`` best scores (of rows tied at the k-th best, at least
    the lowest), found in one pass over every score and then, mostly, on a few hundred of them;
    None when a group's best is NaN.

    The rows are split into groups; the k-th best of the groups' maxima is a floor that every
    one of the k best scores reaches (k groups hold a score at least that high), and only the
    groups whose maximum reaches it are read again. A group is every ``groups``-th row, so that
    the maxima are one vectorised pass over contiguous memory."""
    groups = len(scores) // GROUP_ROWS
    if groups < 4 * k:  # too few rows for the floor to pay: all of them
        return None if np.isnan(scores).any() else np.arange(len(scores))
    maxima = scores[: groups * GROUP_ROWS].reshape(GROUP_ROWS, groups).max(axis=0)
    if np.isnan(maxima).any():
        return None
    floor = _kth_largest(maxima, k)
    holding = np.flatnonzero(maxima >= floor)
    if len(holding) > 4 * k or floor == -np.inf:
        # the floor is shared by many groups (a sparse engine's -inf, ties): the rows above it, and
        # if they are fewer than k, the lowest rows at it (not at -inf: those are no match)
        rows = np.flatnonzero(scores > floor)
        if len(rows) < k and floor > -np.inf:
            rows = np.sort(np.concatenate([rows, np.flatnonzero(scores == floor)[: k - len(rows)]]))
        return rows
    # holding[0], holding[1], ..., then each `groups` rows further down, ...: ascending rows
    rows = np.resize(holding, GROUP_ROWS * len(holding)) + np.repeat(_STEPS * groups, len(holding))
    past = groups * GROUP_ROWS  # and the rows past the last group's (a NaN there fails the >=)
    rows = np.concatenate([rows, past + _STEPS[: len(scores) - past]])
    return rows[scores[rows] >= floor]


def top_k(scores, k, exclude):
    """Best ``k`` (row, score) of a dense score array, best first, skipping ``exclude``;
    of rows tied at the k-th place, the lowest (the order a full sort by score, then row, gives).
    NaN scores rank below all others, as in that sort, so they are left out as -inf ones are."""
    if len(exclude):
        scores = scores.copy()
        scores[list(exclude)] = -np.inf
    k = min(k, len(scores))
    if k <= 0:
        return []
    rows = _candidate_rows(scores, k)
    if rows is None:
        scores = np.where(np.isnan(scores), -np.inf, scores)
        rows = _candidate_rows(scores, k)
    if len(rows) <= PYTHON_RANKS:
        ranked = sorted(zip((-scores[rows]).tolist(), rows.tolist()))[:k]  # score, then row
        return [Hit(row, -negated) for negated, row in ranked if negated < np.inf]
    # many candidates (every row of a small corpus; many ties at the k-th best): the lowest tied
    picked = scores[rows]
    kth = _kth_largest(picked, min(k, len(picked)))  # fewer than k: a sparse engine's few matches
    above = rows[picked > kth]
    best = np.concatenate([above, rows[picked == kth][: k - len(above)]])
    best = best[np.lexsort((best, -scores[best]))]  # score, then row
    return [Hit(row, score) for row, score in zip(best.tolist(), scores[best].tolist()) if score > -np.inf]


# rows an ANN graph does not find, and their indexed dimensions at unit length: scanned on each search
ANN_MISSED_ROWS, ANN_MISSED_VECTORS = "ann-missed-rows.npy", "ann-missed-vectors.npy"


def ann_share(count, rows, documents, at_least=1):
    """A shard of ``rows`` of ``documents``' share of ``count`` (candidates, the expansion), at least ``at_least``."""
    return min(rows, max(at_least, -(-count * rows // max(documents, 1))))


def ann_expansion(spec, candidates):
    """The expansion a search over one graph of every row is served with: each shard gets its share."""
    return max(spec["expansion_search"], candidates)


def ann_shards(spec, documents):
    """(file name, first row, end row) of each shard of an ANN graph: rows in runs of
    ``shard_docs``; 0 or absent (stores built before shards): one graph, ``ann.usearch``."""
    size = spec.get("shard_docs")
    if not size:
        return [("ann.usearch", 0, documents)]
    return [(f"ann-{i}.usearch", first, min(first + size, documents))
            for i, first in enumerate(range(0, max(documents, 1), size))]


class AnnGraph:
    """An LSI engine's approximate index: usearch HNSW graphs over runs of rows (shards),
    memory-mapped. Shards bound the builder's memory, which holds one graph at a time; a
    search asks each shard for its share of the candidates, so the distance computations a
    query costs stay about those of one graph over every row. The rows the graphs do not find
    for their own vectors (0.85% of the bench's 1M) are one more shard, scanned exactly, so that
    no document is out of every answer (stores built before it lack the files and have none)."""

    def __init__(self, root, spec, documents):
        from usearch.index import Index  # only stores large enough to need it

        self.documents = max(documents, 1)
        self.shards = []
        for name, first, end in ann_shards(spec, documents):
            index = Index.restore(str(root / name), view=True)
            if index is None:
                raise StoreError(f"{root / name} is not a usearch index. Rebuild the store (python -m function.build).")
            self.shards.append((index, end - first))
        self.ndim = self.shards[0][0].ndim
        self.missed_rows, self.missed_vectors = np.zeros(0, np.int64), np.zeros((0, self.ndim), np.float32)
        paths = root / ANN_MISSED_ROWS, root / ANN_MISSED_VECTORS
        if any(path.exists() for path in paths):  # (the manifest lists them when they were built)
            try:
                self.missed_rows, self.missed_vectors = (mapped(path) for path in paths)
            except (OSError, ValueError) as exc:
                raise StoreError(f"{exc}. {rebuild_advice(root.parent.parent)}") from None
            if self.missed_rows.ndim != 1 or self.missed_vectors.shape != (len(self.missed_rows), self.ndim):
                raise StoreError(f"{paths[0]} and {paths[1]} do not match the graph's {self.ndim} dimensions. "
                                 f"{rebuild_advice(root.parent.parent)}")
        self._expansion = 0

    @property
    def expansion_search(self):
        return self._expansion

    @expansion_search.setter
    def expansion_search(self, value):
        """``value`` for one graph over every row, each shard's share of it for the shards."""
        self._expansion = value
        for index, rows in self.shards:
            index.expansion_search = self._share(value, rows, 1)

    def _share(self, count, rows, at_least):
        return ann_share(count, rows, self.documents, at_least)

    def search(self, query, count, at_least=1):
        """(rows, cosine distances) of about ``count`` neighbours of ``query``: from each shard its
        share of ``count``, and at least ``at_least`` (what a merge by distance needs)."""
        asked = [(index, self._share(count, rows, at_least)) for index, rows in self.shards if rows]
        found = [index.search(query, share) for index, share in asked]
        rows = [np.asarray(m.keys, np.int64) for m in found]
        distances = [np.asarray(m.distances, np.float32) for m in found]
        if len(self.missed_rows):
            # the rows the graphs miss that they would have given had they found them: no farther than
            # the farthest they gave (anything when one gave fewer than asked), its share at most
            full = all(len(got) >= asked_for for got, (_, asked_for) in zip(rows, asked)) and any(map(len, rows))
            farthest = max(float(d.max()) for d in distances if len(d)) if full else np.inf
            gaps = 1.0 - self.missed_vectors @ query
            near = np.flatnonzero(gaps <= farthest)
            share = self._share(count, len(self.missed_rows), at_least)
            if len(near) > share:
                near = near[np.argsort(gaps[near], kind="stable")[:share]]
            if len(near):
                extra = np.asarray(self.missed_rows[near], np.int64)
                # a graph may give back some of the rows its own check missed: once each, the graph's.
                # Only these few are compared: a graph's keys are unique and shards hold disjoint rows,
                # so the np.unique of every candidate this replaced (~35 us of 1,000) found nothing else
                given = np.zeros(len(extra), bool)
                for got in rows:
                    given |= (extra[:, None] == got).any(axis=1)
                rows.append(extra[~given])
                distances.append(gaps[near[~given]])
        if len(rows) == 1:
            return rows[0], distances[0]
        return np.concatenate(rows), np.concatenate(distances)

    def __len__(self):
        return sum(len(index) for index, _ in self.shards)

    def contains(self, row):
        return any(index.contains(row) for index, _ in self.shards)


class LsiEngine:
    """Cosine similarity in the LSI space (dense, memory-mapped vectors)."""

    kind = "lsi"

    def __init__(self, name, root, spec):
        self.name, self.spec = name, spec
        self.local = spec["local"]
        self.weights = mapped(root / "weights.npy")
        self.projection = mapped(root / "projection.npy")
        self.vectors = mapped(root / "vectors.npy")
        self.ann = None
        if spec.get("ann"):
            self.ann = AnnGraph(root, spec["ann"], len(self.vectors))
            # the graph may index only the leading dimensions; then its best
            # `candidates` are re-ranked exactly on the full vectors
            self.ann_dims = spec["ann"].get("dims", self.vectors.shape[1])
            self.set_candidates(spec["ann"].get("candidates", 0))

    def set_candidates(self, candidates):
        """How many graph hits are re-ranked exactly (0: none, the graph's own order)."""
        self.ann_candidates = candidates
        self.ann.expansion_search = ann_expansion(self.spec["ann"], candidates)

    def query_vector(self, terms):
        ids, weights = weigh(terms, self.local, self.weights)
        if not len(ids):
            return None
        vector = weights @ self.projection[ids]
        norm = float(np.sqrt(vector @ vector))  # not np.linalg.norm, which releases the GIL
        return vector / norm if norm else None

    def search(self, terms, k):
        vector = self.query_vector(terms)
        return [] if vector is None else self._search_vector(vector, k, ())

    def search_member(self, row, k):
        # at unit length: a row an update folded in is shorter (update.folded_lengths), which ranks it
        # lower as a hit; as the query its scores would all have come out lower (min_score)
        return self._search_vector(unit(np.asarray(self.vectors[row], dtype=np.float32)), k, (row,))

    def similarities(self, rows):
        """Cosine of each pair of ``rows``, an n x n matrix (a folded row is shorter: each at unit length)."""
        vectors = self.vectors[np.asarray(rows, dtype=np.intp)].astype(np.float32)
        norms = row_norms(vectors)
        vectors /= np.where(norms > 0, norms, 1)[:, None]
        return vectors @ vectors.T

    def near_duplicates(self, rows, threshold):
        """Which pairs of ``rows`` have a cosine of at least ``threshold``: an n x n boolean matrix, its
        diagonal False."""
        close = self.similarities(rows) >= threshold
        np.fill_diagonal(close, False)
        return close

    def _search_vector(self, vector, k, exclude):
        # re-ranking every row is an exact search, which no graph walk can be: its levels need not
        # all connect, and a query can end in an island of a few rows
        if self.ann is None or self.ann_candidates >= len(self.vectors):
            return top_k(self.vectors @ vector.astype(self.vectors.dtype), k, exclude)
        query = vector[: self.ann_dims]
        norm = float(np.sqrt(query @ query))
        if not norm:  # nothing in the indexed dimensions: only an exact search can rank it
            return top_k(self.vectors @ vector.astype(self.vectors.dtype), k, exclude)
        wanted = k + len(exclude)
        rows, distances = self.ann.search(query / norm, max(self.ann_candidates, wanted), at_least=wanted)
        if not self.ann_candidates:
            # the graph's cosine is of unit rows: a row an update folded in is shorter (update.lsi_lengths),
            # which lowers its score as the exact product does (unscaled, folded rows were over-recommended)
            ascending = np.argsort(rows)  # fewer page jumps in the map
            lengths = np.empty(len(rows), np.float32)
            lengths[ascending] = row_norms(np.asarray(self.vectors[rows[ascending]], np.float32))
            scores = (1.0 - distances) * lengths
            order = np.lexsort((rows, -scores))
            hits = (Hit(int(rows[i]), float(scores[i])) for i in order if rows[i] not in exclude)
            return [hit for _, hit in zip(range(k), hits)]
        rows = np.sort(rows)  # ascending: fewer page jumps in the map
        scores = self.vectors[rows] @ vector.astype(self.vectors.dtype)
        order = np.lexsort((rows, -scores))  # score, then row: deterministic ties
        hits = (Hit(int(rows[i]), float(scores[i])) for i in order if rows[i] not in exclude)
        return [hit for _, hit in zip(range(k), hits)]


class SparseEngine:
    """Cosine similarity of weighted term vectors (TF-IDF or log-entropy)."""

    kind = "sparse"

    def __init__(self, name, root, spec):
        self.name, self.spec = name, spec
        self.local = spec["local"]
        self.weights = mapped(root / "weights.npy")
        # term-major postings answer queries; doc-major rows give members' own vectors
        self.post_ptr = mapped(root / "post_ptr.npy")
        self.post_rows = mapped(root / "post_rows.npy")
        self.post_weights = mapped(root / "post_weights.npy")
        self.doc_ptr = mapped(root / "doc_ptr.npy")
        self.doc_terms = mapped(root / "doc_terms.npy")
        self.doc_weights = mapped(root / "doc_weights.npy")
        self.size = len(self.doc_ptr) - 1
        self._sketches = LRUCache(maxsize=SKETCH_CACHE_SIZE)
        self._sketches_lock = threading.Lock()

    def search(self, terms, k):
        ids, weights = weigh(terms, self.local, self.weights)
        return self._search_weights(ids, weights, k, ())

    def search_member(self, row, k):
        start, end = self.doc_ptr[row], self.doc_ptr[row + 1]
        # at unit length: a row an update folded in is shorter, as LsiEngine.search_member says
        return self._search_weights(self.doc_terms[start:end], unit(self.doc_weights[start:end]), k, (row,))

    def similarities(self, rows):
        """Cosine of each pair of ``rows``, an n x n matrix (its diagonal is not read), from the rows'
        own term weights (unit length). No sort and no scipy: a term's column is the last place it is
        met, and only terms two rows share are columns (a Wikipedia article has ~1,100 terms)."""
        terms, weights, lengths = self._rows_read(rows)
        if not len(terms):
            return np.zeros((len(rows), len(rows)), np.float32)
        place = np.empty(len(self.weights), np.int32)  # uninitialised: only read where just written
        place[terms] = np.arange(len(terms), dtype=np.int32)
        column = place[terms]
        holders = np.bincount(column, minlength=len(terms))
        shared = holders[column] > 1
        compact = np.cumsum(holders > 1) - 1
        matrix = np.zeros((len(rows), int(compact[-1]) + 1), np.float32)
        matrix[np.repeat(np.arange(len(rows)), lengths)[shared], compact[column[shared]]] = weights[shared]
        return matrix @ matrix.T

    def near_duplicates(self, rows, threshold):
        """Which pairs of ``rows`` have a cosine of at least ``threshold``: an n x n boolean matrix, its
        diagonal False. A pair's sketches bound its cosine from above (Cauchy-Schwarz in each bucket), so
        only the rows of pairs past the threshold there are compared term by term, together: pair by pair
        (~45 us each), an answer of 105 hits that are all one text (a corpus holding a page many times)
        had cost 240 ms, ~13 ms so."""
        sketches = self._sketch_rows(rows)
        bound = sketches @ sketches.T >= threshold - 1e-4  # float32 sums: no near pair lost to rounding
        np.fill_diagonal(bound, False)
        if not bound.any():  # the usual answer: no pair near, nothing read term by term
            return bound
        involved = np.flatnonzero(bound.any(axis=0))
        among = np.ix_(involved, involved)
        near = np.triu(bound[among] & (self.similarities([rows[i] for i in involved]) >= threshold), 1)
        close = np.zeros_like(bound)
        close[among] = near | near.T
        return close

    def _sketch_rows(self, rows):
        with self._sketches_lock:
            found = {row: self._sketches[row] for row in rows if row in self._sketches}
        missing = [row for row in dict.fromkeys(rows) if row not in found]
        if missing:
            terms, weights, lengths = self._rows_read(missing)
            weights = weights.astype(np.float64)
            owners = np.repeat(np.arange(len(missing)), lengths)
            squares = np.bincount(owners * SKETCH_BUCKETS + terms % SKETCH_BUCKETS, weights=weights * weights,
                                  minlength=len(missing) * SKETCH_BUCKETS)
            made = np.sqrt(squares).astype(np.float32).reshape(len(missing), SKETCH_BUCKETS)
            with self._sketches_lock:
                for row, sketch in zip(missing, made):  # a copy: a view would keep all of ``made``
                    found[row] = self._sketches[row] = sketch.copy()
        return np.stack([found[row] for row in rows])

    def _rows_read(self, rows):
        """The terms and the weights of ``rows``, each row's at unit length (a row an update folded in is
        shorter), one row's after another's, and each row's number of terms."""
        rows = np.asarray(rows, dtype=np.intp)
        starts, ends = self.doc_ptr[rows], self.doc_ptr[rows + 1]
        weights = np.concatenate([self.doc_weights[s:e] for s, e in zip(starts, ends)])
        owners = np.repeat(np.arange(len(rows)), ends - starts)
        norms = np.sqrt(np.bincount(owners, weights=weights.astype(np.float64) ** 2, minlength=len(rows)))
        weights = weights / np.where(norms > 0, norms, 1).astype(np.float32)[owners]
        return np.concatenate([self.doc_terms[s:e] for s, e in zip(starts, ends)]), weights, ends - starts

    def _search_weights(self, ids, weights, k, exclude):
        if not len(ids):
            return []
        starts, ends = self.post_ptr[ids], self.post_ptr[np.asarray(ids) + 1]
        rows = np.concatenate([self.post_rows[s:e] for s, e in zip(starts, ends)])
        if not len(rows):  # words of deleted documents only (an update keeps its vocabulary): no one shares them
            return []
        contributions = np.concatenate(
            [self.post_weights[s:e] * w for s, e, w in zip(starts, ends, weights)]
        )
        scores = np.bincount(rows, weights=contributions, minlength=self.size)
        scores[scores <= 0] = -np.inf  # no shared term: not related at all
        return top_k(scores, k, exclude)


ENGINE_KINDS = {"lsi": LsiEngine, "sparse": SparseEngine}


class Store:
    """One built version of one corpus, opened read-only."""

    def __init__(self, path, verify=True):
        """``verify``: True checks sizes, small files and sampled blocks; "full" hashes everything. Either
        comes before any file is mapped (a truncated .npy had failed there with numpy's own words)."""
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError:
            raise StoreError(
                f"no store at {self.path} (missing {manifest_path}). Build it: {build_advice(self.path.parent)}"
            ) from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"unreadable store manifest {manifest_path}: {exc}. Rebuild the store.") from None
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{manifest_path} is format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
                f"this function reads {FORMAT!r} version {FORMAT_VERSION}. Rebuild the store with this version's "
                "builder (python -m function.build)."
            )
        if verify:
            verify_files(self.path, manifest["files"], full=verify == "full")
        self.manifest = manifest
        self.name = manifest["name"]
        self.version = manifest["version"]
        self.size = manifest["documents"]
        try:
            self.tokenizer = TokenizerOptions.from_dict(manifest["tokenizer"])
        except (TypeError, ValueError) as exc:  # a store of a newer builder (a rollback)
            raise StoreError(f"{manifest_path}: its tokenizer ({exc}) is not one this function reads. Rebuild the "
                             "store with this version's builder (python -m function.build).") from None
        self.vocabulary = Vocabulary(mapped(self.path / "vocab.npy"))
        self.engines = {
            name: ENGINE_KINDS[spec["kind"]](name, self.path / "engines" / name, spec)
            for name, spec in manifest["engines"].items()
        }
        self.default_engine = manifest["default_engine"]
        # a store built before titles were indexed reads pages asked about by their text alone, as it was built
        self.index_titles = bool(manifest.get("parameters", {}).get("index_titles", False))
        self._local = threading.local()
        # The documents answers name, by row: the same ones come back again and
        # again, and each SQLite row costs a release and re-take of the GIL,
        # which under concurrent requests costs far more than the read.
        self._doc_cache = LRUCache(maxsize=DOC_CACHE_SIZE)
        self._doc_cache_lock = threading.Lock()
        # Whether a page is a member, by normalised URL: every URL request asks, and a widget's
        # pages ask again and again (the same GIL release per SQLite read; most answers are None).
        self._url_rows = LRUCache(maxsize=URL_ROW_CACHE_SIZE)

    # -- documents --------------------------------------------------------
    def _db(self):
        # one connection per thread and per process: sqlite handles must not cross a fork
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            try:
                conn = sqlite3.connect(sqlite_uri(self.path / "docs.sqlite", mode="ro", immutable=1), uri=True,
                                       check_same_thread=False)
            except sqlite3.OperationalError:
                # the version was removed under a running worker (MODEL_STORE deleted, its file gone): a
                # thread that had not read it yet cannot. Said, and "retry", where it had been a 500;
                # the worker's next look at CURRENT serves what is there.
                raise ApiError(f"the store version {self.path.name} was removed while being served; retry in a "
                               "moment", status=503, code="store_unavailable", headers={"Retry-After": "1"}) from None
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def docs(self, rows):
        """Doc records for ``rows``, in the same order."""
        with self._doc_cache_lock:
            found = {row: self._doc_cache[row] for row in rows if row in self._doc_cache}
        missing = [row for row in rows if row not in found]
        if missing:
            marks = ",".join("?" * len(missing))
            read = self._db().execute(f"SELECT row, id, url, url_key, title FROM docs WHERE row IN ({marks})",
                                      missing).fetchall()
            with self._doc_cache_lock:
                for record in read:
                    found[record[0]] = self._doc_cache[record[0]] = Doc(*record)
        return [found[row] for row in rows]

    def row_for_id(self, doc_id):
        found = self._db().execute("SELECT row FROM docs WHERE id = ?", (doc_id,)).fetchone()
        return None if found is None else found[0]

    def row_for_url_key(self, url_key):
        # kept by digest: a normalised URL %-escapes what it holds, up to 12 characters each
        digest = hashlib.blake2b(url_key.encode(), digest_size=16).digest()
        with self._doc_cache_lock:
            if digest in self._url_rows:
                return self._url_rows[digest]
        found = self._db().execute("SELECT row FROM docs WHERE url_key = ? LIMIT 1", (url_key,)).fetchone()
        row = None if found is None else found[0]
        with self._doc_cache_lock:
            self._url_rows[digest] = row
        return row

    def hosts(self):
        """The distinct hosts of the corpus's URLs (for FETCH_ALLOWED_DOMAINS=corpus)."""
        return frozenset(r[0] for r in self._db().execute("SELECT DISTINCT host FROM docs") if r[0])

    # -- queries ----------------------------------------------------------
    def terms(self, text):
        return self.vocabulary.terms(tokenize(text, self.tokenizer))

    def describe(self):
        return {
            "name": self.name,
            "version": self.version,
            "documents": self.size,
            "built_at": self.manifest["built_at"],
            "engines": sorted(self.engines),
            "default_engine": self.default_engine,
        }


def current_version_dir(corpus_dir):
    """The live version folder of a corpus folder (via its CURRENT file)."""
    pointer = corpus_dir / "CURRENT"
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        if (corpus_dir / "manifest.json").exists():  # a bare version folder given directly
            return corpus_dir
        raise StoreError(
            f"no store at {corpus_dir} (missing {pointer}). Build it: {build_advice(corpus_dir)}"
        ) from None
    return corpus_dir / name


class StoreSet:
    """Every corpus under MODEL_STORE, each at its live version.

    A rebuilt or updated corpus is picked up without a restart: at most every
    ``check_every`` seconds a request re-reads the tiny CURRENT files and opens
    the versions that changed (opening is constant-time; the old version's
    maps stay valid for requests still using them).
    """

    def __init__(self, root, check_every=2.0):
        self.root = Path(root)
        self.check_every = check_every
        self._lock = threading.Lock()
        self._stores = {}
        self._checked = 0.0
        self.refresh(force=True)

    def _corpus_dirs(self):
        if not self.root.is_dir():
            raise StoreError(f"MODEL_STORE {self.root} is not a folder. Build a store: {store_advice(self.root)}")
        return {p.name: p for p in sorted(self.root.iterdir()) if p.is_dir() and not p.name.startswith(".")}

    def refresh(self, force=False):
        now = time.monotonic()
        if not force and now - self._checked < self.check_every:
            return
        with self._lock:
            if not force and now - self._checked < self.check_every:
                return
            self._checked = now
            try:
                corpus_dirs = self._corpus_dirs()
            except StoreError as exc:
                if force:
                    raise
                log.error("%s; serving the stores already open", exc)  # MODEL_STORE gone while serving
                return
            stores = {}
            for name, corpus_dir in corpus_dirs.items():
                try:
                    version_dir = current_version_dir(corpus_dir)
                except StoreError:
                    if force:
                        continue  # a folder that is not a corpus (yet): ignore
                    version_dir = None
                old = self._stores.get(name)
                if old is not None and (version_dir is None or old.path == version_dir):
                    stores[name] = old
                elif version_dir is not None:
                    store = Store(version_dir) if force else self._try_open(version_dir, old)
                    if store is not None:
                        stores[name] = store
                        if not force and store is not old:  # an operator sees a build or update go live
                            log.info("corpus %s: serving %s (%d documents)%s", name, version_dir.name, store.size,
                                     f", was {old.path.name}" if old else "")
            if not force:
                for name in sorted(set(self._stores) - set(stores)):
                    log.warning("corpus %s: no longer served (its folder or CURRENT is gone)", name)
            self._stores = stores

    @staticmethod
    def _try_open(version_dir, old):
        # a broken new version must not take a serving corpus down (nor fail the request that
        # happened to check): keep the old one, or none for a corpus that is new
        try:
            return Store(version_dir)
        except StoreError as exc:
            log.error("%s; %s", exc, "still serving the previous version" if old else "corpus not served")
            return old

    def get(self, name):
        self.refresh()
        return self._stores.get(name)

    def names(self):
        self.refresh()  # a corpus built since the last look is named, as get() would serve it
        return sorted(self._stores)


def main(argv=None):
    """`python -m function.store verify PATH...`: hash every file in full."""
    parser = argparse.ArgumentParser(prog="python -m function.store", description=main.__doc__)
    parser.add_argument("command", choices=["verify"])
    parser.add_argument("paths", nargs="+", type=Path, help="corpus or version folders")
    args = cli.parse_args(parser, argv)
    failed = False
    for path in args.paths:
        try:
            version_dir = current_version_dir(path)
            store = Store(version_dir, verify="full")
            print(f"ok  {version_dir}  {store.size} documents")
        except StoreError as exc:
            failed = True
            print(f"BAD {path}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
