"""Synthetic corpora of any size, for the benchmark: JSON lines the real builder reads.

    python -m bench.corpus --docs 1000000 --out bench/cache/corpus-1000000.jsonl

Words come from a real vocabulary, the tokens of the Wikipedia sample that
ships inside gensim (about 35k words), ranked by their frequency there:

- a document is about one or two topics; a topic is a Zipf distribution over
  its own random 5,000 words of the vocabulary, so the
  corpus has the cluster structure LSI and an ANN index meet in real text
  (pure noise would make every neighbour list arbitrary and flatter the
  exact search against any index);
- 60% of the words are drawn from the background Zipf law of the sample's own
  ranking ("the", "of", "and" ...), 40% from the document's topics;
- lengths are log-normal like encyclopaedia articles (median 350 words,
  mean about 650, clipped to 30..20000).

The output is deterministic per (seed, document block): the corpus of 10k
documents is the first 10k lines of the corpus of 1M.
"""

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

BLOCK = 10_000
TOPICS = 2_000
TOPIC_WORDS = 5_000
BACKGROUND_SHARE = 0.6
ZIPF_EXPONENT = 1.07
MEDIAN_WORDS, LENGTH_SIGMA = 350, 1.1
MIN_WORDS, MAX_WORDS = 30, 20_000
VOCAB_CACHE = Path(__file__).resolve().parent / "cache" / "vocabulary.txt"


def real_vocabulary():
    """The Wikipedia sample's tokens, most frequent first (cached: reading the dump takes ~10 s)."""
    if VOCAB_CACHE.exists():
        return VOCAB_CACHE.read_text().split()

    from function.records import Record
    from function.sources import open_source, wiki_sample_path
    from function.tokens import tokenize

    counts = collections.Counter()
    for record in open_source(wiki_sample_path()):
        if isinstance(record, Record):
            counts.update(tokenize(record.text))
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    VOCAB_CACHE.parent.mkdir(parents=True, exist_ok=True)
    VOCAB_CACHE.write_text("\n".join(words) + "\n")
    return words


def zipf_cdf(size, exponent=ZIPF_EXPONENT):
    p = 1.0 / np.arange(1, size + 1) ** exponent
    return np.cumsum(p / p.sum())


class Generator:
    def __init__(self, seed=7):
        self.seed = seed
        self.words = np.asarray(real_vocabulary())
        size = len(self.words)
        self.cdf = zipf_cdf(size)
        self.topic_cdf = zipf_cdf(min(TOPIC_WORDS, size))
        topics = np.random.default_rng([seed, 0])
        self.topic_orders = np.stack([topics.permutation(size)[:TOPIC_WORDS] for _ in range(TOPICS)]).astype(np.int32)

    def block(self, index, count):
        """``count`` documents of block ``index``: (ids, titles, texts)."""
        rng = np.random.default_rng([self.seed, 1, index])
        lengths = np.clip(rng.lognormal(np.log(MEDIAN_WORDS), LENGTH_SIGMA, count), MIN_WORDS, MAX_WORDS).astype(np.int64)
        first_topic = rng.integers(0, TOPICS, count)
        second_topic = np.where(rng.random(count) < 0.5, rng.integers(0, TOPICS, count), first_topic)
        total = int(lengths.sum())
        doc_of_word = np.repeat(np.arange(count), lengths)
        ranks = np.minimum(np.searchsorted(self.cdf, rng.random(total)), len(self.words) - 1)
        topic_ranks = np.minimum(np.searchsorted(self.topic_cdf, rng.random(total)), len(self.topic_cdf) - 1)
        topical = rng.random(total) >= BACKGROUND_SHARE
        topic = np.where(rng.random(total) < 0.5, first_topic[doc_of_word], second_topic[doc_of_word])
        word_ids = np.where(topical, self.topic_orders[topic, topic_ranks], ranks)
        words = self.words[word_ids]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        texts = [" ".join(words[bounds[i]:bounds[i + 1]].tolist()) for i in range(count)]
        titles = [" ".join(self.words[self.topic_orders[first_topic[i], :3]].tolist()).title() + f" {index * BLOCK + i}"
                  for i in range(count)]
        ids = [str(index * BLOCK + i) for i in range(count)]
        return ids, titles, texts

    def documents(self, n):
        for index in range((n + BLOCK - 1) // BLOCK):
            count = min(BLOCK, n - index * BLOCK)
            ids, titles, texts = self.block(index, count)
            for doc_id, title, text in zip(ids, titles, texts):
                yield {"id": doc_id, "url": f"https://docs.example.org/wiki/{doc_id}", "title": title, "text": text}


def write_corpus(n, out, seed=7):
    """Write ``n`` documents to ``out`` (via a temporary file: a half-written corpus never looks finished)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        for doc in Generator(seed).documents(n):
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    tmp.rename(out)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    write_corpus(args.docs, args.out, args.seed)
    print(f"wrote {args.docs} documents to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
