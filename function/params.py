"""Request -> Query: every parameter checked, every mistake a clear 4xx."""

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl, unquote_to_bytes

from .config import NAME
from .errors import ApiError
from .fetch_policy import MAX_URL_LENGTH, parse_url
from .urls import is_tracking, with_scheme

QUERY_KINDS = ("url", "text", "id")
FIELDS = QUERY_KINDS + ("k", "corpus", "min_score", "engine")
MAX_ID_CHARS = 512
DEFAULT_K = 5  # results when a request gives no k
FORM_TYPE = "application/x-www-form-urlencoded"
# an escape of a byte past ASCII: with none, and no raw byte past it, the decoded query string is ASCII
NON_ASCII_ESCAPE = re.compile(rb"%[89A-Fa-f][0-9A-Fa-f]")


@dataclass(frozen=True)
class Query:
    kind: str  # "url", "text" or "id"
    value: str
    k: int
    corpus: str
    min_score: float
    engine: str  # "" : chosen by the traffic split


def _bad(message, code="invalid_parameter", status=400):
    return ApiError(message, status=status, code=code)


def names_for_message(names, most=10):
    """The caller's parameter names for an error message: escaped, cut short, at most ``most``."""
    names = sorted(names)
    shown = ", ".join(ascii(name)[:40] for name in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def refuse_unknown(names, known, expected):
    unknown = set(names) - set(known)
    if unknown:
        raise _bad(f"unknown parameter(s): {names_for_message(unknown)}; expected {expected}",
                   code="unknown_parameter")


def seen_by_a_reader(request):
    """False for a HEAD: a link checker's or an unfurler's look at a URL found in a page. Its
    answer is the GET's, but no reader saw links or clicked one, so it records no event (counted,
    it would lower the click-through site owners judge by)."""
    return request.method != "HEAD"


# What browsers send with a fetch made ahead of a navigation the reader may never make: speculation
# rules and <link rel=prefetch> (Sec-Purpose: prefetch, prerender as "prefetch;prerender"), and the
# older spellings (Purpose, X-Purpose, X-Moz)
SPECULATIVE_HEADERS = ("Sec-Purpose", "Purpose", "X-Purpose", "X-Moz")


def is_speculative(request):
    """Whether ``request`` is a browser's prefetch or prerender of a link, not a reader following it.
    Answered as a click, a page whose speculation rules prefetch the links in view (or on hover) had
    counted a click for every link prefetched, five at a time, before any reader clicked; and the
    reader's click, served from the prefetch, never reached the function."""
    return any(word.strip().lower() in ("prefetch", "prerender", "preview")
               for name in SPECULATIVE_HEADERS
               for value in request.headers.getlist(name)
               for word in value.replace(",", ";").split(";"))


def check_query_length(request, settings):
    if len(request.query_string) > settings.max_query_bytes:
        raise _bad(f"query string longer than {settings.max_query_bytes} bytes (MAX_QUERY_BYTES); "
                   "POST long text to / as JSON",
                   code="query_too_long", status=414)


def query_arguments(request, settings):
    """{name: value} of the query string, each name given once; 414 past MAX_QUERY_BYTES. Tracking
    parameters a platform appends to a link it passes on (utm_*, fbclid) are left out: a shared
    link to the dashboard or to an answer had been a 400 for "unknown parameter"."""
    check_query_length(request, settings)
    query = request.query_string
    try:  # werkzeug keeps an escape that is not UTF-8 ("caf%E9") as literal text
        if not query.isascii() or NON_ASCII_ESCAPE.search(query):  # else ASCII: decoding it again is waste
            unquote_to_bytes(query).decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("the query string is not UTF-8 once its %-escapes are decoded (percent-encode UTF-8 bytes)")
    return _each_once((name, value) for name, value in request.args.items(multi=True) if not is_tracking(name))


def gives_arguments(request):
    """Whether the query string gives anything but tracking parameters: the try-it page's bare
    form is its answer to none."""
    return any(not is_tracking(name) for name in request.args)


def _each_once(pairs, twice="parameter {} given more than once", code="invalid_parameter"):
    """{name: value} of a query string's, a form's or a JSON object's (name, value) pairs; 400 for a
    name given twice (json.loads would keep the last silently)."""
    fields = {}
    for name, value in pairs:
        if name in fields:
            raise _bad(twice.format(names_for_message([name])), code=code)
        fields[name] = value
    return fields


def _with_numbers(arguments):
    """Text arguments (a query string's, a form's) with k and min_score read as numbers."""
    fields = dict(arguments)
    for name in ("k", "min_score"):
        if fields.get(name, "") != "":  # "?k=" is not given, as for every field
            fields[name] = _number_from_text(name, fields[name])
    return fields


def whole_number(raw, name, low, high):
    """Query-string text as an int from ``low`` to ``high``, read as the API's k is (_read_number:
    "days=７" is /stats' 7 as "k=５" is 5); ApiError (400) for anything else."""
    try:
        value = _read_number(raw, int) if len(raw) <= 40 else None  # int() of 5,000 digits is slow
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise _bad(f"'{name}' must be a whole number from {low} to {high}, got {raw[:40]!r}")
    return value


def _read_number(raw, cast):
    """``cast`` (int or float) of query-string text: spaces around, a sign, and any script's decimal
    digits (full-width, Arabic-Indic) are a number; "1_0" is not (ValueError)."""
    if "_" in raw:  # int() and float() read "1_0" as 10: a Python spelling, not a number
        raise ValueError(raw)
    return cast(raw)


def _number_from_text(name, raw):
    """k as an int, min_score as a float (_read_number)."""
    try:
        return _read_number(raw, int if name == "k" else float)
    except ValueError:
        kind = "an integer" if name == "k" else "a number"
        raise _bad(f"'{name}' must be {kind}, got {raw[:40]!r}") from None


def _posted_body(request, settings, mimetype, where, what):
    """A POST's body, of ``mimetype`` and at most MAX_BODY_BYTES, read whole; ApiError else."""
    if request.query_string:  # what a POST puts there would be ignored: said, not dropped
        check_query_length(request, settings)
        raise _bad(f"a POST gives every field in its {where}, not in the query string (got "
                   f"{names_for_message(request.args) or 'a query string'})", code="unknown_parameter")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise _bad(f"request body over {settings.max_body_bytes} bytes", code="body_too_large", status=413)
    if (request.mimetype or "") != mimetype:
        raise _bad(f"POST a {what} with Content-Type: {mimetype}", code="unsupported_media_type", status=415)
    # nothing here decodes a content coding: a gzip'd body had been "not valid JSON: can't decode byte
    # 0x8b", and a coding named over a plain body was read as if absent
    coding = request.headers.get("Content-Encoding", "").strip()
    if coding and coding.lower() != "identity":
        raise _bad(f"request body has Content-Encoding: {coding[:40]}; send it uncompressed (no Content-Encoding)",
                   code="unsupported_media_type", status=415)
    try:
        body = request.stream.read(settings.max_body_bytes + 1)
    except Exception as exc:  # the server's parser of a malformed chunked body, or the client gone mid-body
        raise _bad(f"request body could not be read ({exc.__class__.__name__}): malformed chunked encoding "
                   "or a connection closed early", code="unreadable_body") from None
    if len(body) > settings.max_body_bytes:
        raise _bad(f"request body over {settings.max_body_bytes} bytes", code="body_too_large", status=413)
    if request.content_length is not None and len(body) < request.content_length:  # the client closed early
        raise _bad(f"request body ended after {len(body)} of the {request.content_length} bytes its "
                   "Content-Length declares", code="unreadable_body")
    return body


def _from_json(request, settings):
    body = _posted_body(request, settings, "application/json", "JSON body", "JSON object")
    if not body.strip():  # json.loads would say "Expecting value: line 1 column 1 (char 0)"
        raise _bad('request body is empty: POST a JSON object, e.g. {"text": "..."}', code="invalid_json")
    try:
        fields = json.loads(body, object_pairs_hook=lambda pairs: _each_once(
            pairs, "request body gives {} more than once", code="invalid_json"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    except ValueError:  # Python's bound on digits in an integer (4300): its message names sys internals
        raise _bad("request body is not valid JSON: a number has too many digits", code="invalid_json") from None
    except RecursionError:  # "[[[[..." nested deeper than the parser's recursion limit
        raise _bad("request body is not valid JSON: nested too deeply", code="invalid_json") from None
    if not isinstance(fields, dict):
        raise _bad("request body must be a JSON object", code="invalid_json")
    return fields


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def form_arguments(request, settings):
    """{name: text} of a form POSTed by the try-it page (urlencoded, as browsers send a form), each
    name once: what a GET's query string gives, from a body, since a pasted article outgrows a URL."""
    body = _posted_body(request, settings, FORM_TYPE, "form", "form")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _bad("the form is not UTF-8, its %-escapes decoded (percent-encode UTF-8 bytes)") from None
    return _each_once(pairs)


def _has_body(request):
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _given(fields, name, default):
    """A field's value; ``default`` where it is null or an empty string, which count as not given."""
    value = fields.get(name)
    return default if value is None or value == "" else value


@lru_cache(maxsize=1024)
def _fetchable_url(value):
    """``value`` with a scheme, once parse_url finds nothing in it that the fetcher would refuse: refused
    here, before the corpus or a cache is asked (a FetchError, never remembered). A page's widget asks
    with the same url= on every view: remembered, it is not parsed again (~17 us a request)."""
    url = with_scheme(value, "https")
    parse_url(url)
    return url


def parse_query(request, settings, corpora, arguments=None):
    """The Query of a GET / or POST / request, or of the ``arguments`` of a form posted to it;
    ApiError for anything wrong."""
    if arguments is not None:
        fields = _with_numbers(arguments)
    elif request.method == "POST":
        fields = _from_json(request, settings)
    else:
        fields = _with_numbers(query_arguments(request, settings))
    refuse_unknown(fields, FIELDS, "one of url, text or id, and optionally k, corpus, min_score, engine")
    given = [kind for kind in QUERY_KINDS if fields.get(kind) not in (None, "")]
    if not given:
        if arguments is None and request.method != "POST" and _has_body(request):
            raise _bad("give one of 'url', 'text' or 'id' in the query string: a GET's body is not read "
                       "(POST a JSON body instead)", code="missing_query")
        raise _bad("give one of 'url', 'text' or 'id'", code="missing_query")
    if len(given) > 1:
        raise _bad(f"give only one of 'url', 'text' or 'id' (got {', '.join(given)})", code="ambiguous_query")
    kind = given[0]
    value = fields[kind]
    # (past 2 ** 53 a float no longer holds every integer: such an id is not the one sent)
    if kind == "id" and isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        value = int(value)  # 1001.0 is the integer 1001 to JSON Schema, as "k": 3.0 is 3
    if kind == "id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):  # an id may be a whole number too ("id": 1.5 is neither)
        raise _bad(f"'{kind}' must be a string" + (" or a whole number" if kind == "id" else ""))
    if not _encodable(value):  # JSON "\ud800": a lone surrogate cannot be hashed, stored or fetched
        raise _bad(f"'{kind}' is not valid Unicode (it contains a lone surrogate)")
    value = value.strip()
    if not value:
        raise _bad(f"'{kind}' is empty", code="missing_query")
    if kind == "text" and len(value) > settings.max_text_chars:
        raise _bad(f"'text' is longer than {settings.max_text_chars} characters", code="text_too_large", status=413)
    if kind == "url":
        if len(value) > MAX_URL_LENGTH:
            raise _bad(f"'url' is longer than {MAX_URL_LENGTH} characters", code="invalid_url")
        value = _fetchable_url(value)
    if kind == "id" and len(value) > MAX_ID_CHARS:
        raise _bad(f"'id' is longer than {MAX_ID_CHARS} characters", code="invalid_id")

    k = sent = _given(fields, "k", DEFAULT_K)
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if not isinstance(k, int) or isinstance(k, bool):
        raise _bad("'k' must be an integer")
    if not 1 <= k <= settings.max_k:  # shown as sent, cut as min_score is: 1e308 as an int is 309 digits
        raise _bad(f"'k' must be between 1 and {settings.max_k}, got {str(sent)[:40]}")

    min_score = _given(fields, "min_score", 0.0)
    # (an int is always finite; math.isfinite() would overflow on a 400-digit one)
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or (
            isinstance(min_score, float) and not math.isfinite(min_score)):
        raise _bad("'min_score' must be a number")
    if not -1.0 <= min_score <= 1.0:
        raise _bad(f"'min_score' must be between -1 and 1, got {str(min_score)[:40]}")

    # _given, not "or": a 0, false, [] or {} is a wrong value, not one left out (it had been the default)
    corpus = _given(fields, "corpus", settings.default_corpus)
    if not isinstance(corpus, str) or not NAME.match(corpus):
        raise _bad("'corpus' must be a corpus name (letters, digits, '.', '_', '-')")
    if corpus not in corpora:
        known = ", ".join(corpora) or "none"
        raise ApiError(f"unknown corpus '{corpus}' (available: {known})", status=404, code="unknown_corpus")

    engine = _given(fields, "engine", "")
    if not isinstance(engine, str) or (engine and not NAME.match(engine)):
        raise _bad("'engine' must be an engine name")
    return Query(kind, value, k, corpus, float(min_score), engine)
