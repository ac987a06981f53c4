"""Faults and load, through a real `functions-framework` process.

- Mongo stopped for 30 s under load, then restarted: no answer fails, and once
  the event buffer has drained, Mongo holds exactly one `requests` event per
  answer served.
- The event buffer is bounded: past EVENT_BUFFER events are dropped and counted
  (in /healthz and the log); the kept ones are written when Mongo returns.
- A Mongo that accepts connections but does not answer (or answers slowly)
  never holds an answer back.
- SIGTERM while Mongo is away: the process still exits, saying what it lost.
- Load: LOAD_SECONDS (60) at concurrency 32, mixed queries, Mongo on: no error.

Figures (latency percentiles, requests/s, buffer high-water mark, drain time)
are printed and written to tests/out/*.json; nothing here asserts a speed.
"""

import json
import logging
import os
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pymongo
import pytest
import requests

from conftest import make_client, wait_for_events, with_database
from function import events as event_log
from function.devserver import free_port, start_embedded_mongo, stop
from function.store import StoreSet

OUT = Path(__file__).resolve().parent / "out"
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "30"))
TEXTS = [
    "moon landing astronaut", "greek philosophy and logic", "atlantic ocean currents", "alkali metals react",
    "abraham lincoln civil war", "ancient egypt pyramids", "film director cinema", "american football league",
    "chemical element atomic number", "roman empire emperor", "music album guitar band", "economics market prices",
    "the bible old testament", "mathematics algebra theorem", "animal species evolution", "computer programming language",
]


# --------------------------------------------------------------------------- helpers
def corpus_queries(model_store, n=40, seed=7):
    """A mixed list of GET params: texts, member ids, member URLs (no request made)."""
    store = StoreSet(model_store, 0).get("wiki")
    docs = store.docs(range(store.size))
    picked = random.Random(seed).sample(docs, min(n, len(docs)))
    queries = [{"text": text} for text in TEXTS]
    queries += [{"id": doc.id, "k": 3} for doc in picked[: n // 2]]
    queries += [{"url": doc.url, "k": 10} for doc in picked[n // 2:]]
    return queries


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def latency_figures(samples):
    ms = [s["ms"] for s in samples]
    return {"answers": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


class Load:
    """``concurrency`` threads, each with its own keep-alive session, asking until stopped."""

    def __init__(self, base, queries, concurrency):
        self.base = base
        self.queries = queries
        self.concurrency = concurrency
        self.answers = []  # {"t": start, "ms": latency, "request_id": ...}
        self.failures = []  # (what, detail)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def _worker(self, seed):
        order = random.Random(seed)
        with requests.Session() as session:
            while not self._stop.is_set():
                params = order.choice(self.queries)
                started = time.monotonic()
                try:
                    response = session.get(self.base, params=params, timeout=30)
                    elapsed = (time.monotonic() - started) * 1000
                    if response.status_code == 200:
                        sample = {"t": started, "ms": elapsed, "request_id": response.json()["request_id"]}
                        with self._lock:
                            self.answers.append(sample)
                        continue
                    failure = (params, f"{response.status_code} {response.text[:200]}")
                except requests.RequestException as exc:
                    failure = (params, repr(exc))
                with self._lock:
                    self.failures.append(failure)

    def start(self):
        self.started = time.monotonic()
        self._threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.concurrency)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        self.stopped = time.monotonic()
        return self

    def between(self, start, end):
        return [a for a in self.answers if start <= a["t"] < end]


def health(base):
    return requests.get(base + "/healthz", timeout=30).json()


def wait_drained(base, timeout=90):
    """Seconds until /healthz reports an empty event buffer (AssertionError after ``timeout``)."""
    started = time.monotonic()
    while True:
        events = health(base)["events"]
        if events["buffered"] == 0:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"event buffer not drained after {timeout} s: {events}"
        time.sleep(0.2)


def stored_request_ids(uri):
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        return [doc["_id"] for doc in client.get_default_database()["requests"].find({}, {"_id": 1})]
    finally:
        client.close()


def write_figures(name, figures):
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(figures)}")


# --------------------------------------------------------------------------- Mongo down for 30 s under load
def test_mongo_outage_under_load_loses_no_answer_and_no_event(function_process, model_store, tmp_path):
    port = free_port()
    data_dir = tmp_path / "mongo"
    mongo, uri = start_embedded_mongo(data_dir, port)
    uri = with_database(uri, "outage")
    # The buffer must hold the whole outage (about 30 s of answers).
    server = function_process(MONGODB=uri, EVENT_BUFFER="200000").wait_ready()
    high_water = {"buffered": 0}
    watching = threading.Event()

    def watch_buffer():  # the buffer's high-water mark, from /healthz
        while not watching.is_set():
            try:
                high_water["buffered"] = max(high_water["buffered"], health(server.base)["events"]["buffered"])
            except requests.RequestException:
                pass
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_buffer, daemon=True)
    load = Load(server.base, corpus_queries(model_store), concurrency=12).start()
    try:
        watcher.start()
        time.sleep(5)
        down_at = time.monotonic()
        stop(mongo)
        time.sleep(OUTAGE_SECONDS)
        during = health(server.base)
        mongo, _ = start_embedded_mongo(data_dir, port)
        up_at = time.monotonic()
        time.sleep(5)
    finally:
        load.stop()
        watching.set()
    try:
        assert load.failures == [], load.failures[:5]
        assert during["mongo"]["reachable"] is False and during["status"] == "degraded"
        assert during["events"]["dropped"] == 0
        drain_seconds = wait_drained(server.base)
        final = health(server.base)["events"]
        assert final["dropped"] == 0
        stored = stored_request_ids(uri)
        answered = [a["request_id"] for a in load.answers]
        assert len(stored) == len(set(stored)) == len(answered)
        assert set(stored) == set(answered)
        write_figures("outage", {
            "concurrency": 12, "outage_seconds": round(up_at - down_at, 1), "answers": len(answered),
            "failed_answers": len(load.failures), "requests_events_in_mongo": len(stored),
            "answered_during_outage": len(load.between(down_at, up_at)),
            "buffer_high_water": max(high_water["buffered"], during["events"]["buffered"]),
            "drain_seconds_after_load": round(drain_seconds, 2),
            "latency_before": latency_figures(load.between(load.started, down_at)),
            "latency_during": latency_figures(load.between(down_at, up_at)),
            "latency_after": latency_figures(load.between(up_at, load.stopped)),
        })
    finally:
        server.stop()
        stop(mongo)


# --------------------------------------------------------------------------- a bounded buffer
def test_full_buffer_drops_and_counts_then_writes_what_it_kept(function_process, tmp_path):
    port = free_port()
    uri = f"mongodb://127.0.0.1:{port}/overflow"
    server = function_process(MONGODB=uri, EVENT_BUFFER="5").wait_ready()
    answered = []
    for i in range(20):
        response = requests.get(server.base, params={"text": TEXTS[i % len(TEXTS)]}, timeout=30)
        assert response.status_code == 200
        answered.append(response.json()["request_id"])
    events = health(server.base)["events"]
    assert (events["buffered"], events["dropped"], events["capacity"]) == (5, 15, 5)
    healthz_ms = []  # Mongo refusing: a figure, not asserted (a shared machine); 990 ms each before
    for _ in range(3):
        started = time.monotonic()
        assert health(server.base)["mongo"]["reachable"] is False
        healthz_ms.append(round((time.monotonic() - started) * 1000, 1))

    mongo, _ = start_embedded_mongo(tmp_path / "mongo", port)
    try:
        wait_drained(server.base)
        events = health(server.base)["events"]
        assert (events["written"], events["dropped"]) == (5, 15)
        # told by pymongo's monitor, whose next look (within 10 s; a loaded machine allowed 60) finds Mongo
        # back: not "down" for good
        back = time.monotonic()
        while not health(server.base)["mongo"]["reachable"]:
            assert time.monotonic() - back < 60, "/healthz still says Mongo is unreachable"
            time.sleep(0.2)
        write_figures("healthz-mongo-refusing", {"healthz_ms": healthz_ms,
                                                 "seen_back_after_s": round(time.monotonic() - back, 1)})
        assert sorted(stored_request_ids(uri)) == sorted(answered[:5])  # the first five were kept
        server.stop()
        assert "event buffer full (5): 1 events dropped so far" in server.output()
    finally:
        stop(mongo)


def test_an_event_with_no_bson_is_the_only_one_dropped(mongodb, caplog):
    """An event BSON cannot hold (a lone surrogate, an integer past 64 bits) had failed its whole batch
    at every retry, holding back every event after it: it alone is dropped, counted and logged."""
    from function.events import EventLog, new_event

    log = EventLog(mongodb)
    kept = [new_event(n=1), new_event(n=2)]
    for event in (kept[0], new_event(title="\ud800"), new_event(n=2**70), kept[1]):
        log.record("requests", event)
    assert log.flush(timeout=20)
    assert sorted(e["_id"] for e in wait_for_events(mongodb, "requests", 2)) == sorted(e["_id"] for e in kept)
    assert (log.written, log.dropped, log.pending) == (2, 2, 0)
    assert "a requests event cannot be stored, dropped (UnicodeEncodeError" in caplog.text
    assert "a requests event cannot be stored, dropped (OverflowError" in caplog.text
    later = new_event(n=3)  # the writer goes on
    log.record("requests", later)
    assert log.flush(timeout=20) and later["_id"] in {e["_id"] for e in wait_for_events(mongodb, "requests", 3)}


def test_an_event_past_the_servers_largest_document_is_the_only_one_dropped(mongodb, caplog):
    """An event over the server's largest document (hello's maxBsonObjectSize, 16 MiB) was sent: one
    past a message's 48 MB had pymongo refuse its whole batch (DocumentTooLarge: "rejected 3 events"
    for one), one of 17 MiB was left to the server (nx-27017 stored it, MongoDB refuses it). Its size
    is known once it is encoded: it alone is dropped, counted and logged once."""
    from function.events import EventLog, new_event

    log = EventLog(mongodb)
    kept = [("requests", new_event(n=1)), ("clicks", new_event(n=2)), ("requests", new_event(n=3))]
    # one batch: recorded within the writer's linger, the large ones among the good ones
    log.record(*kept[0])
    log.record("requests", new_event(text="x" * (17 * 2**20)))
    log.record("requests", new_event(text="x" * (49 * 10**6)))
    for collection, event in kept[1:]:
        log.record(collection, event)
    assert log.flush(timeout=30)
    assert (log.written, log.dropped, log.pending) == (3, 2, 0)
    assert sorted(e["_id"] for e in wait_for_events(mongodb, "requests", 2)) == \
        sorted(event["_id"] for collection, event in kept if collection == "requests")
    assert [e["_id"] for e in wait_for_events(mongodb, "clicks", 1)] == [kept[1][1]["_id"]]
    said = [r.getMessage() for r in caplog.records if "past the server's largest document" in r.getMessage()]
    assert len(said) == 2 and "a requests event of 17,825," in said[0] and "a requests event of 49,000," in said[1]
    assert all("16,777,216 bytes" in line for line in said), said


def test_an_event_with_no_bson_is_no_longer_pending_while_its_batch_waits_on_mongo():
    """Dropped, an event is no longer buffered, nor counted against the capacity, while the rest of
    its batch waits on a Mongo that does not answer (a server selection of 2 s)."""
    from function.events import EventLog, new_event

    log = EventLog(f"mongodb://127.0.0.1:{free_port()}/away", flush_seconds=0.5)  # its exit waits no longer
    for event in (new_event(title="\ud800"), new_event(n=1)):
        log.record("requests", event)
    deadline = time.monotonic() + 1.5
    while not log.dropped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (log.dropped, log.pending, log.status()["buffered"]) == (1, 1, 1)
    assert log.flush(timeout=0) is False  # the other one waits on Mongo


def test_a_batch_put_back_to_wait_for_mongo_is_counted_once():
    """Between two attempts (the writer's backoff) a batch is back in the buffer, and no longer being
    written: counted twice, it had filled the buffer's capacity with half of its events."""
    from function.events import EventLog, new_event

    log = EventLog(f"mongodb://127.0.0.1:{free_port()}/away", flush_seconds=0.5)  # its exit waits no longer
    log.record("requests", new_event(n=1))
    deadline = time.monotonic() + 10
    while log.last_error is None and time.monotonic() < deadline:  # the first attempt's 2 s of server selection
        time.sleep(0.005)
    assert log.last_error is not None and (log.pending, log.status()["buffered"]) == (1, 1)


def test_an_event_the_server_refuses_is_dropped_and_counted_and_the_writer_goes_on(mongodb, caplog):
    """An event the server refuses (not a duplicate: a write error no retry can help) is dropped and
    counted, not retried forever nor left waiting, and the events recorded after it are written."""
    import re

    from function.events import EventLog, new_event

    log = EventLog(mongodb)
    # an _id MongoDB refuses (an array) holding what nx-27017 cannot store (a regular expression)
    log.record("requests", {**new_event(), "_id": [re.compile("refused")]})
    assert log.flush(timeout=20)
    assert (log.written, log.dropped, log.pending) == (0, 1, 0) and "MongoDB refused 1 of 1 events" in caplog.text
    later = new_event(n=1)
    log.record("requests", later)
    assert log.flush(timeout=20) and (log.written, log.dropped, log.pending) == (1, 1, 0)
    assert [e["_id"] for e in wait_for_events(mongodb, "requests", 1)] == [later["_id"]]


def test_an_event_the_server_refuses_costs_no_other_event_of_its_batch(mongodb, caplog):
    """The server refusing one event of a batch (a write error that is no duplicate) had counted the
    whole batch dropped: its other events of that collection written all the same, and those of the
    collections after it never sent. The one refused is dropped, the others written and counted so."""
    import re

    from function.events import EventLog, new_event

    log = EventLog(mongodb)
    kept = [("requests", new_event(n=1)), ("clicks", new_event(n=2)), ("views", new_event(n=3))]
    # one batch: recorded within the writer's linger
    log.record("requests", {**new_event(), "_id": [re.compile("refused")]})
    for collection, event in kept:
        log.record(collection, event)
    assert log.flush(timeout=20)
    assert (log.written, log.dropped, log.pending) == (3, 1, 0)
    for collection, event in kept:
        assert [e["_id"] for e in wait_for_events(mongodb, collection, 1)] == [event["_id"]]
    assert "MongoDB refused 1 of 4 events" in caplog.text


def test_an_event_a_retry_finds_already_written_counts_as_written(mongodb, caplog):
    """A batch whose first attempt reached the server but not its answer is sent again: its events
    are duplicate keys (11000) then, written after all, not refused nor dropped."""
    from function.events import EventLog, new_event

    echoed, fresh = new_event(n=1), new_event(n=2)
    client = pymongo.MongoClient(mongodb, serverSelectionTimeoutMS=3000)
    client.get_default_database()["requests"].insert_one(dict(echoed))  # the attempt that did reach it
    client.close()
    log = EventLog(mongodb)
    log.record("requests", echoed)  # one batch: recorded within the writer's linger
    log.record("requests", fresh)
    assert log.flush(timeout=20)
    assert (log.written, log.dropped, log.pending) == (2, 0, 0) and "refused" not in caplog.text
    assert sorted(e["_id"] for e in wait_for_events(mongodb, "requests", 2)) == sorted([echoed["_id"], fresh["_id"]])

def test_a_process_exiting_at_once_writes_the_events_it_has_just_recorded(mongodb):
    """A process's exit waits for its buffer (EVENT_FLUSH_SECONDS): an event recorded just before the
    exit, still in the writer's batch, is written, not lost."""
    import subprocess
    import sys

    from conftest import ROOT

    script = ("import sys\n"
              "from function.events import EventLog, new_event\n"
              "EventLog(sys.argv[1]).record('requests', new_event(_id='the-last-one'))\n")
    done = subprocess.run([sys.executable, "-c", script, mongodb], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "not written" not in done.stderr, done.stderr
    assert [e["_id"] for e in wait_for_events(mongodb, "requests", 1, timeout=2)] == ["the-last-one"]


def test_sigterm_while_mongo_is_away_exits_and_says_what_it_lost(function_process):
    uri = f"mongodb://127.0.0.1:{free_port()}/gone"
    server = function_process(MONGODB=uri, EVENT_FLUSH_SECONDS="1").wait_ready()
    for text in TEXTS[:3]:
        assert requests.get(server.base, params={"text": text}, timeout=30).status_code == 200
    assert server.stop(signal.SIGTERM, timeout=25) == 0  # not killed: it gave up on Mongo by itself
    output = server.output()
    assert "exit with 3 events not written" in output
    assert "events written, none waiting" not in output  # the exit's all-written line is not said


# --------------------------------------------------------------------------- a slow Mongo
class StallingProxy:
    """A TCP relay to a Mongo server that can hold every byte (a server that
    accepts and never answers) or delay each chunk (a slow one)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.delay = 0.0
        self.flowing = threading.Event()
        self.flowing.set()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._closed = threading.Event()
        self.held_command = None
        self.held = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self):
        self.flowing.clear()

    def hold_command(self, name):
        """Hold each command ``name`` sent to Mongo (counted in ``held``), and pass the rest: a server
        that answers its monitor's hello (so pymongo finds nothing wrong) but not that command."""
        self.held_command = b"\x10" + name + b"\x00"  # the command's first field, {name: 1}, in BSON

    def release(self, delay=0.0):
        self.delay = delay
        self.flowing.set()

    def _accept(self):
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                continue
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst, src is client), daemon=True).start()

    def _pipe(self, src, dst, to_mongo):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if to_mongo and self.held_command and self.held_command in data:
                    self.held += 1
                    self._closed.wait()  # never sent: pymongo gives up on it and closes the connection
                    break
                self.flowing.wait()
                if self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._closed.set()
        self.release()
        self._sock.close()


def test_stalled_or_slow_mongo_never_holds_an_answer(function_process, mongodb):
    target = urlsplit(mongodb).port
    proxy = StallingProxy(target)
    uri = with_database(f"mongodb://127.0.0.1:{proxy.port}/", mongodb.rsplit("/", 1)[1])
    try:
        server = function_process(MONGODB=uri).wait_ready()
        baseline = []
        for text in TEXTS:  # Mongo flowing: the reference latency
            started = time.monotonic()
            assert requests.get(server.base, params={"text": text}, timeout=30).status_code == 200
            baseline.append({"ms": (time.monotonic() - started) * 1000})
        wait_drained(server.base)

        proxy.hold()  # Mongo accepts and never answers
        stalled = []
        for text in TEXTS * 2:
            started = time.monotonic()
            response = requests.get(server.base, params={"text": text}, timeout=30)
            assert response.status_code == 200
            stalled.append({"ms": (time.monotonic() - started) * 1000})
        started = time.monotonic()
        stalled_health = health(server.base)
        healthz_ms = (time.monotonic() - started) * 1000  # its ping is bounded (events.PING_SECONDS): a figure
        deadline = time.monotonic() + 15  # the answer before the hold is reused for a second (PING_REUSE_SECONDS)
        while stalled_health["mongo"]["reachable"] and time.monotonic() < deadline:
            time.sleep(0.1)
            stalled_health = health(server.base)
        assert stalled_health["status"] == "degraded" and stalled_health["mongo"]["reachable"] is False
        assert stalled_health["events"]["buffered"] == len(TEXTS) * 2  # answered, none written: nothing waited

        proxy.release(delay=0.2)  # slow: every chunk 0.2 s late each way
        slow = []
        for text in TEXTS:
            started = time.monotonic()
            assert requests.get(server.base, params={"text": text}, timeout=30).status_code == 200
            slow.append({"ms": (time.monotonic() - started) * 1000})
        drain_seconds = wait_drained(server.base)
        assert len(stored_request_ids(mongodb)) == len(TEXTS) * 4
        write_figures("slow_mongo", {
            "latency_mongo_normal": latency_figures(baseline), "latency_mongo_stalled": latency_figures(stalled),
            "latency_mongo_slow_0.2s": latency_figures(slow), "drain_seconds": round(drain_seconds, 2),
            "healthz_ms_mongo_stalled": round(healthz_ms, 1),
        })
    finally:
        proxy.close()


def test_a_burst_of_stats_while_mongo_hangs_leaves_threads_for_everything_else(function_process, mongodb):
    """/stats and /dashboard read the events for seconds: past THREADS - FETCH_CONCURRENCY - 1 of
    them at once (1 at the default 8 threads, whose page fetches may hold 6) a worker refuses at
    once; a burst had held every thread, /healthz's too."""
    proxy = StallingProxy(urlsplit(mongodb).port)
    uri = with_database(f"mongodb://127.0.0.1:{proxy.port}/", mongodb.rsplit("/", 1)[1])
    try:
        server = function_process(MONGODB=uri, THREADS="8").wait_ready()
        assert requests.get(server.base + "/stats", timeout=30).status_code == 200
        proxy.hold()
        with ThreadPoolExecutor(8) as pool:
            burst = [pool.submit(requests.get, server.base + path, timeout=120)
                     for path in ["/stats", "/dashboard"] * 4]
            deadline = time.monotonic() + 15  # the refusals are at once; the machine may be slow
            while sum(future.done() for future in burst) < 6 and time.monotonic() < deadline:
                time.sleep(0.1)
            refused = [future.result() for future in burst if future.done()]
            # while the one let through still waits on Mongo, threads are left for everything else
            assert requests.get(server.base, params={"text": "moon landing"}, timeout=30).status_code == 200
            assert health(server.base)["mongo"]["reachable"] is False
            proxy.release()
            answers = [future.result() for future in burst]
        assert len(refused) >= 6 and all(response.status_code == 503 for response in refused)
        assert all(response.headers["Retry-After"] == "1" for response in refused)
        json_refusals = [response.json()["error"] for response in refused if response.url.endswith("/stats")]
        assert json_refusals and all(error["code"] == "stats_busy" for error in json_refusals)
        assert all(response.status_code in (200, 503) for response in answers)  # the one let through
        assert requests.get(server.base + "/stats", timeout=30).status_code == 200
    finally:
        proxy.close()


def test_a_healthz_flood_while_mongo_hangs_leaves_threads_for_answers(function_process, mongodb):
    """Every /healthz had asked Mongo and waited its 0.5 s: 8 probes at once held all 8 threads while
    Mongo hung (a server that answers its monitor's hello but no command: pymongo's monitor finds nothing
    wrong, so each ping waits), and text queries waited behind them. One check runs at a time and its
    answer is reused: the flood's probes hardly ever reach Mongo, and the queries are answered."""
    proxy = StallingProxy(urlsplit(mongodb).port)
    uri = with_database(f"mongodb://127.0.0.1:{proxy.port}/", mongodb.rsplit("/", 1)[1])
    try:
        server = function_process(MONGODB=uri, THREADS="8").wait_ready()
        assert health(server.base)["mongo"]["reachable"] is True
        proxy.hold_command(b"ping")
        deadline = time.monotonic() + 15  # the answer before the hold is reused for a second (PING_REUSE_SECONDS)
        while health(server.base)["mongo"]["reachable"] and time.monotonic() < deadline:
            time.sleep(0.1)
        quiet = []
        for text in TEXTS[:8]:  # no flood: the reference latency
            started = time.monotonic()
            assert requests.get(server.base, params={"text": text}, timeout=30).status_code == 200
            quiet.append({"ms": (time.monotonic() - started) * 1000})
        done = threading.Event()
        probes = []

        def flood():
            with requests.Session() as session:
                while not done.is_set():
                    probes.append(session.get(server.base + "/healthz", timeout=60))

        answers = []
        with ThreadPoolExecutor(16) as pool:
            flooding = [pool.submit(flood) for _ in range(16)]
            try:
                for text in TEXTS:
                    started = time.monotonic()
                    response = requests.get(server.base, params={"text": text}, timeout=60)
                    answers.append({"ms": (time.monotonic() - started) * 1000, "status": response.status_code})
                while len(probes) < 100 and time.monotonic() < started + 60:  # a count, however slow the machine
                    time.sleep(0.05)
            finally:
                done.set()
            for future in flooding:
                future.result()
        write_figures("healthz_flood", {
            "latency_text_mongo_hung": latency_figures(quiet), "latency_text_healthz_flood": latency_figures(answers),
            "healthz_answered": len(probes), "mongo_pings": proxy.held,
        })
        assert [answer["status"] for answer in answers] == [200] * len(TEXTS)
        assert len(probes) >= 100 and all(probe.status_code == 200 for probe in probes)
        assert all(probe.json()["status"] == "degraded" for probe in probes)
        assert all(probe.json()["mongo"]["reachable"] is False for probe in probes)
        # each probe had sent its own ping; now one a PING_SECONDS + PING_REUSE_SECONDS, whatever the pace
        assert proxy.held * 3 < len(probes), (proxy.held, len(probes))
    finally:
        proxy.close()


# --------------------------------------------------------------------------- what a Mongo outage logs
def said_of_mongo(caplog):
    """The lines the function logged (at INFO and above) since ``caplog.clear()``."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("related") and r.levelno >= logging.INFO]


def figures_refused(app, paths):
    """``paths`` asked at once (the test client from a thread each): their error codes."""
    with ThreadPoolExecutor(len(paths)) as pool:
        responses = list(pool.map(app.get, paths))
    assert all(response.status_code == 503 for response in responses)
    return ["events_unavailable" if response.mimetype == "text/html" else response.json["error"]["code"]
            for response in responses]


def test_figures_refused_while_mongo_is_away_log_one_line_then_a_reminder_with_their_count(
        function_env, caplog, monkeypatch):
    """A dashboard polled every few seconds, or a monitor on /stats, had logged one line a request for as
    long as Mongo was away: one warning, then a reminder every OUTAGE_REMINDER_SECONDS at most."""
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    # 4 event reads at once (limits.stats_slots), so that a worker's threads fail together
    app = make_client({**function_env, "MONGODB": f"mongodb://{host}/away", "THREADS": "16",
                       "FETCH_CONCURRENCY": "4"})
    caplog.set_level(logging.INFO, logger="related")
    caplog.clear()
    codes = figures_refused(app, ["/stats", "/dashboard", "/stats", "/dashboard"])
    codes += figures_refused(app, ["/stats", "/dashboard"])
    assert codes == ["events_unavailable"] * 6
    said = said_of_mongo(caplog)
    assert said == [f"figures unavailable: MongoDB at {host}: ServerSelectionTimeoutError"], said

    monkeypatch.setattr(event_log, "OUTAGE_REMINDER_SECONDS", 0.0)  # the interval has passed
    caplog.clear()
    assert figures_refused(app, ["/stats"]) == ["events_unavailable"]
    said = said_of_mongo(caplog)
    assert len(said) == 1 and said[0].startswith(f"figures still unavailable: MongoDB at {host}: "
                                                 "ServerSelectionTimeoutError for "), said
    assert said[0].endswith(" s, 6 requests refused since the last line")  # the 5 after the first line, and this


@pytest.mark.parametrize("uri,said", [
    ("mongodb://127.0.0.1:99999/related", "MongoDB at 127.0.0.1:99999: ConfigurationError"),
    ("mongodb://", "MONGODB, which names no host (warned at start): InvalidURI"),  # pymongo's ConfigurationError
])
def test_figures_refused_for_a_malformed_mongodb_log_one_line_as_an_outage(function_env, caplog, uri, said):
    """A MONGODB that cannot be a URI fails each read with pymongo's ConfigurationError, not a
    ConnectionFailure: it had been logged as an error Mongo answered with, a line a polled request."""
    app = make_client({**function_env, "MONGODB": uri})
    caplog.set_level(logging.INFO, logger="related")
    caplog.clear()
    assert [code for path in ("/stats", "/dashboard", "/stats") for code in figures_refused(app, [path])] == \
        ["events_unavailable"] * 3
    assert said_of_mongo(caplog) == [f"figures unavailable: {said}"]  # for "mongodb://", not "MongoDB at : "


def test_figures_read_again_once_mongo_is_back_log_it_once(function_env, caplog, tmp_path):
    port = free_port()
    app = make_client({**function_env, "MONGODB": f"mongodb://127.0.0.1:{port}/back"})
    caplog.set_level(logging.INFO, logger="related")
    caplog.clear()
    assert figures_refused(app, ["/stats"]) + figures_refused(app, ["/dashboard"]) == ["events_unavailable"] * 2
    mongo, _ = start_embedded_mongo(tmp_path / "mongo", port)
    try:
        refused = 1
        # pymongo looks for the server again within a selection's 1.5 s: a read or two may still fail
        while (response := app.get("/stats")).status_code != 200:
            assert response.json["error"]["code"] == "events_unavailable" and refused < 10, response.json
            refused += 1
        assert app.get("/dashboard").status_code == 200
    finally:
        stop(mongo)
    said = said_of_mongo(caplog)
    assert said[0] == f"figures unavailable: MongoDB at 127.0.0.1:{port}: ServerSelectionTimeoutError", said
    back = [line for line in said if "again" in line]
    assert len(said) == 2 and back[0].startswith(f"figures available again: MongoDB at 127.0.0.1:{port} answered "
                                                  "after "), said
    assert back[0].endswith(f" s, {refused} requests refused since the last line")


def test_a_read_mongo_answers_with_an_error_is_logged_as_that_read_not_as_an_outage(function_env, caplog):
    """An error Mongo answers with (a query's time limit; here a pipeline stage it does not know, refused
    by MongoDB and nx-27017 alike) is the read's own: a line each, and no "available again" after it,
    where it had been taken for an outage."""
    from pymongo.errors import OperationFailure

    from function.app import create_app
    from function.errors import ApiError

    app = create_app(function_env)
    caplog.set_level(logging.INFO, logger="related")
    caplog.clear()
    for _ in range(2):
        with pytest.raises(ApiError) as refused:
            app.read_events(lambda database, *_: list(database.requests.aggregate([{"$noSuchStage": {}}])),
                            None, None)
        assert refused.value.status == 503 and isinstance(refused.value.__cause__, OperationFailure)
    assert app.read_events(lambda database, *_: database.command("ping")["ok"], None, None) == 1
    hosts = event_log.uri_hosts(function_env["MONGODB"])
    assert said_of_mongo(caplog) == [f"figures unavailable: MongoDB at {hosts}: OperationFailure"] * 2


@pytest.mark.parametrize("code,name", [(18, "AuthenticationFailed"), (13, "Unauthorized")])
def test_mongo_refusing_the_user_is_logged_as_an_outage_not_once_a_read(function_env, caplog, code, name):
    """A wrong password in MONGODB, or a user without the read role, fails every read until it is mended:
    one line and reminders, as for an unreachable Mongo, where it had been logged once a read. nx-27017
    has no users, so the read raises the OperationFailure pymongo gives for MongoDB's answer."""
    from pymongo.errors import OperationFailure

    from function.app import create_app
    from function.errors import ApiError

    def refused(*_):
        raise OperationFailure("Authentication failed.", code, {"ok": 0.0, "code": code, "codeName": name})

    app = create_app(function_env)
    caplog.set_level(logging.INFO, logger="related")
    caplog.clear()
    for _ in range(3):
        with pytest.raises(ApiError) as answer:
            app.read_events(refused, None, None)
        assert answer.value.status == 503
    assert app.read_events(lambda database, *_: database.command("ping")["ok"], None, None) == 1
    hosts = event_log.uri_hosts(function_env["MONGODB"])
    said = said_of_mongo(caplog)
    assert said[0] == f"figures unavailable: MongoDB at {hosts}: OperationFailure ({name})", said
    assert len(said) == 2 and said[1].startswith(f"figures available again: MongoDB at {hosts} answered after "), said


# --------------------------------------------------------------------------- load
def test_load_at_concurrency_32_has_no_error(function_process, function_env, model_store):
    server = function_process().wait_ready()
    load = Load(server.base, corpus_queries(model_store), concurrency=32).start()
    time.sleep(LOAD_SECONDS)
    load.stop()
    assert load.failures == [], load.failures[:5]
    drain_seconds = wait_drained(server.base)
    stored = stored_request_ids(function_env["MONGODB"])
    assert len(stored) == len(load.answers)
    seconds = load.stopped - load.started
    write_figures("load", {
        "seconds": round(seconds, 1), "concurrency": 32, "errors": len(load.failures),
        "requests_per_second": round(len(load.answers) / seconds, 1), **latency_figures(load.answers),
        "requests_events_in_mongo": len(stored), "drain_seconds_after_load": round(drain_seconds, 2),
        "mix": "16 texts, 20 member ids, 20 member URLs", "threads_per_worker": os.environ.get("THREADS", "4 x cores"),
    })
