"""Click-through statistics from the event collections.

Events are read with plain filtered finds and summed up here, in Python:
that behaves the same on MongoDB and on MongoDB-compatible servers, whose
aggregation pipelines differ in the details. A busy site's history outgrows
memory, so at most the newest STATS_MAX_EVENTS answers, clicks, views and error answers are read;
the answer then says so (``truncated``, ``errors_truncated``) and from when it counts (``since``).
"""

import bisect
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from .config import NAME
from .errors import ApiError
from .params import query_arguments, refuse_unknown, whole_number


def parse_filters(request, settings):
    """(corpus, days) of /stats and /dashboard's query arguments; ApiError for a bad one."""
    args = query_arguments(request, settings)
    refuse_unknown(args, ("corpus", "days"), "corpus, days")
    corpus = args.get("corpus") or None
    if corpus is not None and not NAME.match(corpus):
        raise ApiError("'corpus' must be a corpus name", code="invalid_parameter")
    days = args.get("days") or None
    return corpus, None if days is None else whole_number(days, "days", 1, 3650)


def percentile(values, q):
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def wilson(successes, trials, z=1.96):
    """95% Wilson score interval of a proportion, or None without trials."""
    if not trials:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def _round(value, digits=4):
    return None if value is None else round(value, digits)


# Score bands of ctr_by_score, each [low, high): negative scores count in the first, 1 and above in
# the last. Cosines of related articles run low (a short text against whole articles, a small blog's
# tfidf: 0.1-0.3) and unrelated links sit at 0.02-0.05, where a min_score is chosen: finer steps
# there, coarse ones above 0.3, where a link is plainly related.
SCORE_EDGES = (0, 0.05, 0.1, 0.2, 0.3, 0.5, 1)
SCORE_BANDS = [f"{low:g}-{high:g}" for low, high in zip(SCORE_EDGES, SCORE_EDGES[1:])]
# links shown, none clicked, under an edge before the dashboard suggests it as min_score: none of 300
# says, with 95% confidence, that readers click such links less than once in 100 (the rule of three,
# 3/n); none of 100 is what links clicked twice in 100 show about one time in 8 by chance alone, and
# many more would keep a small site (a weak link or two an answer) waiting for weeks
MIN_SHOWN_TO_SUGGEST = 300
# and the clicks above it must fall there by chance alone less often than this: none in 300 links under
# an edge says little when the links above had one click in 140 (a small site's dashboard had suggested
# 0.2 on a single click, which would land above the edge one time in seven whatever the scores)
SUGGEST_CHANCE = 0.05


def band_index(score):
    """The index of the SCORE_BANDS band ``score`` is in."""
    return bisect.bisect_right(SCORE_EDGES, score, 1, len(SCORE_BANDS)) - 1  # inner edges only


def score_bands(scores):
    """An answer event's ``score_bands``: the SCORE_BANDS index of each link's score, one digit a rank
    ("5320": ranks 1-4). /stats reads them instead of ``results``: 100 links an answer had been 2 million
    subdocuments decoded for 20,000 answers. Changing SCORE_EDGES makes the digits of older events
    wrong: rename the field then (SCORE_BANDS_FIELD), and older events are read from their results."""
    return "".join(str(band_index(score)) for score in scores)


SCORE_BANDS_FIELD = "score_bands"
BAND_DIGITS = [str(band) for band in range(len(SCORE_BANDS))]


def _ctr_row(clicks, shown):
    return {"ctr": _round(clicks / shown) if shown else None, "ci95": wilson(clicks, shown), "clicks": clicks,
            "shown": shown}


def _band_counts(answers, clicked):
    """(shown, clicks) by SCORE_BANDS index of the links of ``answers``, the request events shown (their
    bands by rank: bands_of); ``clicked``, the (request id, rank) of the links clicked."""
    shown, clicks = [0] * len(SCORE_BANDS), [0] * len(SCORE_BANDS)
    bands_by_id = {}
    for answer in answers:
        bands = bands_by_id[answer["_id"]] = bands_of(answer)
        if isinstance(bands, str):  # counted in C: 2 million digits a Python loop took 2 s over
            for band, digit in enumerate(BAND_DIGITS):
                shown[band] += bands.count(digit)
        else:
            for band in bands:
                if band is not None:
                    shown[band] += 1
    for request_id, rank in clicked:
        bands = bands_by_id.get(request_id)
        if bands and isinstance(rank, int) and 1 <= rank <= len(bands) and bands[rank - 1] is not None:
            clicks[int(bands[rank - 1])] += 1
    return shown, clicks


def _band_rows(shown, clicks):
    return {name: _ctr_row(clicks[i], shown[i]) for i, name in enumerate(SCORE_BANDS)}


def ctr_by_score_by_engine(answers, clicked):
    """(/stats' ctr_by_score of ``answers``, the request events shown (their bands by rank: bands_of), and
    {engine: that of its own answers}), ``clicked`` the (request id, rank) of the links clicked: each
    engine's links counted once and summed for the pooled figures (counted again, 20,000 answers of k=100
    had taken ~0.2 s more)."""
    groups = defaultdict(list)
    for answer in answers:
        groups[answer.get("engine") or None].append(answer)  # None: an answer that names none
    counts = {engine: _band_counts(group, clicked) for engine, group in groups.items()}
    pooled = [[sum(group_counts[i][band] for group_counts in counts.values()) for band in range(len(SCORE_BANDS))]
              for i in (0, 1)]  # shown, clicks
    return _band_rows(*pooled), {engine: _band_rows(*counts[engine])
                                 for engine in sorted(engine for engine in counts if engine is not None)}


def recorded_bands(answer):
    """``answer``'s SCORE_BANDS_FIELD (a digit a rank), or None where it has none (written before it)."""
    recorded = answer.get(SCORE_BANDS_FIELD)
    if isinstance(recorded, str) and recorded.isascii() and recorded.isdigit() and max(recorded) <= BAND_DIGITS[-1]:
        return recorded
    return None


def bands_of(answer):
    """The band of each link of ``answer``, by rank: its SCORE_BANDS_FIELD's digits, else (an event
    written before them) the band index of each of its ``results``' scores (None for a link with none)."""
    recorded = recorded_bands(answer)
    if recorded is not None:
        return recorded
    scores = [result.get("score") if isinstance(result, dict) else None for result in answer.get("results") or ()]
    return [band_index(score) if isinstance(score, (int, float)) else None for score in scores]


class MinScoreSuggestion(NamedTuple):
    min_score: float  # a band edge
    shown: int  # the links shown with a lower score, none of them clicked


def suggested_min_score(by_score, min_shown=MIN_SHOWN_TO_SUGGEST):
    """The highest band edge under which readers clicked none of at least ``min_shown`` links shown,
    and links above it were clicked more than chance allows (_by_chance); None when no edge is: too
    few links under the unclicked bands, too few clicks above, a click in the lowest, or no click at
    all (which says nothing of scores)."""
    clicks = sum(row["clicks"] for row in by_score.values())
    suggestion, shown = None, 0
    for band, high in zip(SCORE_BANDS, SCORE_EDGES[1:]):
        if by_score[band]["clicks"]:
            break
        shown += by_score[band]["shown"]
        if shown >= min_shown:
            suggestion = MinScoreSuggestion(high, shown)
    if suggestion is None or not clicks:
        return None
    links = sum(row["shown"] for row in by_score.values())
    return None if _by_chance(clicks, links - suggestion.shown, links) > SUGGEST_CHANCE else suggestion


def _by_chance(clicks, above, links):
    """How often ``clicks`` on ``links`` would all fall on the ``above`` of them if score made no
    difference (Fisher's exact test, one-sided, for no click under the edge): C(above, clicks) /
    C(links, clicks)."""
    chance = 1.0
    for i in range(clicks):
        chance *= max(above - i, 0) / (links - i)
    return chance


def suggested_min_scores(by_engine, min_shown=MIN_SHOWN_TO_SUGGEST):
    """{engine: MinScoreSuggestion} for each engine of /stats' ``ctr_by_score_by_engine`` whose own
    figures support one: scores are each engine's (LSI's cosines run higher than tfidf's), and an edge of
    all engines' links pooled had been wrong for each."""
    return {engine: suggestion for engine, by_score in by_engine.items()
            if (suggestion := suggested_min_score(by_score, min_shown)) is not None}


def summarise(requests, clicks, views=(), by_engine=False):
    """Figures for one group of request events and the click and view events on their answers, with
    ``ctr_by_score_by_engine`` when ``by_engine``: each engine's ctr_by_score over all its answers.
    Click-through is over the answers with a list to show: an empty answer (min_score, no match) is
    no impression, and the widget shows nothing for it. ``ctr_seen`` is over the answers whose list
    the widget saw in view (a list below the fold, never scrolled to, is no impression either)."""
    answered = [r for r in requests if r.get("status") == 200]
    shown = {r["_id"]: n for r in answered if (n := r.get("n_results", 0))}
    clicked = {(c["request_id"], c.get("rank")) for c in clicks if c.get("request_id") in shown}
    clicked_requests = {request_id for request_id, _ in clicked}
    seen = {v["request_id"] for v in views if v.get("request_id") in shown}
    by_rank = defaultdict(int)
    for _, rank in clicked:
        by_rank[rank] += 1
    max_rank = max(shown.values(), default=0)
    latencies = [r["total_ms"] for r in answered if isinstance(r.get("total_ms"), (int, float))]
    delays = [c["delay_ms"] for c in clicks if isinstance(c.get("delay_ms"), (int, float))]
    by_score, engines_by_score = ctr_by_score_by_engine([r for r in answered if r["_id"] in shown], clicked)
    return {
        "requests": len(answered),
        "empty_answers": len(answered) - len(shown),
        "errors": len(requests) - len(answered),
        "clicks": len(clicks),
        "ctr": _round(len(clicked_requests) / len(shown)) if shown else None,
        "ctr_ci95": wilson(len(clicked_requests), len(shown)),
        "clicks_per_request": _round(len(clicks) / len(shown)) if shown else None,
        "seen": len(seen),
        "ctr_seen": _round(len(clicked_requests & seen) / len(seen)) if seen else None,
        "ctr_seen_ci95": wilson(len(clicked_requests & seen), len(seen)),
        "ctr_by_rank": {
            str(rank): _ctr_row(by_rank[rank], shown_at)
            for rank in range(1, max_rank + 1)
            if (shown_at := sum(1 for n in shown.values() if n >= rank))
        },
        "ctr_by_score": by_score,
        **({"ctr_by_score_by_engine": engines_by_score} if by_engine else {}),
        "latency_ms": {"p50": _round(percentile(latencies, 50), 2), "p95": _round(percentile(latencies, 95), 2)},
        "click_delay_ms": {"median": _round(statistics.median(delays), 1) if delays else None},
        "mean_top_score": mean_top_score(answered),
    }


# an answer's bands, not its ``results``: those of 20,000 answers of k=100 (2 million links) had taken /stats
# past the reader's 5 s on nx-27017 (7.9 s for 5,000; 4.9 s without them). Read from ``results`` only for
# the answers written before ``score_bands`` (events.py keeps no schema version), whole: nx-27017 answers
# a projection of "results.score" without ``results`` at all.
REQUEST_FIELDS = {"_id": 1, "engine": 1, "engine_named": 1, "status": 1, "total_ms": 1, "top_score": 1,
                  "n_results": 1, SCORE_BANDS_FIELD: 1}
CLICK_FIELDS = {"_id": 0, "request_id": 1, "engine": 1, "rank": 1, "delay_ms": 1}
VIEW_FIELDS = {"_id": 0, "request_id": 1, "engine": 1}


def event_filter(corpus, days, now):
    """(Mongo filter, since) selecting the events of ``corpus`` (None: all) over the last ``days``."""
    query = {}
    if corpus:
        query["corpus"] = corpus
    since = None
    if days:
        since = now - timedelta(days=days)
        query["ts"] = {"$gte": since}
    return query, since


# within the reader's socket timeout (events.database, 5 s): MongoDB stops a query its client has
# given up on, which it would otherwise run on (nx-27017, which ignores it, did: looping /dashboard
# over 20,000 answers of k=100 kept it at 100% CPU, and event writes waited)
QUERY_MS = 4_500


def newest_events(collection, query, fields, limit):
    """(events, cut): the newest ``limit`` events of ``collection`` matching ``query``, and the
    oldest time among them when there were more (None when not: one more is asked for to know).
    Cut short, they end with every event of that time, since a cut among events of the same
    millisecond would leave some out of a window that claims them."""
    projection = {**fields, "ts": 1}
    found = list(collection.find(query, projection, max_time_ms=QUERY_MS).sort("ts", -1).limit(limit + 1))
    if len(found) <= limit:
        return found, None
    cut = found[limit - 1]["ts"]
    # compared here too: nx-27017 compares times to the second, MongoDB to the millisecond
    tied = [event for event in collection.find({**query, "ts": cut}, projection, max_time_ms=QUERY_MS)
            if event["ts"] == cut]
    return [event for event in found[:limit] if event["ts"] != cut] + tied, cut


OLD_RESULTS_BATCH = 1_000  # ids a find asks for at once


def add_old_results(collection, answers):
    """Read the ``results`` of the ``answers`` with links and no SCORE_BANDS_FIELD (written before it)
    into them, by id: their links then count in ctr_by_score as they did before."""
    old = {answer["_id"]: answer for answer in answers
           if answer.get("n_results") and recorded_bands(answer) is None}
    ids = list(old)
    for start in range(0, len(ids), OLD_RESULTS_BATCH):
        found = collection.find({"_id": {"$in": ids[start:start + OLD_RESULTS_BATCH]}}, {"_id": 1, "results": 1},
                                max_time_ms=QUERY_MS)
        for event in found:
            if event["_id"] in old:
                old[event["_id"]]["results"] = event.get("results")


# Readers' answers, clicks and views. Crawlers' events are marked ``bot`` (crawlers.mark), the try-it
# page's answers ``via``, the clicks of a browser's User-Agent without its Fetch Metadata ``unverified``
# (fetch_metadata.unverified): all are counted apart (Window.left_out). Clicks written before
# ``unverified`` have none, and count as they did.
READERS = {"bot": {"$exists": False}, "via": {"$exists": False}, "unverified": {"$exists": False}}
CRAWLERS = {"bot": {"$exists": True}}
UNVERIFIED = {"bot": {"$exists": False}, "unverified": {"$exists": True}}  # a crawler's is a crawler's only
TRY_IT = {"bot": {"$exists": False}, "via": {"$exists": True}}


@dataclass
class Window:
    """The events /stats and the dashboard count, and what they leave out."""

    requests: list  # readers' answers, and every error answer
    clicks: list  # readers' clicks on those answers
    views: list  # readers' views of those answers (the widget's seen links)
    since: datetime | None  # where the window starts (None: the first event)
    truncated: bool  # cut to the newest STATS_MAX_EVENTS answers, clicks or views: counted from ``since``
    errors_since: datetime | None  # more errors than STATS_MAX_EVENTS: counted from here
    left_out: dict  # counted apart: crawlers' answers and clicks, the try-it page's answers, other clicks,
    # clicks claiming a browser without its Fetch Metadata


def read_events(db, corpus, days, now, request_fields, click_fields, limit):
    """The Window of ``corpus``'s events over the last ``days``: at most the newest ``limit`` readers'
    answers, clicks, views and error answers. When the answers, the clicks or the views hold more, the
    window starts at the oldest one read instead, for all, and ``truncated`` says so. Errors, whoever met them, do
    not set the window: 20,000 free 400s had pushed every answer out of it (requests 0); past
    ``limit`` of them in the window, the newest are counted, from ``errors_since`` (else None).

    A click counts with its answer: one on an answer outside the window (asked before it, a tab
    left open overnight), on the try-it page's or a crawler's, is left out (``other_clicks``), where
    it had made more clicks than answers clicked in a day's figures; a view likewise. Crawlers'
    answers and clicks are counted (at most ``limit`` of each)."""
    query, since = event_filter(corpus, days, now)
    truncated = False
    answered, cut = newest_events(db["requests"], {**query, "status": 200, **READERS}, request_fields, limit)
    if cut is not None:
        since, truncated = cut, True
        query = {**query, "ts": {"$gte": since}}
    read = {"requests": answered}
    for collection, fields in (("clicks", click_fields), ("views", VIEW_FIELDS)):
        read[collection], cut = newest_events(db[collection], {**query, **READERS}, fields, limit)
        if cut is not None:  # more clicks (or views) than answers in the window: narrow it, for all
            since, truncated = cut, True
            query = {**query, "ts": {"$gte": since}}
            read = {name: [event for event in events if event["ts"] >= since] for name, events in read.items()}
    answered, clicks, views = read["requests"], read["clicks"], read["views"]
    if "results" not in request_fields:
        add_old_results(db["requests"], answered)
    errors, errors_since = newest_events(db["requests"], {**query, "status": {"$ne": 200}}, request_fields, limit)
    answer_ids = {r["_id"] for r in answered}
    on_answers = [c for c in clicks if c.get("request_id") in answer_ids]
    views = [v for v in views if v.get("request_id") in answer_ids]

    def count(collection, selector):
        # the ids found, counted here: count_documents is an aggregation, which nx-27017 runs over every
        # event (8.5 s for 20,000 crawlers' answers among 67,000, 9 s for no try-it answer at all: past
        # the reader's 5 s socket timeout, /stats and /dashboard were 503s); this find took 2.5 s and 0.15 s
        found = db[collection].find({**query, **selector}, {"_id": 1}, max_time_ms=QUERY_MS).limit(limit)
        return sum(1 for _ in found)

    left_out = {"crawler_requests": count("requests", {"status": 200, **CRAWLERS}),
                "crawler_clicks": count("clicks", CRAWLERS),
                "try_it_answers": count("requests", {"status": 200, **TRY_IT}),
                "other_clicks": len(clicks) - len(on_answers),
                "unverified_clicks": count("clicks", UNVERIFIED)}
    return Window(answered + errors, on_answers, views, since, truncated, errors_since, left_out)


def compute(db, corpus, days, limit):
    """The /stats document for ``corpus`` (None: all) over the last ``days``."""
    return report(read_events(db, corpus, days, datetime.now(timezone.utc), REQUEST_FIELDS, CLICK_FIELDS, limit),
                  corpus)


def _iso(ts):
    return ts.isoformat(timespec="milliseconds") if ts else None


def report(window, corpus):
    """The /stats document of a read Window."""
    requests, clicks = window.requests, window.clicks
    out = {"corpus": corpus, "since": _iso(window.since), "truncated": window.truncated,
           "errors_truncated": window.errors_since is not None, "errors_since": _iso(window.errors_since)}
    # each engine's scores over all its answers, the split's and those that named it (engine=) alike: a score
    # is its engine's however the engine was chosen (``engines`` below holds the split's alone: a backend
    # naming its engine on every request had had no figures there, so no min_score suggestion)
    out.update(summarise(requests, clicks, window.views, by_engine=True))
    out["left_out"] = window.left_out
    # the engines are compared on the split's requests alone: a caller who names the engine (engine=)
    # and clicks its own links had made "lsi wins" with five requests
    split = [r for r in requests if not r.get("engine_named")]
    split_ids = {r.get("_id") for r in split}
    out["engine_named_requests"] = sum(1 for r in requests if r.get("engine_named") and r.get("status") == 200)
    out["engines"] = {
        engine: summarise([r for r in split if r.get("engine") == engine],
                          [c for c in clicks if c.get("engine") == engine and c.get("request_id") in split_ids],
                          window.views)  # summarise keeps the views of the answers it is given
        for engine in sorted({r.get("engine") for r in split if r.get("engine")})
    }
    return out


def refuse_unheard_of(corpus, days, stats, served):
    """A 404 for a corpus neither served nor named by any event read: most likely a typo, whose
    figures of zero would read as a corpus nobody asks for.  A corpus no longer served keeps its
    figures while its events last."""
    if corpus and corpus not in served and not (stats["requests"] or stats["errors"] or stats["clicks"]
                                                or any(stats["left_out"].values())):
        window = f" over the last {days} days" if days else ""
        raise ApiError(f"unknown corpus '{corpus}': it is not served and no event names it{window} "
                       f"(served: {', '.join(served) or 'none'})", status=404, code="unknown_corpus")


# -- the dashboard ------------------------------------------------------------------
# Bucket widths (seconds) a timeline may use: the narrowest that keeps it
# within TIMELINE_MAX_BUCKETS bars wins, so a fresh deployment's first minutes
# read as well as a quarter's traffic.
TIMELINE_STEPS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400,
                  30 * 86400, 91 * 86400, 365 * 86400)  # up to DAYS' 3,650 within 48 bars
TIMELINE_MAX_BUCKETS = 48
TIMELINE_MIN_BUCKETS = 24  # a short history is drawn after empty buckets, not as a few very wide bars
# Histogram bin edges: latency in ms, click delay in seconds (roughly 1-2-5 steps: both span decades).
LATENCY_EDGES_MS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
CLICK_DELAY_EDGES_S = (0, 1, 2, 5, 10, 30, 60, 300, 1800, 7200, 86400)
TOP_N = 10

DASHBOARD_REQUEST_FIELDS = {**REQUEST_FIELDS, "ts": 1, "corpus": 1, "error": 1, "results": 1}  # top articles
DASHBOARD_CLICK_FIELDS = {**CLICK_FIELDS, "ts": 1, "corpus": 1, "doc_id": 1, "url": 1}


def _utc(ts):
    if not isinstance(ts, datetime):
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def timeline(requests, clicks, since, now):
    """Requests, errors and clicks per time bucket, from ``since`` (None: the first event) to ``now``."""
    times = [t for t in (_utc(e.get("ts")) for e in requests + clicks) if t is not None]
    start = since or min(times, default=now)
    span = max(0.0, (now - start).total_seconds())
    step = next((s for s in TIMELINE_STEPS if span / s < TIMELINE_MAX_BUCKETS), TIMELINE_STEPS[-1])
    first = math.floor(start.timestamp() / step) * step
    count = int((now.timestamp() - first) // step) + 1
    if count < TIMELINE_MIN_BUCKETS and since is None:
        first -= (TIMELINE_MIN_BUCKETS - count) * step
        count = TIMELINE_MIN_BUCKETS
    buckets = [{"start": datetime.fromtimestamp(first + i * step, timezone.utc).isoformat(timespec="seconds"),
                "requests": 0, "errors": 0, "clicks": 0} for i in range(count)]

    def bucket(ts):
        index = int((ts.timestamp() - first) // step)
        return buckets[min(max(index, 0), count - 1)]  # clock skew between instances: clamp

    for event in requests:
        ts = _utc(event.get("ts"))
        if ts is not None:
            bucket(ts)["requests" if event.get("status") == 200 else "errors"] += 1
    for event in clicks:
        ts = _utc(event.get("ts"))
        if ts is not None:
            bucket(ts)["clicks"] += 1
    return {"step_seconds": step, "buckets": buckets}


def histogram(values, edges):
    """Counts of ``values`` in [edges[i], edges[i+1]); the last bin is open-ended."""
    counts = [0] * len(edges)
    for value in values:
        index = next((i for i in range(len(edges) - 1, -1, -1) if value >= edges[i]), 0)
        counts[index] += 1
    return [{"low": low, "high": edges[i + 1] if i + 1 < len(edges) else None, "count": counts[i]}
            for i, low in enumerate(edges)]


def top_articles(requests, clicks, n=TOP_N):
    """The ``n`` articles most often recommended and most often clicked, with both counts."""
    shown = defaultdict(int)
    for event in requests:
        if event.get("status") == 200:
            for result in event.get("results") or ():
                if isinstance(result, dict) and result.get("id") is not None:
                    shown[(event.get("corpus"), str(result["id"]))] += 1
    clicked = defaultdict(int)
    urls = {}
    for click in clicks:
        if click.get("doc_id") is not None:
            key = (click.get("corpus"), str(click["doc_id"]))
            clicked[key] += 1
            urls.setdefault(key, click.get("url"))

    def rows(counter):
        ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0][0] or "", item[0][1]))[:n]
        return [{"corpus": corpus, "id": doc_id, "url": urls.get((corpus, doc_id)),
                 "recommended": shown.get((corpus, doc_id), 0), "clicks": clicked.get((corpus, doc_id), 0)}
                for (corpus, doc_id), _ in ranked]

    return {"recommended": rows(shown), "clicked": rows(clicked)}


def mean_top_score(answered):
    """The mean top_score of the ``answered`` requests that have one; None for none."""
    tops = [r["top_score"] for r in answered if isinstance(r.get("top_score"), (int, float))]
    return _round(statistics.fmean(tops)) if tops else None


def mean_top_by_engine(answered):
    """{engine: mean_top_score of its ``answered`` requests}, for each engine with one."""
    by_engine = defaultdict(list)
    for r in answered:
        if r.get("engine"):
            by_engine[r["engine"]].append(r)
    return {engine: mean for engine, rows in by_engine.items() if (mean := mean_top_score(rows)) is not None}


def dashboard(db, corpus, days, limit):
    """What /dashboard draws: the /stats document plus time series, histograms and top articles."""
    now = datetime.now(timezone.utc)
    window = read_events(db, corpus, days, now, DASHBOARD_REQUEST_FIELDS, DASHBOARD_CLICK_FIELDS, limit)
    requests, clicks = window.requests, window.clicks
    answered = [r for r in requests if r.get("status") == 200]
    errors = defaultdict(int)
    for event in requests:
        if event.get("status") != 200:
            errors[str(event.get("error") or event.get("status"))] += 1
    return {
        "stats": report(window, corpus),
        "timeline": timeline(requests, clicks, window.since, now),
        "latency_ms": histogram([r["total_ms"] for r in answered if isinstance(r.get("total_ms"), (int, float))],
                                LATENCY_EDGES_MS),
        "click_delay_s": histogram([c["delay_ms"] / 1000 for c in clicks
                                    if isinstance(c.get("delay_ms"), (int, float))], CLICK_DELAY_EDGES_S),
        "top": top_articles(requests, clicks),
        # over all each engine's answers, as ctr_by_score_by_engine and so its suggested min_score are: the
        # split's alone (``engines``) had none for a backend naming its engine on every request
        "mean_top_by_engine": mean_top_by_engine(answered),
        "errors_by_code": dict(sorted(errors.items(), key=lambda item: (-item[1], item[0]))),
    }
