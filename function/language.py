"""The language of a page's text, and the jusText stoplist to classify it with.

CLD2 (pycld2: Chrome's compact language detector, 165 languages, in C++)
reads the text; where it is sure and finds little or none of the page's
declared language (``<html lang>``, meta), it wins: templates keep a wrong
``lang``.  Where it is unsure (short text), or finds the declared language in
a good share of a mixed page (an article beside comment and newsletter boxes
in another language), the declaration stands.  Counting stoplist
words does not tell a language: jusText's lists come from each language's
Wikipedia, English words included (Marathi's list holds 324), so half the
words of English text are in the Marathi list and over a quarter in a dozen
others (Sundanese, Finnish, Turkish, Uzbek, ...); that count had named a
fifth of undeclared English articles Marathi or Sundanese.
"""
from __future__ import annotations

import re

import justext

# jusText stoplist -> ISO 639-1 code (639-3 where there is none).
_STOPLIST_CODES = {
    "Afrikaans": "af", "Albanian": "sq", "Arabic": "ar", "Aragonese": "an", "Armenian": "hy",
    "Aromanian": "rup", "Asturian": "ast", "Azerbaijani": "az", "Basque": "eu", "Belarusian": "be",
    "Belarusian_Taraskievica": "be", "Bengali": "bn", "Bishnupriya_Manipuri": "bpy", "Bosnian": "bs",
    "Breton": "br", "Bulgarian": "bg", "Catalan": "ca", "Cebuano": "ceb", "Chuvash": "cv",
    "Croatian": "hr", "Czech": "cs", "Danish": "da", "Dutch": "nl", "English": "en",
    "Esperanto": "eo", "Estonian": "et", "Finnish": "fi", "French": "fr", "Galician": "gl",
    "Georgian": "ka", "German": "de", "Greek": "el", "Gujarati": "gu", "Haitian": "ht",
    "Hebrew": "he", "Hindi": "hi", "Hungarian": "hu", "Icelandic": "is", "Ido": "io", "Igbo": "ig",
    "Indonesian": "id", "Irish": "ga", "Italian": "it", "Javanese": "jv", "Kannada": "kn",
    "Kazakh": "kk", "Korean": "ko", "Kurdish": "ku", "Kyrgyz": "ky", "Latin": "la", "Latvian": "lv",
    "Lithuanian": "lt", "Lombard": "lmo", "Low_Saxon": "nds", "Luxembourgish": "lb",
    "Macedonian": "mk", "Malay": "ms", "Malayalam": "ml", "Maltese": "mt", "Marathi": "mr",
    "Neapolitan": "nap", "Nepali": "ne", "Newar": "new", "Norwegian_Bokmal": "nb",
    "Norwegian_Nynorsk": "nn", "Occitan": "oc", "Persian": "fa", "Piedmontese": "pms",
    "Polish": "pl", "Portuguese": "pt", "Quechua": "qu", "Romanian": "ro", "Russian": "ru",
    "Samogitian": "sgs", "Serbian": "sr", "Serbo_Croatian": "sh", "Sicilian": "scn",
    "Simple_English": "en", "Slovak": "sk", "Slovenian": "sl", "Spanish": "es", "Sundanese": "su",
    "Swahili": "sw", "Swedish": "sv", "Tagalog": "tl", "Tamil": "ta", "Telugu": "te",
    "Turkish": "tr", "Turkmen": "tk", "Ukrainian": "uk", "Urdu": "ur", "Uzbek": "uz",
    "Vietnamese": "vi", "Volapuk": "vo", "Walloon": "wa", "Waray_Waray": "war", "Welsh": "cy",
    "West_Frisian": "fy", "Western_Panjabi": "pnb", "Yoruba": "yo",
}
_CODE_STOPLIST = {}
for _name, _code in _STOPLIST_CODES.items():
    _CODE_STOPLIST.setdefault(_code, _name)  # "en" -> English, not Simple_English
_CODE_STOPLIST.update({"no": "Norwegian_Bokmal", "fil": "Tagalog"})
# The language subtag of a tag, or of the first of a list ('de, en': a Content-Language naming two audiences).
_LANGUAGE_SUBTAG = re.compile(r"\s*([A-Za-z]{2,3})(?:[-_]|\s*[,;]|\s*$)")
# Tags that name no language.
_NO_LANGUAGE = {"und", "mul", "zxx", "mis"}
# Languages close enough that CLD2 reading one as another does not overrule a page declaring it.
_SERBO_CROATIAN = {"bs", "hr", "sr"}
_KIN = (_SERBO_CROATIAN, {"no", "nb", "nn"}, {"id", "ms"})
# The share of the text (per cent) in which CLD2 finding the declared language keeps the declaration.
KEEPS_DECLARED = 20

# Identification reads at most this much of the text: CLD2 scores about as many characters itself.
SAMPLE_CHARS = 10_000
# Characters CLD2 refuses the whole text for (controls, noncharacters, lone surrogates): read as spaces.
_UNREADABLE = re.compile("[\\x00-\\x08\\x0b\\x0e-\\x1f\\x7f-\\x9f\\ufdd0-\\ufdef\\ud800-\\udfff"
                         + "".join(chr(plane + 0xFFFE) + chr(plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000))
                         + "]")
_LATIN = re.compile("[A-Za-z\\u00c0-\\u024f]")
_CYRILLIC = re.compile("[\\u0400-\\u04ff]")
_stoplists = {}


def code(value):
    """'en-US' / 'pt_BR' / 'EN' / 'eng' / 'iw' / 'arb' -> 'en' / 'pt' / 'en' / 'en' / 'he' / 'ar'; '' when
    it is not a language tag.  Of a list ('de, en') the first."""
    m = _LANGUAGE_SUBTAG.match(value or "")
    if not m:
        return ""
    # langcodes knows the ISO 639-2 and -3 codes pages declare ('eng', 'ger'), withdrawn ones ('iw',
    # 'in', 'mo') and macrolanguages ('arb' -> 'ar', 'zsm' -> 'ms'), which the stoplist table does not
    import langcodes  # 35 ms and 5 MB, once, on the first page

    lang = langcodes.standardize_tag(m.group(1), macro=True).partition("-")[0]  # 'sh' -> 'sr-Latn' -> 'sr'
    return "" if lang in _NO_LANGUAGE else lang


def stoplist(name):
    """jusText's stoplist ``name`` (a frozenset), loaded once."""
    words = _stoplists.get(name)
    if words is None:
        words = _stoplists[name] = justext.get_stoplist(name)
    return words


def choose(declared, text):
    """(jusText stoplist name or None, language code or '') for a page declaring ``declared`` (a code
    from ``code``, or '') whose text is ``text``.  None means jusText's stoplist-free mode: a language
    it has no list for (ja, zh, th, ...) or one that cannot be told."""
    found = languages(text)
    declared_share = sum(share for lang, share in found if _kin(lang, declared))
    lang = found[0][0] if found and declared_share < KEEPS_DECLARED else declared
    return _stoplist_name(lang, text), lang


def languages(text):
    """[(language code, per cent of the text)] CLD2 finds in ``text``, most first; [] when it cannot
    tell reliably."""
    import pycld2  # 2 ms to import: a 14 MB library, mapped and shared by the workers

    sample = _UNREADABLE.sub(" ", text[:SAMPLE_CHARS])
    try:
        reliable, _, found = pycld2.detect(sample)
    except pycld2.error:
        return []
    if not reliable:
        return []
    # "un" / "xxx": no language; "xx-Goth" and the like: a script; "zz*": made up (Pig Latin)
    return [(code(lang), share) for _, lang, share, _ in found
            if share and lang not in ("un", "xxx") and not lang.startswith(("xx-", "zz"))]


def _kin(a, b):
    return a == b or any(a in family and b in family for family in _KIN)


def _stoplist_name(lang, text):
    if lang in _SERBO_CROATIAN:  # written in Latin letters or, Serbian mostly, in Cyrillic
        sample = text[:SAMPLE_CHARS]
        if len(_CYRILLIC.findall(sample)) > len(_LATIN.findall(sample)):
            return "Serbian"  # jusText's one Cyrillic list of the four
        if lang == "sr":
            return "Serbo_Croatian"
    return _CODE_STOPLIST.get(lang)
