"""GET /openapi.json: a valid OpenAPI document naming every route, whose
schemas the function's real answers (success and error) satisfy."""

import os
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conftest import STATS_TOKEN, basic_auth, make_client, wait_for_events
from function.app import create_app

DOC_URI = "urn:related-content:openapi"


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def test_the_document_is_valid_openapi(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.1") and spec["servers"] == [{"url": "http://localhost"}]


def test_the_documents_server_follows_the_request_and_says_so_to_caches(client, function_env):
    forwarded = client.get("/openapi.json", headers={"X-Forwarded-Proto": "https"})
    assert forwarded.get_json()["servers"] == [{"url": "https://localhost"}]
    assert "public" in forwarded.headers["Cache-Control"] and forwarded.headers["Vary"] == "Host, X-Forwarded-Proto"
    fixed = make_client({**function_env, "PUBLIC_URL": "https://related.example"}).get("/openapi.json")
    assert fixed.get_json()["servers"] == [{"url": "https://related.example"}] and "Vary" not in fixed.headers


def test_every_route_and_method_is_described(spec, function_env):
    routes = create_app({**os.environ, **function_env}).routes
    served = {(path, method.lower()) for path, methods in routes.items() for method in methods}
    # HEAD answers as GET on every route; it is described only where it differs: /click records
    # no click, / no request event
    described = {(path, method) for path, item in spec["paths"].items() for method in item
                 if method not in ("options", "head")}
    assert served == described
    assert {(path, "get") for path, item in spec["paths"].items() if "head" in item} <= served
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert operation["summary"] and operation["operationId"], (path, method)
            assert "default" in operation["responses"]


class Checker:
    """Validates real responses against the response schemas the document gives them."""

    def __init__(self, spec):
        self.spec = spec
        self.registry = Registry().with_resource(DOC_URI, Resource.from_contents(spec, DRAFT202012))
        self.checked = set()

    def check(self, response, path, method="get"):
        """``response`` if its status and content type are documented for the operation and it fits the schema."""
        status = response.status_code
        responses = self.spec["paths"][path][method]["responses"]
        assert str(status) in responses, f"{method.upper()} {path} answered {status}, which is not documented"
        self.checked.add(status)
        if status in (204, 302, 303):
            return response
        content = responses[str(status)].get("content", {})
        assert response.mimetype in content, f"{method.upper()} {path} {status}: {response.mimetype} not documented"
        if response.mimetype == "application/json":
            schema = _rebase({"$schema": "https://json-schema.org/draft/2020-12/schema",
                              **content[response.mimetype]["schema"]})
            errors = list(Draft202012Validator(schema, registry=self.registry).iter_errors(response.get_json()))
            assert not errors, f"{method.upper()} {path} {status}: " + "; ".join(
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
        return response


def _rebase(schema):
    """Point the document's local refs (#/components/...) at the document's URI."""
    if isinstance(schema, dict):
        return {k: (DOC_URI + v if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def test_real_answers_match_their_schemas(client, spec, pages, function_env):
    checker = Checker(spec)
    check = checker.check
    body = check(client.get("/?text=moon+landing+astronaut&k=3"), "/").get_json()
    check(client.post("/", json={"text": "greek philosophy", "k": 2}), "/", "post")
    assert "page" in check(client.get("/", query_string={"url": pages.url("/moon-landing.html")}), "/").get_json()
    check(client.get("/?id=662"), "/")
    check(client.get("/?text=moon", headers={"Accept": "text/html"}), "/")
    check(client.options("/"), "/", "options")
    for query in ("", "text=moon&k=0", "text=moon&corpus=nope", "text=zzzzqqq+xxyyzz", "text=moon&colour=1",
                  "text=" + "a" * 20000):
        check(client.get("/?" + query), "/")
    check(client.post("/", data="text=moon", content_type="application/x-www-form-urlencoded"), "/", "post")
    browser = {"Accept": "text/html"}  # the try-it page's form: sent on to its GET, or answered when long
    check(client.post("/", data={"text": "moon"}, headers=browser), "/", "post")
    check(client.post("/", data={"text": "moon " * 2000}, headers=browser), "/", "post")
    check(client.post("/", json={"text": "x" * 100_001}), "/", "post")
    pages.add("/spec-gone", b"<html><body>gone</body></html>", status=404)
    pages.add("/spec-broken", b"oops", status=500)
    pages.add("/spec-binary", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, content_type="image/png")
    for path in ("/spec-gone", "/spec-broken", "/spec-binary"):
        check(client.get("/", query_string={"url": pages.url(path)}), "/")

    click_url = body["results"][0]["click_url"]
    check(client.get(click_url), "/click")
    check(client.get(click_url.replace("&s=", "&s=AAAA")), "/click")
    check(client.get(click_url.split("&s=")[0]), "/click")

    wait_for_events(function_env["MONGODB"], "clicks", 1)
    stats = check(client.get("/stats"), "/stats").get_json()
    assert stats["engines"] and stats["ctr_by_rank"]
    check(client.get("/stats?days=abc"), "/stats")
    check(client.get("/stats?corpus=wikki"), "/stats")  # 404 unknown_corpus
    check(client.get("/healthz"), "/healthz")
    check(client.get("/dashboard"), "/dashboard")
    check(client.get("/dashboard?days=0"), "/dashboard")
    check(client.get("/dashboard?corpus=wikki"), "/dashboard")  # 404, as a page
    check(client.get("/dashboard?corpus=" + "a" * 20000), "/dashboard")  # 414, as a page
    check(client.get("/openapi.json"), "/openapi.json")
    check(client.get("/assets/site.css"), "/assets/site.css")
    check(client.get("/assets/icon.svg"), "/assets/icon.svg")
    check(client.get("/assets/widget.js"), "/assets/widget.js")
    assert {200, 204, 302, 400, 403, 404, 413, 414, 415, 422, 502} <= checker.checked


def test_answers_without_an_event_database_match_too(spec, function_env):
    client = make_client({**function_env, "MONGODB": ""})
    checker = Checker(spec)
    health = checker.check(client.get("/healthz"), "/healthz").get_json()
    assert health["mongo"].items() >= {"configured": False, "reachable": False}.items()
    checker.check(client.get("/stats"), "/stats")
    checker.check(client.get("/dashboard"), "/dashboard")
    assert checker.checked == {200, 503}


def test_the_figures_refused_without_the_stats_token_match_too(spec, function_env):
    client = make_client({**function_env, "STATS_TOKEN": STATS_TOKEN})
    checker = Checker(spec)
    for path in ("/stats", "/dashboard"):
        refused = checker.check(client.get(path), path)
        documented = spec["paths"][path]["get"]["responses"]["401"]["headers"]["WWW-Authenticate"]["schema"]
        assert refused.headers["WWW-Authenticate"] == documented["const"]
        checker.check(client.get(path, headers=basic_auth("owner", STATS_TOKEN)), path)
    # /healthz without the token: its traffic counts are left out
    checker.check(client.get("/healthz"), "/healthz")
    checker.check(client.get("/healthz", headers=basic_auth("owner", STATS_TOKEN)), "/healthz")
    assert checker.checked == {200, 401}


def test_the_schemas_catch_a_wrong_answer(spec):
    """The check itself can fail: an answer missing a field or with a stray one does not pass."""
    registry = Checker(spec).registry
    schema = _rebase({"$ref": "#/components/schemas/Recommendations"})
    good = {"request_id": "r", "corpus": "wiki", "store_version": "v1", "engine": "lsi", "source": "text",
            "results": [], "timings_ms": {"fetch": 0, "extract": 0, "lookup": 0.1, "total": 0.2}}
    validator = Draft202012Validator(schema, registry=registry)
    assert validator.is_valid(good)
    assert not validator.is_valid({k: v for k, v in good.items() if k != "engine"})
    assert not validator.is_valid({**good, "extra": 1})
    stats = Draft202012Validator(_rebase({"$ref": "#/components/schemas/Stats"}), registry=registry)
    assert not stats.is_valid({"corpus": None, "since": None, "engines": {}, "requests": 1})


def test_every_error_code_the_function_names_is_listed(spec):
    """The codes are "stable, machine-readable": a client switches on them. invalid_id, invalid_host
    and fetch_failed had been answered and not listed. Read from the source: code="..." and the
    (status, "code") of a fetch error."""
    listed = set(re.findall(r"[a-z]+(?:_[a-z]+)+", spec["components"]["schemas"]["Error"]["properties"]["error"]
                            ["properties"]["code"]["description"]))
    named = set()
    for path in (Path(__file__).parent.parent / "function").glob("*.py"):
        source = re.sub(r"\s+", " ", path.read_text())
        named |= set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', source))
        named |= set(re.findall(r'\b[1-5][0-9][0-9], "([a-z]+_[a-z_]+)"', source))
    assert len(named) > 30 and not named - listed, sorted(named - listed)


def test_the_403_of_a_recommendation_names_each_refusal(spec):
    """A page is refused for its port (forbidden_port, outside FETCH_PORTS) as for its address: the 403's
    description had named the address, the domains and the own fetcher only."""
    for method in ("get", "post"):
        description = spec["paths"]["/"][method]["responses"]["403"]["description"]
        for cause in ("private", "FETCH_PORTS", "FETCH_ALLOWED_DOMAINS", "own_fetcher"):
            assert cause in description, (method, cause)
