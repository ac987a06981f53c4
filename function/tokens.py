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

# Scripts written without spaces between words, whose runs WORD takes whole: Han and kana (a
# clause of Chinese or Japanese is one "word"), and Hangul, where particles join the word ("시의회는",
# "시의회가"). With cjk_bigrams their runs are read as overlapping pairs of characters, as search
# engines' CJK analysers do without a dictionary: "会议室" -> "会议", "议室".
HAN_KANA = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
CJK_RUN = re.compile(f"[{HAN_KANA}{HANGUL}]+")

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
    cjk_bigrams: bool = True  # Han, kana and Hangul runs as overlapping pairs (see CJK_RUN)

    def __post_init__(self):
        if not 1 <= self.min_len <= self.max_len <= MAX_TOKEN_CHARS:
            raise ValueError(f"token lengths must satisfy 1 <= min_len <= max_len <= {MAX_TOKEN_CHARS}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{"cjk_bigrams": False, **data})  # a store built before the option read runs whole


@lru_cache(maxsize=8)
def _stopwords(name):
    if not name:
        return frozenset()
    import justext  # only when a stoplist is asked for

    return frozenset(justext.get_stoplist(name))


# kana's voicing marks, which NFKD takes off as it takes accents off Latin letters: "ガ" is not "カ"
KANA_MARKS = "\u3099\u309a"


def _strip_accents(text, cjk):
    decomposed = unicodedata.normalize("NFKD", text)
    keep = KANA_MARKS if cjk else ""
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch) or ch in keep)
    # NFKD also takes Hangul syllables apart into letters (jamo), which are not marks: put them,
    # and kana with their marks, back together
    return unicodedata.normalize("NFC", stripped) if cjk else stripped


def tokenize(text, options=TokenizerOptions()):
    """Lower-cased word tokens of ``text`` under ``options``, in order."""
    text = text.lower()
    cjk = options.cjk_bigrams and not text.isascii() and CJK_RUN.search(text) is not None
    if options.deaccent and not text.isascii():
        text = _strip_accents(text, cjk)
    stop = _stopwords(options.stopwords)
    lo, hi, numbers = options.min_len, options.max_len, options.numbers
    words = WORD.findall(text)
    if cjk:
        words = [piece for word in words for piece in _cjk_pieces(word)]
    return [
        token
        for token in words
        if (lo <= len(token) <= hi or CJK_RUN.fullmatch(token)) and (numbers or not token.isdigit())
        and token not in stop
    ]


def _cjk_pieces(word):
    """``word`` with each run of CJK_RUN cut into overlapping pairs (a run of one kept whole), the
    rest of it (Latin letters, digits: "2026年", "iphone发布") kept as words of their own."""
    pieces, start = [], 0
    for run in CJK_RUN.finditer(word):
        if run.start() > start:
            pieces.append(word[start:run.start()])
        chars = run.group()
        pieces += [chars] if len(chars) == 1 else [chars[i:i + 2] for i in range(len(chars) - 1)]
        start = run.end()
    if start < len(word):
        pieces.append(word[start:])
    return pieces
