"""Loopback test servers, friendly and hostile, for fetch tests and benchmarks.

Everything here binds loopback addresses only (127.0.0.0/8, ::1) and every endless or
slow behaviour stops by itself (bounded in bytes and time) or when the client goes away.

* :class:`HostileServer`: a threaded HTTP/1.1 server (optionally TLS) with routes for
  normal pages, redirects, slow-loris drips, endless bodies, lying Content-Length,
  gzip/deflate bombs, binary content, status codes, resets and malformed answers.
* :class:`Canary`: a listener that records every connection made to it (and closes it).
* :class:`Blackhole`: a listener whose accept queue is full, so connects time out.
* :func:`refused_port`: a port on which nothing listens.
* :func:`make_tls_files`: a throwaway CA and a server certificate (needs ``openssl``).
* pytest fixtures (import them into a test module to use them): ``srv``, the
  canaries ``canary`` (127.0.0.1), ``canary2`` (127.0.0.2), ``canary6`` (::1),
  reset before each test by ``fresh_canaries``, and ``tripwire``, which fails
  a test that tries to connect anywhere off loopback.
"""

from __future__ import annotations

import functools
import ipaddress
import gzip
import http.server
import json
import os
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time
import zlib
from urllib.parse import parse_qs, quote

PAGE_HTML = (
    b"<!doctype html><html><head><title>Test page</title></head><body>"
    b"<article><h1>Hello</h1><p>A small article about loopback servers.</p></article>"
    b"</body></html>"
)

_MAX_ENDLESS_BYTES = 512 * 1024 * 1024  # an "endless" body still ends here
_MAX_SLOW_SECONDS = 20.0  # a slow drip still ends here


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def bindable(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@functools.lru_cache(maxsize=None)
def bomb_payload(encoding: str, size: int) -> bytes:
    """``size`` zero bytes compressed with ``encoding`` (gzip, deflate, rawdeflate, "gzip,gzip")."""
    data = b"\0" * size
    for enc in reversed([e.strip() for e in encoding.split(",")]):
        data = compress(data, enc)
    return data


def compress(data: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(data, compresslevel=9)
    if encoding == "deflate":
        return zlib.compress(data, 9)
    if encoding == "rawdeflate":
        c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return c.compress(data) + c.flush()
    raise ValueError(encoding)


def _wire_encoding(encoding: str) -> str:
    return ", ".join("deflate" if e.strip() == "rawdeflate" else e.strip() for e in encoding.split(","))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HostileServer/1.0"
    timeout = 30  # an idle keep-alive connection is dropped after this

    def log_message(self, *args):  # quiet
        pass

    # ------------------------------------------------------------------ plumbing
    def do_GET(self):
        self.server.record(self)
        path, _, query = self.path.partition("?")
        self.params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        name = path.strip("/").split("/")[0].replace("-", "_") or "page"
        route = getattr(self, f"route_{name}", None)
        if route is None:
            self.send_simple(404, b"not found", "text/plain")
            return
        try:
            route()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError, OSError):
            self.close_connection = True

    def param(self, name, default=None, cast=str):
        value = self.params.get(name)
        return default if value is None else cast(value)

    def send_simple(self, status, body=b"", ctype="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def write_chunks(self, body, size):
        """``body`` in chunks of ``size`` bytes, then the last chunk (Transfer-Encoding: chunked)."""
        for start in range(0, len(body), size):
            piece = body[start:start + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def stopped(self) -> bool:
        return self.server.stop_event.is_set()

    # ------------------------------------------------------------------ normal pages
    def route_page(self):
        self.send_simple(200, PAGE_HTML, self.param("ct", "text/html; charset=utf-8"))

    def route_ctype(self):
        """Small body with the given Content-Type; ct=none sends no Content-Type."""
        ct = self.param("ct", "text/html")
        self.send_simple(200, PAGE_HTML, None if ct == "none" else ct)

    def route_headers(self):
        """Echo the request headers (and the address the client came from) as JSON."""
        body = json.dumps(
            {"headers": dict(self.headers.items()), "client": self.client_address[0], "path": self.path}
        ).encode()
        self.send_simple(200, body, "text/plain; charset=utf-8")

    def route_sized(self):
        n = self.param("n", 1000, int)
        self.send_simple(200, b"a" * n, "text/plain")

    def route_compressed(self):
        """A valid small page, compressed (enc=gzip|deflate|rawdeflate|gzip,gzip); chunked=1, or
        close=1: no length, the close ends the body; cut=N: only the first N bytes of the compressed
        stream (with a Content-Length that says so); tail=T: the bytes of T after it."""
        enc = self.param("enc", "gzip")
        body = PAGE_HTML
        for e in reversed(enc.split(",")):
            body = compress(body, e)
        body = body[: self.param("cut", len(body), int)] + self.param("tail", "").encode()
        chunked, close = self.param("chunked") == "1", self.param("close") == "1"
        if not (chunked or close):
            self.send_simple(200, body, "text/html; charset=utf-8", [("Content-Encoding", _wire_encoding(enc))])
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Encoding", _wire_encoding(enc))
        self.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Connection", "close")))
        self.end_headers()
        if chunked:
            self.write_chunks(body, 7)
        else:
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

    def route_gzip_members(self):
        """Two gzip members back to back (legal, decoders must join them)."""
        body = gzip.compress(b"<p>first</p>") + gzip.compress(b"<p>second</p>")
        self.send_simple(200, body, "text/html", [("Content-Encoding", "gzip")])

    # ------------------------------------------------------------------ status codes
    def route_status(self):
        code = self.param("code", 500, int)
        self.send_simple(code, b"<p>status page</p>" * self.param("repeat", 1, int))

    def route_interim(self):
        """``n`` interim answers of status ``code`` (103 Early Hints, 102 Processing, 100 Continue),
        each with a header, before the page: HTTP/1.1 lets a server send them to any client."""
        code, n = self.param("code", 103, int), self.param("n", 1, int)
        self.wfile.write(b"HTTP/1.1 %d Interim\r\nLink: </assets/site.css>; rel=preload; as=style\r\n\r\n" % code * n)
        self.route_page()

    def route_error_big(self):
        """A 404 whose body is endless: the client must not read it."""
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self._pour(b"x" * 65536)

    # ------------------------------------------------------------------ redirects
    def route_redirect(self):
        """Redirect to ``to`` (absolute or relative) with ``code``; ``delay`` seconds first."""
        time.sleep(self.param("delay", 0.0, float))
        headers = [] if self.param("nolocation") == "1" else [("Location", self.param("to", "/page"))]
        self.send_simple(self.param("code", 302, int), b"", "text/html", headers)

    def route_redirect_raw(self):
        """A 302 whose Location is the bytes ``hex`` spells, as they are (not UTF-8, say)."""
        self.send_response(302)
        self.send_header("Content-Length", "0")
        self._headers_buffer.append(b"Location: " + bytes.fromhex(self.param("hex", "")) + b"\r\n")
        self.end_headers()

    def route_chain(self):
        """``/chain?n=N``: N redirects before /page."""
        n = self.param("n", 1, int)
        delay = self.param("delay", 0.0, float)
        time.sleep(delay)
        to = f"/chain?n={n - 1}&delay={delay}" if n > 1 else "/page"
        self.send_simple(302, b"", "text/html", [("Location", to)])

    def route_loop(self):
        self.send_simple(302, b"", "text/html", [("Location", "/loop")])

    def route_ping(self):
        self.send_simple(301, b"", "text/html", [("Location", "/pong")])

    def route_pong(self):
        self.send_simple(307, b"", "text/html", [("Location", "/ping")])

    # ------------------------------------------------------------------ slow
    def route_drip(self):
        """Slow-loris body: headers at once, then one byte every ``interval`` seconds."""
        interval = self.param("interval", 1.0, float)
        total = self.param("bytes", 1000, int)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if self.param("cl", "1") == "1":
            self.send_header("Content-Length", str(total))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        start = time.monotonic()
        for _ in range(total):
            if self.stopped() or time.monotonic() - start > _MAX_SLOW_SECONDS:
                break
            self.wfile.write(b"a")
            self.wfile.flush()
            time.sleep(interval)
        self.close_connection = True

    def route_drip_headers(self):
        """Slow-loris headers: the status line and headers one byte at a time."""
        interval = self.param("interval", 0.5, float)
        raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + b"X-Padding: " + b"p" * 200 + b"\r\n\r\nok"
        start = time.monotonic()
        for b in raw:
            if self.stopped() or time.monotonic() - start > _MAX_SLOW_SECONDS:
                break
            self.wfile.write(bytes([b]))
            self.wfile.flush()
            time.sleep(interval)
        self.close_connection = True

    def route_stall(self):
        """Accept the request, then say nothing (read timeout)."""
        end = time.monotonic() + self.param("seconds", 10.0, float)
        while time.monotonic() < end and not self.stopped():
            time.sleep(0.05)
        self.close_connection = True

    # ------------------------------------------------------------------ big / endless
    def _pour(self, block: bytes, chunked: bool = False):
        sent = 0
        start = time.monotonic()
        while sent < _MAX_ENDLESS_BYTES and not self.stopped() and time.monotonic() - start < _MAX_SLOW_SECONDS:
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            else:
                self.wfile.write(block)
            sent += len(block)
        self.close_connection = True

    def route_endless(self):
        """Endless body: cl=<n> sends that Content-Length (a lie), chunked=1 uses chunks, else none."""
        self.send_response(200)
        self.send_header("Content-Type", self.param("ct", "text/html"))
        chunked = self.param("chunked") == "1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif self.param("cl"):
            self.send_header("Content-Length", self.param("cl"))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self._pour(b"<p>" + b"x" * 65530 + b"</p>", chunked=chunked)

    def route_lying_short(self):
        """Content-Length says ``cl`` (small) but much more follows."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(self.param("cl", 10, int)))
        self.end_headers()
        self._pour(b"y" * 65536)

    def route_lying_long(self):
        """Content-Length says ``cl`` (large) but only a few bytes come, then the close."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(self.param("cl", 100_000, int)))
        self.end_headers()
        self.wfile.write(b"<p>short</p>")
        self.wfile.flush()
        self.close_connection = True

    def route_both_lengths(self):
        """The page in chunks of 20 bytes, with a Content-Length of ``cl`` too (a server's quirk: RFC 9112
        says the chunks frame the body and the length is ignored)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", self.param("cl", "10"))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.write_chunks(PAGE_HTML, 20)

    def route_huge_cl(self):
        """Content-Length declares far more than any cap, then stalls."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(10**12))
        self.end_headers()
        self.wfile.write(b"<p>")
        self.wfile.flush()
        self.route_stall()

    def route_bomb(self):
        """Zeros compressed with enc (gzip|deflate|rawdeflate|gzip,gzip): ``size`` decoded bytes;
        drop=N: without its last N bytes (a trailer)."""
        enc = self.param("enc", "gzip")
        payload = bomb_payload(enc, self.param("size", 200_000_000, int))
        payload = payload[: len(payload) - self.param("drop", 0, int)]
        headers = [("Content-Encoding", _wire_encoding(enc))]
        if self.param("chunked") == "1":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Encoding", _wire_encoding(enc))
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.write_chunks(payload, 4096)
        else:
            self.send_simple(200, payload, "text/html", headers)

    def route_unparsable_headers(self):
        """A page behind a header line without a colon and ``n`` headers of 60 KB: urllib3 reads it,
        and logs every header it could not parse."""
        head = b"HTTP/1.1 200 OK\r\na header line without a colon\r\n"
        head += b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 60_000) for i in range(self.param("n", 90, int)))
        head += b"Content-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(PAGE_HTML)
        self.wfile.write(head + PAGE_HTML)
        self.close_connection = True

    def route_bad_gzip(self):
        self.send_simple(200, b"\x1f\x8b\x08\x00 this is not gzip at all" * 10, "text/html", [("Content-Encoding", "gzip")])

    def route_encoding(self):
        """A body with an arbitrary Content-Encoding (e.g. br) the client did not ask for."""
        self.send_simple(200, b"\x0b\x02\x80hello\x03", "text/html", [("Content-Encoding", self.param("enc", "br"))])

    def route_binary(self):
        """Binary content type; the body is big and slow so reading it would show."""
        self.send_response(200)
        self.send_header("Content-Type", self.param("ct", "application/octet-stream"))
        self.send_header("Content-Length", str(50_000_000))
        self.end_headers()
        self.wfile.write(b"\x89PNG\r\n\x1a\n" + os.urandom(1024))
        self.wfile.flush()
        self.route_stall()

    # ------------------------------------------------------------------ broken
    def route_reset(self):
        """Reset the connection (RST) instead of answering."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def route_close(self):
        """Close the connection without a word."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def route_garbage(self):
        """Not HTTP at all."""
        self.wfile.write(b"SSH-2.0-OpenSSH_9.0\r\n" + b"\x00\xff" * 100)
        self.wfile.flush()
        self.close_connection = True


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, family, tls_context):
        self.address_family = family
        self.tls_context = tls_context
        self.requests_seen: list[dict] = []
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def record(self, handler):
        with self._lock:
            self.requests_seen.append(
                {"path": handler.path, "headers": dict(handler.headers.items()), "client": handler.client_address[0]}
            )

    def finish_request(self, request, client_address):
        if self.tls_context is not None:
            request.settimeout(10)
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):  # quiet
        pass


class HostileServer:
    """``with HostileServer() as srv: srv.url("/page")``; ``srv.requests`` lists what arrived."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None):
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.sni_seen: list[str | None] = []
            context.sni_callback = lambda sock, name, ctx: self.sni_seen.append(name)
        self.scheme = "https" if tls else "http"
        self._server = _ThreadingServer((host, port), family, context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> "HostileServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stop_event.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def netloc(self) -> str:
        return f"{url_host(self.host)}:{self.port}"

    def url(self, path: str = "/page", host: str | None = None) -> str:
        return f"{self.scheme}://{url_host(host or self.host)}:{self.port}{path}"

    @property
    def requests(self) -> list[dict]:
        return list(self._server.requests_seen)

    def clear(self) -> None:
        self._server.requests_seen.clear()


def redirect_path(to: str, code: int = 302) -> str:
    return f"/redirect?code={code}&to={quote(to, safe='')}"


class Canary:
    """A listener that records (and at once closes) every connection made to it.

    ``hits`` first takes whatever completed connections still wait in the accept queue,
    so a connection made before the check is never missed.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self._hits: list[tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _accept_once(self) -> bool:
        try:
            conn, peer = self._sock.accept()
        except (socket.timeout, BlockingIOError):
            return False
        except OSError:
            return False
        with self._lock:
            self._hits.append(peer)
        conn.close()
        return True

    def _loop(self):
        while not self._stop.is_set():
            self._accept_once()

    @property
    def hits(self) -> list[tuple]:
        while self._accept_once():
            pass
        with self._lock:
            return list(self._hits)

    def reset(self) -> None:
        _ = self.hits
        with self._lock:
            self._hits.clear()

    @property
    def netloc(self) -> str:
        return f"{url_host(self.host)}:{self.port}"

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{url_host(host or self.host)}:{self.port}{path}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Blackhole:
    """A listener whose accept queue is full: further connects time out (SYNs are dropped)."""

    def __init__(self, host: str = "127.0.0.1"):
        self._sock = socket.socket()
        self._sock.bind((host, 0))
        self._sock.listen(0)
        self.host, self.port = host, self._sock.getsockname()[1]
        self._fillers = []
        for _ in range(4):
            c = socket.socket()
            c.settimeout(0.2)
            try:
                c.connect((host, self.port))
            except OSError:
                pass
            self._fillers.append(c)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self):
        for c in self._fillers:
            c.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def refused_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_tls_files(directory: str, hostname: str = "localhost") -> dict | None:
    """A throwaway CA and a certificate for ``hostname`` signed by it; None without openssl.

    Returns paths: ca (CA certificate), cert/key (server), self_cert/self_key (self-signed).
    """
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    p = lambda name: os.path.join(directory, name)  # noqa: E731

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test CA",
        "-keyout", p("ca.key"), "-out", p("ca.pem"),
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hostname}",
        "-keyout", p("server.key"), "-out", p("server.csr"))
    with open(p("ext.cnf"), "w") as f:
        f.write(f"subjectAltName=DNS:{hostname}\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "2", "-out", p("server.pem"), "-extfile", p("ext.cnf"))
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={hostname}",
        "-addext", f"subjectAltName=DNS:{hostname}", "-keyout", p("self.key"), "-out", p("self.pem"))
    return {
        "ca": p("ca.pem"),
        "cert": p("server.pem"),
        "key": p("server.key"),
        "self_cert": p("self.pem"),
        "self_key": p("self.key"),
    }


# --------------------------------------------------------------------------- pytest fixtures
import pytest  # noqa: E402  (below the servers: they need no pytest)

HAS_V6 = ipv6_available()
HAS_127_2 = bindable("127.0.0.2")


@pytest.fixture(scope="module")
def srv():
    with HostileServer("127.0.0.1") as server:
        yield server


@pytest.fixture(scope="module")
def canary():
    with Canary("127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def canary2():
    if not HAS_127_2:
        pytest.skip("127.0.0.2 is not bindable here")
    with Canary("127.0.0.2") as c:
        yield c


@pytest.fixture(scope="module")
def canary6():
    if not HAS_V6:
        pytest.skip("no IPv6 loopback here")
    with Canary("::1") as c:
        yield c


@pytest.fixture(autouse=True)
def tripwire(monkeypatch):
    """Block (and record) any connect() to a non-loopback address; fail the test if one happens."""
    attempts: list = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        try:
            ip = ipaddress.ip_address(str(host).split("%")[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            loopback = ip.is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            attempts.append(address)
            raise ConnectionRefusedError(111, "tripwire: non-loopback connect blocked by the test")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts
    assert attempts == [], f"a non-loopback connection was attempted: {attempts}"


@pytest.fixture(autouse=True)
def fresh_canaries(request):
    for name in ("canary", "canary2", "canary6"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    yield
