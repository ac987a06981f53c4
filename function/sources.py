"""Corpus sources for the builder: each yields ``Record``s or ``Skip``s, streaming.

A source never holds the corpus in memory; a record it cannot use becomes a
``Skip`` with a reason, so the builder can list what was left out and why.
"""

import bz2
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class Record:
    id: str
    url: str
    title: str
    text: str


@dataclass(frozen=True)
class Skip:
    where: str  # line number, file name or URL
    reason: str


def record_from_fields(fields, where):
    """A Record from a mapping with id/url/title/text, or a Skip saying what is wrong."""
    if not isinstance(fields, dict):
        return Skip(where, "not a JSON object")
    doc_id, url, title, text = (fields.get(k) for k in ("id", "url", "title", "text"))
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        return Skip(where, "missing id")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return Skip(where, "missing or non-http(s) url")
    if not isinstance(text, str) or not text.strip():
        return Skip(where, "empty text")
    if title is not None and not isinstance(title, str):
        return Skip(where, "title is not a string")
    return Record(doc_id.strip(), url.strip(), (title or "").strip() or url.strip(), text)


def read_jsonl(path):
    opener = bz2.open if str(path).endswith(".bz2") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
            except ValueError as exc:
                yield Skip(f"line {number}", f"bad JSON: {exc}")
                continue
            yield record_from_fields(fields, f"line {number}")


WIKIPEDIA = "https://en.wikipedia.org/wiki/"


def wikipedia_url(title):
    return WIKIPEDIA + quote(title.replace(" ", "_"), safe="/:(),'!*-._~")


def read_wikipedia_dump(path, min_words=50):
    """Articles of a MediaWiki XML dump (.xml.bz2), as plain text.

    Redirects and stubs under ``min_words`` words are skipped; ids are page ids
    and URLs point at English Wikipedia.
    """
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    with bz2.open(path) as dump:
        for title, markup, page_id in extract_pages(dump):
            if markup.lstrip().lower().startswith("#redirect"):
                yield Skip(title, "redirect")
                continue
            text = filter_wiki(markup)
            if len(text.split()) < min_words:
                yield Skip(title, f"fewer than {min_words} words")
                continue
            yield Record(str(page_id), wikipedia_url(title), title, text)


def detect_format(path):
    name = Path(path).name.lower()
    if ".xml" in name:  # dumps are named like enwiki-...-pages-articles1.xml-p10p30302.bz2
        return "wikidump"
    if name.endswith((".jsonl", ".jsonl.bz2", ".ndjson", ".json")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path}: give --format")


READERS = {"jsonl": read_jsonl, "wikidump": read_wikipedia_dump}


def open_source(path, fmt="auto"):
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise ValueError(f"unknown input format {fmt!r}; known: {', '.join(sorted(READERS))}")
    return READERS[fmt](path)
