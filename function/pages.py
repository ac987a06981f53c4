"""The human-facing pages: the try-it page on GET / (and its form, posted to /) and the dashboard.

Same handler, same pipeline as the JSON API; only the rendering differs.
A browser (Accept prefers text/html over JSON) gets HTML; curl and fetch()
(Accept: */*) keep getting JSON. Templates are Jinja2 with autoescape on,
every link is checked to be http(s), and the pages are served under a
Content-Security-Policy that allows no script and no inline style at all.
"""

import gzip
import hashlib
import re
import unicodedata
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes, urlencode, urlsplit

from flask import Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from . import charts
from .errors import ApiError
from .params import DEFAULT_K, FORM_TYPE, form_arguments, gives_arguments, whole_number
from .stats import dashboard as dashboard_data
from .stats import parse_filters, refuse_unheard_of, suggested_min_scores
from .urls import normalise_url, unseen

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
# Served under /assets/, not /static/: the Flask app of functions-framework owns /static/<file> itself.
ASSETS = "/assets/"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".js": "text/javascript; charset=utf-8"}
STATIC_FILES = {p.name: (p.suffix, p.read_bytes()) for p in sorted(STATIC.iterdir())
                if p.suffix in STATIC_TYPES} if STATIC.is_dir() else {}
# A content hash in the stylesheet's URL: browsers may keep it for long, and see a new one at once.
STATIC_VERSIONS = {name: hashlib.sha256(body).hexdigest()[:10] for name, (_, body) in STATIC_FILES.items()}
# Compressed once, for the clients that take gzip: the widget is fetched on the site's pages by every reader
# whose cache (5 minutes, its tag naming no version) has run out, and is a third of its size so (14 -> 5.2 KB).
# mtime 0: the same bytes from every instance.
STATIC_GZIPPED = {name: gzip.compress(body, 9, mtime=0) for name, (_, body) in STATIC_FILES.items()}

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "same-origin",
    "Vary": "Accept",
}
DAY_CHOICES = (1, 7, 30, 90, 365)
ERROR_TITLES = {
    400: "Please check the query", 401: "The figures are private", 403: "That address is not allowed",
    404: "Not found", 410: "That link has expired", 413: "That is too large", 414: "That is too long",
    415: "That is not a web page", 422: "No article to work with", 500: "Something went wrong on our side",
    502: "The page's server failed", 503: "Not available right now", 504: "The page's server was too slow",
}


# a text's 422 is no missing article ("No article to work with" had headed it)
CODE_TITLES = {"no_known_words": "No word the corpus knows"}


def http_url(value):
    """``value`` if it is an absolute http(s) URL, else None: pages never link anything else."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


# a run of %-escapes of bytes past ASCII: UTF-8 letters as a link spells them ("cr%C3%A8me")
NON_ASCII_ESCAPES = re.compile(r"(?:%[89A-Fa-f][0-9A-Fa-f])+")


def _seen(letters):
    """Whether every one of ``letters`` shows as itself, the first no mark on what stands before it."""
    return not unicodedata.category(letters[0]).startswith("M") and not any(map(unseen, letters))


def _letter_escapes(run):
    """A run of escapes as the letters it spells, as address bars show them; kept as it is where it
    is not UTF-8 or spells what a reader does not see."""
    try:
        letters = unquote_to_bytes(run.group()).decode("utf-8")
    except UnicodeDecodeError:
        return run.group()
    return letters if _seen(letters) else run.group()


def display_url(value, limit=70):
    """A URL as a reader scans it: no scheme, no trailing slash, the escaped letters of its path and
    query as letters ("crème-brûlée", not "cr%C3%A8me-br%C3%BBl%C3%A9e"), shortened. The host
    stays as given: "g%D0%BEogle.com" is not shown as a look-alike of google.com."""
    text = str(value or "")
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
    host, slash, rest = text.rstrip("/").partition("/")
    text = host + slash + NON_ASCII_ESCAPES.sub(_letter_escapes, rest)
    if not text.isascii():  # a corpus record's URL as written: what no one sees, escaped
        text = "".join(quote(char) if not char.isascii() and unseen(char) else char for char in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def milliseconds(value):
    """A duration in ms as a person reads it: "0.7 ms", "35 ms", "4.2 s", "3.5 min"."""
    if value is None:
        return "–"
    if value < 10:
        return f"{value:.1f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def static_url(name):
    return f"{ASSETS}{name}?v={STATIC_VERSIONS.get(name, '0')}"


def more_like_url(doc_id, corpus, k=DEFAULT_K):
    params = {"id": doc_id, "corpus": corpus}
    if k != DEFAULT_K:
        params["k"] = k
    return "/?" + urlencode(params)


templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                        trim_blocks=True, lstrip_blocks=True)
templates.filters.update(http_url=http_url, display_url=display_url, percent=charts.percent, ms=milliseconds,
                        plural=charts.plural)
templates.globals.update(static_url=static_url, more_like_url=more_like_url)


def wants_html(request):
    """True when a browser asks: text/html preferred over JSON (ties, as with */*, go to JSON), by a
    GET or by posting the try-it form (a POST of JSON is the API's, whatever it accepts)."""
    if request.method not in ("GET", "HEAD") and not (request.method == "POST" and request.mimetype == FORM_TYPE):
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def render(template, status=200, headers=None, **context):
    html = templates.get_template(template).render(**context)
    return Response(html, status=status, mimetype="text/html", headers={**PAGE_HEADERS, **(headers or {})})


def static_file(request):
    name = request.path.rsplit("/", 1)[-1]
    if name not in STATIC_FILES:
        raise ApiError(f"no such file: {request.path}", status=404, code="not_found")
    suffix, body = STATIC_FILES[name]
    cache = "public, max-age=31536000, immutable" if request.args.get("v") == STATIC_VERSIONS[name] else \
        "public, max-age=300"
    headers = {"Cache-Control": cache, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
    etag = STATIC_VERSIONS[name]
    if request.accept_encodings["gzip"] > 0 and len(STATIC_GZIPPED[name]) < len(body):  # "gzip;q=0" refuses it
        body, headers["Content-Encoding"], etag = STATIC_GZIPPED[name], "gzip", f"{etag}-gzip"
    response = Response(body, content_type=STATIC_TYPES[suffix], headers=headers)
    # a reader's copy of the widget, its 5 minutes run out, is checked again: a 304 while it is the same
    response.set_etag(etag)
    response.make_conditional(request)
    if response.status_code == 412:  # If-Match of another copy: said, not answered with this copy's body
        raise ApiError(f"{request.path} is no longer the copy If-Match names", status=412, code="precondition_failed")
    return response


# -- lookups in the stores ----------------------------------------------------------
def find_doc(stores, corpus, doc_id):
    """The stored Doc of ``doc_id`` in ``corpus``, or None."""
    store = stores.get(corpus) if corpus else None
    if store is None:
        return None
    row = store.row_for_id(str(doc_id))
    return None if row is None else store.docs([row])[0]


def find_member(stores, corpus, url):
    """The stored Doc whose normalised URL is ``url``'s in ``corpus``, or None."""
    store = stores.get(corpus)
    try:
        row = store.row_for_url_key(normalise_url(url)) if store else None
    except ValueError:
        return None
    return None if row is None else store.docs([row])[0]


def corpora_of(stores):
    return [store.describe() for store in (stores.get(name) for name in stores.names()) if store is not None]


# -- the try-it page --------------------------------------------------------------------
def form_values(args, default_corpus):
    """What the form shows: the query just asked, or the defaults (parse_query judges the query)."""
    try:
        k = whole_number(args.get("k", ""), "k", 1, 1_000_000)
    except ApiError:
        k = DEFAULT_K
    return {
        "url": args.get("url", ""),
        "text": args.get("text", ""),
        "corpus": args.get("corpus") or default_corpus,
        "k": k,
    }


def subject_of(query, answer, member):
    """The heading over the results: what they are related to."""
    if query.kind == "id":
        return "More like", member.title if member else query.value
    if query.kind == "url":
        page = answer.get("page") or {}
        return "Related to", page.get("title") or (member.title if member else display_url(query.value))
    words = " ".join(query.value.split())
    return "Related to the text", words if len(words) <= 120 else words[:119] + "…"


def try_it(app, request):
    """GET / for a browser: the form, then the results or the error, in a page.

    The form is posted, since a pasted article outgrows a URL (MAX_QUERY_BYTES); a post that
    fits in one is sent on to the GET of it (303), which can be bookmarked, shared and reloaded."""
    settings, stores = app.settings, app.stores
    arguments = None
    context = {"nav": "try", "form": form_values({}, settings.default_corpus), "corpora": corpora_of(stores),
               "max_k": settings.max_k, "answer": None, "error": None, "error_title": "", "subject": None}

    def error_page(exc):
        if exc.code == "missing_query":  # the API's "give one of 'url', 'text' or 'id'": the form has two
            exc = ApiError("give an article URL or some text", status=exc.status, code=exc.code)
        title = CODE_TITLES.get(exc.code) or ERROR_TITLES.get(exc.status, "That did not work")
        context.update(error=exc, error_title=title)
        return render("try.html", status=exc.status, headers=exc.headers, **context)

    if request.method == "POST":
        try:
            arguments = form_arguments(request, settings)
        except ApiError as exc:
            app.recommender.refused(exc)  # as app.ask counts what it refuses
            return error_page(exc)
        again = urlencode({name: value for name, value in arguments.items() if value != ""})  # a tidy link
        if len(again) <= settings.max_query_bytes:
            return Response(status=303, headers={**PAGE_HEADERS, "Location": "/?" + again})
    elif not gives_arguments(request):
        return render("try.html", **context)
    form = context["form"] = form_values(request.args if arguments is None else arguments, settings.default_corpus)
    try:
        query, answer = app.ask(request, arguments, via="try-it")  # not a reader's: counted apart in /stats
    except ApiError as exc:
        return error_page(exc)
    member = None
    if query.kind == "id":
        member = find_doc(stores, answer["corpus"], query.value)
        if member is not None:
            form["url"] = member.url  # the form then asks the same again, by its URL
    elif answer.get("source") == "corpus":  # a member's URL: its stored title, not the address, heads it
        member = find_member(stores, answer["corpus"], query.value)
    form["k"] = query.k
    context.update(answer=answer, subject=subject_of(query, answer, member))
    return render("try.html", **context)


# -- the dashboard -------------------------------------------------------------------------
def _with_titles(stores, rows):
    for row in rows:
        doc = find_doc(stores, row["corpus"], row["id"])
        row["label"] = doc.title if doc else f"{row['corpus']}/{row['id']} (no longer in the store)"
        row["url"] = doc.url if doc else row.get("url")
    return rows


def dashboard_charts(data, stores):
    stats = data["stats"]
    latency, delay = stats["latency_ms"], stats["click_delay_ms"]
    top = data["top"]

    def link(row):
        return http_url(row.get("url"))

    return {
        "timeline": charts.timeline_chart(data["timeline"]),
        "engines": charts.engine_ctr_chart(stats["engines"]),
        "ranks": charts.rank_ctr_chart(stats["ctr_by_rank"]),
        "scores": charts.score_ctr_chart(stats["ctr_by_score"], stats["ctr_by_score_by_engine"]),
        "min_scores": suggested_min_scores(stats["ctr_by_score_by_engine"]),
        # an engine's answers' mean top score, to say when a suggestion is over it: it would empty many lists
        "mean_tops": data["mean_top_by_engine"],
        "latency": charts.histogram_chart(data["latency_ms"], "ms", "time to answer", "Latency"),
        "delay": charts.histogram_chart(data["click_delay_s"], "s", "time to click", "Time to click"),
        "recommended": charts.bar_list_chart(
            _with_titles(stores, top["recommended"]), "Most recommended articles", "recommended", "s-requests",
            note=lambda r: f"{r['recommended']:,}× shown · {charts.plural(r['clicks'], 'click')}", link=link),
        "clicked": charts.bar_list_chart(
            _with_titles(stores, top["clicked"]), "Most clicked articles", "clicks", "s-clicks",
            note=lambda r: f"{charts.plural(r['clicks'], 'click')} · {r['recommended']:,}× shown", link=link),
        "errors": charts.bar_list_chart(
            [{"label": code, "count": n} for code, n in data["errors_by_code"].items()], "Errors by code", "count",
            "s-errors"),
        "subtitles": {
            "latency": f"time to answer, fetch included: median {milliseconds(latency['p50'])}, "
                       f"95% within {milliseconds(latency['p95'])}" if latency["p50"] is not None else "",
            "delay": f"from the answer to the click on a result: median {milliseconds(delay['median'])}"
            if delay["median"] is not None else "",
            "scores": "share of the links shown with a score in the band that were clicked, 95% interval as "
                      "whiskers; low scores sit at low ranks, so both count"
                      + ("; each engine apart, since its scores are its own"
                         if len(charts.engines_that_showed_links(stats["ctr_by_score_by_engine"])) > 1 else ""),
        },
        "verdict": charts.engine_verdict(stats["engines"]),
    }


def _dashboard_problem(context, status, title, message, headers=None):
    context["problem"] = {"title": title, "message": message}
    return render("dashboard.html", status=status, headers=headers, **context)


def dashboard(app, request):
    """GET /dashboard: the figures of /stats, drawn."""
    names = app.stores.names()
    context = {"nav": "dashboard", "corpora": names, "corpus": None, "days": None, "day_choices": DAY_CHOICES,
               "data": None, "charts": None, "problem": None, "stats_url": "/stats"}
    try:
        app.require_owner(request)  # a 401 is said in the page too, with the challenge a browser prompts on
        context["corpus"], context["days"] = parse_filters(request, app.settings)
        filters = {name: value for name in ("corpus", "days") if (value := context[name])}
        context["stats_url"] = "/stats" + ("?" + urlencode(filters) if filters else "")
        if not app.settings.mongodb_uri:
            return _dashboard_problem(
                context, 503, "No events are stored",
                "MONGODB is not set, so request and click events are counted but not kept: there is nothing to "
                "draw. Set MONGODB to a MongoDB URI (make run starts a local one).")
        try:
            data = app.read_events(dashboard_data, context["corpus"], context["days"])
        except ApiError as exc:
            if exc.code != "events_unavailable":  # stats_busy: answered as the other refusals below
                raise
            failure = exc.__cause__  # the PyMongoError (app.read_events has logged it)
            return _dashboard_problem(
                context, 503, "The event database does not answer",
                f"MongoDB could not be read ({failure.__class__.__name__}). Answers and clicks keep working; their "
                "events wait in a buffer. Reload this page once the database is back.")
        refuse_unheard_of(context["corpus"], context["days"], data["stats"], names)
    except ApiError as exc:
        if exc.code == "unknown_corpus":  # the form offers the corpora there are, not the one mistyped
            context["corpus"] = None
        return _dashboard_problem(context, exc.status, ERROR_TITLES.get(exc.status, "That did not work"), exc.message,
                                  exc.headers)
    context.update(data=data, charts=dashboard_charts(data, app.stores))
    return render("dashboard.html", **context)
