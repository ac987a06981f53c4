"""URL normalisation: one key per page, whatever way a link spells it.

The key identifies corpus members ("is this page already in the store?"),
keys the fetched-page cache and keeps a page out of its own recommendations.
"""

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import idna

DEFAULT_PORTS = {"http": 80, "https": 443}
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")  # "javascript:x" names one, "example.com:8080" not

# Query parameters that say how a visitor arrived, not which page they see.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
     "mc_cid", "mc_eid", "_ga", "_gl", "ref_src", "spm", "oly_anon_id", "oly_enc_id", "vero_id"}
)
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")


def is_tracking(name):
    """Whether a query parameter says how a visitor arrived (utm_*, fbclid, ...)."""
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


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


def normalise_url(url):
    """A canonical key for ``url``: http and https alike, lower-case host, no
    default port, no fragment, no tracking parameters, sorted query, no
    trailing slash (except the root).

    Scheme-less input ("example.com/a") is read as http. Raises ValueError for
    what cannot be a web address.
    """
    url = with_scheme(url.strip(), "http")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    try:
        host = ascii_host(host)  # as the fetcher spells it: one key per host
    except ValueError:
        pass  # not a valid name: kept as given, and the fetcher refuses it
    host = host.lower()
    port = parts.port  # ValueError for a bad port
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking(k))
    )
    # A site serves the same page over http and https: one key for both.
    return urlunsplit(("https", netloc, path, query, ""))
