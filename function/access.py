"""Who may read the figures: /stats and /dashboard, behind STATS_TOKEN when it is set.

A site's traffic and click-through are its owner's: a competitor who knows the function's
address could read them. Everything readers' browsers use (answers, /click, /seen, the widget,
the try-it page) stays open; only the figures ask for the token:

    Authorization: Bearer <token>                 scripts, curl
    Authorization: Basic base64(<any>:<token>)    a browser's prompt: any user name, the token as password

Both routes answer a 401 under one realm, so a browser signed in on /dashboard sends the same
credentials to /stats (the dashboard's link to it) without asking again.
"""

import base64
import binascii
import hmac
import logging

from .config import read_secret
from .errors import ApiError

log = logging.getLogger("related")

MIN_TOKEN_BYTES = 16
REALM = "related-content figures"
# charset: a browser then encodes a password past ASCII as UTF-8, as the token is read
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}


def load_token(settings):
    """STATS_TOKEN, else the file STATS_TOKEN_FILE, as bytes; b"": the figures are open. Spaces and
    line ends at either end are dropped (said): a copy-paste's, which matched HTTP Basic's password
    but never a Bearer token, read without them (a presented password loses them too)."""
    token = read_secret("STATS_TOKEN", settings.stats_token, settings.stats_token_file, MIN_TOKEN_BYTES,
                        strip=True)
    if settings.stats_token and settings.stats_token.strip() != settings.stats_token:
        log.warning("STATS_TOKEN has spaces or line ends at its start or end: dropped, the token is what is "
                    "between them (Authorization: Bearer cannot carry them; HTTP Basic's password is read "
                    "without them)")
    return token


def presented_token(request):
    """The token the request's Authorization gives (Bearer's, or Basic's password), as bytes; None
    for none. Header values come decoded as Latin-1: encoded back, they are the bytes sent."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    value = value.strip().encode("latin-1")
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            user_and_password = base64.b64decode(value, validate=True)
        except binascii.Error:
            return None
        # the user name is anyone's; the password's spaces and line ends at its ends are dropped, as the
        # token's are: curl -u "owner:$STATS_TOKEN" from the shell it was pasted into sends them
        return user_and_password.partition(b":")[2].strip()
    return None


def may_read_figures(token, request):
    """Whether the request may read the figures: ``token`` is b"" (open) or the request presents it."""
    if not token:
        return True
    given = presented_token(request)
    # compare_digest: the time taken says nothing of how much of a guess was right
    return given is not None and hmac.compare_digest(given, token)


def require_token(token, request):
    """Nothing when ``token`` is b"" (open) or the request presents it; else a 401 whose challenge
    makes a browser prompt. The token is never in a message or a log."""
    if may_read_figures(token, request):
        return
    raise ApiError("the figures are private: give the STATS_TOKEN as the password of HTTP Basic (a browser asks "
                   "for it; any user name), or as Authorization: Bearer <token>", status=401, code="not_authorized",
                   headers=CHALLENGE)
