"""Corpus sources for the builder: each yields ``Record``s or ``Skip``s, streaming.

A source never holds the corpus in memory; a record it cannot use becomes a
``Skip`` with a reason, so the builder can list what was left out and why.
"""

import bz2
import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin
from xml.etree.ElementTree import ParseError

from .fetch_policy import FetchLimits
from .records import Record, Skip, is_url, record_from_fields
from .urls import host_of, is_link, normalise_url

# The default corpus: the English Wikipedia sample in gensim's test data (installed with gensim,
# nothing is downloaded), with real titles and URLs.
WIKI_SAMPLE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def wiki_sample_path():
    """Where the installed gensim keeps the sample (gensim: a build-time dependency only)."""
    from gensim.test.utils import datapath

    return datapath(WIKI_SAMPLE)


def _read_to_the_end(path, items):
    """``items`` read from ``path``; ValueError naming the file when a compressed one ends early or is corrupt."""
    try:
        yield from items
    except (EOFError, OSError) as exc:  # bz2: "Compressed file ended before...", "Invalid data stream"
        raise ValueError(f"{path}: the file ends early or is corrupt ({exc})") from None


def read_jsonl(path):
    opener = bz2.open if str(path).endswith(".bz2") else open
    # utf-8-sig: an export's byte-order mark is not the first record's; surrogateescape: bytes that
    # are not UTF-8 reach record_from_fields, which skips the record or, in its text, replaces them
    with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape") as lines:
        for number, line in enumerate(_read_to_the_end(path, lines), 1):
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
            except ValueError as exc:
                where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
                yield Skip(f"line {number}", f"bad JSON{where}: {getattr(exc, 'msg', exc)}", unread=True)
                continue
            except RecursionError:
                yield Skip(f"line {number}", "bad JSON: nested too deeply", unread=True)
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
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki  # gensim: a build-time dependency only

    with bz2.open(path) as dump:
        try:
            for title, markup, page_id in _read_to_the_end(path, extract_pages(dump)):
                if markup.lstrip().lower().startswith("#redirect"):
                    yield Skip(title, "redirect")
                    continue
                text = filter_wiki(markup)
                if len(text.split()) < min_words:
                    yield Skip(title, f"fewer than {min_words} words")
                    continue
                yield Record(str(page_id), wikipedia_url(title), title, text)
        except ParseError as exc:
            raise ValueError(f"{path}: not a MediaWiki XML dump, or one that ends early ({exc})") from None


CSV_FIELDS = ("id", "url", "title", "text")


def parse_columns(spec):
    """"id=post_id,text=body" -> {"id": "post_id", "text": "body"}: our field -> the CSV's column."""
    mapping = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        field_name, sep, column = part.partition("=")
        if not sep or field_name.strip() not in CSV_FIELDS or not column.strip():
            raise ValueError(f"--columns: {part!r} is not FIELD=COLUMN with FIELD one of {', '.join(CSV_FIELDS)}")
        mapping[field_name.strip()] = column.strip()
    return mapping


class _TakenLines:
    """A file's lines as csv reads them, keeping those read since ``taken`` was last emptied."""

    def __init__(self, lines):
        self._lines = lines
        self.taken = []

    def __iter__(self):
        return self

    def __next__(self):
        line = next(self._lines)
        self.taken.append(line)
        return line


def read_csv(path, columns=None):
    """Rows of a CSV (or .tsv) file with a header: id,url,title,text, or the columns ``columns`` names."""
    mapped = columns or {}
    columns = {f: mapped.get(f, f) for f in CSV_FIELDS}
    csv.field_size_limit(max(csv.field_size_limit(), 64 << 20))  # article texts are longer than csv's 128 kB
    delimiter = "\t" if str(path).lower().endswith(".tsv") else ","
    # surrogateescape: as read_jsonl. csv reads the quirks of real exports as they were meant (a space
    # after a closing quote, "Weird Al" Yankovic, MySQL's \"); a row over several lines is checked.
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        lines = _TakenLines(f)
        rows = csv.DictReader(lines, delimiter=delimiter)
        try:
            missing = [c for f_, c in columns.items()
                       if (f_ != "title" or f_ in mapped) and c not in (rows.fieldnames or ())]
            if missing:
                raise ValueError(f"{path}: no column {', '.join(map(repr, missing))} in the header "
                                 f"{rows.fieldnames}; map them with --columns id=...,url=...,title=...,text=...")
            read, lines.taken = len(lines.taken), []
            for row in rows:
                taken, lines.taken = lines.taken, []
                blank = next(i for i, line in enumerate(taken) if line.strip("\r\n"))  # csv skips blank lines
                first, read = read + blank + 1, read + len(taken)
                where = f"line {first}"
                if len(taken) - blank > 1 and not _closes_its_quotes(path, "".join(taken[blank:]), delimiter, first):
                    yield Skip(f"lines {first} to {read}", "a quote that does not end where its cell should: csv "
                               "read these lines as one row, whatever rows they hold", unread=True)
                elif None in row:
                    yield Skip(where, "more cells than the header has columns", unread=True)
                elif None in row.values():  # a row cut short: not "empty text", which an update would prune by
                    yield Skip(where, "fewer cells than the header has columns", unread=True)
                else:
                    yield record_from_fields({f: row.get(c) for f, c in columns.items()}, where)
        except csv.Error as exc:  # a cell past the size limit
            raise ValueError(f"{path}, line {read + len(lines.taken)}: {exc}") from None


def _closes_its_quotes(path, text, delimiter, first):
    """Whether a row read over several lines reads the same way strictly; ValueError when a quote in
    it is never closed, so that csv read the rest of the file into one cell."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise ValueError(f"{path}: a quote opened on line {first} is never closed, so csv read the rest of "
                             "the file as one cell") from None
        return False
    return True


HTML_SUFFIXES = (".html", ".htm", ".xhtml")
HTML_MAX_BYTES = 10 << 20


def page_url_for(path, folder, base_url):
    """The URL a file of a published folder has: index.html stands for its folder."""
    relative = path.relative_to(folder).as_posix()
    if relative == "index.html" or relative.endswith("/index.html"):
        relative = relative[: -len("index.html")]
    return urljoin(base_url.rstrip("/") + "/", quote(relative))


def canonical_url(html):
    """The page's own idea of its address: <link rel=canonical>, else og:url (absolute http(s) only)."""
    import lxml.etree  # with extraction's jusText: loaded for the HTML readers only
    import lxml.html

    from .extract import canonical_of

    try:
        doc = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return ""
    return canonical_of(doc)


def read_html_folder(folder, base_url=None):
    """Articles of the HTML files under ``folder`` (a saved or generated site), extracted as serving does.

    A page's URL is ``base_url`` + its path when given, else its canonical link;
    its id is the normalised URL, as for crawled pages.
    """
    from .extract import decode_html, extract_article  # jusText and lxml: loaded for the HTML readers only

    if base_url and not is_link(base_url):
        raise ValueError(f"--base-url {base_url[:200]!r} is not an http(s) address such as https://example.com/blog")
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in HTML_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for path in files:
        where = str(path.relative_to(folder))
        if path.stat().st_size > HTML_MAX_BYTES:
            yield Skip(where, f"larger than {HTML_MAX_BYTES} bytes")
            continue
        body = path.read_bytes()
        html = decode_html(body, None)
        url = page_url_for(path, folder, base_url) if base_url else canonical_url(html)
        if not url:
            yield Skip(where, "no URL: give --base-url, or the page needs a <link rel=canonical>")
            continue
        try:
            doc_id = normalise_url(url)
        except ValueError:
            yield Skip(where, f"bad URL {url[:200]!r}")
            continue
        article = extract_article(html, url=url)
        if not article.words.strip():  # a brief's standfirst alone is its words, as a fetched page's
            yield Skip(where, "no article text found on the page")
            continue
        # its standfirst first, as a crawled page's record and a fetched page's words (Article.words)
        yield Record(doc_id, url, article.title.strip() or url, article.words.strip())



def detect_format(path):
    if is_url(path):
        return "sitemap"
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        return "html"
    if name.endswith(".bz2") and ".xml" in name:  # dumps are named like enwiki-...-pages-articles1.xml-p10p30302.bz2
        return "wikidump"
    if name.endswith((".xml", ".xml.gz")):
        return "sitemap"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".txt", ".urls")):
        return "urls"
    if name.endswith((".jsonl", ".jsonl.bz2", ".ndjson", ".json")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path}: give --format")


@dataclass(frozen=True)
class SourceSettings:
    """What the readers besides JSON lines need: CSV columns, a folder's base URL, the crawl."""

    columns: dict = None
    base_url: str = ""
    crawl: object = None  # function.crawl.CrawlOptions; None: its defaults, no state kept


def _crawl(kind):
    def open_crawl(path, settings):
        from .crawl import CrawlOptions, SiteCrawl  # not at the top: lxml, jusText and requests, for a crawl only

        return SiteCrawl([path], kind, settings.crawl or CrawlOptions())
    return open_crawl


READERS = {
    "jsonl": lambda path, settings: read_jsonl(path),
    "wikidump": lambda path, settings: read_wikipedia_dump(path),
    "csv": lambda path, settings: read_csv(path, settings.columns),
    "html": lambda path, settings: read_html_folder(path, settings.base_url or None),
    "sitemap": _crawl("sitemap"),
    "urls": _crawl("urls"),
}


def open_source(path, fmt="auto", settings=None):
    """An iterable of Record/Skip for one input: a file, a folder, or a sitemap URL."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise ValueError(f"unknown input format {fmt!r}; known: {', '.join(sorted(READERS))}")
    if not is_url(path) and not Path(path).exists():
        raise ValueError(f"no such input: {path}")
    return READERS[fmt](path, settings or SourceSettings())


def prepare_sources(sources):
    """Let the sources that crawl do so now, before the builder starts reading (one progress bar at a time)."""
    for source in sources:
        prepare = getattr(source, "prepare", None)
        if prepare is not None:
            prepare()


# -- command-line options shared by the builder and the updater ---------------------------------
INPUT_HELP = ("JSON lines (id, url, title, text); CSV/TSV; a folder of HTML files; a sitemap URL or file "
              "(sitemap index and .xml.gz included); a file of URLs, one a line (.txt); a MediaWiki .xml.bz2 "
              "dump; repeatable")


def add_source_arguments(parser):
    group = parser.add_argument_group("inputs besides JSON lines")
    group.add_argument("--format", default="auto", choices=["auto", *READERS],
                       help="input format (default: from the name; a URL is a sitemap)")
    group.add_argument("--columns", help="CSV columns to read, e.g. id=post_id,url=link,title=headline,text=body")
    group.add_argument("--base-url", help="HTML folder: the URL it is published at (else each page's canonical link)")
    group.add_argument("--state", type=Path,
                       help="crawl state folder (default: the corpus folder's .crawl): an interrupted crawl "
                            "resumes from it, "
                            "and a later one fetches only what changed")
    group.add_argument("--rate", type=float, default=1.0, help="crawl: requests per second per host (default %(default)s)")
    group.add_argument("--per-host", type=int, default=2, help="crawl: requests in flight per host (default %(default)s)")
    group.add_argument("--concurrency", type=int, default=4, help="crawl: fetching threads (default %(default)s)")
    group.add_argument("--retries", type=int, default=3,
                       help="crawl: retries after a 5xx, 408, 425, 429 or timeout, with exponential backoff (default %(default)s)")
    group.add_argument("--max-pages", type=int, default=0, help="crawl: at most this many pages (default: all)")
    group.add_argument("--max-age", type=float, metavar="HOURS",
                       help="crawl: fetch again pages fetched more than HOURS ago (default: only when the "
                            "sitemap's lastmod is newer)")


def source_settings(args, store_dir, progress=True):
    """SourceSettings from parsed arguments; the crawl state defaults to STORE_DIR/.crawl."""
    from .crawl import CrawlOptions  # not at the top: lxml, jusText and requests, for a crawl only

    def crawled(path):
        try:
            return (args.format if args.format != "auto" else detect_format(path)) in ("sitemap", "urls")
        except ValueError:
            return False

    limits = None
    if any(crawled(path) for path in args.input):  # the FETCH_* variables matter only to a crawl
        hosts = sorted({host_of(i) for i in args.input if is_url(i)})
        limits = FetchLimits.from_env(os.environ, corpus_domains=hosts)
    crawl = CrawlOptions(
        rate=args.rate, per_host=args.per_host, concurrency=args.concurrency, retries=args.retries,
        max_pages=args.max_pages, max_age=None if args.max_age is None else args.max_age * 3600,
        state=args.state or Path(store_dir) / ".crawl", progress=progress, limits=limits,
    )
    return SourceSettings(columns=parse_columns(args.columns), base_url=args.base_url or "", crawl=crawl)
