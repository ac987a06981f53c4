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

# How a store's text is read. Revision 1 is the stores built before revision 2 came, read as they
# were built. Revision 2 keeps a word's vowel signs and other marks in it (to `re` they are not
# alphanumeric, so they had cut words apart: Hindi "किताब" was "क", "त", "ब"), reads runs of
# Chinese, Japanese and Korean as overlapping character pairs (CJK_RUN), and puts Hangul syllables
# and kana with their voicing marks back together after accents are stripped.
REVISION = 2

# Scripts written without spaces between words, whose runs WORD takes whole: Han (with its marks
# of repetition and closing, 々 〆 〇 〻) and kana (a clause of Chinese or Japanese is one "word"),
# and Hangul, where particles join the word ("시의회는", "시의회가"). Their runs are read as
# overlapping pairs of characters, as search engines' CJK analysers do without a dictionary:
# "会议室" -> "会议", "议室".
HAN_KANA = ("\u3005-\u3007\u303b\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
            "\uff66-\uff9f\U00020000-\U0003134f")
HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
CJK_RUN = re.compile(f"[{HAN_KANA}{HANGUL}]+")

# kana's voicing marks, which NFKD takes off as it takes accents off Latin letters: "ガ" is not "カ"
KANA_MARKS = "\u3099\u309a"

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
    revision: int = REVISION

    def __post_init__(self):
        if not 1 <= self.min_len <= self.max_len <= MAX_TOKEN_CHARS:
            raise ValueError(f"token lengths must satisfy 1 <= min_len <= max_len <= {MAX_TOKEN_CHARS}")
        if self.revision not in (1, REVISION):
            raise ValueError(f"tokenizer revision {self.revision} is not one this version reads (1, {REVISION})")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{"revision": 1, **data})  # a store that names none was built before revisions


@lru_cache(maxsize=8)
def _stopwords(name):
    if not name:
        return frozenset()
    import justext  # only when a stoplist is asked for

    return frozenset(justext.get_stoplist(name))


@lru_cache(maxsize=1)
def _revision_2_patterns():
    """A word with the marks inside it, and what a text needs more than WORD for: a mark (after
    accents are stripped, those of Indic and other scripts) or CJK. Built on the first text not in
    ASCII (~10 ms, from the Unicode database: `re` cannot name a category). The marks of the Basic
    Multilingual Plane only: past it lie historic and small scripts, and one range up there made
    `re` test every range in turn, the search 50 times slower."""
    codes = [code for code in range(0x300, 0x10000) if unicodedata.category(chr(code)).startswith("M")]
    ranges = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    marks = "".join(re.escape(chr(low)) + ("-" + re.escape(chr(high)) if high > low else "") for low, high in ranges)
    return re.compile(rf"[^\W_]++(?:[{marks}]++[^\W_]*+)*+"), re.compile(f"[{marks}{HAN_KANA}{HANGUL}]")


def _strip_accents(text, recompose):
    decomposed = unicodedata.normalize("NFKD", text)
    keep = KANA_MARKS if recompose else ""
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch) or ch in keep)
    # NFKD also takes Hangul syllables apart into letters (jamo), which are not marks: put them,
    # and kana with their marks, back together
    return unicodedata.normalize("NFC", stripped) if recompose else stripped


def tokenize(text, options=TokenizerOptions()):
    """Lower-cased word tokens of ``text`` under ``options``, in order."""
    text = text.lower()
    current = options.revision >= 2
    if options.deaccent and not text.isascii():
        text = _strip_accents(text, recompose=current)
    stop = _stopwords(options.stopwords)
    lo, hi, numbers = options.min_len, options.max_len, options.numbers
    word_with_marks, beyond_word = _revision_2_patterns() if current and not text.isascii() else (None, None)
    if beyond_word is None or beyond_word.search(text) is None:  # most text: Latin, Cyrillic, Greek, Arabic
        words = WORD.findall(text)
    else:
        words = word_with_marks.findall(text)
        if CJK_RUN.search(text):  # after NFKD: "㍿" is "株式会社"
            words = [piece for word in words for piece in _cjk_pieces(word)]
    return [
        token
        for token in words
        if (lo <= len(token) or current and CJK_RUN.fullmatch(token)) and len(token) <= hi  # a pair is a word
        and (numbers or not token.isdigit()) and token not in stop
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
