"""Per-worker bounds on the serving path: what a repeat request may skip (PageCache), one fetch per
page at a time (SingleFlight), and how many requests may wait on slow work (Slots: page fetches,
event reads)."""

import contextlib
import copy
import sys
import threading

from cachetools import TTLCache

from .errors import ApiError

# The memory of the fetched articles and of their terms: at most URL_CACHE_SIZE times these (32 MB
# and 8 MB a worker at the default 512), a smaller entry counted as this much (PageCache). A text
# is kept up to MAX_TEXT_CHARS, and Python keeps a string with one emoji in it at 4 bytes a
# character: 512 such articles had been 200 MB a worker, for URL_CACHE_TTL. An article's terms are
# 12 bytes a distinct word (~1,000 words: 12 KB).
ARTICLE_BYTES = 64 * 1024
TERMS_BYTES = 16 * 1024


def article_bytes(article):
    return (sys.getsizeof(article.text) + sys.getsizeof(article.title) + sys.getsizeof(article.canonical)
            + sys.getsizeof(article.summary))


def terms_bytes(terms):
    return terms.ids.nbytes + terms.counts.nbytes


class PageCache:
    """What a repeat request for a page may skip, in this process, bounded by
    URL_CACHE_SIZE entries and URL_CACHE_TTL seconds (0 for either: off); given
    ``weigh`` (a value's bytes), by URL_CACHE_SIZE times ``average`` bytes too:
    an entry counts as at least ``average`` (its key and its small value), so
    the entries stay at most URL_CACHE_SIZE: weighed alone, 300,000 empty ones
    of 2 KB keys had been kept, 790 MB.

    Per process on purpose: a hit must cost microseconds, and a shared cache
    would add a network round trip to every request; a page's later requests
    mostly reach the same few workers anyway."""

    def __init__(self, size, ttl, weigh=None, average=1):
        self.enabled = size > 0 and ttl > 0
        counted = (lambda value: max(average, weigh(value))) if weigh else None
        self._entries = TTLCache(maxsize=max(1, size) * (average if weigh else 1), ttl=ttl or 1, getsizeof=counted)
        self._lock = threading.Lock()

    def get(self, key):
        if not self.enabled:
            return None
        with self._lock:
            return self._entries.get(key)

    def put(self, key, value):
        if self.enabled:
            with self._lock:
                try:
                    self._entries[key] = value
                except ValueError:  # weighs more than the whole cache (URL_CACHE_SIZE=1): not kept
                    pass


class _Flight:
    __slots__ = ("done", "value", "error")

    def __init__(self):
        self.done, self.value, self.error = threading.Event(), None, None


class SingleFlight:
    """One run of a call per key at a time, in this process: callers arriving while it runs wait
    for it and share its outcome. A newly published page's widgets ask for it all at once;
    without this each of them would fetch the page from its site."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running = {}  # key -> _Flight

    def run(self, key, call):
        """(value, shared): ``call()``'s value, and whether another caller's run produced it. A
        shared failure is raised again as the ApiError it was (other faults: the callers retry)."""
        with self._lock:
            flight = self._running.get(key)
            leader = flight is None
            if leader:
                flight = self._running[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is None:
                return flight.value, True
            if isinstance(flight.error, ApiError):  # a copy: each raise gets a traceback of its own
                raise copy.copy(flight.error)
            return self.run(key, call)
        try:
            flight.value = call()
            return flight.value, False
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._running[key]
            flight.done.set()


class Slots:
    """At most ``limit`` requests of this process in one kind of slow work at a time; past it a
    request is refused at once (503 ``code``, ``Retry-After: 1``), so that a burst of them cannot
    take every thread from /healthz and from the requests that need no such work."""

    def __init__(self, limit, code, message):
        self.limit, self.code, self.message = limit, code, message
        self.waiting = 0
        self.refused = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def held(self):
        with self._lock:
            full = self.waiting >= self.limit
            if full:
                self.refused += 1
            else:
                self.waiting += 1
        if full:
            raise ApiError(self.message.format(limit=self.limit), status=503, code=self.code,
                           headers={"Retry-After": "1"})
        try:
            yield
        finally:
            with self._lock:
                self.waiting -= 1

    def status(self):
        return {"waiting": self.waiting, "limit": self.limit, "refused": self.refused}


def fetch_slots(limit):
    """Requests waiting on page fetches, leading one or waiting for another's (FETCH_CONCURRENCY):
    each holds its thread for up to FETCH_DEADLINE, a slow site or a stalled page's many readers."""
    return Slots(limit, "fetch_busy", "this worker already has {limit} requests waiting on page fetches "
                                      "(FETCH_CONCURRENCY); retry in a moment")


def stats_slots(threads, fetch_concurrency):
    """Requests reading the events for /stats or /dashboard (up to STATS_MAX_EVENTS, seconds each)."""
    # a burst of them had taken every thread, /healthz's too, for tens of seconds. With the page fetches'
    # slots they leave a thread free: 6 stalled fetches and 2 slow dashboards had held all 8 threads
    return Slots(max(1, min(threads // 4, threads - fetch_concurrency - 1)),
                 "stats_busy",
                 "this worker is already reading the events for {limit} /stats or /dashboard "
                 "requests; retry in a moment")
