"""The recommendation pipeline: query -> fetch -> extract -> vectorize -> lookup -> log -> answer."""

import copy
import dataclasses
import functools
import hashlib
import logging
import time

from . import clicks
from .article import Article, indexed_text
from .errors import NOT_NOW_STATUSES, ApiError, NotFound
from .events import new_event
from .limits import ARTICLE_BYTES, TERMS_BYTES, PageCache, SingleFlight, article_bytes, fetch_slots, terms_bytes
from .stats import SCORE_BANDS_FIELD, score_bands
from .urls import normalise_url, request_key

log = logging.getLogger("related")

# Lookups ask for a few more hits than wanted, so that hits dropped afterwards
# (the page itself under another id, a page the corpus holds twice, a near-duplicate,
# scores under min_score) rarely leave the answer short.
SLACK = 5

# A hit whose cosine with a better-ranked hit of the answer (or with the member asked about) is at
# least its engine kind's figure here is the same text again, left out. Measured (bench/near_duplicates.py,
# 300 texts' k + SLACK hits): a repost (a sentence added, its title changed) is 0.991-1.0 to its original
# in both engines (0.996 for whole Wikipedia articles), a 90-word recipe's in a 7-post blog 0.90 (tf-idf:
# its new words are rare ones). Distinct documents: tf-idf reaches 0.42 on the Wikipedia sample (none of
# 31,500 pairs past 0.5), two recipes of that blog 0.28, so 0.8 leaves a wide margin; LSI's 200 dimensions
# fold same-subject texts together: on the 10,000-document bench store 4.3% of pairs are past 0.95 and
# 0.016% past 0.99 (at most 0.992), so LSI needs 0.99.
NEAR_DUPLICATE = {"lsi": 0.99, "sparse": 0.8}
# hits compared pairwise, at most: MAX_K's default 100 and SLACK (105 rows cost ~0.07 ms in LSI, ~0.6 ms
# in tf-idf on the Wikipedia sample); a MAX_K raised past it leaves the hits ranked further down uncompared
NEAR_DUPLICATE_HITS = 105


def _ms(seconds):
    return round(seconds * 1000, 2)


def choose_engine(store, weights, key, forced=""):
    """The engine answering for ``key``: forced, else by ENGINE_WEIGHTS, else the store's default.

    The split hashes the page (URL key, text or id), so a page always gets the
    same engine and an engine's click-through is measured on stable traffic.
    """
    if forced:
        if forced not in store.engines:
            raise ApiError(f"unknown engine '{forced}' for corpus '{store.name}' "
                           f"(available: {', '.join(sorted(store.engines))})", code="unknown_engine")
        return store.engines[forced]
    live = sorted((name, w) for name, w in weights.items() if w > 0 and name in store.engines)
    if not live:
        return store.engines[store.default_engine]
    point = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64 * sum(w for _, w in live)
    for name, weight in live:
        point -= weight
        if point < 0:
            return store.engines[name]
    return store.engines[live[-1][0]]


# A page that could not be used for what it holds (no article text, too large, not HTML, an error
# status or a host that does not resolve: 415 and 422) is refused from memory for this long: each
# repeat would cost a fetch and, for a large page, seconds of extraction. Timeouts and a failing
# server (502, 504) are tried again at once.
FAILED_PAGE_SECONDS = 60
PAGE_FAULTS = (415, 422)
# a page's server saying "not now" (errors.NOT_NOW_STATUSES) is not the page's answer for
# FAILED_PAGE_SECONDS (a 429 with Retry-After: 1 had been, for a minute), but it is for a few seconds:
# a widget asks on every page view, and a server refusing load gets a fetch for each one otherwise
TRANSIENT_PAGE_SECONDS = 5


@functools.lru_cache(maxsize=4096)
def _how_words_are_read(tokenizer, no_above=None, no_below=None):
    """What no_known_words says of the store's reading of words (its tokenizer, and the pruning its
    manifest records): what could have kept them apart."""
    said = ["words are matched as written ('testing' is not 'tests': function.build's --stem)"
            if not tokenizer.stem else f"words are matched by their stems ({tokenizer.stem})"]
    if tokenizer.revision >= 5:  # a reader who wrote "wi fi" for a corpus's "wifi" or "Wi-Fi" may try it
        said.append("words joined by a hyphen are also read as one ('wi-fi' is 'wi', 'fi' and 'wifi'; 'wi fi' "
                    "is not 'wifi')")
    if tokenizer.stopwords:
        said.append(f"stop words ({tokenizer.stopwords}) are left out")
    if no_above is not None:  # the store's own figures: a small corpus is built with laxer ones than the defaults
        rare = f" or in fewer than {no_below} (--no-below)" if (no_below or 0) > 1 else ""
        said.append(f"and this corpus leaves out words in more than {no_above:.0%} of its documents (--no-above)"
                    + rare)
    return ", ".join(said)


def _link_event(link, event_id, user_agent, **fields):
    """The event of a signed link followed (a click) or posted (a view): its answer's request, corpus
    and engine, the time since the answer, and ``event_id``, one a link (the database keeps it once)."""
    event = new_event(request_id=link.request_id, corpus=link.corpus, engine=link.engine, **fields)
    event["_id"] = event_id
    now_ms = int(event["ts"].timestamp() * 1000)
    event["delay_ms"] = max(0, now_ms - link.issued_ms)
    if ahead := clicks.ahead_ms(link, now_ms):  # kept, and marked: an instance's clock is off
        event["issued_ahead_ms"] = ahead
    event["user_agent"] = user_agent  # crawlers.mark reads it in the writer
    return event


def _pruning(store):
    pruning = store.manifest.get("pruning") or {}
    return pruning.get("no_above"), pruning.get("no_below")


# a page's widget asks with the same url= on every view: its keys are worked out once (~30 us a
# request), for the pages asked about lately (bounded: a url= is up to 2,048 characters)
_url_key = functools.lru_cache(maxsize=1024)(normalise_url)
_request_key = functools.lru_cache(maxsize=1024)(request_key)


def _canonical_key(canonical):
    # once per address, not on every repeat request for the page (~15 us); canonical_of bounds its length
    try:
        return normalise_url(canonical) if canonical else None
    except ValueError:
        return None


def _near_duplicates(engine, hits, member):
    """Which hits are near-duplicates of which: a boolean matrix over ``member`` (when there is one,
    first) and the first NEAR_DUPLICATE_HITS ``hits``, its diagonal False; None when no pair is."""
    rows = ([] if member is None else [member]) + [hit.row for hit in hits[:NEAR_DUPLICATE_HITS]]
    if len(rows) < 2:
        return None
    close = engine.near_duplicates(rows, NEAR_DUPLICATE[engine.kind])
    return close if close.any() else None


def _id_of_address(store, value):
    """For an unknown id that is the address of a member in another spelling (a crawled page's id
    is its normalised URL, https for an http page): the id to ask for."""
    if not value[:8].lower().startswith(("http://", "https://")):
        return ""
    try:
        row = store.row_for_url_key(normalise_url(value))
    except ValueError:
        return ""
    if row is None:
        return ""
    return f": the page at that address is the document '{store.docs([row])[0].id}' (or ask with url=)"


class Recommender:
    def __init__(self, settings, stores, events, click_keys, fetch_limits):
        self.settings = settings
        self.stores = stores
        self.events = events
        # the first signs every link; the others, a rotation's previous keys, only verify one
        self.click_keys = click_keys
        self.fetch_limits = fetch_limits
        self._clock_ahead_said = False  # a link issued ahead past clicks.CLOCK_SKEW_MS was said in the log
        size, ttl = settings.url_cache_size, settings.url_cache_ttl
        # by the page's request key (urls.request_key; a member's hits by its normalised URL):
        # the extracted article (no fetch, no extraction), its terms per store version
        # (tokenising a long article costs more than the rest of a repeat request), its hits
        # per store version, engine and count (at 1M documents the lookup is most of what is
        # left: ~3 ms), and a page that failed
        self.articles = PageCache(size, ttl, weigh=article_bytes, average=ARTICLE_BYTES)
        self.page_terms = PageCache(size, ttl, weigh=terms_bytes, average=TERMS_BYTES)
        self.page_hits = PageCache(size, ttl)
        self.failed_pages = PageCache(size, min(ttl, FAILED_PAGE_SECONDS))
        self.busy_pages = PageCache(size, min(ttl, TRANSIENT_PAGE_SECONDS))
        self.fetches = SingleFlight()
        self.fetch_slots = fetch_slots(settings.fetch_concurrency)

    # -- fetch + extract ----------------------------------------------------
    def article(self, page_key, timings):
        """(article, cached): the page's article, from the cache, from a fetch of it already
        under way for another request, else fetched and extracted now; by ``page_key``
        (urls.request_key), not the page's normalised URL: a spelling of it that its server
        answers otherwise (a 404 at an added slash) had been kept for every spelling."""
        cached = self.articles.get(page_key)
        if cached is not None:
            return cached, True
        failed = self.failed_pages.get(page_key) or self.busy_pages.get(page_key)
        if failed is not None:
            raise copy.copy(failed)  # a copy: each raise gets a traceback of its own
        with self.fetch_slots.held():
            # the page as its key spells it: fetched with the tracking parameters the key drops, a
            # "?utm_content=<script>" that a firewall refuses had made the page fail for everyone
            return self.fetches.run(page_key, lambda: self._fetch_article(page_key, timings))

    def _fetch_article(self, page_key, timings):
        # imported on the first fetch: jusText and lxml are not needed to start
        # (cold start) nor for text, id and member-URL requests
        from .extract import decode_html, extract_article
        from .fetch import fetch_page

        try:
            started = time.perf_counter()
            page = fetch_page(page_key, self.fetch_limits)
            timings["fetch"] = _ms(time.perf_counter() - started)
            started = time.perf_counter()
            if page.content_type == "text/plain":
                article = Article("", "", decode_html(page.body, page.charset).strip())
            else:
                extracted = extract_article(page.body, url=page.final_url, encoding=page.charset)
                article = dataclasses.replace(extracted, text=extracted.text.strip())
            timings["extract"] = _ms(time.perf_counter() - started)
            if not article.words:  # a brief's, a video page's standfirst alone is words enough (Article.words)
                raise ApiError("no article text found on the page", status=422, code="no_article_text")
        except ApiError as exc:
            if exc.status in PAGE_FAULTS:  # a copy: the raised one's traceback holds the page's body
                busy = getattr(exc, "upstream_status", None) in NOT_NOW_STATUSES
                (self.busy_pages if busy else self.failed_pages).put(page_key, copy.copy(exc))
            raise
        # the words read (the summary, then the text) up to MAX_TEXT_CHARS together, as a text asked about is
        summary = article.summary[: self.settings.max_text_chars]
        article = dataclasses.replace(article, summary=summary,
                                      text=article.text[: self.settings.max_text_chars - len(summary)])
        self.articles.put(page_key, article)
        return article

    def article_terms(self, store, page_key, article):
        key = (str(store.path), page_key)  # a new store version has a key of its own
        terms = self.page_terms.get(key)
        if terms is None:
            terms = store.terms(indexed_text(article.title, article.words, titles=store.index_titles))
            self.page_terms.put(key, terms)
        return terms

    # -- the whole request ----------------------------------------------------
    def recommend(self, query, base_url, user_agent="", via=None):
        """The answer to ``query``; its request event is recorded, marked as a crawler's by
        ``user_agent`` (crawlers.mark) and as the try-it page's by ``via``: /stats counts both apart."""
        started = time.perf_counter()
        event = new_event(corpus=query.corpus, kind=query.kind, k=query.k, user_agent=user_agent)
        if via is not None:
            event["via"] = via
        request_id = event["_id"]
        if query.kind == "url":
            event["url"] = query.value
        elif query.kind == "text":
            event["text_sha256"] = hashlib.sha256(query.value.encode()).hexdigest()
        else:
            event["doc_id"] = query.value
        try:
            answer = self._recommend(query, base_url, request_id, started, event)
        except ApiError as exc:
            event.update(status=exc.status, error=exc.code, total_ms=_ms(time.perf_counter() - started))
            self.events.record("requests", event)
            raise
        except Exception:  # a fault of ours (a 500): still counted in /stats, then logged by the app
            event.update(status=500, error="internal_error", total_ms=_ms(time.perf_counter() - started))
            self.events.record("requests", event)
            raise
        self.events.record("requests", event)
        return answer

    def _recommend(self, query, base_url, request_id, started, event):
        store = self.stores.get(query.corpus)
        if store is None:
            raise NotFound(f"unknown corpus '{query.corpus}'", code="unknown_corpus")
        timings = {"fetch": 0.0, "extract": 0.0, "lookup": 0.0}
        member = None  # the queried page's row when it is in the corpus
        url_key = page_key = None
        article = None
        cached = False
        if query.kind == "id":
            member = store.row_for_id(query.value)
            if member is None:
                raise NotFound(f"no document with id '{query.value}' in corpus '{query.corpus}'"
                               + _id_of_address(store, query.value), code="unknown_id")
            source, split_key = "corpus", "id:" + query.value
        elif query.kind == "text":
            source, split_key = "text", "text:" + event["text_sha256"]
        else:
            try:
                url_key = _url_key(query.value)
            except ValueError as exc:
                raise ApiError(f"invalid url: {exc}", code="invalid_url") from None
            split_key = url_key
            member = store.row_for_url_key(url_key)
            if member is not None:
                source = "corpus"
            else:
                page_key = _request_key(query.value)
                article, cached = self.article(page_key, timings)
                source = "fetched"

        engine = choose_engine(store, self.settings.engine_weights, split_key, query.engine)
        lookup_started = time.perf_counter()
        # a page asked for again gets the same hits: a store version never changes
        # a member's hits are the member's, whatever the spelling (page_key: None)
        hits_key = (str(store.path), engine.name, url_key, page_key, query.k + SLACK) if url_key else None
        found = self.page_hits.get(hits_key) if hits_key else None
        if found is None:
            if member is not None:
                hits = engine.search_member(member, query.k + SLACK)
            else:
                terms = self.article_terms(store, page_key, article) if article else store.terms(query.value)
                if not len(terms):  # a page too: an empty answer would hide why from /stats and its reader
                    raise ApiError(f"the {'page' if article else 'text'} has no words the corpus '{store.name}' "
                                   f"knows: {_how_words_are_read(store.tokenizer, *_pruning(store))}", status=422,
                                   code="no_known_words")
                hits = engine.search(terms, query.k + SLACK)
            # which hits are near-duplicates of which (or of the member asked about), kept with them: a
            # page's widget asks again on every view, and the check had been most of a repeat's lookup
            found = hits, _near_duplicates(engine, hits, member)
            if hits_key is not None:
                self.page_hits.put(hits_key, found)
        hits, close = found
        hits = [hit for hit in hits if hit.score >= query.min_score]  # best first: a prefix, as close's rows
        docs = store.docs([hit.row for hit in hits])
        # not linked again: the queried page itself, under another id, or the member its canonical link
        # names (its AMP, print or mobile version, or the same page under another address)
        not_again = {url_key, _canonical_key(article.canonical) if article else None} - {None}
        if article is not None and "?" in url_key:  # a member's page with a query of its own (?ref=, ?page=2)
            not_again.add(url_key.split("?", 1)[0])
        # a near-duplicate of a hit kept, or of the member asked about, is the same text again (a repost)
        kept = [] if member is None else [0]  # in close's order: the member first
        first = len(kept)
        results = []
        for place, (hit, doc) in enumerate(zip(hits, docs), first):
            if doc.url_key in not_again:
                continue
            if close is not None and place < len(close) and close[place, kept].any():
                continue
            if len(results) == query.k:
                break
            results.append((hit, doc))
            kept.append(place)
            # one link a page: a corpus can hold a page twice (an export with its http and https
            # addresses, or with and without a trailing slash), which had been two links to one article
            not_again.add(doc.url_key)
        timings["lookup"] = _ms(time.perf_counter() - lookup_started)

        issued_ms = int(time.time() * 1000)
        links = clicks.sign_answer(self.click_keys[0], request_id, store.name, engine.name, issued_ms,
                                   [(rank, doc.id, doc.url) for rank, (_, doc) in enumerate(results, 1)])
        answer_results = [
            {
                "rank": rank,
                "id": doc.id,
                "url": doc.url,
                "title": doc.title,
                "score": round(hit.score, 4),
                "click_url": f"{base_url}/click?{link}",
            }
            for rank, ((hit, doc), link) in enumerate(zip(results, links), 1)
        ]
        timings["total"] = _ms(time.perf_counter() - started)
        answer = {
            "request_id": request_id,
            "corpus": store.name,
            "store_version": store.version,
            "engine": engine.name,
            "source": source,
            "results": answer_results,
            "timings_ms": timings,
        }
        if answer_results:  # posted once the list is in view: /stats' answers seen
            answer["seen_url"] = f"{base_url}/seen?" + clicks.sign_view(
                self.click_keys[0], clicks.View(request_id, store.name, engine.name, issued_ms))
        if article is not None:
            answer["page"] = {"title": article.title, "lang": article.lang, "cached": cached}
        event.update(
            status=200, corpus=store.name, store_version=store.version, engine=engine.name, source=source,
            engine_named=bool(query.engine),  # by the caller (engine=): not the split's, not in its comparison
            results=[{"id": r["id"], "score": r["score"]} for r in answer_results],
            **{SCORE_BANDS_FIELD: score_bands(r["score"] for r in answer_results)},  # what /stats reads
            n_results=len(answer_results), top_score=answer_results[0]["score"] if answer_results else None,
            total_ms=timings["total"], timings_ms=timings,
        )
        if article is not None:
            event.update(title=article.title, lang=article.lang, cached=cached)
        return answer

    def refused(self, error):
        """Count a request refused before it named a query (a bad parameter, body or Host) in the
        request events, as /stats' errors and the dashboard's errors by code."""
        self.events.record("requests", new_event(status=error.status, error=error.code))

    # -- views and clicks ----------------------------------------------------------
    def seen(self, args, user_agent=""):
        """Record that an answer's list was in a reader's view (its seen link, posted by the widget),
        once per answer: its id is the request's, which the database keeps once. An expired link
        records nothing."""
        view = clicks.verify_view(self.click_keys, args)
        if clicks.expired(view, self.settings.click_ttl_seconds):
            return
        self._record_link_event("views", _link_event(view, view.request_id, user_agent))

    def _record_link_event(self, collection, event):
        """Record a click's or view's ``event``; the first one of a link issued past the clock skew
        ahead is said in the log (each is marked: a line for each would flood the log while the clock
        stays off)."""
        if "issued_ahead_ms" in event and not self._clock_ahead_said:
            self._clock_ahead_said = True
            log.warning("a click or seen link issued %d s ahead of this instance's clock: the clock of the "
                        "instance that issued it (or this one's) is off (NTP?); its clicks and views are kept "
                        "with a delay of 0, marked issued_ahead_ms", event["issued_ahead_ms"] // 1000)
        self.events.record(collection, event)

    def click(self, args, record=True, user_agent="", fetch_signals=None, unverified=None):
        """The target URL of a click link; records the click event unless ``record`` is false or the
        link has expired, marked as a crawler's by ``user_agent`` (crawlers.mark), with the Fetch Metadata
        it came with (``fetch_signals``) and why it is not a reader's by them (``unverified``, see
        fetch_metadata.unverified)."""
        click = clicks.verify(self.click_keys, args)
        if not record or clicks.expired(click, self.settings.click_ttl_seconds):
            return click.url
        # one event per link, whichever worker records it and whenever: the link's own id, which the
        # database keeps once (a duplicate is dropped by the writer, as a retried batch's is). A
        # replay, a link prefetcher: replays of one link had filled /stats' newest clicks, which
        # narrowed its window until no request was in it.
        event_id = f"{click.request_id}-{click.rank}"
        fields = {"sec_fetch": fetch_signals} if fetch_signals else {}
        if unverified:
            # an id of its own, as a crawler's: the link's is kept for its reader's click, which the
            # database would otherwise drop as this one's duplicate
            event_id, fields["unverified"] = f"{event_id}-unverified", unverified
        self._record_link_event("clicks", _link_event(click, event_id, user_agent, rank=click.rank,
                                                      doc_id=click.doc_id, url=click.url, **fields))
        return click.url
