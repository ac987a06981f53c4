"""Incremental updates: add, change and delete documents of a built store without retraining.

    python -m function.update model_store/NAME --input new.jsonl [--delete ids.txt]
    python -m function.update model_store/NAME --input https://example.com/sitemap.xml --prune

New and changed documents are folded into the live version's model: tokenised
with its tokenizer, weighted with its global weights (IDF or entropy, frozen)
and projected with its LSI projection, exactly as the builder would have with
that vocabulary. Words the vocabulary lacks are ignored until the next full
build. A changed document is deleted and added again; one whose vectors and
title are the same is left alone, so an unchanged site costs no new version.

The result is a new version folder in the same format (serving needs no
change), switched to atomically through CURRENT: a running function picks it
up within STORE_CHECK_SECONDS, without a restart.

Folding in drifts from what a full build would give: new words are unseen, the
weights and the LSI space stay fitted to the old corpus. Each update records in
the manifest what was folded in since the last full build, measures the drift
and says when a full rebuild is due (``RebuildRule``); with --prune
--rebuild-if-due it then builds the store from its inputs instead.
"""

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__, cli
from .article import indexed_text
from .build import (CHUNK_DOCS, Bags, BuildOptions, build_ann, build_locked, built_line, corpus_lock, finish_sparse,
                    option, options_from_args, parse_args as build_arguments, point_current, prune_versions,
                    rebuild_arguments, rebuild_command, release_freed_arrays, skips_said, unit_rows, weigh_rows,
                    weighted_rows)
from .records import Skip, is_url
from .sources import INPUT_HELP, add_source_arguments, open_source, prepare_sources, source_settings
from .store import Store, StoreError, current_version_dir, describe_version, local_weight, sqlite_uri, unit
from .tokens import tokenize
from .urls import host_of, normalise_url

BASE_FIT_SAMPLE = 2000  # documents of the full build whose LSI fit is the reference
DOC_COLUMNS = ("row", "id", "url", "url_key", "host", "title")


@dataclass(frozen=True)
class RebuildRule:
    """When folding in has drifted far enough from a full build that one is due.

    The limits come from bench/update_drift.py, which folds part of a corpus
    into a store built on the rest and compares each document's 10 nearest
    neighbours with those of a full build of everything. On gensim's 406
    Wikipedia and news articles: TF-IDF keeps 0.95 of them with 5% folded in,
    0.91 with 20%, 0.86 with 50%; LSI (100 dims) keeps 0.73 of the folded
    documents' neighbours with 5% folded in and 0.55 with 20%, against 0.85
    between two full builds with different seeds, and its fit ratio falls from
    0.46 to 0.29 meanwhile (a small corpus: LSI fits its own documents far
    better than new ones, so for it a rebuild is due at once, and it is cheap).
    Documents like the corpus's have 4-6 points more unknown words than the
    full build's own; 10 points more means new vocabulary. At unit length folded
    documents were over-recommended: with 5% folded in, among the others' 10
    nearest 1.5 (TF-IDF) and 2.3 (LSI) times as often as in a full build (a
    folded vector is what the old model knows of a document); at the length a
    full build gives them (folded_lengths, lsi_lengths) 0.98 and 0.99 times, and
    the neighbours above are TF-IDF's 0.97 (5%) and 0.95 (20%), LSI's 0.74 and 0.65.
    """

    max_folded_share: float = 0.20  # documents added or changed since the full build / documents now
    max_deleted_share: float = 0.20  # documents deleted since the full build / documents it had
    max_unknown_excess: float = 0.10  # unknown-word share of the folded documents minus the full build's own
    min_lsi_fit: float = 0.85  # folded documents' LSI fit / the full build's documents' fit

    def reasons(self, drift):
        found = []
        if drift["folded_share"] > self.max_folded_share:
            found.append(f"{_past(drift['folded_share'] * 100, self.max_folded_share * 100)}% of the documents "
                         f"were folded in (limit {self.max_folded_share:.0%})")
        if drift["deleted_share"] > self.max_deleted_share:
            found.append(f"{_past(drift['deleted_share'] * 100, self.max_deleted_share * 100)}% of the full "
                         f"build's documents were deleted (limit {self.max_deleted_share:.0%})")
        if drift.get("oov_excess") is not None and drift["oov_excess"] > self.max_unknown_excess:
            # points, not a ratio: "46% ..., 16% more" had read as 16% of some share
            found.append(f"{drift['oov_share']:.0%} of the folded-in words are not in the vocabulary, "
                         f"{_past(drift['oov_excess'] * 100, self.max_unknown_excess * 100)} points more than in "
                         f"the full build's corpus (limit {self.max_unknown_excess * 100:.0f} points)")
        if drift["lsi_fit_ratio"] is not None and drift["lsi_fit_ratio"] < self.min_lsi_fit:
            found.append(f"the LSI space captures {_past(drift['lsi_fit_ratio'], self.min_lsi_fit, 2)} of the "
                         f"folded documents' weight relative to the full build's (limit {self.min_lsi_fit:.2f})")
        return found

    def describe(self):
        return (f"a full rebuild is due when more than {self.max_folded_share:.0%} of the documents were folded "
                f"in, more than {self.max_deleted_share:.0%} deleted, the folded-in words' unknown share exceeds "
                f"the full build's by more than {self.max_unknown_excess * 100:.0f} points, or their LSI fit falls "
                f"below {self.min_lsi_fit:.2f} of the full build's")


def _past(value, limit, digits=0):
    """``value`` with the fewest decimals from ``digits`` that tell it from ``limit``: a value just past
    its limit had been said at it ("20% of the documents were folded in (limit 20%)")."""
    while digits < 6 and round(value, digits) == round(limit, digits):
        digits += 1
    return f"{value:.{digits}f}"


@dataclass
class UpdateResult:
    version_dir: Path | None  # None: nothing changed, no new version
    base_version: str
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    not_found: list = field(default_factory=list)  # ids asked to be deleted that the store lacks
    notes: list = field(default_factory=list)
    drift: dict = field(default_factory=dict)
    rebuild_reasons: list = field(default_factory=list)
    seconds: float = 0.0
    skips_said: str = ""  # no new version: its first skips, as " (N skipped: where: reason; ...)"
    rebuild: bool = False  # rebuild_if_due: a rebuild is due and the inputs are the whole corpus, so none was made
    whole: bool = False  # the inputs were read as the whole corpus (--prune, and the prune was not refused)


@contextmanager
def store_lock(corpus_dir):
    """corpus_lock() of a corpus folder that holds a store."""
    if not (Path(corpus_dir) / "CURRENT").is_file():  # else the lock's own "No such file" names no store
        raise StoreError(f"{corpus_dir} holds no store (no CURRENT file): build one with python -m function.build")
    with corpus_lock(corpus_dir):
        yield


def _link_or_copy(source, target):
    """Files of a version never change once written: the new version can share them."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class Incoming:
    """The records to fold in: metadata in memory, bags of words on disk (the builder's scratch format)."""

    def __init__(self, folder):
        self.bags = Bags(folder)
        self.docs = []  # (id, url, url_key, host, title, old row or None)
        self.tokens = []  # per doc: (tokens, tokens out of the vocabulary)
        self.unknown = []  # per doc: the counts of its words a full build would add to the vocabulary

    def add(self, record, url_key, terms, tokens, oov, old_row, unknown):
        self.bags.append_batch(terms.ids, terms.counts, [len(terms)])
        self.docs.append((record.id, record.url, url_key, host_of(record.url), record.title, old_row))
        self.tokens.append((tokens, oov))
        self.unknown.append(unknown)

    def __len__(self):
        return len(self.docs)


def read_incoming(store, sources, tmp, delete_ids, skip):
    """Tokenise the input against the store's vocabulary; returns (Incoming, ids seen, ids kept by transient
    skips, [tokens, documents] with no known word, input records that could not be read)."""
    incoming = Incoming(tmp)
    too_common = frozenset((store.manifest.get("pruning") or {}).get("too_common") or ())
    seen, transient = set(), set()
    unread = 0  # input records that could not be read: the documents they held are unknown
    unknown_only = [0, 0]  # documents with no known word: (tokens, count)
    for source in sources:
        for item in source:
            if isinstance(item, Skip):
                skip(item.where, item.reason)
                if item.transient and item.id:
                    transient.add(item.id)
                unread += item.unread
                continue
            if item.id in seen:
                skip(item.id, "duplicate id")
                continue
            seen.add(item.id)
            if item.id in delete_ids:
                skip(item.id, "listed for deletion")
                continue
            tokens = tokenize(indexed_text(item.title, item.text, item.url, store.index_titles), store.tokenizer)
            if not tokens:
                skip(item.id, "no words")
                continue
            try:
                url_key = normalise_url(item.url)
            except ValueError:
                skip(item.id, "bad url")
                continue
            terms = store.vocabulary.terms(tokens)
            oov = len(tokens) - int(terms.counts.sum())
            if not len(terms):
                unknown_only[0] += len(tokens)
                unknown_only[1] += 1
                skip(item.id, "none of its words is in the vocabulary yet (a full rebuild will learn them)")
                continue
            unknown = np.zeros(0, np.float32)
            if oov:  # the words out of the vocabulary but those a full build pruned as too common
                known = set(store.vocabulary.tokens[terms.ids].tolist())
                unknown = np.array([c for word, c in Counter(tokens).items() if word not in known
                                    and word not in too_common], np.float32)
            incoming.add(item, url_key, terms, len(tokens), oov, store.row_for_id(item.id), unknown)
    incoming.bags.close()
    return incoming, seen, transient, unknown_only, unread


def _engine_rows(counts, spec, weights):
    return weigh_rows(counts, spec["local"], weights)


def _lsi_dense(rows, projection):
    """The builder's LSI document vectors for weighted rows, and each row's LSI fit (|projected|^2)."""
    dense = np.asarray(rows @ projection, np.float32)
    fit = np.einsum("ij,ij->i", dense, dense, dtype=np.float64)
    return unit_rows(dense), fit


def unknown_weight(store, engine):
    """The global weight a word a folded document brings to the vocabulary would get in a full build:
    that of the build's rarest words (a word in one document: log2 N for IDF, 1 for entropy). 0 (the
    words are not counted) when a full build would prune such a word (--no-below above 1, a vocabulary
    cut at --keep-n), or when the store does not say which words it pruned as too common (built before
    it did), as those are out of every document's vocabulary."""
    pruning = store.manifest.get("pruning") or {}
    keep_n = store.manifest.get("parameters", {}).get("keep_n", BuildOptions.keep_n)
    if "too_common" not in pruning or pruning.get("no_below", 1) > 1 or len(store.vocabulary) >= keep_n:
        return 0.0
    return float(np.max(engine.weights))


def folded_lengths(counts, unknown, engine, weight):
    """The length of a sparse engine's folded rows relative to a built row's (1), as a full build's
    normalisation would make it: the weight of the known words (``counts``, a CSR) over that of all
    of the document's words, its ``unknown`` ones (counts, per row) at ``weight``, which the model does
    not see. At unit length a folded document had been over-recommended (bench/update_drift.py)."""
    weighted = weighted_rows(counts, engine.local, engine.weights)
    known = np.asarray(weighted.multiply(weighted).sum(axis=1), np.float64).ravel()
    added = np.array([float(np.sum(np.square(local_weight(u.astype(np.float64), engine.local)))) for u in unknown])
    added *= weight ** 2
    total = known + added
    return np.sqrt(np.divide(known, total, out=np.ones_like(total), where=total > 0))


# An LSI row folded in is shortened by the fourth root of its fit relative to the full build's documents'.
# Its unknown words are not counted: a full build would put them with the topics of the words they come
# with, not beside them. On bench/update_drift.py (406 articles) the square root had halved as much too
# much (over@10 0.3-0.5) and its product with the sparse engine's length still more (0.3).
LSI_FIT_POWER = 0.25


def lsi_lengths(fits, base_fit):
    """The length of LSI rows folded in with LSI ``fits``: (their fit / ``base_fit``, the full build's
    documents' mean) ** LSI_FIT_POWER, at most 1. In a small corpus LSI fits its own documents far better
    than new ones; in a large one a new document like the corpus's fits about as well and keeps its length."""
    if not base_fit:
        return np.ones(len(fits))
    return np.minimum(1.0, np.asarray(fits, np.float64) / base_fit) ** LSI_FIT_POWER


def compare_incoming(store, incoming):
    """Per incoming doc: whether it must be folded in (new or changed), and LSI fits per engine."""
    vocab_size = len(store.vocabulary)
    remap = np.arange(vocab_size, dtype=np.int32)
    fold = np.ones(len(incoming), bool)
    fits = {name: np.zeros(len(incoming)) for name, e in store.engines.items() if e.kind == "lsi"}
    old_rows = [doc[5] for doc in incoming.docs]
    old_docs = {d.row: d for d in store.docs(sorted({r for r in old_rows if r is not None}))}
    for first, counts in incoming.bags.chunks(remap, vocab_size):
        same = np.array([old_rows[first + i] is not None for i in range(counts.shape[0])])
        for i in np.flatnonzero(same):
            _, url, _, _, title, row = incoming.docs[first + i]
            same[i] = old_docs[row].url == url and old_docs[row].title == title
        for name, engine in store.engines.items():
            rows = _engine_rows(counts, engine.spec, engine.weights)
            if engine.kind == "lsi":
                vectors, fits[name][first:first + counts.shape[0]] = _lsi_dense(rows, engine.projection)
                for i in np.flatnonzero(same):  # by direction: a folded row is shorter (lsi_lengths)
                    same[i] = np.allclose(vectors[i], unit(engine.vectors[old_rows[first + i]]), atol=1e-5)
            else:
                for i in np.flatnonzero(same):
                    row = old_rows[first + i]
                    lo, hi = engine.doc_ptr[row], engine.doc_ptr[row + 1]
                    a, b = rows.indptr[i], rows.indptr[i + 1]
                    same[i] = (np.array_equal(rows.indices[a:b], engine.doc_terms[lo:hi])
                               and np.allclose(rows.data[a:b], unit(engine.doc_weights[lo:hi]), atol=1e-6))
        fold[first:first + counts.shape[0]] = ~same
    return fold, fits


def base_lsi_fit(store):
    """Mean LSI fit of (a sample of) the full build's documents, per LSI engine.

    The weighted rows come from a sparse engine with the same weighting; a
    store without one has no reference (None).
    """
    sparse = next((e for e in store.engines.values() if e.kind == "sparse"), None)
    out = {}
    for name, engine in store.engines.items():
        if engine.kind != "lsi":
            continue
        if sparse is None or sparse.local != engine.local or not np.array_equal(sparse.weights, engine.weights):
            out[name] = None
            continue
        rows = np.unique(np.linspace(0, sparse.size - 1, min(BASE_FIT_SAMPLE, sparse.size)).astype(np.int64))
        fits = []
        for row in rows:
            lo, hi = sparse.doc_ptr[row], sparse.doc_ptr[row + 1]
            weights = unit(np.asarray(sparse.doc_weights[lo:hi], np.float64))  # a folded row is shorter
            projected = weights @ engine.projection[sparse.doc_terms[lo:hi]]
            fits.append(float(projected @ projected))
        out[name] = round(float(np.mean(fits)), 6) if fits else None
    return out


def write_docs(base_path, path, kept, incoming, fold):
    """docs.sqlite of the new version: the kept rows renumbered, then the folded-in documents."""
    db = sqlite3.connect(sqlite_uri(path), uri=True)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
    db.execute("ATTACH DATABASE ? AS base", (sqlite_uri(base_path, mode="ro"),))
    schema = db.execute("SELECT type, name, sql FROM base.sqlite_master WHERE sql IS NOT NULL").fetchall()
    tables = [name for kind, name, _ in schema if kind == "table"]
    if tables != ["docs"]:
        raise StoreError(f"{base_path} has tables {tables}; an update knows only 'docs': rebuild the store")
    columns = [c[1] for c in db.execute("PRAGMA base.table_info(docs)")]
    if set(DOC_COLUMNS) - set(columns):
        raise StoreError(f"{base_path} lacks columns {sorted(set(DOC_COLUMNS) - set(columns))}: rebuild the store")
    for kind, _, sql in schema:
        if kind == "table":
            db.execute(sql)
    db.execute("CREATE TEMP TABLE keep (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
    db.executemany("INSERT INTO keep VALUES (?, ?)", zip(kept.tolist(), range(len(kept))))
    others = ", ".join(f"d.{c}" for c in columns if c != "row")
    db.execute(f"INSERT INTO docs (row, {others.replace('d.', '')}) SELECT k.new, {others} "
               "FROM base.docs d JOIN keep k ON d.row = k.old ORDER BY k.new")
    folded = (doc[:5] for doc, chosen in zip(incoming.docs, fold) if chosen)
    db.executemany(f"INSERT INTO docs ({', '.join(DOC_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
                   ((len(kept) + i, *doc) for i, doc in enumerate(folded)))
    for kind, _, sql in schema:
        if kind == "index":
            db.execute(sql)
    db.commit()
    db.close()


def write_lsi(root, engine, kept, incoming, fold, vocab_size, progress, base_fit=None):
    """The LSI engine's files of the new version: the kept rows, then the folded ones at
    lsi_lengths() (``base_fit``: the full build's documents' mean LSI fit)."""
    from numpy.lib.format import open_memmap

    size, dims = len(kept) + int(fold.sum()), engine.vectors.shape[1]
    vectors = open_memmap(root / "vectors.npy", "w+", np.float32, (size, dims))
    for first in range(0, len(kept), CHUNK_DOCS):
        block = kept[first:first + CHUNK_DOCS]
        vectors[first:first + len(block)] = engine.vectors[block]
    at = len(kept)
    for first, counts in incoming.bags.chunks(np.arange(vocab_size, dtype=np.int32), vocab_size):
        chosen = fold[first:first + counts.shape[0]]
        if chosen.any():
            dense, fits = _lsi_dense(_engine_rows(counts[chosen], engine.spec, engine.weights), engine.projection)
            vectors[at:at + len(dense)] = dense * lsi_lengths(fits, base_fit)[:, None].astype(np.float32)
            at += len(dense)
    vectors.flush()
    if engine.spec.get("ann"):  # rows were renumbered: the graph is built again over the new vectors
        build_ann(root, vectors, {"dims": dims, **engine.spec["ann"]}, progress)  # (older specs lack dims)
    del vectors


def write_sparse(root, engine, kept, incoming, fold, vocab_size, weight=0.0):
    """The sparse engine's files of the new version: the kept rows, then the folded ones at
    folded_lengths() (``weight``: unknown_weight())."""
    keep = np.zeros(engine.size, bool)
    keep[kept] = True
    lengths = np.diff(np.asarray(engine.doc_ptr))
    pieces = [lengths[keep]]
    with open(root / "doc_terms.bin", "wb") as terms_out, open(root / "doc_weights.bin", "wb") as weights_out:
        for first in range(0, engine.size, CHUNK_DOCS):
            last = min(first + CHUNK_DOCS, engine.size)
            lo, hi = engine.doc_ptr[first], engine.doc_ptr[last]
            mask = np.repeat(keep[first:last], lengths[first:last])
            terms_out.write(np.asarray(engine.doc_terms[lo:hi])[mask].astype(np.int32).tobytes())
            weights_out.write(np.asarray(engine.doc_weights[lo:hi])[mask].astype(np.float32).tobytes())
        for first, counts in incoming.bags.chunks(np.arange(vocab_size, dtype=np.int32), vocab_size):
            chosen = fold[first:first + counts.shape[0]]
            if chosen.any():
                rows = _engine_rows(counts[chosen], engine.spec, engine.weights)
                unknown = [incoming.unknown[first + i] for i in np.flatnonzero(chosen)]
                lengths = folded_lengths(counts[chosen], unknown, engine, weight)
                rows.data *= np.repeat(lengths, np.diff(rows.indptr))
                terms_out.write(rows.indices.astype(np.int32).tobytes())
                weights_out.write(rows.data.astype(np.float32).tobytes())
                pieces.append(np.diff(rows.indptr))
    finish_sparse(root, np.concatenate([[0], np.cumsum(np.concatenate(pieces))]).astype(np.int64), vocab_size)


def stored_ids(version_dir):
    db = sqlite3.connect(sqlite_uri(version_dir / "docs.sqlite", mode="ro"), uri=True)
    try:
        yield from db.execute("SELECT row, id FROM docs")
    finally:
        db.close()


def rows_to_delete(store, delete_ids):
    """Rows of the ids (or URLs) to delete, and those the store does not have."""
    rows, missing = set(), []
    for wanted in delete_ids:
        row = store.row_for_id(wanted)
        if row is None and is_url(wanted):
            try:
                row = store.row_for_id(normalise_url(wanted))
                if row is None:
                    row = store.row_for_url_key(normalise_url(wanted))
            except ValueError:
                row = None
        if row is None:
            missing.append(wanted)
        else:
            rows.add(row)
    return rows, missing


def measure_drift(manifest, store, incoming, fold, fits, unknown_only, counts, documents_now):
    """The bookkeeping since the last full build, with this update added, and its drift measures."""
    previous = manifest.get("update") or {}
    full_build = previous.get("full_build") or {
        "version": manifest["version"], "built_at": manifest["built_at"], "documents": manifest["documents"]}
    since = dict(previous.get("since_full_build") or {
        "updates": 0, "added": 0, "updated": 0, "deleted": 0, "tokens": 0, "oov_tokens": 0,
        "lsi_fit_sum": {}, "lsi_fit_docs": 0})
    base_fit = previous.get("base_lsi_fit") or base_lsi_fit(store)
    # words a full build pruned (too common, too rare) are unknown to its own documents too: the
    # reference is the full build's coverage, else the unknown share of documents that came back unchanged
    base_oov = previous.get("base_oov_share")
    if base_oov is None and manifest.get("token_coverage") is not None:
        base_oov = round(1 - manifest["token_coverage"], 4)
    if base_oov is None:
        unchanged = [t for t, chosen in zip(incoming.tokens, fold) if not chosen]
        if sum(t for t, _ in unchanged):
            base_oov = round(sum(o for _, o in unchanged) / sum(t for t, _ in unchanged), 4)
    since["updates"] += 1
    for key in ("added", "updated", "deleted"):
        since[key] += counts[key]
    folded_tokens = [t for t, chosen in zip(incoming.tokens, fold) if chosen]
    since["tokens"] += sum(t for t, _ in folded_tokens) + unknown_only[0]
    since["oov_tokens"] += sum(o for _, o in folded_tokens) + unknown_only[0]
    since["lsi_fit_sum"] = {name: since["lsi_fit_sum"].get(name, 0.0) + float(fit[fold].sum())
                            for name, fit in fits.items()}
    since["lsi_fit_docs"] += int(fold.sum())
    fit_now = {name: total / since["lsi_fit_docs"] if since["lsi_fit_docs"] else None
               for name, total in since["lsi_fit_sum"].items()}
    ratios = [fit_now[name] / base_fit[name] for name in fit_now
              if fit_now[name] is not None and base_fit.get(name)]
    oov_share = round(since["oov_tokens"] / since["tokens"], 4) if since["tokens"] else None
    drift = {
        "folded_share": round((since["added"] + since["updated"]) / max(1, documents_now), 4),
        "deleted_share": round(since["deleted"] / max(1, full_build["documents"]), 4),
        "oov_share": oov_share,
        "oov_excess": None if oov_share is None or base_oov is None else round(max(0.0, oov_share - base_oov), 4),
        "lsi_fit": {name: None if v is None else round(v, 4) for name, v in fit_now.items()},
        "lsi_fit_ratio": round(min(ratios), 4) if ratios else None,
    }
    return {"full_build": full_build, "since_full_build": since, "base_lsi_fit": base_fit,
            "base_oov_share": base_oov, "drift": drift}


# A prune deletes at most this share of the store unless told otherwise: a site redesign the
# extractor cannot read skips every page as "no article text", and the prune would delete them all.
MAX_PRUNE_SHARE = 0.5


def rows_to_prune(store, sources, seen, transient, unread, max_share):
    """The rows a prune deletes, those of the documents the input does not hold, and a note when it
    deletes none for want of knowing what the input holds, or because they are too many."""
    if not all(getattr(source, "listing_complete", True) for source in sources):
        return set(), "not pruned: some sitemaps could not be read, so the listing is incomplete"
    if not seen:
        return set(), "not pruned: the input has no documents at all"
    if unread:
        return set(), (f"not pruned: {unread} input record(s) could not be read (see the skips), "
                       "so which documents the input holds is not known")
    keep_ids = seen | transient
    pruned = {row for row, doc_id in stored_ids(store.path) if doc_id not in keep_ids}
    if len(pruned) > max_share * store.size:
        return set(), (f"not pruned: it would delete {len(pruned):,} of the {store.size:,} documents "
                       f"({len(pruned) / store.size:.0%}), more than --max-prune {max_share:.0%}. See the skips above "
                       "(pages the extractor no longer reads, after a site redesign, are skipped and would be "
                       "pruned), or give --max-prune 100 to prune anyway")
    return pruned, None


def not_the_whole_corpus(store, prune, prune_note, transient):
    """Why a build from the update's sources would not make the store the update makes (None: it
    would). A page that failed for now is kept by the update; a build would lose it."""
    if not prune:
        return "without --prune the inputs need not be the whole corpus"
    if prune_note:
        return "the inputs were not read as the whole corpus (see above)"
    kept = sum(store.row_for_id(i) is not None for i in transient)
    if kept:
        return (f"{kept} stored page(s) failed for now and are kept by this update; a rebuild would drop them. "
                "Run it again when they can be fetched")
    return None


def update(corpus_dir, sources=(), delete_ids=(), prune=False, keep_versions=None, rule=RebuildRule(),
           progress=True, max_prune_share=MAX_PRUNE_SHARE, rebuild_if_due=False):
    """Fold ``sources`` (iterables of Record/Skip) into the live version of ``corpus_dir`` and delete
    ``delete_ids`` (ids or URLs); with ``prune``, also delete every document the sources do not have,
    unless that is more than ``max_prune_share`` of the store. With ``rebuild_if_due``, when ``rule``
    says a rebuild is due and the prune read the sources as the whole corpus, nothing is written and
    the result's ``rebuild`` is True: the caller builds from the same sources (main() does)."""
    corpus_dir = Path(corpus_dir)
    with store_lock(corpus_dir):
        return update_locked(corpus_dir, sources, delete_ids, prune, keep_versions, rule, progress, max_prune_share,
                             rebuild_if_due)


def update_locked(corpus_dir, sources=(), delete_ids=(), prune=False, keep_versions=None, rule=RebuildRule(),
                  progress=True, max_prune_share=MAX_PRUNE_SHARE, rebuild_if_due=False):
    """update(), with store_lock(corpus_dir) held by the caller."""
    release_freed_arrays()
    corpus_dir = Path(corpus_dir)
    started = time.time()
    delete_ids = {str(i).strip() for i in delete_ids if str(i).strip()}
    base_dir = current_version_dir(corpus_dir)
    store = Store(base_dir)
    manifest = store.manifest
    result = UpdateResult(None, store.version)
    stamp = datetime.now(timezone.utc).strftime("v%Y%m%dT%H%M%S%f")
    tmp = corpus_dir / f".tmp-{stamp}-{os.getpid()}"
    tmp.mkdir()
    try:
        with open(tmp / "skipped.jsonl", "w", encoding="utf-8") as skips:
            def skip(where, reason):
                result.skipped += 1
                skips.write(json.dumps({"where": where, "reason": reason}) + "\n")

            incoming, seen, transient, unknown_only, unread = read_incoming(store, sources, tmp, delete_ids, skip)
        fold, fits = compare_incoming(store, incoming)
        removed, result.not_found = rows_to_delete(store, delete_ids)
        deleted_rows = set(removed)
        note = None
        if prune:
            pruned, note = rows_to_prune(store, sources, seen, transient, unread, max_prune_share)
            deleted_rows |= pruned
            if note:
                result.notes.append(note)
            result.whole = not note
        replaced = {doc[5] for doc, chosen in zip(incoming.docs, fold) if chosen and doc[5] is not None}
        deleted_rows -= replaced
        result.deleted = len(deleted_rows)
        result.updated = len(replaced)
        result.added = int(fold.sum()) - result.updated
        result.unchanged = len(incoming) - int(fold.sum())
        if not fold.any() and not deleted_rows:
            # no version, so no skipped.jsonl to see: the first skips are said instead (a refused prune
            # had said "See the skips", of a file removed with its temporary folder)
            result.skips_said = skips_said(tmp, result.skipped)
            shutil.rmtree(tmp)
            result.seconds = round(time.time() - started, 2)
            return result
        kept = np.setdiff1d(np.arange(store.size), np.fromiter(deleted_rows | replaced, np.int64))
        documents = len(kept) + int(fold.sum())
        if documents == 0:
            raise StoreError("the update would leave the store empty: refused")
        # measured before anything is written: a rebuild in its place makes the writing needless
        bookkeeping = measure_drift(manifest, store, incoming, fold, fits, unknown_only,
                                    {"added": result.added, "updated": result.updated,
                                     "deleted": result.deleted}, documents)
        result.drift = bookkeeping["drift"]
        result.rebuild_reasons = rule.reasons(result.drift)
        if rebuild_if_due and result.rebuild_reasons:
            why_not = not_the_whole_corpus(store, prune, note, transient)
            if why_not is None:
                result.rebuild = True
                incoming.bags.remove()
                shutil.rmtree(tmp)
                result.seconds = round(time.time() - started, 2)
                return result
            result.notes.append(f"not rebuilt (--rebuild-if-due): {why_not}")

        write_docs(base_dir / "docs.sqlite", tmp / "docs.sqlite", kept, incoming, fold)
        _link_or_copy(base_dir / "vocab.npy", tmp / "vocab.npy")
        vocab_size = len(store.vocabulary)
        for name, engine in store.engines.items():
            root = tmp / "engines" / name
            root.mkdir(parents=True)
            _link_or_copy(base_dir / "engines" / name / "weights.npy", root / "weights.npy")
            if engine.kind == "lsi":
                _link_or_copy(base_dir / "engines" / name / "projection.npy", root / "projection.npy")
                write_lsi(root, engine, kept, incoming, fold, vocab_size, progress,
                          (bookkeeping["base_lsi_fit"] or {}).get(name))
            else:
                write_sparse(root, engine, kept, incoming, fold, vocab_size, unknown_weight(store, engine))
        incoming.bags.remove()

        files, version = describe_version(tmp, stamp)
        new_manifest = {
            **manifest,
            "version": version,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "builder": f"function.update {__version__}",
            "build_seconds": round(time.time() - started, 2),
            "documents": documents,
            "skipped": result.skipped,
            "files": files,
            "update": {
                **bookkeeping,
                "from_version": store.version,
                "last": {"added": result.added, "updated": result.updated, "deleted": result.deleted,
                         "unchanged": result.unchanged, "skipped": result.skipped},
                "rebuild_due": bool(result.rebuild_reasons),
                "rebuild_reasons": result.rebuild_reasons,
                "rule": rule.describe(),
            },
        }
        (tmp / "manifest.json").write_text(json.dumps(new_manifest, indent=2))
        # CURRENT written by hand (a rollback) while it ran: builds and updates are refused during this one
        if current_version_dir(corpus_dir) != base_dir:
            raise StoreError(f"{corpus_dir} got a new version while this update ran: run the update again")
        final = corpus_dir / version
        os.rename(tmp, final)
        point_current(corpus_dir, version)
        keep = keep_versions if keep_versions is not None else \
            manifest["parameters"].get("keep_versions", BuildOptions.keep_versions)
        prune_versions(corpus_dir, keep=keep, previous=base_dir.name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.version_dir = final
    result.seconds = round(time.time() - started, 2)
    return result


# -- command line ----------------------------------------------------------------------------------
def read_delete_file(path):
    with open(path, encoding="utf-8") as lines:
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def given_source_options(args):
    """The source options (add_source_arguments) of ``args`` not left at their defaults, as flags: a
    rebuild reads its inputs as the update did (a CSV's --columns, a crawl's --rate)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_source_arguments(parser)
    options = []
    for name, default in vars(parser.parse_args([])).items():
        if getattr(args, name) != default:
            options += option(name.replace("_", "-"), getattr(args, name))
    return options


def report(result, corpus_dir, rule, inputs=("CORPUS",), source_options=(), whole=False):
    """What the update did, and whether a full rebuild is due: then the command, from ``inputs``
    (the update's) with ``source_options``; ``whole``: the inputs are the whole corpus (--prune)."""
    lines = []
    if result.rebuild:
        lines.append(f"rebuilding {corpus_dir} (--rebuild-if-due) in place of an update of {result.added} added, "
                     f"{result.updated} changed, {result.deleted} deleted, {result.unchanged} unchanged")
    elif result.version_dir is None:
        lines.append(f"no change to {corpus_dir} (version {result.base_version}): {result.unchanged} documents "
                     f"unchanged, " + (result.skips_said.strip()[1:-1] or f"{result.skipped} skipped"))
    else:
        lines.append(f"updated {corpus_dir}: {result.base_version} -> {result.version_dir.name}: "
                     f"{result.added} added, {result.updated} changed, {result.deleted} deleted, "
                     f"{result.unchanged} unchanged, {result.skipped} skipped "
                     f"(see {result.version_dir / 'skipped.jsonl'}), {result.seconds} s")
    if result.not_found:
        lines.append(f"not in the store, so not deleted: {', '.join(result.not_found[:10])}"
                     + (" ..." if len(result.not_found) > 10 else ""))
    lines.extend(result.notes)
    if result.drift:
        d = result.drift
        fit = "n/a" if d["lsi_fit_ratio"] is None else f"{d['lsi_fit_ratio']:.2f}"
        oov = "n/a" if d["oov_share"] is None else f"{d['oov_share']:.1%}"
        if d.get("oov_excess") is not None:
            oov += f" ({d['oov_excess'] * 100:+.1f} points on the full build's)"
        lines.append(f"drift since the full build: {d['folded_share']:.1%} of the documents folded in, "
                     f"{d['deleted_share']:.1%} deleted, {oov} of the folded-in words unknown, "
                     f"LSI fit {fit} of the full build's")
        if result.rebuild_reasons:
            version_dir = result.version_dir or Path(corpus_dir) / result.base_version
            command, notes = rebuild_command(corpus_dir, json.loads((version_dir / "manifest.json").read_text()),
                                             inputs, source_options)
            # the update's own inputs: a placeholder ("--input CORPUS") had been left to fill in, its
            # source options to remember. The command stands on a line of its own, to be copied whole:
            # inside a sentence ("Run CMD with the whole corpus (which this update's inputs are
            # (--prune)); ...") it was hard to tell where it ended, and the sentence hard to read
            given = ("this update's inputs, the whole corpus as --prune reads them" if whole else
                     "this update's inputs and source options: give the whole corpus if these inputs "
                     "are not all of it")
            said = "Building it now from" if result.rebuild else "Rebuild with"
            lines.append("full rebuild due: " + "; ".join(result.rebuild_reasons) + f". {said} "
                         f"{given}, and the options the store was built with:")
            lines.append(f"  {command}")
            lines.extend(f"({note})" for note in notes)
        else:
            lines.append(f"full rebuild not due yet ({rule.describe()})")
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m function.update", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", type=Path, help="the corpus folder to update, e.g. model_store/NAME")
    p.add_argument("--input", action="append", default=[], metavar="PATH",
                   help="documents to add or change: " + INPUT_HELP)
    p.add_argument("--delete", action="append", default=[], metavar="FILE",
                   help="file of ids (or URLs) to delete, one a line; repeatable")
    p.add_argument("--prune", action="store_true",
                   help="delete the documents the inputs do not have (the inputs are the whole corpus, e.g. "
                        "the site's sitemap); pages that failed transiently are kept")
    p.add_argument("--max-prune", type=float, default=MAX_PRUNE_SHARE * 100, metavar="PERCENT",
                   help="prune nothing when the prune would delete more than this share of the store "
                        "(default %(default)g)")
    p.add_argument("--keep-versions", type=int, help="versions to keep (default: as the store was built)")
    p.add_argument("--rebuild-if-due", action="store_true",
                   help="with --prune: when a full rebuild is due, build the store from the inputs (with the "
                        "options it was built with) instead of folding them in")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_source_arguments(p)
    args = cli.parse_args(p, argv)
    if not 0 <= args.max_prune <= 100:
        p.error(f"--max-prune must be a percentage from 0 to 100, not {args.max_prune:g}")
    if not args.input and not args.delete:
        p.error("nothing to do: give --input and/or --delete")
    # a rebuild reads the inputs alone: they must be the whole corpus, and hold nothing to delete
    if args.rebuild_if_due and not args.prune:
        p.error("--rebuild-if-due needs --prune: a rebuild is built from the inputs alone, so they must be the "
                "whole corpus (e.g. the site's sitemap)")
    if args.rebuild_if_due and args.delete:
        p.error("--rebuild-if-due rebuilds from the inputs alone, which --delete cannot take from: leave "
                "--delete out (--prune deletes what the inputs lack)")
    return args


def main(argv=None):
    args = parse_args(argv)
    rule = RebuildRule()
    try:
        settings = source_settings(args, args.store, progress=not args.quiet)
        sources = [open_source(path, args.format, settings) for path in args.input]
        delete_ids = [i for path in args.delete for i in read_delete_file(path)]
        with store_lock(args.store):  # before a crawl: a refused update fetches nothing
            prepare_sources(sources)
            result = update_locked(args.store, sources, delete_ids, prune=args.prune, keep_versions=args.keep_versions,
                                   rule=rule, progress=not args.quiet, max_prune_share=args.max_prune / 100,
                                   rebuild_if_due=args.rebuild_if_due)
            if result.rebuild:
                print(report(result, args.store, rule, args.input, given_source_options(args), whole=True),
                      file=sys.stderr)
                final, manifest = rebuild(args, sources, settings)
    except (StoreError, ValueError, OSError) as exc:
        print(f"update failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # said, not a traceback: the live version is untouched
        print(f"update stopped: {args.store} still serves the version it had", file=sys.stderr)
        return 130
    if result.rebuild:
        print(built_line(final, manifest), file=sys.stderr)
        return 0
    print(report(result, args.store, rule, args.input, given_source_options(args), whole=result.whole), file=sys.stderr)
    return 0


def rebuild(args, sources, settings):
    """The full build --rebuild-if-due runs in the update's place, under its lock: the command the
    report gives (the store's build options, the update's inputs and source options), from the
    update's sources. A crawl is read again from its state, not fetched again; files are reopened."""
    manifest = json.loads((current_version_dir(args.store) / "manifest.json").read_text())
    arguments, _ = rebuild_arguments(args.store, manifest, args.input, given_source_options(args))
    options = options_from_args(build_arguments(arguments[3:]))  # after "python -m function.build"
    again = [source if hasattr(source, "prepare") else open_source(path, args.format, settings)
             for source, path in zip(sources, args.input)]
    return build_locked(again, args.store, options, progress=not args.quiet)


if __name__ == "__main__":
    raise SystemExit(main())
