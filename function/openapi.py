"""The OpenAPI 3.1 description of every route, served at GET /openapi.json.

Schemas are plain JSON Schema (2020-12, as OpenAPI 3.1 uses it), so the tests
check real answers against them with ``jsonschema``. When an answer changes
shape, change it here too: tests/test_openapi.py fails until both agree.
"""

import copy

from . import __version__
from .access import CHALLENGE
from .config import NAME
from .fetch_policy import MAX_URL_LENGTH
from .params import DEFAULT_K, FORM_TYPE, MAX_ID_CHARS
from .stats import SCORE_BANDS

JSON = "application/json"
HTML = "text/html"


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema):
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema, description):
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description):
    return _json(_ref("Error"), description)


def _param(name, schema, description, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


NUMBER = {"type": "number"}
COUNT = {"type": "integer", "minimum": 0}
INTERVAL = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 2, "maxItems": 2,
            "description": "95% Wilson score interval [low, high] of a proportion"}
# config.NAME in JSON Schema's (ECMA-262) regexes, where "$" lets no final newline through
CORPUS_NAME = {"type": "string", "pattern": NAME.pattern.replace("\\Z", "$")}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z_]+$",
                         "description": "stable, machine-readable: missing_query, ambiguous_query, invalid_parameter, "
                                        "unknown_parameter, unknown_corpus, unknown_engine, unknown_id, invalid_id, invalid_url, invalid_host, "
                                        "invalid_json, unreadable_body, unsupported_media_type, body_too_large, "
                                        "query_too_long, text_too_large, no_known_words, no_article_text, "
                                        "forbidden_address, forbidden_port, domain_not_allowed, own_fetcher, "
                                        "unsupported_content_type, "
                                        "unresolvable_host, upstream_status, page_too_large, too_many_redirects, invalid_redirect, "
                                        "upstream_unreachable, upstream_tls_error, upstream_invalid_response, "
                                        "upstream_timeout, fetch_failed, fetch_busy, store_unavailable, "
                                        "invalid_click_link, invalid_click_signature, prefetch_refused, "
                                        "invalid_seen_link, invalid_seen_signature, not_authorized, "
                                        "events_unavailable, stats_busy, not_found, precondition_failed, method_not_allowed, "
                                        "internal_error; for requests "
                                        "that are not valid HTTP, refused before the function reads them: "
                                        "bad_request, request_timeout, uri_too_long, headers_too_large, "
                                        "expectation_failed, "
                                        "unsupported_transfer_coding, ..."},
                "message": {"type": "string", "minLength": 1, "description": "for people: what went wrong"},
            },
        }},
    },
    "RecommendRequest": {
        "type": "object",
        "description": "Exactly one of url, text or id. (Tolerated beyond this schema: a field that is null "
                       "or an empty string counts as not given.)",
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "maxLength": MAX_URL_LENGTH,
                    "description": "an http(s) page to find related articles for"},
            "text": {"type": "string", "description": "a text (up to MAX_TEXT_CHARS characters)"},
            "id": {"type": ["string", "integer"], "maxLength": MAX_ID_CHARS,
                   "description": "a corpus member's id: its neighbours"},
            "k": {"type": "integer", "minimum": 1, "default": DEFAULT_K,
                  "description": "how many results (up to MAX_K)"},
            "corpus": {**CORPUS_NAME, "description": "default: DEFAULT_CORPUS"},
            "min_score": {"type": "number", "minimum": -1, "maximum": 1, "default": 0},
            "engine": {"type": "string", "description": "force an engine (default: the traffic split)"},
        },
        "oneOf": [{"required": ["url"]}, {"required": ["text"]}, {"required": ["id"]}],
    },
    "Result": {
        "type": "object",
        "required": ["rank", "id", "url", "title", "score", "click_url"],
        "additionalProperties": False,
        "properties": {
            "rank": {"type": "integer", "minimum": 1},
            "id": {"type": "string"},
            "url": {"type": "string", "pattern": "^https?://"},
            "title": {"type": "string"},
            "score": {"type": "number", "description": "cosine similarity to the query"},
            "click_url": {"type": "string", "pattern": "^https?://[^?]+/click\\?",
                          "description": "signed link: records the click, then 302 to url"},
        },
    },
    "Recommendations": {
        "type": "object",
        "required": ["request_id", "corpus", "store_version", "engine", "source", "results", "timings_ms"],
        "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string"},
            "corpus": {"type": "string"},
            "store_version": {"type": "string"},
            "engine": {"type": "string"},
            "source": {"enum": ["text", "fetched", "corpus"],
                       "description": "where the query vector came from"},
            "results": {"type": "array", "items": _ref("Result")},
            "seen_url": {"type": "string", "pattern": "^https?://[^?]+/seen\\?",
                         "description": "with results: POST it (navigator.sendBeacon) once the list is in the "
                                        "reader's view, as the widget does; /stats counts the answers seen and "
                                        "their click-through (ctr_seen)"},
            "timings_ms": {
                "type": "object",
                "required": ["fetch", "extract", "lookup", "total"],
                "additionalProperties": False,
                "properties": {name: {"type": "number", "minimum": 0}
                               for name in ("fetch", "extract", "lookup", "total")},
            },
            "page": {
                "type": "object",
                "description": "only when the page was fetched (source: fetched)",
                "required": ["title", "lang", "cached"],
                "additionalProperties": False,
                "properties": {"title": {"type": "string"}, "lang": {"type": "string"},
                               "cached": {"type": "boolean", "description": "true when this request fetched "
                                          "nothing itself: the worker's cache, or another request's fetch of "
                                          "the same page at the same moment"}},
            },
        },
    },
    "ScoreBands": {
        "type": "object",
        "description": "by score band, low to high, each [low, high) (negative scores in the first, 1 and above in "
                       "the last): share of the links shown with a score in the band that were clicked. Bands with "
                       "no click over many links shown suggest a min_score; low scores sit at low ranks, so a "
                       "band's click-through mixes score and rank",
        "required": SCORE_BANDS,
        "additionalProperties": False,
        "properties": {band: {
            "type": "object",
            "required": ["ctr", "ci95", "clicks", "shown"],
            "additionalProperties": False,
            "properties": {"ctr": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
                           "ci95": _nullable(INTERVAL), "clicks": COUNT, "shown": COUNT},
        } for band in SCORE_BANDS},
    },
    "Summary": {
        "type": "object",
        "required": ["requests", "empty_answers", "errors", "clicks", "ctr", "ctr_ci95", "clicks_per_request",
                     "seen", "ctr_seen", "ctr_seen_ci95", "ctr_by_rank", "ctr_by_score", "latency_ms",
                     "click_delay_ms", "mean_top_score"],
        "properties": {
            "requests": {**COUNT, "description": "requests answered (status 200; the total is requests + "
                         "errors), empty answers included"},
            "empty_answers": {**COUNT, "description": "answers with no result (min_score, nothing similar): "
                              "in `requests`, not in click-through (nothing was shown)"},
            "errors": {**COUNT, "description": "requests answered with an error"},
            "clicks": {**COUNT, "description": "clicks on the answers counted"},
            "ctr": _nullable({"type": "number", "minimum": 0, "maximum": 1,
                              "description": "share of answers with results that had at least one click"}),
            "ctr_ci95": _nullable(INTERVAL),
            "clicks_per_request": _nullable({"type": "number", "minimum": 0,
                                             "description": "clicks per answer with results"}),
            "seen": {**COUNT, "description": "answers with results whose list was in a reader's view (the "
                                             "widget posts the answer's seen_url; a backend's links send none)"},
            "ctr_seen": _nullable({"type": "number", "minimum": 0, "maximum": 1,
                                   "description": "share of the answers seen that had at least one click"}),
            "ctr_seen_ci95": _nullable(INTERVAL),
            "ctr_by_rank": {
                "type": "object",
                "description": "by rank (1 = top): share of answers showing that rank whose result there was clicked",
                "propertyNames": {"pattern": "^[1-9][0-9]*$"},
                "additionalProperties": {
                    "type": "object",
                    "required": ["ctr", "ci95", "clicks", "shown"],
                    "additionalProperties": False,
                    "properties": {"ctr": {"type": "number", "minimum": 0, "maximum": 1},
                                   "ci95": INTERVAL, "clicks": COUNT, "shown": COUNT},
                },
            },
            "ctr_by_score": {**_ref("ScoreBands"), "description": (
                "by score band, over the answers these figures count: overall, every engine's links pooled; in "
                "`engines`, that engine's from the split. A min_score is chosen from an engine's own bands, "
                "in ctr_by_score_by_engine: scores are each engine's")},
            "latency_ms": {
                "type": "object",
                "required": ["p50", "p95"],
                "additionalProperties": False,
                "properties": {"p50": _nullable(NUMBER), "p95": _nullable(NUMBER)},
            },
            "click_delay_ms": {
                "type": "object",
                "required": ["median"],
                "additionalProperties": False,
                "properties": {"median": _nullable(NUMBER)},
            },
            "mean_top_score": _nullable(NUMBER),
        },
    },
    "Stats": {
        "allOf": [_ref("Summary")],
        "unevaluatedProperties": False,
        "type": "object",
        "required": ["corpus", "since", "truncated", "errors_truncated", "errors_since", "engines",
                     "engine_named_requests", "ctr_by_score_by_engine", "left_out"],
        "properties": {
            "corpus": _nullable({"type": "string"}),
            "since": _nullable({"type": "string", "format": "date-time"}),
            "truncated": {"type": "boolean",
                          "description": "more events than STATS_MAX_EVENTS: the figures count from `since`, the "
                                         "oldest event read, instead of the whole period asked for"},
            "errors_truncated": {"type": "boolean",
                                 "description": "more error answers since `since` than STATS_MAX_EVENTS: `errors` "
                                                "counts the newest, from `errors_since` (errors do not narrow "
                                                "the window)"},
            "errors_since": _nullable({"type": "string", "format": "date-time"}),
            "engines": {"type": "object",
                        "additionalProperties": {"allOf": [_ref("Summary")], "unevaluatedProperties": False},
                        "description": "the same figures for each engine, over the requests the traffic split "
                                       "assigned (ENGINE_WEIGHTS): compare their ctr_ci95"},
            "engine_named_requests": {**COUNT, "description": "answered requests that named their engine "
                                                               "(engine=): in the overall figures, not in `engines`"},
            "ctr_by_score_by_engine": {
                "type": "object", "additionalProperties": _ref("ScoreBands"),
                "description": "ctr_by_score of each engine that showed links, over all its answers: those the "
                               "split assigned and those that named it (engine=) alike. A min_score is chosen "
                               "from its engine's own (LSI's cosines run higher than tfidf's)"},
            "left_out": {
                "type": "object", "additionalProperties": False,
                "required": ["crawler_requests", "crawler_clicks", "try_it_answers", "other_clicks",
                             "unverified_clicks"],
                "properties": {
                    "crawler_requests": {**COUNT, "description": "answers whose User-Agent names a crawler"},
                    "crawler_clicks": {**COUNT, "description": "clicks by a crawler, an HTTP library, or "
                                                               "with no User-Agent (one a link: every "
                                                               "crawler's click on a link shares its id)"},
                    "try_it_answers": {**COUNT, "description": "answers shown on the try-it page"},
                    "other_clicks": {**COUNT, "description": "readers' clicks on an answer not counted: "
                                                             "one before the window, the try-it page's, a "
                                                             "crawler's"},
                    "unverified_clicks": {**COUNT, "description": "clicks whose User-Agent claims a browser that "
                                                                  "sends Fetch Metadata (Chrome 76+, Firefox 90+, "
                                                                  "Safari 16.4+) to an https link, without it: "
                                                                  "no Sec-Fetch-* header, not a navigation, or "
                                                                  "(Chromium, Firefox) no Sec-Fetch-User: a "
                                                                  "script's, not a reader's"},
                },
                "description": "events of the window left out of every other figure (at most STATS_MAX_EVENTS "
                               "each); errors are counted whoever met them"},
        },
    },
    "StoreInfo": {
        "type": "object",
        "required": ["name", "version", "documents", "built_at", "engines", "default_engine"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "documents": COUNT,
            "built_at": {"type": "string"},
            "engines": {"type": "array", "items": {"type": "string"}},
            "default_engine": {"type": "string"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "version", "store", "corpora", "mongo", "events", "fetches", "stats_reads"],
        "additionalProperties": False,
        "properties": {
            "status": {"enum": ["ok", "degraded", "no_store"],
                       "description": "degraded: MONGODB is set but does not answer; no_store: DEFAULT_CORPUS has no "
                                      "store (a 503)"},
            "version": {"type": "string"},
            "store": _nullable(_ref("StoreInfo")),
            "corpora": {"type": "object", "additionalProperties": _ref("StoreInfo")},
            "mongo": {
                "type": "object",
                "required": ["configured", "reachable"],
                "additionalProperties": False,
                "properties": {"configured": {"type": "boolean"}, "reachable": {"type": "boolean"},
                               "checked_seconds_ago": {
                                   "type": "number", "minimum": 0,
                                   "description": "how old reachable is: one check of Mongo at a time, its answer "
                                                  "reused for 1 s and while the next one runs"}},
            },
            "events": {
                "type": "object",
                "description": "with STATS_TOKEN set, buffered, dropped and written (traffic) only to the owner, "
                               "and last_error, the writer's last Mongo failure, as its kind only "
                               "(ServerSelectionTimeoutError): its message names the Mongo hosts",
                "required": ["last_error", "capacity"],
                "additionalProperties": False,
                "properties": {"buffered": COUNT, "dropped": COUNT, "written": COUNT, "capacity": COUNT,
                               "last_error": _nullable({"type": "string"})},
            },
            "fetches": {
                "type": "object",
                "description": "this worker's requests waiting on page fetches (FETCH_CONCURRENCY); with "
                               "STATS_TOKEN set, waiting and refused only to the owner",
                "required": ["limit"],
                "additionalProperties": False,
                "properties": {"waiting": COUNT, "limit": COUNT, "refused": COUNT},
            },
            "stats_reads": {
                "type": "object",
                "description": "this worker's /stats and /dashboard requests reading the events (THREADS - "
                               "FETCH_CONCURRENCY - 1, at most THREADS / 4 and at least 1: a thread free of "
                               "them and of page fetches), "
                               "and those refused with stats_busy; with STATS_TOKEN set, waiting and "
                               "refused only to the owner",
                "required": ["limit"],
                "additionalProperties": False,
                "properties": {"waiting": COUNT, "limit": COUNT, "refused": COUNT},
            },
        },
    },
}

QUERY_PARAMETERS = [
    _param("url", {"type": "string", "maxLength": MAX_URL_LENGTH}, "an http(s) page: related articles for it"),
    _param("text", {"type": "string"}, "a text: related articles for it"),
    _param("id", {"type": "string", "maxLength": MAX_ID_CHARS}, "a corpus member's id: its neighbours, without itself"),
    _param("k", {"type": "integer", "minimum": 1, "default": DEFAULT_K}, "how many results (up to MAX_K)"),
    _param("corpus", CORPUS_NAME, "which corpus (default: DEFAULT_CORPUS)"),
    _param("min_score", {"type": "number", "minimum": -1, "maximum": 1, "default": 0}, "drop results scoring less"),
    _param("engine", {"type": "string"}, "force an engine (default: ENGINE_WEIGHTS' split)"),
]
# /stats and /dashboard when STATS_TOKEN is set (function/access.py); {}: open when it is not
FIGURES_SECURITY = [{"statsToken": []}, {"statsTokenBasic": []}, {}]
SECURITY_SCHEMES = {
    "statsToken": {"type": "http", "scheme": "bearer", "description": "STATS_TOKEN, when it is set"},
    "statsTokenBasic": {"type": "http", "scheme": "basic",
                        "description": "STATS_TOKEN as the password (any user name): a browser's prompt"},
}
CHALLENGE_HEADER = {"WWW-Authenticate": {"schema": {"const": CHALLENGE["WWW-Authenticate"]},
                                         "description": "HTTP Basic's challenge: a browser asks for the token"}}
FILTER_PARAMETERS = [
    _param("corpus", CORPUS_NAME, "only this corpus (default: all)"),
    _param("days", {"type": "integer", "minimum": 1, "maximum": 3650}, "only the last N days (default: all time)"),
]
RECOMMEND_ERRORS = {
    "400": _error("a bad parameter: missing, ambiguous, unknown or out of range"),
    "403": _error("the URL's address is not allowed (private, loopback, or outside FETCH_ALLOWED_DOMAINS), nor its "
                  "port (forbidden_port: outside FETCH_PORTS), or the caller is the function's own fetcher "
                  "(own_fetcher: a page redirected it here)"),
    "404": _error("unknown corpus or id"),
    "413": _error("text or body too large"),
    "414": _error("query string too long: POST long text as JSON"),
    "415": _error("the page is not HTML or text, or the POST body is not JSON (nor the try-it page's form)"),
    "422": _error("the page has no article, answered an error, is over FETCH_MAX_BYTES (page_too_large), "
                  "redirects too often (too_many_redirects) or to a URL that is not a valid http(s) one "
                  "(invalid_redirect), its host does not resolve, or the page or text has no word the corpus "
                  "knows (no_known_words)"),
    "502": _error("the page's server failed"),
    "503": {**_error("fetch_busy: FETCH_CONCURRENCY requests of this worker already wait on page fetches; "
                     "store_unavailable: the store version was removed while being served"),
            "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "seconds to wait: 1"}}},
    "504": _error("the page's server timed out"),
}
HTML_PAGE = {"type": "string", "description": "an HTML page"}
# a browser (Accept preferring text/html) gets each of these as the try-it page, its message in it
RECOMMEND_ERRORS = {status: {**answer, "content": {**answer["content"], HTML: {"schema": HTML_PAGE}}}
                    for status, answer in RECOMMEND_ERRORS.items()}


def paths():
    recommend_ok = {
        "description": "the recommendations; a browser (Accept preferring text/html) gets the try-it page, "
                       "with the form when no query is given",
        "content": {JSON: {"schema": _ref("Recommendations")}, HTML: {"schema": HTML_PAGE}},
    }
    recommend = {"summary": "Related articles for a URL, a text or a corpus member (or the try-it page)",
                 "operationId": "recommend", "parameters": QUERY_PARAMETERS,
                 "responses": {"200": recommend_ok, **RECOMMEND_ERRORS}}
    click = {
        "summary": "A result's click_url: records the click, then redirects to the article",
        "operationId": "click",
        "parameters": [_param(name, {"type": "string"}, meaning, required=True) for name, meaning in (
            ("r", "request id"), ("c", "corpus"), ("e", "engine"), ("k", "rank"), ("d", "document id"),
            ("u", "target URL"), ("t", "issued at (ms since the epoch)"), ("s", "HMAC-SHA256 tag"))],
        "responses": {
            "302": {"description": "to the article (a link older than CLICK_TTL_DAYS too, with no click "
                                   "recorded)", "headers": {
                "Location": {"schema": {"type": "string"}, "description": "the article's URL"}}},
            "400": _error("a field missing, repeated or unknown, or not what a signed link holds (a rank or "
                          "time that is not a number, a target that is not http(s)); an issue time ahead is no "
                          "refusal: the click is kept with a delay of 0 (marked issued_ahead_ms past 5 minutes "
                          "ahead)"),
            "403": _error("the signature does not match: altered or foreign link, or signed with a key no longer "
                          "accepted (neither CLICK_SECRET nor in CLICK_SECRET_PREVIOUS)"),
            "414": _error("a query string over MAX_QUERY_BYTES"),
            "503": _error("prefetch_refused: a browser's prefetch or prerender of the link (Sec-Purpose: "
                          "prefetch), which records no click; the reader's own click is answered the 302"),
        },
    }
    seen = {
        "summary": "An answer's seen_url: records that its list was in a reader's view, once per answer",
        "operationId": "seen",
        "parameters": [_param(name, {"type": "string"}, meaning, required=True) for name, meaning in (
            ("r", "request id"), ("c", "corpus"), ("e", "engine"), ("t", "issued at (ms since the epoch)"),
            ("s", "HMAC-SHA256 tag"))],
        "responses": {
            "204": {"description": "recorded (the first time; a link older than CLICK_TTL_DAYS, or issued further "
                                   "ahead than that, records nothing; one issued ahead is kept with a delay of 0)"},
            "400": _error("a field missing, repeated or unknown, or an issue time that is not a number"),
            "403": _error("the signature does not match: altered or foreign link (a click link is not one), or "
                          "signed with a key no longer accepted (neither CLICK_SECRET nor in CLICK_SECRET_PREVIOUS)"),
            "414": _error("a query string over MAX_QUERY_BYTES"),
        },
    }
    preflight = {"summary": "CORS preflight", "responses": {"204": {"description": "allowed methods and headers"}}}
    return {
        "/": {
            "get": recommend,
            "head": {**recommend, "operationId": "recommendHead",
                     "summary": "The query's parameters checked as GET checks them, then 200 with no body: "
                                "nothing looked up or fetched, no request event (link checkers, unfurlers)",
                     "description": "What only the lookup or the fetch finds (an unknown id, a forbidden or "
                                    "failing page, no known word) is a 200 here: the GET's to say.",
                     "responses": {"200": {"description": "the query's parameters are valid (no body)",
                                           "content": {JSON: {}, HTML: {}}},
                                   **{status: RECOMMEND_ERRORS[status] for status in ("400", "404", "413", "414")}}},
            "post": {"summary": "The same, with the query as a JSON body", "operationId": "recommendPost",
                     "description": "Every field in the body, each once: a query string, or a field given twice, "
                                    "is a 400 (unknown_parameter, invalid_json), not ignored. The try-it page "
                                    "posts its form (urlencoded, Accept preferring text/html): what fits in "
                                    "MAX_QUERY_BYTES is a 303 to the GET of it, a longer text is answered as "
                                    "the page; any other urlencoded POST is a 415.",
                     "requestBody": {"required": True, "content": {
                         JSON: {"schema": _ref("RecommendRequest")},
                         FORM_TYPE: {"schema": {"type": "object", "additionalProperties": {"type": "string"},
                                           "description": "the try-it page's form: RecommendRequest's fields "
                                                          "as text, as a query string gives them"}}}},
                     "responses": {"200": {**recommend_ok, "description": "the recommendations; the try-it page "
                                                                          "for its posted form"},
                                   "303": {"description": "the try-it form's post, when it fits in a URL: to the "
                                                          "GET of it",
                                           "headers": {"Location": {"schema": {"type": "string"},
                                                                    "description": "/?the form's fields"}}},
                                   **RECOMMEND_ERRORS}},
            "options": {**preflight, "operationId": "recommendPreflight"},
        },
        "/click": {"get": click, "head": {
            **click, "operationId": "clickHead",
            "summary": "The same answer as GET, without recording a click (link checkers, unfurlers)"}},
        "/seen": {"post": seen},
        "/stats": {"get": {
            "summary": "Requests, clicks, click-through overall, by rank, by score and by engine (95% intervals), latency",
            "operationId": "stats", "parameters": FILTER_PARAMETERS, "security": FIGURES_SECURITY,
            "responses": {"200": _json(_ref("Stats"), "the figures"),
                          "400": _error("a bad, repeated or unknown filter"),
                          "401": {**_error("STATS_TOKEN is set, and the request does not give it (not_authorized): "
                                           "checked before anything else"), "headers": CHALLENGE_HEADER},
                          "404": _error("a corpus neither served nor named by any event read (unknown_corpus)"),
                          "414": _error("a query string over MAX_QUERY_BYTES"),
                          "503": {**_error("MONGODB is not set, or does not answer (events_unavailable); or "
                                           "THREADS - FETCH_CONCURRENCY - 1 (at most THREADS / 4, at least 1) /stats "
                                           "and /dashboard requests of this "
                                           "worker already read the events (stats_busy)"),
                                  "headers": {"Retry-After": {"schema": {"type": "string"},
                                                              "description": "stats_busy: seconds to wait, 1"}}}},
        }},
        "/healthz": {"get": {
            "summary": "Liveness: the stores, whether Mongo answers, the event buffer", "operationId": "health",
            "responses": {"200": _json(_ref("Health"), "alive and ready (status: ok, or degraded when Mongo "
                                                         "does not answer: answers still go out)"),
                          "503": _json(_ref("Health"), "no store for DEFAULT_CORPUS (status: no_store): every "
                                                       "request that names no corpus is refused")},
        }},
        "/dashboard": {"get": {
            "summary": "The figures of /stats drawn as charts, for people", "operationId": "dashboard",
            "parameters": FILTER_PARAMETERS, "security": FIGURES_SECURITY,
            "responses": {
                "200": {"description": "the dashboard", "content": {HTML: {"schema": HTML_PAGE}}},
                "400": {"description": "a bad filter, said in the page", "content": {HTML: {"schema": HTML_PAGE}}},
                "401": {"description": "STATS_TOKEN is set, and the request does not give it, said in the page",
                        "content": {HTML: {"schema": HTML_PAGE}}, "headers": CHALLENGE_HEADER},
                "404": {"description": "a corpus neither served nor named by any event read, said in the page",
                        "content": {HTML: {"schema": HTML_PAGE}}},
                "414": {"description": "a query string over MAX_QUERY_BYTES, said in the page",
                        "content": {HTML: {"schema": HTML_PAGE}}},
                "503": {"description": "no event database (not set or not answering), or too many readers of "
                                       "the events at once (stats_busy), said in the page",
                        "content": {HTML: {"schema": HTML_PAGE}}},
            },
        }},
        "/openapi.json": {"get": {
            "summary": "This description", "operationId": "openapi",
            "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "OpenAPI 3.1"),
                          "400": _error("no valid Host to name this server by (invalid_host)")},
        }},
        "/assets/site.css": {"get": {"summary": "The pages' stylesheet", "operationId": "stylesheet",
                                     "responses": {"200": {"description": "CSS", "content": {"text/css": {}}}}}},
        "/assets/icon.svg": {"get": {"summary": "The pages' icon", "operationId": "icon",
                                     "responses": {"200": {"description": "SVG",
                                                           "content": {"image/svg+xml": {}}}}}},
        "/assets/widget.js": {"get": {"summary": "The see-also list for a site's own pages: a script tag asks "
                                                 "GET /?url= about its page and lists the answer's click links",
                                      "operationId": "widget",
                                      "responses": {"200": {"description": "JavaScript",
                                                            "content": {"text/javascript": {}}},
                                                    "304": {"description": "the copy If-None-Match names (its ETag)"},
                                                    "412": _error("If-Match names another copy "
                                                                  "(precondition_failed)")}}},
    }


def with_default_error(path_items):
    """Every operation also documents ``default``: the JSON error of anything unforeseen (500 internal_error)."""
    for item in path_items.values():
        for operation in item.values():
            operation["responses"].setdefault("default", _error("an unexpected failure (500 internal_error)"))
    return path_items


def document(server_url=None):
    """The OpenAPI document; ``server_url`` (this deployment's base URL) goes into ``servers``."""
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "related-content",
            "version": __version__,
            "description": "Related-content recommendations: give the URL or the text of an article, get the "
                           "most similar articles of a corpus as signed click-tracking links. Every error is "
                           "JSON: {\"error\": {\"code\", \"message\"}} (except for a browser's GET / or /dashboard, "
                           "which get the page, saying what went wrong); any route answers 404 (unknown path) and "
                           "405 (method) that way, and 500 (internal_error) should never happen.",
        },
        "paths": with_default_error(paths()),
        "components": {"schemas": copy.deepcopy(SCHEMAS), "securitySchemes": copy.deepcopy(SECURITY_SCHEMES)},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
