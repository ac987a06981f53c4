"""Signed click links: everything a click needs travels in the link itself.

A link names the request, corpus, engine, rank, document and target URL, and
when it was issued, under an HMAC-SHA256 tag. So a click is recorded and
redirected without a database read (it works while Mongo is down), and since
only links we signed are followed, /click can never be an open redirect.

An answer's seen link (/seen, which the widget posts once its list is in view)
is signed the same way, under a tag of its own kind: a click link's tag does
not make a view, nor a view's a click.
"""

import binascii
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from .config import ConfigError, read_secret, secret_source
from .errors import ApiError
from .params import names_for_message
from .urls import is_link, is_tracking

FIELDS = ("r", "c", "e", "k", "d", "u", "t")  # request, corpus, engine, rank, doc id, url, issued (ms)
VIEW_FIELDS = ("r", "c", "e", "t")  # request, corpus, engine, issued (ms)
VIEW_KIND = b"view-v1"  # a seen link's tag is of another kind than a click link's (b"click-v1")
MIN_SECRET_BYTES = 16
# each previous key is one more HMAC for every link that fails to verify (a forged one): unbounded, a
# list of 1,000 made a forged 7 KB link cost 14 ms, a flood of ~70 a second a worker's whole CPU
MAX_PREVIOUS_KEYS = 10
TAG_BYTES = 16
RANK_DIGITS, ISSUED_DIGITS = 6, 16  # past what sign() ever writes
# how far ahead another instance's clock may issue a link and be only a clock's drift: past it the
# link's click is still kept (signed, the link is ours: a clock ran ahead), marked how far ahead it was
CLOCK_SKEW_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class View:
    request_id: str
    corpus: str
    engine: str
    issued_ms: int


@dataclass(frozen=True)
class Click:
    request_id: str
    corpus: str
    engine: str
    rank: int
    doc_id: str
    url: str
    issued_ms: int


def load_secret(settings):
    """(key, warning): CLICK_SECRET, else the file CLICK_SECRET_FILE, else a
    random key that dies with the process (links break on restart: warned)."""
    key = read_secret("CLICK_SECRET", settings.click_secret, settings.click_secret_file, MIN_SECRET_BYTES)
    if not key:
        return secrets.token_bytes(32), (
            "CLICK_SECRET is not set: click links are signed with a random key and stop working when "
            "the function restarts. Set CLICK_SECRET to a long random string (the same for every instance)."
        )
    return key, None


def load_previous_secrets(settings, key):
    """(keys, warning): CLICK_SECRET_PREVIOUS, else the file CLICK_SECRET_PREVIOUS_FILE, keys
    separated by commas or line ends: they verify links but never sign one, so that a rotated
    CLICK_SECRET leaves the links already on readers' pages working. ``key``, the signing key, is
    left out of them with a warning, not refused: it changes nothing that is accepted, and a
    platform that restarts on each changed setting passes through it mid-rotation."""
    raw = read_secret("CLICK_SECRET_PREVIOUS", settings.click_secret_previous, settings.click_secret_previous_file)
    source = secret_source("CLICK_SECRET_PREVIOUS", settings.click_secret_previous_file)
    entries = [entry.rstrip(b"\r") for entry in re.split(rb"[,\n]", raw)]
    listed = list(dict.fromkeys(filter(None, (entry.strip() for entry in entries))))  # "a,,b", a repeat: nothing
    if not listed:
        return (), None
    # CLICK_SECRET is used as it is given, spaces at its ends too, while "old, older" spaces its list: an
    # entry with spaces at its ends also verifies with them, at either end or both, or a key pasted with
    # a space would lose its links when moved here (a forged link costs up to 3 HMACs more for such an entry)
    padded = [variant for entry in entries if entry.strip()
              for variant in (entry.rstrip(), entry.lstrip(), entry) if variant != entry.strip()]
    if not (settings.click_secret or settings.click_secret_file):
        # new links would be signed with a random key, lost at the next restart: no rotation
        raise ConfigError(f"{source} is set but CLICK_SECRET is not: set the new key in CLICK_SECRET "
                          "(or CLICK_SECRET_FILE), the old ones in CLICK_SECRET_PREVIOUS")
    for number, previous in enumerate(listed, 1):
        if len(previous) < MIN_SECRET_BYTES:  # named by its place, never shown
            raise ConfigError(f"{source}: key {number} of {len(listed)} must be at least {MIN_SECRET_BYTES} "
                              "characters of random text")
    warning = None
    if key in listed or key in padded:
        # only the signing key itself is left out: "key " moved here when CLICK_SECRET lost its pasted
        # space is another key, which signed the links made before (they had all been 403s). Warned only
        # then: " key " signing with "key" listed had been told "left out" of a list that kept it
        listed = [entry for entry in listed if entry != key]
        padded = [entry for entry in padded if entry != key]
        warning = (f"{source} lists the key that signs click links: left out (it is no previous "
                   "key). To rotate, set the new key in CLICK_SECRET")
    if len(listed) > MAX_PREVIOUS_KEYS:
        raise ConfigError(f"{source} lists {len(listed)} keys: at most {MAX_PREVIOUS_KEYS} (each is tried on every "
                          "link that fails to verify). Leave out those retired more than CLICK_TTL_DAYS ago")
    return tuple(dict.fromkeys([*listed, *padded])), warning


def _message(values, kind=b"click-v1"):
    return kind + b"\x1f" + "\x1f".join(values).encode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


@lru_cache(maxsize=4 * MAX_PREVIOUS_KEYS)
def _keyed(key):
    """HMAC-SHA256 set up for ``key`` once, which each tag copies: an answer's ten links had each set
    OpenSSL's HMAC up for the key again (hmac.new)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def _tag(key, message):
    """HMAC-SHA256 of ``message`` under ``key``, its first TAG_BYTES in unpadded base64url."""
    mac = _keyed(key).copy()
    mac.update(message)
    return _encoded(mac)


def _encoded(mac):
    """An HMAC's first TAG_BYTES of digest in unpadded base64url."""
    return binascii.b2a_base64(mac.digest()[:TAG_BYTES], newline=False).rstrip(b"=").translate(_URLSAFE).decode()


@lru_cache(maxsize=65_536)
def _quoted(value):
    # the same documents come back answer after answer: quote each once
    return quote(value, safe="")


def sign(key, click):
    """The query string of the click link for ``click``."""
    return sign_answer(key, click.request_id, click.corpus, click.engine, click.issued_ms,
                       [(click.rank, click.doc_id, click.url)])[0]


def sign_answer(key, request_id, corpus, engine, issued_ms, targets):
    """The query strings of the click links of one answer, to its (rank, doc id, url) ``targets``: sign()'s
    for each one's Click, what the links share (and their HMAC's start) worked out once for the answer."""
    start = _keyed(key).copy()
    start.update(_message([request_id, corpus, engine, ""]))  # up to the rank, the "" its separator
    # request ids are hex, ranks and times digits, tags base64url: nothing to quote
    head = f"r={request_id}&c={_quoted(corpus)}&e={_quoted(engine)}&k="
    links = []
    for rank, doc_id, url in targets:
        mac = start.copy()
        mac.update(f"{rank}\x1f{doc_id}\x1f{url}\x1f{issued_ms}".encode())
        links.append(f"{head}{rank}&d={_quoted(doc_id)}&u={_quoted(url)}&t={issued_ms}&s={_encoded(mac)}")
    return links


def sign_view(key, view):
    """The query string of the seen link for ``view``."""
    issued = str(view.issued_ms)
    tag = _tag(key, _message([view.request_id, view.corpus, view.engine, issued], VIEW_KIND))
    return f"r={view.request_id}&c={_quoted(view.corpus)}&e={_quoted(view.engine)}&t={issued}&s={tag}"


def _signed_values(keys, args, fields, what, kind=b"click-v1"):
    """The values of ``fields`` in a signed link's query arguments; ApiError if malformed or not
    signed with one of ``keys``."""
    values = []
    for name in fields + ("s",):
        got = args.getlist(name)
        if len(got) != 1 or not got[0]:
            raise ApiError(f"{what} link is missing or repeats the '{name}' parameter", code=f"invalid_{what}_link")
        values.append(got[0])
    # what platforms append to links they pass on (utm_*, fbclid, ...) is not ours to refuse
    extra = {name for name in args if name not in fields and name != "s" and not is_tracking(name)}
    if extra:
        raise ApiError(f"{what} link has unknown parameters: {names_for_message(extra)}", code=f"invalid_{what}_link")
    *values, tag = values
    # compare_digest refuses non-ASCII str (TypeError): compare the bytes.
    tag = tag.encode("utf-8", "replace")
    # the signing key first: one HMAC for the links it signed; previous keys only when it fails, over
    # the message built once
    message = _message(values, kind)
    if not any(hmac.compare_digest(_tag(key, message).encode(), tag) for key in keys):
        raise ApiError(f"{what} link signature does not match: the link was altered, not issued here, "
                       "or signed with a key no longer accepted",
                       status=403, code=f"invalid_{what}_signature")
    return values


def _issued_ms(issued, what):
    # a time ahead of ours is not refused: the link is signed, so an instance whose clock ran ahead
    # issued it, and a 400 had lost its reader's click (see expired and ahead_ms)
    if not _digits(issued, ISSUED_DIGITS):
        raise ApiError(f"{what} link's issue time is not a number", code=f"invalid_{what}_link")
    return int(issued)


def verify_view(keys, args):
    """The View of a seen link's query arguments; ApiError if malformed or forged. ``keys``: the
    signing key, then any previous ones."""
    request_id, corpus, engine, issued = _signed_values(keys, args, VIEW_FIELDS, "seen", VIEW_KIND)
    return View(request_id, corpus, engine, _issued_ms(issued, "seen"))


def verify(keys, args):
    """The Click of a link's query arguments; ApiError if malformed or forged. ``keys``: the signing
    key, then any previous ones. (An expired link is still the function's own: see expired.)"""
    request_id, corpus, engine, rank, doc_id, url, issued = _signed_values(keys, args, FIELDS, "click")
    # Signed, so only a holder of the key could have made a link that fails these: never a 500 or a
    # redirect for it all the same.
    if not _digits(rank, RANK_DIGITS):
        raise ApiError("click link's rank is not a number", code="invalid_click_link")
    if not is_link(url):
        raise ApiError("click link's target is not an http(s) address", code="invalid_click_link")
    return Click(request_id, corpus, engine, int(rank), doc_id, url, _issued_ms(issued, "click"))


def expired(link, ttl_seconds):
    """Whether a click or seen ``link`` is older than CLICK_TTL_DAYS, or issued further ahead than
    that (a clock years ahead: else it would never expire): a click link still takes its reader to
    the article (its target is signed: no open redirect), but records no click. A page cached past
    the TTL (an archive behind a CDN) had shown its readers a JSON 410."""
    return abs(int(time.time() * 1000) - link.issued_ms) > ttl_seconds * 1000


def ahead_ms(link, now_ms):
    """How far past CLOCK_SKEW_MS ahead of ``now_ms`` ``link`` was issued, in ms, else 0: the clock of
    the instance that issued it is off, and its click's delay unknown (recorded as 0)."""
    ahead = link.issued_ms - now_ms
    return ahead if ahead > CLOCK_SKEW_MS else 0


def _digits(value, most):
    return value.isascii() and value.isdigit() and len(value) <= most
