"""Charset labels, read as browsers read them: the fetcher keeps a page's declared label when it
names a charset, and the extractor decodes the page with its codec."""

import codecs

import webencodings

WIDE = ("utf-16", "utf-32")  # the charsets whose markup is not ASCII bytes


def codec_for(label):
    """Python codec name for a charset label, read as browsers read labels (the WHATWG Encoding
    Standard's, by webencodings: "latin1" and "ascii" mean windows-1252, "windows-874" is Thai),
    or a UTF-16/UTF-32 spelling Python knows; None for any other label. Python's other codecs are
    not charsets ("raw-unicode-escape" made lone surrogates of "\\ud800", "rot13", "utf-7"), nor
    are the labels browsers refuse to read (ISO-2022-KR, HZ: the Standard's "replacement")."""
    if not label or not isinstance(label, str):
        return None
    label = label.strip().strip("\"'")
    try:
        encoding = webencodings.lookup(label)
        if encoding is not None:
            name = encoding.codec_info.name
            return None if name in ("replacement", "x-user-defined") else name
        name = codecs.lookup(label).name
    except (LookupError, ValueError):  # ValueError: a NUL in the name; UnicodeError: a lone surrogate
        return None
    return name if name.startswith(WIDE) else None
