"""Article extraction: an HTML page -> its title, language and main text.

jusText classifies the paragraphs; everything around it is ours:

1. ``decode_html`` turns the HTTP body into text; lxml parses it.
2. The DOM is walked into jusText paragraphs.  Tags that never hold article
   text (scripts, form controls, ``nav``, ``header``, ``footer``, ``aside``,
   captions, ...) and hidden elements are skipped (hidden ones are read after
   all when nothing else holds an article); paragraphs inside boxes
   whose class/id names boilerplate ("share", "comments", "related", ...), and
   in a picture's ``<figure>`` (its caption or credit), are marked, unless the
   box holds most of the good text (a layout wrapper; a comment thread under
   an article stays marked).  Every paragraph remembers
   the DOM element it sits in.
3. The stoplist: of the language CLD2 reads in the text where it is sure and
   disagrees with the page's declaration (``<html lang>``, meta), else of the
   declared one (``language``).
4. jusText classifies the paragraphs (its context-free and context-sensitive
   passes, default parameters).  When it keeps almost nothing it is run again
   language-independently, then with a laxer link density, then (with the
   stoplist) on runs of sibling paragraphs merged: one-line paragraphs.
5. The article container is the DOM element where jusText's good text
   concentrates: every paragraph adds its length (good) or a penalty (bad) to
   its ancestors, the contribution shrinking at every element where the text
   branches, so a dense run of sibling paragraphs beats a whole page of
   scattered teasers; a marked box's good text adds nothing.
6. Inside the container everything is kept except link lists, the marked
   boilerplate boxes, the headline (returned as the title) and, before the
   story's first line, a box's one short line beside its picture (the hero's
   caption).  When that yields little or nothing, a longer schema.org
   ``articleBody`` from the page's JSON-LD is used instead.  The standfirst
   under the headline in the story's ``<header>`` is read apart, as the
   page's summary (``Article.summary``), not its text.
7. When nothing was kept at all, a page that says it is a post (an ``<article>``, og:type article,
   a schema.org Article or Posting) and holds no password field gives its short lines: those inside
   its one ``<article>`` (else ``<main>``), captions included, else its description.

    python -m function.extract FILE.html[.gz] ...   # one JSON object per line
"""
from __future__ import annotations

import codecs
import gzip
import itertools
import json
import re
import sys
from urllib.parse import urljoin

import lxml.etree
import lxml.html
from justext.core import (LENGTH_HIGH_DEFAULT, LENGTH_LOW_DEFAULT, MAX_HEADING_DISTANCE_DEFAULT,
                          MAX_LINK_DENSITY_DEFAULT, STOPWORDS_HIGH_DEFAULT, STOPWORDS_LOW_DEFAULT,
                          classify_paragraphs)
from justext.paragraph import HEADINGS_PATTERN, Paragraph

from . import language
from .article import MAX_TITLE_CHARS, Article, shown_title
from .attribute_floods import without_attribute_floods
from .charsets import WIDE, codec_for
from .fetch_policy import MAX_URL_LENGTH
from .tokens import HAN_KANA, HANGUL

__all__ = ["Article", "EXTRACTION_REVISION", "extract_article", "decode_html"]

# Raised whenever a change reads some pages' text otherwise. A crawl's state keeps each page's text, not
# its HTML, so a rebuild would read old text unsaid: the crawl says how many pages an older revision read,
# and fetches again those it found no text in (revision 1: paywall and story-list boxes, galleries, German
# sites' boxes: "mehr-zum-thema", "kommentare", "bezahlschranke"; a box's text no longer counts against
# the container, a paywalled part declared in JSON-LD is the story; revision 2: an undeclared paywall box
# that reads as the story, with no link, control or subscription price, is the story, and a story's lede
# box between its headline and its body box is read with the body, but not a picture's one-line caption
# there, nor a lede line the body repeats word for word; revision 3: a one-line lede beside a picture in a
# <figure> of its own, and a lede box after a headline in the story's <header>, are read, and the text in a
# picture's or an embed's <figure> without a <figcaption> (a caption, a gallery's counter) and a hero
# picture's one-line caption before the story's first line inside the container itself are no longer read
# as the story; revision 4: a quote's <figure> holding a picture's <figure> is the story's, but for the
# picture's caption, a line beside a picture longer than a caption, MAX_CAPTION_CHARS, is a lede, and the
# standfirst in the story's <header> is read as the page's summary, which a crawled record's text opens
# with, where it had been lost: the text itself holds it no more than before; revision 5: when nothing was
# kept, the standfirst in the page's one story <header> is its summary, a brief's or a video page's words,
# where the page had had no text: no dev page reads otherwise, but a crawl fetches again those it found none in).
EXTRACTION_REVISION = 5


EMPTY = Article("", "", "")

# jusText's own defaults for the paragraph classification (70, 200, 0.30, 0.32, 0.2, 200):
# tuning them gained nothing on the dev pages once the container does the rest.
LENGTH_LOW = LENGTH_LOW_DEFAULT
LENGTH_HIGH = LENGTH_HIGH_DEFAULT
STOPWORDS_LOW = STOPWORDS_LOW_DEFAULT
STOPWORDS_HIGH = STOPWORDS_HIGH_DEFAULT
MAX_LINK_DENSITY = MAX_LINK_DENSITY_DEFAULT
MAX_HEADING_DISTANCE = MAX_HEADING_DISTANCE_DEFAULT

# Lengths (LENGTH_LOW, MIN_GOOD_CHARS, ...) are counted in Latin-script characters: a Chinese or
# Japanese character carries about three (a word is one or two of them, an English one ~6 with its
# space), a Hangul syllable about two. Counted as one, a news paragraph of 40 characters was "short"
# and a whole CJK article of them no text at all (a 422).
HAN_KANA_WEIGHT = 3
HANGUL_WEIGHT = 2
_HAN_KANA = re.compile(f"[{HAN_KANA}]")
_HANGUL = re.compile(f"[{HANGUL}]")

# Fallbacks when jusText keeps less than MIN_GOOD_CHARS: stoplist-free, then lax links.
MIN_GOOD_CHARS = 250
FALLBACK_LINK_DENSITY = 0.5

# Container choice (step 5).
LINK_PENALTY = 0.5  # per char of a link-dense paragraph
OTHER_PENALTY = 0.1  # per char of any other paragraph jusText calls bad
BRANCH_DECAY = 0.6  # a paragraph's weight kept past each element where the text branches
WRAPPER_SHARE = 0.7  # a "boilerplate" box holding this much of the good text is a layout wrapper...
# ...unless it names a discussion (DISCUSSION_WORDS) and at least this much good text lies outside it:
# a short article under a long comment thread
ARTICLE_BESIDE_CHARS = MIN_GOOD_CHARS
KEEP_LINK_DENSITY = 0.8  # inside the container, drop only paragraphs (almost) made of links

# Bounds on the work one page can cost (the 91 dev pages: at most 1,596 elements, 301 paragraphs,
# 64 attributes on a tag). Past them a page costs seconds of a worker's CPU, holding the GIL.
MAX_ELEMENTS = 100_000  # walked, in document order; the rest of the page is not read
MAX_PARAGRAPHS = 5_000  # likewise
MAX_CLASS_CHARS = 1_000  # of a class/id value read for boilerplate names
# (and attribute_floods.MAX_TAG_ATTRIBUTES: a tag with more loses them before parsing)
# Elements nested deeper are not read (the walk recurses; Python allows ~1,000 calls). libxml2 had
# stopped parsing the whole page at 256, so that 300 unclosed <font> tags before an article lost it.
MAX_DEPTH = 500


# --------------------------------------------------------------------------- decoding

# The spaces around "=" and the quote are read once (possessive): "charset=" and 8,000 spaces, each split
# in turn between the two runs, had taken 0.8 s of the first 8 KB's search
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*+=\s*+["']?+\s*+([A-Za-z0-9_:.\-]+)"""
                           rb"""|<\?xml[^>]{0,100}?encoding\s*+=\s*+["']([A-Za-z0-9_:.\-]+)""", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # before UTF-16: FF FE 00 00
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
def _try_decode(body, codec):
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError, TypeError, ValueError):
        return None


def _has_utf8_multibyte(body):
    return not body.isascii() and _try_decode(body, "utf-8") is not None


def decode_html(body: bytes, declared_encoding: str | None) -> str:
    """The text of an HTML page from its bytes and the charset the HTTP header declared.

    Order: byte-order mark; the header's charset; the page's ``<meta charset>``
    (or XML declaration);
    UTF-8; detection with charset-normalizer; UTF-8 with replacement characters.
    A declared charset is used only when the bytes decode cleanly with it, and
    a declared Western single-byte charset gives way to UTF-8 when the bytes are
    valid UTF-8 with multi-byte sequences (a very common mislabelling).
    Unknown, odd or wrong charset names never raise.
    """
    if isinstance(body, str):
        return body
    if not body:
        return ""
    body = bytes(body)
    for bom, codec in _BOMS:
        if body.startswith(bom):
            text = _try_decode(body, codec)
            if text is not None:
                return text.lstrip("\ufeff")
    labels = [declared_encoding]
    m = _META_CHARSET.search(body[:8192])
    if m:
        labels.append((m.group(1) or m.group(2)).decode("ascii", "replace"))
    for label in labels:
        codec = codec_for(label)
        wide = codec is not None and codec.startswith(WIDE)
        # a <meta> found in the bytes is ASCII, so its page is not UTF-16; the header's label is
        # believed when the bytes hold NULs
        if not codec or (wide and (label is not declared_encoding or b"\x00" not in body[:4096])):
            continue
        if codec == "cp1252" and _has_utf8_multibyte(body):
            codec = "utf-8"
        text = _try_decode(body, codec)
        if text is not None and not (wide and "\x00" in text[:4096]):  # UTF-32 read as UTF-16
            return text
    text = _try_decode(body, "utf-8")
    if text is not None:
        return text
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(body[:100_000]).best()
        if best is not None:
            text = _try_decode(body, best.encoding)
            if text is not None:
                return text
    except Exception:  # detection is best-effort
        pass
    return body.decode("utf-8", "replace")


def _looks_binary(text):
    """True for decoded junk: many control or replacement characters."""
    sample = text[:8192]
    if not sample:
        return False
    bad = sum(1 for c in sample if c == "\ufffd" or (c < " " and c not in "\t\n\r\f"))
    return bad > 0.05 * len(sample)


# --------------------------------------------------------------------------- metadata

def _meta(doc):
    """<meta> name/property -> content (first one wins), keys lower-cased."""
    out = {}
    for m in doc.iter("meta"):
        key = (m.get("property") or m.get("name") or m.get("http-equiv") or "").strip().lower()
        content = (m.get("content") or "").strip()
        if key and content and key not in out:
            out[key] = content
    return out


def canonical_of(doc, page_url=None):
    """The page's own idea of its address: <link rel=canonical>, else og:url, made absolute against
    ``page_url``; "" when it names no http(s) address of at most MAX_URL_LENGTH characters."""
    for found in (doc.xpath("//link[contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]/@href")
                  + doc.xpath("//meta[@property='og:url']/@content")):
        try:
            found = urljoin(page_url, found.strip()) if page_url else found.strip()
        except ValueError:
            continue
        if found.lower().startswith(("http://", "https://")) and len(found) <= MAX_URL_LENGTH:
            return found
    return ""


_JSON_LD_BLOCKS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "pre", "figcaption")


def _json_ld_objects(doc, naming=""):
    """Every JSON object in the page's JSON-LD, nested ones too; with ``naming``, only the scripts whose
    text holds it are parsed."""
    for script in doc.iter("script"):
        if "ld+json" not in (script.get("type") or "").lower() or naming not in (script.text or ""):
            continue
        try:
            stack = [json.loads(script.text or "")]
        except (ValueError, RecursionError):
            continue
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                yield item
                stack.extend(v for v in item.values() if isinstance(v, (list, dict)))


_SIMPLE_SELECTOR = re.compile(r"[.#]-?[A-Za-z_][\w-]*")  # ".paywall", "#paywall": a class's or an id's


def _gated_classes(doc):
    """The classes (".name") and ids ("#name") a page's JSON-LD names as its article's subscribers-only
    part (schema.org's ``hasPart``: ``isAccessibleForFree`` false and a ``cssSelector``, as Google documents
    paywalled content: ``<div class="paywall">`` around the story's gated paragraphs). They hold the
    story, whatever their name says; elsewhere a box named "paywall" is the offer beside it."""
    gated = set()
    for item in _json_ld_objects(doc, naming="cssSelector"):  # the rare scripts that name one, on every page
        selector = item.get("cssSelector")
        if isinstance(selector, str) and str(item.get("isAccessibleForFree")).lower() == "false":
            gated.update(_SIMPLE_SELECTOR.findall(selector))
    return frozenset(gated)


def _gated(el, gated):
    """Whether ``el`` is one of the _gated_classes' elements, by a class or its id."""
    return f"#{el.get('id')}" in gated or any(f".{name}" in gated for name in (el.get("class") or "").split())


def _json_ld(doc):
    """The page's JSON-LD, read once: its longest schema.org articleBody as plain text, and whether an
    object in it says the page is an article or post (POST_TYPES; _calls_itself_a_post). Read twice, a
    page of nothing but 60,000 JSON-LD objects (2 MB) had taken 471 ms to extract, 199 ms before the
    short posts' check, ~245 ms now."""
    best, post = "", False
    for item in _json_ld_objects(doc):
        body = item.get("articleBody")
        if isinstance(body, str) and len(body) > len(best):
            best = body
        if not post:  # "@type" is a string, or a list of them
            kinds = item.get("@type")
            if isinstance(kinds, str):
                post = kinds.endswith(POST_TYPES)
            elif isinstance(kinds, list):
                post = any(isinstance(kind, str) and kind.endswith(POST_TYPES) for kind in kinds)
    return _plain_body(best), post


def _plain_body(best):
    """An articleBody as plain text, a paragraph a line."""
    if "<" in best:  # some sites put HTML there
        try:
            root = lxml.html.fromstring(without_attribute_floods(best))  # what libxml2 gets, as for the page
        except (lxml.etree.ParserError, ValueError):
            pass
        else:
            for block in root.iter(*_JSON_LD_BLOCKS):  # a line each: text_content() ran "end</p><p>Next" together
                block.tail = "\n" + (block.tail or "")
            best = root.text_content()
    return "\n\n".join(" ".join(line.split()) for line in best.splitlines() if line.strip())


_TITLE_SEPARATORS = re.compile(r"\s+(?:[|\-\u2013\u2014\u00b7\u2022»]|::)\s+")
_HOST_NOISE = {"www", "m", "amp", "com", "org", "net", "co", "uk", "de", "fr", "news"}


def _letters(s):
    return re.sub(r"\W+", "", s.lower())


def _clean_title(title, site_name, url, h1):
    """The headline: the title without the site's name ("Headline | Site")."""
    title = " ".join(title.split())
    parts = [p for p in _TITLE_SEPARATORS.split(title) if p.strip()]
    if len(parts) < 2:
        return title
    if h1:
        for part in parts:
            if _letters(part) == _letters(h1):
                return part.strip()
    names = {_letters(site_name)} if site_name else set()
    if url:
        host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url.lower()).split("/")[0].split(":")[0]
        names.update(_letters(label) for label in host.split(".") if label not in _HOST_NOISE)
    names.discard("")

    def is_site(part):
        p = _letters(part)
        return any(p == n or (min(len(p), len(n)) > 3 and (p.startswith(n) or n.startswith(p)))
                   for n in names if p)

    kept = [p for p in parts if not is_site(p)]
    if kept and len(kept) < len(parts):
        return _span(title, kept)
    if len(parts[-1].split()) <= 3 and len(" ".join(parts[:-1]).split()) >= 3:
        return _span(title, parts[:-1])  # unknown site: drop a short last part
    return title


def _span(title, parts):
    """The stretch of `title` from the first to the last of `parts`."""
    start = title.find(parts[0])
    end = title.rfind(parts[-1]) + len(parts[-1])
    return title[start:end].strip() if 0 <= start < end else parts[0].strip()


def _title(doc, meta, url):
    h1 = ""
    h1s = doc.iter("h1")
    for el in h1s:
        h1 = " ".join(el.text_content().lstrip()[:4 * MAX_TITLE_CHARS].split())
        if h1:
            break
        # the <h1>s inside one without text have none either, and come next: skipped, not each read to its
        # end (1,000 nested ones around 250,000 empty elements had taken 6 s)
        if len(el):  # (most empty ones have no children)
            for _ in itertools.islice(h1s, sum(1 for _ in el.iter("h1")) - 1):
                pass
    title = meta.get("og:title") or meta.get("twitter:title") or ""
    if not title:
        el = doc.find(".//title")
        title = el.text_content() if el is not None else ""
    # read no further than a cut title could need (the site's name may be cut off its end)
    title = _clean_title((title.lstrip() or h1)[:4 * MAX_TITLE_CHARS], meta.get("og:site_name"), url, h1)
    return shown_title(title)


# --------------------------------------------------------------------------- paragraphs

def reading_length(text):
    """``text``'s length in Latin-script characters (see HAN_KANA_WEIGHT)."""
    if text.isascii():
        return len(text)
    return (len(text) + (HAN_KANA_WEIGHT - 1) * len(_HAN_KANA.findall(text))
            + (HANGUL_WEIGHT - 1) * len(_HANGUL.findall(text)))


class _Para(Paragraph):
    """jusText's Paragraph with its text computed once, plus where it sits in the DOM."""

    text = ""  # plain attributes here, shadowing jusText's recomputing properties
    is_heading = False

    def __init__(self, node, dom_path, text, link_chars, flag, is_heading, in_headline):
        self.node = node  # the element holding the paragraph
        self.dom_path = dom_path
        self.is_heading = is_heading  # jusText's test of dom_path, which it made once per pass
        self.in_headline = in_headline  # dom_path runs through an <h1>
        self.xpath = ""
        self.text = text
        self.length = reading_length(text)
        self.words = text.split()
        self.chars_count_in_links = link_chars
        self.tags_count = 0
        self.class_type = ""
        self.flag = flag  # innermost boilerplate box around it, or None
        self.priced = None  # whether it names a subscription's price (_names_price), once asked

    @property
    def words_count(self):
        return len(self.words)

    def __len__(self):  # what jusText's length classes read; its link density reads len(text)
        return self.length

    def stopwords_count(self, stopwords):
        return sum(w.lower() in stopwords for w in self.words)


# Tags that start and end a paragraph (jusText's list plus HTML5 blocks).
BLOCK_TAGS = frozenset(
    "address article aside blockquote body caption center col colgroup dd details dialog div dl dt "
    "fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr legend li main nav "
    "ol optgroup option p pre section summary table tbody td textarea tfoot th thead tr ul".split())
# Tags skipped with their content: never article text.
SKIP_TAGS = frozenset(
    "script style noscript template svg math iframe object embed canvas video audio map area "
    "button select input textarea option label head title meta link dialog "
    "nav header footer aside figcaption".split())

# class/id words naming boilerplate boxes; a class token that also has a word of
# CONTENT_WORDS ("content-sidebar-wrap", "social-embed") is not one.  (A flagged
# box that turns out to hold most of the good text is a layout wrapper, WRAPPER_SHARE,
# unless it is a comment thread under an article: DISCUSSION_WORDS.  A paywall's offer under a
# story's teaser is the site's, the same on every such story.)
BOILER_WORDS = frozenset(
    "comment comments share sharing social related recommended newsletter promo advert "
    "advertisement ad ads sidebar breadcrumb breadcrumbs cookie cookies subscribe subscription "
    "popup modal sponsored outbrain taboola disqus tags byline author footer nav navigation menu "
    "caption credit paywall regwall readmore mostread trending recirculation "
    # German sites' names for the same boxes (comments, paywall, most read, recommended); not the
    # singular "kommentar", which is also an opinion piece: the article itself
    "kommentare bezahlschranke meistgelesen empfehlungen mehrzumthema".split())
# a news site's boxes of other stories, named by two words ("read-more", "mostRead", "mehr-zum-thema"):
# either word alone names no box ("more-text", "read-time"); such a box inside the story had been indexed with it
BOILER_PAIRS = frozenset({("read", "more"), ("most", "read"), ("most", "popular"), ("most", "viewed"),
                          ("more", "stories"), ("more", "on"), ("see", "also"), ("read", "also"), ("also", "read"),
                          ("zum", "thema"), ("meist", "gelesen")})
# the names above of a box of other stories: one that links nowhere and holds a paragraph's text is none
# (a "read more" expander holding the rest of the story, "read-more-text", had lost it; CNN's "Read More"
# button, its two words, stays out)
STORY_LIST_WORDS = frozenset({"readmore", "mostread", "trending", "recirculation", "meistgelesen", "empfehlungen",
                              "mehrzumthema", *("-".join(pair) for pair in BOILER_PAIRS)})
MIN_EXPANDER_CHARS = 100  # of the box's paragraphs' text, not of the markup's indentation
# a picture or an embed: a <figure> holding one holds its caption (_Walker), and so does a box of one beside
# its one line (_beside_a_picture)
PICTURES = frozenset({"img", "picture", "video", "iframe"})
# the names of a paywall: the offer, or (a metered paywall's markup, no JSON-LD naming it) the story's gated
# part, hidden by a script past the free articles; it had lost that part, half the story. A box so named is the
# story's when it reads as the story: MIN_GATED_CHARS of paragraphs, and nothing an offer has (a link, a
# CONTROL_TAGS element, a subscription's price)
PAYWALL_WORDS = frozenset({"paywall", "regwall", "bezahlschranke"})
MIN_GATED_CHARS = MIN_GOOD_CHARS  # an offer's one paragraph ("This article is for subscribers...") is shorter
CONTROL_TAGS = frozenset({"button", "form", "input", "select", "textarea"})
# a price by the time it buys ("£1 a week", "$4.99/mo", "Vier Wochen für nur 0,99 Euro"): an amount alone is
# a story's as often ("tickets cost £15", "lost 20 pounds"), and had lost a gated part that named one. The
# amount's separators go between digits: a full stop after it ends its sentence, past which no time is its.
# A bare amount starts where its number does (the lookbehinds): tried from each of a long number's digits,
# each try reading to its end, the search had been quadratic (30,000 digits: a minute)
_AMOUNT = (r"(?:[$£€¥]\s?\d+(?:[.,]\d+)*"
           r"|(?<!\d)(?<!\d[.,])\d+(?:[.,]\d+)*\s?(?:[$£€¥]|euros?\b|eur\b|dollars?\b|pounds?\b))")
_PERIOD = (r"\b(?:day|week|month|year|annum|mo|yr|tag|wochen?|monate?|monats|jahr|jahres|semaines?|mois)s?\b"
           r"|\b(?:daily|weekly|monthly|yearly|annually|par\s+an)\b")
_SUBSCRIPTION_PRICE = re.compile(rf"{_AMOUNT}[^.!?\d]{{0,20}}?(?:{_PERIOD})|(?:{_PERIOD})[^.!?\d]{{0,25}}?{_AMOUNT}",
                                 re.I)
# what links to another page: an <a>, with or without its href, or an element a script follows (a "Most
# read" of cards each with onclick or data-href, no href, had been read as the story's text)
LINK_ATTRIBUTES = ("href", "onclick", "data-href", "data-url", "data-link")


def _links(el):
    """Whether ``el`` links somewhere (LINK_ATTRIBUTES, an <a>, role="link")."""
    return el.tag == "a" or el.get("role") == "link" or any(el.get(name) is not None for name in LINK_ATTRIBUTES)

CONTENT_WORDS = frozenset({"content", "embed"})
# a class token opening with one of these names no box: WordPress's post_class labels the post's own
# element by its terms ("tag-trending", "category-kommentare": the story had been left out as a box),
# and "non-" is the box's opposite ("non-paywall", Google's free part beside the gated one; not "no-":
# a BBC figure's "no-caption" holds the image's credit line)
NAMING_NO_BOX = frozenset({"tag", "category", "non"})
DISCUSSION_WORDS = frozenset({"comment", "comments", "disqus", "kommentare"})
CONSENT_WORDS = frozenset({"cookie", "cookies"})
_CAMEL = re.compile(r"([a-z])([A-Z])")
_TOKEN_SPLIT = re.compile(r"[-_:]+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def _boiler_words(value):
    """The BOILER_WORDS by which a class/id value names a boilerplate box (share bar, comments, ...);
    empty when it names none."""
    named = set()
    for token in _CAMEL.sub(r"\1-\2", value).lower().split():
        parts = _TOKEN_SPLIT.split(token)
        if parts[0] in NAMING_NO_BOX:
            continue
        words = set(parts)
        if CONTENT_WORDS.isdisjoint(words):
            named |= words & BOILER_WORDS
            named |= {"-".join(pair) for pair in zip(parts, parts[1:]) if pair in BOILER_PAIRS}
    return named


def _class_value(el):
    return (el.get("class") or "")[:MAX_CLASS_CHARS] + " " + (el.get("id") or "")[:MAX_CLASS_CHARS]


def _hidden(el):
    if el.get("hidden") is not None or el.get("aria-hidden") == "true":
        return True
    style = el.get("style")
    return bool(style) and _HIDDEN_STYLE.search(style) is not None


class _Enough(Exception):
    """The walk has read MAX_ELEMENTS elements or made MAX_PARAGRAPHS paragraphs."""


class _Walker:
    """DOM -> paragraphs, the way jusText's ParagraphMaker cuts them."""

    def __init__(self, show_hidden=False, captions=False, gated=frozenset(), headers=False):
        self.show_hidden = show_hidden
        self.gated = gated  # the story's subscribers-only part, its ".class" and "#id" (_gated_classes): no box
        self.skip_tags = SKIP_TAGS - {"figcaption"} if captions else SKIP_TAGS
        if headers:
            self.skip_tags = self.skip_tags - {"header"}
        self.hidden = 0  # elements skipped as hidden
        self.links = 0  # elements met so far inside boxes of other stories or paywalls that link somewhere (_links)
        self.controls = 0  # CONTROL_TAGS elements met so far inside paywall boxes
        self.story_lists = 0  # boxes of other stories open around the element walked
        self.paywalls = 0  # paywall boxes likewise
        self.figures = []  # per <figure> open around the element walked: the pictures in the <figure>s it holds
        self.pictures = 0  # PICTURES elements met so far (a <figure> without one holds no caption)
        self.elements = 0
        self.path_facts = {}  # dom path -> (is_heading, in_headline): sibling paragraphs share a path
        self.paras = []
        self.path = []
        self.flags = []
        self.parts = []
        self.link_chars = 0
        self.in_link = 0
        self.br = False
        self.node = None
        self.start_path = ""

    def flush(self, next_node):
        if self.parts:
            text = " ".join("".join(self.parts).split())
            if text:
                facts = self.path_facts.get(self.start_path)
                if facts is None:  # a path 250 elements deep takes 15 us to search
                    facts = self.path_facts[self.start_path] = (
                        bool(HEADINGS_PATTERN.search(self.start_path)), "h1" in self.start_path.split("."))
                self.paras.append(_Para(self.node, self.start_path, text, self.link_chars,
                                        self.flags[-1] if self.flags else None, *facts))
                if len(self.paras) >= MAX_PARAGRAPHS:
                    raise _Enough
        self.parts = []
        self.link_chars = 0
        self.node = next_node
        self.start_path = ".".join(self.path)

    def text(self, s):
        if not s:
            return
        self.parts.append(s)
        if not s.isspace():
            if self.in_link:
                self.link_chars += len(" ".join(s.split()))
            self.br = False

    def walk(self, el):
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise _Enough
        tag = el.tag
        if tag in PICTURES:  # before the skip: a <video> is one
            self.pictures += 1
        if self.paywalls and tag in CONTROL_TAGS:  # skipped below, with their content
            self.controls += 1
        if not isinstance(tag, str) or tag in self.skip_tags or len(self.path) >= MAX_DEPTH:
            self.text(el.tail)
            return
        if not self.show_hidden and _hidden(el):
            self.hidden += 1
            self.text(el.tail)
            return
        if tag == "br":
            if self.br:  # <br><br> ends a paragraph
                self.flush(el.getparent())
                self.br = False
            else:
                self.parts.append(" ")
                self.br = True
            self.text(el.tail)
            return
        block = tag in BLOCK_TAGS
        flagged = False
        if tag not in ("html", "body", "article", "main"):
            value = _class_value(el)
            named = _boiler_words(value) if value != " " else ()
            if named and not (self.gated and _gated(el, self.gated)):
                flagged = block = True
        # a picture's <figure>: its text is the picture's caption or credit, not the story, with a <figcaption>
        # or without (a <p> in it had been read as the story's first paragraph); known once it has been read.
        # A picture in a <figure> inside it is that one's (unless the inner one is a named box, a share figure:
        # its pictures count for the outer): a quote's figure holding a picture's had lost the quote
        figure = tag == "figure" and not flagged and "figcaption" in self.skip_tags
        flagged = flagged or figure
        if figure:
            self.figures.append(0)
        self.path.append(tag)
        if block:
            self.flush(el)
        if flagged:
            self.flags.append(el)
            # a box of other stories that links nowhere is none: known once it has been read
            story_list = not figure and named <= STORY_LIST_WORDS
            paywall = not figure and named <= PAYWALL_WORDS  # likewise a paywall that reads as the story's gated part
            first_para, links_before, controls_before = len(self.paras), self.links, self.controls
            pictures_before = self.pictures
            self.story_lists += story_list
            self.paywalls += paywall
        if self.story_lists or self.paywalls:  # links counted in such boxes only: on every element, a fifth of a walk
            self.links += _links(el)
        if tag == "a":
            self.in_link += 1
        self.text(el.text)
        for child in el:
            self.walk(child)
        if tag == "a":
            self.in_link -= 1
        self.path.pop()
        if block:
            self.flush(el.getparent())
        if flagged:
            self.flags.pop()
            self.story_lists -= story_list
            self.paywalls -= paywall
            if figure:
                inner = self.pictures - pictures_before
                own = inner - self.figures.pop()  # not those in the <figure>s inside it
                if self.figures:
                    self.figures[-1] += inner
            if figure and not own:  # a table's, a code listing's, a quote's: the story's
                outer = self.flags[-1] if self.flags else None
                for para in self.paras[first_para:]:
                    if para.flag is el:
                        para.flag = outer
            elif self.links == links_before and (story_list or (paywall and self.controls == controls_before)):
                own = [para for para in self.paras[first_para:] if para.flag is el]
                chars = sum(len(para.text) for para in own)
                if (chars >= MIN_EXPANDER_CHARS if story_list else
                        chars >= MIN_GATED_CHARS and not any(map(_names_price, own))):
                    outer = self.flags[-1] if self.flags else None
                    for para in own:
                        para.flag = outer
        self.text(el.tail)


def _names_price(para):
    """Whether ``para`` names a subscription's price, searched once: a paragraph inside nested paywall boxes
    is asked again by each (500 boxes around 1 MB of text had searched it 500 times, a hundred seconds)."""
    if para.priced is None:
        para.priced = _SUBSCRIPTION_PRICE.search(para.text) is not None
    return para.priced


def _paragraphs(root, show_hidden=False, captions=False, gated=frozenset(), headers=False):
    """The paragraphs under ``root``, and how many hidden elements were left out; ``captions``: with
    the figures' captions; ``gated``: _gated_classes; ``headers``: with the <header>s' lines."""
    walker = _Walker(show_hidden, captions, gated, headers)
    walker.node = root
    try:
        walker.walk(root)
        walker.flush(None)
    except _Enough:  # the paragraph being read when the walk stopped is left out: it may be cut short
        pass
    return walker.paras, walker.hidden


def _nearest_classes(classes, order):
    """For each paragraph, walking in ``order``: the class of the nearest one before it that is
    good or bad, and of the nearest one that is not short; "bad" when there is none."""
    good_or_bad, not_short = [None] * len(classes), [None] * len(classes)
    last_good_or_bad = last_not_short = "bad"
    for i in order:
        good_or_bad[i], not_short[i] = last_good_or_bad, last_not_short
        if classes[i] in ("good", "bad"):
            last_good_or_bad = last_not_short = classes[i]
        elif classes[i] == "neargood":
            last_not_short = "neargood"
    return good_or_bad, not_short


def _good_follows(paras, max_heading_distance):
    """For each paragraph, by the classes they hold now: whether a good one follows it with at most
    ``max_heading_distance`` characters of text between them (jusText's test of a heading, which
    walks forward from each: 100k one-letter headings took 13 s)."""
    follows = [False] * len(paras)
    between = None  # characters from paragraph i+1 to the first good one after i; None: there is none
    for i in range(len(paras) - 2, -1, -1):
        after = paras[i + 1]
        if after.class_type == "good":
            between = 0
        elif between is not None:
            between += len(after)
        follows[i] = between is not None and between <= max_heading_distance
    return follows


def revise_classification(paras, max_heading_distance):
    """jusText's revise_paragraph_classification, the same classes in linear time. jusText
    walks from each short or near-good paragraph to its nearest good or bad ones, so a page of
    many short paragraphs took quadratic time (200 KB of "<p>two words": 36 s); here each
    direction's nearest classes are found in one pass."""
    good_follows = _good_follows(paras, max_heading_distance)  # by the last pass's classes, as in jusText
    for i, para in enumerate(paras):  # good headings
        para.class_type = para.cf_class
        if para.heading and para.class_type == "short" and good_follows[i]:
            para.class_type = "neargood"

    classes = [para.class_type for para in paras]  # short ones take their class from the neighbours' before this pass
    prev_good_or_bad, prev_not_short = _nearest_classes(classes, range(len(paras)))
    next_good_or_bad, next_not_short = _nearest_classes(classes, range(len(paras) - 1, -1, -1))
    for i, para in enumerate(paras):
        if classes[i] != "short":
            continue
        before, after = prev_good_or_bad[i], next_good_or_bad[i]
        if before == after:
            para.class_type = before
        elif (before == "bad" and prev_not_short[i] == "neargood") or \
                (after == "bad" and next_not_short[i] == "neargood"):
            para.class_type = "good"
        else:
            para.class_type = "bad"

    # near-good ones: by the class just settled before them, and the good or bad one after them
    next_good_or_bad, _ = _nearest_classes([para.class_type for para in paras], range(len(paras) - 1, -1, -1))
    before = "bad"
    for i, para in enumerate(paras):
        if para.class_type == "neargood":
            para.class_type = "bad" if (before, next_good_or_bad[i]) == ("bad", "bad") else "good"
        if para.class_type in ("good", "bad"):
            before = para.class_type

    good_follows = _good_follows(paras, max_heading_distance)
    for i, para in enumerate(paras):  # more good headings
        if para.heading and para.class_type == "bad" and para.cf_class != "bad" and good_follows[i]:
            para.class_type = "good"


def _classify(paras, stoplist):
    """jusText's classification, retried laxer when it keeps (almost) nothing, and at last on runs of
    sibling paragraphs taken together."""
    attempts = [(stoplist, STOPWORDS_LOW, STOPWORDS_HIGH, MAX_LINK_DENSITY)] if stoplist else []
    attempts += [(frozenset(), 0.0, 0.0, MAX_LINK_DENSITY),  # jusText's stoplist-free mode
                 (frozenset(), 0.0, 0.0, FALLBACK_LINK_DENSITY)]
    for sl, sw_low, sw_high, max_ld in attempts:
        classify_paragraphs(paras, sl, LENGTH_LOW, LENGTH_HIGH, sw_low, sw_high, max_ld)
        revise_classification(paras, MAX_HEADING_DISTANCE)
        if _good_chars(paras) >= MIN_GOOD_CHARS:
            return
    # An article of one-line paragraphs (news in short sentences, a Q&A) has none that jusText calls
    # more than short, and short ones with no good neighbour are bad: judge each run of them in one
    # element as one paragraph and give each its run's class.  Only with a stoplist: the share of
    # stopwords is what tells a run of sentences from a list of names or figures.
    runs = _sibling_runs(paras) if stoplist else []
    if len(runs) in (0, len(paras)):  # no stoplist, or no two paragraphs to merge
        return
    merged = [_Para(run[0].node.getparent(), run[0].dom_path, " ".join(p.text for p in run),
                    sum(p.chars_count_in_links for p in run), run[0].flag, run[0].is_heading, run[0].in_headline)
              for run in runs]
    classify_paragraphs(merged, stoplist, LENGTH_LOW, LENGTH_HIGH, STOPWORDS_LOW, STOPWORDS_HIGH, MAX_LINK_DENSITY)
    revise_classification(merged, MAX_HEADING_DISTANCE)
    if _good_chars(merged) >= MIN_GOOD_CHARS:
        for run, block in zip(runs, merged):
            for p in run:
                p.cf_class, p.class_type = block.cf_class, block.class_type


def _good_chars(paras):
    return sum(len(p) for p in paras if p.class_type == "good")


def _sibling_runs(paras):
    """``paras`` cut into runs of consecutive paragraphs held by children of one element, in one
    boilerplate box or none, and neither of them a heading."""
    runs, last_key = [], None
    for p in paras:
        key = None if p.heading or p.node is None else (p.node.getparent(), p.flag)  # lxml: == is identity
        if key is not None and key == last_key:
            runs[-1].append(p)
        else:
            runs.append([p])
        last_key = key
    return runs


# --------------------------------------------------------------------------- the article

def _layout_wrapper(box, held, total):
    """Whether a "boilerplate" box holding ``held`` of the ``total`` good text is a layout wrapper: it
    holds most of the text, and is not a comment thread with an article beside it."""
    if held <= WRAPPER_SHARE * total:
        return False
    if not CONSENT_WORDS.isdisjoint(_boiler_words(_class_value(box))):
        return False  # a cookie wall is all a consent page holds: it is no article's wrapper
    thread = not DISCUSSION_WORDS.isdisjoint(_boiler_words(_class_value(box)))
    return not (thread and total - held >= ARTICLE_BESIDE_CHARS)


def _element_tree(paras):
    """The paragraphs' elements and their ancestors: {element: {child on the way down to a
    paragraph, or None for a paragraph in the element itself: True}}, keyed in the order a walk up
    from each paragraph in turn first reaches them, and the elements in an order that puts each
    before its children. A walk up stops at an element already reached, so a page of many deep
    paragraphs costs its elements, not its paragraphs times their depth."""
    kids, roots = {}, []
    for p in paras:
        node, below = p.node, None
        while node is not None:
            reached = node in kids
            kids.setdefault(node, {})[below] = True
            if reached:
                break
            node, below = node.getparent(), node
        else:
            if below is not None:
                roots.append(below)
    return kids, _breadth_first(kids, roots)


def _breadth_first(kids, tops):
    """``tops`` and every element below them in ``kids``, each before its children."""
    order = list(tops)
    for node in order:  # grows as it goes
        order.extend(child for child in kids[node] if child is not None)
    return order


def _summed_up(kids, top_down, own, shrink_past=frozenset()):
    """Each element's ``own`` value plus its children's sums, a child's times BRANCH_DECAY when the
    child is in ``shrink_past``."""
    sums = {}
    for node in reversed(top_down):
        total = own.get(node, 0.0)
        for child in kids[node]:
            if child is not None:
                total += sums[child] * (BRANCH_DECAY if child in shrink_past else 1.0)
        sums[node] = total
    return sums


def _by_element(pairs):
    summed = {}
    for node, value in pairs:
        summed[node] = summed.get(node, 0.0) + value
    return summed


def _select(paras):
    """The paragraphs of the article container (see the module docstring)."""
    if not paras:
        return []
    total = 0.0
    for p in paras:
        n = len(p)
        if p.class_type == "good" or p.cf_class == "neargood":
            p.score = n
            total += n
        elif p.links_density() > MAX_LINK_DENSITY:
            p.score = -LINK_PENALTY * n
        else:
            p.score = -OTHER_PENALTY * n
    if total <= 0:
        return []
    kids, top_down = _element_tree(paras)

    held = _summed_up(kids, top_down, _by_element((p.flag, p.score) for p in paras if p.flag is not None and p.score > 0))
    wrappers = {box for box in {p.flag for p in paras} - {None} if _layout_wrapper(box, held.get(box, 0.0), total)}
    for p in paras:
        if p.flag in wrappers:
            p.flag = None

    forks = {node for node, below in kids.items() if len(below) > 1}  # where the text branches
    # a box's good text neither adds nor takes away: counted against its ancestors, a comment thread
    # longer than the short story above it in one <article> had left a single paragraph the best
    scores = _summed_up(kids, top_down, _by_element(
        (p.node, 0.0 if p.flag is not None and p.score > 0 else p.score) for p in paras), forks)
    best = max(kids, key=scores.get)  # of equal scores, the first reached, as the per-paragraph walk had it
    if scores[best] <= 0:
        return []

    body = set(_breadth_first(kids, [best]))
    lede = set(_breadth_first(kids, _lede_before(best, body, kids, scores, paras)))
    kept = []
    for p in paras:
        if p.node not in body and p.node not in lede:
            continue
        if p.flag is not None and p.flag is not best and (p.flag in body or p.flag in lede):
            continue  # a share bar, caption, ... inside the article
        if p.in_headline:
            continue  # the headline
        if p.class_type == "good" or p.links_density() <= KEEP_LINK_DENSITY:
            kept.append(p)
    kept = _without_hero_captions(kept, best, kids, _by_element((p.node, 1) for p in paras))
    # a lede's paragraph that the body reads again word for word (a standfirst, again as the first paragraph)
    # is read once, not weighed double; a repeat the body leaves out (a share box's) does not count; within
    # the body a repeated line is the story's (a table's, a meal plan's)
    said = {p.text for p in kept if p.node in body} if lede else set()
    return [p for p in kept if p.node in body or p.text not in said]


def _lede_before(best, body, kids, scores, paras):
    """The elements beside ``best`` (``body`` the elements under it) that hold the story's first part: a
    story split into a lede (or teaser) box and a body box under the element holding its headline counts
    the body at BRANCH_DECAY there, and 3 body paragraphs outscored a 170-character lede, which had been
    lost. Those are the siblings of ``best`` (of the element holding it alone) after the headline's and
    before it that score a paragraph's worth (jusText's 70 characters): not a box (its good text scores
    nothing), a link list or a date line (two dev pages' dates, good by their neighbours). What lies
    after the story (a bio, comments, a footer line) or before its headline stays out, and so does a
    picture with its one short line (a caption in a box named for no caption: _a_caption); so does all of
    it when ``best`` opens with a heading of its own: the <h1> above is then the site's name, not its
    headline. A headline in the story's <header> (skipped by the walk: _story_header) counts as one, and a
    line beside a picture in a <figure> of its own is not its caption (a hero's figure beside the story's
    one-line lede)."""
    if next(p for p in paras if p.node in body).is_heading:
        return []
    top, parent = best, best.getparent()
    while parent in kids and len(kids[parent]) == 1:  # an element holding only the container
        top, parent = parent, parent.getparent()
    if parent not in kids:
        return []
    order = {child: i for i, child in enumerate(parent)}  # document order
    position = {child: order[child] for child in kids[parent] if child is not None}
    headline = max((i for child, i in order.items() if i < position[top] and _story_header(child)), default=-1)
    seen = set()
    for p in paras:
        node = p.node if p.in_headline else None
        while node is not None and node not in seen:  # a walk up stops where an earlier one passed
            seen.add(node)
            if node in position:
                headline = max(headline, position[node])
                break
            node = node.getparent()
    if headline < 0:
        return []
    ledes = [child for child, i in position.items()
             if headline < i < position[top] and child is not None and scores[child] >= LENGTH_LOW_DEFAULT]
    if not ledes:
        return []
    per_node = _by_element((p.node, 1) for p in paras)  # the siblings' subtrees are disjoint: linear in all
    line_of = {p.node: p for p in paras}  # an element's paragraph, where it holds one

    def caption(child):
        holding = [node for node in _breadth_first(kids, [child]) if node in per_node]  # elements holding its lines
        return (len(holding) == 1 and per_node[holding[0]] == 1
                and _a_caption(line_of[holding[0]], child))

    return [child for child in ledes if not caption(child)]


def _without_hero_captions(kept, best, kids, per_node):
    """``kept`` without the captions before the story's first line (``per_node``: each element's number of
    paragraphs): a line that is all a box holds beside a picture (the hero's ``<div><img><p>caption</p></div>``
    inside the container itself) had been read as the story's first paragraph. Past the first good line
    that is none, such a box's line is the story's (a paragraph beside its inline picture), and so is each
    when no other good line is left (a photo and its caption are the story)."""
    out = []
    for i, p in enumerate(kept):
        if _hero_caption(p, best, kids, per_node):
            continue
        out.append(p)
        if p.class_type == "good":
            return out + kept[i + 1:]
    return kept


def _hero_caption(para, best, kids, per_node):
    """Whether the paragraph ``para`` is a picture's caption: its element's one paragraph, all that a box around
    it holds beside a picture, which is then the box's main content. Not a line whose own element holds the
    picture (``<p><img>line</p>``, a story's paragraph with a picture inline), one beside a picture in a
    <figure>, which holds its caption, nor a long one (_a_caption)."""
    line = para.node
    if line is best or per_node.get(line) != 1 or len(kids[line]) != 1:
        return False
    box = line
    while box.getparent() is not best and box.getparent() in kids and len(kids[box.getparent()]) == 1:
        box = box.getparent()  # an element holding only this line
    # (not a line whose own element holds the picture: <p><img>line</p> there is a story's paragraph)
    return box is not line and _a_caption(para, box)


# a caption is short: 3 in 4 of the dev pages' marked ones (<figcaption>, a "caption" class) are under 130
# characters, 1 in 6 over 200. A paragraph past jusText's long length beside a picture, in no such mark (a
# marked one stays out by its mark), is the story's: a 40-word lede beside the hero picture had been lost as
# its caption
MAX_CAPTION_CHARS = LENGTH_HIGH


def _a_caption(para, box):
    """Whether ``para``, the one line of ``box``, is a picture's caption there: no longer than a caption,
    and _beside_a_picture."""
    return para.length <= MAX_CAPTION_CHARS and _beside_a_picture(para.node, box)


def _beside_a_picture(line, box):
    """Whether the element ``line``, the one line of ``box`` (or ``box`` itself), is a picture's caption
    there: a picture in ``box``, and not in a <figure> that leaves the line out (a figure holds its own
    caption)."""
    todo = [child for child in box if child is not line]  # one walk of the box, not one up from each picture
    while todo:
        node = todo.pop()
        if node.tag in PICTURES:
            return True
        if node.tag != "figure" or line in node.iterdescendants():
            todo.extend(child for child in node if child is not line)
    return False


STORY_TAGS = ("article", "main")


def _story_header(el):
    """Whether ``el`` is the story's own <header>: one holding the headline (an <h1> with text) inside an
    <article> or <main>. One outside them is the site's, its <h1> the site's name."""
    return (el.tag == "header" and any(h1.text_content().strip() for h1 in el.iter("h1"))
            and any(a.tag in STORY_TAGS for a in el.iterancestors()))


def _header_before(node):
    """The story's <header> (_story_header) nearest before ``node``: a sibling of it or of an element above
    it, the nearest level first."""
    below = node
    for parent in node.iterancestors():
        found = None
        for child in parent:
            if child is below:
                break
            if _story_header(child):
                found = child
        if found is not None:
            return found
        below = parent
    return None


# a standfirst is a line or two (one on each of the 7 dev pages that have one); each is looked for in the text,
# so a header of thousands of prose lines had cost seconds (time as lines times the text's length)
MAX_STANDFIRST_LINES = 5


def _lone_story_header(doc):
    """The page's one story <header> (_story_header); None when it has none or several (a list of stories)."""
    headers = [el for el in doc.iter("header") if _story_header(el)]
    return headers[0] if len(headers) == 1 else None


def _standfirst(doc, kept, stoplist):
    """The lines of the standfirst (a "sub-head", "strapline" or "dek") in the story's <header> before the
    first of the ``kept`` paragraphs, or the page's one story header when nothing was kept (a brief, a video
    page: the headline and standfirst are all its words, and had been a page with no text): those under the
    headline of a paragraph's length and prose (jusText's context-free neargood or good, judged alone), not
    in a box (a byline, a caption). The walk skips every <header>, and the benchmark's expected text leaves
    the standfirst out (all 7 dev pages that have one): it is the page's summary, read for its vector, not
    its text. The first MAX_STANDFIRST_LINES."""
    header = _header_before(kept[0].node) if kept else _lone_story_header(doc)
    if header is None:
        return []
    walked = _paragraphs(header, headers=True)[0]
    # under the headline: a line above it is a kicker or, on a fact-check, the quote's attribution line
    after = next((i for i, p in enumerate(walked) if p.in_headline), len(walked))
    lines = [p for p in walked[after:] if not p.in_headline and p.flag is None]
    if stoplist:
        classify_paragraphs(lines, stoplist, LENGTH_LOW, LENGTH_HIGH, STOPWORDS_LOW, STOPWORDS_HIGH, MAX_LINK_DENSITY)
    else:  # jusText's stoplist-free mode
        classify_paragraphs(lines, frozenset(), LENGTH_LOW, LENGTH_HIGH, 0.0, 0.0, MAX_LINK_DENSITY)
    return [p.text for p in lines if p.cf_class in ("good", "neargood")][:MAX_STANDFIRST_LINES]


def _parse(html):
    # huge_tree: past 256 levels libxml2 stops parsing the whole page (MAX_DEPTH bounds the walk);
    # its other limits are for inputs far beyond FETCH_MAX_BYTES
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, huge_tree=True)
    return lxml.html.document_fromstring(without_attribute_floods(html), parser=parser)


def extract_article(html, url=None, encoding=None) -> Article:
    """Title, language and main text of an HTML page (bytes or str); never raises.

    ``encoding`` is the charset the HTTP header declared, if any.  Returns an
    Article with empty fields when the input holds no readable page.
    """
    try:
        return _extract(html, url, encoding)
    except Exception:
        return EMPTY


def _extract(html, url, encoding):
    if isinstance(html, (bytes, bytearray, memoryview)):
        html = decode_html(bytes(html), encoding)
    if not isinstance(html, str) or not html.strip() or _looks_binary(html):
        return EMPTY
    html = re.sub(r"^\s*<\?xml[^>]*>", "", html.replace("\x00", ""), count=1)
    try:
        doc = _parse(html)
    except (lxml.etree.ParserError, ValueError):
        return EMPTY
    meta = _meta(doc)
    title = _title(doc, meta, url)

    body = doc.find("body")
    root = body if body is not None else doc
    declared = language.code(doc.get("lang") or doc.get("xml:lang") or meta.get("content-language")
                             or meta.get("og:locale") or "")
    gated = _gated_classes(doc)
    paras, hidden = _paragraphs(root, gated=gated)
    text, lang, kept, stoplist = _article_text(paras, declared)
    standfirst = _standfirst(doc, kept, stoplist)
    story = _story_article(doc)
    if story is not None and kept:
        inside = set(story.iter())  # one walk of the story, not one up from each kept paragraph
        if not any(p.node in inside for p in kept) and _among_links(kept):
            # a gallery, a video, a brief: too little in the story for jusText, and what it kept is a
            # box of teasers beside it ("Read more"), which had been indexed as the page's own text. Not
            # text without links (an <article> around the headline, byline and standfirst alone, the body
            # after it), nor the story's own lines under half of what jusText found: either had been read
            # as no text at all, or as its 40-character standfirst
            own = _post_lines(story)
            if 2 * reading_length(own) >= reading_length(text):
                text = own
    length = reading_length(text)
    json_ld_post = None  # read with the articleBody: a page with no text at all has had it read
    if length < 500:
        fallback, json_ld_post = _json_ld(doc)
        if reading_length(fallback) > 2 * length:
            text = fallback
    if not text and hidden:  # a page hidden until a script shows it, or a consent dialog open over it
        text, lang, _, _ = _article_text(_paragraphs(root, show_hidden=True, gated=gated)[0], declared)
    if not text:  # a photo's caption, a link with a line on it: too short for jusText, if the page is a post
        text = _short_post_text(doc, meta, title, json_ld_post)
        lang = language.choose(declared, text)[1] if text else lang
    # not a line the text reads again (the body's first paragraph, an articleBody that opens with it), nor the
    # title, which the vector reads first (indexed_text)
    summary = "\n\n".join(line for line in standfirst if line not in text and line != title)
    if summary and not text:  # the standfirst is all the page's words: their language, as a short post's
        lang = language.choose(declared, summary)[1]
    return Article(title, lang, text, canonical_of(doc, url), summary)


def _article_text(paras, declared):
    """(text, language, its paragraphs, the stoplist that judged them) of the article among ``paras``."""
    # the language of the article, not of the comment and newsletter boxes beside it, where the rest
    # holds enough text to tell
    long_paras = [p for p in paras if len(p) > 50]
    unboxed = " ".join(p.text for p in long_paras if p.flag is None)
    sample = unboxed if len(unboxed) >= 200 else " ".join(p.text for p in long_paras) or " ".join(p.text for p in paras)
    stoplist_name, lang = language.choose(declared, sample)
    stoplist = language.stoplist(stoplist_name) if stoplist_name else None
    _classify(paras, stoplist)
    kept = _select(paras)
    return "\n\n".join(p.text for p in kept), lang, kept, stoplist


# --------------------------------------------------------------------------- short posts

# A post of a sentence or two (a photo and its caption, a link and a line on it) has no paragraph
# jusText calls more than short. When nothing else was kept, a page that says it is a post gives
# what it says it is about: the short lines inside its one <article> (else its <main>), else its
# description. A page that says nothing of the kind (a login form, a "not found" page, a cookie
# wall: their site-wide description would be read as theirs) keeps giving no text.
MIN_SHORT_POST_CHARS = 15  # "Fog on the lake." is a caption; "Photo", "Untitled" are not
POST_TYPES = ("Article", "Posting", "Report")  # as schema.org's types end: BlogPosting, NewsArticle, ...
DESCRIPTIONS = ("og:description", "twitter:description", "description")
CAPTION_WORDS = frozenset({"caption"})  # a box named so ("wp-caption-text") is here the post's words


def _calls_itself_a_post(doc, meta, json_ld_post):
    """Whether the page says it is an article or post: an <article>, og:type article (or its
    article:* properties), a schema.org Article or Posting in its JSON-LD (``json_ld_post``, _json_ld's)."""
    if doc.find(".//article") is not None or meta.get("og:type", "").lower().startswith("article"):
        return True
    if any(key.startswith("article:") for key in meta):
        return True
    return json_ld_post


def _post_container(doc):
    """The page's one <article>, else its <main>; None when it has neither, or several articles (a
    list of posts, not one)."""
    articles = doc.xpath("//article")
    if len(articles) == 1:
        return articles[0]
    if not articles:
        mains = doc.xpath("//main | //*[@role='main']")
        return mains[0] if mains else None
    return None


def _among_links(kept):
    """Whether the paragraphs jusText ``kept`` lie among as many links as they are, a link a teaser
    (counted in the element holding them all): a box of other stories, not a story's body."""
    holder = _lowest_common_ancestor([p.node for p in kept])
    teasers = sum(not p.is_heading for p in kept)  # a teaser's own headline, linked by a script, is kept too
    return holder is not None and sum(map(_links, holder.iter(tag=lxml.etree.Element))) >= teasers


def _lowest_common_ancestor(nodes):
    """The deepest element holding every one of ``nodes`` (themselves included), or None; each element
    above them is walked once (5,000 paragraphs 500 deep had cost a walk each)."""
    chain = [nodes[0], *nodes[0].iterancestors()][::-1]  # the root first
    reached = {el: depth for depth, el in enumerate(chain)}  # element -> depth of its ancestor in chain
    lowest = len(chain) - 1
    for node in nodes:
        walked, el = [], node
        while el is not None and el not in reached:
            walked.append(el)
            el = el.getparent()
        if el is None:
            return None
        reached.update(dict.fromkeys(walked, reached[el]))
        lowest = min(lowest, reached[el])
    return chain[lowest]


def _story_article(doc):
    """The page's one <article> when the page's one <h1> is in it: the story, not a card beside it."""
    articles = doc.xpath("//article")
    if len(articles) != 1:
        return None
    headlines = doc.xpath("//h1")
    if len(headlines) != 1 or articles[0] not in headlines[0].iterancestors():
        return None
    return articles[0]


def _post_lines(container):
    """The short lines of a post's container, captions included (step 2 drops them beside an article: a
    photo post's one line is often its caption); "" under MIN_SHORT_POST_CHARS."""
    lines = [p.text for p in _paragraphs(container, captions=True)[0]
             if (p.flag is None or _boiler_words(_class_value(p.flag)) <= CAPTION_WORDS)
             and not p.is_heading and p.links_density() <= KEEP_LINK_DENSITY]
    text = "\n\n".join(lines)
    return text if reading_length(text) >= MIN_SHORT_POST_CHARS else ""


def _short_post_text(doc, meta, title, json_ld_post):
    """What a short post says it is about (see MIN_SHORT_POST_CHARS); "" when it is no post."""
    if doc.xpath("//input[translate(@type, 'PASWORD', 'pasword')='password']"):
        return ""  # a login form, whatever else the page says
    if not _calls_itself_a_post(doc, meta, json_ld_post):
        return ""
    container = _post_container(doc)
    text = _post_lines(container) if container is not None else ""
    if text:
        return text
    for key in DESCRIPTIONS:  # the title beside it is the page's Article.title
        text = " ".join(meta.get(key, "").split())
        if reading_length(text) >= MIN_SHORT_POST_CHARS and _letters(text) != _letters(title):
            return text
    return ""


def _main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m function.extract FILE.html[.gz] ...", file=sys.stderr)
        return 2
    status = 0
    for path in argv:
        try:
            with open(path, "rb") as f:
                data = f.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            print(f"{path}: {e}", file=sys.stderr)
            status = 1
            continue
        a = extract_article(data)
        print(json.dumps({"file": path, "title": a.title, "lang": a.lang, "summary": a.summary, "text": a.text},
                         ensure_ascii=False))
    return status


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
