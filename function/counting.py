"""The builder's pass 1 hot loop: texts -> bags of words, tokenised in parallel.

Tokenising and counting is most of a build's time (pure Python, about 1 us a
token), so batches of texts go to worker processes; the main process keeps
the one vocabulary and merges the batches strictly in input order, giving
token ids in the same order as gensim's ``Dictionary.doc2bow`` would (first
document seen, then alphabetical): a build does not depend on the number of
workers. At most ``2 x workers`` batches are in flight, so memory does not
grow with the corpus.
"""

import collections
import concurrent.futures
import multiprocessing
import os

import numpy as np

from .tokens import tokenize

BATCH_DOCS = 256


def count_batch(texts, options):
    """(local vocabulary in first-seen order, local ids, counts, distinct tokens per text)."""
    local = {}
    ids, counts, sizes = [], [], []
    for text in texts:
        counter = collections.Counter(tokenize(text, options))
        for word in sorted(w for w in counter if w not in local):
            local[word] = len(local)
        ids.extend(map(local.__getitem__, counter))
        counts.extend(counter.values())
        sizes.append(len(counter))
    return list(local), np.asarray(ids, np.int32), np.asarray(counts, np.int32), np.asarray(sizes, np.int64)


class Vocabulary:
    """Token -> id with document and collection frequencies; ids are never reused.

    Past ``prune_at`` tokens the rarest are forgotten (as gensim's
    ``add_documents`` does), so memory stays bounded on an endless vocabulary;
    their ids already in the bags simply map to nothing later.
    """

    def __init__(self, prune_at=2_000_000):
        self.prune_at = prune_at
        self.token2id = {}
        self.next_id = 0
        self.dfs = np.zeros(1024, np.int64)
        self.cfs = np.zeros(1024, np.int64)
        self.num_docs = self.num_pos = self.num_nnz = 0

    def merge(self, words, local_ids, counts, doc_of_entry, docs):
        """Global ids for a batch's kept entries; bags are returned sorted by id within a document."""
        get = self.token2id.get
        local_to_global = np.asarray([get(w, -1) for w in words], np.int64)
        used = np.zeros(len(words), bool)
        used[local_ids] = True
        new = np.flatnonzero(used & (local_to_global < 0))
        if len(new):
            # first kept document of each new word, then alphabetical: doc2bow's order
            first_doc = np.full(len(words), np.iinfo(np.int64).max)
            np.minimum.at(first_doc, local_ids, doc_of_entry)
            for i in sorted(new.tolist(), key=lambda i: (first_doc[i], words[i])):
                self.token2id[words[i]] = local_to_global[i] = self.next_id
                self.next_id += 1
            if self.next_id > len(self.dfs):
                grow = max(self.next_id, 2 * len(self.dfs))
                self.dfs = np.concatenate([self.dfs, np.zeros(grow - len(self.dfs), np.int64)])
                self.cfs = np.concatenate([self.cfs, np.zeros(grow - len(self.cfs), np.int64)])
        global_ids = local_to_global[local_ids]
        order = np.lexsort((global_ids, doc_of_entry))
        global_ids, counts = global_ids[order], counts[order]
        np.add.at(self.dfs, global_ids, 1)
        np.add.at(self.cfs, global_ids, counts)
        self.num_docs += docs
        self.num_pos += int(counts.sum())
        self.num_nnz += len(global_ids)
        if len(self.token2id) > self.prune_at:
            self._prune()
        return global_ids, counts

    def _prune(self):
        ranked = sorted(self.token2id.items(), key=lambda item: (-self.dfs[item[1]], item[1]))
        self.token2id = dict(ranked[:self.prune_at])

    def to_gensim(self):
        """A gensim Dictionary with these tokens and frequencies (for its filter_extremes)."""
        from gensim.corpora import Dictionary

        dictionary = Dictionary()
        dictionary.token2id = dict(self.token2id)
        ids = list(self.token2id.values())
        dictionary.dfs = dict(zip(ids, self.dfs[ids].tolist()))
        dictionary.cfs = dict(zip(ids, self.cfs[ids].tolist()))
        dictionary.num_docs, dictionary.num_pos, dictionary.num_nnz = self.num_docs, self.num_pos, self.num_nnz
        return dictionary


class BatchCounter:
    """Runs ``count_batch`` over batches in order: in this process for a small input,
    in ``workers`` processes once a second batch shows the input is not small."""

    def __init__(self, options, workers=0):
        self.options = options
        self.workers = workers or os.cpu_count() or 1
        self._pool = None
        self._pending = collections.deque()
        self._submitted = 0

    def submit(self, key, texts):
        """Queue a batch; returns the finished (key, result) pairs that are due, in order."""
        if self.workers > 1 and self._submitted >= 1 and self._pool is None:
            # fork: workers start in milliseconds and need no importable __main__; they only
            # run count_batch (no SQLite handle, lock or thread of the builder is used there)
            self._pool = concurrent.futures.ProcessPoolExecutor(self.workers,
                                                                mp_context=multiprocessing.get_context("fork"))
        self._submitted += 1
        if self._pool is None:
            self._pending.append((key, _Done(count_batch(texts, self.options))))
        else:
            self._pending.append((key, self._pool.submit(count_batch, texts, self.options)))
        done = []
        while len(self._pending) > 2 * self.workers:
            key, future = self._pending.popleft()
            done.append((key, future.result()))
        return done

    def drain(self):
        done = [(key, future.result()) for key, future in self._pending]
        self._pending.clear()
        return done

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
