"""URL normalisation: one key per page, whatever way a link spells it.

The key identifies corpus members ("is this page already in the store?") and
keeps a page out of its own recommendations. The fetched-page cache has a
narrower key of its own (request_key): what the page's server is asked.
"""

import re
import unicodedata
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode, urlsplit, urlunsplit

import idna

DEFAULT_PORTS = {"http": 80, "https": 443}
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: no URL holds one as it is
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")  # "javascript:x" names one, "example.com:8080" not

# Query parameters that say how a visitor arrived, not which page they see. Matomo's "pk_" ones by
# name: a site's own "?pk_id=5" (a primary key) names the article, and had been dropped as tracking.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
     "mc_cid", "mc_eid", "_ga", "_gl", "ref_src", "spm", "oly_anon_id", "oly_enc_id", "vero_id",
     "pk_campaign", "pk_cpn", "pk_kwd", "pk_keyword", "pk_source", "pk_medium", "pk_content", "pk_cid",
     "pk_group", "pk_placement", "pk_vid"}
)
TRACKING_PREFIXES = ("utm_", "mtm_", "hsa_", "piwik_", "matomo_")
# A session id a server writes into its links for a visitor without cookies (Java's ";jsessionid=",
# PHP's "?PHPSESSID="): who is reading, not what. With it a page had been another page, even to
# itself: a widget's list on it named the page.
SESSION_IN_PATH = re.compile(r";jsessionid=[^/;?#]*", re.IGNORECASE)
SESSION_PARAMS = frozenset({"phpsessid", "jsessionid"})


# what shows as nothing, or as a blank: Hangul fillers and the braille blank are letters to Unicode
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def unseen(char):
    """Whether ``char`` shows as nothing or turns the text around: a control, format character (a
    bidi mark, a tag), space or separator, private or unassigned code point, or blank letter."""
    return unicodedata.category(char)[0] in "CZ" or char in BLANK_LETTERS


def is_tracking(name):
    """Whether a query parameter says how a visitor arrived (utm_*, fbclid, ...) or who it is (a
    session id), not which page it sees."""
    name = name.lower()
    return name in TRACKING_PARAMS or name in SESSION_PARAMS or name.startswith(TRACKING_PREFIXES)


def is_link(url):
    """Whether ``url`` can be handed to a browser as it is: an absolute http(s) address with a host
    (without spaces, and one that IDNA can spell in ASCII), and no control character (a CR or LF
    would split the Location header a click answers with)."""
    if CONTROL_CHARACTERS.search(url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
        if not (parts.scheme in DEFAULT_PORTS and host and not any(char.isspace() for char in host)):
            return False
        ascii_host(host.rstrip("."))  # a host a Location header cannot spell ("\u202eevil.com") had made a 500
        return True
    except ValueError:  # "http://[": an unclosed IPv6 literal; a host no IDNA name can be
        return False


def host_of(url):
    """The lower-cased host name of ``url`` without a trailing dot, or ""."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def ascii_host(host):
    """A host name in ASCII: non-ASCII names by UTS #46 (IDNA 2008, as browsers spell them);
    ValueError for a name that cannot be one."""
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise ValueError(f"not a valid internationalised host name: {host[:80]!r}") from None


def with_scheme(url, scheme):
    """``url`` if it begins with a scheme, else ``scheme://url`` ("example.com/a", as people type
    it). Only the beginning counts: "example.com/?next=https://b" names no scheme."""
    return url if SCHEME.match(url) else f"{scheme}://{url}"


# What a path segment keeps as it is (RFC 3986's unreserved characters, sub-delims, ':' and '@'):
# escapes of these are decoded, everything else is %-escaped in upper case ("/%65n", "/en" and
# "/луна", "/%d0%bb%d1%83%d0%bd%d0%b0" are one page each).
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


def _normal_path(path):
    """RFC 3986's percent-encoding normalisation, segment by segment (an escaped '/' stays one),
    then its removal of "." and ".." segments."""
    out = []
    for segment in path.split("/"):
        segment = quote(unquote_to_bytes(segment), safe=_SEGMENT_SAFE)
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    return "/".join(out) if len(out) > 1 else "/"


_PRINTABLE = "".join(map(chr, range(0x21, 0x7f)))  # ASCII but the space and controls


def _web_parts(url):
    """(urlsplit parts, lower-case scheme, host[:port] spelt one way) of an http(s) URL: the host
    in lower case and ASCII as the fetcher spells it, an IPv6 literal bracketed, no default port,
    the path without a session id.
    Scheme-less input ("example.com/a") is read as http; ValueError for what is no web address."""
    url = with_scheme(url.strip(), "http")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    parts = parts._replace(path=SESSION_IN_PATH.sub("", parts.path))
    try:
        host = ascii_host(host)  # as the fetcher spells it: one key per host
    except ValueError:
        pass  # not a valid name: kept as given, and the fetcher refuses it
    host = host.lower()
    port = parts.port  # ValueError for a bad port
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return parts, scheme, host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"


def request_key(url):
    """The fetched-page cache's key for ``url``: the request its server gets, spelt one way. It
    drops what no server sees or, by convention, reads (the fragment, the host's case, a default
    port, tracking parameters) and keeps what a server may answer otherwise, which normalise_url
    merges: the scheme, the path as given (a trailing slash, an escaped ';'), the query's order. A
    page fetched under one of those spellings (a 404 at an added slash, another article) had been
    kept for every spelling of it. ValueError as normalise_url."""
    parts, scheme, netloc = _web_parts(url)
    # a field holding ';' is kept whole: a server that splits on ';' reads more than a tracking parameter there
    query = "&".join(field for field in parts.query.split("&") if field and (
        ";" in field or not is_tracking(unquote_to_bytes(field.split("=", 1)[0]).decode("utf-8", "replace"))))
    # as it goes on the wire: characters past ASCII (and spaces) %-escaped, as the fetcher sends them
    path, query = (quote(part, safe=_PRINTABLE) for part in (parts.path or "/", query))
    return urlunsplit((scheme, netloc, path, query, ""))


def normalise_url(url):
    """A canonical key for ``url``: http and https alike, lower-case host, no
    default port, no fragment, no tracking parameters, sorted query, one
    spelling of each path character, no "." or ".." segments, no trailing slash
    (except the root).

    Scheme-less input ("example.com/a") is read as http. Raises ValueError for
    what cannot be a web address.
    """
    parts, _, netloc = _web_parts(url)
    path = _normal_path(parts.path or "/")
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    # surrogateescape: an escape that is not UTF-8 ("?q=%E4", Latin-1 sites) keeps its byte
    pairs = parse_qsl(parts.query, keep_blank_values=True, errors="surrogateescape")
    query = urlencode(sorted((k, v) for k, v in pairs if not is_tracking(k)), errors="surrogateescape")
    # A site serves the same page over http and https: one key for both.
    return urlunsplit(("https", netloc, path, query, ""))
