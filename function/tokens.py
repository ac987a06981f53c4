"""Text -> tokens, the same way for the builder and for serving.

The store records the options it was built with (``TokenizerOptions``), and
serving tokenises queries with exactly those, so a query and the documents
always meet in the same vocabulary.
"""

import re
import threading
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache

WORD = re.compile(r"[^\W_]+", re.UNICODE)

# How a store's text is read; a store is read by the revision it was built with. Revision 1 is
# the stores built before revision 2 came. Revision 2 keeps a word's vowel signs and other marks in
# it (to `re` they are not alphanumeric, so they had cut words apart: Hindi "किताब" was "क", "त",
# "ब"), reads runs of Chinese, Japanese and Korean as overlapping character pairs (CJK_RUN), and
# puts Hangul syllables and kana with their voicing marks back together after accents are stripped.
# Revision 3 strips only the accents a reader may leave off (OPTIONAL_MARKS): revision 2 stripped
# every mark, Thai tone marks (ข้าว "rice" read as ขาว "white") and Indic viramas too; and it reads
# runs of Thai, Lao, Khmer and Myanmar, written without spaces between words, as overlapping pairs
# of clusters (SEA_RUN): they had been words of their own, most of them past max_len and dropped.
# Revision 4 spells out, with the accents, the letters a reader writes as plain ones (LETTERS_SPELT:
# "œufs" had not met "oeufs", nor "Straße" "strasse"); its stop lists are stop-words' (see
# stoplist_names), read as text is read, so that "été" leaves out "ete" and "qu'" the "qu" of
# "qu'on".
# Revision 5 reads a compound of two words joined by a hyphen as its words and, as well, as one
# word (JOINED_PART_CHARS): "Wi-Fi" is "wi", "fi" and "wifi", so that it meets "wifi" and "wifi"
# meets it ("e-mail", "on-line", "co-operate", French "week-end"); and it takes a soft hyphen
# (U+00AD), which only says where a line may break, out of its word: "inter\u00adnational" had been
# two words.
# Revision 6 does not join a compound whose second word is an elided letter (French "main-d'œuvre",
# "Côte-d'Or"): revision 5 read them as "maind" and "coted" as well, words no one types. And it
# joins the first pair of a chain whose first word is one letter and its second not: revision 5
# joined no chain, so "E-Mail-Adresse" had no "email" and a query "email" missed the article that
# writes only it ("U-Bahn-Station" is "ubahn" too; French "a-t-il" joins nothing still). The
# letter stays a word of its own: a query typed "x ray" or "t shirt" meets "X-ray" on it.
# Revision 7 joins a chain's first pair only when its second word has CHAIN_WORD_CHARS letters or more:
# revision 6 read a linguist's "i-dm-i" as "idm", and "à-la-carte" "ala". And it joins a compound
# one of whose words is in the stop list, whatever their lengths: that word is left out, and the
# other alone is another thing ("Grande-Bretagne" had been "bretagne", Brittany, "Nouveau-
# Brunswick" "brunswick").
REVISION = 7
REVISIONS = (1, 2, 3, 4, 5, 6, 7)

# Revision 5's compounds: two words joined by a hyphen (ASCII's, or one of HYPHENS_READ), the
# shorter at most JOINED_PART_CHARS long and neither with a digit. A prefix or a short word is what
# writers drop the hyphen of ("e-mail", "co-operate", "pre-war"); "state-of-the-art" and
# "mother-in-law" are phrases, written with spaces, never run together; "1990-2000", "2026-11-27",
# "covid-19" and "10th-century" are ranges, dates, names and ordinals no one types run together.
JOINED_PART_CHARS = 5
# A chain's second word, joined to its one-letter first (revision 7): at least this long, a word
# ("E-Mail-Adresse", "X-ray-like"), not a function word or a piece of one ("à-la-carte", "a-to-z")
CHAIN_WORD_CHARS = 3
# Unicode's hyphen and its non-breaking one, read as ASCII's; a soft hyphen, taken out (dashes stay
# apart: "1990\u20132000" is a range)
HYPHENS_READ = {"\u2010": "-", "\u2011": "-", "\u00ad": ""}

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

# The marks deaccent takes off in revision 3 (of these ranges, those Unicode calls marks): the
# accents of Latin, Greek and Cyrillic letters and the vowel points of Hebrew, Arabic and Syriac,
# which writers leave off. The marks of Indic and Southeast Asian scripts spell the word and stay.
OPTIONAL_MARKS = ((0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x05C7), (0x0610, 0x061A), (0x064B, 0x065F),
                  (0x0670, 0x0670), (0x06D6, 0x06ED), (0x0730, 0x074A), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF),
                  (0x20D0, 0x20FF), (0xFE20, 0xFE2F))

# Letters that no accent makes (NFKD leaves them whole) and that readers, typing, spell with plain
# ones: French œ and æ, German ß, Danish and Norwegian ø, Polish ł, Croatian đ, Maltese ħ, Turkish ı.
LETTERS_SPELT = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss", "ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ı": "i"})

# Thai, Lao, Myanmar (and its extensions) and Khmer: no spaces between words. Their runs are read
# as overlapping pairs of clusters, a letter with its marks ("ข้", "า", "ว"), and with the letter
# that Myanmar's and Khmer's stacking signs put under it ("ខ្ម"): "ข้าว" -> "ข้า", "าว".
SEA_BLOCKS = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x19E0, 0x19FF), (0xA9E0, 0xA9FF),
              (0xAA60, 0xAA7F))
SEA_LETTERS = "".join(f"{chr(low)}-{chr(high)}" for low, high in SEA_BLOCKS)
SEA_RUN = re.compile(f"[{SEA_LETTERS}]+")
STACKERS = "\u1039\u17d2"

# Longest token kept, in characters; the vocabulary is stored as fixed-width
# strings of this length, so longer tokens (URLs, hashes, base64) are dropped.
MAX_TOKEN_CHARS = 24


@dataclass(frozen=True)
class TokenizerOptions:
    min_len: int = 1  # single letters kept ("U.S.", "World War I"): measured a little better than 2
    max_len: int = 20
    numbers: bool = False  # keep tokens made only of digits ("1969")
    deaccent: bool = True  # "café" -> "cafe"
    stopwords: str = ""  # "" or a stop list's language such as "english" (before revision 4: jusText's "English")
    stem: str = ""  # "" or a Snowball stemmer (PyStemmer) such as "english": "tomatoes" -> "tomato"
    revision: int = REVISION

    def __post_init__(self):
        if not 1 <= self.min_len <= self.max_len <= MAX_TOKEN_CHARS:
            raise ValueError(f"token lengths must satisfy 1 <= min_len <= max_len <= {MAX_TOKEN_CHARS}")
        if self.revision not in REVISIONS:
            raise ValueError(f"tokenizer revision {self.revision} is not one this version reads "
                             f"({', '.join(map(str, REVISIONS))})")
        if self.stem and self.stem not in _stemmer_names():
            raise ValueError(f"no stemmer {self.stem!r} (stemmers: {', '.join(_stemmer_names())})")
        if self.stopwords:  # "French" and "fr" name the list "french": as a store records it
            object.__setattr__(self, "stopwords", stoplist_name(self.stopwords, self.revision))
        if self.stopwords == "vietnamese" and self.deaccent and self.revision >= 4:
            raise ValueError("no Vietnamese stop list with accents stripped: its tones are accents, and a stop "
                             "syllable would take every syllable spelt like it with it (add --no-deaccent)")
        if self.stopwords in WORDS_NOT_PAIRS and self.revision >= 4:
            raise ValueError(f"no stop list for {self.stopwords}: its text is read as pairs of characters, which "
                             "a list of words does not fit (leave --stopwords out)")
        if self.stopwords and self.stopwords not in stoplist_names(self.revision):
            raise ValueError(f"no stop list {self.stopwords!r} (stop lists: {', '.join(stoplist_names(self.revision))})")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{"revision": 1, **data})  # a store that names none was built before revisions


# stop-words' lists for scripts read as pairs of characters (CJK_RUN): a list of words meets no
# pair, or, cut into pairs, leaves out pairs of other words (Korean 게다가's "다가", of 다가오는)
WORDS_NOT_PAIRS = ("chinese", "japanese", "korean")


@lru_cache(maxsize=2)
def stoplist_names(revision=REVISION):
    """The stop lists a store of ``revision`` can name: from revision 4 those of the stop-words
    package, named by language as the stemmers are: function words, and some common words besides
    (its English list has "new", "work", "research"); before it jusText's, the most frequent words
    of Wikipedia, more subjects among them (its English list had left out "school", "city" and
    "music", its French one "maison" and "ville")."""
    if revision >= 4:
        import stop_words  # only when a stop list is asked for

        return tuple(sorted(set(stop_words.AVAILABLE_LANGUAGES) - set(WORDS_NOT_PAIRS)))
    import justext

    return tuple(sorted(justext.get_stoplists()))


def stoplist_name(name, revision=REVISION):
    """A stop list's name as its source spells it ("French" is "french"; an ISO code such as "fr"
    names its language); the name as given if there is no such list, for TokenizerOptions to refuse."""
    if revision >= 4:
        import stop_words

        language = stop_words.LANGUAGE_MAPPING.get(name.lower(), name.lower())
        return language if language in stop_words.AVAILABLE_LANGUAGES else name
    return next((known for known in stoplist_names(revision) if known.lower() == name.lower()), name)


def _stopwords(options):
    return _stop_list(options.stopwords, options.deaccent, options.revision) if options.stopwords else frozenset()


@lru_cache(maxsize=8)
def _stop_list(name, deaccent, revision):
    """The words a stop list leaves out. From revision 4 they are read as text is (in lower case,
    accents off as ``deaccent`` says), and of an entry cut at an apostrophe ("qu'", "don't") its
    pieces of one or two letters, the elisions, are left out too. An entry of several words (most
    of Vietnamese's, "bác sĩ") meets no single token: its words are other words' too."""
    if revision < 4:
        import justext

        return frozenset(justext.get_stoplist(name))
    import stop_words

    plain = TokenizerOptions(deaccent=deaccent, revision=revision, max_len=MAX_TOKEN_CHARS)
    words = set()
    for entry in stop_words.get_stop_words(name, cache=False):
        tokens = tokenize(entry, plain)
        if len(tokens) == 1:
            words.update(tokens)
        elif "'" in entry or "\u2019" in entry:
            words.update(token for token in tokens if len(token) <= 2)
    return frozenset(words)


@lru_cache(maxsize=1)
def _stemmer_names():
    import Stemmer  # only when a stemmer is asked for

    return tuple(Stemmer.algorithms())


_stemmers = threading.local()  # a PyStemmer object is not to be shared between threads


def _stemmer(name):
    found = getattr(_stemmers, name, None)
    if found is None:
        import Stemmer

        found = Stemmer.Stemmer(name)
        setattr(_stemmers, name, found)
    return found


def _ranges(codes):
    """A regex character class's inside for code points ``codes`` (ascending), as ranges."""
    ranges = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(re.escape(chr(low)) + ("-" + re.escape(chr(high)) if high > low else "") for low, high in ranges)


def _is_mark(code):
    return unicodedata.category(chr(code)).startswith("M")


@lru_cache(maxsize=2)
def _patterns(revision):
    """A word with the marks inside it, and what a text needs more than WORD for: a mark (after
    accents are stripped, those of Indic and other scripts), CJK, or (revision 3) a Southeast
    Asian script. Built on the first text not in ASCII (~10 ms, from the Unicode database: `re`
    cannot name a category). The marks of the Basic Multilingual Plane only: past it lie historic
    and small scripts, and one range up there made `re` test every range in turn, the search 50
    times slower."""
    marks = _marks()
    sea = SEA_LETTERS if revision >= 3 else ""
    return (re.compile(rf"[^\W_]++(?:[{marks}]++[^\W_]*+)*+"),
            re.compile(f"[{marks}{HAN_KANA}{HANGUL}{sea}]"))


@lru_cache(maxsize=1)
def _marks():
    return _ranges(code for code in range(0x300, 0x10000) if _is_mark(code))


@lru_cache(maxsize=1)
def _optional_marks():
    return re.compile(f"[{_ranges(c for low, high in OPTIONAL_MARKS for c in range(low, high + 1) if _is_mark(c))}]+")


@lru_cache(maxsize=1)
def _sea_cluster():
    """A letter of SEA_LETTERS with its marks, and the letters stacked under it."""
    marks = _ranges(c for low, high in SEA_BLOCKS for c in range(low, high + 1)
                    if _is_mark(c) and chr(c) not in STACKERS)
    return re.compile(rf"(?s).[{marks}]*(?:[{STACKERS}].?[{marks}]*)*")


def _strip_accents(text, revision):
    decomposed = unicodedata.normalize("NFKD", text)
    if revision >= 3:
        stripped = _optional_marks().sub("", decomposed)
    else:
        keep = KANA_MARKS if revision == 2 else ""
        stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch) or ch in keep)
    if revision >= 4:
        stripped = stripped.translate(LETTERS_SPELT)
    # NFKD also takes Hangul syllables apart into letters (jamo), which are not marks: put them,
    # and kana with their marks, back together
    return unicodedata.normalize("NFC", stripped) if revision >= 2 else stripped


def tokenize(text, options=TokenizerOptions()):
    """Lower-cased word tokens of ``text`` under ``options``, in order (from revision 5, the joined
    compounds after them)."""
    text = text.lower()
    revision = options.revision
    current = revision >= 2
    if not text.isascii():
        if revision >= 5:
            for hyphen, spelt in HYPHENS_READ.items():
                if hyphen in text:
                    text = text.replace(hyphen, spelt)
        if options.deaccent:
            text = _strip_accents(text, revision)
    stop = _stopwords(options)
    lo, hi, numbers = options.min_len, options.max_len, options.numbers
    word_with_marks, beyond_word = _patterns(revision) if current and not text.isascii() else (None, None)
    if beyond_word is None or beyond_word.search(text) is None:  # most text: Latin, Cyrillic, Greek, Arabic
        words = WORD.findall(text)
        if revision >= 5 and "-" in text:
            words += _joined(text, _compounds(False, revision), revision, stop)
    else:
        words = word_with_marks.findall(text)
        if revision >= 5 and "-" in text:
            words += _joined(text, _compounds(True, revision), revision, stop)
        if CJK_RUN.search(text):  # after NFKD: "㍿" is "株式会社"
            words = [piece for word in words for piece in _pieces(word, CJK_RUN, tuple)]
        if revision >= 3 and SEA_RUN.search(text):
            words = [piece for word in words for piece in _pieces(word, SEA_RUN, _sea_cluster().findall)]
    tokens = [
        token
        for token in words
        # a pair is a word, whatever min_len says
        if (lo <= len(token) or current and CJK_RUN.fullmatch(token) or revision >= 3 and SEA_RUN.fullmatch(token))
        and len(token) <= hi
        and (numbers or not token.isdigit()) and token not in stop
    ]
    return _stemmer(options.stem).stemWords(tokens) if options.stem else tokens


@lru_cache(maxsize=4)
def _compounds(with_marks, revision=REVISION):
    """Two words joined by a hyphen, as the pair of them and a hyphen that a word follows (a chain:
    "state-of-the-art"; revision 5 finds none): not begun inside a word, nor after a word and a
    hyphen, nor (revision 6) with an elided second word ("main-d'œuvre")."""
    word, before = r"[^\W_]++", [r"[^\W_]"]
    if with_marks:
        word = f"(?:{_patterns(REVISION)[0].pattern})"
        before.append(f"[{_marks()}]")
    not_after = "".join(f"(?<!{letter})(?<!{letter}-)" for letter in before)
    # an elided second word is one letter and an apostrophe ("d'", "l'"); "Wi-Fi's" is joined
    elided = r"(?![^\W_]['\u2019][^\W_])" if revision >= 6 else ""
    chain = r"(-(?=[^\W_]))?" if revision >= 6 else r"(?!-[^\W_])()"  # "" where a chain is not found
    return re.compile(rf"{not_after}({word})-{elided}({word}){chain}")


DIGIT = re.compile(r"\d")
# a hyphen a word follows: not a dash's, a list's or a rule's ("----")
HYPHEN_BEFORE_WORD = re.compile(r"-(?=[^\W_])")


def _joined(text, compounds, revision, stop):  # (no default: a store is read by its own revision)
    """The ``compounds`` of ``text`` that writers also run together, run together (see JOINED_PART_CHARS;
    of a chain, which only revision 6's ``compounds`` find, the first pair where its first word is
    one letter and its second not, from revision 7 of CHAIN_WORD_CHARS; from revision 7 as well a
    pair one of whose words is in ``stop``, whatever their lengths). Where hyphens are few, looked
    for from a little before each one, where a word run together (at most MAX_TOKEN_CHARS) begins:
    a search of the whole text costs ~3 times reading its words."""
    if text.count("-") * 64 > len(text):
        pairs = compounds.findall(text)
    else:
        pairs, start = [], 0
        while hyphen := HYPHEN_BEFORE_WORD.search(text, start):
            found = compounds.search(text, max(start, hyphen.start() - MAX_TOKEN_CHARS))
            if found is None:
                break
            pairs.append(found.groups())
            start = found.end()
    shortest_second = CHAIN_WORD_CHARS if revision >= 7 else 2
    stop = stop if revision >= 7 else frozenset()
    joined = [first + second for first, second, chain in pairs
              if (len(first) == 1 and len(second) >= shortest_second if chain else  # not a phrase, nor "a-t-il"
                  len(first) <= JOINED_PART_CHARS or len(second) <= JOINED_PART_CHARS
                  or first in stop or second in stop)
              and not DIGIT.search(first) and not DIGIT.search(second)]
    if text.isascii():
        return joined
    return [word for word in joined if not CJK_RUN.search(word) and not SEA_RUN.search(word)]  # read as pairs


def _pieces(word, runs, units):
    """``word`` with each run of ``runs`` cut into overlapping pairs of its ``units`` (characters;
    clusters), a run of one kept whole; the rest of it (Latin letters, digits: "2026年",
    "iphone发布") kept as words of their own."""
    pieces, start = [], 0
    for run in runs.finditer(word):
        if run.start() > start:
            pieces.append(word[start:run.start()])
        parts = units(run.group())
        pieces += ["".join(parts)] if len(parts) == 1 else [parts[i] + parts[i + 1] for i in range(len(parts) - 1)]
        start = run.end()
    if start < len(word):
        pieces.append(word[start:])
    return pieces
