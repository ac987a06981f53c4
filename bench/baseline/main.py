"""The seed's way of serving, as the benchmark's baseline (functions-framework target ``handle``).

    BASELINE_DATA=bench/cache/baseline/N functions-framework --source bench/baseline/main.py --target handle

Written from the issue's description of the seed, on purpose without our
changes: at start the whole corpus and a gensim ``MatrixSimilarity`` are
loaded into RAM; a request computes all N scores, ``sorted()`` the full list
in Python, re-reads the id-to-article JSON and inserts its log event into
MongoDB synchronously. Same tokenizer and model as ours, so only the way of
serving differs.
"""

import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import flask  # noqa: E402
import functions_framework  # noqa: E402
import pymongo  # noqa: E402
from gensim.corpora import Dictionary  # noqa: E402
from gensim.models import LsiModel, TfidfModel  # noqa: E402
from gensim.similarities import MatrixSimilarity  # noqa: E402

from function.tokens import tokenize  # noqa: E402

DATA = Path(os.environ["BASELINE_DATA"])
CORPUS = [json.loads(line) for line in open(Path((DATA / "corpus").read_text().strip()), encoding="utf-8")]
DICTIONARY = Dictionary.load(str(DATA / "dictionary.gensim"))
TFIDF = TfidfModel.load(str(DATA / "tfidf.gensim"))
LSI = LsiModel.load(str(DATA / "lsi.gensim"))
INDEX = MatrixSimilarity.load(str(DATA / "index.gensim"))
EVENTS = pymongo.MongoClient(os.environ["MONGODB"]).get_default_database()["requests"] if os.environ.get("MONGODB") else None


@functions_framework.http
def handle(request):
    started = time.perf_counter()
    text = request.args.get("text", "")
    k = int(request.args.get("k", 10))
    query = LSI[TFIDF[DICTIONARY.doc2bow(tokenize(text))]]
    scores = INDEX[query]
    ranked = sorted(enumerate(scores), key=lambda item: -item[1])[:k]
    articles = json.loads((DATA / "articles.json").read_text())
    results = [{"rank": rank, **articles[str(row)], "score": round(float(score), 4)}
               for rank, (row, score) in enumerate(ranked, 1)]
    answer = {"request_id": uuid.uuid4().hex, "results": results,
              "timings_ms": {"total": round((time.perf_counter() - started) * 1000, 2)}}
    if EVENTS is not None:
        EVENTS.insert_one({"_id": answer["request_id"], "ts": datetime.now(timezone.utc), "kind": "text",
                           "results": [r["id"] for r in results], "corpus_size": len(CORPUS)})
    return flask.jsonify(answer)
