"""Relevance judgements derived from data that ships inside gensim (nothing is downloaded).

Two evaluations, each a corpus to build a store from plus, for some of its
documents (the queries), graded judgements of the other documents:

``wiki``  gensim's English Wikipedia sample, the default corpus (106 articles).
          B is relevant to A when an editor tied them: A links to B or B links
          to A (links through the dump's redirect pages are followed), or they
          share a topical category (two countries, two philosophers, both
          Apollo missions). Both link directions count because "related" is
          symmetric and links often go one way only (a narrow article links
          the broad one, not back); categories add the sibling relations links
          miss. Maintenance categories ("Articles
          containing video clips", "Living people", ...) say nothing about the
          topic and are ignored. Gains are binary. Articles with no judged
          neighbour are not queries.

``lee``   the Lee, Pincombe & Welsh (2005) corpus: 50 news articles whose 1,225
          pairs were rated 1..5 by people (gensim ships the mean rating scaled
          to 0.2..1 in similarities0-1.txt), plus the 300 background news
          articles gensim ships beside them for training. The store holds all
          350; only the 50 rated articles are queries and candidates. Gain = (rating - 0.2) / 0.8; "relevant" (for
          precision) = mean rating >= 0.5, which leaves 48 queries with 1-16
          relevant articles each (6.0 on average). Unlike the link graph, these
          judgements come from readers, not from the text itself.
"""

import bz2
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from function.records import Record
from function.sources import read_wikipedia_dump, wiki_sample_path

LEE_THRESHOLD = 0.5

LINK = re.compile(r"\[\[\s*([^\]\|#]+?)\s*(?:#[^\]\|]*)?(?:\|[^\]]*)?\]\]")
CATEGORY = re.compile(r"^\s*category\s*:\s*(.+)$", re.IGNORECASE)
MAINTENANCE_CATEGORY = re.compile(
    r"^(articles |all |pages |wikipedia|cs1 |webarchive|use |living people$|world digital library related$)",
    re.IGNORECASE,
)


@dataclass
class Evaluation:
    name: str
    records: list  # the whole corpus, as the builder takes it
    judgements: dict  # query id -> {candidate id: gain > 0}
    candidates: frozenset = None  # ids a query may be answered with (None: every document)
    human: dict = field(default_factory=dict)  # (id, id) -> human similarity, for correlations
    min_relevant_gain: float = 1.0  # a gain at least this counts as relevant (precision)
    note: str = ""


def gensim_data(name):
    from gensim.test.utils import datapath

    return Path(datapath(name))


def _title(text):
    text = text.strip().replace("_", " ")
    return text[:1].upper() + text[1:]


def wiki_evaluation(path=None):
    from gensim.corpora.wikicorpus import extract_pages

    path = path or wiki_sample_path()
    records = [r for r in read_wikipedia_dump(path) if isinstance(r, Record)]
    by_title = {r.title: r.id for r in records}
    with bz2.open(path) as dump:
        pages = [(title, markup) for title, markup, _ in extract_pages(dump)]

    redirects = {}
    for title, markup in pages:
        if markup.lstrip().lower().startswith("#redirect"):
            target = LINK.search(markup)
            if target:
                redirects[_title(title)] = _title(target.group(1))

    links, categories = {}, {}
    for title, markup in pages:
        if title not in by_title:
            continue
        doc = by_title[title]
        links[doc], categories[doc] = set(), set()
        for target in LINK.findall(markup):
            category = CATEGORY.match(target)
            if category:
                name = category.group(1).strip()
                if not MAINTENANCE_CATEGORY.match(name):
                    categories[doc].add(name.lower())
                continue
            target = _title(target)
            target = redirects.get(target, target)
            if target in by_title and by_title[target] != doc:
                links[doc].add(by_title[target])

    related = {doc: set(targets) for doc, targets in links.items()}
    for doc, targets in links.items():
        for target in targets:
            related[target].add(doc)
    for a in categories:
        for b in categories:
            if a != b and categories[a] & categories[b]:
                related[a].add(b)
    judgements = {doc: {other: 1.0 for other in sorted(others)} for doc, others in related.items() if others}
    return Evaluation(
        "wiki", records, judgements,
        note=f"{len(records)} articles, {len(judgements)} queries, "
             f"{np.mean([len(j) for j in judgements.values()]):.1f} related articles per query "
             "(links either way + shared topical categories)",
    )


def _lee_records(name, prefix):
    lines = gensim_data(name).read_text(encoding="latin-1").splitlines()
    texts = [line.strip() for line in lines if line.strip()]
    return [Record(f"{prefix}{i}", f"https://lee.example.org/{prefix}{i}", " ".join(t.split()[:8]), t)
            for i, t in enumerate(texts)]


def lee_evaluation():
    background = _lee_records("lee_background.cor", "bg")
    rated = _lee_records("lee.cor", "lee")
    upper = np.loadtxt(gensim_data("similarities0-1.txt"))
    human = np.triu(upper, 1) + np.triu(upper, 1).T  # the file holds the upper triangle
    ids = [r.id for r in rated]
    judgements, pairs = {}, {}
    for i, a in enumerate(ids):
        gains = {b: float((human[i, j] - 0.2) / 0.8) for j, b in enumerate(ids) if j != i and human[i, j] > 0.2}
        if any(human[i, j] >= LEE_THRESHOLD for j in range(len(ids)) if j != i):
            judgements[a] = gains
        for j in range(i + 1, len(ids)):
            pairs[(a, ids[j])] = float(human[i, j])
    return Evaluation(
        "lee", background + rated, judgements, candidates=frozenset(ids), human=pairs,
        min_relevant_gain=(LEE_THRESHOLD - 0.2) / 0.8 - 1e-9,
        note=f"{len(rated)} rated + {len(background)} background news articles, {len(judgements)} queries, "
             f"relevant = mean human rating >= {LEE_THRESHOLD}",
    )


EVALUATIONS = {"wiki": wiki_evaluation, "lee": lee_evaluation}
