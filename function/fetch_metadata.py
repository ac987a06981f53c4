"""Whether a click link was followed by a reader's browser, from the Fetch Metadata request headers.

Browsers send, on a navigation to an https (or loopback) address: Sec-Fetch-Site (cross-site from a
site's page), Sec-Fetch-Mode: navigate, and Sec-Fetch-User: ?1 when a user activation started it (a
click, a middle click, Ctrl+click, Enter, a link's menu: Chromium 156 measured, Firefox's own tests).
A script or crawler that gives itself a browser's User-Agent sends none of them, so its click had
counted as a reader's. Safari sends the first three since 16.4 but never Sec-Fetch-User
(mdn/browser-compat-data#27928): its clicks are judged without it.

Every click records which signals came (``signals``, 3 characters: its ``sec_fetch``); a click that
claims a browser that sends them but came without them is counted apart (``unverified``): kept, never
dropped.
"""

import ipaddress
import re
from urllib.parse import urlsplit

# one character each, in this order: Sec-Fetch-Site, Sec-Fetch-Mode, Sec-Fetch-User ("-": not sent,
# "?": a value no spec defines). "xn1" is a reader's click on a site's page.
SITES = {"cross-site": "x", "same-site": "s", "same-origin": "o", "none": "n"}
MODES = {"navigate": "n", "cors": "c", "no-cors": "k", "same-origin": "s", "websocket": "w"}
USERS = {"?1": "1"}

# The first version of each family that sends Sec-Fetch-Site and -Mode on navigations: Chrome 76 (and
# what names Chromium's version: Edge, Opera, Brave, Samsung Internet), Firefox 90, Safari 16.4.
CHROMIUM = re.compile(r"\bChrome/(\d+)\.")
FIREFOX = re.compile(r"\bFirefox/(\d+)\.")
SAFARI = re.compile(r"\bVersion/(\d+)\.(\d+)\b[^()]*\bSafari/")  # macOS and iOS Safari ("Version/17.1 Mobile/...")
ANDROID_WEBVIEW = re.compile(r";\s*wv\)")  # an app's WebView: the app may load a link itself, with no activation


def browser_family(user_agent):
    """"chromium", "firefox" or "safari" when ``user_agent`` claims a version that sends Fetch Metadata,
    else None: an older browser, one this rule does not know (iOS's Chrome and Firefox, CriOS and FxiOS,
    are WebKit without Safari's Version/), an app's WebView, or no browser at all."""
    if not user_agent or ANDROID_WEBVIEW.search(user_agent):
        return None
    if match := CHROMIUM.search(user_agent):
        return "chromium" if int(match[1]) >= 76 else None
    if match := FIREFOX.search(user_agent):
        return "firefox" if int(match[1]) >= 90 else None
    if match := SAFARI.search(user_agent):
        return "safari" if (int(match[1]), int(match[2])) >= (16, 4) else None
    return None


def _header(headers, name):
    value = headers.get(name)
    return None if value is None else value.strip().lower()


def signals(headers):
    """The Fetch Metadata a request came with, as a click event keeps it: "xn1", "---", ..."""
    site, mode, user = (_header(headers, name) for name in ("Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-User"))
    return "".join("-" if value is None else codes.get(value, "?")
                   for value, codes in ((site, SITES), (mode, MODES), (user, USERS)))


def trustworthy(base_url):
    """Whether browsers send Fetch Metadata to the click links of ``base_url``: only to https, and to
    loopback addresses (a plain http address gets none from any browser: its clicks are not judged)."""
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unverified(user_agent, fetch_signals, link_trustworthy):
    """Why a click is not counted as a reader's, or None: its User-Agent claims a browser that sends
    Fetch Metadata to this link, and it came with none ("no_fetch_metadata"), not as a navigation
    ("not_a_navigation": a script's fetch, an image), or, from Chromium or Firefox, with no user
    activation ("no_user_activation": a script following the link by itself)."""
    family = browser_family(user_agent)
    if family is None or not link_trustworthy:
        return None
    site, mode, user = fetch_signals
    if site == "-" and mode == "-":
        return "no_fetch_metadata"
    if mode != MODES["navigate"]:
        return "not_a_navigation"
    if family != "safari" and user != USERS["?1"]:
        return "no_user_activation"
    return None
