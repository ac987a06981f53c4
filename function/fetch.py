"""Fetch one web page on behalf of a caller, safely.

The URL comes from an untrusted caller, so this module is an SSRF boundary:

* only ``http``/``https`` URLs; the URL is parsed and normalised here (WHATWG
  rules for odd IPv4 spellings, UTS-46/IDNA for non-ASCII hosts) and anything
  ambiguous (credentials, backslashes, control characters, percent-encoded or
  zone-scoped hosts) is refused before any network activity;
* the host is resolved **once** (bounded by the deadline), **every** address is
  checked, and the connection is pinned to the checked address while the
  ``Host`` header, TLS SNI and certificate checks keep the original name (the
  pinning adapter extends ``requests_hardened.IPFilterAdapter``; its own IP
  filter is applied to every address as a second, independent classifier);
* redirects are followed here, one hop at a time, re-checking each hop;
* every limit (timeouts, total deadline, decoded byte cap, compression ratio,
  redirect cap, content-type allowlist) is enforced while streaming.

Every failure is raised as :class:`function.errors.FetchError`.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import heapq
import http
import http.client
import ipaddress
import logging
import math
import os
import re
import socket
import ssl
import threading
import time
import zlib
from typing import Iterable, Iterator, Mapping
from urllib.parse import urljoin

import idna
import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict
from requests_hardened.ip_filter import InvalidIPAddress, get_ip_address
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from function.errors import FetchError

try:  # the package version, if the package says it
    from function import __version__ as _VERSION
except ImportError:  # pragma: no cover
    _VERSION = "0"

__all__ = ["FetchLimits", "Page", "fetch_page", "USER_AGENT", "CORPUS"]

log = logging.getLogger(__name__)

USER_AGENT = (
    f"RelatedContentBot/{_VERSION} "
    "(related-content recommendation function; fetches the one page it is asked about)"
)
#: The special FETCH_ALLOWED_DOMAINS value that the caller resolves to the corpus's domains.
CORPUS = "corpus"

MAX_URL_LENGTH = 2048
DEFAULT_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})

_READ_CHUNK = 16_384  # raw bytes per read; also the most one decode step may emit
_BOMB_MIN_DECODED = 1_000_000  # ratios are judged once this much was decoded...
_BOMB_MAX_RATIO = 100  # ...and a decoded/wire ratio above this is refused
_MAX_ENCODING_LAYERS = 3
_MAX_ADDRESSES_TRIED = 3  # resolved (and checked) addresses tried on connect failure
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

#: TLS verification passed to requests; tests point it at a throwaway CA bundle.
_TLS_VERIFY: bool | str = True


# --------------------------------------------------------------------------- limits


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    return value


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None


def _split_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclasses.dataclass(frozen=True)
class FetchLimits:
    """Limits of one fetch. ``FetchLimits.from_env(os.environ)`` or keyword overrides."""

    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    deadline: float = 10.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    content_types: frozenset = DEFAULT_CONTENT_TYPES
    #: TEST-ONLY: hosts (``name``, ``ip``, ``name:port``, ``[v6]:port``) fetched although not public.
    allow_private_hosts: frozenset = frozenset()
    #: ``None``: any public host. Otherwise only these domains and their subdomains.
    allowed_domains: frozenset | None = None

    def __post_init__(self):
        for name in ("connect_timeout", "read_timeout", "deadline"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number of seconds")
            if not math.isfinite(value) or not 0 < value <= 600:
                raise ValueError(f"{name} must be more than 0 and at most 600 seconds, not {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes < 1:
            raise ValueError(f"max_bytes must be a whole number of bytes of at least 1, not {self.max_bytes!r}")
        if (
            isinstance(self.max_redirects, bool)
            or not isinstance(self.max_redirects, int)
            or not 0 <= self.max_redirects <= 30
        ):
            raise ValueError(f"max_redirects must be a whole number from 0 to 30, not {self.max_redirects!r}")
        if isinstance(self.content_types, str):
            raise ValueError("content_types must be a collection of media types, not one string")
        object.__setattr__(
            self, "content_types", frozenset(t.strip().lower() for t in self.content_types if t.strip())
        )
        if isinstance(self.allow_private_hosts, str):
            raise ValueError("allow_private_hosts must be a collection of hosts, not one string")
        object.__setattr__(
            self, "allow_private_hosts", frozenset(_normalize_allow_entry(e) for e in self.allow_private_hosts)
        )
        if self.allowed_domains is not None:
            if isinstance(self.allowed_domains, str):
                raise ValueError("allowed_domains must be a collection of domains, not one string")
            object.__setattr__(
                self, "allowed_domains", frozenset(_normalize_domain(d) for d in self.allowed_domains)
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, corpus_domains: Iterable[str] | None = None, **overrides):
        """Build limits from ``FETCH_*`` variables; invalid values raise ValueError naming the variable.

        ``FETCH_ALLOWED_DOMAINS=corpus`` (alone or in a list) needs ``corpus_domains``: the caller
        resolves it. Keyword ``overrides`` replace any field.
        """
        values: dict = {}
        specs = [
            ("connect_timeout", "FETCH_CONNECT_TIMEOUT", _env_float, cls.connect_timeout),
            ("read_timeout", "FETCH_READ_TIMEOUT", _env_float, cls.read_timeout),
            ("deadline", "FETCH_DEADLINE", _env_float, cls.deadline),
            ("max_bytes", "FETCH_MAX_BYTES", _env_int, cls.max_bytes),
            ("max_redirects", "FETCH_MAX_REDIRECTS", _env_int, cls.max_redirects),
        ]
        for field, var, parse, default in specs:
            value = parse(environ, var, default)
            try:
                cls(**{field: value})
            except ValueError as exc:
                raise ValueError(f"{var}: {exc}") from None
            values[field] = value

        private = _split_list(environ.get("FETCH_ALLOW_PRIVATE_HOSTS") or "")
        try:
            values["allow_private_hosts"] = frozenset(_normalize_allow_entry(e) for e in private)
        except ValueError as exc:
            raise ValueError(f"FETCH_ALLOW_PRIVATE_HOSTS: {exc}") from None
        if private:
            log.warning("FETCH_ALLOW_PRIVATE_HOSTS is set (%s): a TEST-ONLY switch", ",".join(private))

        domains_raw = environ.get("FETCH_ALLOWED_DOMAINS")
        if domains_raw is not None and domains_raw.strip():
            # Entries that are only dots are ignored: "." alone allows nothing at all.
            entries = [e for e in _split_list(domains_raw) if e.strip(".")]
            domains: set[str] = set()
            for entry in entries:
                if entry.lower() == CORPUS:
                    if corpus_domains is None and "allowed_domains" not in overrides:
                        raise ValueError(
                            "FETCH_ALLOWED_DOMAINS=corpus needs the corpus's domains: "
                            "pass corpus_domains= (or allowed_domains=) to FetchLimits.from_env"
                        )
                    domains.update(corpus_domains or ())
                else:
                    domains.add(entry)
            try:
                values["allowed_domains"] = frozenset(_normalize_domain(d) for d in domains)
            except ValueError as exc:
                raise ValueError(f"FETCH_ALLOWED_DOMAINS: {exc}") from None
        values.update(overrides)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Page:
    url: str  # as asked
    final_url: str  # after redirects (normalised)
    status: int
    content_type: str  # media type, lower case, e.g. "text/html"
    charset: str | None  # declared in Content-Type (lower case, a known codec), or None
    body: bytes  # content-decoded


# --------------------------------------------------------------------------- URL checks


def _err(message: str, status: int, code: str, upstream_status: int | None = None) -> FetchError:
    error = FetchError(message, status=status, code=code)
    error.upstream_status = upstream_status  # the page server's own status, for retry decisions
    return error


class _BadHost(ValueError):
    pass


_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_PORT = re.compile(r"^[0-9]{1,10}$")


def _whatwg_ipv4_number(part: str) -> int:
    if _HEX.match(part):
        return int(part[2:] or "0", 16)
    if not part.isdigit() or not part.isascii():
        raise _BadHost("not a number")
    if len(part) > 1 and part.startswith("0"):
        if any(c in "89" for c in part):
            raise _BadHost("bad octal number")
        return int(part, 8)
    return int(part)


def _ends_in_number(labels: list[str]) -> bool:
    last = labels[-1]
    return bool(last) and ((last.isascii() and last.isdigit()) or bool(_HEX.match(last)))


def _parse_whatwg_ipv4(labels: list[str]) -> ipaddress.IPv4Address:
    """IPv4 host parser of the WHATWG URL standard: 127.1, 0x7f.1, 0177.0.0.1, 2130706433..."""
    if len(labels) > 4 or any(not p for p in labels):
        raise _BadHost("not a valid IPv4 address")
    numbers = [_whatwg_ipv4_number(p) for p in labels]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise _BadHost("not a valid IPv4 address")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n * 256 ** (3 - i)
    return ipaddress.IPv4Address(value)


def _normalize_host(host: str, *, bracketed: bool = False):
    """Return a canonical host: an ``ipaddress`` object or a lower-case ASCII name."""
    if bracketed:
        if "%" in host:
            raise _BadHost("IPv6 zone identifiers are not allowed")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise _BadHost("not a valid IPv6 address") from None
    if not host:
        raise _BadHost("the URL has no host")
    if "%" in host:
        raise _BadHost("percent-encoded host names are not allowed")
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            raise _BadHost("not a valid internationalised host name") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise _BadHost("the URL has no host")
    labels = host.split(".")
    if _ends_in_number(labels):
        return _parse_whatwg_ipv4(labels)
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise _BadHost("not a valid host name")
    return host


def _host_in_url(host) -> str:
    if isinstance(host, ipaddress.IPv6Address):
        return f"[{host}]"
    return str(host)


def _normalize_allow_entry(entry: str) -> str:
    """``host`` or ``host:port`` (``[v6]:port``, or a bare IPv6 address) -> canonical key."""
    entry = str(entry).strip()
    port = None
    try:
        if entry.startswith("["):
            close = entry.find("]")
            if close < 0:
                raise _BadHost("unclosed [")
            host = _normalize_host(entry[1:close], bracketed=True)
            rest = entry[close + 1 :]
            if rest:
                if not rest.startswith(":") or not _PORT.match(rest[1:]):
                    raise _BadHost("bad port")
                port = int(rest[1:])
        elif entry.count(":") > 1:
            host = _normalize_host(entry, bracketed=True)
        else:
            name, sep, port_str = entry.partition(":")
            host = _normalize_host(name)
            if sep:
                if not _PORT.match(port_str):
                    raise _BadHost("bad port")
                port = int(port_str)
    except _BadHost as exc:
        raise ValueError(f"{entry!r} is not a host or host:port ({exc})") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{entry!r} has a port out of range")
    key = _host_in_url(host)
    return f"{key}:{port}" if port is not None else key


def _normalize_domain(domain: str) -> str:
    """A domain (allows its subdomains) or an IP address (allows exactly that address)."""
    d = str(domain).strip().lower()
    if d.startswith("*."):
        d = d[2:]
    try:
        if d.startswith("[") and d.endswith("]"):
            host = _normalize_host(d[1:-1], bracketed=True)
        elif d.count(":") > 1:
            host = _normalize_host(d, bracketed=True)
        else:
            host = _normalize_host(d.strip("."))
    except _BadHost as exc:
        raise ValueError(f"{domain!r} is not a domain name ({exc})") from None
    return _host_in_url(host)


@dataclasses.dataclass(frozen=True)
class _Target:
    url: str  # normalised, what is requested
    scheme: str
    host: object  # str name, IPv4Address or IPv6Address
    port: int  # effective port


def _parse_url(raw, *, redirected: bool = False) -> _Target:
    where = "The page redirected to a URL that" if redirected else "The URL"

    def bad(reason: str) -> FetchError:
        return _err(f"{where} is not valid: {reason}.", 400, "invalid_url")

    if not isinstance(raw, str):
        raise bad("it must be a string")
    url = raw.strip(" ")
    if not url:
        raise bad("it is empty")
    if len(url) > MAX_URL_LENGTH:
        raise bad(f"it is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url):
        raise bad("it contains control characters")
    if "\\" in url:
        raise bad("it contains backslashes")
    m = _SCHEME.match(url)
    if not m:
        raise bad("it must start with http:// or https://")
    scheme = m.group(1).lower()
    if scheme not in _DEFAULT_PORTS:
        raise bad(f"only http and https are supported, not {scheme}")
    rest = url[m.end() :]
    if not rest.startswith("//"):
        raise bad("it must start with http:// or https://")
    rest = rest[2:]
    end = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0], default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise bad("user names and passwords (user@host) are not allowed")
    if " " in authority:
        raise bad("the host contains spaces")
    try:
        if authority.startswith("["):
            close = authority.find("]")
            if close < 0:
                raise _BadHost("unclosed [ in the host")
            host = _normalize_host(authority[1:close], bracketed=True)
            after = authority[close + 1 :]
            if after and not after.startswith(":"):
                raise _BadHost("unexpected characters after the IPv6 address")
            port_str = after[1:] if after else ""
        else:
            if authority.count(":") > 1:
                raise _BadHost("IPv6 addresses must be in brackets")
            name, _, port_str = authority.partition(":")
            host = _normalize_host(name)
    except _BadHost as exc:
        raise bad(str(exc)) from None
    if port_str:
        if not _PORT.match(port_str) or not 0 < int(port_str) < 65536:
            raise bad(f"the port {port_str[:10]!r} is not a number from 1 to 65535")
        port = int(port_str)
    else:
        port = _DEFAULT_PORTS[scheme]
    tail = tail.split("#", 1)[0]
    if not tail.startswith("/"):
        tail = "/" + tail
    netloc = _host_in_url(host)
    if port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return _Target(url=f"{scheme}://{netloc}{tail}", scheme=scheme, host=host, port=port)


def _check_domain(target: _Target, limits: FetchLimits) -> None:
    allowed = limits.allowed_domains
    if allowed is None:
        return
    host = target.host
    if isinstance(host, str):
        labels = host.split(".")
        for i in range(len(labels)):
            if ".".join(labels[i:]) in allowed:
                return
    elif _host_in_url(host) in allowed:  # an address listed as itself
        return
    raise _err(
        f"The host {_host_in_url(host)} is not in the domains this service may fetch.",
        403,
        "domain_not_allowed",
    )


def _is_private_allowed(target: _Target, limits: FetchLimits) -> bool:
    if not limits.allow_private_hosts:
        return False
    key = _host_in_url(target.host)
    return key in limits.allow_private_hosts or f"{key}:{target.port}" in limits.allow_private_hosts


# --------------------------------------------------------------------------- address checks

# Ranges refused on top of Python's ipaddress flags and requests-hardened's own list:
# whole translation/tunnel prefixes (their embedded IPv4 may be anything) and a few
# IPv4 blocks Python does not flag on every patch release.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches localhost on Linux
        "100.64.0.0/10",  # carrier-grade NAT
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "::/96",  # IPv4-compatible IPv6 (deprecated), :: and ::1 included
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64
        "2001::/32",  # Teredo
        "2002::/16",  # 6to4
        "fec0::/10",  # site-local (deprecated)
        "fd00:ec2::/32",  # AWS metadata (IPv6) is inside fc00::/7 anyway; named for clarity
    )
)


def _is_public(ip) -> bool:
    """True only for a globally routable unicast address; embedded IPv4 is judged as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _is_public(ip.ipv4_mapped)
    if (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and (ip.is_site_local or ip.scope_id))
        or any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version)
    ):
        return False
    # Second, independent classifier: the requests-hardened IP filter (on a literal: no DNS).
    try:
        get_ip_address(str(ip), 0, allow_loopback=False)
    except (InvalidIPAddress, OSError, ValueError):
        return False
    return True


def _resolve(host: str, port: int, deadline: "_Deadline") -> list:
    """One getaddrinfo, bounded by the deadline (it runs in a daemon thread)."""
    outcome: dict = {}

    def work():
        try:
            outcome["infos"] = socket.getaddrinfo(
                host, port, urllib3.util.connection.allowed_gai_family(), socket.SOCK_STREAM
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="fetch-dns", daemon=True)
    worker.start()
    worker.join(max(deadline.remaining(), 0))
    if worker.is_alive():
        raise deadline.timeout_error(f"Looking up {host} took too long.")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, (socket.gaierror, UnicodeError)):
            raise _err(f"The host {host} could not be resolved (DNS lookup failed).", 422, "unresolvable_host") from error
        raise error
    addresses = []
    for family, _, _, _, sockaddr in outcome["infos"]:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        try:
            ip = ipaddress.ip_address(sockaddr[0])
        except ValueError:  # e.g. a scoped "fe80::1%eth0": never public anyway
            ip = ipaddress.IPv6Address("fe80::")
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            ip = ipaddress.IPv6Address("fe80::")  # a scope id means link-local: refuse
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise _err(f"The host {host} has no IPv4 or IPv6 address.", 422, "unresolvable_host")
    return addresses


def _checked_addresses(target: _Target, limits: FetchLimits, deadline: "_Deadline") -> list:
    allowed = _is_private_allowed(target, limits)
    host = target.host
    if isinstance(host, str):
        if not allowed and (host == "localhost" or host.endswith(".localhost") or "." not in host):
            raise _err(f"The host {host} is not a public host name.", 403, "forbidden_address")
        addresses = _resolve(host, target.port, deadline)
        if not allowed:
            refused = [ip for ip in addresses if not _is_public(ip)]
            if refused:
                log.info("refused %s: resolves to %s", host, ", ".join(map(str, refused)))
                raise _err(f"The host {host} resolves to a non-public address.", 403, "forbidden_address")
        return addresses
    if not allowed and not _is_public(host):
        raise _err(f"The address {host} is not a public address.", 403, "forbidden_address")
    return [host]


# --------------------------------------------------------------------------- deadline


class _Watchdog:
    """One daemon thread per process that fires expired deadlines (a heap of them).

    Cheaper than a timer thread per fetch; restarted after a fork (gunicorn --preload).
    """

    def __init__(self):
        self._pid = None
        self._lock = threading.Lock()

    def reset_after_fork(self):
        self._pid = None
        self._lock = threading.Lock()

    def _start(self):
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._heap: list = []
        self._counter = 0
        threading.Thread(target=self._run, name="fetch-deadline-watchdog", daemon=True).start()

    def schedule(self, deadline: "_Deadline") -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._start()
        with self._cond:
            self._counter += 1
            heapq.heappush(self._heap, (deadline.expires, self._counter, deadline))
            if self._heap[0][2] is deadline:
                self._cond.notify()

    def _run(self):
        cond = self._cond
        while True:
            with cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    cond.wait(timeout)
                _, _, deadline = heapq.heappop(self._heap)
            deadline._fire()


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.reset_after_fork)


class _Deadline:
    """The total deadline of one fetch.

    When time is up, a watchdog shuts down every socket of this fetch (through ``dup``'d
    descriptors this object owns, so no descriptor reuse can ever hit another socket):
    that ends a slow-drip TLS handshake, header or body, which per-read timeouts alone
    never do.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.fired = False
        self._closed = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        #: Addresses checked (or explicitly allowed) during this fetch: the only peers
        #: a connection may reach.
        self.checked: set = set()
        _WATCHDOG.schedule(self)

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def expired(self) -> bool:
        return self.fired or self.remaining() <= 0

    def timeout_error(self, detail: str = "") -> FetchError:
        message = f"The page did not arrive within the {self.seconds:g} s deadline."
        return _err(f"{detail} {message}".strip(), 504, "upstream_timeout")

    def check(self) -> None:
        if self.expired():
            raise self.timeout_error()

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            if self._closed:
                return
            dup = sock.dup()
            if self.fired:
                _shutdown_quietly(dup)
            self._socks.append(dup)

    def _fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.fired = True
            for dup in self._socks:
                _shutdown_quietly(dup)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for dup in self._socks:
                dup.close()
            self._socks.clear()


def _shutdown_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _UncheckedPeer(OSError):
    """The socket is connected to an address that was not checked (never expected)."""


class _DeadlineConnectionMixin:
    _fetch_deadline: _Deadline | None = None

    def _new_conn(self):
        sock = super()._new_conn()
        guard = self._fetch_deadline
        if guard is not None:
            guard.register(sock)
            # Last line: the peer actually connected to must be an address checked
            # during this fetch. Nothing is sent to any other peer.
            try:
                peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
            except (OSError, ValueError, IndexError):
                peer = None
            if peer is None or peer not in guard.checked:
                sock.close()
                raise _UncheckedPeer("connected to an address that was not checked")
        return sock


class _DeadlineHTTPConnection(_DeadlineConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _DeadlinePoolMixin:
    def __init__(self, *args, fetch_deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._fetch_deadline = fetch_deadline

    def _new_conn(self):
        conn = super()._new_conn()
        conn._fetch_deadline = self._fetch_deadline
        return conn


class _DeadlineHTTPPool(_DeadlinePoolMixin, urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(_DeadlinePoolMixin, urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


# --------------------------------------------------------------------------- pinning adapter


class _UnpinnedHost(requests.exceptions.RequestException):
    """Raised (fail closed) if a request reaches the adapter for a host nobody checked."""


class _PinnedAdapter(IPFilterAdapter):
    """requests-hardened's IP-filter adapter, fed with addresses checked and pinned by
    ``fetch_page`` instead of resolving again: one DNS lookup per hop, bounded by the
    deadline, every address checked. As in requests-hardened, the connection goes to the
    pinned IP while ``Host``, SNI and certificate matching use the URL's host name."""

    def __init__(self, *, https: bool, pins: dict, deadline: _Deadline):
        self._pins = pins
        self._deadline = deadline
        super().__init__(is_https_proto=https, allow_loopback=False, tls_sni_support=True)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": functools.partial(_DeadlineHTTPPool, fetch_deadline=self._deadline),
            "https": functools.partial(_DeadlineHTTPSPool, fetch_deadline=self._deadline),
        }

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        # Skip IPFilterAdapter's own resolution: the address is already resolved and checked.
        host_params, pool_kwargs = requests.adapters.HTTPAdapter.build_connection_pool_key_attributes(
            self, request, verify, cert
        )
        scheme, host, port = host_params["scheme"], host_params["host"], host_params["port"]
        if scheme != ("https" if self._is_https_proto else "http") or not host:
            raise _UnpinnedHost(f"unexpected URL for this adapter: {request.url}")
        pinned = self._pins.get((host, port or _DEFAULT_PORTS[scheme]))
        if pinned is None:
            raise _UnpinnedHost(f"{host} was not checked before connecting")
        request.headers = CaseInsensitiveDict(request.headers or {})
        host_header = f"[{host}]" if ":" in host else host
        if port is not None:
            host_header += f":{port}"
        request.headers["Host"] = host_header
        if self._is_https_proto:
            pool_kwargs["assert_hostname"] = host
            pool_kwargs["server_hostname"] = host
        host_params["host"] = f"[{pinned}]" if pinned.version == 6 else str(pinned)
        return host_params, pool_kwargs


def _new_session(pins: dict, deadline: _Deadline) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies, .netrc or CA bundles from the environment
    session.proxies = {}
    session.headers = CaseInsensitiveDict(
        {
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8",
            "Accept-Encoding": "gzip, deflate",
            "Connection": "keep-alive",
        }
    )
    session.mount("http://", _PinnedAdapter(https=False, pins=pins, deadline=deadline))
    session.mount("https://", _PinnedAdapter(https=True, pins=pins, deadline=deadline))
    return session


# --------------------------------------------------------------------------- errors


def _exception_chain(exc: BaseException) -> list:
    seen: list = []
    todo = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or any(e is s for s in seen) or len(seen) > 50:
            continue
        seen.append(e)
        todo.extend([e.__cause__, e.__context__, getattr(e, "reason", None)])
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return seen


def _upstream_error(exc: BaseException, target: _Target, deadline: _Deadline) -> FetchError:
    host = _host_in_url(target.host)
    chain = _exception_chain(exc)

    def has(*types) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(_UncheckedPeer):
        return _err(f"The host {host} resolves to a non-public address.", 403, "forbidden_address")
    if deadline.expired():
        return deadline.timeout_error()
    timed_out = any(
        isinstance(e, (TimeoutError, urllib3.exceptions.TimeoutError, requests.exceptions.Timeout))
        # urllib3's NewConnectionError subclasses ConnectTimeoutError: it is no timeout.
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in chain
    )
    if timed_out:
        return _err(f"{host} did not answer in time.", 504, "upstream_timeout")
    if has(ssl.SSLError, ssl.CertificateError, urllib3.exceptions.SSLError, requests.exceptions.SSLError):
        return _err(f"The TLS connection to {host} failed (bad certificate or handshake).", 502, "upstream_tls_error")
    if has(ConnectionRefusedError):
        return _err(f"{host} refused the connection.", 502, "upstream_unreachable")
    if has(
        ConnectionError,  # reset, aborted, broken pipe (http.client.RemoteDisconnected too)
        http.client.IncompleteRead,
        urllib3.exceptions.IncompleteRead,
        urllib3.exceptions.NewConnectionError,
    ):
        return _err(f"The connection to {host} failed or was cut off.", 502, "upstream_unreachable")
    if has(http.client.HTTPException, urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError):
        return _err(f"{host} sent a malformed HTTP response.", 502, "upstream_invalid_response")
    return _err(f"The connection to {host} failed.", 502, "upstream_unreachable")


# --------------------------------------------------------------------------- body


class _Decoder:
    """Content-Encoding decoder for gzip/deflate (stackable) with bounded output per step."""

    def __init__(self, encodings: list[str]):
        self._layers = [_Layer(e) for e in reversed(encodings)]

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._through(0, data)

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self._layers):
            if data:
                yield data
            return
        for piece in self._layers[i].feed(data):
            yield from self._through(i + 1, piece)


class _Layer:
    """One gzip or deflate layer. Output per decompress call is bounded (``max_length``)."""

    def __init__(self, encoding: str):
        self._gzip = encoding in ("gzip", "x-gzip")
        self._obj = self._new()
        self._first = b""  # deflate: kept until we know whether it is zlib-wrapped or raw
        self._mode_known = self._gzip
        self._members = 0
        self._done = False

    def _new(self, raw: bool = False):
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)

    def _decompress(self, data: bytes) -> bytes:
        if self._mode_known:
            return self._obj.decompress(data, _READ_CHUNK)
        self._first += data
        try:
            out = self._obj.decompress(data, _READ_CHUNK)
        except zlib.error:
            # "deflate" sent as raw deflate (no zlib header), as many servers do.
            self._mode_known = True
            self._obj = self._new(raw=True)
            data, self._first = self._first, b""
            return self._obj.decompress(data, _READ_CHUNK)
        if len(self._first) >= 2:  # the zlib header was accepted
            self._mode_known = True
            self._first = b""
        return out

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data and not self._done:
            if self._obj.eof:
                # Bytes after the end of the stream: the next gzip member, else ignored.
                if not self._gzip or not data.strip(b"\x00") or self._members >= 1000:
                    return
                self._obj = self._new()
                self._members += 1
            try:
                out = self._decompress(data)
            except zlib.error:
                if self._members:  # garbage after a complete gzip member: ignore it
                    self._done = True
                    return
                raise
            while True:
                if out:
                    yield out
                if not self._obj.unconsumed_tail:
                    break
                out = self._obj.decompress(self._obj.unconsumed_tail, _READ_CHUNK)
            data = self._obj.unused_data if self._obj.eof else b""


def _parse_content_type(value: str | None) -> tuple[str, str | None]:
    if not value:
        return "", None
    media, *params = value.split(";")
    charset = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            val = val.strip().strip('"').strip("'").strip().lower()
            if val:
                try:
                    codecs.lookup(val)
                    charset = val
                except LookupError:
                    charset = None
            break
    return media.strip().lower(), charset


def _content_encodings(resp) -> list[str]:
    raw = resp.headers.get("Content-Encoding", "")
    encodings = [e.strip().lower() for e in raw.split(",") if e.strip()]
    encodings = [e for e in encodings if e != "identity"]
    for e in encodings:
        if e not in ("gzip", "x-gzip", "deflate"):
            raise _err(
                f"The page uses the content encoding {e[:40]!r}, which is not supported.",
                502,
                "upstream_invalid_response",
            )
    if len(encodings) > _MAX_ENCODING_LAYERS:
        raise _err("The page is compressed too many times over.", 422, "page_too_large")
    return encodings


def _read_body(resp, limits: FetchLimits, deadline: _Deadline) -> bytes:
    encodings = _content_encodings(resp)
    if not encodings:
        declared = resp.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > limits.max_bytes:
            raise _too_large(limits)
    decoder = _Decoder(encodings) if encodings else None
    body = bytearray()
    wire = 0
    try:
        for raw in resp.raw.stream(_READ_CHUNK, decode_content=False):
            deadline.check()
            wire += len(raw)
            pieces = decoder.feed(raw) if decoder else (raw,)
            for piece in pieces:
                body += piece
                if len(body) > limits.max_bytes:
                    raise _too_large(limits)
                if encodings and len(body) > _BOMB_MIN_DECODED and len(body) > _BOMB_MAX_RATIO * wire:
                    raise _err(
                        f"The page is a compression bomb (it expands more than {_BOMB_MAX_RATIO} times).",
                        422,
                        "page_too_large",
                    )
    except zlib.error as exc:
        raise _err("The page's compressed body is corrupt.", 502, "upstream_invalid_response") from exc
    deadline.check()
    return bytes(body)


def _too_large(limits: FetchLimits) -> FetchError:
    return _err(f"The page is larger than the limit of {limits.max_bytes} bytes.", 422, "page_too_large")


# --------------------------------------------------------------------------- fetch


def fetch_page(url: str, limits: FetchLimits | None = None) -> Page:
    """Fetch ``url`` within ``limits`` and return the decoded page; raise FetchError otherwise."""
    limits = limits or FetchLimits()
    target = _parse_url(url)
    _check_domain(target, limits)  # before any DNS lookup or connection
    deadline = _Deadline(limits.deadline)
    pins: dict = {}
    session = _new_session(pins, deadline)
    try:
        return _fetch(url, target, limits, deadline, session, pins)
    except FetchError:
        raise
    except Exception as exc:  # a failure nobody foresaw: still a FetchError, and logged
        log.exception("unexpected failure fetching %s", target.url)
        raise FetchError(f"The page at {_host_in_url(target.host)} could not be fetched.") from exc
    finally:
        session.close()
        deadline.close()


def _fetch(url, target, limits, deadline, session, pins) -> Page:
    redirects = 0
    while True:
        _check_domain(target, limits)
        addresses = _checked_addresses(target, limits, deadline)
        resp = _send(session, target, addresses, pins, limits, deadline)
        try:
            status = resp.status_code
            if status in _REDIRECT_CODES:
                location = session.get_redirect_target(resp)
                if not location:
                    raise _err(f"The page answered HTTP {status} without a Location.", 502, "upstream_invalid_response")
                redirects += 1
                if redirects > limits.max_redirects:
                    raise _err(
                        f"The page redirected more than {limits.max_redirects} times.", 422, "too_many_redirects"
                    )
                next_url = urljoin(target.url, location)
                target = _parse_url(next_url, redirected=True)
                continue
            if not 200 <= status < 300:
                message = f"The page answered HTTP {status}{_phrase(status)}."
                if 400 <= status < 500:
                    raise _err(message, 422, "upstream_status", upstream_status=status)
                if status >= 500:
                    raise _err(message, 502, "upstream_status", upstream_status=status)
                raise _err(message, 502, "upstream_invalid_response")  # 1xx/3xx that is no redirect
            media_type, charset = _parse_content_type(resp.headers.get("Content-Type"))
            if media_type not in limits.content_types:
                shown = media_type[:80] or "none"
                raise _err(
                    f"The page's content type ({shown}) is not one of {', '.join(sorted(limits.content_types))}.",
                    415,
                    "unsupported_content_type",
                )
            try:
                body = _read_body(resp, limits, deadline)
            except FetchError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a FetchError
                raise _upstream_error(exc, target, deadline) from exc
            return Page(
                url=url,
                final_url=target.url,
                status=status,
                content_type=media_type,
                charset=charset,
                body=body,
            )
        finally:
            resp.close()


def _phrase(status: int) -> str:
    try:
        return f" ({http.HTTPStatus(status).phrase})"
    except ValueError:
        return ""


def _send(session, target, addresses, pins, limits, deadline):
    """GET ``target`` through the first checked address that accepts a connection."""
    key = (target.host.compressed if not isinstance(target.host, str) else target.host, target.port)
    last_exc: BaseException | None = None
    for ip in addresses[:_MAX_ADDRESSES_TRIED]:
        deadline.check()
        pins[key] = ip
        deadline.checked.add(ip)
        remaining = deadline.remaining()
        timeout = (min(limits.connect_timeout, remaining), min(limits.read_timeout, remaining))
        try:
            resp = session.get(
                target.url, allow_redirects=False, stream=True, timeout=timeout, verify=_TLS_VERIFY
            )
            if deadline.expired():  # headers cut short by the deadline look complete
                resp.close()
                raise deadline.timeout_error()
            return resp
        except _UnpinnedHost as exc:  # cannot happen: fail closed if it ever does
            raise _err("The host was not checked before connecting.", 403, "forbidden_address") from exc
        except requests.exceptions.InvalidURL as exc:
            raise _err("The URL is not valid.", 400, "invalid_url") from exc
        except requests.exceptions.ConnectionError as exc:
            last_exc = exc
            chain = _exception_chain(exc)
            connect_failed = any(
                isinstance(e, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))
                for e in chain
            )
            if not connect_failed or deadline.expired():
                raise _upstream_error(exc, target, deadline) from exc
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _upstream_error(exc, target, deadline) from exc
    assert last_exc is not None
    raise _upstream_error(last_exc, target, deadline) from last_exc
