"""Text -> tokens, the same way for the builder and for serving.

The store records the options it was built with (``TokenizerOptions``), and
serving tokenises queries with exactly those, so a query and the documents
always meet in the same vocabulary.
"""

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache

WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Longest token kept, in characters; the vocabulary is stored as fixed-width
# strings of this length, so longer tokens (URLs, hashes, base64) are dropped.
MAX_TOKEN_CHARS = 24


@dataclass(frozen=True)
class TokenizerOptions:
    min_len: int = 1  # single letters kept ("U.S.", "World War I"): measured a little better than 2
    max_len: int = 20
    numbers: bool = False  # keep tokens made only of digits ("1969")
    deaccent: bool = True  # "café" -> "cafe"
    stopwords: str = ""  # "" or a jusText stoplist name such as "English"

    def __post_init__(self):
        if not 1 <= self.min_len <= self.max_len <= MAX_TOKEN_CHARS:
            raise ValueError(f"token lengths must satisfy 1 <= min_len <= max_len <= {MAX_TOKEN_CHARS}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


@lru_cache(maxsize=8)
def _stopwords(name):
    if not name:
        return frozenset()
    import justext  # only when a stoplist is asked for

    return frozenset(justext.get_stoplist(name))


def _strip_accents(text):
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text, options=TokenizerOptions()):
    """Lower-cased word tokens of ``text`` under ``options``, in order."""
    text = text.lower()
    if options.deaccent and not text.isascii():
        text = _strip_accents(text)
    stop = _stopwords(options.stopwords)
    lo, hi, numbers = options.min_len, options.max_len, options.numbers
    return [
        token
        for token in WORD.findall(text)
        if lo <= len(token) <= hi and (numbers or not token.isdigit()) and token not in stop
    ]
