"""Click-through statistics from the event collections.

Events are read with plain filtered finds and summed up here, in Python:
that behaves the same on MongoDB and on MongoDB-compatible servers, whose
aggregation pipelines differ in the details.
"""

import math
import statistics
from collections import defaultdict
from datetime import datetime, timedelta, timezone


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


def summarise(requests, clicks):
    """Figures for one group of request and click events."""
    answered = [r for r in requests if r.get("status") == 200]
    shown = {r["_id"]: r.get("n_results", 0) for r in answered}
    clicked = {(c["request_id"], c.get("rank")) for c in clicks if c.get("request_id") in shown}
    clicked_requests = {request_id for request_id, _ in clicked}
    by_rank = defaultdict(int)
    for _, rank in clicked:
        by_rank[rank] += 1
    max_rank = max(shown.values(), default=0)
    latencies = [r["total_ms"] for r in answered if isinstance(r.get("total_ms"), (int, float))]
    delays = [c["delay_ms"] for c in clicks if isinstance(c.get("delay_ms"), (int, float))]
    top_scores = [r["top_score"] for r in answered if isinstance(r.get("top_score"), (int, float))]
    return {
        "requests": len(answered),
        "errors": len(requests) - len(answered),
        "clicks": len(clicks),
        "ctr": _round(len(clicked_requests) / len(answered)) if answered else None,
        "ctr_ci95": wilson(len(clicked_requests), len(answered)),
        "clicks_per_request": _round(len(clicks) / len(answered)) if answered else None,
        "ctr_by_rank": {
            str(rank): {
                "ctr": _round(by_rank[rank] / shown_at),
                "ci95": wilson(by_rank[rank], shown_at),
                "clicks": by_rank[rank],
                "shown": shown_at,
            }
            for rank in range(1, max_rank + 1)
            if (shown_at := sum(1 for n in shown.values() if n >= rank))
        },
        "latency_ms": {"p50": _round(percentile(latencies, 50), 2), "p95": _round(percentile(latencies, 95), 2)},
        "click_delay_ms": {"median": _round(statistics.median(delays), 1) if delays else None},
        "mean_top_score": _round(statistics.fmean(top_scores)) if top_scores else None,
    }


REQUEST_FIELDS = {"_id": 1, "engine": 1, "status": 1, "total_ms": 1, "top_score": 1, "n_results": 1}
CLICK_FIELDS = {"_id": 0, "request_id": 1, "engine": 1, "rank": 1, "delay_ms": 1}


def compute(db, corpus=None, days=None, now=None):
    """The /stats document for ``corpus`` (None: all) over the last ``days``."""
    query = {}
    if corpus:
        query["corpus"] = corpus
    since = None
    if days:
        since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
        query["ts"] = {"$gte": since}
    requests = list(db["requests"].find(query, REQUEST_FIELDS))
    clicks = list(db["clicks"].find(query, CLICK_FIELDS))
    out = {"corpus": corpus, "since": since.isoformat(timespec="seconds") if since else None}
    out.update(summarise(requests, clicks))
    engines = sorted({r.get("engine") for r in requests if r.get("engine")})
    out["engines"] = {
        engine: summarise([r for r in requests if r.get("engine") == engine],
                          [c for c in clicks if c.get("engine") == engine])
        for engine in engines
    }
    return out
