"""What extraction gives and a request keeps: a module of its own, so that the
request path can name it without importing the extractor (lxml, jusText load on
the first fetch)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Article:
    title: str
    lang: str  # ISO 639-1 ("en"); 639-3 for languages without a 639-1 code; "" when unknown
    text: str  # the article's paragraphs joined by "\n\n"; "" when nothing was found
    canonical: str = ""  # the page's own address (<link rel=canonical>, else og:url), absolute; "" if none
