"""Prepare the seed-style baseline for a bench store: gensim objects saved the gensim way.

    python -m bench.baseline.prepare N

Writes ``bench/cache/baseline/N/``: the gensim Dictionary, TfidfModel and
LsiModel (with our store's vocabulary, IDF weights and projection, so both
servers rank with the same model), a gensim ``MatrixSimilarity`` holding every
document vector, and ``articles.json`` (row -> id, url, title), the file the
seed re-read on every request. The corpus itself is the bench's JSON lines.
"""

import json
import sqlite3
import sys

import numpy as np

from bench.stores import CACHE, CORPUS_NAME, corpus_path, ensure_store
from function.store import current_version_dir


def baseline_dir(n):
    return CACHE / "baseline" / str(n)


def prepare(n):
    from gensim.corpora import Dictionary
    from gensim.models import LsiModel, TfidfModel
    from gensim.similarities import MatrixSimilarity

    out = baseline_dir(n)
    version = current_version_dir(ensure_store(n) / CORPUS_NAME)
    if (out / "done").exists() and (out / "done").read_text().strip() == version.name:
        return out
    out.mkdir(parents=True, exist_ok=True)
    lsi_root = version / "engines" / "lsi"
    words = np.load(version / "vocab.npy").tolist()
    weights = np.load(lsi_root / "weights.npy")
    projection = np.load(lsi_root / "projection.npy")
    vectors = np.load(lsi_root / "vectors.npy")

    dictionary = Dictionary()
    dictionary.token2id = {w: i for i, w in enumerate(words)}
    dictionary.dfs = {i: 1 for i in range(len(words))}
    dictionary.num_docs = len(vectors)
    dictionary.save(str(out / "dictionary.gensim"))
    tfidf = TfidfModel(dictionary=dictionary)
    tfidf.idfs = dict(enumerate(weights.astype(float).tolist()))  # the store's IDF, not recomputed
    tfidf.save(str(out / "tfidf.gensim"))
    lsi = LsiModel(num_topics=projection.shape[1], id2word=dictionary.id2token or dict(enumerate(words)))
    lsi.num_terms = len(words)
    lsi.projection.u = projection.astype(np.float64)
    lsi.projection.s = np.ones(projection.shape[1])
    lsi.save(str(out / "lsi.gensim"))
    index = MatrixSimilarity([], num_features=projection.shape[1], corpus_len=0)
    index.index = np.ascontiguousarray(vectors, np.float32)
    index.save(str(out / "index.gensim"))

    db = sqlite3.connect(version / "docs.sqlite")
    articles = {str(row): {"id": doc_id, "url": url, "title": title}
                for row, doc_id, url, title in db.execute("SELECT row, id, url, title FROM docs ORDER BY row")}
    (out / "articles.json").write_text(json.dumps(articles))
    (out / "corpus").write_text(str(corpus_path(n)))
    (out / "done").write_text(version.name + "\n")  # prepared from this store version
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(prepare(int(arg)))
