"""Loopback websites for the tests: ``Site`` serves whatever a test adds, and
``publish`` fills one with a small site for the crawler tests.

Articles on four topics (generated from the sentences below), a robots.txt,
and sitemaps of every kind the crawler reads: an index, a gzip'd sitemap, a
plain one. Routes can fail on purpose (a scripted sequence of answers) and be
slow (to see how many requests a host gets at once); every hit is counted.
"""

import gzip
import http.server
import threading
import time
from collections import Counter
from html import escape

TOPICS = {
    "volcano": [
        "A volcano forms where molten rock from deep inside the earth finds a way up through the crust.",
        "When the pressure of the gas dissolved in the magma becomes too great, the volcano erupts and throws out ash and lava.",
        "Lava flows can travel for many kilometres before they cool down and turn into hard black basalt.",
        "Volcanologists watch the ground for small earthquakes, because they often come before an eruption.",
        "The ash cloud of a large eruption can reach the stratosphere and cool the climate of the whole planet for a year.",
        "Iceland sits on a ridge where two plates move apart, and its volcanoes erupt every few years.",
        "The soil around an old volcano is very fertile, which is why farmers have always lived on its slopes.",
        "A caldera is the wide crater that is left when the top of a volcano collapses into the emptied magma chamber.",
        "Hot springs and geysers are heated by magma that lies not far below the surface.",
        "Pyroclastic flows of hot gas and rock race down the mountain faster than anyone could run.",
    ],
    "baking": [
        "Good bread needs only flour, water, salt and yeast, but the baker needs a lot of patience.",
        "The yeast feeds on the sugars in the flour and releases the gas that makes the dough rise.",
        "Kneading the dough develops the gluten, a network of proteins that holds the gas in the loaf.",
        "A sourdough starter is a mixture of flour and water in which wild yeast and bacteria live together.",
        "Bakers often let the dough rise slowly overnight in a cool place, because the flavour improves with time.",
        "A very hot oven with some steam gives the loaf a crisp and shiny crust.",
        "Cakes rise thanks to baking powder or to air that is beaten into the eggs and the butter.",
        "Weighing the flour instead of measuring it with cups makes a recipe come out the same every time.",
        "The loaf is done when it sounds hollow as you knock on the bottom of it.",
        "Rye flour holds less gluten than wheat, so rye bread is dense and keeps fresh for many days.",
    ],
    "sailing": [
        "A sailing boat moves because the wind flowing over the curved sail creates lift, much like the wing of a plane.",
        "Sailors cannot sail straight into the wind, so they zigzag towards it in a series of tacks.",
        "The keel under the hull keeps the boat from being pushed sideways and stops it from capsizing.",
        "Before leaving the harbour, the skipper checks the weather forecast, the tides and the charts.",
        "On a long ocean passage the crew keeps watch in turns, day and night.",
        "Reefing the sail makes it smaller, which the crew does when the wind grows too strong.",
        "Old sailors found their position with a sextant by measuring the height of the sun above the horizon.",
        "The trade winds blow steadily from the east and carried ships across the Atlantic for centuries.",
        "A mooring line and a good knot keep the boat safely tied to the pier during a storm.",
        "Navigation lights tell other ships at night in which direction a vessel is heading.",
    ],
    "chess": [
        "Chess is played on a board of sixty four squares by two players who each command sixteen pieces.",
        "The aim of the game is to trap the opposing king so that it cannot escape, which is called checkmate.",
        "In the opening, players bring their knights and bishops out quickly and fight for the centre of the board.",
        "A pawn that reaches the last row of the board can be promoted to a queen.",
        "Strong players study endgames, because many games are decided when only a few pieces are left.",
        "Castling moves the king to safety and brings a rook into the game in a single move.",
        "A chess clock limits the time each player may spend thinking during the whole game.",
        "Computers have played chess better than any human since the end of the last century.",
        "A fork is a move in which one piece attacks two of the opponent's pieces at the same time.",
        "Tournament players record every move so that their games can be studied afterwards.",
    ],
}


def paragraphs(topic, seed, count=4, per_paragraph=4):
    """``count`` paragraphs on ``topic``, a different mix of its sentences for each ``seed``."""
    sentences = TOPICS[topic]
    out = []
    for p in range(count):
        picked = [sentences[(seed * 3 + p * per_paragraph + i) % len(sentences)] for i in range(per_paragraph)]
        out.append(" ".join(picked))
    return out


def article_html(title, paras, canonical=""):
    link = f'<link rel="canonical" href="{escape(canonical)}">' if canonical else ""
    body = "".join(f"<p>{escape(p)}</p>" for p in paras)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} | Test Site</title>'
        f"{link}</head><body><header><nav><a href='/'>Home</a> <a href='/about'>About</a></nav></header>"
        f"<main><article><h1>{escape(title)}</h1>{body}</article></main>"
        f"<footer><p>Copyright the test site. All rights reserved.</p></footer></body></html>"
    ).encode()


def urlset(entries):
    """A <urlset> sitemap of (url, lastmod or None)."""
    items = "".join(
        f"<url><loc>{escape(url)}</loc>" + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "") + "</url>"
        for url, lastmod in entries
    )
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</urlset>').encode()


def sitemap_index(urls):
    items = "".join(f"<sitemap><loc>{escape(url)}</loc></sitemap>" for url in urls)
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</sitemapindex>').encode()


class Site:
    """Loopback HTTP server: path -> answers (status, headers, body), the last one repeating."""

    def __init__(self):
        self.routes = {}
        self.delays = {}
        self.hits = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with site._lock:
                    site.hits[self.path] += 1
                    site.in_flight += 1
                    site.max_in_flight = max(site.max_in_flight, site.in_flight)
                    answers = site.routes.get(self.path)
                    if answers and len(answers) > 1:
                        status, headers, body = answers.pop(0)
                    elif answers:
                        status, headers, body = answers[0]
                    else:
                        status, headers, body = 404, {"Content-Type": "text/html"}, b"<html><body>gone</body></html>"
                try:
                    time.sleep(site.delays.get(self.path, 0))
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with site._lock:
                        site.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return self.base + path

    def body(self, path):
        return self.routes[path][-1][2]

    def add(self, path, body, status=200, content_type="text/html; charset=utf-8", headers=None):
        with self._lock:
            self.routes[path] = [(status, {"Content-Type": content_type, **(headers or {})}, body)]
        return self.url(path)

    def script(self, path, answers):
        """Serve ``answers`` [(status, body)] in turn; the last one stays."""
        with self._lock:
            self.routes[path] = [(status, {"Content-Type": "text/html; charset=utf-8"}, body)
                                 for status, body in answers]
        return self.url(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


ARTICLE_PATHS = [f"/{topic}/{n}" for topic in TOPICS for n in range(1, 4)]


def title_of(path):
    topic, n = path.strip("/").split("/")
    return f"{topic.capitalize()} notes, part {n}"


def page_paragraphs(topic, n):
    """Article ``n``'s paragraphs: 6 of its topic's 10 sentences, from the 3n-th on, so that it shares
    half of them with the next article of its topic. Every sentence of the topic in another order had
    made the articles of a topic near-duplicates, which an answer lists once."""
    return paragraphs(topic, n, count=2, per_paragraph=3)


def page_for(path, topic=None, title=None):
    own_topic, n = path.strip("/").split("/")
    return article_html(title or title_of(path), page_paragraphs(topic or own_topic, int(n)))


def publish(site, lastmod="2024-05-01"):
    """The whole site: 12 articles, a private page robots.txt forbids, and its sitemaps.

    /sitemap_index.xml -> /sitemaps/articles.xml.gz (gzip'd, with lastmod)
                       -> /sitemaps/more.xml (plain, the private page and a missing one)
    """
    for path in ARTICLE_PATHS:
        site.add(path, page_for(path))
    site.add("/private/secret", article_html("Secret", paragraphs("chess", 9)))
    site.add("/robots.txt", b"User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    write_sitemaps(site, {path: lastmod for path in ARTICLE_PATHS})
    return site.url("/sitemap_index.xml")


def write_sitemaps(site, lastmods):
    site.add("/sitemaps/articles.xml.gz", gzip.compress(urlset([(site.url(p), m) for p, m in lastmods.items()])),
             content_type="application/gzip")
    site.add("/sitemaps/more.xml", urlset([(site.url("/private/secret"), None), (site.url("/missing"), None)]),
             content_type="application/xml")
    site.add("/sitemap_index.xml", sitemap_index([site.url("/sitemaps/articles.xml.gz"),
                                                  site.url("/sitemaps/more.xml")]),
             content_type="application/xml")
