"""Which events a crawler made: they are kept, marked ``bot`` with the crawler's name, and left
out of the readers' figures (/stats, the dashboard).

A search engine's renderer runs the widget's script (Googlebot, bingbot), so its page views ask
for recommendations nobody reads; a crawler follows the click links of a page whose links a
backend wrote. Counted, both move the click-through that site owners judge by.

A User-Agent is read against crawlerdetect's patterns (JayBizzle's CrawlerDetect list, 1,400 of
them). The event keeps the name the crawler gives ("Googlebot"), never the User-Agent itself.

- An answer is a crawler's when its User-Agent has a browser's form ("Mozilla/...") and names a
  crawler. HTTP libraries (python-requests, okhttp, GuzzleHttp, WordPress's) are on the list too,
  but they are a backend asking for the page view it serves to a reader: not a crawler's.
- A click, or a view (the widget's post that its list is in view), is a crawler's when its
  User-Agent names any, an HTTP library included (a reader clicks in a browser), or when it has
  none.

The event writer marks the events (``mark``), not the request: a User-Agent not seen before costs
0.5-2.5 ms of regular expressions, and the first one 50 ms to compile them.
"""

import functools

# The patterns' cost is linear in the text (about 5 ms a kilobyte); browsers' agents are under 400
# characters.
AGENT_CHARS = 512
NO_AGENT = "no User-Agent"
BROWSERS_ONLY = ("clicks", "views")  # events only a browser makes for a reader


def user_agent(request):
    """The request's User-Agent as events keep it until they are marked: cut to AGENT_CHARS, since
    a buffer of 10,000 events (Mongo down) of 8 KB agents would be 80 MB."""
    return request.headers.get("User-Agent", "")[:AGENT_CHARS]


@functools.cache
def _detector():
    from crawlerdetect import CrawlerDetect

    return CrawlerDetect()


@functools.lru_cache(maxsize=4096)
def crawler_name(user_agent):
    """The crawler ``user_agent`` names ("Googlebot", "python-requests"), or None."""
    detector = _detector()
    return detector.get_matches() if detector.is_crawler(user_agent) else None


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
    the database would otherwise drop as the crawler's duplicate."""
    if "user_agent" not in event:  # marked already (a batch written again), or an event with no agent
        return
    name = crawler(collection, event.pop("user_agent"))
    if name is None:
        return
    event["bot"] = name
    if collection in BROWSERS_ONLY:
        event["_id"] = f"{event['_id']}-bot"
