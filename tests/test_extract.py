"""Article extraction (function.extract) on small hand-written pages, junk input and the CLI."""

import dataclasses
import gzip
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lxml.etree
import lxml.html

from function import attribute_floods, extract, language
from function.charsets import codec_for
from function.extract import MAX_STANDFIRST_LINES, Article, decode_html, extract_article

ROOT = Path(__file__).resolve().parent.parent
PAGES = Path(__file__).resolve().parent / "pages" / "extract"


def page(name):
    return (PAGES / name).read_bytes()


def paragraphs(article):
    return article.text.split("\n\n") if article.text else []


# -- the article and nothing else ----------------------------------------------
def test_news_page_keeps_the_story_and_drops_the_chrome():
    a = extract_article(page("news_page.html"), url="https://www.valleycourier.example/news/floods")
    assert isinstance(a, Article)
    assert a.title == "River towns brace for the spring floods"
    assert a.lang == "en"
    paras = paragraphs(a)
    assert paras[0].startswith("Residents of the low-lying river towns")
    assert paras[-1].endswith("which streets are most at risk.")
    assert "Lessons from the last flood" in paras  # the subheading is merged back in
    assert len(paras) == 6
    for junk in ("tracking script", "late script", "trusted local news source", "Weather",
                 "Most read", "famous animal", "forty years", "east side of the river",
                 "newsletter", "Copyright", "Advertisement", "Share on Facebook",
                 "Photo: Valley Courier", "By Martha Quill", "brace for the spring floods"):
        assert junk not in a.text, junk


def test_page_chrome_is_skipped_even_next_to_the_text():
    sentence = "This is a sentence that is long enough to count as a real paragraph of the page, and it is"
    html = (f"<html><body><header><p>{sentence} the header.</p></header>"
            f"<nav><p>{sentence} the navigation.</p></nav>"
            f"<p>{sentence} the first one of the article.</p><p>{sentence} the second one of the article.</p>"
            f"<p>{sentence} the third one of the article.</p>"
            f"<aside><p>{sentence} an aside.</p></aside><footer><p>{sentence} the footer.</p></footer>"
            f"<div hidden><p>{sentence} hidden.</p></div><div style='display: none'><p>{sentence} hidden.</p></div>"
            "</body></html>")
    a = extract_article(html)
    assert [p.rsplit(" it is ", 1)[1] for p in paragraphs(a)] == [
        "the first one of the article.", "the second one of the article.", "the third one of the article."]


@pytest.mark.parametrize("hiding", ["<body style='display: none'>", "<body hidden>",
                                    "<body><div id='app' aria-hidden='true'>"])
def test_a_page_hidden_until_a_script_shows_it_is_read_whole(hiding):
    # an anti-flicker style, or a consent dialog's aria-hidden over the page: nothing was left but a 422
    html = story_page("").replace("<body>", hiding)
    assert paragraphs(extract_article(html))[:3] == BUS_STORY


def test_article_element_beats_teasers_with_summaries():
    a = extract_article(page("article_tag.html"), url="https://coastal-notes.example/lighthouse")
    assert a.title == "How the old lighthouse was saved"
    assert a.text.startswith("For almost thirty years the lighthouse")
    assert a.text.endswith("hundred and twelve steps to the top.")
    assert "Ten years of weekends" in paragraphs(a)
    assert "The keeper's cottage now houses a small museum about the coast." in paragraphs(a)
    for junk in ("harbour", "seal colony", "boat builder", "More from Coastal Notes", "Archive"):
        assert junk not in a.text, junk


def test_json_ld_article_body_when_the_dom_has_no_text():
    a = extract_article(page("jsonld_only.html"))
    assert a.title == "Glacier study finds faster melting"
    paras = paragraphs(a)
    assert len(paras) == 3
    assert paras[0].startswith("A new survey of mountain glaciers shows")
    assert paras[1].startswith("The researchers combined satellite images")
    assert paras[2].endswith("depend on glacier water for drinking and farming.")
    assert "Loading" not in a.text


def test_json_ld_article_body_comes_before_hidden_text():
    # hidden elements are read only when nothing else holds an article: a paywall box had beaten it
    body = " ".join(BUS_STORY)
    html = ("<html lang='en'><head><script type='application/ld+json'>" +
            json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "articleBody": body}) +
            f"</script></head><body><div style='display: none'><p>{READER_COMMENT}</p><p>{READER_COMMENT}</p>"
            "</div></body></html>")
    assert extract_article(html).text == body


def test_json_ld_article_html_of_a_flooded_tag_is_read():
    # the articleBody's HTML goes through the same attribute-flood scan as the page: it had not, and
    # one tag of 110k attributes there took libxml2 18.7 s (bench/extract_worst.py times it)
    flooded = " ".join(f"a{i}=x" for i in range(attribute_floods.MAX_TAG_ATTRIBUTES + 50))
    body = f"<div {flooded}><p>{BUS_STORY[0]}</p><p>{BUS_STORY[1]}</p></div>"
    html = ("<html lang='en'><body><p>Subscribe</p><script type='application/ld+json'>" +
            json.dumps({"@type": "NewsArticle", "articleBody": body}) + "</script></body></html>")
    assert extract_article(html).text == f"{BUS_STORY[0]}\n\n{BUS_STORY[1]}"  # paragraphs kept apart


# -- languages -----------------------------------------------------------------
@pytest.mark.parametrize("name, lang, first", [
    ("german_lang.html", "de", "Die Stadt will in den nächsten drei Jahren"),
    ("german_nolang.html", "de", "Die Stadt will in den nächsten drei Jahren"),
    ("french_lang.html", "fr", "Après deux ans de travaux"),
    ("french_nolang.html", "fr", "Après deux ans de travaux"),
])
def test_language_declared_or_detected(name, lang, first):
    a = extract_article(page(name))
    assert a.lang == lang
    assert a.text.startswith(first)
    assert len(paragraphs(a)) == 3
    assert "Startseite" not in a.text and "Impressum" not in a.text and "Accueil" not in a.text


def test_wrong_declared_language_is_overruled_by_the_text():
    html = page("german_lang.html").replace(b'lang="de-DE"', b'lang="en"')
    a = extract_article(html)
    assert a.lang == "de"
    assert a.text.startswith("Die Stadt will")


def test_language_without_stoplist_keeps_declared_code():
    body = "".join(f"<p>{'日本語の文章です。' * 12}{i}</p>" for i in range(4))
    a = extract_article(f'<html lang="ja"><body><div>{body}</div></body></html>')
    assert a.lang == "ja"
    assert len(paragraphs(a)) == 4


def wikipedia_pages(count):
    """(title, HTML page declaring no language) for the first ``count`` articles of the default corpus."""
    from html import escape

    from function.records import Record
    from function.sources import read_wikipedia_dump, wiki_sample_path

    nav = "".join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(10))
    for record in read_wikipedia_dump(wiki_sample_path()):
        if not isinstance(record, Record):
            continue
        paras = [" ".join(p.split()) for p in record.text.split("\n\n") if len(p.split()) > 15][:6]
        if len(paras) < 3:
            continue
        body = "".join(f"<p>{escape(p)}</p>" for p in paras)
        yield record.title, (f"<html><head><title>{escape(record.title)}</title></head><body><ul>{nav}</ul>"
                             f"<article>{body}</article><footer>Copyright 2025 Example</footer></body></html>")
        count -= 1
        if not count:
            return


def test_undeclared_english_articles_are_english():
    # several of jusText's stoplists hold English words (Marathi's 324): counting stoplist words had named
    # 16 of these 80 articles Marathi, Sundanese or Finnish
    langs = {title: extract_article(html).lang for title, html in wikipedia_pages(80)}
    assert len(langs) == 80
    others = {title: lang for title, lang in langs.items() if lang != "en"}
    assert len(others) <= 1, others


@pytest.mark.parametrize("text, lang, stoplist", [
    ("人工知能の研究は進んでいる。多くの企業が新しい技術を開発しており、その応用は広がっている。", "ja", None),
    ("העירייה מתכננת לבנות גשר חדש מעל הנהר בשלוש השנים הקרובות, כך אמר ראש העיר.", "he", "Hebrew"),
    ("Kommunen planlegger å bygge en ny bro over elva i løpet av de neste tre årene, sa ordføreren.", "no",
     "Norwegian_Bokmal"),
])
def test_undeclared_languages_are_identified(text, lang, stoplist):
    assert language.choose("", text * 3) == (stoplist, lang)
    a = extract_article(f"<html><body><div>{''.join(f'<p>{text} {i}</p>' for i in range(4))}</div></body></html>")
    assert a.lang == lang


ENGLISH = ("The city plans to build a new bridge over the river in the next three years, the mayor said on "
           "Tuesday after the council voted for the plan. Work should begin next spring.")
SERBIAN_LATIN = ("Grad planira da izgradi novi most preko reke u narednih pet godina, rekao je gradonačelnik na "
                 "konferenciji za novinare. Radovi bi trebalo da počnu sledeće godine.")


@pytest.mark.parametrize("declared", ["fi", "mr", "tr", "et"])
def test_a_wrong_declaration_whose_stoplist_holds_english_words_is_overruled(declared):
    # a quarter to half of English text's words are in each of these lists: counting them kept the declaration
    assert language.choose(declared, ENGLISH) == ("English", "en")


def test_close_languages_keep_the_declaration_and_serbian_in_latin_letters_a_latin_stoplist():
    assert language.choose("hr", SERBIAN_LATIN) == ("Croatian", "hr")  # CLD2 reads it as Bosnian
    assert language.choose("sr", SERBIAN_LATIN) == ("Serbo_Croatian", "sr")  # jusText's Serbian list is Cyrillic
    cyrillic = ("Град планира да изгради нови мост преко реке у наредних пет година, рекао је градоначелник "
                "на конференцији за новинаре.")
    assert language.choose("hr", cyrillic) == ("Serbian", "hr")  # the one Cyrillic list of the four


@pytest.mark.parametrize("comments", [3, 12])
def test_an_article_beside_boxes_in_another_language_keeps_its_declared_language(comments):
    # CLD2 reads the page with 3 comments as 53% English, reliably: overruling "de" had classified the
    # article as boilerplate and answered the comment box. With 12 the page is mostly English: the
    # language is read from the text outside boilerplate boxes.
    german = ("Der Stadtrat hat am Dienstag beschlossen, eine neue Brücke über den Fluss zu bauen. Die Arbeiten "
              "sollen im kommenden Frühjahr beginnen und rund drei Jahre dauern. Nach Angaben der Stadt werden die "
              "Kosten auf etwa vierzig Millionen Euro geschätzt.")
    english = ("Comments are moderated. Please be respectful and stay on topic. Comments that include links or "
               "personal attacks will be removed by our moderators without notice. Sign up for our newsletter to "
               "get the latest stories delivered to your inbox every morning.")
    a = extract_article(f'<html lang="de"><body><div><div class="story"><p>{german}</p><p>{german}</p></div>'
                        f'<div class="comments">{f"<p>{english}</p>" * comments}</div></div></body></html>')
    assert a.lang == "de" and a.text.startswith("Der Stadtrat") and "moderated" not in a.text


def test_a_comment_box_in_another_script_does_not_name_the_page_language():
    english = ("The city council decided on Tuesday to build a new bridge over the river. Work is expected to begin "
               "next spring and to last about three years, at a cost the city puts at forty million euros.")
    japanese = "コメントは管理者の承認後に表示されます。ご意見をお寄せいただきありがとうございます。" * 3
    a = extract_article(f'<html lang="en"><body><div><div class="story"><p>{english}</p><p>{english}</p></div>'
                        f'<div class="comments">{f"<p>{japanese}</p>" * 5}</div></div></body></html>')
    assert a.lang == "en" and a.text.startswith("The city council")


BUS_STORY = [
    "The city council voted on Tuesday to expand the bus network into the northern districts, a plan that has "
    "been debated for almost a decade and that will cost about forty million over five years.",
    "Supporters said the new routes would connect thousands of residents to jobs in the centre, while critics "
    "argued that the money should have gone to repairing the roads that the buses will use.",
    "The mayor said after the vote that the first routes would open in the spring, and that the timetable for "
    "the others would be published before the end of the year."]
READER_COMMENT = ("I have lived in the north for twenty years and I think this is the best news we have had in a "
                  "long time, although I will believe it when I see the first bus on our street.")


def story_page(after_the_story, around=("<div>", "</div>")):
    return ("<html lang='en'><body>" + around[0] + "<article><h1>Buses for the north</h1>" +
            "".join(f"<p>{line}</p>" for line in BUS_STORY) + "</article>" + after_the_story + around[1] +
            "</body></html>")


@pytest.mark.parametrize("thread", [
    "<div class='comments'>" + "".join(f"<p>{READER_COMMENT} ({i})</p>" for i in range(20)) + "</div>",
    "<section id='comments'>" + "".join(f"<div><b>Reader {i}</b><p>{READER_COMMENT}</p></div>" for i in range(20))
    + "</section>",
    "<div id='disqus_thread'>" + f"<p>{READER_COMMENT}</p>" * 20 + "</div>",
    "<ol class='comment-list'>" + f"<li class='comment'><p>{READER_COMMENT}</p></li>" * 20 + "</ol>",
])
def test_a_short_article_above_a_longer_comment_thread_is_the_answer(thread):
    # the thread holds 80% of the good text: a box that holds most of it had been taken for a layout wrapper
    assert paragraphs(extract_article(story_page(thread))) == BUS_STORY


READ_MORE = ("<div class='read-more'><h2>Read more</h2><ul>" + "".join(
    f"<li><a href='/news/{i}'>Flood story {i}</a><p>Homes in the lower town were flooded after the river burst its "
    f"banks overnight, and the council has promised a review ({i}).</p></li>" for i in range(3)) + "</ul></div>")
CAPTIONS = ["Firefighters wade through Water Lane as the river bursts its banks.", "A car under water on Mill Street.",
            "Residents fill sandbags at the council depot."]


def test_a_gallery_is_read_by_its_own_lines_not_by_the_teasers_beside_it():
    # too little in the story for jusText: the "Read more" box's teasers had been chosen as the article,
    # and the gallery indexed as the flood story they summarise
    figures = "".join(f"<figure><img src='/{i}.jpg'><figcaption>{c}</figcaption></figure>" for i, c in enumerate(CAPTIONS))
    html = ("<html lang='en'><body><main><article><h1>In pictures: the floods</h1>" + figures +
            "<p>Our photographers captured the floods across the lower town.</p></article>" + READ_MORE +
            "</main></body></html>")
    assert paragraphs(extract_article(html)) == CAPTIONS + ["Our photographers captured the floods across the lower town."]


def test_an_article_element_without_the_headline_is_a_card_beside_the_story():
    # the story's lines are read instead only from an <article> holding the page's <h1>
    card = "<article class='card'><p>Our photographers captured the floods across the lower town.</p></article>"
    html = ("<html lang='en'><body><div><h1>Buses for the north</h1>" + "".join(f"<p>{line}</p>" for line in BUS_STORY)
            + "</div>" + card + "</body></html>")
    assert paragraphs(extract_article(html)) == BUS_STORY


def test_an_article_element_holding_only_the_headline_keeps_the_story_beside_it():
    # an <article> around the headline and byline alone, the story's body after it: the story's own lines
    # are none (a byline is boilerplate), and the page had been read as no text at all (a 422)
    html = ("<html lang='en'><body><article class='story-header'><h1>Buses for the north</h1>"
            "<p class='byline'>By Jo Smith, 3 March</p></article><div class='story-body'>"
            + "".join(f"<p>{line}</p>" for line in BUS_STORY) + "</div></body></html>")
    assert paragraphs(extract_article(html)) == BUS_STORY


@pytest.mark.parametrize("box", ["read-more", "mostRead", "more-on-this-story", "trending-now"])
def test_a_box_of_other_stories_inside_the_story_is_left_out(box):
    # a news site's "Most read" with a line under each headline, inside the <article> (a dev page's
    # "Most read in world news" was kept so; a 60-word brief's "Read more" box too)
    teasers = "".join(f"<li><a href='/s/{i}'>Story {i}</a><p>Homes in the lower town were flooded after the river "
                      f"burst its banks overnight, and the council promised a review ({i}).</p></li>" for i in range(3))
    html = story_page("").replace("</article>", f"<div class='{box}'><h2>Most read</h2><ul>{teasers}</ul></div></article>")
    assert paragraphs(extract_article(html)) == BUS_STORY


@pytest.mark.parametrize("comments", [8, 30])
def test_a_short_story_above_its_longer_comment_thread_in_one_article_is_read_whole(comments):
    # the thread's good text had counted against the <article> holding both, so a single paragraph of
    # the story scored higher than it: 1 of its 3 paragraphs was read (a box's text now neither adds
    # to the elements around it nor takes from them; it is left out of the article all the same)
    thread = ("<section class='comments'>" + f"<div><b>Reader</b><p>{READER_COMMENT}</p></div>" * comments
              + "</section>")
    html = story_page("").replace("</article>", thread + "</article>")
    assert paragraphs(extract_article(html)) == BUS_STORY


MORE_OF_THE_STORY = [
    "Opponents on the council said they would keep pressing for the roads to be repaired first, and that they "
    "would raise the matter again when the budget for next year is debated in the autumn by the whole council.",
    "The transport authority will hold public meetings in each of the northern districts over the coming weeks, "
    "where residents can comment on the proposed routes and on where the new stops should be placed."]


def test_a_paywalled_part_the_page_declares_is_the_story_and_an_undeclared_paywall_box_is_not():
    # Google's markup for paywalled content: the gated paragraphs in <div class="paywall">, named in the
    # JSON-LD's hasPart (isAccessibleForFree false, cssSelector): they had been left out as an offer box
    gated = "<div class='paywall'>" + "".join(f"<p>{line}</p>" for line in MORE_OF_THE_STORY[:1] + BUS_STORY[2:]) + "</div>"
    page = ("<html lang='en'><head>{ld}</head><body><article><h1>Buses for the north</h1>"
            + "".join(f"<p>{line}</p>" for line in BUS_STORY[:2]) + gated + "</article></body></html>")
    declared = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "isAccessibleForFree": False,
                           "hasPart": {"@type": "WebPageElement", "isAccessibleForFree": False,
                                       "cssSelector": ".paywall"}})
    whole = BUS_STORY[:2] + MORE_OF_THE_STORY[:1] + BUS_STORY[2:]
    assert paragraphs(extract_article(page.format(ld=f"<script type='application/ld+json'>{declared}</script>"))) == whole
    by_id = declared.replace('".paywall"', '"#gated-part"')  # a selector of an id names it as well
    assert paragraphs(extract_article(page.replace("class='paywall'", "class='paywall' id='gated-part'").format(
        ld=f"<script type='application/ld+json'>{by_id}</script>"))) == whole
    # undeclared, it is read by what it holds: three paragraphs of prose that link nowhere (no button, form or
    # price) are the story's (test_a_metered_paywall_box_that_holds_the_story_s_end_is_read)
    assert paragraphs(extract_article(page.format(ld=""))) == whole


def test_google_s_free_part_beside_the_declared_paywalled_part_is_read_too():
    # Google's example markup names the free part "non-paywall": read as a paywall box, the first half of
    # the story had been left out
    html = ("<html lang='en'><head><script type='application/ld+json'>{ld}</script></head><body><article>"
            "<h1>Buses for the north</h1><div class='non-paywall'>{free}</div><div class='paywall'>{gated}</div>"
            "</article></body></html>").format(
        ld=json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "isAccessibleForFree": False,
                       "hasPart": {"@type": "WebPageElement", "isAccessibleForFree": False, "cssSelector": ".paywall"}}),
        free="".join(f"<p>{line}</p>" for line in BUS_STORY[:2]),
        gated="".join(f"<p>{line}</p>" for line in BUS_STORY[2:] + MORE_OF_THE_STORY))
    assert paragraphs(extract_article(html)) == BUS_STORY + MORE_OF_THE_STORY


def test_an_article_element_of_the_headline_and_standfirst_keeps_the_story_after_it():
    # the story's own lines (its standfirst) under half of what jusText found beside it: the body is the
    # story (the standfirst alone, 40 characters, had been read)
    html = ("<html lang='en'><body><article><h1>Buses for the north</h1><p class='standfirst'>The council has agreed "
            "three new routes.</p></article><div class='story-body'>" + "".join(f"<p>{line}</p>" for line in BUS_STORY)
            + "</div></body></html>")
    assert paragraphs(extract_article(html)) == BUS_STORY


@pytest.mark.parametrize("box", ["read-more-text", "readMore", "js-readmore"])
def test_a_read_more_expander_holding_the_rest_of_the_story_is_the_story(box):
    # a mobile page's "read more": the rest of the story in a box named as a box of other stories, which
    # links nowhere (the story's last 2 of 5 paragraphs had been left out); its button's two words stay out
    html = story_page("").replace("</article>", f"<div class='{box}'>" + "".join(f"<p>{line}</p>" for line in MORE_OF_THE_STORY)
                                  + "</div><div class='read-more-button'>Read More</div></article>")
    assert paragraphs(extract_article(html)) == BUS_STORY + MORE_OF_THE_STORY


LEDE = ("The city council has agreed to run buses every ten minutes through the northern districts from the "
        "spring, ending a dispute over the transport budget that had lasted for two years.")
BIO = ("Jane Doe has covered the city council for the Gazette since 2015, and before that she reported on "
       "transport and housing for a regional radio station in the north.")


def split_story(lede, body, between="", after="", headline="Buses for the north"):
    """A story whose lede and body are sibling boxes under the element holding its headline."""
    return ("<html lang='en'><body><article>" + f"<h1>{headline}</h1>" + between
            + "<div class='lede'>" + "".join(f"<p>{line}</p>" for line in lede) + "</div><div class='body'>"
            + "".join(f"<p>{line}</p>" for line in body) + "</div>" + after + "</article></body></html>")


@pytest.mark.parametrize("lede, body", [([LEDE], BUS_STORY), ([LEDE], BUS_STORY + MORE_OF_THE_STORY),
                                        (BUS_STORY[:2], [LEDE] + BUS_STORY[2:] + MORE_OF_THE_STORY)])
def test_a_story_split_into_a_lede_box_and_a_body_box_keeps_its_lede(lede, body):
    # the body box branches, so the <article> counts it at BRANCH_DECAY: 3 body paragraphs outscored a
    # 170-character lede (4 of them a 2-paragraph teaser, itself decayed), the body box alone won and the
    # story's first, most telling lines were lost
    assert paragraphs(extract_article(split_story(lede, body))) == lede + body


RELATED = ("<div class='related-stories'><h3><a href='/s/1'>Floods in the lower town</a></h3><p>Homes in the lower "
           "town were flooded after the river burst its banks overnight, and the council promised a review.</p></div>")
LONG_HEADLINE = "The council votes to run buses every ten minutes through the northern districts from the spring"


@pytest.mark.parametrize("where, intruder, headline", [
    ("between", RELATED, LONG_HEADLINE),  # a box of other stories, named so
    # a date line: after a long headline jusText calls it good by its neighbours (two dev pages' dates)
    ("between", "<div class='meta'><span>March 14, 2026</span></div>", LONG_HEADLINE),
    ("after", f"<div class='about-the-writer'><p>{BIO}</p></div>", "Buses")])  # after the story: a bio, a footer line
def test_what_lies_beside_a_split_story_but_not_between_its_headline_and_body_stays_out(where, intruder, headline):
    # none is a lede: a box's good text scores nothing, a date line under a paragraph's length, a bio
    # lies after the body
    body = BUS_STORY + MORE_OF_THE_STORY
    text = extract_article(split_story([LEDE], body, headline=headline, **{where: intruder})).text
    assert text.endswith("\n\n".join(body))
    assert not any(words in text for words in ("lower town", "Jane Doe", "March 14"))


PHOTO_CAPTION = ("A bus waits at the depot on North Road before the morning rush, as drivers prepare for the new "
                 "routes. Photo: J. Smith")


@pytest.mark.parametrize("media", [f"<div class='media'><img src='/a.jpg'><p>{PHOTO_CAPTION}</p></div>",
                                   f"<figure><img src='/a.jpg'><p>{PHOTO_CAPTION}</p></figure>",
                                   f"<div><picture><img src='/a.jpg'></picture><span>{PHOTO_CAPTION}</span></div>"])
def test_a_photo_s_caption_between_the_headline_and_the_body_is_no_lede(media):
    # a box of a picture and its one line, in no class naming a caption: its paragraph's worth of good text
    # had joined the story as its lede
    body = BUS_STORY + MORE_OF_THE_STORY
    assert paragraphs(extract_article(split_story([], body, between=media))) == body


def test_a_lede_whose_own_paragraph_holds_its_picture_is_read():
    # <p><img>line</p>: a paragraph with a picture inline is the story's, in a lede box beside the body
    # as inside the story's own element (_hero_caption); the lede box's rule had taken it for a caption
    html = split_story([], BUS_STORY, between=f"<div class='intro'><p><img src='/a.jpg'>{LEDE}</p></div>")
    assert paragraphs(extract_article(html)) == [LEDE] + BUS_STORY


def test_a_one_line_lede_beside_the_hero_picture_s_figure_is_read():
    # the lede box holds the hero's <figure> (its caption its own) and the story's first line: taken for a
    # picture and its caption, the line had been lost; the caption stays out
    paras = paragraphs(extract_article(page("hero_lede.html")))
    assert paras[0] == "The water mill on Weir Lane is grinding flour again, fifty years after it last turned."
    assert len(paras) == 4 and not any("Photo: Tom Hale" in p for p in paras)


@pytest.mark.parametrize("figure", ["<figure><img src='/a.jpg'></figure>",
                                    f"<figure><img src='/a.jpg'><figcaption>{PHOTO_CAPTION}</figcaption></figure>",
                                    "<figure class='hero'><picture><img src='/a.jpg'></picture></figure>"])
def test_a_line_outside_the_picture_s_figure_is_no_caption(figure):
    body = BUS_STORY + MORE_OF_THE_STORY
    html = split_story([], body, between=f"<div class='top'>{figure}<p>{LEDE}</p></div>").replace("<div class='lede'></div>", "")
    assert paragraphs(extract_article(html)) == [LEDE] + body


def test_a_lede_box_beside_its_picture_still_joins_with_more_than_one_line():
    # a picture does not make a box of two lede paragraphs a caption
    lede = "<div class='lede'><img src='/a.jpg'>" + "".join(f"<p>{line}</p>" for line in [LEDE, BIO]) + "</div>"
    body = BUS_STORY + MORE_OF_THE_STORY
    html = split_story([], body, between=lede).replace("<div class='lede'></div>", "")
    assert paragraphs(extract_article(html)) == [LEDE, BIO] + body


def one_box_story(top="", middle=""):
    """A story whose paragraphs are the <article>'s own, with ``top`` after its headline and ``middle`` after
    its second paragraph: the container is the <article> itself."""
    lines = [LEDE] + BUS_STORY
    return ("<html lang='en'><body><article><h1>Buses for the north</h1>" + top + f"<p>{lines[0]}</p><p>{lines[1]}</p>"
            + middle + "".join(f"<p>{line}</p>" for line in lines[2:]) + "</article></body></html>")


@pytest.mark.parametrize("hero", [f"<div><img src='/a.jpg'><p>{PHOTO_CAPTION}</p></div>",
                                  f"<div class='top'><div><picture><img src='/a.jpg'></picture></div><p>{PHOTO_CAPTION}</p></div>",
                                  f"<p>March 14, 2026</p><div><img src='/a.jpg'><p>{PHOTO_CAPTION}</p></div>"])
def test_the_hero_picture_s_caption_inside_the_story_s_own_element_is_no_first_paragraph(hero):
    # a box of a picture and its one line before the story's first line, in the container itself (not a box
    # beside it, which _lede_before judges): the caption had been read as the story's first paragraph
    text = extract_article(one_box_story(hero)).text
    assert text.endswith("\n\n".join([LEDE] + BUS_STORY)) and "Photo: J. Smith" not in text


@pytest.mark.parametrize("picture", [f"<figure><img src='/a.jpg'><p>{PHOTO_CAPTION}</p></figure>",
                                     f"<figure><div><img src='/a.jpg'></div><p>{PHOTO_CAPTION}</p></figure>",
                                     f"<figure><img src='/a.jpg'><div class='pic-count'><p>6</p></div><p>{PHOTO_CAPTION}</p></figure>",
                                     f"<figure><iframe src='https://video.example/e/1'></iframe><p>{PHOTO_CAPTION}</p></figure>"])
@pytest.mark.parametrize("where", ["top", "middle"])
def test_text_in_a_picture_s_figure_is_its_caption_not_the_story(picture, where):
    # a <figure> without a <figcaption>: its <p> is the caption or credit, at the top (read as the story's
    # first paragraph) or in the middle (a gallery's counter "6" was read between two paragraphs)
    assert paragraphs(extract_article(one_box_story(**{where: picture}))) == [LEDE] + BUS_STORY


def test_pictures_captions_that_are_all_the_story_holds_are_kept():
    # a gallery: no good line but the captions beside their pictures, which are then the story, not a hero's
    html = ("<html lang='en'><body><div><h1>Buses for the north</h1><div>"
            + "".join(f"<div><img src='/{i}.jpg'><p>{line}</p></div>" for i, line in enumerate([PHOTO_CAPTION, BIO]))
            + "</div></div></body></html>")
    assert paragraphs(extract_article(html)) == [PHOTO_CAPTION, BIO]


@pytest.mark.parametrize("box", [f"<div><img src='/b.jpg'><p>{BIO}</p></div>",  # after the first line: the story's
                                 f"<figure class='table'><table><tr><td>{BIO}</td></tr></table></figure>"])  # no picture
def test_a_story_s_paragraph_beside_its_inline_picture_or_in_a_figure_without_one_is_kept(box):
    assert paragraphs(extract_article(one_box_story(middle=box))) == [LEDE, BUS_STORY[0], BIO] + BUS_STORY[1:]


@pytest.mark.parametrize("top", [f"<p><img src='/a.jpg'>{BIO}</p>",  # the picture in the line's own element
                                 f"<div><figure><img src='/a.jpg'></figure><p>{BIO}</p></div>"])  # beside a figure
def test_a_first_line_with_its_picture_inline_or_beside_a_figure_is_the_story_s(top):
    assert paragraphs(extract_article(one_box_story(top))) == [BIO, LEDE] + BUS_STORY


QUOTE = ("\u201cWe have waited two years for buses that come when they are needed, and now the whole of the north "
         "will have them,\u201d said Ann Lee, who chairs the residents\u2019 association in Northfield.")


@pytest.mark.parametrize("quote", [
    f"<figure class='quote'><blockquote><p>{QUOTE}</p></blockquote>"
    f"<figure><img src='/a.jpg'><figcaption>{PHOTO_CAPTION}</figcaption></figure></figure>",
    f"<figure class='pull-quote'><figure><img src='/a.jpg'><p>{PHOTO_CAPTION}</p></figure><p>{QUOTE}</p></figure>",
    f"<figure><blockquote>{QUOTE}</blockquote><figure><picture><img src='/a.jpg'></picture>"
    f"<div class='pic-count'><p>6</p></div></figure></figure>"])
def test_a_quote_s_figure_holding_a_picture_s_figure_keeps_the_quote_and_not_the_caption(quote):
    # the picture in the inner <figure> made the whole quote's figure a caption box: the quote, the story's
    # words, had been lost with the picture's caption
    paras = paragraphs(extract_article(one_box_story(middle=quote)))
    assert paras == [LEDE, BUS_STORY[0], QUOTE] + BUS_STORY[1:]


LONG_LEDE = ("The city council has agreed to run buses every ten minutes through the northern districts from the "
             "spring, ending a dispute over the transport budget that had lasted for two years and had left many "
             "villages with one bus a day.")


@pytest.mark.parametrize("html, expected", [
    (split_story([], BUS_STORY, between=f"<div class='intro'><img src='/a.jpg'><p>{LONG_LEDE}</p></div>"),
     [LONG_LEDE] + BUS_STORY),  # a lede box beside the body
    (one_box_story(f"<div><img src='/a.jpg'><p>{LONG_LEDE}</p></div>"), [LONG_LEDE, LEDE] + BUS_STORY)])  # inside it
def test_a_long_lede_beside_a_picture_with_no_caption_mark_is_the_story_s(html, expected):
    # a caption is short (PHOTO_CAPTION's box stays out): a paragraph past jusText's long length beside a
    # picture, in no <figcaption> or caption box, had been taken for the picture's caption and lost
    assert paragraphs(extract_article(html)) == expected


@pytest.mark.parametrize("standfirst", [f"<p class='standfirst'>{LEDE}</p>", f"<div class='standfirst'><p>{LEDE}</p></div>"])
def test_a_standfirst_repeated_as_the_body_s_first_paragraph_is_read_once(standfirst):
    # read twice, its words weighed double in the tf-idf of the page
    html = split_story([], [LEDE] + BUS_STORY, between=standfirst).replace("<div class='lede'></div>", "")
    assert paragraphs(extract_article(html)) == [LEDE] + BUS_STORY


def test_a_standfirst_that_only_a_box_in_the_body_repeats_stays_the_story_s():
    # a repeat the body does not read (a share box's text) had left the standfirst out of both places
    share = f"<div class='share'><p>{LEDE}</p></div>"
    html = split_story([LEDE], ["REPEAT"] + BUS_STORY).replace("<p>REPEAT</p>", share)
    assert paragraphs(extract_article(html)) == [LEDE] + BUS_STORY


FERRY_STANDFIRST = ("The island ferry will sail every hour through the night for the first time, after the port "
                    "authority agreed to pay for a second crew.")


def test_a_standfirst_in_the_article_s_own_header_is_the_summary_not_the_text():
    # the summary under the headline, in the <article>'s <header> with the byline and date: skipped with
    # every <header>, the story in a sentence had been lost; it is read apart from the text, which the
    # extraction benchmark's expected text is (it leaves the standfirst out); the site's header stays out
    a = extract_article(page("standfirst_header.html"))
    assert a.summary == FERRY_STANDFIRST
    paras = paragraphs(a)
    assert paras[0].startswith("The port authority's board approved the plan") and len(paras) == 4
    assert "island ferry will sail" not in a.text
    assert a.words == FERRY_STANDFIRST + "\n\n" + a.text
    for junk in ("By Ana Ribeiro", "3 March", "forty thousand households", "Island school", "Copyright"):
        assert junk not in a.summary and junk not in a.text, junk


@pytest.mark.parametrize("header, story", [
    (f"<header><h1>Buses for the north</h1><h2 class='dek'>{LEDE}</h2><span class='byline'>By Jo Smith</span></header>",
     "<article>{}</article>"),
    (f"<header><div class='titles'><h1>Buses for the north</h1><p>{LEDE}</p></div><p>3 March 2026</p></header>",
     "<main><div class='story'>{}</div></main>")])
def test_a_standfirst_in_the_story_s_header_is_its_summary(header, story):
    html = "<html lang='en'><body>" + story.format(header + "".join(f"<p>{line}</p>" for line in BUS_STORY)) + "</body></html>"
    a = extract_article(html)
    assert (a.summary, paragraphs(a)) == (LEDE, BUS_STORY)


def test_a_standfirst_the_body_reads_again_is_no_summary():
    # repeated as the body's first paragraph: the text has it, the summary would weigh it twice
    html = (f"<html lang='en'><body><article><header><h1>Buses for the north</h1><p class='standfirst'>{LEDE}</p>"
            f"</header><p>{LEDE}</p>" + "".join(f"<p>{line}</p>" for line in BUS_STORY) + "</article></body></html>")
    a = extract_article(html)
    assert (a.summary, paragraphs(a)) == ("", [LEDE] + BUS_STORY)


def test_a_standfirst_that_is_the_page_s_title_is_no_summary():
    # og:title giving the standfirst's sentence: the vector reads the title first (indexed_text), and the
    # summary had read it again, its words weighed double
    html = (f"<html lang='en'><head><meta property='og:title' content=\"{LEDE}\"></head><body><article><header>"
            f"<h1>Buses for the north</h1><p class='standfirst'>{LEDE}</p></header>"
            + "".join(f"<p>{line}</p>" for line in BUS_STORY) + "</article></body></html>")
    a = extract_article(html)
    assert (a.title, a.summary, paragraphs(a)) == (LEDE, "", BUS_STORY)


def test_a_line_above_the_headline_is_no_standfirst():
    # a fact-check's header: the quote it rates and who said it, then the headline; the attribution line
    # (one dev page's "— David McKinley on Sunday, October 13th, 2019 in ...") had been read as the summary
    quote = ("<div class='statement'><div class='statement__text'>\"Fifty buses a day leave the depot empty.\"</div>"
             "<p class='statement__meta'>— Jo Smith on Sunday, October 13th, 2019 in an article in a local newspaper "
             "about the council's plans for the northern districts</p></div>")
    html = (f"<html lang='en'><body><article><header>{quote}<h1>Buses for the north</h1><p>{LEDE}</p></header>"
            + "".join(f"<p>{line}</p>" for line in BUS_STORY) + "</article></body></html>")
    a = extract_article(html)
    assert (a.summary, paragraphs(a)) == (LEDE, BUS_STORY)


def test_a_header_of_many_paragraphs_gives_a_standfirst_of_a_few_lines():
    # each line is looked for in the text (a line it reads again is no summary): a header of thousands of
    # prose lines over a long body had cost seconds of a worker (3.5 MB: 0.4 s -> 4 s), and the summary
    # had been the whole header
    lines = [f"{LEDE[:-1]}, the {n}th time this year." for n in range(10)]
    html = ("<html lang='en'><body><article><header><h1>Buses for the north</h1>"
            + "".join(f"<p>{line}</p>" for line in lines) + "</header>"
            + "".join(f"<p>{line}</p>" for line in BUS_STORY) + "</article></body></html>")
    a = extract_article(html)
    assert (a.summary, paragraphs(a)) == ("\n\n".join(lines[:MAX_STANDFIRST_LINES]), BUS_STORY)


def test_a_site_header_s_tagline_is_no_summary():
    # a <header> outside any <article> or <main> is the site's, its <h1> the site's name
    html = ("<html lang='en'><body><header><h1>The Gazette</h1><p>News from the city and the northern districts since "
            "1887, read by forty thousand households every single week.</p></header><div class='story'>"
            + "".join(f"<p>{line}</p>" for line in BUS_STORY) + "</div></body></html>")
    a = extract_article(html)
    assert (a.summary, paragraphs(a)) == ("", BUS_STORY)


@pytest.mark.parametrize("after_header", ["", "<figure><video src='/ferry.mp4'></video></figure>"])
def test_a_brief_of_a_headline_and_a_standfirst_alone_is_read_by_its_standfirst(after_header):
    # a brief, a video page: no body, so jusText kept nothing and the standfirst was not looked for: the page
    # had had no words at all (a 422 no_article_text, a crawl's skip); it is the summary, the text stays ""
    html = ("<html><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav><main><article><header>"
            f"<h1>Ferry all night</h1><p class='standfirst'>{FERRY_STANDFIRST}</p><span class='byline'>By Jo Smith"
            f"</span></header>{after_header}</article></main><footer>Copyright 2026 The Gazette</footer></body></html>")
    a = extract_article(html)
    assert (a.title, a.text, a.summary, a.words, a.lang) == ("Ferry all night", "", FERRY_STANDFIRST, FERRY_STANDFIRST, "en")


@pytest.mark.parametrize("header", [
    "<header><h1>Ferry all night</h1><p>Watch the video.</p></header>",  # a line of no prose is no standfirst
    "<header><h1>Ferry all night</h1></header>"])
def test_a_brief_of_a_headline_and_no_standfirst_has_no_words(header):
    a = extract_article(f"<html lang='en'><body><main><article>{header}</article></main></body></html>")
    assert (a.title, a.text, a.summary) == ("Ferry all night", "", "")


def test_a_list_of_story_headers_gives_no_summary():
    # several stories' headers (a list page of briefs, each with its <h1>): none is the page's standfirst
    brief = f"<article><header><h1>Ferry all night</h1><p>{FERRY_STANDFIRST}</p></header></article>"
    a = extract_article(f"<html lang='en'><body><main>{brief}{brief.replace('Ferry', 'Boats')}</main></body></html>")
    assert (a.text, a.summary) == ("", "")

@pytest.mark.parametrize("lede", [f"<p class='lede'>{LEDE}</p>", f"<div class='lede'><p>{LEDE}</p></div>"])
def test_a_lede_box_after_a_headline_in_the_story_s_header_joins_the_story(lede):
    # the headline in a <header> had left no headline for the lede beside the body box to follow: it was lost
    body = BUS_STORY + MORE_OF_THE_STORY
    html = split_story([], body, between=lede).replace(
        "<h1>Buses for the north</h1>", "<header><h1>Buses for the north</h1></header>").replace("<div class='lede'></div>", "")
    assert paragraphs(extract_article(html)) == [LEDE] + body


NEWSLETTER = ("<div class='strip'><p>Our new newsletter brings the week's most important stories from the region to "
              "your inbox every Friday morning.</p></div>")


@pytest.mark.parametrize("page", ["<body>{}</body>", "<body><div id='page'>{}</div></body>"])
def test_a_story_under_its_own_heading_takes_nothing_from_before_it_as_its_lede(page):
    # the <h1> above is the site's name, not the story's headline: a strip between it and the story, a
    # paragraph's worth of good text, had been read as the story's first lines
    story = "<div class='story'><h2>Buses for the north</h2>" + "".join(
        f"<p>{line}</p>" for line in BUS_STORY + MORE_OF_THE_STORY) + "</div>"
    html = "<html lang='en'>" + page.format("<div class='logo'><h1>The Gazette</h1></div>" + NEWSLETTER + story) + "</html>"
    assert paragraphs(extract_article(html)) == ["Buses for the north"] + BUS_STORY + MORE_OF_THE_STORY


FLOOD_TEASER = ("Homes in the lower town were flooded after the river burst its banks overnight, and the council "
                "promised a review ({i}).")


@pytest.mark.parametrize("card", ["<div onclick=\"location='/s/{i}'\"><h3>Story {i}</h3><p>{t}</p></div>",
                                  "<li data-href='/s/{i}'><h3>Story {i}</h3><p>{t}</p></li>",
                                  "<li><a data-url='/s/{i}'><h3>Story {i}</h3></a><p>{t}</p></li>"])
def test_a_box_of_other_stories_linked_by_a_script_is_left_out(card):
    # cards a script follows (onclick, data-href, an <a> without its href) link as an href does: read as
    # a "read more" expander, the box's headlines and teasers had been indexed with the story
    box = "".join(card.format(i=i, t=FLOOD_TEASER.format(i=i)) for i in range(3))
    html = story_page("").replace("</article>", f"<div class='most-read'><h2>Most read</h2>{box}</div></article>")
    assert paragraphs(extract_article(html)) == BUS_STORY


def test_a_box_of_other_stories_short_of_a_paragraph_s_text_is_left_out_however_indented():
    # its markup's indentation had counted towards the expander's 100 characters
    box = "".join(f"\n        <div>\n            <span>Short title {i}</span>\n        </div>" for i in range(4))
    html = story_page("").replace("</article>", f"<div class='trending'>{box}\n</div></article>")
    assert paragraphs(extract_article(html)) == BUS_STORY


def test_a_gallery_beside_teasers_linked_by_a_script_is_read_by_its_own_lines():
    # each teaser's card has data-href, not an <a href>: the teasers had been read as the gallery's text
    figures = "".join(f"<figure><img src='/{i}.jpg'><figcaption>{c}</figcaption></figure>" for i, c in enumerate(CAPTIONS))
    box = "".join(f"<li data-href='/n/{i}'><h3>Flood story {i}</h3><p>{FLOOD_TEASER.format(i=i)}</p></li>" for i in range(3))
    html = ("<html lang='en'><body><main><article><h1>In pictures: the floods</h1>" + figures +
            "<p>Our photographers captured the floods across the lower town.</p></article>"
            f"<div class='read-more'><h2>Read more</h2><ul>{box}</ul></div></main></body></html>")
    assert paragraphs(extract_article(html)) == CAPTIONS + ["Our photographers captured the floods across the lower town."]


def test_a_header_article_with_a_long_standfirst_and_caption_keeps_the_short_body_after_it():
    # a brief: the <article> holds the headline, a standfirst and the hero's caption (over half of the
    # body's length), the body after it links nowhere: no box of teasers, so the body is the story (the
    # standfirst and caption alone had been read)
    header = ("<article class='story-header'><h1>Buses for the north</h1><p class='dek'>Twelve new routes will link "
              "the northern districts to the centre from the spring, after a two-year fight over the budget.</p>"
              "<figure><img src='/a.jpg'><figcaption>A bus waits at the depot on North Road before the morning rush, "
              "as drivers prepare for the new routes. Photo: J. Smith</figcaption></figure></article>")
    html = ("<html lang='en'><body><nav><ul><li><a href='/'>Home</a></li><li><a href='/news'>News</a></li></ul></nav>"
            "<main>" + header + "<div class='story-body'>" + "".join(f"<p>{line}</p>" for line in BUS_STORY[:2])
            + "</div></main><footer><p>Copyright 2026 The Gazette. All rights reserved.</p></footer></body></html>")
    assert paragraphs(extract_article(html)) == BUS_STORY[:2]


def test_one_word_of_a_pair_names_no_box():
    assert extract._boiler_words("story-more-text read-time most") == set()
    assert extract._boiler_words("box mostRead") == {"most-read"}
    assert extract._boiler_words("tag-trending category-most-read non-paywall") == set()


PAYWALL = ("This article is for subscribers. Get unlimited access to the Gazette from just one pound a week: "
           "local news, sport, weather and culture, with no adverts. Cancel at any time you like.")


@pytest.mark.parametrize("box", ["<div class='paywall'>", "<div id='regwall-offer'>", "<section class='PaywallPrompt'>"])
def test_a_paywall_box_under_a_teaser_is_not_the_article(box):
    # a news site's subscribers-only story: its teaser is the article, the offer is the site's, on every
    # such story (it had been indexed: "weather" found a council budget story, and only it)
    html = story_page("").replace("</article>", f"{box}<h2>Subscribe to keep reading</h2><p>{PAYWALL}</p>"
                                  f"</{box[1:box.index(' ')]}></article>")
    assert paragraphs(extract_article(html)) == BUS_STORY


def test_a_metered_paywall_box_that_holds_the_story_s_end_is_read():
    # a metered paywall's markup without JSON-LD: the story's last paragraphs in <div class="article-body__paywall">,
    # a script hiding them past the free articles; they had been left out as the offer (half the story lost)
    gated = "".join(f"<p>{line}</p>" for line in MORE_OF_THE_STORY)
    html = story_page("").replace("</article>", f"<div class='article-body__paywall'>{gated}</div></article>")
    assert paragraphs(extract_article(html)) == BUS_STORY + MORE_OF_THE_STORY


@pytest.mark.parametrize("amount", ["Tickets on the new routes cost £15 each, and children ride free.",
                                    "The operator lost 20 pounds on every journey last year, the audit found.",
                                    "Fares stay at $2.50, the same as in 2019 EUR terms.",
                                    # a price and a time in two sentences: the amount's digits had taken the full stop
                                    "Fares rose to $2.50. Each day, forty thousand people ride the buses."])
def test_a_metered_paywall_box_that_names_an_amount_is_still_the_story(amount):
    # an offer's price is by the time it buys ("£1 a week"); an amount alone is a story's as often, and a
    # gated part naming one had been left out as an offer
    gated = "".join(f"<p>{line}</p>" for line in (*MORE_OF_THE_STORY, amount))
    html = story_page("").replace("</article>", f"<div class='article-body__paywall'>{gated}</div></article>")
    assert paragraphs(extract_article(html)) == [*BUS_STORY, *MORE_OF_THE_STORY, amount]


def test_a_paywall_box_holding_a_long_number_is_read_in_linear_time():
    # the price test's amount had been tried from every digit of a number, each try reading to its end:
    # quadratic, a hostile page's 30,000 digits in a paywall box had held a worker for a minute
    ledger = ["Ledger line " + "7" * 30_000, "Ledger line " + "1," * 15_000 + "1"]
    gated = "".join(f"<p>{line}</p>" for line in (*MORE_OF_THE_STORY, *ledger))
    html = story_page("").replace("</article>", f"<div class='article-body__paywall'>{gated}</div></article>")
    assert paragraphs(extract_article(html)) == [*BUS_STORY, *MORE_OF_THE_STORY, *ledger]
    # what keeps it linear: a price's bare amount is tried only where its number starts
    from function.extract import _SUBSCRIPTION_PRICE

    assert _SUBSCRIPTION_PRICE.match("49 euros a month") and _SUBSCRIPTION_PRICE.match("49 euros a month", 1) is None
    assert _SUBSCRIPTION_PRICE.match("0,99 euros a month", 2) is None



def test_a_paragraph_in_nested_paywall_boxes_is_searched_for_a_price_once(monkeypatch):
    # each box, closing, asked again of the paragraphs it hands out to the next: 500 boxes around 1 MB of
    # text had searched it 500 times (a hundred seconds of a worker)
    searched = []

    class Counting:
        def search(self, text):
            searched.append(text)
            return price.search(text)

    price = extract._SUBSCRIPTION_PRICE
    monkeypatch.setattr(extract, "_SUBSCRIPTION_PRICE", Counting())
    gated = "".join(f"<p>{line}</p>" for line in MORE_OF_THE_STORY)
    boxes = "<div class='paywall'>" * 3 + gated + "</div>" * 3
    html = story_page("").replace("</article>", boxes + "</article>")
    assert paragraphs(extract_article(html)) == BUS_STORY + MORE_OF_THE_STORY
    assert sorted(searched) == sorted(MORE_OF_THE_STORY)


OFFER_LINES = ("Get unlimited access to the Gazette's journalism on any device, with the print edition delivered to "
               "your door on Saturdays, the puzzles, the newsletters and the archive of every story since 1890.",
               "Our reporters cover the council, the courts, the schools and the hospitals of the region, and your "
               "subscription pays for that work. Cancel at any time you like.")


@pytest.mark.parametrize("offer", [
    # Piano/Tinypass's offer as the server renders it: the plan's card links to the checkout
    "<div class='paywall tp-container' id='piano-offer'><h2>Subscribe to keep reading</h2>{lines}"
    "<a class='tp-button' href='https://checkout.example/gazette?plan=digital'>Subscribe</a></div>",
    "<div class='paywall-prompt'><h2>You have read all your free articles</h2>{lines}"
    "<button type='button' class='subscribe'>Subscribe now</button></div>",
    "<section class='PaywallPrompt'><h2>Already a subscriber?</h2>{lines}<form action='/login' method='post'>"
    "<input type='email' name='email'><input type='password' name='password'><input type='submit' value='Log in'>"
    "</form></section>",
    "<div class='paywall'><h2>Subscribe to keep reading</h2>{lines}<ul><li>Digital: £1 a week for your first "
    "three months, then £5.99 a month</li><li>Print and digital: $14.99 a month</li></ul></div>",
    "<div class='bezahlschranke'><h2>Weiterlesen mit Plus</h2>{lines}<p>Vier Wochen für nur 0,99 Euro, danach "
    "9,99 Euro im Monat.</p></div>",
    # the time before an amount of several digits, its only price (the amount had been read from its last digit)
    "<div class='bezahlschranke'><h2>Weiterlesen mit Plus</h2>{lines}<p>Vier Wochen für nur 0,99 Euro.</p></div>",
    "<div class='paywall'><h2>Subscribe to keep reading</h2>{lines}<p>One year for 49 dollars.</p></div>",
    # a time said as an adverb, or in French
    "<div class='paywall'><h2>Subscribe to keep reading</h2>{lines}<p>Just $4.99 monthly, cancel any time.</p></div>",
    "<div class='paywall'><h2>Abonnez-vous</h2>{lines}<p>Seulement 49 € par an, sans engagement.</p></div>",
])
def test_a_paywall_offer_of_prose_stays_out_by_its_link_button_form_or_price(offer):
    # an offer's paragraphs can be as long as a story's: what tells it from the story's gated part is that it
    # links somewhere, asks for something (a button, a form) or names a price
    lines = "".join(f"<p>{line}</p>" for line in OFFER_LINES)
    html = story_page("").replace("</article>", offer.format(lines=lines) + "</article>")
    assert paragraphs(extract_article(html)) == BUS_STORY


BUS_STORY_DE = [
    "Die Stadt will bis zum Sommer zwölf neue Buslinien in den nördlichen Stadtteilen einrichten, teilte der "
    "Bürgermeister am Dienstag mit.",
    "Die Busse sollen zwischen fünf Uhr morgens und Mitternacht alle zehn Minuten fahren, auch am Wochenende und an "
    "Feiertagen.",
    "Der Stadtrat hatte die Pläne nach langen Beratungen mit großer Mehrheit beschlossen, die Kosten trägt zum Teil "
    "das Land."]
TEASERS_DE = "".join(f"<li><a href='/s/{i}'>Geschichte {i}</a><p>Nach dem Hochwasser in der Unterstadt hat der "
                     f"Gemeinderat eine Untersuchung versprochen, die Bewohner warten auf Hilfe ({i}).</p></li>"
                     for i in range(3))
OFFER_DE = ("Dieser Artikel ist exklusiv für Abonnentinnen und Abonnenten. Testen Sie unser Angebot jetzt vier Wochen "
            "lang für nur 0,99 Euro und lesen Sie alle Artikel aus Politik, Sport, Wetter und Kultur ohne Werbung.")
COMMENT_DE = ("Ich wohne seit zwanzig Jahren im Norden der Stadt und finde, das ist die beste Nachricht, die wir seit "
              "langem bekommen haben, endlich tut sich etwas.")


@pytest.mark.parametrize("box", [
    f"<div class='mehr-zum-thema'><h2>Mehr zum Thema</h2><ul>{TEASERS_DE}</ul></div>",
    f"<div class='box meistGelesen'><h2>Meistgelesen</h2><ol>{TEASERS_DE}</ol></div>",
    f"<div class='meistgelesen'><h2>Meistgelesen</h2><ol>{TEASERS_DE}</ol></div>",
    f"<div class='artikel-empfehlungen'><h2>Das könnte Sie auch interessieren</h2><ul>{TEASERS_DE}</ul></div>",
    f"<div class='bezahlschranke'><h2>Weiterlesen mit Plus</h2><p>{OFFER_DE}</p></div>",
])
def test_a_german_site_s_boxes_inside_the_story_are_left_out(box):
    # a German magazine names its boxes in German: its "Mehr zum Thema" teasers, "Meistgelesen", its Plus
    # offer and its readers' comments had been indexed with each story, as the English-named ones are not
    # (on a 35-article site, "WLAN" found four other Technik stories by a teaser, and every Plus article
    # shared the offer's "Politik, Reise, Kochen und Technik")
    html = ("<html lang='de'><body><main><article><h1>Neue Buslinien für den Norden</h1>" +
            "".join(f"<p>{line}</p>" for line in BUS_STORY_DE) + box + "</article></main></body></html>")
    assert paragraphs(extract_article(html)) == BUS_STORY_DE


def test_a_short_german_article_above_its_readers_kommentare_is_the_answer():
    # the thread holds most of the good text: named in German, its 20 comments had been read as the article
    thread = "<section class='kommentare'>" + "".join(f"<div><b>Leser {i}</b><p>{COMMENT_DE} ({i})</p></div>"
                                                      for i in range(20)) + "</section>"
    html = ("<html lang='de'><body><div class='artikel'><h1>Neue Buslinien für den Norden</h1>" +
            "".join(f"<p>{line}</p>" for line in BUS_STORY_DE) + "</div>" + thread + "</body></html>")
    assert paragraphs(extract_article(html)) == BUS_STORY_DE


def test_german_box_words_name_no_box_alone():
    # "Kommentar" is also an opinion piece, the article itself; "mehr" and "thema" alone name no box
    assert extract._boiler_words("artikel-kommentar mehr-text thema-seite zum") == set()
    assert extract._boiler_words("mehrZumThema") == {"zum-thema"}


@pytest.mark.parametrize("lang, post_class, story, beside", [
    ("en", "post type-post hentry category-news tag-trending", BUS_STORY + MORE_OF_THE_STORY,
     "<div id='comments'><ol class='commentlist'>" + f"<li><p>{READER_COMMENT}</p></li>" * 8 + "</ol></div>"),
    ("en", "post hentry category-media tag-paywall", BUS_STORY + MORE_OF_THE_STORY,
     "<div id='comments'>" + f"<p>{READER_COMMENT}</p>" * 8 + "</div>"),
    # an opinion piece of a German blog: "kommentare" names a discussion, kept out with 250 characters beside it
    ("de", "post hentry category-kommentare", BUS_STORY_DE, "<div class='widget'>" + f"<p>{COMMENT_DE}</p>" * 2 + "</div>"),
    ("de", "post hentry category-politik tag-empfehlungen", BUS_STORY_DE,
     "<div id='comments'>" + f"<p>{COMMENT_DE}</p>" * 5 + "</div>"),
])
def test_a_wordpress_post_s_categories_and_tags_name_no_box(lang, post_class, story, beside):
    # post_class labels the post's element by its terms ("tag-trending", "category-kommentare"): read as a
    # box's name, the story beside a longer comment thread or a sidebar's text had been left out
    html = (f"<html lang='{lang}'><body><div id='content'><div id='post-12' class='{post_class}'><h1>Buses</h1>"
            "<div class='entry'>" + "".join(f"<p>{line}</p>" for line in story) + "</div></div>" + beside +
            "</div></body></html>")
    assert paragraphs(extract_article(html)) == story


@pytest.mark.parametrize("around, outside", [
    (("<div class='share-wrapper'>", "</div>"), ""),
    # a theme's state class naming comments: with little text beside it (an "about us" box of 250
    # characters or more would make it a thread, and lose the article: the rule cannot tell them apart)
    (("<div class='post-comments-open'>", "</div>"), ""),
    (("<div class='post-comments-open'>", "</div>"), f"<p>{READER_COMMENT}</p>"),  # too little to be the article
])
def test_a_boilerplate_named_box_around_the_whole_article_is_a_layout_wrapper(around, outside):
    html = story_page("", around).replace("<body>", "<body>" + outside)
    assert paragraphs(extract_article(html))[-3:] == BUS_STORY


def test_withdrawn_listed_and_made_up_codes():
    assert language.code("iw") == "he" and language.code("in-ID") == "id"
    # three-letter codes pages declare: ISO 639-2 (both forms), and a macrolanguage's member
    assert language.code("eng") == "en" and language.code("ger") == language.code("deu-AT") == "de"
    assert language.code("arb") == "ar" and language.code("sh") == "sr"
    assert language.choose(language.code("eng"), "ok 12") == ("English", "en")  # too short for CLD2 to overrule
    assert language.code("und") == language.code("zxx") == ""  # tags that name no language
    assert language.code("de, en") == language.code("de-AT ;q=1") == "de"  # a list: its first
    assert language.code("german") == language.code("d e") == ""
    assert language.choose("", "ellohay orldway isthay isay igpay atinlay " * 5) == (None, "")  # CLD2: "zzp"


def test_text_too_short_to_tell_gets_no_language():
    assert language.choose("", "ok 12") == (None, "")
    assert language.choose("de", "ok 12") == ("German", "de")  # the declaration stands


def test_characters_the_identifier_refuses_do_not_hide_the_language():
    # CLD2 refuses a whole text over one control character, noncharacter or lone surrogate
    text = "The city plans to build a new bridge over the river \x01 in the next three years \ufffe, " \
           "the mayor said \ud800 on Tuesday \U0010ffff after the council voted for it."
    assert language.languages(text)[0][0] == "en"


@pytest.mark.parametrize("head, canonical", [
    ('<link rel="canonical" href="/news/bridge">', "https://site.example/news/bridge"),  # made absolute
    ('<link rel="alternate canonical" href="https://site.example/a">', "https://site.example/a"),
    ('<meta property="og:url" content="https://site.example/og">', "https://site.example/og"),  # the fallback
    ('<link rel="canonical" href="javascript:alert(1)">', ""),
    (f'<link rel="canonical" href="/{"a" * 3000}">', ""),  # over MAX_URL_LENGTH: no address
    ("", ""),
])
def test_the_page_names_its_own_address(head, canonical):
    body = "<p>" + "The council voted for the new bridge over the river after a long debate. " * 3 + "</p>"
    a = extract_article(f"<html><head>{head}</head><body>{body * 3}</body></html>",
                        url="https://site.example/amp/news/bridge")
    assert a.canonical == canonical


# -- titles --------------------------------------------------------------------
def _titled(og_title, site_name=None, h1=None):
    site = f'<meta property="og:site_name" content="{site_name}">' if site_name else ""
    heading = f"<h1>{h1}</h1>" if h1 else ""
    return (f'<html><head><meta property="og:title" content="{og_title}">{site}'
            f"<title>ignored when og:title exists</title></head>"
            f"<body>{heading}<p>Some body text.</p></body></html>")


def test_a_title_loses_bidi_overrides_that_would_reverse_what_follows_it():
    a = extract_article(_titled("Moon landing \u202eenil tsrif eht\u202c anniversary \u2067x\u2069"))
    assert a.title == "Moon landing enil tsrif eht anniversary x"


@pytest.mark.parametrize("og_title, site_name, url, h1, expected", [
    ("Mayor opens the new bridge | City Herald", "City Herald", None, None, "Mayor opens the new bridge"),
    ("Mayor opens the new bridge - City Herald", "City Herald", None, None, "Mayor opens the new bridge"),
    ("City Herald | Mayor opens the new bridge", "City Herald", None, None, "Mayor opens the new bridge"),
    ("Mayor opens the new bridge - Cityherald", None, "https://www.cityherald.com/a/1", None,
     "Mayor opens the new bridge"),
    ("Mayor opens the new bridge | Herald", None, None, None, "Mayor opens the new bridge"),
    ("Mayor opens the new bridge – Local News – Herald", None, None, "Mayor opens the new bridge",
     "Mayor opens the new bridge"),
    ("Spider-Man: a review", None, None, None, "Spider-Man: a review"),
])
def test_title_without_site_name(og_title, site_name, url, h1, expected):
    assert extract_article(_titled(og_title, site_name, h1), url=url).title == expected


def test_the_h1s_inside_an_h1_without_text_are_not_read(monkeypatch):
    # nested in an empty <h1>, each had been read to the end of the first (1,000 of them around 250,000
    # empty elements: 6 s); they can hold no text it has not
    read = []
    text_content = lxml.html.HtmlElement.text_content

    def counted(el):
        read.append(el.tag)
        return text_content(el)

    monkeypatch.setattr(lxml.html.HtmlElement, "text_content", counted)
    empty = "<h1> <span>" * 3 + "<b> </b>" + "</span></h1>" * 3
    html = f"<html><body>{empty}<h1>Buses for the north</h1><p>Some body text.</p></body></html>"
    assert extract_article(html).title == "Buses for the north"
    assert read.count("h1") == 2  # the outer empty one, and the headline


@pytest.mark.parametrize("where", ["og:title", "title", "h1"])
def test_a_title_is_cut_at_a_word_within_300_characters(where):
    words = "word " * 200_000
    html = {"og:title": _titled(words), "title": f"<html><head><title>{words}</title></head><body><p>x</p></body></html>",
            "h1": f"<html><body><h1>{words}</h1><p>x</p></body></html>"}[where]
    title = extract_article(html).title
    assert len(title) <= 300 and title.endswith("word…") and title.startswith("word word")


def test_a_title_of_one_long_word_is_cut_too():
    title = extract_article(_titled("x" * 5000)).title
    assert title == "x" * 299 + "…"


def test_title_falls_back_to_title_tag_then_h1():
    html = "<html><head><title>  Rain all week  |  Weather Desk </title></head><body><p>x</p></body></html>"
    assert extract_article(html).title == "Rain all week"
    assert extract_article("<html><body><h1>Only a heading</h1></body></html>").title == "Only a heading"


# -- junk input ----------------------------------------------------------------
@pytest.mark.parametrize("junk", [
    b"", "", None, 42, b"   \n ", b"\x00" * 1000, os.urandom(20000), bytes(range(256)) * 50,
    "<<<>>>", "<html><body><p>unclosed <div><table><tr><td>x", b"\xff\xfe<\x00h\x00t\x00",
    "<?xml version='1.0' encoding='utf-8'?><html><body><p>text</p></body></html>",
    "<html>" + "<div>" * 100_000 + "deep" + "</div>" * 100_000 + "</html>",
    "<p>" * 50_000,
])
def test_junk_input_never_raises(junk):
    a = extract_article(junk)
    assert isinstance(a, Article)
    assert isinstance(a.text, str) and isinstance(a.title, str) and isinstance(a.lang, str)


def test_paragraph_revision_gives_jusText_s_classes():
    """revise_classification against jusText's own revise_paragraph_classification (the oracle),
    on random runs of paragraphs: classes, headings, lengths, and classes left from a last pass."""
    import copy
    import random
    from types import SimpleNamespace

    from justext.core import revise_paragraph_classification

    from function.extract import MAX_HEADING_DISTANCE, revise_classification

    class Para(SimpleNamespace):
        def __len__(self):  # ours reads a paragraph's reading length, jusText len(text): equal in ASCII
            return extract.reading_length(self.text)

    rng = random.Random(7)
    classes = ["short", "neargood", "good", "bad"]
    for _ in range(3000):
        weights = [rng.random() for _ in classes]  # runs of mostly short, mostly near-good, ...
        paras = [Para(cf_class=rng.choices(classes, weights)[0], heading=rng.random() < 0.2,
                                 text="x" * rng.choice([0, 1, 30, 90, 250]), class_type=rng.choice(classes + [""]))
                 for _ in range(rng.randrange(40))]
        theirs = copy.deepcopy(paras)
        revise_paragraph_classification(theirs, MAX_HEADING_DISTANCE)
        revise_classification(paras, MAX_HEADING_DISTANCE)
        assert [p.class_type for p in paras] == [p.class_type for p in theirs]


def test_many_short_paragraphs_take_linear_time():
    # jusText's own revision walks to each short paragraph's neighbours: this page took ~4 minutes
    article = extract_article(b"<html><body>" + b"<p>moon apollo " * 30_000)
    assert article.text == ""


# -- bounded work: what a hostile page can make the extractor do ---------------------------------
@pytest.mark.parametrize("flood", [
    "<p>x</p>" * 100_000,  # paragraphs past the bound (0.8 MB: 2 s before it)
    "<div>" * 200 + "<h2>x</h2>" * 100_000,  # deep one-letter headings (1 MB: 13-24 s)
    "<span>" * 10 + "<i></i>" * extract.MAX_ELEMENTS,  # elements past the bound
])
def test_an_article_before_a_flood_of_elements_is_kept_and_the_rest_is_not_read(flood):
    html = story_page(flood + "<p>A paragraph past the flood.</p>")
    assert paragraphs(extract_article(html))[:3] == BUS_STORY
    walked = [p.text for p in extract._paragraphs(extract._parse(html).find("body"))[0]]
    assert len(walked) <= extract.MAX_PARAGRAPHS and "A paragraph past the flood." not in walked


@pytest.mark.parametrize("before", ["<div>" * 260 + "x" + "</div>" * 260, "<font>" * 300])
def test_an_article_after_markup_nested_past_256_levels_is_read(before):
    # libxml2 stopped parsing the page there: closed or not, the nesting lost the article after it
    assert paragraphs(extract_article(story_page("").replace("<body>", "<body>" + before)))[:3] == BUS_STORY


@pytest.mark.parametrize("before", [
    "<!-- an old banner: <span class=promo " + " ".join(f"w{i}" for i in range(250)) + " -->",
    '<img alt="x<y ' + " ".join(f"w{i}" for i in range(250)) + '" src=a.png>',
])
def test_a_long_run_ending_in_a_comment_or_a_quoted_value_is_not_cut(before):
    # cut, it had left the comment or the quote open over the rest of the page
    assert paragraphs(extract_article(story_page("").replace("<body>", "<body>" + before)))[:3] == BUS_STORY


def test_a_tag_flooded_with_attributes_loses_them_and_no_other_tag_does():
    many = " ".join(f"a{i}=x" for i in range(attribute_floods.MAX_TAG_ATTRIBUTES + 1))
    bounded = " ".join(f"a{i}=x" for i in range(attribute_floods.MAX_TAG_ATTRIBUTES - 1))  # and its class
    image = "data:image/png;base64," + "QUJD" * 5000  # one long attribute
    html = story_page(f"<div class='flood' {many}><p>{READER_COMMENT}</p></div><div class='kept' {bounded}></div>"
                      f"<img id='picture' src='{image}'>")
    doc = extract._parse(html)
    assert doc.xpath("//div[p]")[-1].attrib == {}  # cut to its name, its content kept
    assert len(doc.xpath("//div[@class='kept']")[0].attrib) == attribute_floods.MAX_TAG_ATTRIBUTES
    assert doc.xpath("//img")[0].get("src") == image
    assert paragraphs(extract_article(html))[:3] == BUS_STORY


def _attributes(count, every=None, between=""):
    names = [f"a{i}=x" for i in range(count)]
    if every:
        names = [name + (" " + between if i % every == every - 1 else "") for i, name in enumerate(names)]
    return " ".join(names)


# one tag to the parser (libxml2 follows HTML's tokenizer), in runs of fewer than 200 attributes
# between a "<" or ">": the scan for long tags had looked only at such runs
@pytest.mark.parametrize("between", ['q=">"', "q='<'", "<b", "z=<", "<b y=1"])
def test_a_flood_split_by_angle_brackets_the_parser_reads_inside_the_tag_is_cut(between):
    flood = f"<div class='flood' {_attributes(3000, every=150, between=between)}>"
    html = story_page(f"{flood}<p>{READER_COMMENT}</p></div>")
    doc = extract._parse(html)
    assert max(len(element.attrib) for element in doc.iter()) <= attribute_floods.MAX_TAG_ATTRIBUTES
    assert doc.xpath("//div[p]")[-1].attrib == {}  # cut to its name, its content kept
    assert paragraphs(extract_article(html))[:3] == BUS_STORY


def test_a_flood_in_an_end_tag_or_a_self_closed_tag_is_cut_as_the_parser_reads_it():
    many = _attributes(attribute_floods.MAX_TAG_ATTRIBUTES + 1)
    assert attribute_floods.without_attribute_floods(f"<p>x</p {many}><br {many} />y<i {many}") == "<p>x</p><br/>y"


@pytest.mark.parametrize("holder", [
    "<!-- {} -->", "<script>var s = '<b {}>';</script>", "<style>/* <b {}> */</style>", "<title><b {}></title>",
    "<textarea><b {}></textarea>", "<script><!-- <script> </script> <b {}> --></script>",
])
def test_a_flood_in_text_the_parser_reads_no_tags_in_is_left_alone(holder):
    html = "<p>before</p>" + holder.format(_attributes(attribute_floods.MAX_TAG_ATTRIBUTES + 1)) + "<p>after</p>"
    assert attribute_floods.without_attribute_floods(html) == html


def test_after_a_self_closed_script_the_parser_reads_markup_and_so_does_the_scan():
    many = _attributes(attribute_floods.MAX_TAG_ATTRIBUTES + 1)
    assert attribute_floods.without_attribute_floods(f"<script/><b {many}>x</b>") == "<script/><b>x</b>"


FLOOD_PIECES = ["<", ">", '"', "'", "=", "/", " ", "\n", "!", "-", "?", "a", "b", "`", "\xa0", "<p", "<b ", "</p",
                "</p a='>'>", "<script", "</script", "<script>", "</SCRIPT\t>", "<!--", "-->", "--!>", "<!-->", "<!--->",
                "<style>", "</style>", "<title>", "</title>", "<textarea>", "</textarea", "<xmp>", "</xmp>",
                "<plaintext>", "<noscript>", "<!DOCTYPE", "<?", "<![CDATA[", "c=1 ", 'd="q" ', "e='>' ", "g=<h ",
                "<p a b c d e>", "<span x=1 y=2 z=3 w=4>", "<p/", "/>", "a/>", "<p////a/b/c/>", "text ",
                "</\u017fcript>", "</t\u0131tle>", "</SCR\u0130PT>", "<\u017fcript>"]  # not "s", "i" to libxml2


def _tree_without_attributes(html):
    """The parse of ``html`` with every attribute removed, and the most attributes an element had."""
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, huge_tree=True)
    doc = lxml.html.document_fromstring(html, parser=parser)
    elements = [element for element in doc.iter() if isinstance(element.tag, str)]
    most = max(len(element.attrib) for element in elements)
    for element in elements:
        element.attrib.clear()
    return lxml.etree.tostring(doc, encoding=str), most


def test_the_scan_finds_tags_where_the_parser_does_on_random_markup():
    """Against libxml2 itself, on 3,000 random pages of markup's hard cases, with a bound of 2:
    after the scan no element has more attributes, and the page parses as before but for them."""
    rng = random.Random(7)
    for _ in range(3000):
        html = "<body>" + "".join(rng.choice(FLOOD_PIECES) for _ in range(rng.randint(3, 60)))
        before, _ = _tree_without_attributes(html)
        after, most = _tree_without_attributes(attribute_floods.without_attribute_floods(html, limit=2))
        assert most <= 2, html
        assert after == before, html


def test_a_long_quoted_value_counts_as_one_attribute():
    # an SVG path or a description of 300 words: split on spaces, they had lost every attribute
    description = " ".join(f"word{i}" for i in range(300))
    doc = extract._parse(story_page("").replace(
        "<body>", f"<head><meta name='description' content='{description}'></head><body>"))
    assert doc.xpath("//meta")[0].get("content") == description


def test_a_class_value_is_read_for_boilerplate_names_only_so_far():
    long_name = "x" * extract.MAX_CLASS_CHARS
    assert extract._boiler_words(extract._class_value(lxml.html.fragment_fromstring(
        f"<div class='share {long_name}'></div>"))) == {"share"}
    assert not extract._boiler_words(extract._class_value(lxml.html.fragment_fromstring(
        f"<div class='{long_name} share'></div>")))


ONE_LINERS = ["The council met on Tuesday night.", "It voted to close the bridge for repairs.",
              "Work will start in March, officials said.", "Residents had complained about cracks for years.",
              "The mayor called the vote a relief.", '"We should have done this long ago," she said.',
              "Traffic will go through the old town.", "Shops there fear the extra cars.",
              "A detour map will be posted next week.", "The repairs will cost four million euros.",
              "The state will pay half of the bill.", "The rest comes from the city's reserves."]


def test_an_article_of_one_line_paragraphs_is_kept():
    # every paragraph is under jusText's 70 characters, so each alone is "short", and short
    # paragraphs without a good neighbour are bad: the page had no text (a 422)
    assert all(len(line) < 70 for line in ONE_LINERS)
    article = extract_article(
        "<html lang='en'><body><div class='menu'><p>Politics</p><p>Sport</p><p>Weather</p></div>"
        "<article><h1>Bridge to close</h1>" + "".join(f"<p>{line}</p>" for line in ONE_LINERS) +
        "</article><div class='more'><p>Read more stories.</p></div></body></html>")
    assert paragraphs(article) == ONE_LINERS


# news paragraphs of 23 to 60 characters: each under jusText's 70, counted one a character
CJK_STORIES = {
    "zh": ["市议会周二晚间召开会议，讨论明年的预算安排，多名议员就道路维修问题发表意见。",
           "经过长时间辩论，议会最终同意为公园增加拨款，并决定在三月份开始桥梁维修工程。",
           "市长表示，这项决定早就应该做出，居民们多年来一直抱怨桥梁出现裂缝。",
           "维修期间，交通将绕行老城区，当地商户担心车流增加会影响生意。",
           "官员说，绕行路线图将在下周公布，维修费用预计为四百万欧元。",
           "州政府将承担一半费用，其余部分来自市政储备金。"],
    "ja": ["市議会は火曜日の夜に会合を開き、来年度の予算について議論した。道路の補修が主な論点となった。",
           "長い議論の末、議会は公園への予算を増やすことで合意し、三月に橋の補修工事を始めることを決めた。",
           "市長は、この決定はもっと早く下すべきだったと述べた。住民は長年、橋のひび割れに不満を訴えていた。",
           "工事の間、車は旧市街を迂回する。地元の商店は交通量の増加を心配している。",
           "迂回路の地図は来週公開される予定で、補修費用は四百万ユーロと見込まれている。"],
    "ko": ["시의회는 화요일 밤 회의를 열고 내년 예산을 논의했으며, 여러 의원이 도로 보수 문제에 대해 의견을 냈다.",
           "긴 논쟁 끝에 의회는 공원 예산을 늘리기로 합의하고 3월에 다리 보수 공사를 시작하기로 결정했다.",
           "시장은 이 결정이 훨씬 더 일찍 내려졌어야 했다고 말했다. 주민들은 수년간 다리의 균열에 대해 불평해 왔다.",
           "공사 기간 동안 차량은 구시가지로 우회하며, 지역 상인들은 교통량 증가를 걱정하고 있다."],
}


@pytest.mark.parametrize("lang", sorted(CJK_STORIES))
def test_a_cjk_article_of_news_length_paragraphs_is_kept_without_its_menu(lang):
    story = CJK_STORIES[lang]
    assert all(len(line) < extract.LENGTH_LOW for line in story)
    menu = "".join(f"<li><a href='/s/{i}'>{story[i % len(story)][:6]}</a></li>" for i in range(12))
    article = extract_article(
        f"<html lang='{lang}'><body><ul class='nav'>{menu}</ul><article><h1>{story[0][:10]}</h1>"
        + "".join(f"<p>{line}</p>" for line in story) + "</article><div class='footer'><p>© 2026</p></div></body></html>")
    assert paragraphs(article) == story
    assert article.lang == lang


def test_a_cjk_list_of_short_items_is_still_not_an_article():
    items = [line[:8] for line in CJK_STORIES["zh"]] * 4
    article = extract_article("<html lang='zh'><body><ul>" + "".join(f"<li>{item}</li>" for item in items) +
                              "</ul></body></html>")
    assert article.text == ""


@pytest.mark.parametrize("items", [
    [f"<a href='/story/{i}'>Council story number {i} on the bridge repairs</a>" for i in range(20)],  # links
    [f"Weight {i} kg" for i in range(40)],  # figures
    "Apple Banana Cherry Date Elderberry Fig Grape Honeydew Kiwi Lemon Mango Orange Papaya".split() * 3,  # names
])
def test_a_list_of_short_items_is_still_not_an_article(items):
    article = extract_article("<html lang='en'><body><ul>" + "".join(f"<li>{item}</li>" for item in items) +
                              "</ul></body></html>")
    assert article.text == ""


SITE_PAGES = ROOT / "tests" / "pages"


@pytest.mark.parametrize("name, text", [
    ("short-photo-post.html", "The full moon rising over the harbour tonight, the lunar surface bright enough to read by."),
    ("short-link-post.html", "The moon landing, fifty years on: the astronauts' own photographs."),
])
def test_a_short_post_gives_its_own_lines(name, text):
    # a caption (in a box named "caption"), a link and a line: jusText keeps nothing of either page
    article = extract_article((SITE_PAGES / name).read_bytes())
    assert (article.text, article.lang) == (text, "en")


POST_HEAD = "<html lang='en'><head><title>Marathon</title><meta property='og:type' content='article'>"


@pytest.mark.parametrize("head, body, text", [
    # a script-rendered post: its description (og: first), not the same words as its title
    (POST_HEAD + "<meta name='description' content='Just finished my first marathon in under four hours!'>",
     "<div id='app'></div>", "Just finished my first marathon in under four hours!"),
    (POST_HEAD + "<meta property='og:description' content='Marathon'>"
     "<meta name='twitter:description' content='Under four hours, on a hot day.'>", "", "Under four hours, on a hot day."),
    # the post's own lines come before its description; its headline, share bar and links are not its lines
    (POST_HEAD + "<meta property='og:description' content='A site about running.'>",
     "<article><h1>Marathon</h1><p>Four hours, one minute.</p><div class='share'><p>Share this</p></div>"
     "<p><a href='/tag/run'>running</a></p></article>", "Four hours, one minute."),
    # a JSON-LD BlogPosting says it is a post too
    ("<html><head><script type='application/ld+json'>{\"@graph\": [{\"@type\": [\"BlogPosting\"]}]}</script>",
     "<main><p>Four hours, one minute, and a blister.</p></main>", "Four hours, one minute, and a blister."),
    # no more than a word or two: no post
    (POST_HEAD + "<meta property='og:description' content='Photo'>", "<article><p>Untitled</p></article>", ""),
    # a page that does not say it is a post: its description may be the whole site's
    ("<html lang='en'><head><title>Acme</title><meta name='description' content='Acme: the best widgets since 1999.'>",
     "<main><p>Welcome to our shop.</p></main>", ""),
    # a list of posts is not one
    (POST_HEAD, "<article><p>Four hours, one minute.</p></article><article><p>A new bike for the spring.</p></article>", ""),
    # a password field: a login form, whatever the page says it is
    (POST_HEAD + "<meta property='og:description' content='Members read the whole story.'>",
     "<article><p>Sign in to keep reading.</p><form><input type=PASSWORD name=pw></form></article>", ""),
])
def test_a_page_that_says_it_is_a_post_gives_what_it_says_it_is_about(head, body, text):
    assert extract_article(f"{head}</head><body>{body}</body></html>").text == text


def test_a_pages_json_ld_is_read_once_for_its_body_and_whether_it_is_a_post(monkeypatch):
    # the short posts' check had parsed every JSON-LD script again: a page of nothing but JSON-LD
    # (60,000 objects, 2 MB) took 471 ms to extract where it had taken 199
    parsed = []
    loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, *args, **kw: parsed.append(text) or loads(text, *args, **kw))
    ld = "<script type='application/ld+json'>{\"@graph\": [{\"@type\": \"Thing\"}, {\"@type\": \"BlogPosting\"}]}</script>"
    article = extract_article(f"<html><head>{ld}<meta name='description' content='Four hours, one minute, and a "
                              "blister.'></head><body><div id='app'></div></body></html>")
    assert article.text == "Four hours, one minute, and a blister."  # the BlogPosting says it is a post
    assert len(parsed) == 1


@pytest.mark.parametrize("name", ["no-article.html", "sign-in.html", "soft-404.html", "cookie-wall.html"])
def test_a_page_of_boilerplate_alone_gives_no_text(name):
    # the cookie wall's paragraph had been kept: a box named for cookies holding all the text was taken
    # for a layout wrapper
    assert extract_article((SITE_PAGES / name).read_bytes()).text == ""


def test_binary_garbage_gives_no_text():
    for seed in range(5):
        noise = bytes((i * 7919 + seed * 104729) % 251 for i in range(30000))
        assert extract_article(noise) == Article("", "", "")
    assert extract_article(os.urandom(50000)).text == ""


def test_article_is_frozen():
    a = extract_article(page("article_tag.html"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.text = "changed"


# -- charsets ------------------------------------------------------------------
def test_windows_1252_page_with_meta_charset():
    a = extract_article(page("cp1252.html"))
    assert a.title == "Café-théâtre : la saison d’hiver commence"
    assert a.lang == "fr"
    assert "« Nous voulons que tout le monde puisse venir »" in a.text
    assert "leur carte… même le dimanche." in a.text
    assert "\ufffd" not in a.text


def test_windows_1252_page_declared_by_the_header_only():
    body = re.sub(rb"<meta http-equiv[^>]*>", b"", page("cp1252.html"))
    a = extract_article(body, encoding="windows-1252")
    assert "présente cette année une programmation très variée" in a.text


def test_declared_wrong_charset():
    utf8 = page("german_lang.html")  # UTF-8 bytes
    # the header says Latin-1: the bytes are valid UTF-8 with multi-byte sequences -> UTF-8
    assert "Straßen schmaler" in extract_article(utf8, encoding="iso-8859-1").text
    # the header says UTF-8 but the bytes are windows-1252 -> the page's <meta> decides
    assert "très variée" in extract_article(page("cp1252.html"), encoding="utf-8").text
    # names that are not charsets at all
    for label in ("no-such-charset", "utf-99", "rot13", "base64", "", "  UTF-8 ", '"utf-8"', "\x00",
                  "cp037", "cp500", "utf-7", "unicode_escape",  # no browser reads markup in these: junk had come out
                  "raw-unicode-escape", "raw_unicode_escape", "charmap",  # Python's codecs, not charsets: mojibake
                  "iso-2022-kr", "hz-gb-2312", "x-user-defined"):  # labels browsers decline to read as text
        assert "Straßen schmaler" in extract_article(utf8, encoding=label).text, label
    # Python's spellings of web charsets were charsets to the codec registry, but browsers read labels
    for label, codec in (("latin1", "cp1252"), ("US-ASCII", "cp1252"), ("sjis", "cp932"), ("euc-kr", "cp949"),
                         ("gb2312", "gbk"), ("koi8-u", "koi8-u"), ("x-mac-cyrillic", "mac-cyrillic"),
                         ("utf-16be", "utf-16-be"), ("utf-32-le", "utf-32-le")):
        assert codec_for(label) == codec, label
    assert codec_for("\udcff") is None  # a label no header or <meta> can spell: still no exception
    thai = "<p>ราคาข้าวแพงขึ้น</p>"  # declared by the web's label only (Python's is cp874)
    assert decode_html(thai.encode("cp874"), "windows-874") == thai


def test_a_meta_utf16_on_an_ascii_page_holding_a_nul_is_not_read_as_utf16():
    # the <meta> was found in the bytes, so they are ASCII: only the HTTP header can name UTF-16
    html = story_page("").replace("<body>", "<head><meta charset='utf-16'><title>a\x00b</title></head><body>")
    html += " " * (len(html.encode()) % 2)
    assert paragraphs(extract_article(html.encode()))[:3] == BUS_STORY


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_page_in_utf16_or_utf32_without_a_byte_order_mark_is_read_by_its_declared_charset(codec):
    html = story_page("")
    assert paragraphs(extract_article(html.encode(codec), encoding=codec))[:3] == BUS_STORY
    # and a page that is ASCII after all keeps being read as ASCII
    assert paragraphs(extract_article(html.encode(), encoding=codec))[:3] == BUS_STORY


def test_decode_html_order():
    text = "Grüße aus Köln – „Zitat“"
    assert decode_html(text.encode("utf-8-sig"), "iso-8859-1") == text  # the BOM wins
    assert decode_html(text.encode("utf-16"), None) == text
    assert decode_html(text.encode("utf-8"), "UTF-8") == text
    assert decode_html(text.encode("cp1252"), "windows-1252") == text
    assert decode_html(text.encode("cp1252"), "latin-1") == text  # WHATWG: latin-1 means windows-1252
    meta = '<meta charset="windows-1252">' + text
    assert decode_html(meta.encode("cp1252"), None) == meta
    assert decode_html(meta.encode("cp1252"), "bogus") == meta
    spaced = "<meta charset = ' windows-1252'>" + text  # the spaces around "=" and the quote, read once each
    assert decode_html(spaced.encode("cp1252"), None) == spaced
    xml = '<?xml version="1.0" encoding="ISO-8859-15"?><p>5 € le café</p>'
    assert decode_html(xml.encode("iso-8859-15"), None) == xml
    assert decode_html(b"", None) == ""
    assert decode_html(b"\xff\xfe\xfa plain", "utf-8").endswith("plain")  # never raises
    assert decode_html(b"abc", "utf-16") == "abc"  # a BOM-less "UTF-16" ASCII page is mislabelled


# -- the command line ----------------------------------------------------------
def test_cli_prints_one_json_line_per_file(tmp_path):
    gz = tmp_path / "news.html.gz"
    gz.write_bytes(gzip.compress(page("news_page.html")))
    plain = tmp_path / "french.html"
    plain.write_bytes(page("french_nolang.html"))
    result = subprocess.run([sys.executable, "-m", "function.extract", str(gz), str(plain)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"file", "title", "lang", "summary", "text"}
    assert first["file"] == str(gz)
    assert first["title"] == "River towns brace for the spring floods"
    assert first["lang"] == "en"
    assert first["text"].startswith("Residents of the low-lying river towns")
    assert second["lang"] == "fr" and "marché couvert" in second["text"]


# -- the dev set (only where it is available) -----------------------------------
DEV = Path(os.environ.get("EXTRACTION_DEV_DIR") or ROOT.parent / "shared" / "bench" / "extraction-dev")


@pytest.mark.skipif(not (DEV / "ground-truth.json").is_file(), reason="no extraction dev set")
def test_dev_set_f1(tmp_path):
    truth = json.loads((DEV / "ground-truth.json").read_text(encoding="utf8"))
    predictions = {}
    for page_id, item in truth.items():
        html = gzip.decompress((DEV / "html" / f"{page_id}.html.gz").read_bytes())
        predictions[page_id] = {"articleBody": extract_article(html, url=item.get("url")).text}
    out = tmp_path / "ours.json"
    out.write_text(json.dumps(predictions), encoding="utf8")
    result = subprocess.run([sys.executable, str(DEV / "score.py"), str(DEV / "ground-truth.json"), str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("ours"))
    f1 = float(row.split()[1])
    assert f1 >= 0.95, result.stdout


def test_cli_reports_unreadable_files_and_goes_on(tmp_path):
    good = tmp_path / "page.html"
    good.write_bytes(page("article_tag.html"))
    result = subprocess.run([sys.executable, "-m", "function.extract", str(tmp_path / "missing.html"), str(good)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "missing.html" in result.stderr
    [line] = result.stdout.splitlines()
    assert json.loads(line)["title"] == "How the old lighthouse was saved"
