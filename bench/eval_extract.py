#!/usr/bin/env python3
"""Score our article extraction on the extraction dev pages (``make eval-extract``).

Writes, under bench/out/extract/:
  ours.json  -- function.extract.extract_article on every dev page
  seed.json  -- the seed's exact call: justext.justext(html, get_stoplist("English"))
                with defaults, non-boilerplate paragraphs joined by blank lines
then prints the benchmark's own table (its score.py, run as a subprocess) with
ours and the seed among the peers, and the per-page time of both.

The dev pages live in <repo>/../shared/bench/extraction-dev, or wherever the
EXTRACTION_DEV_DIR environment variable points.
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import justext  # noqa: E402

from function.extract import extract_article  # noqa: E402


def dev_dir():
    default = REPO.parent / "shared" / "bench" / "extraction-dev"
    return Path(os.environ.get("EXTRACTION_DEV_DIR") or default)


def load_pages(root):
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf8"))
    pages = {}
    for page_id in truth:
        pages[page_id] = gzip.decompress((root / "html" / f"{page_id}.html.gz").read_bytes())
    return truth, pages


def seed_extract(html, stoplist):
    paragraphs = justext.justext(html, stoplist)
    return "\n\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def timed(extract, html, url, repeat):
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        text = extract(html, url)
        best = min(best, time.perf_counter() - started)
    return text, best * 1000


def run(methods, pages, repeat):
    """Each method on every page, interleaved page by page so that both see the same machine load.

    Returns {name: ({page id: {"articleBody": text}}, [ms per page])}.
    """
    results = {name: ({}, []) for name in methods}
    for page_id, (html, url) in pages.items():
        for name, extract in methods.items():
            text, ms = timed(extract, html, url, repeat)
            results[name][0][page_id] = {"articleBody": text}
            results[name][1].append(ms)
    return results


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="time each page N times, keep the best")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "extract"))
    args = parser.parse_args(argv)

    root = dev_dir()
    if not (root / "ground-truth.json").is_file():
        sys.exit(f"no extraction dev set at {root} (set EXTRACTION_DEV_DIR)")
    truth, raw = load_pages(root)
    pages = {k: (raw[k], truth[k].get("url")) for k in truth}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    english = justext.get_stoplist("English")
    extract_article(b"<html><body><p>warm-up</p></body></html>")  # load stoplists once
    results = run({"ours": lambda html, url: extract_article(html, url=url).text,
                   "seed": lambda html, url: seed_extract(html, english)}, pages, args.repeat)
    (ours, ours_ms), (seed, seed_ms) = results["ours"], results["seed"]

    ours_path, seed_path = out_dir / "ours.json", out_dir / "seed.json"
    ours_path.write_text(json.dumps(ours, ensure_ascii=False, indent=0), encoding="utf8")
    seed_path.write_text(json.dumps(seed, ensure_ascii=False, indent=0), encoding="utf8")

    peers = sorted(str(p) for p in (root / "peers").glob("*.json"))
    cmd = [sys.executable, str(root / "score.py"), str(root / "ground-truth.json"),
           *peers, str(seed_path), str(ours_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    if result.returncode:
        sys.stderr.write(result.stderr)
        return result.returncode

    print()
    print(f"{'ms per page':32} {'median':>7} {'p95':>7}  pages={len(pages)}")
    for name, ms in (("seed", seed_ms), ("ours", ours_ms)):
        print(f"{name:32} {statistics.median(ms):7.1f} {pct(ms, 0.95):7.1f}")
    print(f"\npredictions in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
