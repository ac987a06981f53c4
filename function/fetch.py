"""Fetch one web page on behalf of a caller, safely.

The URL comes from an untrusted caller, so this module is an SSRF boundary:

* only ``http``/``https`` URLs; the URL is parsed and normalised here (WHATWG
  rules for odd IPv4 spellings, UTS-46/IDNA for non-ASCII hosts) and anything
  ambiguous (credentials, backslashes, control characters, percent-encoded or
  zone-scoped hosts) is refused before any network activity, as is a port outside
  ``FETCH_PORTS`` (80 and 443 by default: a public host's other ports are no pages);
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

import dataclasses
import functools
import heapq
import http
import http.client
import ipaddress
import logging
import os
import re
import socket
import ssl
import struct
import threading
import time
import zlib
from typing import Iterator
from urllib.parse import quote, urljoin

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict
from requests_hardened.ip_filter import InvalidIPAddress, get_ip_address
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from function.charsets import codec_for
from function.errors import FetchError
from function.fetch_policy import (  # noqa: F401 (FetchLimits: re-exported)
    DEFAULT_PORTS, FETCHER_PRODUCT, FetchLimits, Target, check_domain, check_port, fetch_error, host_in_url,
    exemption_note, is_private_allowed, parse_url,
)

from function import __version__ as _VERSION

__all__ = ["FetchLimits", "Page", "fetch_page", "USER_AGENT"]

log = logging.getLogger(__name__)

LOGGED_CHARS = 300


class _OneShortLine(logging.Filter):
    """urllib3 logs what a page's server sent it: "Failed to parse headers" quotes every header,
    and again in the traceback attached (10 MB of log a request, from a page of 90 headers of
    60 KB). One line, cut short: the caller's answer already says what went wrong."""

    def filter(self, record):
        try:
            record.msg, record.args = record.getMessage()[:LOGGED_CHARS], None
        except Exception:  # a message that cannot be formatted must not fail the fetch that logs it
            record.msg, record.args = f"{record.msg!s:.{LOGGED_CHARS}}", None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


class _NotBothLengths(logging.Filter):
    """urllib3 warns of each page whose server sends Content-Length with Transfer-Encoding: chunked, a
    server's quirk, then reads it as RFC 9112 asks (by its chunks, the length ignored; _read_body too):
    a line each such page, in the owner's log, that nobody there can act on."""

    def filter(self, record):
        return not str(record.msg).startswith("Received response with both Content-Length and Transfer-Encoding")


for _name in ("urllib3.connection", "urllib3.connectionpool", "urllib3.response"):
    logging.getLogger(_name).addFilter(_OneShortLine())
logging.getLogger("urllib3.response").addFilter(_NotBothLengths())

USER_AGENT = (
    f"{FETCHER_PRODUCT}/{_VERSION} "
    "(related-content recommendation function; fetches the one page it is asked about)"
)


_READ_CHUNK = 16_384  # raw bytes per read; also the most one decode step may emit
_BOMB_MIN_DECODED = 1_000_000  # ratios are judged once this much was decoded...
_BOMB_MAX_RATIO = 100  # ...and a decoded/wire ratio above this is refused
_MAX_ENCODING_LAYERS = 3
_MAX_GZIP_MEMBERS = 1000  # gzip streams one after another in a body (RFC 1952 allows many; pages use one)
_MAX_ADDRESSES_TRIED = 3  # resolved (and checked) addresses tried on connect failure
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

#: TLS verification passed to requests; tests point it at a throwaway CA bundle.
_TLS_VERIFY: bool | str = True


@dataclasses.dataclass(frozen=True)
class Page:
    url: str  # as asked
    final_url: str  # after redirects (normalised)
    status: int
    content_type: str  # media type, lower case, e.g. "text/html"
    charset: str | None  # declared in Content-Type (lower case, a label charsets.codec_for reads), or None
    body: bytes  # content-decoded


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
        "168.63.129.16/32",  # Azure's WireServer (platform DNS, VM agent): public-looking, reached from every Azure VM
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
            raise fetch_error(f"The host {host} could not be resolved (DNS lookup failed).", 422, "unresolvable_host") from error
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
        raise fetch_error(f"The host {host} has no IPv4 or IPv6 address.", 422, "unresolvable_host")
    return addresses


def _checked_addresses(target: Target, limits: FetchLimits, deadline: "_Deadline") -> list:
    allowed = is_private_allowed(target, limits)
    host = target.host

    def refused(why: str) -> FetchError:  # with what FETCH_ALLOW_PRIVATE_HOSTS exempts, when it is set
        return fetch_error(f"{why}.{exemption_note(target, limits)}", 403, "forbidden_address")

    if isinstance(host, str):
        if not allowed and (host == "localhost" or host.endswith(".localhost") or "." not in host):
            raise refused(f"The host {host} is not a public host name")
        addresses = _resolve(host, target.port, deadline)
        if not allowed:
            private = [ip for ip in addresses if not _is_public(ip)]
            if private:
                log.info("refused %s: resolves to %s", host, ", ".join(map(str, private)))
                raise refused(f"The host {host} resolves to a non-public address")
        return addresses
    if not allowed and not _is_public(host):
        raise refused(f"The address {host} is not a public address")
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
        return fetch_error(f"{detail} {message}".strip(), 504, "upstream_timeout")

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


_MAX_INTERIM = 20  # 1xx answers read past before the final one: a server sends one or two


class _FinalResponse(http.client.HTTPResponse):
    """Reads past interim answers (1xx: 103 Early Hints, 102 Processing) to the final one, as RFC 9110
    asks of every client; http.client passes over 100 only, and a page sent after a 103 had been a 502.
    A server that sends more than _MAX_INTERIM of them is refused (a flood of 100s had held a thread,
    parsing, until the deadline). A 101 was never asked for: it stays the answer (no page)."""

    def _read_status(self):
        for _ in range(_MAX_INTERIM + 1):
            version, status, reason = super()._read_status()
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # an interim answer's headers say nothing of the page
        raise http.client.HTTPException(f"more than {_MAX_INTERIM} interim (1xx) answers")


class _DeadlineConnectionMixin:
    _fetch_deadline: _Deadline | None = None
    response_class = _FinalResponse

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
        pinned = self._pins.get((host, port or DEFAULT_PORTS[scheme]))
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


class _Session(requests.Session):
    """A session that prepares no request for a redirect's target: _fetch follows redirects itself,
    after checking where they go. (requests prepares one even with allow_redirects=False, and its
    reading of the Location raised on bytes that are not UTF-8 and on a URL it cannot parse.)"""

    def get_redirect_target(self, resp):
        return None


def _new_session(pins: dict, deadline: _Deadline) -> requests.Session:
    session = _Session()
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


def _upstream_error(exc: BaseException, target: Target, deadline: _Deadline) -> FetchError:
    host = host_in_url(target.host)
    chain = _exception_chain(exc)

    def has(*types) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(_UncheckedPeer):
        return fetch_error(f"The host {host} resolves to a non-public address.", 403, "forbidden_address")
    if deadline.expired():
        return deadline.timeout_error()
    timed_out = any(
        isinstance(e, (TimeoutError, urllib3.exceptions.TimeoutError, requests.exceptions.Timeout))
        # urllib3's NewConnectionError subclasses ConnectTimeoutError: it is no timeout.
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in chain
    )
    if timed_out:
        return fetch_error(f"{host} did not answer in time.", 504, "upstream_timeout")
    if has(ssl.SSLError, ssl.CertificateError, urllib3.exceptions.SSLError, requests.exceptions.SSLError):
        return fetch_error(f"The TLS connection to {host} failed (bad certificate or handshake).", 502, "upstream_tls_error")
    if has(ConnectionRefusedError):
        return fetch_error(f"{host} refused the connection.", 502, "upstream_unreachable")
    if has(
        ConnectionError,  # reset, aborted, broken pipe (http.client.RemoteDisconnected too)
        http.client.IncompleteRead,
        urllib3.exceptions.IncompleteRead,
        urllib3.exceptions.NewConnectionError,
    ):
        return fetch_error(f"The connection to {host} failed or was cut off.", 502, "upstream_unreachable")
    if has(http.client.HTTPException, urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError):
        return fetch_error(f"{host} sent a malformed HTTP response.", 502, "upstream_invalid_response")
    return fetch_error(f"The connection to {host} failed.", 502, "upstream_unreachable")


# --------------------------------------------------------------------------- body


class _Decoder:
    """Content-Encoding decoder for gzip/deflate (stackable) with bounded output per step.

    Every layer's output is bounded, not only the last's, and ``step`` (the deadline's check) runs
    after each step: an inner layer that consumes what the outer ones make and gives nothing (a
    gzip header whose file name never ends, under two more layers) had decoded gigabytes unbounded,
    for minutes past the deadline."""

    def __init__(self, encodings: list[str], max_layer_bytes: int = 0, step=lambda: None):
        self._layers = [_Layer(e) for e in reversed(encodings)]
        self._made = [0] * len(self._layers)
        self._max_layer_bytes = max_layer_bytes
        self._step = step

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._through(0, data)

    @property
    def complete(self) -> bool:
        """Every layer reached its stream's end: zlib reads a stream cut short without a word."""
        return all(layer.complete for layer in self._layers)

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self._layers):
            if data:
                yield data
            return
        for piece in self._layers[i].feed(data):
            self._step()
            self._made[i] += len(piece)
            if self._max_layer_bytes and self._made[i] > self._max_layer_bytes:
                raise fetch_error("The page's compressed body expands past the size limit.", 422, "page_too_large")
            yield from self._through(i + 1, piece)


GZIP_MAGIC = b"\x1f\x8b"


class _Layer:
    """One gzip or deflate layer. Output per decompress call is bounded (``max_length``)."""

    def __init__(self, encoding: str):
        self._gzip = encoding in ("gzip", "x-gzip")
        self._obj = self._new()
        self._first = b""  # deflate: kept until we know whether it is zlib-wrapped or raw
        self._mode_known = self._gzip
        self._raw = False
        self._members = 0
        self._done = False
        self._check, self._size = self._check_start(), 0  # of this member's output: its trailer's figures

    @property
    def complete(self) -> bool:
        """At the stream's end: bytes after a whole gzip member that do not begin another (a stray
        newline, as curl and browsers read them) are ignored; a member begun and cut is not whole,
        but one whose deflate stream ended and only its trailer is missing is (see _only_trailer_missing)."""
        return self._done or self._obj.eof or self._only_trailer_missing()

    def _check_start(self) -> int:
        return 0 if self._gzip else 1  # CRC-32's, Adler-32's

    def _count(self, out: bytes) -> None:
        if self._gzip:
            self._check = zlib.crc32(out, self._check)
        elif not self._raw:
            self._check = zlib.adler32(out, self._check)
        self._size += len(out)

    def _trailer(self) -> bytes:
        """What the member's trailer holds, by its output: gzip's CRC-32 and size, zlib's Adler-32."""
        if self._gzip:
            return struct.pack("<II", self._check, self._size & 0xFFFFFFFF)
        return b"" if self._raw or not self._mode_known else struct.pack(">I", self._check)

    def _only_trailer_missing(self) -> bool:
        """Whether the deflate stream ended and only the trailer after it, or its end, did not come (a
        server that closed before writing it): the page is whole, and browsers show it. zlib tells no
        end short of a checked trailer, so a copy of the decompressor is offered the trailer the output
        calls for, from each byte where it may have stopped: only a stream that ended takes it."""
        trailer = self._trailer()
        for start in range(len(trailer)):
            probe = self._obj.copy()
            try:
                probe.decompress(trailer[start:], _READ_CHUNK)
            except zlib.error:
                continue
            if probe.eof:
                return True
        return False

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
            self._mode_known = self._raw = True
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
                if not self._gzip or not data.strip(b"\x00"):
                    return
                if not GZIP_MAGIC.startswith(data[:2]):  # not another member: ignored, as curl and browsers do
                    self._done = True
                    return
                if self._members + 1 >= _MAX_GZIP_MEMBERS:  # each costs a new decompressor: bounded, and said;
                    # the page's own doing (a 422, remembered), not a server failing for now (a 502)
                    raise fetch_error(f"The page's body is more than {_MAX_GZIP_MEMBERS} gzip streams in a row.",
                                      422, "page_too_large")
                self._obj = self._new()
                self._members += 1
                self._check, self._size = self._check_start(), 0
            try:
                out = self._decompress(data)
            except zlib.error:
                if self._members:  # garbage after a complete gzip member: ignore it
                    self._done = True
                    return
                raise
            while True:
                if out:
                    self._count(out)
                    yield out
                if not self._obj.unconsumed_tail:
                    break
                out = self._obj.decompress(self._obj.unconsumed_tail, _READ_CHUNK)
            data = self._obj.unused_data if self._obj.eof else b""


_HEADER_VALUES = re.compile(r'(?:[^,"]|"[^"]*"?)+')  # the values of a joined header: commas outside quotes
_MAX_CONTENT_TYPE = 1024  # a longer Content-Type is no type we read (and its scan would cost the GIL)


def _one_content_type(value: str) -> tuple[str, str | None]:
    media, *params = value.split(";")
    charset = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            val = val.strip().strip('"').strip("'").strip().lower()
            charset = val if codec_for(val) else None
            break
    return media.strip().lower(), charset


def _parse_content_type(value: str | None) -> tuple[str, str | None]:
    """(media type, charset) as browsers read a Content-Type, also one sent more than once, which
    reaches us joined by ", " (a page that sent "text/html" twice had been a 415): the last type
    wins, "*/*" and what is no type are passed over, and a later value of the same type without a
    charset keeps the earlier one's."""
    if not value or len(value) > _MAX_CONTENT_TYPE:
        return "", None
    media, charset = "", None
    for part in _HEADER_VALUES.findall(value):
        essence, given = _one_content_type(part)
        if "/" not in essence or essence == "*/*":
            continue
        charset = given if given or essence != media else charset
        media = essence
    return (media, charset) if media else _one_content_type(value)


def _content_encodings(resp) -> list[str]:
    raw = resp.headers.get("Content-Encoding", "")
    encodings = [e.strip().lower() for e in raw.split(",") if e.strip()]
    encodings = [e for e in encodings if e != "identity"]
    for e in encodings:
        if e not in ("gzip", "x-gzip", "deflate"):
            raise fetch_error(
                f"The page uses the content encoding {e[:40]!r}, which is not supported.",
                502,
                "upstream_invalid_response",
            )
    if len(encodings) > _MAX_ENCODING_LAYERS:
        raise fetch_error("The page is compressed too many times over.", 422, "page_too_large")
    return encodings


def _read_body(resp, limits: FetchLimits, deadline: _Deadline) -> bytes:
    encodings = _content_encodings(resp)
    if not encodings and not resp.raw.chunked:  # chunks frame the body: a Content-Length beside them is ignored
        declared = resp.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > limits.max_bytes:
            raise _too_large(limits)
    # an outer layer's output is the next one's compressed input: none may exceed what the page may
    decoder = _Decoder(encodings, limits.max_bytes, deadline.check) if encodings else None
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
                    raise fetch_error(
                        f"The page is a compression bomb (it expands more than {_BOMB_MAX_RATIO} times).",
                        422,
                        "page_too_large",
                    )
    except zlib.error as exc:
        raise fetch_error("The page's compressed body is corrupt.", 502, "upstream_invalid_response") from exc
    # The length matched (or the chunks or the close ended the body): the server sent a cut stream.
    # Browsers show what arrived; here it is refused: a 502 is asked again (the crawler retries it,
    # the service does not remember it), where the part read would be indexed as the whole page, as
    # an uncompressed body short of its Content-Length is not. (Only its trailer missing: it is whole.)
    if decoder and wire and not decoder.complete:
        raise fetch_error("The page's compressed body ends before its compressed stream does (cut off).",
                          502, "upstream_invalid_response")
    deadline.check()
    return bytes(body)


def _too_large(limits: FetchLimits) -> FetchError:
    return fetch_error(f"The page is larger than the limit of {limits.max_bytes} bytes.", 422, "page_too_large")


# --------------------------------------------------------------------------- fetch


def fetch_page(url: str, limits: FetchLimits | None = None) -> Page:
    """Fetch ``url`` within ``limits`` and return the decoded page; raise FetchError otherwise."""
    limits = limits or FetchLimits()
    target = _allowed_target(url, limits)
    deadline = _Deadline(limits.deadline)
    pins: dict = {}
    session = _new_session(pins, deadline)
    try:
        return _fetch(url, target, limits, deadline, session, pins)
    except FetchError:
        raise
    except Exception as exc:  # a failure nobody foresaw: still a FetchError, and logged
        log.exception("unexpected failure fetching %s", target.url)
        raise FetchError(f"The page at {host_in_url(target.host)} could not be fetched.") from exc
    finally:
        session.close()
        deadline.close()


def _allowed_target(url, limits, redirected=False) -> Target:
    """``url`` parsed, its domain and port checked: the first URL's and each redirect's, before any DNS
    lookup or connection."""
    target = parse_url(url, redirected=redirected)
    check_domain(target, limits)
    check_port(target, limits)
    return target


_ASCII = "".join(map(chr, range(128)))


def _location(resp):
    """A redirect's Location as text: UTF-8 where it is, other bytes %-escaped as browsers send them
    (requests' own reading raises UnicodeDecodeError on them). The header arrives Latin-1 decoded."""
    location = resp.headers.get("Location")
    if not location:
        return location
    try:
        raw = location.encode("latin-1")
    except UnicodeEncodeError:
        return location
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return quote(raw, safe=_ASCII)


def _fetch(url, target, limits, deadline, session, pins) -> Page:
    redirects = 0
    while True:
        addresses = _checked_addresses(target, limits, deadline)
        resp = _send(session, target, addresses, pins, limits, deadline)
        try:
            status = resp.status_code
            if status in _REDIRECT_CODES:
                location = _location(resp)
                if not location:
                    raise fetch_error(f"The page answered HTTP {status} without a Location.", 502, "upstream_invalid_response")
                redirects += 1
                if redirects > limits.max_redirects:
                    raise fetch_error(
                        f"The page redirected more than {limits.max_redirects} times.", 422, "too_many_redirects"
                    )
                try:
                    next_url = urljoin(target.url, location)
                except ValueError:  # "http://[": an unclosed IPv6 literal
                    raise fetch_error("The page redirected to a URL that is not valid: it cannot be parsed.",
                                      422, "invalid_redirect") from None
                target = _allowed_target(next_url, limits, redirected=True)
                continue
            if not 200 <= status < 300:
                message = f"The page answered HTTP {status}{_phrase(status)}."
                if 400 <= status < 500:
                    raise fetch_error(message, 422, "upstream_status", upstream_status=status)
                if status >= 500:
                    raise fetch_error(message, 502, "upstream_status", upstream_status=status)
                raise fetch_error(message, 502, "upstream_invalid_response")  # a 101, a 3xx that is no redirect
            media_type, charset = _parse_content_type(resp.headers.get("Content-Type"))
            if media_type not in limits.content_types:
                shown = media_type[:80] or "none"
                raise fetch_error(
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
            raise fetch_error("The host was not checked before connecting.", 403, "forbidden_address") from exc
        except requests.exceptions.InvalidURL as exc:
            raise fetch_error("The URL is not valid.", 400, "invalid_url") from exc
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
