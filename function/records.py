"""What a corpus source yields: a ``Record``, or a ``Skip`` saying what was left out and why.

record_from_fields makes one of a record given as fields (JSON lines, CSV rows).
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .article import shown_title
from .fetch_policy import MAX_URL_LENGTH
from .urls import CONTROL_CHARACTERS, is_link, unseen


@dataclass(frozen=True)
class Record:
    id: str
    url: str
    title: str
    text: str


@dataclass(frozen=True)
class Skip:
    where: str  # line number, file name or URL
    reason: str
    id: str = ""  # the document it concerns, when known
    transient: bool = False  # may work next time (a server error): an update keeps the stored copy
    unread: bool = False  # an input record that could not be read at all: which document it held is unknown


def _unicode(value):
    """False for a string holding a lone surrogate: bytes that were not UTF-8 (read with
    surrogateescape), or a JSON escape such as "\\ud800"."""
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def record_from_fields(fields, where):
    """A Record from a mapping with id/url/title/text, or a Skip saying what is wrong."""
    if not isinstance(fields, dict):
        return Skip(where, "not a JSON object", unread=True)
    doc_id, url, title, text = (fields.get(k) for k in ("id", "url", "title", "text"))
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if doc_id is not None and not isinstance(doc_id, str):
        return Skip(where, "id is not a string or a whole number", unread=True)
    if not isinstance(doc_id, str) or not doc_id.strip():
        return Skip(where, "missing id", unread=True)
    if not all(_unicode(value) for value in (doc_id, url) if isinstance(value, str)):
        return Skip(where, "id or url is not valid UTF-8 (or holds a lone surrogate)", unread=True)
    if CONTROL_CHARACTERS.search(doc_id.strip()) or _unseen(doc_id):  # links and events carry it as it is
        return Skip(where, "id holds control or invisible characters", unread=True)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return Skip(where, "missing or non-http(s) url")
    if not is_link(url.strip()):  # its click would have no address to redirect to
        return Skip(where, "url with no host, a host no IDNA name can be, a space in its host, or control characters")
    if _unseen(url):  # "https://ex.com/\u202egnp.exe" shown to readers as it is
        return Skip(where, "url with invisible characters (bidi controls, separators): %-escape them")
    if "@" in url and urlsplit(url.strip()).username is not None:  # a click would hand them to every reader
        return Skip(where, "url holds a user name or password")
    if len(url.strip()) > MAX_URL_LENGTH:  # its click link would be refused (414), as a crawl refuses it
        return Skip(where, f"url longer than {MAX_URL_LENGTH} characters")
    if not isinstance(text, str) or not text.strip():
        return Skip(where, "empty text")
    if title is not None and not isinstance(title, str):
        return Skip(where, "title is not a string")
    # a stray byte, or half of an emoji cut off by an export, in a text or title: that character alone is lost
    text, title = _replaced(text), _replaced(title or "")
    # cut as a page's is: a 200,000-character title had gone into every answer and event that named it
    return Record(doc_id.strip(), url.strip(), shown_title(" ".join(title.split()) or url.strip()), text)


def _unseen(value):
    """Whether ``value`` holds a character past ASCII that shows as nothing or turns what follows
    around where it is shown (a bidi control)."""
    return any(unseen(char) for char in value if not char.isascii())


_SURROGATE = re.compile("[\ud800-\udfff]")


def _replaced(value):
    """``value`` with each lone surrogate (a byte read with surrogateescape, or a JSON escape such as
    "\\ud83d") replaced by U+FFFD."""
    return value if _unicode(value) else _SURROGATE.sub("\ufffd", value)


def is_url(path):
    return str(path).lower().startswith(("http://", "https://"))
