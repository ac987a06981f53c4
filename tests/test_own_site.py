"""Own-site mode: FETCH_ALLOWED_DOMAINS restricts what the function fetches at all."""

import pytest

from conftest import make_client


def own_site_client(function_env, allowed):
    return make_client({**function_env, "FETCH_ALLOWED_DOMAINS": allowed})


@pytest.mark.parametrize("url", [
    "http://no-such-host.invalid/article",  # a DNS lookup would make this a 422
    "https://example.com/post",
    "https://en.wikipedia.org.evil.example/wiki/Apollo_11",
])
def test_corpus_mode_refuses_other_hosts_before_any_lookup(function_env, url):
    client = own_site_client(function_env, "corpus")
    response = client.get("/", query_string={"url": url})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "domain_not_allowed"


def test_corpus_mode_refuses_a_loopback_page_without_connecting(function_env, pages):
    client = own_site_client(function_env, "corpus")
    before = sum(pages.hits.values())
    response = client.get("/", query_string={"url": pages.url("/moon-landing.html")})
    assert response.status_code == 403 and sum(pages.hits.values()) == before


def test_corpus_mode_still_answers_corpus_pages(function_env):
    client = own_site_client(function_env, "corpus")
    body = client.get("/", query_string={"url": "https://en.wikipedia.org/wiki/Apollo_8"}).get_json()
    assert body["source"] == "corpus" and body["results"]


def test_a_listed_domain_is_fetched(function_env, pages):
    client = own_site_client({**function_env, "FETCH_ALLOW_PRIVATE_HOSTS": "localhost"}, "localhost")
    response = client.get("/", query_string={"url": f"http://localhost:{pages.port}/moon-landing.html"})
    assert response.status_code == 200 and response.get_json()["source"] == "fetched"
    refused = client.get("/", query_string={"url": "https://example.org/"})
    assert refused.status_code == 403
