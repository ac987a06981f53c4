"""gunicorn's own refusals, answered as JSON like every other error.

gunicorn refuses a request it cannot parse (a NUL in a header, a negative
Content-Length, `Expect: 200-ok`, headers over 8 KB) before the function
sees it, and writes a small HTML page through ``gunicorn.util.write_error``.
gunicorn has no setting for that page, so ``install()`` replaces the one
function it calls; the worker's status and message are kept as they are.
"""

import json

from gunicorn import util

from .app import API_HEADERS
from .errors import ApiError

CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    501: "unsupported_transfer_coding",
}
MESSAGE_CHARS = 300  # gunicorn's message can quote a whole 8 KB header


def write_json_error(sock, status_int, reason, mesg):
    message = (mesg or reason)[:MESSAGE_CHARS]
    if status_int == 403:  # a proxy or TLS handshake gunicorn does not allow
        message = f"refused before the function read it: {message}"
    elif status_int != 500:  # the rest are the client's request, not a fault of ours
        message = f"refused before the function read it (malformed HTTP): {message}"
    error = ApiError(message, status=status_int, code=CODES.get(status_int, "bad_request"))
    body = json.dumps(error.to_json(), ensure_ascii=True).encode() + b"\n"
    headers = {"Connection": "close", "Content-Type": "application/json", **API_HEADERS,
               "Content-Length": str(len(body))}
    head = f"HTTP/1.1 {status_int} {reason}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    util.write_nonblock(sock, head.encode("latin-1") + b"\r\n" + body)


def install():
    util.write_error = write_json_error
