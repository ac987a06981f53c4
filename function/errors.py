"""The one error type the handler turns into a JSON answer.

Every failure a caller can cause is raised as an ``ApiError`` with an HTTP
status, a stable machine-readable ``code`` and a human ``message``; the
handler renders it as ``{"error": {"code": ..., "message": ...}}``.
"""


# A page's server answering for its own state, not the page's (timeout, too early, too many
# requests): asked again later, by the crawler and by serving alike.
NOT_NOW_STATUSES = frozenset({408, 425, 429})


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message, *, status=None, code=None, headers=None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}  # sent with the answer (a 503's Retry-After)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def to_json(self):
        return {"error": {"code": self.code, "message": self.message}}

    def __repr__(self):
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.message!r})"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class FetchError(ApiError):
    """The page asked for could not be fetched (the caller's URL or its server)."""

    status = 502
    code = "fetch_failed"
    upstream_status = None  # the status the page's server answered, when that is the failure
