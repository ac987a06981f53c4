"""Processes the benchmark runs: functions-framework servers, nx-27017, a loopback page server."""

import http.client
import http.server
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

from function.devserver import free_port, function_command, stop_group

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "ours": ROOT / "function" / "main.py",
    "baseline": ROOT / "bench" / "baseline" / "main.py",
    "hello": ROOT / "bench" / "hello" / "main.py",
    "without": ROOT / "bench" / "without" / "main.py",  # ours without some steps (bench.step_costs)
}


class Server:
    """One functions-framework process (gunicorn underneath) serving a target."""

    def __init__(self, kind, env):
        self.kind = kind
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "EVENT_FLUSH_SECONDS": "1", **env, "PORT": str(self.port)}
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            function_command(TARGETS[kind]),
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        self._conn = None

    def wait_for_200(self, path, timeout=600):
        """Seconds from process start to the first 200 answer to ``path`` (polled every 5 ms)."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.process.stderr.read().decode()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                conn.close()
                if response.status == 200:
                    return time.perf_counter() - self.started
                raise RuntimeError(f"{self.kind} answered {response.status}: {body[:300]!r}")
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                time.sleep(0.005)
        raise RuntimeError(f"{self.kind} gave no 200 within {timeout} s")

    def get(self, path):
        """(status, seconds, parsed JSON or None) over one kept-alive connection."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        started = time.perf_counter()
        try:
            self._conn.request("GET", path)
            response = self._conn.getresponse()
            body = response.read()
        except (ConnectionError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise
        seconds = time.perf_counter() - started
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        return response.status, seconds, data

    def pids(self):
        from bench.procmem import tree

        return tree(self.process.pid)

    def stop(self):
        if self._conn is not None:
            self._conn.close()
        stop_group(self.process)


def text_path(text, k=10):
    return f"/?text={quote(text)}&k={k}"


def url_path(url, k=10):
    return f"/?url={quote(url, safe='')}&k={k}"


class PageServer:
    """Loopback HTTP server answering any path with an article page (for fetched-URL figures):
    ``html``, or ``html(path)`` when it is a function."""

    def __init__(self, html):
        page_of = html if callable(html) else (lambda path: html)
        self.hits = 0
        pages = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                pages.hits += 1
                body = page_of(self.path).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def article_html(title, paragraphs):
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title></head>"
            f"<body><nav><a href=/>Home</a> <a href=/about>About</a></nav><article><h1>{title}</h1>{body}"
            f"</article><footer>Copyright example.org</footer></body></html>")
