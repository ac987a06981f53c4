"""Steps of a request taken away, for bench.step_costs: each replaced by itself memoised by its
input. Once each of the bench's queries has been asked (step_costs warms with all of them), a
request gets its own query's real result from the step at no cost, so the rest of the request
(the other steps, the documents read, the answer's size) works as it does whole. The
selection's key, its 10k scores' bytes, still costs ~10 us a request.
"""

from function import app as app_module
from function import clicks, store


def memoised(function, key):
    """``function`` giving the result of its first call with the same ``key(*args)``."""
    results = {}

    def stand_in(*args):
        found = key(*args)
        if found not in results:
            results[found] = function(*args)
        return results[found]

    return stand_in


class MemoisedProduct:
    """An engine's vectors whose product with a query is computed once per query."""

    def __init__(self, vectors):
        self._vectors = vectors
        self._product = memoised(lambda query: vectors @ query, lambda query: query.tobytes())

    def __matmul__(self, query):
        return self._product(query)

    def __len__(self):
        return len(self._vectors)

    def __getitem__(self, rows):
        return self._vectors[rows]

    def __getattr__(self, name):
        return getattr(self._vectors, name)


def _terms_key(self, terms, *k):
    return (id(self), terms.ids.tobytes(), terms.counts.tobytes(), *k)


def _without_product(app):
    for name in app.stores.names():
        for engine in app.stores.get(name).engines.values():
            if isinstance(engine, store.LsiEngine):
                if engine.ann is not None:
                    raise SystemExit("product: this store searches an ANN graph, not a product over every row")
                engine.vectors = MemoisedProduct(engine.vectors)


def _without_json(app):
    real = app_module.json_response
    # the text of the first answer with the same documents: of the same length, its ids aside
    by_results = memoised(lambda body: real(body).get_data(),
                          lambda body: (body["store_version"], *(result["id"] for result in body["results"])))

    def json_response(body, status=200, headers=None):
        if status != 200 or "results" not in body:  # not an answer: errors, /healthz
            return real(body, status, headers)
        return app_module.Response(by_results(body), mimetype="application/json", headers=app_module.API_HEADERS)

    app_module.json_response = json_response  # looked up by App.recommend at each call


STEPS = {  # name: what takes it away from the app
    "lookup": lambda app: setattr(  # the query vector, the product and the selection
        store.LsiEngine, "search", memoised(store.LsiEngine.search, _terms_key)),
    "query_vector": lambda app: setattr(
        store.LsiEngine, "query_vector", memoised(store.LsiEngine.query_vector, _terms_key)),
    "product": _without_product,
    "selection": lambda app: setattr(store, "top_k", memoised(  # looked up by LsiEngine at each call
        store.top_k, lambda scores, k, exclude: (scores.tobytes(), k, tuple(exclude)))),
    "near_duplicates": lambda app: setattr(  # an answer's hits checked pairwise (recommend._near_duplicates)
        store.LsiEngine, "near_duplicates", memoised(store.LsiEngine.near_duplicates,
                                                     lambda self, rows, threshold: (id(self), tuple(rows), threshold))),
    "terms": lambda app: setattr(
        store.Store, "terms", memoised(store.Store.terms, lambda self, text: (id(self), text))),
    # an answer's links signed once per list of documents: the same length, no HMAC or string building
    "click_links": lambda app: setattr(clicks, "sign_answer", memoised(
        clicks.sign_answer, lambda key, request_id, corpus, engine, issued_ms, targets: tuple(targets))),
    "event_log": lambda app: setattr(app.recommender.events, "record", lambda collection, event: None),
    "json": _without_json,
}


def take_away(app, steps):
    for step in steps:
        if step not in STEPS:
            raise SystemExit(f"no step {step!r} to take away (steps: {', '.join(STEPS)})")
        STEPS[step](app)
