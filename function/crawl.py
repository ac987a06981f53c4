"""The polite crawler: a website (its sitemaps, or a list of URLs) -> Records for the builder.

    sitemap index -> sitemaps (.xml, .xml.gz, plain text) -> page URLs (+ lastmod)
      -> robots.txt allows it? -> per-host rate limit and concurrency
      -> fetch (function.fetch: the serving fetcher, same rules) -> extract (function.extract)
      -> state on disk (one JSON line per page) -> Record or Skip, in listing order

Polite: robots.txt is honoured (its Crawl-delay too); each host gets at most
``rate`` request starts per second and ``per_host`` requests at a time;
transient failures (5xx, 408, 425, 429, timeouts, cut connections) are retried
with exponential backoff, and a host answering 429/503 is slowed down; other
4xx are not retried.

Resumable: each page is appended to ``STATE/pages.jsonl`` as soon as it is
fetched. A crawl started again with the same state folder reuses what is
there, and fetches a page again only when its sitemap ``lastmod`` is newer
than the copy, when the copy is older than ``max_age``, or when it failed
transiently last time. So the same command resumes an interrupted crawl and,
later, picks up what changed on the site (``python -m function.update``).
"""

import fcntl
import gzip
import io
import json
import os
import random
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import lxml.etree

from .errors import NOT_NOW_STATUSES, FetchError
from .extract import EXTRACTION_REVISION, decode_html, extract_article
from .fetch import USER_AGENT, FetchLimits, fetch_page
from .records import Record, Skip, is_url
from .urls import normalise_url

# sitemaps.org: a sitemap holds at most 50,000 URLs and 50 MB uncompressed.
SITEMAP_MAX_BYTES = 50 * 1024 * 1024
SITEMAP_MAX_URLS = 50_000
SITEMAP_MAX_DEPTH = 3  # index -> sitemap is the protocol; one more level is tolerated
SITEMAP_TYPES = frozenset({"application/xml", "text/xml", "application/gzip", "application/x-gzip",
                           "application/x-gzip-compressed", "application/octet-stream", "text/plain"})
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB
ROBOTS_TYPES = frozenset({"text/plain", "text/html", "application/octet-stream"})
MAX_SLOWDOWN_SECONDS = 60.0  # a host that keeps answering 429/503, or asks a longer Crawl-delay: one a minute

STATE_FILE = "pages.jsonl"
NO_TEXT = "no article text found on the page"


class CrawlError(ValueError):
    """The crawl cannot go on: its input cannot be read, or its state folder is busy.

    A ValueError, so the command lines report it as bad input."""


@dataclass(frozen=True)
class CrawlOptions:
    rate: float = 1.0  # request starts per second, per host
    per_host: int = 2  # requests in flight per host
    concurrency: int = 4  # fetching threads
    retries: int = 3  # further attempts after a transient failure
    backoff: float = 1.0  # seconds before the first retry, doubled after each
    max_backoff: float = 60.0
    max_pages: int = 0  # 0: every page listed
    max_age: float | None = None  # seconds: fetch again copies older than this (None: never for age alone)
    state: Path | None = None  # None: a crawl that keeps nothing on disk between runs
    sitemap_max_bytes: int = SITEMAP_MAX_BYTES
    limits: FetchLimits | None = None  # None: FetchLimits.from_env(os.environ), as serving does
    progress: bool = True

    def __post_init__(self):
        # named as the command line spells them, where they are given (the fields' names had been said)
        if not self.rate > 0:
            raise ValueError(f"--rate, the crawl's requests per second per host, must be above 0, not {self.rate}")
        for name in ("per_host", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        for name in ("retries", "max_pages"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"--{name.replace('_', '-')} cannot be negative, not {getattr(self, name)}")
        if not self.backoff >= 0:  # no option sets it: a caller of this class does
            raise ValueError(f"the crawl's backoff cannot be negative, not {self.backoff} seconds")
        if self.max_age is not None and not self.max_age >= 0:  # NaN too; seconds here, hours on the command line
            raise ValueError(f"--max-age cannot be negative, not {self.max_age / 3600:g} "
                             "(hours: 0 fetches every page again)")

    def fetch_limits(self):
        return self.limits if self.limits is not None else FetchLimits.from_env(os.environ)


@dataclass(frozen=True)
class Listed:
    """A page a sitemap (or a URL list) names."""

    url: str
    key: str  # normalised URL: the page's id
    lastmod: str | None = None  # ISO 8601, UTC


# -- failures ------------------------------------------------------------------------------------
class PageError(Exception):
    """A page that could be fetched but gives no article (not worth retrying)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def upstream_status(exc):
    """The HTTP status the page's server answered, when that is why ``exc`` was raised."""
    return getattr(exc, "upstream_status", None)


def is_transient(exc):
    """Worth trying again later: server errors, 408/425/429 (NOT_NOW_STATUSES), timeouts, connections cut."""
    if isinstance(exc, PageError):
        return False
    if getattr(exc, "code", "") in ("upstream_timeout", "upstream_unreachable", "fetch_failed"):
        return True
    status = upstream_status(exc)
    return status is not None and (status >= 500 or status in NOT_NOW_STATUSES)


# -- sitemaps ------------------------------------------------------------------------------------
def parse_lastmod(text):
    """A W3C datetime ("2024-05-01", "2024-05-01T10:00:00+02:00") as ISO 8601 UTC, or None."""
    try:
        moment = datetime.fromisoformat((text or "").strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def gunzip_capped(data, cap):
    """Decompress gzip ``data`` to at most ``cap`` bytes, every member of it (``cat a.gz b.gz`` is
    one gzip file); a bigger result is refused unread, and so is a stream cut short, which zlib
    reads without a word: a listing read in part would have --prune delete what it lacks. The
    gzip module reads members in buffered chunks: a loop of ours over 80,000 empty members had
    copied the rest of the input once for each (3 s for 1.6 MB)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
            out = unzipped.read(cap + 1)
    except EOFError:
        raise CrawlError("the gzip data ends before its stream does (cut off)") from None
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise CrawlError(f"corrupt gzip data: {exc}") from None
    if len(out) > cap:
        raise CrawlError(f"expands to more than {cap} bytes (the sitemap limit): refused")
    return out


def _local_name(element):
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _plain_text(element):
    """An element's text, or None when it holds markup (an unexpanded entity included)."""
    if len(element):
        return None
    return (element.text or "").strip()


def parse_sitemap(body, cap=SITEMAP_MAX_BYTES):
    """("urlset" | "sitemapindex", [(loc, lastmod)]) of a sitemap: XML, gzip'd XML, or plain text.

    XML is parsed without DTDs, entity expansion or network access, so a
    hostile sitemap can neither read local files nor blow up in memory.
    """
    if body[:2] == b"\x1f\x8b":
        body = gunzip_capped(body, cap)
    if len(body) > cap:
        raise CrawlError(f"larger than {cap} bytes (the sitemap limit)")
    if not body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):  # a text sitemap: one URL a line
        lines = (line.strip() for line in body.decode("utf-8", "replace").splitlines())
        # as in a list of URLs: "#" lines are comments; another line that is not a URL is listed as skipped
        return "urlset", [(line, None) for line in lines if line and not line.startswith("#")]
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                                  remove_comments=True, remove_pis=True)
    try:
        root = lxml.etree.fromstring(body, parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise CrawlError(f"not well-formed XML: {exc}") from None
    kind = _local_name(root)
    if kind not in ("urlset", "sitemapindex"):
        raise CrawlError(f"not a sitemap: the root element is <{kind or '?'}>, not <urlset> or <sitemapindex>")
    item = "url" if kind == "urlset" else "sitemap"
    entries = []
    for element in root:
        if _local_name(element) != item:
            continue
        fields = {_local_name(child): _plain_text(child) for child in element}
        entries.append((fields.get("loc") or "", parse_lastmod(fields.get("lastmod"))))  # "": listed as skipped
    return kind, entries


def _child_location(parent, loc):
    """Where a sitemap index entry points: a URL, or a file next to a local index."""
    if is_url(loc):
        return loc
    if is_url(parent):
        return urljoin(parent, loc)
    return str(Path(parent).parent / loc)


def _page_key(final_url, listed_key):
    """The key of the page a listed URL ended at, after its redirects."""
    try:
        return normalise_url(final_url)
    except ValueError:
        return listed_key


# -- robots.txt ----------------------------------------------------------------------------------
def site_of(url):
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


@dataclass
class SiteRules:
    parser: RobotFileParser
    unavailable: str = ""  # why robots.txt could not be read (then nothing is fetched from the site)

    def allows(self, url):
        return not self.unavailable and self.parser.can_fetch(USER_AGENT, url)

    def delay(self):
        """Seconds between requests the site asks for (Crawl-delay or Request-rate), or 0; at most
        MAX_SLOWDOWN_SECONDS: "Crawl-delay: 100000" had held a build of 8 pages for days, silently."""
        delay = self.parser.crawl_delay(USER_AGENT) or 0
        rate = self.parser.request_rate(USER_AGENT)
        if rate and rate.requests:
            delay = max(delay, rate.seconds / rate.requests)
        return min(float(delay), MAX_SLOWDOWN_SECONDS)


def reason_of(exc, url):
    """What went wrong at ``url``, said; a refused private address with the builder's way round it
    (the builder runs on its owner's machine, and a site on it or on its network is a common first
    try), naming its host as the setting takes it: as the URL writes it."""
    code = getattr(exc, "code", None)
    if code not in ("forbidden_address", "forbidden_port"):
        return getattr(exc, "message", None) or str(exc)
    # a port outside FETCH_PORTS is refused first: a site of one's own on :8001 is told the way round too
    port = " (or, for a public site, add its port to FETCH_PORTS)" if code == "forbidden_port" else ""
    return (f"{exc.message} To crawl a site on this machine or network, exempt its host: "
            f"FETCH_ALLOW_PRIVATE_HOSTS={urlsplit(url).netloc or 'host:port'} (for trying and testing){port}")


def read_robots(fetch, site):
    """Rules from a robots.txt fetched by ``fetch()`` (RFC 9309: 4xx = no rules, 5xx = stay out)."""
    parser = RobotFileParser()
    try:
        page = fetch()
    except FetchError as exc:
        status = upstream_status(exc)
        if status is not None and 400 <= status < 500:
            parser.allow_all = True
            return SiteRules(parser)
        parser.disallow_all = True
        if exc.code in ("forbidden_address", "forbidden_port"):  # the site's, not its robots.txt's
            return SiteRules(parser, unavailable=f"{exc.code.replace('_', ' ')} ({reason_of(exc, site)})")
        return SiteRules(parser, unavailable=f"robots.txt unavailable ({exc.message})")
    parser.parse(decode_html(page.body, page.charset or "utf-8").splitlines())
    return SiteRules(parser)


# -- politeness ----------------------------------------------------------------------------------
class Stopped(Exception):
    """The crawl was asked to stop (Ctrl-C) while a worker waited for its host's turn."""


class HostThrottle:
    """Per host: at most ``per_host`` requests in flight, request starts ``interval`` seconds apart."""

    def __init__(self, interval, per_host, stop=None):
        self.interval = interval
        self.per_host = per_host
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._next = {}  # host -> earliest start of its next request (monotonic seconds)
        self._slowed = {}  # host -> interval after the host asked us to slow down
        self._in_flight = {}

    def interval_for(self, host, asked=0.0):
        return max(self.interval, asked, self._slowed.get(host, 0.0))

    def reserve(self, host, asked=0.0):
        """The start time of the host's next request; the one after starts an interval later."""
        with self._lock:
            start = max(time.monotonic(), self._next.get(host, 0.0))
            self._next[host] = start + self.interval_for(host, asked)
            return start

    def slow_down(self, host):
        with self._lock:
            self._slowed[host] = min(MAX_SLOWDOWN_SECONDS, 2 * self.interval_for(host))

    @contextmanager
    def slot(self, host, asked=0.0):
        with self._lock:
            gate = self._in_flight.setdefault(host, threading.Semaphore(self.per_host))
        with gate:
            pause = self.reserve(host, asked) - time.monotonic()
            # a worker holds its host's turn for up to a Crawl-delay: a stop had waited for every one
            if self.stop.is_set() or (pause > 0 and self.stop.wait(pause)):
                raise Stopped()
            yield


# -- state on disk -------------------------------------------------------------------------------
class CrawlState:
    """What earlier crawls fetched: ``pages.jsonl``, one JSON line per page outcome, the latest wins.

    Lines are appended and flushed one by one, so an interrupted crawl loses at
    most the page being written (a torn last line is ignored). Only a summary
    per page stays in memory; texts are read back from the file by offset.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.folder / "lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise CrawlError(f"another crawl is using the state folder {self.folder}") from None
        self.path = self.folder / STATE_FILE
        self.pages = {}  # key -> (offset, length, summary)
        self._write_lock = threading.Lock()
        self._load()
        self._out = open(self.path, "ab")
        self._in = open(self.path, "rb")  # read back with os.pread: no shared offset between threads
        self._end = self.path.stat().st_size

    def _load(self):
        if not self.path.exists():
            return
        offset = 0
        with open(self.path, "rb") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                    key = entry["key"]
                except (ValueError, KeyError, TypeError):
                    entry = None
                if entry is not None and line.endswith(b"\n"):
                    self.pages[key] = (offset, len(line), _summary(entry))
                offset += len(line)
        if offset and not line.endswith(b"\n"):  # a line torn by an interruption: cut it off
            os.truncate(self.path, offset - len(line))

    def summary(self, key):
        found = self.pages.get(key)
        return None if found is None else found[2]

    def write(self, entry):
        line = json.dumps(entry, ensure_ascii=False).encode() + b"\n"
        with self._write_lock:
            self._out.write(line)
            self._out.flush()
            self.pages[entry["key"]] = (self._end, len(line), _summary(entry))
            self._end += len(line)

    def read(self, key):
        offset, length, _ = self.pages[key]
        return json.loads(os.pread(self._in.fileno(), length, offset))

    def close(self):
        self._out.close()
        self._in.close()
        self._compact()
        self._lock_file.close()  # releases the lock

    def _compact(self):
        """Rewrite the file without superseded lines once they make up most of it."""
        live = sum(length for _, length, _ in self.pages.values())
        if self._end < 1 << 20 or self._end < 2 * live:
            return
        staging = self.folder / (STATE_FILE + ".tmp")
        with open(self.path, "rb") as old, open(staging, "wb") as new:
            for offset, length, _ in sorted(self.pages.values()):
                old.seek(offset)
                new.write(old.read(length))
        os.replace(staging, self.path)


def _summary(entry):
    summary = {k: entry.get(k) for k in ("status", "transient", "lastmod", "fetched_at")}
    summary["older_extraction"] = entry.get("extraction", 0) < EXTRACTION_REVISION  # lines before it: 0
    summary["no_text"] = entry.get("reason") == NO_TEXT
    return summary


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def needs_fetch(listed, summary, max_age=None):
    """Whether a listed page must be fetched, given what the state holds about it."""
    if summary is None or summary.get("transient"):
        return True
    if summary.get("no_text") and summary.get("older_extraction"):  # a newer extraction may find it
        return True
    if listed.lastmod and (not summary.get("lastmod") or listed.lastmod > summary["lastmod"]):
        return True
    if max_age is not None:
        fetched = summary.get("fetched_at")
        now = datetime.now(timezone.utc)
        return not fetched or (now - datetime.fromisoformat(fetched)).total_seconds() > max_age
    return False


# -- the crawl -----------------------------------------------------------------------------------
class SiteCrawl:
    """A crawl source: iterate it for Records and Skips (pages that failed, with the reason).

    ``inputs`` are sitemap URLs or files (kind "sitemap") or files of URLs, one a
    line (kind "urls"). ``prepare()`` lists and fetches; iterating prepares first.
    After preparing, ``listing_complete`` says whether every sitemap was read
    (an update deletes pages missing from the listing only when it was).
    """

    def __init__(self, inputs, kind="sitemap", options=CrawlOptions()):
        if kind not in ("sitemap", "urls"):
            raise ValueError(f"unknown crawl input kind {kind!r}")
        self.inputs = [str(i) for i in inputs]
        self.kind = kind
        self.options = options
        self.limits = options.fetch_limits()
        self._stop = threading.Event()
        self.throttle = HostThrottle(1.0 / options.rate, options.per_host, self._stop)
        self.listed = []  # Listed, in listing order, one per key
        self.listing_skips = []  # Skips met while listing (bad URLs, sitemaps that failed)
        self.listing_complete = True
        self.counts = {}
        self._robots = {}
        self._robots_lock = threading.Lock()
        self._prepared = False
        self._outcomes = {}  # key -> entry, when there is no state folder
        self._state = None

    # -- fetching with retries --------------------------------------------------------------
    def fetch(self, url, limits, asked_delay=0.0):
        """fetch_page within the host's politeness limits, retried with backoff when transient."""
        host = site_of(url)
        for attempt in range(self.options.retries + 1):
            with self.throttle.slot(host, asked_delay):
                try:
                    return fetch_page(url, limits)
                except FetchError as exc:
                    error = exc
            if not is_transient(error) or attempt == self.options.retries or self._stop.is_set():
                raise error
            if upstream_status(error) in (429, 503):
                self.throttle.slow_down(host)
            pause = min(self.options.max_backoff, self.options.backoff * 2 ** attempt)
            self._stop.wait(pause * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def rules(self, url):
        site = site_of(url)
        with self._robots_lock:
            found = self._robots.get(site)
            if found is None:
                limits = replace(self.limits, content_types=ROBOTS_TYPES,
                                 max_bytes=min(self.limits.max_bytes, ROBOTS_MAX_BYTES))
                found = self._robots[site] = read_robots(lambda: self.fetch(site + "/robots.txt", limits), site)
        return found

    # -- listing ----------------------------------------------------------------------------
    def _add(self, url, lastmod, where, seen):
        if self.options.max_pages and len(self.listed) >= self.options.max_pages:
            self.listing_complete = False
            return
        # unread: which page these entries meant is unknown, so an update does not prune for them
        if not url:
            self.listing_skips.append(Skip(where, "an entry without a <loc>", unread=True))
            return
        try:
            if not is_url(url):
                raise ValueError(url)
            key = normalise_url(url)
        except ValueError:
            self.listing_skips.append(Skip(where, f"not an http(s) URL: {url[:200]}", unread=True))
            return
        if key in seen:
            index = seen[key]
            if lastmod and (self.listed[index].lastmod or "") < lastmod:
                self.listed[index] = replace(self.listed[index], lastmod=lastmod)
            self.listing_skips.append(Skip(where, f"listed before, as {self.listed[index].url[:200]}: read once"))
            return
        seen[key] = len(self.listed)
        self.listed.append(Listed(url, key, lastmod))

    def _sitemap_body(self, location):
        if is_url(location):
            limits = replace(self.limits, content_types=SITEMAP_TYPES, max_bytes=self.options.sitemap_max_bytes)
            return self.fetch(location, limits).body
        with open(location, "rb") as f:
            body = f.read(self.options.sitemap_max_bytes + 1)
        if len(body) > self.options.sitemap_max_bytes:
            raise CrawlError(f"larger than {self.options.sitemap_max_bytes} bytes (the sitemap limit)")
        return body

    def _read_sitemap(self, location, seen, visited, depth=0):
        if location in visited:
            return
        visited.add(location)
        try:
            kind, entries = parse_sitemap(self._sitemap_body(location), self.options.sitemap_max_bytes)
        except (FetchError, CrawlError, OSError) as exc:
            reason = reason_of(exc, location)
            if depth == 0:
                raise CrawlError(f"cannot read the sitemap {location}: {reason}") from None
            self.listing_complete = False
            self.listing_skips.append(Skip(location, f"sitemap not read: {reason}"))
            return
        if len(entries) > SITEMAP_MAX_URLS:
            self.listing_skips.append(Skip(location, f"more than {SITEMAP_MAX_URLS} entries: the rest ignored"))
            entries = entries[:SITEMAP_MAX_URLS]
            self.listing_complete = False
        if kind == "urlset":
            for loc, lastmod in entries:
                self._add(loc, lastmod, location, seen)
            return
        if depth >= SITEMAP_MAX_DEPTH:
            self.listing_complete = False
            self.listing_skips.append(Skip(location, "sitemap indexes nested too deep: not followed"))
            return
        for loc, _ in entries:
            if not loc:  # which sitemap it meant is unknown: what the site lists is not known in full
                self.listing_complete = False
                self.listing_skips.append(Skip(location, "a sitemap index entry without a <loc>", unread=True))
                continue
            self._read_sitemap(_child_location(location, loc), seen, visited, depth + 1)

    def _read_url_list(self, path, seen):
        with open(path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                line = line.strip()
                if line and not line.startswith("#"):
                    self._add(line, None, f"{path} line {number}", seen)

    def list_pages(self):
        seen, visited = {}, set()
        for location in self.inputs:
            if self.kind == "sitemap":
                self._read_sitemap(location, seen, visited)
            else:
                self._read_url_list(location, seen)
        return self.listed

    # -- fetching pages -------------------------------------------------------------------
    def _crawl_page(self, listed, state):
        entry = {"key": listed.key, "url": listed.url, "lastmod": listed.lastmod}
        try:
            page = self.fetch(listed.url, self.limits, self.rules(listed.url).delay())
            if page.content_type == "text/plain":
                title, text = "", decode_html(page.body, page.charset).strip()
            else:
                article = extract_article(page.body, url=page.final_url, encoding=page.charset)
                # the record's text is what the builder indexes: the standfirst first, as a fetched page's (a brief's
                # standfirst alone too)
                title, text = article.title, article.words.strip()
            if not text:
                raise PageError(NO_TEXT)
            entry.update(status="ok", final_url=page.final_url, title=title, text=text)
        except (FetchError, PageError) as exc:
            entry.update(status="failed", reason=exc.message, transient=is_transient(exc))
        entry["extraction"] = EXTRACTION_REVISION
        entry["fetched_at"] = _now()
        if state is not None:
            state.write(entry)
        else:
            self._outcomes[listed.key] = entry
        return entry

    def _run_workers(self, todo, state):
        from tqdm import tqdm

        if not todo:
            return
        queue = iter(todo)
        queue_lock = threading.Lock()
        skipped = 0  # said as the summary says it: a listing page with no article is a skip, not a failure
        bar = tqdm(total=len(todo), desc="fetching", unit=" pages", disable=not self.options.progress,
                   file=sys.stderr)

        def work():
            nonlocal skipped
            while not self._stop.is_set():
                with queue_lock:
                    listed = next(queue, None)
                if listed is None:
                    return
                try:
                    entry = self._crawl_page(listed, state)
                except Stopped:  # not fetched, nor recorded: the next run fetches it
                    return
                with queue_lock:
                    if entry["status"] != "ok":
                        skipped += 1
                        bar.set_postfix(skipped=skipped, refresh=False)
                    bar.update()

        workers = [threading.Thread(target=work, daemon=True, name=f"crawl-{i}")
                   for i in range(min(self.options.concurrency, max(1, len(todo))))]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)  # short waits keep Ctrl-C responsive
        except BaseException:
            self._stop.set()  # workers finish the page in hand (bounded by the fetch deadline)
            for worker in workers:
                worker.join()
            raise
        finally:
            bar.close()

    def prepare(self):
        """List the pages and fetch those the state does not hold yet (once)."""
        if self._prepared:
            return
        self.list_pages()
        state = CrawlState(self.options.state) if self.options.state else None
        self._state = state
        try:
            todo, disallowed, unavailable, older = [], 0, 0, 0
            for listed in self.listed:
                rules = self.rules(listed.url)
                summary = state.summary(listed.key) if state else None
                if rules.unavailable:
                    unavailable += 1
                elif not rules.allows(listed.url):
                    disallowed += 1
                elif needs_fetch(listed, summary, self.options.max_age):
                    todo.append(listed)
                elif summary["status"] == "ok" and summary["older_extraction"]:
                    older += 1
            self.counts = {"listed": len(self.listed), "disallowed": disallowed, "robots_unavailable": unavailable,
                           "to_fetch": len(todo), "from_state": len(self.listed) - disallowed - unavailable - len(todo),
                           "older_extraction": older}
            if self.options.progress:
                print(f"crawl: {len(self.listed)} pages listed, {disallowed} disallowed by robots.txt"
                      + (f", {unavailable} on sites it cannot read (robots.txt unavailable, or a forbidden address)"
                         if unavailable else "")
                      + f", {self.counts['from_state']} already fetched, {len(todo)} to fetch", file=sys.stderr)
                if older:  # fetched again only when asked: a large site's crawl takes hours at its --rate
                    print(f"crawl: {older} of the pages already fetched were read by an older version's article "
                          "extraction and keep that text; --max-age 0 fetches and reads them again", file=sys.stderr)
            try:
                self._run_workers(todo, state)
            except KeyboardInterrupt:
                if state is not None:
                    print(f"crawl interrupted: run the same command again to resume from {state.folder}",
                          file=sys.stderr)
                raise
        except BaseException:
            if state is not None:
                state.close()
            raise
        self._prepared = True

    def _outcome(self, key):
        if self._state is None:
            return self._outcomes.get(key)
        return self._state.read(key) if key in self._state.pages else None

    def __iter__(self):
        self.prepare()
        if self._state is None and self.options.state:  # iterated once before: read the state again
            self._state = CrawlState(self.options.state)
        pages = {}  # the key of the page a listed URL ended at -> the listed URL whose record it is
        listed_keys = {listed.key for listed in self.listed}
        redirected = []  # (page, listed, record): a listed URL that ended at another listed page
        try:
            yield from self.listing_skips
            for listed in self.listed:
                rules = self.rules(listed.url)
                if rules.unavailable:
                    yield Skip(listed.url, rules.unavailable, id=listed.key, transient=True)
                    continue
                if not rules.allows(listed.url):
                    yield Skip(listed.url, "disallowed by robots.txt")
                    continue
                entry = self._outcome(listed.key)
                if entry is None:
                    yield Skip(listed.url, "not fetched", id=listed.key, transient=True)
                elif entry["status"] == "ok":
                    final_url = entry.get("final_url") or listed.url
                    target = self.rules(final_url) if final_url != listed.url else rules
                    if not target.allows(final_url):  # robots.txt is honoured at the end of a redirect too
                        yield Skip(listed.url, f"redirects to {final_url[:200]}, which robots.txt keeps out"
                                   + (f" ({target.unavailable})" if target.unavailable else ""),
                                   id=listed.key, transient=bool(target.unavailable))
                        continue
                    page = _page_key(final_url, listed.key)
                    record = Record(listed.key, final_url, entry.get("title") or final_url, entry["text"])
                    if page != listed.key and page in listed_keys:  # the page's own listing comes first
                        redirected.append((page, listed, record))
                        continue
                    if page in pages:  # two URLs, neither the page's own, that end at one page: the first
                        yield Skip(listed.url, f"the same page as {pages[page][:200]} (it ends at {final_url[:200]})",
                                   id=listed.key)
                        continue
                    pages[page] = listed.url
                    yield record
                else:
                    yield Skip(listed.url, entry["reason"], id=listed.key, transient=bool(entry.get("transient")))
            # a page read under its own URL keeps its own id, whatever the order of the listing; one that
            # failed there is kept under the URL that redirected to it
            for page, listed, record in redirected:
                if page in pages:
                    yield Skip(listed.url, f"redirects to {record.url[:200]}, which is listed too", id=listed.key)
                    continue
                pages[page] = listed.url
                yield record
        finally:
            if self._state is not None:
                self._state.close()
                self._state = None
