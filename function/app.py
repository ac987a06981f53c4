"""The HTTP handler: route by method and path, answer JSON (or a page), errors as JSON.

    GET  /?url=|text=|id=   recommendations        POST /  the same, as JSON
    GET  /click?...         signed click link -> 302 to the article
    POST /seen?...          signed seen link: the answer's list was in view -> 204
    GET  /stats             click-through figures   GET /healthz  liveness and store
    GET  /dashboard         the figures, drawn      GET /openapi.json  this API, described
    GET  /assets/<file>     the pages' stylesheet and icon, the site's widget (function/static/)
A browser's GET / (Accept prefers text/html) gets the try-it page instead of JSON.
"""

import dataclasses
import io
import json
import logging
import os

import orjson
from flask import Response

from . import __version__, access, crawlers, fetch_metadata, pages
from .clicks import load_previous_secrets, load_secret
from .config import ConfigError, Settings
from .errors import ApiError
from .events import EventLog, OutageLog, error_kind, uri_hosts, uri_problem
# not .fetch: the HTTP stack loads on the first fetch
from .fetch_policy import FETCHER_PRODUCT, FetchLimits, names_corpus
from .limits import stats_slots
from .openapi import document as openapi_document
from .params import check_query_length, gives_arguments, is_speculative, parse_query, seen_by_a_reader
from .recommend import Recommender
from .stats import compute as compute_stats
from .stats import parse_filters, refuse_unheard_of
from .store import StoreError, StoreSet, build_advice, store_advice

log = logging.getLogger("related")

API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def json_response(body, status=200, headers=None):
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    return Response(text + "\n", status=status, mimetype="application/json", headers={**API_HEADERS, **(headers or {})})


# what orjson would write otherwise than json_response (a datetime, a dataclass, a str or int subclass) it
# refuses, as anything past its bounds: such a body is written by json_response
ANSWER_JSON = (orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
               | orjson.OPT_PASSTHROUGH_SUBCLASS)


def answer_response(body):
    """json_response of a recommendation answer, written by orjson: json.dumps was ~20 us of a cached
    answer's ~0.3 ms. An answer's strings, whole numbers, rounded floats (never NaN) and the rest come out
    as the same bytes (tests/test_api.py compares them)."""
    try:
        text = orjson.dumps(body, option=ANSWER_JSON)
    except orjson.JSONEncodeError:
        return json_response(body)
    return Response(text, mimetype="application/json", headers=API_HEADERS)


def error_response(error, headers=None):
    return json_response(error.to_json(), error.status, {**error.headers, **(headers or {})})


def resolve_default_corpus(settings, names):
    if settings.default_corpus:
        if settings.default_corpus not in names:
            raise StoreError(
                f"DEFAULT_CORPUS={settings.default_corpus!r} has no store under {settings.model_store} "
                f"(found: {', '.join(names) or 'none'}). "
                f"Build it: {build_advice(settings.model_store / settings.default_corpus)}"
            )
        return settings.default_corpus
    if not names:
        raise StoreError(f"no store under {settings.model_store}. Build one: {store_advice(settings.model_store)}")
    return "wiki" if "wiki" in names else names[0]


def check_engine_weights(weights, stores):
    """ConfigError for an ENGINE_WEIGHTS name that no served store has: its share would go to the
    store's default engine, unsaid, and the experiment never run."""
    engines = set().union(*(stores.get(name).engines for name in stores.names()))
    unknown = sorted(set(weights) - engines)
    if unknown:
        raise ConfigError(f"ENGINE_WEIGHTS names {', '.join(map(repr, unknown))}, which no store has "
                          f"(engines: {', '.join(sorted(engines)) or 'none'})")


def fetch_limits_for(settings, stores, env):
    """FetchLimits from the environment; FETCH_ALLOWED_DOMAINS=corpus means the corpora's hosts."""
    corpus_hosts = None
    if names_corpus(settings.fetch_allowed_domains):
        corpus_hosts = frozenset().union(*(stores.get(name).hosts() for name in stores.names()))
    try:
        return FetchLimits.from_env(env, corpus_domains=corpus_hosts)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def refuse_own_fetcher(request):
    """A 403 for a request of the function's own fetcher (its User-Agent): a page that redirects its fetch
    to the function's public address had it ask itself again, a request deep for each such redirect,
    until every fetch slot of every instance was held (then a 503 unwound them), each held to the deadline
    by a page that stalls at the bottom. (Another deployment's fetcher is refused too: this is no page.)"""
    if request.headers.get("User-Agent", "").startswith(FETCHER_PRODUCT + "/"):
        raise ApiError("this is the related-content function: its own fetcher (a page redirected it here) "
                       "gets no recommendations from it", status=403, code="own_fetcher")


def _allowed(methods):
    """A route's Allow header: its methods, with the HEAD a GET answers and the OPTIONS every path
    answers (a 405 had named neither)."""
    return ", ".join(sorted({*methods, "OPTIONS"} | ({"HEAD"} if "GET" in methods else set())))


class App:
    def __init__(self, settings, env=None):
        env = os.environ if env is None else env
        self.stores = StoreSet(settings.model_store, settings.store_check_seconds)
        default = resolve_default_corpus(settings, self.stores.names())
        self.settings = settings = dataclasses.replace(settings, default_corpus=default)
        check_engine_weights(settings.engine_weights, self.stores)
        if not env.get("DEFAULT_CORPUS", "").strip() and len(self.stores.names()) > 1:
            log.warning("DEFAULT_CORPUS is not set: requests without corpus= are answered from %r, of %s",
                        default, ", ".join(self.stores.names()))
        click_key, warning = load_secret(settings)
        previous_keys, previous_warning = load_previous_secrets(settings, click_key)
        for message in filter(None, (warning, previous_warning)):
            log.warning(message)
        self.stats_token = access.load_token(settings)
        if settings.fetch_concurrency >= settings.threads:
            if "FETCH_CONCURRENCY" in env:
                log.warning("FETCH_CONCURRENCY=%d is not below THREADS=%d: requests waiting on slow sites can take "
                            "every thread, /healthz's too", settings.fetch_concurrency, settings.threads)
            else:  # THREADS=1: the default bound cannot go below 1
                log.warning("THREADS=%d: a request waiting on a slow site holds the worker's only thread, /healthz's "
                            "too (with 2 or more, one stays free of page fetches)", settings.threads)
        self.events = EventLog(settings.mongodb_uri, settings.event_buffer, settings.event_flush_seconds)
        self.read_outage = OutageLog(settings.mongodb_uri)  # read_events': one line an outage, not a request
        fetch_limits = fetch_limits_for(settings, self.stores, env)
        if settings.client_request_seconds < fetch_limits.deadline + 30:
            log.warning("CLIENT_REQUEST_SECONDS=%g leaves less than 30 s past FETCH_DEADLINE=%g: a request that "
                        "fetches a slow page can have its connection cut before its answer",
                        settings.client_request_seconds, fetch_limits.deadline)
        click_keys = (click_key, *previous_keys)  # the signing key first: the one verify tries first
        self.recommender = Recommender(settings, self.stores, self.events, click_keys, fetch_limits)
        # /stats and /dashboard read up to STATS_MAX_EVENTS events, seconds each (limits.stats_slots)
        self.stats_slots = stats_slots(settings.threads, settings.fetch_concurrency)
        self.routes = {
            "/": {"GET": self.recommend, "POST": self.recommend},
            "/click": {"GET": self.click},
            "/seen": {"POST": self.seen},
            "/stats": {"GET": self.stats},
            "/healthz": {"GET": self.healthz},
            "/dashboard": {"GET": self.dashboard},
            "/openapi.json": {"GET": self.openapi},
            **{pages.ASSETS + name: {"GET": pages.static_file} for name in pages.STATIC_FILES},
        }

    def describe(self):
        """What this instance serves, as its start says it: the corpora, where events go and which
        keys sign and verify click links (never the keys)."""
        corpora = ", ".join(f"{name} {store.version} ({store.size:,} documents)"
                            + (" [default]" if name == self.settings.default_corpus else "")
                            for name in self.stores.names() if (store := self.stores.get(name)))
        events = "counted, not stored (no MONGODB; warned above)"
        if self.settings.mongodb_uri and uri_problem(self.settings.mongodb_uri):
            events = "not stored (MONGODB unusable: warned above)"  # not "at " and an empty host list
        elif self.settings.mongodb_uri:
            events = f"to MongoDB at {uri_hosts(self.settings.mongodb_uri)}"  # never the URI's password
        keys = "a random key (no CLICK_SECRET; warned above)"
        if self.settings.click_secret or self.settings.click_secret_file:
            keys = "CLICK_SECRET" if self.settings.click_secret else "CLICK_SECRET_FILE"
        previous = len(self.recommender.click_keys) - 1
        if previous:  # a rotation in progress: which old links still count
            keys += f", {previous} previous key{'s' if previous > 1 else ''} accepted"
        figures = "need STATS_TOKEN" if self.stats_token else "open to anyone (no STATS_TOKEN)"
        return (f"serving {corpora or 'no corpus'}; events {events}; click links signed with {keys}; "
                f"figures (/stats, /dashboard) {figures}")

    # -- dispatch -------------------------------------------------------------
    def handle(self, request):
        method = "GET" if request.method == "HEAD" else request.method
        path = request.path.rstrip("/") or "/"
        methods = self.routes.get(path)
        if methods is None:
            response = error_response(ApiError(f"no such endpoint: {request.path}", status=404, code="not_found"))
        elif method == "OPTIONS":
            response = Response(status=204, headers={"Allow": _allowed(methods)})
        elif method not in methods:
            refused = ApiError(f"{request.method} is not allowed on {path}", status=405, code="method_not_allowed")
            if path == "/":  # every error answer of / is a request event (README)
                self.recommender.refused(refused)
            response = error_response(refused, {"Allow": _allowed(methods)})
        else:
            try:
                response = methods[method](request)
            except ApiError as exc:
                response = error_response(exc)
            except Exception:
                log.exception("unexpected error on %s %s", request.method, path)
                response = error_response(ApiError("internal error", status=500, code="internal_error"))
        # functions-framework reads the whole request body into memory after every
        # answer; leave the unread rest (a refused 1 GB upload) to gunicorn, which
        # drains it within bounds or closes the connection.
        request.stream = io.BytesIO()
        if self.settings.cors_origin:
            response.headers["Access-Control-Allow-Origin"] = self.settings.cors_origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        return response

    def base_url(self, request):
        """Where click links point: PUBLIC_URL, else this request's own scheme and host."""
        if self.settings.public_url:
            return self.settings.public_url
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        scheme = proto if proto in ("http", "https") else request.scheme
        # Werkzeug gives "" for a Host with invalid characters, and the bind address (0.0.0.0) for none
        if not request.host or not request.environ.get("HTTP_HOST"):
            raise ApiError("the Host header is missing or not a valid host name: click links cannot be built "
                           "(send a valid Host, or set PUBLIC_URL)", code="invalid_host")
        return f"{scheme}://{request.host}"

    # -- endpoints --------------------------------------------------------------
    def recommend(self, request):
        if request.method == "HEAD":
            return self.recommend_head(request)
        if pages.wants_html(request):
            return pages.try_it(self, request)
        return answer_response(self.ask(request)[1])

    def recommend_head(self, request):
        """HEAD /: the query is checked as a GET's is (the same 4xx), then a 200 with no body, and
        nothing is looked up or fetched. A HEAD records no event (seen_by_a_reader), so a page
        fetched for it would be a request to another site that nobody sees."""
        html = pages.wants_html(request)
        mimetype, headers = ("text/html", pages.PAGE_HEADERS) if html else ("application/json", API_HEADERS)
        try:
            if gives_arguments(request) or not html:  # the page's bare form needs no query
                refuse_own_fetcher(request)  # as ask() does
                parse_query(request, self.settings, self.stores.names())
                self.base_url(request)
        except ApiError as exc:
            if not html:
                raise
            return Response(iter(()), status=exc.status, mimetype=mimetype, headers={**headers, **exc.headers})
        # a body of its own would give a Content-Length that is not the GET's: none is given
        return Response(iter(()), status=200, mimetype=mimetype, headers=headers)

    def ask(self, request, arguments=None, via=None):
        """(query, answer) of a GET or POST /, as JSON or the try-it page (``via``) gives it, or of the
        ``arguments`` of the page's posted form. (A HEAD is answered by recommend_head.)"""
        try:
            refuse_own_fetcher(request)
            query = parse_query(request, self.settings, self.stores.names(), arguments)
            base_url = self.base_url(request)
        except ApiError as exc:
            self.recommender.refused(exc)  # refused before its query is known: counted all the same
            raise
        return query, self.recommender.recommend(query, base_url, crawlers.user_agent(request), via)

    def click(self, request):
        check_query_length(request, self.settings)
        if is_speculative(request):
            # checked as a click's link is (an altered one is a 403), then refused: a browser drops a
            # prefetch that is not a 2xx (the 302 would have been followed and kept), and the reader's
            # click, if it comes, reaches the function and is the one recorded, with its own delay
            self.recommender.click(request.args, record=False)
            raise ApiError("a click link records a reader's click: it is not answered to a prefetch or "
                           "prerender (Sec-Purpose)", status=503, code="prefetch_refused")
        user_agent = crawlers.user_agent(request)
        signals = fetch_metadata.signals(request.headers)
        target = self.recommender.click(request.args, record=seen_by_a_reader(request), user_agent=user_agent,
                                        fetch_signals=signals, unverified=fetch_metadata.unverified(
                                            user_agent, signals, self.links_trustworthy(request)))
        # no Referrer-Policy of ours: the browser's and the site's decide what its article is told (the
        # site's origin, by default; with "no-referrer" the site's analytics had counted every
        # recommended read as direct)
        return Response(status=302, headers={"Location": target, "Cache-Control": "no-store"})

    def links_trustworthy(self, request):
        """Whether browsers send Fetch Metadata to the click links this request follows (https or loopback,
        as base_url builds them); False for a Host no link is built for (that link still redirects)."""
        try:
            return fetch_metadata.trustworthy(self.base_url(request))
        except ApiError:
            return False

    def seen(self, request):
        """POST /seen?...: an answer's list was in a reader's view (the widget posts its seen_url)."""
        check_query_length(request, self.settings)
        self.recommender.seen(request.args, user_agent=crawlers.user_agent(request))
        return Response(status=204, headers={"Cache-Control": "no-store"})

    def require_owner(self, request):
        """A 401 unless the request may read the figures (/stats, /dashboard): before any other check,
        so that nothing of them (not even which corpora have events, a 404's to say) is told."""
        access.require_token(self.stats_token, request)

    def stats(self, request):
        self.require_owner(request)
        corpus, days = parse_filters(request, self.settings)
        if not self.events.uri:
            raise ApiError("statistics need MONGODB (events are not stored)", status=503, code="events_unavailable")
        stats = self.read_events(compute_stats, corpus, days)
        refuse_unheard_of(corpus, days, stats, self.stores.names())
        return json_response(stats)

    def read_events(self, read, corpus, days):
        """``read(database, corpus, days, STATS_MAX_EVENTS)`` (stats.compute, stats.dashboard) under
        stats_slots, for /stats and /dashboard; a Mongo failure is a 503 events_unavailable, its
        __cause__ the PyMongoError, logged by read_outage (once an outage, a reminder a minute)."""
        from pymongo.errors import PyMongoError  # pymongo is not loaded at start (events.py), nor without MONGODB

        try:
            with self.stats_slots.held():
                figures = read(self.events.database(), corpus, days, self.settings.stats_max_events)
        except PyMongoError as exc:
            self.read_outage.failed(exc)
            raise ApiError(f"event database unavailable: {exc.__class__.__name__}", status=503,
                           code="events_unavailable") from exc
        self.read_outage.succeeded()
        return figures

    def dashboard(self, request):
        return pages.dashboard(self, request)

    def openapi(self, request):
        headers = {"Cache-Control": "public, max-age=300"}
        if not self.settings.public_url:  # its server URL is then the request's: a shared cache must know
            headers["Vary"] = "Host, X-Forwarded-Proto"
        return json_response(openapi_document(self.base_url(request)), headers=headers)

    def healthz(self, request):
        default = self.stores.get(self.settings.default_corpus)
        mongo_up, checked_ago = self.events.reachable()
        body = {
            "status": "ok",
            "version": __version__,
            "store": default.describe() if default else None,
            "corpora": {corpus["name"]: corpus for corpus in pages.corpora_of(self.stores)},
            "mongo": {"configured": bool(self.settings.mongodb_uri), "reachable": mongo_up,
                      "checked_seconds_ago": round(checked_ago, 2)},
            "events": self.events.status(),
            "fetches": self.recommender.fetch_slots.status(),
            "stats_reads": self.stats_slots.status(),
        }
        if not access.may_read_figures(self.stats_token, request):
            # the counts are traffic (one event written for each answer, click and view; fetches in
            # flight): polled, they told anyone the site's figures. A probe needs only the status
            # and Mongo's error by its kind: pymongo's message names the hosts
            body["events"] = {"last_error": error_kind(body["events"]["last_error"]),
                              "capacity": body["events"]["capacity"]}
            body["fetches"] = {"limit": body["fetches"]["limit"]}
            body["stats_reads"] = {"limit": body["stats_reads"]["limit"]}
        if self.settings.mongodb_uri and not mongo_up:
            body["status"] = "degraded"  # answers still go out (events wait in the buffer): a 200
        if default is None:  # every request that names no corpus is refused: not ready, and said so
            body["status"] = "no_store"
            return json_response(body, status=503)
        return json_response(body)


def create_app(env=None):
    """The App for this environment; ConfigError/StoreError say why it cannot start."""
    env = os.environ if env is None else env
    return App(Settings.from_env(env), env)
