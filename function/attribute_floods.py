"""Cut tags of too many attributes out of a page before libxml2 parses it.

libxml2 checks each attribute of a tag against all the tag's earlier ones: one tag of 110,000
attributes (1 MB) took it 19.5 s, of 200,000 a minute. So a start or end tag of more than
MAX_TAG_ATTRIBUTES attributes is cut to its bare name before parsing.

Tags are found as HTML's tokenizer finds them, which libxml2 follows since 2.14: a quoted value
may hold "<" and ">", a "<b" inside a tag is an attribute name, comments, bogus comments
(<!DOCTYPE>, <?...>, </ x>), raw text (script, style, title, ...) and script's <!-- escapes hold
no tags. A scan that knows less (a "<" or ">" ends a tag) is fooled by a flood that puts one of
them among every few hundred attributes, and one that cuts across a quote or a comment opens it
over the rest of the page.

One regular expression consumes text and tags of few attributes at C speed; Python sees only the
rare long tags and the start of each raw-text element.
"""

import functools
import re

MAX_TAG_ATTRIBUTES = 200  # a tag with more loses them all

_SPACE = r"[\t\n\f\r ]"  # HTML's whitespace: a no-break space is part of a name
_NAME = r"[^\t\n\f\r />][^\t\n\f\r />=]*+"  # an attribute name may start with "=" and hold "<", quotes
_VALUE = r"""(?:"[^"]*+"?|'[^']*+'?|[^\t\n\f\r >]*+)"""
_ATTRIBUTE = rf"{_NAME}(?:{_SPACE}*+={_SPACE}*+{_VALUE})?+"
_BETWEEN = r"[\t\n\f\r /]*+"
_TAG_END = rf"{_BETWEEN}(?:>|\Z)"
_TAG_NAME = r"[A-Za-z][^\t\n\f\r />]*+"
_NAME_ENDS = r"(?=[\t\n\f\r />]|\Z)"  # after a tag name

# elements whose content holds no tags (libxml2 2.14 as HTML: noscript is read as markup)
RAW_TEXT = ("script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title", "plaintext")
# Names match in ASCII only, as libxml2's do: Python's IGNORECASE alone also takes "ſ" for "s" and
# "ı" for "i", so that "</ſcript" had ended a script for the scan and not for libxml2.
_RAW_NAME = rf"(?ai:{'|'.join(RAW_TEXT)}){_NAME_ENDS}"


@functools.lru_cache(maxsize=None)
def _plain(limit):
    """What needs no decision: text, a comment, a bogus comment, an end tag or a start tag (not
    one of raw text) of at most ``limit`` attributes, and a "<" that starts none of these."""
    return re.compile(rf"""(?:
        [^<]++
      | <(?![A-Za-z/!?])
      | <!--(?:-?>|(?s:.*?)(?:--!?>|\Z))
      | <(?!{_RAW_NAME}){_TAG_NAME}(?:{_BETWEEN}{_ATTRIBUTE}){{0,{limit}}}+{_TAG_END}
      | </{_TAG_NAME}(?:{_BETWEEN}{_ATTRIBUTE}){{0,{limit}}}+{_TAG_END}
      | <(?:[!?]|/(?![A-Za-z]))[^>]*+>?
    )*+""", re.VERBOSE)


_TAG = re.compile(rf"<(/?)({_TAG_NAME})((?:{_BETWEEN}{_ATTRIBUTE})*+)({_BETWEEN})(>|\Z)")  # _TAG_END, in parts
_COUNTED = re.compile(rf"{_BETWEEN}{_ATTRIBUTE}")


def _end_tag(name):
    return re.compile(rf"</{re.escape(name)}{_NAME_ENDS}", re.IGNORECASE | re.ASCII)


_RAW_END = {name: _end_tag(name) for name in RAW_TEXT}
# script data: "<!--" starts an escape, inside which "<script" starts a double escape, inside
# which "</script" only ends that; "-->" ends either
_SCRIPT_MARK = re.compile(rf"<!--|</script{_NAME_ENDS}", re.IGNORECASE | re.ASCII)
_ESCAPED_MARK = re.compile(rf"-->|</?script{_NAME_ENDS}", re.IGNORECASE | re.ASCII)


def _script_end(html, pos):
    """Where the script whose content starts at ``pos`` ends (its "</script"), or len(html)."""
    state = "data"
    while True:
        mark = (_SCRIPT_MARK if state == "data" else _ESCAPED_MARK).search(html, pos)
        if mark is None:
            return len(html)
        found = mark.group(0).lower()
        if found == "<!--":
            state, pos = "escaped", mark.end() - 2  # "<!-->" ends the escape it starts
        elif found == "-->":
            state, pos = "data", mark.end()
        elif found == "<script":
            state, pos = ("double" if state == "escaped" else state), mark.end()
        elif state == "double":  # "</script" ends the double escape only
            state, pos = "escaped", mark.end()
        else:
            return mark.start()


def _raw_text_end(html, pos, name):
    if name == "plaintext":
        return len(html)
    if name == "script":
        return _script_end(html, pos)
    end = _RAW_END[name].search(html, pos)
    return len(html) if end is None else end.start()


def without_attribute_floods(html, limit=MAX_TAG_ATTRIBUTES):
    """``html`` with every tag of more than ``limit`` attributes cut to its name."""
    plain = _plain(limit)
    pieces, kept_from, pos = [], 0, 0
    while True:
        pos = plain.match(html, pos).end()
        if pos >= len(html):
            break
        tag = _TAG.match(html, pos)  # a long tag, or a raw-text element's start tag
        slash, name, attributes, before_end, end = tag.groups()
        closed = end and before_end.endswith("/")  # libxml2 reads <x/> as empty, raw text too
        if len(_COUNTED.findall(attributes)) > limit:
            # a tag the page ends in is dropped by the parser: so is its cut
            pieces += [html[kept_from:pos], f"<{slash}{name}{'/' if closed else ''}>" if end else ""]
            kept_from = tag.end()
        pos = tag.end()
        if not slash and not closed and name.lower() in RAW_TEXT:
            pos = _raw_text_end(html, pos, name.lower())
    return "".join(pieces) + html[kept_from:] if pieces else html
