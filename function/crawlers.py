"""Which events a crawler made: they are kept, marked ``bot`` with the crawler's name, and left
out of the readers' figures (/stats, the dashboard).

A search engine's renderer runs the widget's script (Googlebot, bingbot), so its page views ask
for recommendations nobody reads; a crawler follows the click links of a page whose links a
backend wrote. Counted, both move the click-through that site owners judge by.

A User-Agent is read against crawlerdetect's patterns (JayBizzle's CrawlerDetect list, 1,400 of
them). The event keeps the name the crawler gives, the part of the User-Agent a pattern matched
("Googlebot"; up to AGENT_CHARS of it for a crafted one), never the whole User-Agent.

- An answer is a crawler's when its User-Agent has a browser's form ("Mozilla/...") and names a
  crawler. HTTP libraries (python-requests, okhttp, GuzzleHttp, WordPress's) are on the list too,
  but they are a backend asking for the page view it serves to a reader: not a crawler's.
- A click, or a view (the widget's post that its list is in view), is a crawler's when its
  User-Agent names any, an HTTP library included (a reader clicks in a browser), or when it has
  none.

The event writer marks the events (``mark``), not the request: a User-Agent not seen before costs
0.5-2.5 ms of regular expressions (compiling them, once a process, 36-80 ms more: not charged to the
budget), and up to 17 ms for one
crafted as a long run of letters (one of the patterns reads the run again from each character).
Agents are read in their first AGENT_CHARS characters, and within a budget of BUDGET_SECONDS a
second: an attacker sending a new agent with every click had made the writer classify at 60 events
a second, its buffer fill, and readers' events be dropped. Past the budget an agent is not read
and its event counts as a reader's, as a crawler that says it is a browser does.
"""

import functools
import logging
import time

from cachetools import LRUCache

log = logging.getLogger("related.events")

# Crawlers name themselves early (Googlebot's smartphone agent at its 150th character, AdsBot's at
# 160); a longer run of letters costs more (17 ms at 256, 65 ms at 512)
AGENT_CHARS = 256
BUDGET_SECONDS = 0.05  # of reading new agents, each second (5% of a core)
NO_AGENT = "no User-Agent"
BROWSERS_ONLY = ("clicks", "views")  # events only a browser makes for a reader


def user_agent(request):
    """The request's User-Agent as events keep it until they are marked: cut to AGENT_CHARS, since
    a buffer of 10,000 events (Mongo down) of 8 KB agents would be 80 MB."""
    return request.headers.get("User-Agent", "")[:AGENT_CHARS]


@functools.cache
def _detector():
    from crawlerdetect import CrawlerDetect

    detector = CrawlerDetect()
    # its patterns are compiled on the first agent read, once a process (36-80 ms): here, outside
    # the budget, which had spent a new worker's first second on it and left its other agents unread
    detector.is_crawler("related-content")  # not an exclusion: both pattern sets compile
    return detector


class Reader:
    """Names the crawler an agent names, remembering the last 4,096 agents, within a time budget.
    One per process: the event writer's thread is its only caller."""

    def __init__(self, budget=BUDGET_SECONDS, remember=4096):
        self.budget = budget
        self.names = LRUCache(remember)
        self.second = 0
        self.spent = 0.0
        self.unread = 0  # agents left unread for the budget
        # when the last warning was said (None: never; monotonic time starts near 0 at a host's boot,
        # so a 0.0 had kept a fresh microVM's first minute unwarned), and self.unread then
        self.warned = (None, 0)

    def __call__(self, user_agent):
        """The crawler ``user_agent`` names ("Googlebot", "python-requests"), or None (also when
        the budget of this second is spent)."""
        try:
            return self.names[user_agent]
        except KeyError:
            pass
        now = time.monotonic()
        if int(now) != self.second:
            self.second, self.spent = int(now), 0.0
        if self.spent >= self.budget:
            self.unread += 1
            if self.warned[0] is None or now - self.warned[0] >= 60:  # once a minute at most
                log.warning("%d new User-Agents left unread since the last warning: reading them had spent its "
                            "budget of %g s a second (an attacker sending new ones?); their events count as "
                            "readers'", self.unread - self.warned[1], self.budget)
                self.warned = (now, self.unread)
            return None
        detector = _detector()
        started = time.perf_counter()
        name = detector.get_matches() if detector.is_crawler(user_agent) else None
        self.spent += time.perf_counter() - started
        self.names[user_agent] = name
        return name


crawler_name = Reader()


def crawler(collection, user_agent):
    """The crawler that made an event of ``collection`` ("requests", "clicks" or "views"), or None."""
    user_agent = (user_agent or "").strip()
    if collection in BROWSERS_ONLY:
        return crawler_name(user_agent) if user_agent else NO_AGENT
    if user_agent.startswith("Mozilla/"):
        return crawler_name(user_agent)
    return None


def mark(collection, event):
    """Replace ``event``'s ``user_agent`` with ``bot``: the crawler's name, when a crawler made it.
    A crawler's click or view gets an id of its own: the link's id is kept for its reader's, which
    the database would otherwise drop as the crawler's duplicate. (One id for every crawler: a link
    two crawlers follow is one crawler's click.)"""
    if "user_agent" not in event:  # marked already (a batch written again), or an event with no agent
        return
    name = crawler(collection, event.pop("user_agent"))
    if name is None:
        return
    event["bot"] = name
    if collection in BROWSERS_ONLY:
        event["_id"] = f"{event['_id']}-bot"
