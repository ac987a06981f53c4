"""What extraction gives and a request keeps: a module of its own, so that the
request path can name it without importing the extractor (lxml, jusText load on
the first fetch)."""

import re
from dataclasses import dataclass

# A title goes into every answer for the page and every request event, and the dashboard's labels:
# a page's 4 MB <title> had made each answer and event 4 MB. Longer ones (a page's, a corpus
# record's) are cut at a word, "…" marking the cut.
MAX_TITLE_CHARS = 300


def shortened(text):
    if len(text) <= MAX_TITLE_CHARS:
        return text
    cut = text[:MAX_TITLE_CHARS - 1]
    at_space = cut.rfind(" ")
    return (cut[:at_space] if at_space > MAX_TITLE_CHARS // 2 else cut).rstrip() + "…"


# Bidi embeddings, overrides and isolates: one left open in a title (U+202E) reverses the text
# after it wherever the title is shown, the site owner's widget and our pages alike; and the bidi
# marks and the byte-order mark, which show nothing. (Other format characters stay: the joiners
# spell Persian words and emoji.)
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def shown_title(title):
    """A title as answers, events and pages show it, a page's or a corpus record's: cut, and
    without bidi controls."""
    return " ".join(BIDI_CONTROLS.sub("", shortened(title)).split())


@dataclass(frozen=True)
class Article:
    title: str
    lang: str  # ISO 639-1 ("en"); 639-3 for languages without a 639-1 code; "" when unknown
    text: str  # the article's paragraphs joined by "\n\n"; "" when nothing was found
    canonical: str = ""  # the page's own address (<link rel=canonical>, else og:url), absolute; "" if none
    # the standfirst under the headline, its lines joined by "\n\n"; "" if none. Not in ``text``: the extraction
    # benchmark's expected text leaves it out, but it is the story in a sentence, what the page's vector should read
    summary: str = ""

    @property
    def words(self):
        """What the page's vector reads after its title (indexed_text): the summary, then the text (either may
        be "": a brief's standfirst is all its words)."""
        return "\n\n".join(part for part in (self.summary, self.text) if part)


def indexed_text(title, text, url="", titles=True):
    """What a document, or a fetched page asked about, is known by: its title, then its text. A title is
    the shortest summary there is, and extraction leaves a page's heading out with its other short
    lines. A title that is only a URL (none was given: the record's own, or the one it was listed
    under before a redirect) is not words of the article. ``titles``: the store's index_titles (a
    store built before titles were indexed reads its text alone)."""
    title = (title or "").strip()
    if not titles or not title or title == url.strip() or title.lower().startswith(("http://", "https://")):
        return text
    return f"{title}\n\n{text}"
