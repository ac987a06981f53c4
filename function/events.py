"""Request, click and view events, written to MongoDB off the request path (and marked as a
crawler's there: see crawlers).

Answers never wait on Mongo: events go into a bounded in-process buffer and a
background thread writes them in batches. While Mongo is down or slow they
wait in the buffer and are written when it returns; past the bound new events
are dropped and counted (the count is in /healthz and the log). On exit
(SIGTERM included) the buffer is flushed within EVENT_FLUSH_SECONDS.

Every event carries its own ``_id``, so a batch retried after a failure that
had in fact reached the server is not written twice.
"""

import atexit
import collections
import logging
import os
import random
import threading
import time
from datetime import datetime, timezone

from . import crawlers

log = logging.getLogger("related.events")

BATCH = 500
# The writer waits this long for a batch to gather: one round trip for many
# events costs the server's CPU far less than one per event.
LINGER_SECONDS = 0.05
# the largest event the server stores (hello's maxBsonObjectSize, read at the writer's connection):
# MongoDB's since 1.8, the events written before the first connection are held to it
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
PING_SECONDS = 0.5  # /healthz's wait for Mongo: a reachable server answers in milliseconds
# a check's answer is /healthz's for this long, and for every /healthz that comes while the next one runs: a
# flood of probes while Mongo hung had each wait PING_SECONDS, 8 of them holding all 8 threads
PING_REUSE_SECONDS = 1.0
# while reads of Mongo fail, OutageLog says so again at most this often (a dashboard polled every few
# seconds had logged one line a request)
OUTAGE_REMINDER_SECONDS = 60.0
# Mongo's refusals of MONGODB's user, which last until the password or the user's roles are mended: an
# outage, not one read's error (they had been logged once a read, a polled dashboard's line a request)
CREDENTIALS_REFUSED = {13: "Unauthorized", 18: "AuthenticationFailed"}
INDEXES = {
    # status first: /stats reads the newest answers (status 200) apart from the errors, and without it
    # MongoDB walks every newer error to find them
    "requests": [[("ts", 1)], [("corpus", 1), ("ts", 1)], [("status", 1), ("ts", 1)],
                 [("corpus", 1), ("status", 1), ("ts", 1)]],
    "clicks": [[("ts", 1)], [("corpus", 1), ("ts", 1)], [("request_id", 1)]],
    "views": [[("ts", 1)], [("corpus", 1), ("ts", 1)]],
}


def new_event_id():
    """A unique id for an event (and its request): 96 random bits as hex.

    Unique, not secret: click links carry it signed, and the answer shows it. So not
    ``secrets``, which reads the kernel's random source and releases the GIL for it on every
    request (see store.GIL_FREE_SIZE); ``random`` is seeded from that source in each process,
    gunicorn's forked workers included (it seeds itself again after a fork)."""
    return f"{random.getrandbits(96):024x}"


def new_event(**fields):
    """An event with its head, the same on every kind: a new ``_id`` and ``ts``, now."""
    return {"_id": new_event_id(), "ts": datetime.now(timezone.utc), **fields}


def _rejected():
    # a write error the server returns is _write's (a BulkWriteError, caught there, event by event):
    # here only what is refused before a batch is sent (DocumentTooLarge is an InvalidDocument; _stored
    # drops an event past the server's limit first, so only one past a smaller limit than MongoDB's, in
    # a batch encoded before the first connection, gets here)
    from pymongo.errors import InvalidDocument

    return (InvalidDocument,)


def error_kind(last_error):
    """Of an EventLog's ``last_error`` ("ServerSelectionTimeoutError: host:port: ..."), the kind
    alone: pymongo's message names the Mongo hosts, which are not anyone's to read."""
    return last_error.partition(":")[0] if last_error else last_error


def connect(uri, timeout_ms=2000):
    """A MongoClient and its database (the one the URI's path names, else "related")."""
    import pymongo
    from pymongo.errors import ConfigurationError

    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                                     socketTimeoutMS=max(timeout_ms, 5000), appname="related-content",
                                     tz_aware=True)
    except ValueError as exc:  # pymongo's word for some malformed URIs (a port out of range)
        raise ConfigurationError(f"MONGODB is not a valid MongoDB URI: {exc}") from None
    return client, client.get_default_database(default="related")


def uri_hosts(uri):
    """The host list of a MongoDB URI, as logs may name it: what follows its last "@" (a password
    may hold an unescaped "/", which pymongo refuses but a log must not show) up to the path."""
    return uri.partition("://")[2].rpartition("@")[2].split("/", 1)[0].split("?", 1)[0]


def uri_problem(uri):
    """Why ``uri`` cannot be a MongoDB connection string, or "" (a quick look, without pymongo:
    it is not imported before the first event, for the cold start)."""
    scheme, sep, _ = uri.partition("://")
    if not sep or scheme not in ("mongodb", "mongodb+srv"):
        return "is not a mongodb:// or mongodb+srv:// URI"
    hosts = uri_hosts(uri)
    if not hosts:
        return "names no host"
    for host in hosts.split(","):
        tail = host.rpartition("]")[2]  # after an IPv6 literal's brackets
        port = tail.rpartition(":")[2] if ":" in tail else ""
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            return f"has a port that is not one ({port[:20]})"
    return ""


def credentials_refused(exc):
    """Whether ``exc`` is Mongo refusing MONGODB's user (CREDENTIALS_REFUSED)."""
    from pymongo.errors import OperationFailure  # loaded by the operation that raised it

    return isinstance(exc, OperationFailure) and exc.code in CREDENTIALS_REFUSED


def failure_kind(exc):
    """A failed Mongo operation's kind as logs name it: the exception's class (its text is pymongo's whole
    topology, 500+ characters, hosts and all), and the refusal of a user ("OperationFailure
    (AuthenticationFailed)"), which a wrong password in MONGODB gives."""
    kind = exc.__class__.__name__
    return f"{kind} ({CREDENTIALS_REFUSED[exc.code]})" if credentials_refused(exc) else kind


class OutageLog:
    """The log of failed reads (/stats, /dashboard), a process's. While Mongo is unreachable (or, a
    MONGODB that is no URI, never reachable; or its user is refused, CREDENTIALS_REFUSED): a warning at
    the first failure, naming Mongo's hosts and the error's kind, a reminder at most every
    OUTAGE_REMINDER_SECONDS with the requests refused since the last line, and one line when a read
    succeeds again; one line a refused request had filled the log of an instance whose dashboard was
    polled. An error Mongo answers with (a query's time limit) is that read's: a line each."""

    def __init__(self, uri):
        hosts = uri_hosts(uri or "")
        # what the lines name: "MongoDB at " and nothing had been said of a MONGODB that names no host
        self.where = f"MongoDB at {hosts}" if hosts else "MONGODB, which names no host (warned at start)"
        self._lock = threading.Lock()  # a worker's threads fail at once
        self._since = None  # time.monotonic() of the run's first failure, None while reads succeed
        self._said = 0.0  # when the last line was logged
        self._refused = 0  # refused since the last line

    def failed(self, exc):
        from pymongo.errors import ConfigurationError, ConnectionFailure  # loaded by the read that failed

        kind = failure_kind(exc)
        if not (credentials_refused(exc) or isinstance(exc, (ConnectionFailure, ConfigurationError))):
            log.warning("figures unavailable: %s: %s", self.where, kind)
            return
        now = time.monotonic()
        with self._lock:  # logged under it too: a warning and the line of the recovery in their order
            if self._since is None:
                self._since = self._said = now
                self._refused = 0
                log.warning("figures unavailable: %s: %s", self.where, kind)
                return
            self._refused += 1
            if now - self._said < OUTAGE_REMINDER_SECONDS:
                return
            log.warning("figures still unavailable: %s: %s for %d s, %d requests refused since the "
                        "last line", self.where, kind, now - self._since, self._refused)
            self._said, self._refused = now, 0

    def succeeded(self):
        if self._since is None:  # the common case, without the lock (checked again under it)
            return
        with self._lock:
            if self._since is None:
                return
            log.info("figures available again: %s answered after %d s, %d requests refused since the "
                     "last line", self.where, time.monotonic() - self._since, self._refused)
            self._since = None


class EventLog:
    def __init__(self, uri, capacity=10_000, flush_seconds=5.0):
        self.uri = uri
        self.capacity = capacity
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self.written = 0
        self.last_error = None
        self.max_document_bytes = MAX_DOCUMENT_BYTES
        self._buffer = collections.deque()
        self._cond = threading.Condition()
        self._pid = None  # the writer thread and client belong to one process (gunicorn forks)
        self._db = None
        self._writing = 0
        self._flushing = False
        self._checks = threading.Condition()  # reachable(): one Mongo check at a time
        self._checking = False
        self._checked = None  # (answered, time.monotonic() when it finished) of the last check
        if not uri:
            log.warning("MONGODB is not set: request and click events are counted but not stored")
        elif problem := uri_problem(uri):  # said at start: a typo had been silent until the first event
            log.warning("MONGODB %s: events will not be stored (they are kept in a buffer of %d, then dropped) "
                        "and /stats answers 503", problem, capacity)

    # -- producer side (request threads) ---------------------------------
    def record(self, collection, event):
        if not self.uri:
            self.dropped += 1
            return
        with self._cond:
            if len(self._buffer) + self._writing >= self.capacity:  # the batch being retried counts too
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.error("event buffer full (%d): %d events dropped so far", self.capacity, self.dropped)
                return
            self._buffer.append((collection, event))
            self._ensure_writer()
            if len(self._buffer) in (1, BATCH):  # the writer sleeps until there is work or a full batch
                self._cond.notify()

    def _ensure_writer(self):
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._db = None
            threading.Thread(target=self._run, name="event-writer", daemon=True).start()
            atexit.register(self._exit)

    @property
    def pending(self):
        return len(self._buffer) + self._writing

    def flush(self, timeout=None):
        """Wait until every buffered event is written, or ``timeout`` seconds."""
        deadline = time.monotonic() + (self.flush_seconds if timeout is None else timeout)
        with self._cond:
            self._flushing = True
            self._cond.notify_all()
            try:
                while self.pending and self._pid == os.getpid():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        log.error("exit with %d events not written (Mongo unreachable)", self.pending)
                        return False
                    self._cond.wait(min(remaining, 0.1))
            finally:
                self._flushing = False
        return True

    def _exit(self):
        """At the process's exit (a worker's SIGTERM included): the last events written, and said so,
        since an operator stopping an instance wants to know that nothing was lost."""
        if self._pid != os.getpid():
            return
        if self.flush():
            log.info("process %d exiting: %d events written, none waiting (%d dropped)", os.getpid(), self.written,
                     self.dropped)

    # -- writer thread ------------------------------------------------------
    def _run(self):
        backoff = 0.2
        while True:
            with self._cond:
                while not self._buffer:
                    self._cond.wait()
                linger_until = time.monotonic() + LINGER_SECONDS
                while len(self._buffer) < BATCH and not self._flushing:
                    remaining = linger_until - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
                self._writing = len(batch)
            batch = self._stored(batch)
            try:
                refused = self._write(batch)
            except _rejected() as exc:  # refused before they were sent (a document too large): no retry can help
                log.error("MongoDB rejected %d events: %s", len(batch), exc)
                with self._cond:
                    self._writing = 0
                    self.dropped += len(batch)
                    self._cond.notify_all()
                continue
            except Exception as exc:  # unreachable, slow, failing over: keep the events, retry later
                with self._cond:
                    self._buffer.extendleft(reversed(batch))
                    self._writing = 0
                if self.last_error is None:
                    log.warning("MongoDB unavailable (%s); buffering events", failure_kind(exc))
                self.last_error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if refused:  # the first one's reason: a batch's hundreds of write errors would flood the log
                log.error("MongoDB refused %d of %d events, dropped (%s)", len(refused), len(batch),
                          str(refused[0].get("errmsg"))[:200])
            with self._cond:
                self._writing = 0
                self.written += len(batch) - len(refused)
                self.dropped += len(refused)
                self._cond.notify_all()
            if self.last_error is not None:
                log.warning("MongoDB is back; events written again (%d waiting)", len(self._buffer))
                self.last_error = None
            backoff = 0.2

    def _write(self, batch):
        """Insert ``batch``; the write errors of the events the server refused (no duplicate: a
        duplicate is an event a failed attempt had written after all). A refused event costs no other:
        the rest of its collection's events are written (unordered) and the other collections' too."""
        from pymongo.errors import BulkWriteError

        if self._db is None:
            client, db = connect(self.uri)
            try:
                for name, indexes in INDEXES.items():
                    for keys in indexes:
                        db[name].create_index(keys)
            except Exception:
                client.close()  # the next attempt connects afresh: no client per retry left behind
                raise
            self._db = db
            # every server of the deployment is known once the indexes are made: the smallest limit
            limits = [server.max_bson_size for server in client.topology_description.server_descriptions().values()
                      if server.is_server_type_known]
            self.max_document_bytes = min(limits, default=MAX_DOCUMENT_BYTES)
        by_collection = collections.defaultdict(list)
        for collection, event in batch:
            by_collection[collection].append(event)
        refused = []
        for collection, events in by_collection.items():
            try:
                self._db[collection].insert_many(events, ordered=False)
            except BulkWriteError as exc:
                refused += [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
        return refused

    def _stored(self, batch):
        """``batch`` as it is stored, once (a batch retried keeps it): each event marked
        (crawlers.mark, here, off the request path) and encoded to the BSON insert_many sends. An
        event that has none (a lone surrogate, an integer past 64 bits) is dropped, counted and
        logged on its own: it had failed its whole batch, at every retry."""
        import bson
        from bson.raw_bson import RawBSONDocument

        stored = []
        for collection, event in batch:
            if not isinstance(event, RawBSONDocument):
                try:
                    crawlers.mark(collection, event)
                except Exception:  # a fault of ours: the event is kept, unmarked (a reader's), not lost
                    log.exception("a %s event could not be read for crawlers; stored unmarked", collection)
                    event.pop("user_agent", None)
                try:
                    event = RawBSONDocument(bson.encode(event))
                except (bson.errors.InvalidDocument, UnicodeEncodeError, OverflowError) as exc:
                    self._drop_one()
                    log.error("a %s event cannot be stored, dropped (%s: %s)", collection, exc.__class__.__name__,
                              str(exc)[:200])
                    continue
            # checked on every attempt: a retry after the first connection knows the server's own limit.
            # Sent, one past 48 MB had pymongo refuse its whole batch, a smaller one the server refuse it
            if len(event.raw) > self.max_document_bytes:
                self._drop_one()
                log.error("a %s event of %s bytes is past the server's largest document (%s bytes, "
                          "maxBsonObjectSize), dropped", collection, f"{len(event.raw):,}",
                          f"{self.max_document_bytes:,}")
                continue
            stored.append((collection, event))
        return stored

    def _drop_one(self):
        """One event of the batch being written dropped, alone: counted, and no longer pending."""
        with self._cond:
            self.dropped += 1
            self._writing -= 1

    def database(self):
        """This process's client for reads (stats, health), or None without MONGODB."""
        if not self.uri:
            return None
        if getattr(self, "_reader_pid", None) != os.getpid():
            self._reader = connect(self.uri, timeout_ms=1500)[1]
            self._reader_pid = os.getpid()
        return self._reader

    def ping(self):
        """Whether Mongo answers, within PING_SECONDS: a hung or refusing server must not hold
        /healthz, whose liveness probes time out (Kubernetes' default: 1 s)."""
        import pymongo

        try:
            db = self.database()  # a malformed MONGODB fails here: "down", not a 500
            if db is None:
                return False
            # pymongo's monitors found every server down at their last check: said at once, since
            # a server selection waits in steps of half a second and took 1 s within timeout(0.5)
            servers = db.client.topology_description.server_descriptions().values()
            if servers and all(server.error is not None for server in servers):
                return False
            with pymongo.timeout(PING_SECONDS):
                return bool(db.command("ping"))
        except Exception:
            return False

    def reachable(self):
        """(whether Mongo answers, seconds since that was checked), for /healthz: ping() once at a time, its
        answer reused for PING_REUSE_SECONDS and given at once to every caller that comes while a check
        runs. Only the callers before the first check's answer wait on it (PING_SECONDS at most)."""
        with self._checks:
            while True:
                checked = self._checked
                if checked and (self._checking or time.monotonic() - checked[1] < PING_REUSE_SECONDS):
                    return checked[0], time.monotonic() - checked[1]
                if not self._checking:
                    break
                self._checks.wait()  # the first check: there is no answer to give yet
            self._checking = True
        answered = False
        try:
            answered = self.ping()
        finally:
            with self._checks:
                self._checked = (answered, time.monotonic())
                self._checking = False
                self._checks.notify_all()
        return answered, 0.0

    def status(self):
        return {"buffered": self.pending, "dropped": self.dropped, "written": self.written,
                "last_error": self.last_error, "capacity": self.capacity}
