"""Charts for the dashboard, drawn here as inline SVG.

Server-side SVG needs no script and no CDN: the page works offline, prints,
and has no JavaScript to break. Every text that reaches the SVG goes through
``escape``; colours and fonts come from the stylesheet (classes only, no
inline styles, so the pages' Content-Security-Policy can forbid them).

Each chart function returns a ``Chart``: its SVG markup, or None when there
is nothing to draw, which the template turns into a "no data yet" note
instead of an empty frame.
"""

import math
import re
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

NARROW, WIDE = 520, 1000  # viewBox widths: a half-width card, a full-width one (text keeps its size)
# an axis label's width per character at the tick's 11 px (wider than most: digits, "–", "ms"), and
# the space kept between two ("10–20 ms" and "200–500 ms" had run into each other)
TICK_CHAR_WIDTH, TICK_GAP = 6.5, 8


@dataclass(frozen=True)
class Chart:
    svg: Markup | None  # None: nothing to draw

    @property
    def empty(self):
        return self.svg is None


# -- numbers and labels ----------------------------------------------------------
def nice_ceiling(value):
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= value (1 for 0)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value - 1e-12)


def ticks(top, whole=True, count=4):
    """Evenly spaced axis ticks from 0 to a round top >= ``top``."""
    step = nice_ceiling(top / count) if top > 0 else 1
    if whole:
        step = max(1, math.ceil(step))
    last = step * math.ceil(top / step - 1e-9) if top > 0 else step
    return [round(i * step, 10) for i in range(int(round(last / step)) + 1)]


def percent(value, digits=0):
    return f"{value * 100:.{digits}f}%"


def count(value):
    return f"{int(value):,}"


def plural(number, noun):
    """ "1 click", "3 clicks" """
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def short_duration(value, unit):
    """2000 ms -> "2 s", 90 s -> "1.5 min", 7200 s -> "2 h" (``unit`` "ms" or "s")."""
    if unit == "ms":
        return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"
    for size, name in ((86400, "d"), (3600, "h"), (60, "min")):
        if value >= size:
            return f"{value / size:g} {name}"
    return f"{value:g} s"


def duration_label(low, high, unit):
    """A histogram bin's label: "<1 s", "2–5 s", "≥1 d" ... (``unit`` "ms" or "s")."""
    def short(value):
        return short_duration(value, unit)

    if high is None:
        return f"≥{short(low)}"
    if low == 0:
        return f"<{short(high)}"
    low_text, high_text = short(low), short(high)
    if low_text.split(" ")[1] == high_text.split(" ")[1]:
        low_text = low_text.split(" ")[0]
    return f"{low_text}–{high_text}"


_NARROW, _WIDE = frozenset("fijlrt.,:;'|!() "), frozenset("mwMW@%")


def _em(c):
    return 0.33 if c in _NARROW else 0.95 if c in _WIDE else 0.74 if c.isupper() or c.isdigit() else 0.62


def text_width(text, size):
    """Roughly how wide ``text`` is at font ``size`` (sans-serif): enough to keep labels in their box."""
    return size * sum(map(_em, text))


def _truncate(text, width, size):
    """``text`` cut with an ellipsis to fit ``width`` at font ``size``: the longest start that fits, found
    in one pass (cutting a character at a time and measuring again took a 200,000-character title
    half an hour)."""
    text = " ".join(str(text).split())
    if text_width(text, size) <= width:
        return text
    room, used = width / size - _em("…"), 0.0
    for end, c in enumerate(text):
        used += _em(c)
        if used > room:
            return text[:end].rstrip() + "…"
    return text + "…"


# -- SVG pieces -------------------------------------------------------------------
def _attrs(**attributes):
    return "".join(f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"' for name, value in attributes.items()
                   if value is not None)


def _text(x, y, content, cls="", anchor="middle", **extra):
    return f'<text{_attrs(x=f"{x:.1f}", y=f"{y:.1f}", class_=cls or None, text_anchor=anchor, **extra)}>' \
           f"{escape(content)}</text>"


def _rect(x, y, width, height, cls, tooltip):
    box = _attrs(x=f"{x:.1f}", y=f"{y:.1f}", width=f"{max(width, 0):.1f}", height=f"{max(height, 0):.1f}", class_=cls)
    return (f"<rect{box}>"
            f"<title>{escape(tooltip)}</title></rect>")


MARK_TIP = re.compile(r"<rect [^>]*><title>([^<]*)</title>")  # _rect's tooltip


def _line(cls, x1, x2, y1, y2):
    return f'<line class="{cls}" x1="{x1:.1f}" x2="{x2:.1f}" y1="{y1:.1f}" y2="{y2:.1f}"/>'


class Frame:
    """The drawing area of one chart: viewBox size, margins, and the axes drawn on them."""

    def __init__(self, width=NARROW, height=250, left=52, right=14, top=26, bottom=46):
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, width - right, top, height - bottom

    def y_scale(self, top_tick):
        return lambda value: self.bottom - value / top_tick * (self.bottom - self.top)

    def y_axis(self, tick_values, fmt, title):
        y = self.y_scale(tick_values[-1])
        out = []
        for value in tick_values:
            out.append(_line("grid", self.left, self.right, y(value), y(value)))
            out.append(_text(self.left - 6, y(value) + 4, fmt(value), "tick", anchor="end"))
        middle = (self.top + self.bottom) / 2
        out.append(_text(14, middle, title, "axis-title", transform=f"rotate(-90 14 {middle:.1f})"))
        return out

    def x_axis(self, labels, centre, title, max_labels=9):
        every = max(1, math.ceil(len(labels) / max_labels))
        if len(labels) > 1:  # every other label, or fewer, when they are wider than the room between them
            widest = max(len(label) for label in labels) * TICK_CHAR_WIDTH + TICK_GAP
            every = max(every, math.ceil(widest / (centre(1) - centre(0))))
        out = [_line("axis", self.left, self.right, self.bottom, self.bottom)]
        out += [_text(centre(i), self.bottom + 16, label, "tick") for i, label in enumerate(labels) if i % every == 0]
        out.append(_text((self.left + self.right) / 2, self.height - 8, title, "axis-title"))
        return out

    def legend(self, entries):
        """Swatches at the top right: [(css class, label)]."""
        out, x, y = [], self.right, 12
        for cls, label in reversed(entries):
            x -= 7.0 * len(label) + 24
            out.append(f'<rect class="{cls}" x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" rx="2"/>')
            out.append(_text(x + 14, y, label, "legend", anchor="start"))
        return out

    def svg(self, body, title):
        wide = " wide" if self.width > NARROW else ""
        body = "".join(body)
        # role="img" hides a chart's parts from a screen reader, which had read its title alone: the marks'
        # tooltips (escaped already), each figure once, are its description
        figures = "; ".join(dict.fromkeys(MARK_TIP.findall(body)))
        desc = f"<desc>{figures}</desc>" if figures else ""
        # but an image's children are presentational (ARIA), links too, which VoiceOver may then hide: a chart
        # holding links is a group, named and described the same, whose links stay reachable
        role = "group" if "<a " in body else "img"
        return Markup(f'<svg viewBox="0 0 {self.width} {self.height}" role="{role}" class="chart-svg{wide}">'
                      f"<title>{escape(title)}</title>{desc}{body}</svg>")


# -- charts --------------------------------------------------------------------------
def timeline_chart(timeline):
    """Answered requests (errors stacked on top) and clicks per time bucket."""
    buckets = timeline["buckets"]
    if not any(b["requests"] or b["errors"] or b["clicks"] for b in buckets):
        return Chart(None)
    step = timeline["step_seconds"]
    starts = [datetime.fromisoformat(b["start"]) for b in buckets]
    days_apart = (starts[-1] - starts[0]).days >= 1
    fmt = "%H:%M:%S" if step < 60 else ("%m-%d %H:%M" if days_apart else "%H:%M") if step < 86400 else "%Y-%m-%d"
    labels = [start.strftime(fmt) for start in starts]
    frame = Frame(WIDE, 280)
    tick_values = ticks(max(max(b["requests"] + b["errors"], b["clicks"]) for b in buckets))
    y = frame.y_scale(tick_values[-1])
    slot = (frame.right - frame.left) / len(buckets)
    wide, narrow = slot * 0.84, slot * 0.44
    body = frame.y_axis(tick_values, count, "events per bar")
    for i, (bucket, label) in enumerate(zip(buckets, labels)):
        x = frame.left + i * slot
        answered, errors, clicks = bucket["requests"], bucket["errors"], bucket["clicks"]
        tip = f"{label} UTC: {answered:,} answered, {plural(errors, 'error')}, {plural(clicks, 'click')}"
        if answered:
            body.append(_rect(x + (slot - wide) / 2, y(answered), wide, frame.bottom - y(answered), "mark s-requests",
                              tip))
        if errors:
            body.append(_rect(x + (slot - wide) / 2, y(answered + errors), wide, y(answered) - y(answered + errors),
                              "mark s-errors", tip))
        if clicks:
            body.append(_rect(x + (slot - narrow) / 2, y(clicks), narrow, frame.bottom - y(clicks), "mark s-clicks",
                              tip))
    body += frame.x_axis(labels, lambda i: frame.left + (i + 0.5) * slot,
                         f"time (UTC), one bar per {short_duration(step, 's')}", max_labels=12)
    body += frame.legend([("s-requests", "answered requests"), ("s-errors", "errors"), ("s-clicks", "clicks")])
    return Chart(frame.svg(body, "Requests and clicks over time"))


def histogram_chart(bins, unit, x_title, title):
    """Columns over a histogram's bins, empty bins at both ends left out."""
    used = [i for i, b in enumerate(bins) if b["count"]]
    if not used:
        return Chart(None)
    shown = bins[used[0]: used[-1] + 1]
    labels = [duration_label(b["low"], b["high"], unit) for b in shown]
    total = sum(b["count"] for b in bins)
    frame = Frame()
    tick_values = ticks(max(b["count"] for b in shown))
    y = frame.y_scale(tick_values[-1])
    slot = (frame.right - frame.left) / max(len(shown), 4)
    left = frame.left + (frame.right - frame.left - slot * len(shown)) / 2
    body = frame.y_axis(tick_values, count, "count")
    for i, (b, label) in enumerate(zip(shown, labels)):
        x = left + i * slot
        if b["count"]:
            tip = f"{label}: {b['count']} ({percent(b['count'] / total)})"
            body.append(_rect(x + slot * 0.08, y(b["count"]), slot * 0.84, frame.bottom - y(b["count"]),
                              "mark s-neutral", tip))
            body.append(_text(x + slot / 2, y(b["count"]) - 4, count(b["count"]), "value"))
    body += frame.x_axis(labels, lambda i: left + (i + 0.5) * slot, x_title, max_labels=12)
    return Chart(frame.svg(body, title))


def _ctr_top_tick(rows):
    """The y axis's ticks of click-through rows: up to the highest whisker (1% at least)."""
    drawn = [row for _, row in rows if row["shown"]]
    return ticks(max(max((row["ci95"] or [0, row["ctr"]])[1] for row in drawn), 0.01), whole=False)


def _ctr_panel(frame, rows, what, unit, x_title, tick_values, name=None):
    """ctr_chart's axes, bars and whiskers in ``frame``; ``name`` (an engine's) heads the panel and its tooltips."""
    y = frame.y_scale(tick_values[-1])
    slot = (frame.right - frame.left) / max(len(rows), 5)
    body = frame.y_axis(tick_values, percent, "click-through")
    if name is not None:
        body.append(_text(frame.left, frame.top - 10, name, "row-label big", anchor="start"))
    whose = f"{name}, " if name is not None else ""
    for i, (label, row) in enumerate(rows):
        if not row["shown"]:
            continue
        x = frame.left + i * slot
        low, high = row["ci95"] or (row["ctr"], row["ctr"])
        tip = (f"{whose}{what} {label}: {percent(row['ctr'], 1)} of {plural(row['shown'], unit)} clicked "
               f"(95% interval {percent(low, 1)}–{percent(high, 1)})")
        height = max(frame.bottom - y(row["ctr"]), 1.5)  # a zero stays visible as a sliver
        body.append(_rect(x + slot * 0.2, frame.bottom - height, slot * 0.6, height, "mark s-clicks", tip))
        centre = x + slot / 2
        body.append(_line("whisker", centre, centre, y(low), y(high)))
        for end in (low, high):
            body.append(_line("whisker", centre - slot * 0.12, centre + slot * 0.12, y(end), y(end)))
    body += frame.x_axis([label for label, _ in rows], lambda i: frame.left + (i + 0.5) * slot, x_title,
                         max_labels=20)
    return body


def ctr_chart(rows, what, unit, x_title, title):
    """Click-through bars with their 95% interval as whiskers, one per (label, /stats' row of ctr, ci95,
    clicks and shown): ``what`` a label is ("rank"), ``unit`` what was shown ("answer"). A row shown
    nothing keeps its place on the axis, without a bar."""
    if not any(row["shown"] for _, row in rows):
        return Chart(None)
    frame = Frame()
    return Chart(frame.svg(_ctr_panel(frame, rows, what, unit, x_title, _ctr_top_tick(rows)), title))


def rank_ctr_chart(ctr_by_rank, max_ranks=20):
    """Click-through of each result rank: the share of the answers showing it whose link there was clicked."""
    ranks = [(rank, row) for rank, row in ctr_by_rank.items() if row.get("shown")][:max_ranks]
    return ctr_chart(ranks, "rank", "answer", "rank of the result (1 = top)", "Click-through by rank")


def _score_rows(ctr_by_score):
    """(label, row) of each band ("0.05-0.1": [0.05, 0.1)), every band in its place; the first holds any
    score under its top ("<0.05"), the last any from its bottom ("≥0.5")."""
    last = len(ctr_by_score) - 1
    bands = []
    for i, (band, row) in enumerate(ctr_by_score.items()):
        low, high = band.split("-")
        bands.append((f"<{high}" if i == 0 else f"≥{low}" if i == last else f"{low}–{high}", row))
    return bands


def engines_that_showed_links(by_engine):
    """The engines of /stats' ctr_by_score_by_engine that showed a link: the score chart's panels."""
    return [name for name, by_score in (by_engine or {}).items() if any(row["shown"] for row in by_score.values())]


SCORE_PANEL_HEIGHT = 230  # an engine's panel of the score chart: a little lower than a chart of its own


def score_ctr_chart(ctr_by_score, by_engine=None):
    """Click-through of the links shown in each score band. With links of two engines or more in
    ``by_engine`` (/stats' ctr_by_score_by_engine), one panel for each, headed by its name, on one scale:
    scores are each engine's (LSI's cosines run higher than tfidf's), and bands pooled mix the two."""
    engines = {name: _score_rows(by_engine[name]) for name in engines_that_showed_links(by_engine)}
    if len(engines) < 2:
        return ctr_chart(_score_rows(ctr_by_score), "score", "link", "score of the link shown",
                         "Click-through by score")
    tick_values = max((_ctr_top_tick(rows) for rows in engines.values()), key=lambda values: values[-1])
    body = []
    for i, (name, rows) in enumerate(engines.items()):
        panel = Frame(NARROW, SCORE_PANEL_HEIGHT, top=34)
        body.append(f'<g transform="translate(0 {i * SCORE_PANEL_HEIGHT})">')
        body += _ctr_panel(panel, rows, "score", "link", f"score of the link {name} showed", tick_values, name)
        body.append("</g>")
    whole = Frame(NARROW, SCORE_PANEL_HEIGHT * len(engines))
    return Chart(whole.svg(body, f"Click-through by score, by engine: {', '.join(engines)}"))


def engine_ctr_chart(engines):
    """One row per engine: its click-through as a dot on its 95% interval."""
    rows = [(name, s) for name, s in engines.items() if s.get("requests") and s.get("ctr") is not None]
    if not rows:
        return Chart(None)
    row_height = 40
    frame = Frame(WIDE, 20 + row_height * len(rows) + 44, left=110, right=250, top=12)
    tick_values = ticks(max(max((s["ctr_ci95"] or [0, s["ctr"]])[1] for _, s in rows), 0.01), whole=False)

    def x(value):
        return frame.left + value / tick_values[-1] * (frame.right - frame.left)

    body = []
    for value in tick_values:
        body.append(_line("grid", x(value), x(value), frame.top, frame.bottom))
        body.append(_text(x(value), frame.bottom + 16, percent(value), "tick"))
    body.append(_line("axis", frame.left, frame.right, frame.bottom, frame.bottom))
    body.append(_text((frame.left + frame.right) / 2, frame.height - 8,
                      "click-through: share of answers with a click (dot), and its 95% interval (band)", "axis-title"))
    for i, (name, s) in enumerate(rows):
        cy = frame.top + row_height * i + row_height / 2 + 4
        low, high = s["ctr_ci95"] or (s["ctr"], s["ctr"])
        tip = (f"{name}: {percent(s['ctr'], 1)} of {s['requests']} answers clicked "
               f"(95% interval {percent(low, 1)}–{percent(high, 1)})")
        body.append(_text(frame.left - 12, cy + 5, name, "row-label big", anchor="end"))
        body.append(_rect(x(low), cy - 8, x(high) - x(low), 16, f"mark interval e-{i % 4}", tip))
        body.append(f'<circle class="dot e-{i % 4}" cx="{x(s["ctr"]):.1f}" cy="{cy:.1f}" r="7">'
                    f"<title>{escape(tip)}</title></circle>")
        body.append(_text(frame.right + 14, cy + 5,
                          f"{percent(s['ctr'], 1)}  ({percent(low, 0)}–{percent(high, 0)})  n={s['requests']:,}",
                          "value big", anchor="start"))
    return Chart(frame.svg(body, "Click-through by engine"))


def engine_verdict(engines):
    """One sentence on which engine wins, judged by whether the 95% intervals overlap."""
    rows = sorted(((name, s) for name, s in engines.items() if s.get("requests") and s.get("ctr_ci95")),
                  key=lambda item: -item[1]["ctr"])
    if len(rows) < 2:
        return "Only one engine answered in this period: nothing to compare (ENGINE_WEIGHTS splits the traffic)."
    (best, b), (second, s) = rows[0], rows[1]
    if b["ctr"] == s["ctr"]:
        return f"No winner yet: {best} and {second} are level at {percent(b['ctr'], 1)}. More traffic will tell."
    if b["ctr_ci95"][0] > s["ctr_ci95"][1]:
        return f"{best} wins: its click-through's 95% interval lies above {second}'s."
    return (f"No clear winner yet: {best} leads ({percent(b['ctr'], 1)} against {percent(s['ctr'], 1)}) "
            "but the 95% intervals overlap. More traffic will tell.")


def bar_list_chart(rows, title, value_key, value_class, note=None, link=None):
    """Horizontal bars, one per row, longest first: [{'label', value_key, ...}].

    ``note(row)`` is written after the bar (default: the value); ``link(row)``
    makes the label a link (an http(s) URL, or None for none).
    """
    rows = [r for r in rows if r.get(value_key)]
    if not rows:
        return Chart(None)
    row_height, label_width, note_width = 24, 200, 150
    frame = Frame(NARROW, 10 + row_height * len(rows), left=label_width + 8, right=note_width, top=6)
    top = max(r[value_key] for r in rows)
    body = []
    for i, row in enumerate(rows):
        cy = frame.top + row_height * i + row_height / 2
        label = _text(label_width, cy + 4, _truncate(row["label"], label_width - 4, 12.5), "row-label", anchor="end")
        target = link(row) if link else None
        if target:
            label = f'<a{_attrs(href=target)}><title>{escape(row["label"])}</title>{label}</a>'
        body.append(label)
        width = max((frame.right - frame.left) * row[value_key] / top, 2)
        text = note(row) if note else count(row[value_key])
        body.append(_rect(frame.left, cy - 8, width, 16, f"mark {value_class}", f"{row['label']}: {text}"))
        body.append(_text(frame.left + width + 6, cy + 4, text, "value", anchor="start"))
    return Chart(frame.svg(body, title))
