"""What may be fetched: the rules, with no network code (and no `requests`).

``FetchLimits`` holds a fetch's limits, read from the ``FETCH_*`` environment
variables at start (a bad value stops the start, naming the variable); the
URL checks parse a caller's URL the way browsers do (WHATWG rules for odd
IPv4 spellings, UTS-46/IDNA for non-ASCII hosts) and refuse anything
ambiguous before any network activity. ``function.fetch`` does the fetching.
Kept apart so that start-up does not pay for importing the HTTP stack.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import re
from typing import Iterable, Mapping

from function.config import env_number
from function.errors import FetchError
from function.urls import CONTROL_CHARACTERS, DEFAULT_PORTS, ascii_host

log = logging.getLogger("function.fetch")

#: The special FETCH_ALLOWED_DOMAINS value that the caller resolves to the corpus's domains.
CORPUS = "corpus"

MAX_URL_LENGTH = 2048
#: The product token of the fetcher's User-Agent: the function refuses to answer it (app.refuse_own_fetcher)
FETCHER_PRODUCT = "RelatedContentBot"
DEFAULT_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
#: The ports fetched by default (FETCH_PORTS): web pages are served there; a public host's other
#: ports (22, 25, 6379, ...) told apart by our error codes and timings made the function a port scanner.
DEFAULT_FETCH_PORTS = frozenset({80, 443})


# --------------------------------------------------------------------------- limits


def _split_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _ports(raw: str) -> frozenset | None:
    """FETCH_PORTS: "any" (None), or a comma list of ports; ValueError naming the setting otherwise."""
    if raw.lower() == "any":
        return None
    entries = _split_list(raw)
    for entry in entries:
        if not _PORT.match(entry) or not 0 < int(entry) < 65536:
            raise ValueError(f"FETCH_PORTS={raw[:200]!r}: {entry[:20]!r} is not a port from 1 to 65535 "
                             "(a comma list of ports such as 80,443, or any)")
    if not entries:
        raise ValueError(f"FETCH_PORTS={raw[:200]!r} names no port (a comma list of ports such as 80,443, or any)")
    return frozenset(int(entry) for entry in entries)


def names_corpus(allowed_domains: str) -> bool:
    """Whether a FETCH_ALLOWED_DOMAINS value asks for the corpus's own hosts (which the caller
    then reads from its stores, once)."""
    return any(entry.lower() == CORPUS for entry in _split_list(allowed_domains or ""))


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
    #: ``None``: any port. Otherwise only these (a host exempt by ``allow_private_hosts`` on any it is exempt on).
    ports: frozenset | None = DEFAULT_FETCH_PORTS

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
        if self.ports is not None:
            if isinstance(self.ports, (str, int)):
                raise ValueError("ports must be a collection of port numbers, or None for any")
            ports = frozenset(self.ports)
            if not ports or any(isinstance(p, bool) or not isinstance(p, int) or not 0 < p < 65536 for p in ports):
                raise ValueError("ports must be one or more whole numbers from 1 to 65535, "
                                 f"not {sorted(ports, key=str)!r}")
            object.__setattr__(self, "ports", ports)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, corpus_domains: Iterable[str] | None = None, **overrides):
        """Build limits from ``FETCH_*`` variables; invalid values raise ValueError naming the variable.

        ``FETCH_ALLOWED_DOMAINS=corpus`` (alone or in a list) needs ``corpus_domains``: the caller
        resolves it. Keyword ``overrides`` replace any field.
        """
        values: dict = {}
        specs = [
            ("connect_timeout", "FETCH_CONNECT_TIMEOUT", float, cls.connect_timeout),
            ("read_timeout", "FETCH_READ_TIMEOUT", float, cls.read_timeout),
            ("deadline", "FETCH_DEADLINE", float, cls.deadline),
            ("max_bytes", "FETCH_MAX_BYTES", int, cls.max_bytes),
            ("max_redirects", "FETCH_MAX_REDIRECTS", int, cls.max_redirects),
        ]
        for field, var, kind, default in specs:
            value = env_number(environ, var, default, kind)  # ConfigError is a ValueError
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

        ports_raw = (environ.get("FETCH_PORTS") or "").strip()
        if ports_raw:  # blank: the default, as every FETCH_* setting
            values["ports"] = _ports(ports_raw)

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


# --------------------------------------------------------------------------- URL checks


def fetch_error(message: str, status: int, code: str, upstream_status: int | None = None) -> FetchError:
    error = FetchError(message, status=status, code=code)
    error.upstream_status = upstream_status  # the page server's own status, for retry decisions
    return error


class _BadHost(ValueError):
    pass


_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]*\Z")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_PORT = re.compile(r"^[0-9]{1,10}\Z")
_NOT_HEX_DIGIT = re.compile(r"[^0-9A-Fa-f]")  # an IPv6 address has none before its first colon


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
    try:
        host = ascii_host(host).lower()
    except ValueError:
        raise _BadHost("not a valid internationalised host name") from None
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


def host_in_url(host) -> str:
    if isinstance(host, ipaddress.IPv6Address):
        return f"[{host}]"
    return str(host)


def _split_host_port(authority, bare_ipv6=False):
    """``host[:port]`` or ``[v6][:port]`` (a bare IPv6 address if ``bare_ipv6``) -> the
    normalised host and the port's text: None without a colon, maybe empty after one.
    Raises _BadHost."""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise _BadHost("unclosed [ in the host")
        host = _normalize_host(authority[1:close], bracketed=True)
        after = authority[close + 1 :]
        if after and not after.startswith(":"):
            raise _BadHost("unexpected characters after the IPv6 address")
        return host, after[1:] if after else None
    if authority.count(":") > 1:
        if not bare_ipv6:
            raise _BadHost("IPv6 addresses must be in brackets")
        return _normalize_host(authority, bracketed=True), None
    name, colon, port = authority.partition(":")
    return _normalize_host(name), port if colon else None


def _normalize_allow_entry(entry: str) -> str:
    """``host`` or ``host:port`` (``[v6]:port``, or a bare IPv6 address) -> canonical key."""
    entry = str(entry).strip()
    if "://" in entry:
        raise ValueError(f"{entry!r} is not a host or host:port: drop the scheme "
                         f"({entry.split('://', 1)[1].split('/', 1)[0]!r})")
    port = None
    try:
        host, port_str = _split_host_port(entry, bare_ipv6=True)
        if port_str is not None:
            if not _PORT.match(port_str):
                raise _BadHost("bad port")
            port = int(port_str)
    except _BadHost as exc:
        raise ValueError(f"{entry!r} is not a host or host:port ({exc})") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{entry!r} has a port out of range")
    key = host_in_url(host)
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
    return host_in_url(host)


@dataclasses.dataclass(frozen=True)
class Target:
    url: str  # normalised, what is requested
    scheme: str
    host: object  # str name, IPv4Address or IPv6Address
    port: int  # effective port


def parse_url(raw, *, redirected: bool = False) -> Target:
    where = "The page redirected to a URL that" if redirected else "The URL"
    # a redirect is the page's doing, not the caller's: it cannot be used (422), as a redirect loop
    status, code = (422, "invalid_redirect") if redirected else (400, "invalid_url")

    def bad(reason: str) -> FetchError:
        return fetch_error(f"{where} is not valid: {reason}.", status, code)

    if not isinstance(raw, str):
        raise bad("it must be a string")
    url = raw.strip(" ")
    if not url:
        raise bad("it is empty")
    if len(url) > MAX_URL_LENGTH:
        raise bad(f"it is longer than {MAX_URL_LENGTH} characters")
    if CONTROL_CHARACTERS.search(url):
        raise bad("it contains control characters")
    if "\\" in url:
        raise bad("it contains backslashes")
    m = _SCHEME.match(url)
    if not m:
        raise bad("it must start with http:// or https://")
    scheme = m.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise bad(f"only http and https are supported, not {scheme}")
    rest = url[m.end() :]
    if not rest.startswith("//"):
        raise bad("it must start with http:// or https://")
    rest = rest[2:]
    end = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0], default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise bad("user names and passwords (user@host) are not allowed")

    def bad_port(port_str):
        shown = port_str[:10] + ("…" if len(port_str) > 10 else "")  # cut, and said to be: 00000000080 is not 8
        return bad(f"the port {shown!r} is not a number from 1 to 65535")

    name, colon, after = authority.partition(":")
    # a host name then a bad port ("example.com:80:80", "example.com: 80"), which had been refused
    # as an IPv6 address without brackets, or as a host with spaces
    if colon and not name.startswith("[") and " " not in name and (
            " " in after or (":" in after and _NOT_HEX_DIGIT.search(name))):
        raise bad_port(after)
    if " " in authority:
        raise bad("the host contains spaces")
    try:
        host, port_str = _split_host_port(authority)
    except _BadHost as exc:
        raise bad(str(exc)) from None
    if port_str:
        if not _PORT.match(port_str) or not 0 < int(port_str) < 65536:
            raise bad_port(port_str)
        port = int(port_str)
    else:
        port = DEFAULT_PORTS[scheme]
    tail = tail.split("#", 1)[0]
    if not tail.startswith("/"):
        tail = "/" + tail
    netloc = host_in_url(host)
    if port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return Target(url=f"{scheme}://{netloc}{tail}", scheme=scheme, host=host, port=port)


def check_domain(target: Target, limits: FetchLimits) -> None:
    allowed = limits.allowed_domains
    if allowed is None:
        return
    host = target.host
    if isinstance(host, str):
        labels = host.split(".")
        for i in range(len(labels)):
            if ".".join(labels[i:]) in allowed:
                return
    elif host_in_url(host) in allowed:  # an address listed as itself
        return
    raise fetch_error(
        f"The host {host_in_url(host)} is not in the domains this service may fetch.",
        403,
        "domain_not_allowed",
    )


def check_port(target: Target, limits: FetchLimits) -> None:
    """A 403 ``forbidden_port`` for a port outside FETCH_PORTS, before any DNS lookup or connection. A
    host exempt by FETCH_ALLOW_PRIVATE_HOSTS passes on the ports it is exempt on (``host:port``: that
    one; a bare host: any, as its address check): tests and benchmarks serve pages there."""
    if limits.ports is None or target.port in limits.ports or is_private_allowed(target, limits):
        return
    raise fetch_error(
        f"The port {target.port} of {host_in_url(target.host)} is not one this service fetches from "
        f"(FETCH_PORTS: {', '.join(map(str, sorted(limits.ports)))}).{exemption_note(target, limits)}",
        403,
        "forbidden_port",
    )


def exemption_note(target: Target, limits: FetchLimits) -> str:
    """Why FETCH_ALLOW_PRIVATE_HOSTS, when set, does not exempt ``target``: ``localhost:8001`` does not
    cover ``127.0.0.1:8001``. Its entries are not named: anyone may ask for any URL, and the list would
    show them which private hosts this service fetches. Empty when it is unset, as in a deployment."""
    if not limits.allow_private_hosts:
        return ""
    return (f" FETCH_ALLOW_PRIVATE_HOSTS is set but does not exempt {host_in_url(target.host)}:{target.port}:"
            " an entry covers its host only as the URL writes it (localhost is not 127.0.0.1), host:port"
            " on that port only.")


def is_private_allowed(target: Target, limits: FetchLimits) -> bool:
    if not limits.allow_private_hosts:
        return False
    key = host_in_url(target.host)
    return key in limits.allow_private_hosts or f"{key}:{target.port}" in limits.allow_private_hosts
