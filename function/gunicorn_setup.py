"""gunicorn as functions-framework runs it, with the limits and answers of the rest of the function.

functions-framework starts gunicorn itself and offers no setting for it, so ``install()``, called in
the master before it forks, changes five things:

- **Refusals are JSON.** gunicorn refuses a request it cannot parse (a NUL in a header, a negative
  Content-Length, `Expect: 200-ok`, headers over 8 KB) before the function sees it, with a small
  HTML page written by ``gunicorn.util.write_error``: that one function is replaced.
- **Request lines are capped** at gunicorn's largest limit, 8,190 bytes (functions-framework sets
  none): gunicorn reads a line by copying all of it again for each 8 KB that arrives, so a 40 MB
  line had kept a core busy for two minutes before the function could refuse it.
- **Slow clients lose their thread** (``DeadlineWorker``): a request's head must arrive within
  CLIENT_HEAD_SECONDS and the whole exchange end within CLIENT_REQUEST_SECONDS. gunicorn's
  threaded worker reads a request that has begun with no time limit, so eight connections that
  each sent one byte had held every thread, and /healthz, for as long as they stayed open.
- **No control socket.** gunicorn's management socket, unused here, had been made in ~/.gunicorn: a
  write outside /tmp at start, and an ERROR in the log where the home is read-only.
- **Its own log lines follow LOG_FORMAT.** gunicorn logs through handlers of its own, not the root
  logger's: under LOG_FORMAT=json its "WORKER TIMEOUT", "Perhaps out of memory?" and a worker's
  traceback had stayed text, without a severity on Cloud Run, a traceback an entry a line.
"""

import contextlib
import http
import json
import logging
import socket
import time

from gunicorn import glogging, util
from gunicorn.workers.gthread import ThreadWorker

from .app import API_HEADERS
from .errors import ApiError
from .logformat import JsonFormatter

log = logging.getLogger("related")

CODES = {
    400: "bad_request",
    403: "forbidden",
    408: "request_timeout",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    501: "unsupported_transfer_coding",
}
MESSAGE_CHARS = 300  # gunicorn's message can quote a whole 8 KB header
REQUEST_LINE_BYTES = 8190  # gunicorn's largest limit (0 is none)
# CLIENT_HEAD_SECONDS and CLIENT_REQUEST_SECONDS, set by install(): counted from the moment a thread
# takes the connection, gunicorn's own wait of up to 5 s for a first byte included
HEAD_SECONDS = 10.0
REQUEST_SECONDS = 60.0


def write_json_error(sock, status_int, reason, mesg):
    util.write_nonblock(sock, json_error_bytes(status_int, reason, mesg))


def json_error_bytes(status_int, reason, mesg):
    """gunicorn's refusal as a whole HTTP answer with a JSON error body."""
    # the status's own phrase where it has one, in the status line and a message gunicorn left empty:
    # gunicorn gives its 501 (a transfer coding) "Bad Request"
    with contextlib.suppress(ValueError):
        reason = http.HTTPStatus(status_int).phrase
    message = (mesg or reason)[:MESSAGE_CHARS]
    if status_int == 403:  # a proxy or TLS handshake gunicorn does not allow
        message = f"refused before the function read it: {message}"
    elif status_int == 414:  # well-formed, only long: what to do instead, as the function's own 414 says
        message = (f"refused before the function read it: the request line is over {REQUEST_LINE_BYTES} bytes "
                   "(POST long text to / as JSON)")
    elif status_int != 500:  # the rest are the client's request, not a fault of ours
        message = f"refused before the function read it (malformed HTTP): {message}"
    error = ApiError(message, status=status_int, code=CODES.get(status_int, "bad_request"))
    body = json.dumps(error.to_json(), ensure_ascii=True).encode() + b"\n"
    headers = {"Connection": "close", "Content-Type": "application/json", **API_HEADERS,
               "Content-Length": str(len(body))}
    head = f"HTTP/1.1 {status_int} {reason}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


class DeadlineWorker(ThreadWorker):
    """gunicorn's threaded worker, whose main loop (once a second) cuts the connections of threads
    still reading a request's head after HEAD_SECONDS, answering 408, or still busy with the
    request after REQUEST_SECONDS (a slow body, or an answer the client does not read). A read or
    write blocked on a cut connection returns at once, and its thread is free again; a thread still
    working on the answer finishes it into the closed connection (CLIENT_REQUEST_SECONDS is checked
    against FETCH_DEADLINE at start). HTTP/2, which gunicorn serves only when configured to, is not
    served here."""

    def init_process(self):
        # connection -> (monotonic time a thread took it, still reading the head). No lock on the
        # requests' path: each step is one dict operation, atomic under the GIL, and whoever pops
        # an entry owns it
        self._taken = {}
        self._next_check = 0.0
        super().init_process()  # runs the worker's loop

    def handle(self, conn):
        self._taken[conn] = (time.monotonic(), True)
        try:
            return super().handle(conn)
        finally:
            self._taken.pop(conn, None)

    def handle_request(self, req, conn):
        taken = self._taken.pop(conn, None)
        if taken is None:  # cut as its head arrived
            return False
        self._taken[conn] = (taken[0], False)
        return super().handle_request(req, conn)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_check:  # the loop turns for every event; once a second is enough
            return
        self._next_check = now + 1
        for conn, (taken, head) in list(self._taken.items()):
            if now - taken < (HEAD_SECONDS if head else REQUEST_SECONDS):
                continue
            entry = self._taken.pop(conn, None)
            if entry is None:  # its thread is done with it
                continue
            taken, head = entry
            if now - taken < (HEAD_SECONDS if head else REQUEST_SECONDS):  # its head arrived meanwhile
                self._taken.setdefault(conn, entry)
                continue
            if head:  # nothing of an answer is written yet
                answer = json_error_bytes(408, "Request Timeout", f"the request's head did not arrive "
                                          f"within {HEAD_SECONDS:g} s (CLIENT_HEAD_SECONDS)")
                try:  # without waiting (a client that sends nothing may read nothing either), and
                    # without making the socket non-blocking under the thread reading it
                    conn.sock.send(answer, socket.MSG_DONTWAIT)
                except OSError:
                    pass
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class JsonLogger(glogging.Logger):
    """gunicorn's logger, each of its lines one JSON object (LOG_FORMAT=json)."""

    def _set_handler(self, log, output, fmt, stream=None):
        super()._set_handler(log, output, JsonFormatter(), stream)


def install(settings, log_format="text"):
    """Before gunicorn forks its workers (function/main.py, at import); ``log_format`` is LOG_FORMAT's."""
    from functions_framework._http import gunicorn as framework

    global HEAD_SECONDS, REQUEST_SECONDS
    HEAD_SECONDS, REQUEST_SECONDS = settings.client_head_seconds, settings.client_request_seconds
    util.write_error = write_json_error
    configure = framework.GunicornApplication.load_config
    if getattr(configure, "related_content", False):
        return

    def load_config(application):
        configure(application)
        application.cfg.set("limit_request_line", REQUEST_LINE_BYTES)
        # the control socket: see the module's docstring
        application.cfg.set("control_socket_disable", True)
        if log_format == "json":
            application.cfg.set("logger_class", f"{__name__}.JsonLogger")
        # THREADS=1 keeps gunicorn's sync worker (whose worker timeout CLOUD_RUN_TIMEOUT_SECONDS sets), and
        # THREADED_TIMEOUT_ENABLED functions-framework's own threaded worker: neither has these deadlines
        if application.cfg.worker_class_str == "gthread" or (application.cfg.worker_class_str == "sync"
                                                             and application.cfg.threads > 1):
            application.cfg.set("worker_class", f"{__name__}.DeadlineWorker")
        cfg = application.cfg
        log.info("listening on %s: %d worker%s x %d thread%s (WORKERS, THREADS)", ", ".join(cfg.bind), cfg.workers,
                 "" if cfg.workers == 1 else "s", cfg.threads, "" if cfg.threads == 1 else "s")

    load_config.related_content = True
    framework.GunicornApplication.load_config = load_config
