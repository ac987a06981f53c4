#!/usr/bin/env python3
"""What a hostile page can cost the extractor (``make eval-extract-worst``).

Each page below is an article of five paragraphs followed by ~1 MB of one construct that made
extraction slow before function.extract bounded its work (MAX_ELEMENTS, MAX_PARAGRAPHS, MAX_CLASS_CHARS,
attribute_floods.MAX_TAG_ATTRIBUTES). A fetched page may be five times that (FETCH_MAX_BYTES), and
the Python part of extraction holds the GIL: every other request of the worker waits meanwhile.

Prints, per page: our time (the best of --repeat runs), the seed's (its jusText call, as
bench/eval_extract.py makes it, once, in a child process stopped after --seed-limit seconds) and
the ratio, and whether our answer still holds the article; the dev pages' median for scale.
"""
import argparse
import gzip
import json
import multiprocessing
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import justext  # noqa: E402

from bench.eval_extract import dev_dir, seed_extract  # noqa: E402
from function.extract import extract_article  # noqa: E402

SENTENCE = ("The council met on Tuesday to discuss the budget, and the members agreed that the parks "
            "would get more money this year after a long debate about the roads.")
ARTICLE = "".join(f"<p>{SENTENCE} ({i})</p>" for i in range(5))
SIZE = 1_000_000


def repeated(unit, size=SIZE):
    return unit * (size // len(unit))


def attributes(count, every=0, between=""):
    return " ".join(f"a{i}=x" + (f" {between}" if every and i % every == every - 1 else "") for i in range(count))


PAGES = {  # name: the page's body after the article
    "100k one-letter headings": repeated("<h2>x</h2>"),
    "tiny paragraphs 250 deep": "<div>" * 250 + repeated("<p>x</p>"),
    "headings 250 deep": "<div>" * 250 + repeated("<h2>x</h2>"),
    "tiny paragraphs, flat": repeated("<p>x</p>"),
    # each <figure> without a picture hands its paragraphs on to the one around it
    "tiny paragraphs in figures 250 deep": "<figure>" * 250 + repeated("<p>x</p>"),
    "a 1 MB camelCase class": '<div class="' + repeated("aB") + '">x</div>',
    "250k links": repeated("<a href=x>"),
    "one tag of 110k attributes": f"<p {repeated(attributes(1), SIZE // 10)} {attributes(110_000)}>x</p>",
    "tags of 1,000 attributes": repeated(f"<p {attributes(1_000)}>x</p>"),
    "one tag of 110k quoted '>' values": "<p " + " ".join(f'a{i}=">"' for i in range(110_000)) + ">x</p>",
    # one tag to libxml2, which follows HTML's tokenizer; runs of 150 between "<" and ">"
    "one tag of 110k, a quoted '>' every 150": "<p " + attributes(110_000, every=150, between='q=">"') + ">x</p>",
    "one tag of 110k, a '<b' every 150": "<p " + attributes(110_000, every=150, between="<b") + ">x</p>",
}
# whole pages: an article that is only in the page's JSON-LD, as HTML of one flooded tag
JSON_LD_ARTICLE = json.dumps({"@type": "NewsArticle", "articleBody": f"<div {attributes(110_000)}>{ARTICLE}</div>"})
WHOLE_PAGES = {
    # the story's <header> is walked again for its standfirst (Article.summary)
    "a story's <header> of 1 MB of prose": "<html lang='en'><body><article><header><h1>The budget</h1>"
                                           f"{repeated(f'<p>{SENTENCE}</p>')}</header>{ARTICLE}</article></body></html>",
    "JSON-LD articleBody: one tag of 110k": "<html lang='en'><body><p>Subscribe</p>"
                                            f"<script type='application/ld+json'>{JSON_LD_ARTICLE}</script></body></html>",
}


def seed_seconds(html, limit):
    """The seed's time on ``html`` in a child process, or None past ``limit`` seconds (its jusText
    revision is quadratic in short paragraphs: some of these pages take it hours)."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        pending = pool.apply_async(_seed_time, (html,))
        try:
            return pending.get(limit)
        except multiprocessing.TimeoutError:
            return None


def _seed_time(html):
    started = time.perf_counter()
    seed_extract(html, justext.get_stoplist("English"))
    return time.perf_counter() - started


def best_of(extract, html, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = extract(html)
        best = min(best, time.perf_counter() - started)
    return out, best


def dev_median_ms():
    root = dev_dir() / "html"
    if not root.is_dir():
        return None
    times = sorted(best_of(extract_article, gzip.decompress(path.read_bytes()), 1)[1]
                   for path in sorted(root.glob("*.html.gz")))
    return times[len(times) // 2] * 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed-limit", type=float, default=60.0, help="seconds the seed gets a page (0: not run)")
    args = parser.parse_args(argv)
    print(f"{'page (~1 MB after a 5-paragraph article)':42} {'ours s':>8} {'seed s':>8} {'seed/ours':>9}  article kept")
    pages = {name: f"<html lang='en'><body>{ARTICLE}{body}</body></html>" for name, body in PAGES.items()}
    for name, page in {**pages, **WHOLE_PAGES}.items():
        html = page.encode()
        article, ours = best_of(extract_article, html, args.repeat)
        seed = seed_seconds(html, args.seed_limit) if args.seed_limit else 0
        kept = sum(f"{SENTENCE} ({i})" in article.text for i in range(5))
        if not args.seed_limit:
            seed_cells = f"{'':8} {'':9}"
        elif seed is None:
            seed_cells = f"{'> ' + format(args.seed_limit, 'g'):>8} {'> ' + format(args.seed_limit / ours, '.0f'):>9}"
        else:
            seed_cells = f"{seed:8.2f} {seed / ours:9.1f}"
        print(f"{name:42} {ours:8.3f} {seed_cells}  {kept}/5", flush=True)
    median = dev_median_ms()
    if median is not None:
        print(f"dev pages' median, for scale: {median:.1f} ms a page")


if __name__ == "__main__":
    main()
