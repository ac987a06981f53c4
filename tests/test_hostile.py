"""Hostile input at the API, end to end through the function.

Every case goes through functions-framework (its test client, or a real
`functions-framework` process where the HTTP server itself matters) and asserts
the HTTP status, the error ``code`` and that the body is JSON. SSRF vectors
also assert that the canary listeners saw no connection; in-process, the
``tripwire`` fixture of test_fetch.py (reused here) blocks and records any
connect() to a non-loopback address, so nothing can leave this machine.

The fetcher itself is tested case by case in test_fetch.py; here the question
is whether the same refusals reach the caller as clear 4xx/5xx JSON answers,
and whether parameters, bodies, click links and headers that a caller controls
can ever produce a 500 (they must not).
"""

import gzip
import http
import json
import logging
import secrets
import socket
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
import requests

import hostile_servers as hs
from conftest import PAGES, FunctionProcess, make_client, wait_for_events, with_database
from function import clicks
from function.devserver import free_port
from hostile_servers import canary, fresh_canaries, srv, tripwire  # noqa: F401 (fixtures)
from test_fetch import LOOPBACK_SPELLINGS, NON_PUBLIC

CLICK_KEY = b"hostile-" + secrets.token_hex(16).encode()
FETCH_DEADLINE = 2.0
# A hostile page must be answered within the fetch deadline; this bound is
# generous (the servers below would drip or pour for 20 s) and only proves the
# deadline is enforced, it does not measure speed.
BOUNDED = FETCH_DEADLINE + 6
HAS_V6, HAS_127_2 = hs.HAS_V6, hs.HAS_127_2


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def blackhole():
    with hs.Blackhole() as hole:
        yield hole


@pytest.fixture(scope="module")
def refused():
    return hs.refused_port()


@pytest.fixture(scope="module")
def base_env(model_store, mongo_server):
    return {
        "MODEL_STORE": str(model_store),
        "DEFAULT_CORPUS": "wiki",
        "MONGODB": with_database(mongo_server, "hostile" + secrets.token_hex(6)),
        "CLICK_SECRET": CLICK_KEY.decode(),
        "FETCH_CONNECT_TIMEOUT": "1",
        "FETCH_READ_TIMEOUT": "1",
        "FETCH_DEADLINE": str(FETCH_DEADLINE),
        "FETCH_ALLOW_PRIVATE_HOSTS": "",  # the production default: no private address at all
        # the canaries listen on random ports: any port, so that the address check is what refuses
        # them (FETCH_PORTS' own refusal is tested with its default, test_a_port_outside_fetch_ports_...)
        "FETCH_PORTS": "any",
    }


@pytest.fixture(scope="module")
def strict(base_env):
    """The function as deployed: FETCH_ALLOW_PRIVATE_HOSTS empty."""
    return make_client(base_env)


@pytest.fixture(scope="module")
def lenient(base_env, srv, pages, blackhole, refused):
    """Only the hostile test servers' exact host:port are exempt from the public-address check."""
    allowed = [srv.netloc, f"127.0.0.1:{pages.port}", f"127.0.0.1:{blackhole.port}", f"127.0.0.1:{refused}"]
    return make_client({**base_env, "FETCH_ALLOW_PRIVATE_HOSTS": ",".join(allowed)})


def assert_error(response, status, code):
    """Assert a JSON error answer with this status and code (``code`` may be a set)."""
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    assert response.mimetype == "application/json"
    error = json.loads(response.get_data())["error"]
    assert error["code"] in ({code} if isinstance(code, str) else code), error
    assert error["message"]
    return error


def ask(client, method, url):
    if method == "GET":
        return client.get("/", query_string={"url": url})
    return client.post("/", json={"url": url})


# --------------------------------------------------------------------------- SSRF: URL forms
STATUS_OF = {"forbidden_address": 403, "invalid_url": 400}
# the API reads an address typed without a scheme as https://, so it is refused for its host instead
API_LOOPBACK_SPELLINGS = [(template, "forbidden_address" if "/" not in template else code)
                          for template, code in LOOPBACK_SPELLINGS]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("template,code", API_LOOPBACK_SPELLINGS)
def test_loopback_url_forms_are_refused_and_never_connect(strict, canary, method, template, code):
    assert_error(ask(strict, method, template.format(p=canary.port)), STATUS_OF[code], code)
    assert canary.hits == []


@pytest.mark.parametrize("host", NON_PUBLIC)
def test_non_public_addresses_are_refused(strict, tripwire, host):
    assert_error(ask(strict, "GET", f"http://{host}/latest/meta-data/"), 403, "forbidden_address")
    assert tripwire == []


@pytest.mark.parametrize("template", ["http://[::1]:{p}/", "http://[::]:{p}/", "http://[0:0:0:0:0:0:0:1]:{p}/"])
def test_ipv6_loopback_is_refused(strict, template):
    if not HAS_V6:
        pytest.skip("no IPv6 loopback here")
    with hs.Canary("::1") as six:
        assert_error(ask(strict, "GET", template.format(p=six.port)), 403, "forbidden_address")
        assert six.hits == []


@pytest.mark.parametrize("template", ["http://127.0.0.2:{p}/", "http://2130706434:{p}/", "http://127.2:{p}/"])
def test_other_loopback_addresses_are_refused(strict, template):
    if not HAS_127_2:
        pytest.skip("127.0.0.2 is not bindable here")
    with hs.Canary("127.0.0.2") as two:
        assert_error(ask(strict, "GET", template.format(p=two.port)), 403, "forbidden_address")
        assert two.hits == []


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "gopher://127.0.0.1:70/_stats", "dict://127.0.0.1:11211/stats", "ftp://127.0.0.1/",
    "javascript:alert(1)", "data:text/html,<p>hi</p>", "jar:http://127.0.0.1/x.jar!/", "ldap://127.0.0.1/",
    "http://", "http:///etc/passwd", "http://[::1/", "http://exa mple.com/", "http://example.com:99999/",
    "http://example.com/" + "a" * 2100,
])
def test_non_http_and_malformed_urls_are_400(strict, tripwire, url):
    assert_error(ask(strict, "GET", url), 400, "invalid_url")
    assert tripwire == []


def test_corpus_member_spelled_with_credentials_is_not_a_member(strict, canary):
    # Host part is the canary, user part the corpus's host: refused before connecting.
    assert_error(ask(strict, "GET", f"https://en.wikipedia.org@127.0.0.1:{canary.port}/wiki/Apollo_11"), 400, "invalid_url")
    assert canary.hits == []


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_credentials_are_refused_for_corpus_members_too(strict, method):
    # the key of this URL is a corpus member's, which needs no fetch: refused all the same
    assert ask(strict, method, "https://en.wikipedia.org/wiki/Apollo_11").status_code == 200
    assert_error(ask(strict, method, "https://user:pw@en.wikipedia.org/wiki/Apollo_11"), 400, "invalid_url")


@pytest.mark.parametrize("url", ["en.wikipedia.org/wiki/Apollo_11", "EN.wikipedia.org/wiki/Apollo_11/",
                                 # a scheme further on is not this address's (the tracking parameter is dropped)
                                 "en.wikipedia.org/wiki/Apollo_11?utm_source=https://news.example/a"])
def test_an_address_typed_without_a_scheme_is_read_as_https(strict, url):
    answer = ask(strict, "GET", url).get_json()
    assert answer["source"] == "corpus" and "Apollo 11" not in [r["title"] for r in answer["results"]]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<p>moon</p>", "mailto:a@example.com"])
def test_other_schemes_are_named_as_such(strict, url):
    assert "only http and https" in assert_error(ask(strict, "GET", url), 400, "invalid_url")["message"]


def test_credentials_are_refused_for_a_cached_page_too(lenient, pages):
    url = pages.url("/moon-landing.html")
    assert ask(lenient, "GET", url).get_json()["source"] == "fetched"
    assert ask(lenient, "GET", url).get_json()["page"]["cached"] is True
    assert_error(ask(lenient, "GET", url.replace("http://", "http://user:pw@")), 400, "invalid_url")


# --------------------------------------------------------------------------- SSRF: redirects
@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_to_the_canary_is_refused(lenient, srv, canary, code):
    srv.clear()
    assert_error(ask(lenient, "GET", srv.url(hs.redirect_path(canary.url("/admin"), code))), 403, "forbidden_address")
    assert canary.hits == []
    assert len(srv.requests) == 1


@pytest.mark.parametrize("to,status,code", [
    ("http://localhost:{p}/", 403, "forbidden_address"),
    ("http://2130706433:{p}/", 403, "forbidden_address"),
    ("http://[::ffff:127.0.0.1]:{p}/", 403, "forbidden_address"),
    ("http://0.0.0.0:{p}/", 403, "forbidden_address"),
    ("http://169.254.169.254/latest/meta-data/iam/", 403, "forbidden_address"),
    ("http://[fd00:ec2::254]/", 403, "forbidden_address"),
    ("http://10.0.0.1/", 403, "forbidden_address"),
    ("file:///etc/passwd", 422, "invalid_redirect"),
    ("gopher://127.0.0.1:{p}/_GET", 422, "invalid_redirect"),
    ("http://example.com@127.0.0.1:{p}/", 422, "invalid_redirect"),
])
def test_redirect_to_other_private_targets_is_refused(lenient, srv, canary, tripwire, to, status, code):
    assert_error(ask(lenient, "GET", srv.url(hs.redirect_path(to.format(p=canary.port)))), status, code)
    assert canary.hits == [] and tripwire == []


def test_allowed_test_server_does_not_open_other_ports_on_its_host(lenient, canary):
    """The exemption names host:port: the canary on the same host stays forbidden."""
    assert_error(ask(lenient, "GET", canary.url("/")), 403, "forbidden_address")
    assert canary.hits == []


# --------------------------------------------------------------------------- hostile pages
HOSTILE_PAGES = [
    # slow-loris, stalls, slow redirects: the fetch deadline answers 504
    ("/drip?interval=0.5&bytes=200", 504, "upstream_timeout"),
    ("/drip?interval=0.3&bytes=200&cl=0", 504, "upstream_timeout"),
    ("/drip-headers?interval=0.05", 504, "upstream_timeout"),
    ("/stall?seconds=10", 504, "upstream_timeout"),
    ("/chain?n=5&delay=0.7", 504, "upstream_timeout"),
    # endless, huge, lying, compressed bombs: the byte cap answers 422
    ("/endless", 422, "page_too_large"),
    ("/endless?chunked=1", 422, "page_too_large"),
    ("/endless?cl=100000000", 422, "page_too_large"),
    ("/huge-cl", 422, "page_too_large"),
    ("/bomb?enc=gzip&size=20000000", 422, "page_too_large"),
    ("/bomb?enc=deflate&size=20000000&chunked=1", 422, "page_too_large"),
    ("/bomb?enc=rawdeflate&size=20000000", 422, "page_too_large"),
    ("/bomb?enc=gzip,gzip&size=20000000", 422, "page_too_large"),
    # binary content: refused on its Content-Type, the body is not read
    ("/binary", 415, "unsupported_content_type"),
    ("/binary?ct=image/png", 415, "unsupported_content_type"),
    ("/ctype?ct=application/pdf", 415, "unsupported_content_type"),
    ("/ctype?ct=application/json", 415, "unsupported_content_type"),
    ("/ctype?ct=none", 415, "unsupported_content_type"),
    # the page's server fails or answers an error
    ("/status?code=404", 422, "upstream_status"),
    ("/status?code=410", 422, "upstream_status"),
    ("/error-big", 422, "upstream_status"),
    ("/status?code=500", 502, "upstream_status"),
    ("/status?code=503", 502, "upstream_status"),
    ("/status?code=304", 502, "upstream_invalid_response"),
    ("/reset", 502, "upstream_unreachable"),
    ("/close", 502, "upstream_unreachable"),
    ("/lying-long?cl=100000", 502, "upstream_unreachable"),
    ("/garbage", 502, "upstream_invalid_response"),
    ("/bad-gzip", 502, "upstream_invalid_response"),
    ("/encoding?enc=br", 502, "upstream_invalid_response"),
    ("/redirect?nolocation=1", 502, "upstream_invalid_response"),
    ("/loop", 422, "too_many_redirects"),
    ("/chain?n=6", 422, "too_many_redirects"),
]


@pytest.fixture(scope="module")
def _bombs_ready():
    for enc in ("gzip", "deflate", "rawdeflate", "gzip,gzip"):
        hs.bomb_payload(enc, 20_000_000)


@pytest.mark.parametrize("path,status,code", HOSTILE_PAGES)
def test_hostile_pages_get_a_bounded_clear_answer(lenient, srv, _bombs_ready, path, status, code):
    started = time.monotonic()
    assert_error(ask(lenient, "GET", srv.url(path)), status, code)
    assert time.monotonic() - started < BOUNDED


def test_a_page_of_unparsable_headers_costs_a_line_of_log_not_megabytes(lenient, srv, caplog):
    """urllib3 logs the headers it could not parse, with a traceback quoting them: 10 MB a request."""
    caplog.set_level(logging.WARNING)
    response = ask(lenient, "GET", srv.url("/unparsable-headers"))
    assert response.status_code == 415  # the headers after the broken line are lost, Content-Type with them
    logged = [record for record in caplog.records if record.name.startswith("urllib3")]
    assert logged and "Failed to parse headers" in logged[0].getMessage()
    assert sum(len(caplog.handler.format(record)) for record in logged) < 2_000


def test_unreachable_port_is_a_502(lenient, refused):
    assert_error(ask(lenient, "GET", f"http://127.0.0.1:{refused}/"), 502, "upstream_unreachable")


def test_connect_that_never_completes_is_a_504(lenient, blackhole):
    started = time.monotonic()
    assert_error(ask(lenient, "POST", blackhole.url("/")), 504, "upstream_timeout")
    assert time.monotonic() - started < BOUNDED


@pytest.mark.parametrize("path", ["/compressed?enc=gzip", "/compressed?enc=deflate&chunked=1", "/gzip-members"])
def test_compressed_small_pages_are_read(lenient, srv, path):
    # A tiny page: an answer (200) or "no article" / "no word the corpus knows" (422), never an error of the fetch.
    response = ask(lenient, "GET", srv.url(path))
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    if response.status_code == 422:
        assert_error(response, 422, {"no_article_text", "no_known_words"})


# --------------------------------------------------------------------------- broken HTML, bad encodings
ARTICLE = (PAGES / "moon-landing.html").read_bytes()
PARAGRAPHS = ARTICLE[ARTICLE.index(b"<p>"): ARTICLE.rindex(b"</p>") + 4]
MOON_TEXT = b" ".join(part.split(b"</p>")[0] for part in PARAGRAPHS.split(b"<p>")[1:])


def latin1_article():
    return b"<html><head><meta charset=utf-8></head><body>" + PARAGRAPHS.replace(b"Moon", b"M\xf6\xf6n") + b"</body></html>"


# (name, body, content type, must the article be found?)
BROKEN_PAGES = [
    ("empty", b"", "text/html", False),
    ("one_angle", b"<", "text/html", False),
    ("only_tags", b"<html><head></head><body></body></html>", "text/html", False),
    ("unclosed_everything", b"<html><body><div><p>" + MOON_TEXT, "text/html", True),
    ("no_html_no_body", PARAGRAPHS, "text/html", True),
    ("stray_closing_tags", b"</div></p></body></html>" + PARAGRAPHS + b"</html></html>", "text/html", True),
    ("deep_nesting", b"<div>" * 20000 + PARAGRAPHS + b"</div>" * 20000, "text/html", False),
    ("deep_unclosed_nesting", b"<span><b><i>" * 5000 + PARAGRAPHS, "text/html", False),
    ("unterminated_comment", PARAGRAPHS + b"<!-- never closed " + b"x" * 1000, "text/html", True),
    ("comment_swallows_all", b"<!--" + PARAGRAPHS, "text/html", False),
    ("script_only", b"<script>" + b"var a = 1;" * 10000 + b"</script>", "text/html", False),
    ("unclosed_script", b"<p>intro</p><script>" + PARAGRAPHS, "text/html", False),
    ("cdata_and_pi", b"<?xml version='1.0'?><?php echo 1 ?><![CDATA[" + PARAGRAPHS + b"]]>", "text/html", False),
    ("xml_decl_bogus_encoding", b"<?xml version='1.0' encoding='ebcdic-nope'?><html><body>" + PARAGRAPHS, "text/html", True),
    ("xhtml", b"<?xml version='1.0' encoding='utf-8'?><html xmlns='http://www.w3.org/1999/xhtml'><body>"
     + PARAGRAPHS + b"</body></html>", "application/xhtml+xml", True),
    ("frameset", b"<html><frameset><frame src='/a'><frame src='/b'></frameset></html>", "text/html", False),
    ("null_bytes", PARAGRAPHS.replace(b" the ", b" the\x00"), "text/html", True),
    ("control_characters", PARAGRAPHS.replace(b" ", b"\x01 \x0b", 40), "text/html", False),
    ("stray_control_character", PARAGRAPHS.replace(b" ", b"\x01 ", 40), "text/html", True),
    ("huge_attribute", b"<p title='" + b"a" * 1_000_000 + b"'>x</p>" + PARAGRAPHS, "text/html", True),
    ("many_attributes", b"<p " + b" ".join(b"a%d=1" % i for i in range(20000)) + b">x</p>" + PARAGRAPHS, "text/html", True),
    ("bad_entities", PARAGRAPHS.replace(b"Moon", b"&#0;&#xD800;&#99999999;&bogus;&amp"), "text/html", True),
    ("one_huge_paragraph", b"<p>" + b"moon landing " * 200_000 + b"</p>", "text/html", True),
    ("many_tiny_tags", b"<i>a</i>" * 200_000, "text/html", False),
    ("invalid_utf8", PARAGRAPHS.replace(b"Moon", b"Mo\xc3\x28n\xff\xfe"), "text/html; charset=utf-8", True),
    ("overlong_utf8", PARAGRAPHS.replace(b"Moon", b"\xc0\xafMoon\xe0\x80\xaf"), "text/html; charset=utf-8", True),
    ("encoded_surrogates", PARAGRAPHS.replace(b"Moon", b"\xed\xa0\x80Moon"), "text/html; charset=utf-8", True),
    ("latin1_declared_utf8", latin1_article(), "text/html; charset=utf-8", True),
    ("unknown_charset_header", PARAGRAPHS, "text/html; charset=x-no-such-charset", True),
    ("empty_charset_header", PARAGRAPHS, "text/html; charset=", True),
    ("utf16_declared_no_bom", PARAGRAPHS, "text/html; charset=utf-16", True),
    ("utf32_declared_odd_length", PARAGRAPHS + b"x", "text/html; charset=utf-32", True),
    ("utf7_declared", PARAGRAPHS, "text/html; charset=utf-7", True),
    # a Python codec, not a charset: "\ud800" had become a lone surrogate, and the page a 422
    ("raw_unicode_escape_declared", b"<p>\\ud800</p>" + PARAGRAPHS,
     "text/html; charset=raw-unicode-escape", True),
    ("meta_charset_bogus", b"<meta charset='\xff\xfe bogus'>" + PARAGRAPHS, "text/html", True),
    ("meta_charset_contradicts", b"<meta charset=shift_jis>" + PARAGRAPHS, "text/html; charset=koi8-r", True),
    ("utf16le_with_bom", b"\xff\xfe" + ("<html><body>" + PARAGRAPHS.decode() + "</body></html>").encode("utf-16-le"),
     "text/html", True),
    ("utf16_bom_odd_bytes", b"\xff\xfe" + PARAGRAPHS + b"\x00", "text/html", False),
    ("utf8_bom_then_latin1", b"\xef\xbb\xbf" + latin1_article(), "text/html", True),
    ("binary_as_html", bytes(range(256)) * 400, "text/html", False),
    ("random_bytes_as_html", bytes((i * 7919 + 13) % 256 for i in range(100_000)), "text/html", False),
    ("png_as_html", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50_000, "text/html", False),
    ("plain_text", MOON_TEXT, "text/plain; charset=utf-8", True),
    ("plain_text_binary", b"\x00\x01\x02\xff" * 10_000, "text/plain", False),
    ("rtl_and_zero_width", PARAGRAPHS.replace(b" ", "\u200b \u202e".encode(), 50), "text/html; charset=utf-8", True),
    ("zalgo", PARAGRAPHS.replace(b"o", "o\u0335\u0321\u0322\u0347".encode(), 200), "text/html; charset=utf-8", False),
]


@pytest.mark.parametrize("name,body,content_type,has_article", BROKEN_PAGES, ids=[case[0] for case in BROKEN_PAGES])
def test_broken_html_and_bad_encodings_never_fail(lenient, pages, name, body, content_type, has_article):
    url = pages.add(f"/broken/{name}", body, content_type=content_type)
    response = ask(lenient, "GET", url)
    if has_article:
        assert response.status_code == 200, response.get_data(as_text=True)[:400]
        answer = response.get_json()
        assert answer["source"] == "fetched" and answer["results"]
    else:
        assert response.status_code in (200, 422), response.get_data(as_text=True)[:400]
        if response.status_code == 422:
            assert_error(response, 422, {"no_article_text", "no_known_words"})
        else:
            assert isinstance(response.get_json()["results"], list)


# --------------------------------------------------------------------------- parameters: query strings
BAD_QUERY_STRINGS = [
    ("text=moon&k=-1", 400, "invalid_parameter"),
    ("text=moon&k=1e3", 400, "invalid_parameter"),
    ("text=moon&k=0x10", 400, "invalid_parameter"),
    ("text=moon&k=+", 400, "invalid_parameter"),  # "?k=" is not given (test_api), a space is no number
    ("text=moon&k=5.5", 400, "invalid_parameter"),
    ("text=moon&k=99999999999999999999999999", 400, "invalid_parameter"),
    ("text=moon&k=%C2%B2", 400, "invalid_parameter"),  # "²": a digit to str.isdigit(), not to int()
    ("text=moon&k=" + "9" * 5000, 400, "invalid_parameter"),
    ("text=moon&k=%00", 400, "invalid_parameter"),
    ("text=moon&k=inf", 400, "invalid_parameter"),
    ("text=moon&min_score=-inf", 400, "invalid_parameter"),
    ("text=moon&min_score=1e309", 400, "invalid_parameter"),
    ("text=moon&min_score=0x1", 400, "invalid_parameter"),
    ("text=moon&min_score=-1.5", 400, "invalid_parameter"),
    ("text=moon&min_score=+", 400, "invalid_parameter"),
    ("text=moon&text=sun", 400, "invalid_parameter"),
    ("text=moon&corpus=wiki&corpus=wiki", 400, "invalid_parameter"),
    ("text", 400, "missing_query"),
    ("=moon", 400, "unknown_parameter"),
    ("%00=moon&text=moon", 400, "unknown_parameter"),
    ("text=moon&TEXT=sun", 400, "unknown_parameter"),
    ("text=&url=&id=", 400, "missing_query"),
    ("text=moon&id=662", 400, "ambiguous_query"),
    ("text=moon&corpus=WIKI", 404, "unknown_corpus"),
    ("text=moon&corpus=wiki%00", 400, "invalid_parameter"),
    ("text=moon&corpus=" + "a" * 65, 400, "invalid_parameter"),
    ("text=moon&corpus=%C3%BCber", 400, "invalid_parameter"),
    ("text=moon&corpus=.hidden", 400, "invalid_parameter"),
    ("text=moon&engine=LSI", 400, "unknown_engine"),
    ("text=moon&engine=../lsi", 400, "invalid_parameter"),
    ("id=%00", 404, "unknown_id"),
    ("id=662%00", 404, "unknown_id"),
    ("id=%27%20OR%201%3D1%20--", 404, "unknown_id"),
    ("id=../../etc/passwd", 404, "unknown_id"),
    ("id=" + "9" * 513, 400, "invalid_id"),
    ("id=" + "9" * 512, 404, "unknown_id"),  # MAX_ID_CHARS: an id of 512 characters is looked up
    ("url=" + "http://a.example/" + "a" * 2048, 400, "invalid_url"),
    ("url=%0d%0aHost:%20evil", 400, "invalid_url"),
    ("text=%F0%9F%92%A9%F0%9F%9A%80", 422, "no_known_words"),
    ("text=%25", 422, "no_known_words"),
    ("text=%zz%", 422, "no_known_words"),
    ("text=" + "Z%CC%B5%CC%A1%CD%87" * 50, 422, "no_known_words"),
]


@pytest.mark.parametrize("query,status,code", BAD_QUERY_STRINGS)
def test_abusive_query_strings_get_a_clear_4xx(strict, query, status, code):
    assert_error(strict.get("/?" + query), status, code)


@pytest.mark.parametrize("query", [
    "text=moon%00landing", "text=%E2%80%AEmoon%20landing", "text=moon&k=%EF%BC%95", "text=moon&k=+5",
    "text=+moon+&k=5&min_score=-1", "id=+662+", "text=moon&corpus=&engine=", "text=moon&k=100",
])
def test_odd_but_valid_query_strings_are_answered(strict, query):
    response = strict.get("/?" + query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["results"]


def test_a_query_string_that_is_not_utf8_is_refused(strict):
    # werkzeug would keep the escapes as literal text: words that are not the caller's
    assert_error(strict.get("/?text=moon%FF%FE%FDlanding"), 400, "invalid_parameter")


def test_query_string_over_the_limit_is_a_414(strict):
    assert_error(strict.get("/?text=" + "moon+" * 4000), 414, "query_too_long")
    at_the_limit = "text=moon+landing+" + "a" * (8_000 - len("text=moon+landing+"))  # MAX_QUERY_BYTES' default
    assert strict.get("/?" + at_the_limit).status_code == 200
    assert_error(strict.get("/?" + at_the_limit + "a"), 414, "query_too_long")


UNKNOWN_NAMES = "&".join(f"p{i}=1" for i in range(600)) + "&" + "A" * 3_000 + "=1"


@pytest.mark.parametrize("path", ["/?text=moon&", "/stats?"])
def test_many_unknown_parameters_are_one_short_400(strict, path):
    assert len(UNKNOWN_NAMES) < 8_000  # MAX_QUERY_BYTES
    error = assert_error(strict.get(path + UNKNOWN_NAMES), 400, "unknown_parameter")
    assert len(error["message"]) < 1000  # ten names at most, each cut short: the caller's text is not echoed


@pytest.mark.parametrize("path", ["/stats", "/dashboard"])
def test_stats_query_string_over_the_limit_is_a_414(strict, path):
    response = strict.get(path + "?days=7&" + "a" * 20_000 + "=1")
    assert response.status_code == 414 and len(response.get_data()) < 20_000


@pytest.mark.parametrize("query", ["corpus=wiki&corpus=other", "days=1&days=2"])
def test_stats_refuses_a_repeated_filter(strict, query):
    assert_error(strict.get("/stats?" + query), 400, "invalid_parameter")
    assert strict.get("/dashboard?" + query).status_code == 400


@pytest.mark.parametrize("query", ["text=moon&k=1_0", "text=moon&min_score=0_1"])
def test_python_number_spellings_are_refused(strict, query):
    assert_error(strict.get("/?" + query), 400, "invalid_parameter")


# --------------------------------------------------------------------------- parameters: JSON bodies
def nested(depth, inner=b"1"):
    return b"[" * depth + inner + b"]" * depth


BAD_BODIES = [
    ("array_bomb", nested(100_000), 400, "invalid_json"),
    ("object_bomb", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400, "invalid_json"),
    ("bomb_in_unknown_field", b'{"text": "moon", "x": ' + nested(50_000) + b"}", 400, "invalid_json"),
    ("deep_but_parseable", b'{"text": "moon", "x": ' + nested(200) + b"}", 400, "unknown_parameter"),
    ("nan_min_score", b'{"text": "moon", "min_score": NaN}', 400, "invalid_parameter"),
    ("infinity_k", b'{"text": "moon", "k": Infinity}', 400, "invalid_parameter"),
    ("minus_infinity_min_score", b'{"text": "moon", "min_score": -Infinity}', 400, "invalid_parameter"),
    ("k_1e400", b'{"text": "moon", "k": 1e400}', 400, "invalid_parameter"),
    ("k_huge_int", b'{"text": "moon", "k": 123456789012345678901234567890}', 400, "invalid_parameter"),
    ("k_5000_digits", b'{"text": "moon", "k": ' + b"9" * 5000 + b"}", 400, "invalid_json"),
    ("min_score_400_digits", b'{"text": "moon", "min_score": 1' + b"0" * 400 + b"}", 400, "invalid_parameter"),
    ("k_blank", b'{"text": "moon", "k": " "}', 400, "invalid_parameter"),  # null and "" are not given (test_api)
    ("k_list", b'{"text": "moon", "k": [5]}', 400, "invalid_parameter"),
    ("k_negative_zero", b'{"text": "moon", "k": -0.0}', 400, "invalid_parameter"),
    ("k_mongo_operator", b'{"text": "moon", "k": {"$gt": 0}}', 400, "invalid_parameter"),
    ("id_mongo_operator", b'{"id": {"$ne": null}}', 400, "invalid_parameter"),
    ("corpus_mongo_operator", b'{"text": "moon", "corpus": {"$regex": ".*"}}', 400, "invalid_parameter"),
    ("engine_list", b'{"text": "moon", "engine": ["lsi"]}', 400, "invalid_parameter"),
    # only null and "" are not given: a false value of another type had been read as not given (a 200
    # from the default corpus and the split's engine, where "k": 0 and "min_score": false are 400s)
    ("corpus_zero", b'{"text": "moon", "corpus": 0}', 400, "invalid_parameter"),
    ("corpus_false", b'{"text": "moon", "corpus": false}', 400, "invalid_parameter"),
    ("corpus_empty_list", b'{"text": "moon", "corpus": []}', 400, "invalid_parameter"),
    ("engine_zero", b'{"text": "moon", "engine": 0}', 400, "invalid_parameter"),
    ("engine_false", b'{"text": "moon", "engine": false}', 400, "invalid_parameter"),
    ("engine_empty_object", b'{"text": "moon", "engine": {}}', 400, "invalid_parameter"),
    ("min_score_bool", b'{"text": "moon", "min_score": true}', 400, "invalid_parameter"),
    ("lone_surrogate_text", b'{"text": "moon \\ud800 landing"}', 400, "invalid_parameter"),
    ("lone_surrogate_id", b'{"id": "\\udfff"}', 400, "invalid_parameter"),
    ("lone_surrogate_url", b'{"url": "http://example.com/\\ud800"}', 400, "invalid_parameter"),
    ("lone_surrogate_host", b'{"url": "http://exa\\udbffmple.com/"}', 400, "invalid_parameter"),
    ("lone_surrogate_key", b'{"\\ud800": 1, "text": "moon"}', 400, "unknown_parameter"),
    ("lone_surrogate_corpus", b'{"text": "moon", "corpus": "\\ud800"}', 400, "invalid_parameter"),
    ("text_null", b'{"text": null}', 400, "missing_query"),
    ("text_whitespace", b'{"text": " \\t\\n\\u00a0 "}', 400, "missing_query"),
    ("text_object", b'{"text": {"text": "moon"}}', 400, "invalid_parameter"),
    ("text_at_the_limit_unknown", b'{"text": "' + b"q" * 100_000 + b'"}', 422, "no_known_words"),
    ("text_over_the_limit", b'{"text": "' + b"moon " * 20_001 + b'"}', 413, "text_too_large"),
    ("id_true", b'{"id": true}', 400, "invalid_parameter"),
    ("id_fraction", b'{"id": 662.5}', 400, "invalid_parameter"),  # 662.0 is the id 662 (test_api)
    ("id_negative", b'{"id": -1}', 404, "unknown_id"),
    ("id_huge", b'{"id": 1000000000000000000000000000000}', 404, "unknown_id"),
    ("id_float_past_2_53", b'{"id": 1e20}', 400, "invalid_parameter"),  # no float there holds the id sent
    ("url_list", b'{"url": ["http://example.com/"]}', 400, "invalid_parameter"),
    ("top_null", b"null", 400, "invalid_json"),
    ("top_true", b"true", 400, "invalid_json"),
    ("top_number", b"42", 400, "invalid_json"),
    ("top_string", b'"text"', 400, "invalid_json"),
    ("empty_body", b"", 400, "invalid_json"),
    ("whitespace_body", b" \n\t ", 400, "invalid_json"),
    ("trailing_garbage", b'{"text": "moon"} {"text": "sun"}', 400, "invalid_json"),
    ("single_quotes", b"{'text': 'moon'}", 400, "invalid_json"),
    ("invalid_utf8", b'{"text": "\xff\xfe moon"}', 400, "invalid_json"),
    ("utf8_nul_in_key", b'{"text\\u0000": "moon"}', 400, "unknown_parameter"),
    ("gzip_body_unannounced", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 400, "invalid_json"),
]


@pytest.mark.parametrize("name,body,status,code", BAD_BODIES, ids=[case[0] for case in BAD_BODIES])
def test_abusive_json_bodies_get_a_clear_4xx(strict, name, body, status, code):
    error = assert_error(strict.post("/", data=body, content_type="application/json"), status, code)
    assert "sys." not in error["message"]  # Python's own advice is no help to an API caller


@pytest.mark.parametrize("name,body,content_type", [
    ("utf8_bom", b'\xef\xbb\xbf{"text": "moon landing"}', "application/json"),
    ("utf16", '{"text": "moon landing"}'.encode("utf-16"), "application/json"),
    ("charset_mismatch", b'{"text": "moon landing"}', "application/json; charset=utf-16"),
    ("upper_case_type", b'{"text": "moon landing"}', "APPLICATION/JSON"),
    ("nul_in_text", b'{"text": "moon\\u0000landing"}', "application/json"),
    ("k_integral_float", b'{"text": "moon landing", "k": 5.0}', "application/json"),
    ("id_as_number", b'{"id": 662}', "application/json"),
])
def test_odd_but_valid_bodies_are_answered(strict, name, body, content_type):
    response = strict.post("/", data=body, content_type=content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["results"]


def test_a_body_giving_a_field_twice_is_refused(strict):
    # json.loads keeps the last silently; a GET's repeated parameter is refused too
    body = b'{"text": "zzzq", "text": "moon landing"}'
    assert_error(strict.post("/", data=body, content_type="application/json"), 400, "invalid_json")


@pytest.mark.parametrize("content_type", [None, "text/json", "text/plain", "application/json-patch+json",
                                          "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"])
def test_other_media_types_are_415(strict, content_type):
    kwargs = {"content_type": content_type} if content_type else {}
    assert_error(strict.post("/", data=b'{"text": "moon"}', **kwargs), 415, "unsupported_media_type")


@pytest.mark.parametrize("encoding,body", [
    ("gzip", gzip.compress(b'{"text": "moon landing"}')),
    ("deflate", zlib.compress(b'{"text": "moon landing"}')),
    ("br", b'{"text": "moon landing"}'),  # a plain body under a coding: had been read as plain, a 200
    ("gzip, identity", gzip.compress(b'{"text": "moon landing"}')),
], ids=["gzip", "deflate", "br", "gzip_identity"])
def test_compressed_bodies_are_415_naming_their_coding(strict, encoding, body):
    """A compressed body had been a 400 invalid_json "can't decode byte 0x8b" (the caller's JSON is
    fine; its coding is not read), and a coding over a plain body was ignored."""
    response = strict.post("/", data=body, content_type="application/json", headers={"Content-Encoding": encoding})
    error = assert_error(response, 415, "unsupported_media_type")
    assert "Content-Encoding" in error["message"] and encoding.split(",")[0] in error["message"]


@pytest.mark.parametrize("encoding", ["identity", "IDENTITY", ""])
def test_an_identity_coding_is_read(strict, encoding):
    response = strict.post("/", data=b'{"text": "moon landing"}', content_type="application/json",
                           headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("k,shown", [("1e308", "1e+308"), ("9" * 4000, "9" * 40)])
def test_a_huge_k_is_shown_cut_as_it_was_sent(strict, k, shown):
    """1e308 is a whole number, once an int its 309 digits had filled the message (and 4,000 digits 4,000)."""
    body = ('{"text": "moon", "k": %s}' % k).encode()
    error = assert_error(strict.post("/", data=body, content_type="application/json"), 400, "invalid_parameter")
    assert error["message"] == f"'k' must be between 1 and 100, got {shown}"


def test_a_get_whose_fields_are_in_its_body_is_told_to_post_them(strict):
    """A GET's body is not read: "give one of 'url', 'text' or 'id'" had answered one that gave text there."""
    response = strict.open("/", method="GET", data=b'{"text": "moon landing"}', content_type="application/json")
    error = assert_error(response, 400, "missing_query")
    assert "query string" in error["message"] and "POST" in error["message"]


def test_an_empty_post_body_is_said_to_be_empty(strict):
    """json.loads' "Expecting value: line 1 column 1 (char 0)" for a POST that sent no body at all."""
    error = assert_error(strict.post("/", data=b"", content_type="application/json"), 400, "invalid_json")
    assert "empty" in error["message"] and "Expecting value" not in error["message"]


def test_declared_length_over_the_limit_is_refused_before_reading(strict):
    response = strict.post("/", data=b'{"text": "moon"}', content_type="application/json",
                           environ_overrides={"CONTENT_LENGTH": str(10**12)})
    assert_error(response, 413, "body_too_large")


@pytest.mark.parametrize("method,content_type", [("POST", "text/plain"), ("GET", None), ("POST", "application/json")])
def test_unread_body_is_never_read_after_the_answer(strict, method, content_type):
    """functions-framework reads the whole body after each answer: not a body the function refused."""

    class Endless:
        read_bytes = 0

        def read(self, size=-1):
            size = 65536 if size is None or size < 0 else min(size, 65536)
            Endless.read_bytes += size
            if Endless.read_bytes > 5_000_000:
                raise OSError("read far past the body limit")
            return b" " * size

        readline = read

    response = strict.open("/", method=method, content_type=content_type, environ_overrides={
        "wsgi.input": Endless(), "CONTENT_LENGTH": str(10**12), "QUERY_STRING": "text=moon" if method == "GET" else ""})
    assert response.status_code in (200, 413, 415), response.get_data(as_text=True)[:300]
    assert Endless.read_bytes <= 1_100_000


# --------------------------------------------------------------------------- methods and paths
@pytest.mark.parametrize("method,path,status,code", [
    ("TRACE", "/", 405, "method_not_allowed"),
    ("PATCH", "/", 405, "method_not_allowed"),
    ("PUT", "/click", 405, "method_not_allowed"),
    ("POST", "/click", 405, "method_not_allowed"),
    ("POST", "/healthz", 405, "method_not_allowed"),
    ("GET", "/..%2f..%2fetc%2fpasswd", 404, "not_found"),
    ("GET", "/%00", 404, "not_found"),
    ("GET", "/" + "a" * 5000, 404, "not_found"),
    ("GET", "/click/", 400, "invalid_click_link"),
])
def test_odd_methods_and_paths_are_json(strict, method, path, status, code):
    assert_error(strict.open(path, method=method), status, code)


@pytest.mark.parametrize("path", ["//", "//evil.example/", "///evil.example/x", "/\\evil.example/"])
def test_slashes_in_paths_never_redirect_off_site(strict, path):
    response = strict.get(path)
    if 300 <= response.status_code < 400:  # Flask merges slashes with a 308 to this same host
        assert urlsplit(response.headers["Location"]).netloc == "localhost"
    else:
        assert response.status_code in (400, 404) and response.is_json


# --------------------------------------------------------------------------- click links
@pytest.fixture(scope="module")
def link(strict):
    """(path, args) of a genuine click link."""
    url = strict.get("/?text=moon+landing").get_json()["results"][0]["click_url"]
    parts = urlsplit(url)
    return parts.path, {name: values[0] for name, values in parse_qs(parts.query).items()}


def click(client, path, args):
    return client.get(path + "?" + (args if isinstance(args, str) else urlencode(args)))


def assert_click_refused(response, status, code):
    assert "Location" not in response.headers
    return assert_error(response, status, code)


def altered(value):
    return value[:-1] + ("A" if value[-1] != "A" else "B")


def test_genuine_link_redirects(strict, link):
    response = click(strict, *link)
    assert response.status_code == 302 and response.headers["Location"] == link[1]["u"]


def test_a_genuine_link_with_many_unknown_parameters_is_one_short_400(strict, link):
    path, args = link
    error = assert_click_refused(click(strict, path, urlencode(args) + "&" + UNKNOWN_NAMES), 400, "invalid_click_link")
    assert "unknown parameters" in error["message"] and len(error["message"]) < 1000


def test_a_click_query_string_over_the_limit_is_a_414(strict, link):
    path, args = link
    assert_click_refused(click(strict, path, urlencode(args) + "&pad=" + "x" * 20_000), 414, "query_too_long")


def test_head_of_a_link_redirects_without_recording_a_click(base_env, mongodb):
    own = make_client({**base_env, "MONGODB": mongodb})  # a database with only this test's clicks
    first, second = [urlsplit(r["click_url"]) for r in own.get("/?text=moon+landing").get_json()["results"][:2]]
    response = own.head(first.path + "?" + first.query)
    assert response.status_code == 302 and response.headers["Location"] == parse_qs(first.query)["u"][0]
    assert own.get(second.path + "?" + second.query).status_code == 302
    # events are written in the order they were recorded: the HEAD's (rank 1) would come first
    assert [event["rank"] for event in wait_for_events(mongodb, "clicks", 1)] == [2]


def test_head_of_a_recommendation_answers_without_recording_a_request(base_env, mongodb, pages):
    """Link checkers and unfurlers HEAD an API URL found in a page: no reader saw links, so no
    request event (it would count as links shown and lower the click-through), and so no fetch
    either: it would be a request to another site that nobody sees."""
    own = make_client({**base_env, "MONGODB": mongodb, "FETCH_ALLOW_PRIVATE_HOSTS": f"127.0.0.1:{pages.port}"})
    api = own.head("/?text=greek+philosophy")
    assert api.status_code == 200 and api.mimetype == "application/json" and api.data == b""
    assert "Content-Length" not in api.headers  # not the GET's, so none
    page = own.head("/?text=atlantic+ocean", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    url = pages.add("/head-only", (PAGES / "moon-landing.html").read_bytes())
    for accept in ("*/*", "text/html"):
        assert own.head("/", query_string={"url": url}, headers={"Accept": accept}).status_code == 200
    assert pages.hits["/head-only"] == 0
    # the query is checked as a GET's is
    for query, status in (("text=moon&k=0", 400), ("text=moon&corpus=nope", 404), ("url=ftp://example.com/", 400)):
        for accept, mimetype in (("*/*", "application/json"), ("text/html", "text/html")):
            answer = own.head("/?" + query, headers={"Accept": accept})
            assert (answer.status_code, answer.mimetype) == (status, mimetype), (query, accept)
    asked = own.get("/?text=moon+landing").get_json()["request_id"]
    # events are written in the order they were recorded: the HEADs' would come first
    assert [event["_id"] for event in wait_for_events(mongodb, "requests", 1)] == [asked]


@pytest.mark.parametrize("field", ["r", "c", "e", "k", "d", "u", "t", "s"])
def test_every_altered_field_is_403(strict, link, field):
    path, args = link
    assert_click_refused(click(strict, path, {**args, field: altered(args[field])}), 403, "invalid_click_signature")


@pytest.mark.parametrize("field", ["r", "c", "e", "k", "d", "u", "t", "s"])
def test_every_missing_field_is_400(strict, link, field):
    path, args = link
    assert_click_refused(click(strict, path, {k: v for k, v in args.items() if k != field}), 400, "invalid_click_link")


@pytest.mark.parametrize("field", ["r", "u", "s"])
def test_repeated_fields_are_400(strict, link, field):
    path, args = link
    query = urlencode(args) + "&" + urlencode({field: args[field]})
    assert_click_refused(click(strict, path, query), 400, "invalid_click_link")


@pytest.mark.parametrize("name,change", [
    ("signature_truncated_by_one", lambda s: s[:-1]),
    ("signature_truncated_to_ten", lambda s: s[:10]),
    ("signature_padded", lambda s: s + "=="),
    ("signature_case_swapped", lambda s: s.swapcase()),
    ("signature_non_ascii", lambda s: s[:-1] + "\u00e9"),
    ("signature_doubled", lambda s: s + s),
    ("signature_hex_of_nothing", lambda s: "0" * 32),
])
def test_mangled_signatures_are_403(strict, link, name, change):
    path, args = link
    assert_click_refused(click(strict, path, {**args, "s": change(args["s"])}), 403, "invalid_click_signature")


@pytest.mark.parametrize("target", ["https://evil.example/", "javascript:alert(1)", "//evil.example/",
                                    "http://127.0.0.1/admin", "https://en.wikipedia.org.evil.example/"])
def test_swapped_target_is_never_followed(strict, link, target):
    path, args = link
    assert_click_refused(click(strict, path, {**args, "u": target}), 403, "invalid_click_signature")


def test_link_signed_with_another_key_is_403(strict, link):
    path, args = link
    forged = clicks.Click(args["r"], args["c"], args["e"], int(args["k"]), args["d"], "https://evil.example/",
                          int(args["t"]))
    assert_click_refused(click(strict, path, clicks.sign(b"not-the-key-" + secrets.token_bytes(16), forged)), 403,
                  "invalid_click_signature")


def _signed(args, issued_ms):
    return clicks.sign(CLICK_KEY, clicks.Click(args["r"], args["c"], args["e"], int(args["k"]), args["d"],
                                               args["u"], issued_ms))


def _signed_with(args, **fields):
    """A link signed with the function's own key whose fields are ``fields`` (strings, as a link carries
    them), over the genuine link's others: what the function never issues but a key holder could."""
    values = {**args, **fields}
    tag = clicks._tag(CLICK_KEY, clicks._message([values[name] for name in clicks.FIELDS]))
    return urlencode({**{name: values[name] for name in clicks.FIELDS}, "s": tag})


@pytest.mark.parametrize("fields", [
    {"k": "abc"}, {"k": "\u00b2"}, {"k": "1e3"}, {"k": "7" * 5000}, {"k": "-1"},
    {"t": "abc"}, {"t": "9" * 5000}, {"t": " 1"},
    {"u": "https://en.wikipedia.org/wiki/Moon\r\nSet-Cookie: a=b"}, {"u": "javascript:alert(1)"},
    {"u": "//en.wikipedia.org/wiki/Moon"}, {"u": "https:///wiki/Moon"},
])
def test_a_signed_link_with_fields_never_issued_is_a_400(strict, link, fields):
    # the signature holds, so only a holder of the key could make one: still no 500 and no redirect
    assert_click_refused(click(strict, link[0], _signed_with(link[1], **fields)), 400, "invalid_click_link")


def test_a_signed_link_issued_ahead_takes_its_reader_to_the_article(strict, link):
    """Signed, a link issued ahead is an instance's whose clock ran ahead, not a forgery: a day ahead
    had been a 400, the reader's click lost (whether it records one: test_api)."""
    now_ms = int(time.time() * 1000)
    for ahead_ms in (60 * 1000, 86400 * 1000, 400 * 86400 * 1000):
        response = click(strict, link[0], _signed(link[1], now_ms + ahead_ms))
        assert response.status_code == 302 and response.headers["Location"] == link[1]["u"], ahead_ms


def test_a_signed_link_to_a_non_ascii_address_redirects_to_its_escaped_form(strict, link):
    response = click(strict, link[0], _signed_with(link[1], u="https://de.wikipedia.org/wiki/\u00dcber_uns?q=\u00e9"))
    assert response.status_code == 302
    assert response.headers["Location"] == "https://de.wikipedia.org/wiki/%C3%9Cber_uns?q=%C3%A9"


def test_an_expired_link_takes_its_reader_to_the_article(strict, link):
    """A page cached past CLICK_TTL_DAYS had shown its readers a JSON 410; the target is signed,
    so it is no open redirect (whether it records a click: test_api)."""
    path, args = link
    old = int(time.time() * 1000) - 31 * 86400 * 1000  # CLICK_TTL_DAYS is 30
    response = click(strict, path, _signed(args, old))
    assert response.status_code == 302 and response.headers["Location"] == args["u"]
    swapped = dict(parse_qsl(_signed(args, old)), u="https://evil.example/")
    assert_click_refused(click(strict, path, swapped), 403, "invalid_click_signature")


def test_link_just_inside_its_lifetime_still_works(strict, link):
    path, args = link
    recent = int(time.time() * 1000) - 29 * 86400 * 1000
    assert click(strict, path, _signed(args, recent)).status_code == 302


@pytest.mark.parametrize("query", [
    "", "s=", "%ff=1", "r=&c=&e=&k=&d=&u=&t=&s=", "x=" + "a" * 5000,
])
def test_garbage_click_queries_are_400(strict, query):
    assert_click_refused(strict.get("/click?" + query), 400, "invalid_click_link")


def test_extra_parameter_is_400(strict, link):
    path, args = link
    assert_click_refused(click(strict, path, {**args, "next": "https://evil.example/"}), 400, "invalid_click_link")


def test_refused_links_record_no_click(base_env):
    """Only the one genuine click of a series of refused ones reaches the database."""
    env = {**base_env, "MONGODB": with_database(base_env["MONGODB"], "clicks" + secrets.token_hex(6))}
    own = make_client(env)
    parts = urlsplit(own.get("/?text=moon+landing").get_json()["results"][0]["click_url"])
    path, args = parts.path, {name: values[0] for name, values in parse_qs(parts.query).items()}
    for field in ("u", "s", "t", "k"):
        click(own, path, {**args, field: altered(args[field])})
    click(own, path, _signed(args, int(time.time() * 1000) - 31 * 86400 * 1000))
    click(own, path, {k: v for k, v in args.items() if k != "r"})
    assert click(own, path, args).status_code == 302
    deadline = time.monotonic() + 15
    while own.get("/healthz").get_json()["events"]["buffered"] and time.monotonic() < deadline:
        time.sleep(0.05)
    recorded = wait_for_events(env["MONGODB"], "clicks", 1)
    assert [(c["request_id"], c["rank"]) for c in recorded] == [(args["r"], int(args["k"]))]


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("uri,problem", [("not-a-uri", "is not a mongodb:// or mongodb+srv:// URI"),
                                         ("mongodb://", "names no host"),
                                         ("mongodb://127.0.0.1:99999/related", "has a port that is not one (99999)"),
                                         ("mongodb://127.0.0.1:65536/related", "has a port that is not one (65536)")])
def test_a_malformed_mongodb_uri_is_an_unreachable_database_not_a_500(base_env, uri, problem, caplog):
    caplog.set_level(logging.INFO, logger="related")
    client = make_client({**base_env, "MONGODB": uri})
    # said at start, before any event: a typo had been silent until then
    assert f"MONGODB {problem}: events will not be stored" in caplog.text
    # and the start's own line agrees: it had said "events to MongoDB at ;" for "not-a-uri"
    assert "; events not stored (MONGODB unusable: warned above);" in caplog.text
    assert "events to MongoDB at" not in caplog.text
    answer = client.get("/?text=moon+landing")
    assert answer.status_code == 200 and answer.get_json()["results"]
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["mongo"].items() >= {"configured": True, "reachable": False}.items()
    assert_error(client.get("/stats"), 503, "events_unavailable")
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 503 and b"does not answer" in dashboard.get_data()


def test_a_well_formed_uri_of_either_scheme_is_no_problem():
    from function.events import uri_problem

    for uri in ("mongodb://127.0.0.1:27017,[::1]:65535/related", "mongodb+srv://cluster0.example.net/related"):
        assert uri_problem(uri) == "", uri


def test_the_start_names_mongos_hosts_and_never_a_password(base_env, caplog):
    # a password holding an unescaped "/" had put "admin:s3cr" in the start's log line
    caplog.set_level(logging.INFO, logger="related")
    password = "s3cr/et"  # a made-up one
    make_client({**base_env, "MONGODB": "mongodb://admin:" + password + "@127.0.0.1:1/related"})
    assert "events to MongoDB at 127.0.0.1:1" in caplog.text
    assert "s3cr" not in caplog.text and "admin" not in caplog.text


# --------------------------------------------------------------------------- headers (in-process)
@pytest.mark.parametrize("proto,scheme", [
    ("https", "https"), ("HTTPS", "https"), ("https, http", "https"), ("http", "http"),
    ("javascript", "http"), ("gopher", "http"), ("", "http"), ("https://evil.example", "http"),
])
def test_forwarded_proto_only_chooses_http_or_https(strict, proto, scheme):
    response = strict.get("/?text=moon", headers={"X-Forwarded-Proto": proto})
    assert response.status_code == 200
    for result in response.get_json()["results"]:
        assert result["click_url"].startswith(f"{scheme}://localhost/click?")


@pytest.mark.parametrize("header", ["X-Forwarded-Host", "X-Original-URL", "X-Rewrite-URL", "Forwarded"])
def test_other_forwarding_headers_do_not_move_click_links(strict, header):
    response = strict.get("/?text=moon", headers={header: "evil.example"})
    assert response.status_code == 200
    assert all(r["click_url"].startswith("http://localhost/click?") for r in response.get_json()["results"])


def test_public_url_fixes_click_links_whatever_the_host(base_env):
    pinned = make_client({**base_env, "PUBLIC_URL": "https://related.example.com/"})
    response = pinned.get("/?text=moon", headers={"Host": "evil.example", "X-Forwarded-Proto": "http"})
    assert response.status_code == 200
    assert all(r["click_url"].startswith("https://related.example.com/click?") for r in response.get_json()["results"])


# --------------------------------------------------------------------------- the real server
@pytest.fixture(scope="module")
def server(base_env, srv):
    """A real functions-framework process; only the hostile server's host:port is exempt."""
    process = FunctionProcess({**base_env, "FETCH_ALLOW_PRIVATE_HOSTS": srv.netloc}).wait_ready()
    yield process
    process.stop()


def raw_request(server, data, timeout=15, half_close=False):
    """Send bytes as they are (then, with ``half_close``, nothing more: the request ends there);
    (status, headers text, body bytes) of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return _answer(_read_to_end(sock))


def _read_to_end(sock):
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _answer(received):
    """(status, headers text, body bytes) of an HTTP answer's bytes."""
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.decode("latin-1"), body


def raw_get(server, target, headers=b"Host: localhost\r\n"):
    return raw_request(server, b"GET " + target + b" HTTP/1.1\r\n" + headers + b"Connection: close\r\n\r\n")


def assert_json_error(status, head, body, want_status, want_code):
    assert status == want_status, body[:300]
    assert "application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == want_code


@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{p}/", "http://localhost:{p}/", "http://2130706433:{p}/", "http://0x7f.1:{p}/",
    "http://[::ffff:127.0.0.1]:{p}/", "http://0:{p}/", "http://127.0.0.1.:{p}/",
])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_real_server_refuses_loopback_and_never_connects(server, canary, method, template):
    url = template.format(p=canary.port)
    if method == "GET":
        response = requests.get(server.base, params={"url": url}, timeout=15)
    else:
        response = requests.post(server.base, json={"url": url}, timeout=15)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden_address"
    assert canary.hits == []


def test_real_server_refuses_a_redirect_to_the_canary(server, srv, canary):
    response = requests.get(server.base, params={"url": srv.url(hs.redirect_path(canary.url("/")))}, timeout=15)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden_address"
    assert canary.hits == []


@pytest.mark.parametrize("path,status,code", [
    ("/drip?interval=0.5&bytes=200", 504, "upstream_timeout"),
    ("/endless?chunked=1", 422, "page_too_large"),
    ("/bomb?enc=gzip&size=20000000", 422, "page_too_large"),
    ("/binary", 415, "unsupported_content_type"),
])
def test_real_server_answers_hostile_pages_in_bounded_time(server, srv, _bombs_ready, path, status, code):
    started = time.monotonic()
    response = requests.get(server.base, params={"url": srv.url(path)}, timeout=30)
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert time.monotonic() - started < BOUNDED


def test_slow_sites_cannot_take_every_thread(base_env, srv):
    """At most FETCH_CONCURRENCY requests of a worker (THREADS - 2 by default) wait on page
    fetches, leading one or waiting for another's: past it, a new page and another reader of a
    stalled one are refused at once (503, Retry-After, as JSON or as the page), and /healthz
    and text requests keep a thread while the sites stall."""
    process = FunctionProcess({**base_env, "FETCH_ALLOW_PRIVATE_HOSTS": srv.netloc, "THREADS": "5"}).wait_ready()
    try:
        mark = secrets.token_hex(4)  # this test's requests among those the shared server has seen
        stalled = [srv.url(f"/stall?seconds=10&{mark}={i}") for i in range(2)]
        with ThreadPoolExecutor(3) as pool:
            waiting = [pool.submit(requests.get, process.base, params={"url": url}, timeout=30)
                       for url in stalled + stalled[:1]]  # the third waits for the first's fetch
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until all three wait: two fetches, one for another's
                fetches = requests.get(process.base + "/healthz", timeout=30).json()["fetches"]
                asked = sum(mark in seen["path"] for seen in srv.requests)  # a slot is taken before the fetch asks
                if fetches["waiting"] == 3 and asked == 2:
                    break
                time.sleep(0.02)
            assert fetches == {"waiting": 3, "limit": 3, "refused": 0}
            assert asked == 2
            started = time.monotonic()
            new_page = requests.get(process.base, params={"url": srv.url(f"/stall?seconds=10&{mark}=2")}, timeout=30)
            reader = requests.get(process.base, params={"url": stalled[1]}, headers={"Accept": "text/html"}, timeout=30)
            assert new_page.status_code == 503 and new_page.json()["error"]["code"] == "fetch_busy"
            assert reader.status_code == 503 and reader.headers["Content-Type"].startswith("text/html")
            assert new_page.headers["Retry-After"] == reader.headers["Retry-After"] == "1"
            health = requests.get(process.base + "/healthz", timeout=30)
            assert health.status_code == 200 and health.json()["fetches"] == {"waiting": 3, "limit": 3, "refused": 2}
            assert requests.get(process.base, params={"text": "moon landing"}, timeout=30).status_code == 200
            assert time.monotonic() - started < FETCH_DEADLINE  # none of them waited on a stalled site
            answers = [future.result() for future in waiting]
        assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(504, "upstream_timeout")] * 3
        assert sum(mark in seen["path"] for seen in srv.requests) == 2  # the refused ones asked no site
        after = requests.get(process.base, params={"url": srv.url("/status?code=404")}, timeout=30)
        assert after.json()["error"]["code"] == "upstream_status"  # the slots are free again
    finally:
        process.stop()


def test_real_server_query_string_of_two_megabytes_is_414(server):
    answer = raw_get(server, b"/?text=moon&pad=" + b"x" * 2_000_000)
    assert_json_error(*answer, 414, "uri_too_long")
    message = json.loads(answer[2])["error"]["message"]  # long, not malformed: what to do instead
    assert "POST long text" in message and "malformed" not in message


def test_real_server_refuses_a_long_request_line_before_it_ends(server):
    """gunicorn copies a request line it reads again for each 8 KB that arrives (a 40 MB line: two
    minutes of a core). Past 8,190 bytes it refuses, without waiting for the line's end."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(b"GET /?text=moon&pad=" + b"x" * 200_000)  # no end of line
        answer = sock.recv(65536)
    assert_json_error(*_answer(answer), 414, "uri_too_long")


@pytest.fixture(scope="module")
def impatient(base_env):
    """Four threads, and little patience with clients (CLIENT_HEAD_SECONDS, CLIENT_REQUEST_SECONDS)."""
    process = FunctionProcess({**base_env, "THREADS": "4", "CLIENT_HEAD_SECONDS": "5",
                               "CLIENT_REQUEST_SECONDS": "10"}).wait_ready()
    yield process
    process.stop()


def _stalled(server, data, count):
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=15) for _ in range(count)]
    for sock in sockets:
        sock.sendall(data)
    return sockets


def test_clients_that_send_half_a_head_lose_their_threads_with_a_408(impatient):
    """As many connections as threads, each one byte of a request: they had held every thread, and
    /healthz, for as long as they stayed open."""
    stalled = _stalled(impatient, b"G", 4)
    try:
        health = requests.get(impatient.base + "/healthz", timeout=30)  # answered once they are cut
        assert health.status_code == 200
        for sock in stalled:
            assert_json_error(*_answer(_read_to_end(sock)), 408, "request_timeout")
    finally:
        for sock in stalled:
            sock.close()


def test_clients_that_stall_in_their_body_lose_their_threads(impatient):
    request = (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"Content-Length: 1000\r\n\r\n{")
    stalled = _stalled(impatient, request, 4)
    try:
        assert requests.post(impatient.base, json={"text": "moon landing"}, timeout=30).status_code == 200
        for sock in stalled:
            _read_to_end(sock)  # the connection ends (whatever the function could say to half a body)
    finally:
        for sock in stalled:
            sock.close()


def test_real_server_chunked_body_over_the_limit_is_413(server):
    chunk = b" " * 100_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(12)) + b"0\r\n\r\n"
    status, head, answer = raw_request(server, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                                       b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
    assert_json_error(status, head, answer, 413, "body_too_large")


def test_real_server_declared_length_over_the_limit_is_413_without_the_body(server):
    status, head, answer = raw_request(server, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: 99999999999\r\nConnection: close\r\n\r\n{}")
    assert_json_error(status, head, answer, 413, "body_too_large")


@pytest.mark.parametrize("host", [b"a b", b"x/y?z", b"", b"[::1", b"localhost:99999", "\u00e9.example".encode(),
                                  b"<script>", b"evil.example:80@x"])
def test_real_server_invalid_host_is_a_clear_400_not_a_broken_link(server, host):
    assert_json_error(*raw_get(server, b"/?text=moon", b"Host: " + host + b"\r\n"), 400, "invalid_host")


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_real_server_without_a_host_builds_no_link_to_its_bind_address(server, version):
    # Werkzeug falls back to the bind address (0.0.0.0:PORT), which no reader can follow
    request = b"GET /?text=moon " + version + b"\r\nConnection: close\r\n\r\n"
    assert_json_error(*raw_request(server, request), 400, "invalid_host")


@pytest.mark.parametrize("path", ["/?text=moon", "/healthz", "/nope"])
def test_a_websocket_upgrade_is_told_it_is_not_served(strict, path):
    """Werkzeug's router refuses a WebSocket handshake to a plain route before the handler runs: its
    400 had said "the request line or headers are malformed", of a well-formed request."""
    response = strict.get(path, headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                         "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    error = assert_error(response, 400, "bad_request")
    assert "WebSocket" in error["message"] and "malformed" not in error["message"]


@pytest.mark.parametrize("host", [b"a" * 64 + b".example", b"a" * 2000])
def test_real_server_undecodable_host_is_json_too(server, host):
    assert_json_error(*raw_get(server, b"/healthz", b"Host: " + host + b"\r\n"), 400, "bad_request")


@pytest.mark.parametrize("host,prefix", [
    (b"evil.example", "http://evil.example/click?"),
    (b"EXAMPLE.com:8080", "http://EXAMPLE.com:8080/click?"),
    (b"[::1]:8080", "http://[::1]:8080/click?"),
])
def test_real_server_valid_host_builds_links_that_work(server, host, prefix):
    # Without PUBLIC_URL links follow the Host header (documented); they still verify.
    status, _, body = raw_get(server, b"/?text=moon", b"Host: " + host + b"\r\n")
    assert status == 200
    link = json.loads(body)["results"][0]["click_url"]
    assert link.startswith(prefix)
    followed = requests.get(server.base + link[link.index("/click?"):], allow_redirects=False, timeout=10)
    assert followed.status_code == 302


@pytest.mark.parametrize("name,request_bytes,want_status,want_code", [
    ("nul_in_host", b"GET /?text=moon HTTP/1.1\r\nHost: h\x00st\r\nConnection: close\r\n\r\n", 400, "bad_request"),
    ("two_hosts", b"GET /?text=moon HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400, "bad_request"),
    ("header_of_9000_bytes", b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 9000 + b"\r\nConnection: close\r\n\r\n",
     431, "headers_too_large"),
    ("two_hundred_headers", b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(200))
     + b"Connection: close\r\n\r\n", 431, "headers_too_large"),
    ("not_http", b"SSH-2.0-OpenSSH_9.0\r\n\r\n", 400, "bad_request"),
    ("smuggling_cl_and_te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
     400, "bad_request"),
    ("negative_content_length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: -1\r\n"
     b"Connection: close\r\n\r\n{}", 400, "bad_request"),
    ("unknown_expectation", b"GET /?text=moon HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n",
     417, "expectation_failed"),
    ("control_character_in_a_header", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\nConnection: close\r\n\r\n",
     400, "bad_request"),
    ("unknown_transfer_coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: zstd\r\nConnection: close\r\n\r\n",
     501, "unsupported_transfer_coding"),
])
def test_real_server_malformed_http_is_refused_as_json_and_it_keeps_serving(server, name, request_bytes, want_status,
                                                                            want_code):
    """gunicorn refuses these before the function sees them; its HTML page is replaced by our JSON error."""
    status, head, body = raw_request(server, request_bytes)
    assert_json_error(status, head, body, want_status, want_code)
    # the status's own phrase: gunicorn gives its 501 "Bad Request"
    assert head.startswith(f"HTTP/1.1 {want_status} {http.HTTPStatus(want_status).phrase}\r\n"), head[:60]
    assert "malformed HTTP" in json.loads(body)["error"]["message"]
    assert len(body) < 600  # the 9000-byte header is not echoed back
    assert requests.get(server.base + "/healthz", timeout=10).status_code == 200


def test_a_refusal_gunicorn_gives_no_message_is_named_by_its_own_status():
    # gunicorn's reason for its 501 is "Bad Request": the status line had been mended, the message not
    from function.gunicorn_setup import json_error_bytes

    head, _, body = json_error_bytes(501, "Bad Request", "").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert json.loads(body)["error"]["message"] == "refused before the function read it (malformed HTTP): Not Implemented"


@pytest.mark.parametrize("body", [
    b"zz\r\n{\"text\":\"moon\"}\r\n0\r\n\r\n",  # a chunk size that is not hex
    b"-1\r\n{\"text\":\"moon\"}\r\n0\r\n\r\n",
    b"f\r\n{\"text\":\"moon\"}XX0\r\n\r\n",  # no CRLF after the chunk
    b"10\r\n{\"text\":\"moon\"}\r\n0\r\n\r\n",  # a size that is not the chunk's
    b"f\r\n{\"text\":\"moon\"}\r\n0\r\nbad trailer\r\n\r\n",
])
def test_real_server_malformed_chunked_body_is_a_400(server, body):
    status, head, answer = raw_request(server, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                                       b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
    assert_json_error(status, head, answer, 400, "unreadable_body")


def test_real_server_body_cut_off_mid_chunk_is_a_400(server):
    status, head, answer = raw_request(server, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                                       b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n40\r\n{\"text\":",
                                       half_close=True)
    assert_json_error(status, head, answer, 400, "unreadable_body")


def test_real_server_body_shorter_than_its_content_length_is_a_400(server):
    # gunicorn hands over what came before the client closed: it had been read as the whole body
    status, head, answer = raw_request(server, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: 100\r\nConnection: close\r\n\r\n{\"text\": \"moon\"}",
                                       half_close=True)
    assert_json_error(status, head, answer, 400, "unreadable_body")
    assert b"16 of the 100 bytes" in answer


# --------------------------------------------------------------------------- the function fetching itself


def test_real_server_does_not_fetch_itself(base_env, srv):
    """A page whose fetch redirects to the function itself (its public address, here its loopback one,
    exempt as a public one would be fetched): the function asked itself for the page again, a request
    deep for each such redirect, until each fetch slot it had was held (one worker: 6 deep, then a 503
    unwound them). Its own fetcher is refused at once, and the page behind is never fetched."""
    port = free_port()
    own = f"127.0.0.1:{port}"
    process = FunctionProcess({**base_env, "FETCH_ALLOW_PRIVATE_HOSTS": f"{srv.netloc},{own}"}, port=port).wait_ready()
    try:
        itself = f"http://{own}/?" + urlencode({"url": srv.url("/page")})
        srv.clear()
        answer = requests.get(process.base + "/", params={"url": srv.url("/redirect?" + urlencode({"to": itself}))},
                              headers={"Accept": "application/json"}, timeout=30)
        assert answer.status_code == 422, answer.text[:300]
        assert answer.json()["error"]["code"] == "upstream_status"
        assert "403" in answer.json()["error"]["message"]
        assert [r["path"] for r in srv.requests if r["path"].startswith("/page")] == []
    finally:
        process.stop()


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_the_functions_own_fetcher_is_refused(strict, accept):
    from function.fetch import USER_AGENT

    refused = strict.get("/?text=moon", headers={"User-Agent": USER_AGENT, "Accept": accept})
    assert refused.status_code == 403
    if accept == "application/json":
        assert refused.get_json()["error"]["code"] == "own_fetcher"
    else:
        assert b"own fetcher" in refused.data
    assert strict.get("/?text=moon", headers={"Accept": accept}).status_code == 200
    # a HEAD is checked as its GET is: the same 4xx (it had been a 200)
    assert strict.head("/?text=moon", headers={"User-Agent": USER_AGENT, "Accept": accept}).status_code == 403
    assert strict.head("/?text=moon", headers={"Accept": accept}).status_code == 200
