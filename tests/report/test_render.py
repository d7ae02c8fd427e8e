"""The three formats: Markdown and JSON say the same numbers; hostile text stays inert in
Markdown, HTML and JSON; the HTML is one self-contained file with its charts."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from sipguard.report import render
from sipguard.report.model import Report
from sipguard.report.text import esc_html, esc_md, visible
from tests.report import samples
from tests.report.tables import md_tables, num, table_with
from tests.report.test_aggregate import report

HOSTILE = [samples.HOSTILE_ACCOUNT, samples.HOSTILE_DETAIL, samples.HOSTILE_SUMMARY]


@pytest.fixture(scope="module")
def full() -> Report:
    return report()


def test_markdown_and_json_say_the_same_numbers(full: Report) -> None:
    md = render(full, "md")
    data: dict[str, Any] = json.loads(render(full, "json"))
    assert data["format"] == "sipguard-report"
    headline = dict(table_with(md, "Measure", "Value"))
    t = data["traffic"]
    assert num(headline["Messages"]) == t["messages"]
    assert num(headline["Blocked messages"]) == t["dropped"] + t["rejected"]
    assert num(headline["Security events"]) == data["events_total"]
    assert (
        headline["Bans issued"]
        == f"{data['bans']['issued']} ({data['bans']['manual_issued']} by hand)"
    )
    assert (
        headline["Bans lifted"]
        == f"{data['bans']['lifted']} ({data['bans']['manual_lifted']} by hand)"
    )
    assert num(headline["Brute-force and scanning incidents"]) == data["brute_force"]["total"]
    assert num(headline["Toll-fraud incidents"]) == data["toll_fraud"]["total"]
    assert num(headline["Unusual logins"]) == data["unusual_logins"]["total"]
    assert num(headline["Calls answered"]) == t["calls"]

    blocked = table_with(md, "Reason", "Dropped", "Rejected", "Total")
    assert [[r[0], num(r[1]), num(r[2]), num(r[3])] for r in blocked] == [
        [b["reason"], b["dropped"], b["rejected"], b["dropped"] + b["rejected"]]
        for b in data["blocked"]
    ]
    kinds = table_with(md, "Kind", "Events")
    assert [[k, num(v)] for k, v in kinds] == [
        [c["key"], c["value"]] for c in data["events_by_kind"]
    ]
    countries = table_with(md, "Country", "Events", "Sources", "Bans")
    assert [[r[0], *map(num, r[1:])] for r in countries] == [
        [c["country"], c["events"], c["sources"], c["bans"]] for c in data["by_country"]
    ]
    sources = table_with(
        md, "Source", "Country", "Events", "Bans", "What it did", "First seen", "Last seen"
    )
    assert [[r[0], num(r[2]), num(r[3])] for r in sources] == [
        [s["ip"], s["events"], s["bans"]] for s in data["top_sources"]["items"]
    ]
    accounts = table_with(md, "Account", "Events", "Sources", "What happened")
    assert [[r[0], num(r[1])] for r in accounts] == [
        [a["account"], a["events"]] for a in data["top_accounts"]["items"]
    ]
    reasons = table_with(md, "Reason", "Bans issued")
    assert [[r, num(v)] for r, v in reasons] == [
        [c["key"], c["value"]] for c in data["bans"]["by_reason"]
    ]
    series = table_with(md, "Hour from", "Messages", "Blocked", "Security events")
    shown = [b for b in data["series"] if b["messages"] or b["blocked"] or b["events"]]
    assert [[num(x) for x in r[1:]] for r in series] == [
        [b["messages"], b["blocked"], b["events"]] for b in shown
    ]


def test_markdown_tables_keep_their_shape_and_show_hostile_text_inert(full: Report) -> None:
    md = render(full, "md")
    for table in md_tables(md):
        assert len({len(row) for row in table}) == 1, table[0]  # no cell split by a "|"
    assert "<script" not in md and "<img" not in md and "<b>" not in md
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", md)
    assert not re.search(r"(?<!\\)\]\(http", md)  # no live link: its brackets are escaped
    # what the reader sees is the stored text, made visible (escapes undone by the table reader)
    cells = {c for table in md_tables(md) for row in table for c in row}
    assert samples.HOSTILE_ACCOUNT in cells
    assert visible(samples.HOSTILE_DETAIL) in cells


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "main",
    "header",
    "h1",
    "h2",
    "h3",
    "div",
    "ul",
    "li",
    "section",
    "p",
    "figure",
    "figcaption",
    "svg",
    "g",
    "line",
    "rect",
    "text",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "footer",
}
ALLOWED_ATTRS = {
    "lang",
    "charset",
    "http-equiv",
    "content",
    "name",
    "class",
    "id",
    "xmlns",
    "viewbox",
    "width",
    "height",
    "role",
    "aria-label",
    "font-family",
    "font-size",
    "x",
    "y",
    "x1",
    "x2",
    "y1",
    "y2",
    "fill",
    "stroke",
    "stroke-width",
    "text-anchor",
}


def test_html_has_only_inert_markup_and_shows_hostile_text_as_text(full: Report) -> None:
    page = render(full, "html")
    parser = _Tags()
    parser.feed(page)
    assert parser.tags <= ALLOWED_TAGS, parser.tags - ALLOWED_TAGS  # no script, img, a, link...
    assert parser.attrs <= ALLOWED_ATTRS, parser.attrs - ALLOWED_ATTRS  # no on*, src, href, style
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", page)
    text = "".join(parser.text)
    assert samples.HOSTILE_ACCOUNT in text  # shown, as text
    assert visible(samples.HOSTILE_DETAIL) in text
    assert '"' not in esc_html('"') and "<" not in esc_html("<")
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src &#x27;none&#x27;" in page
    assert page.count("<svg") >= 5  # traffic, events, blocked, countries, kinds
    assert 'class="bar"' in page


def test_json_is_ascii_and_keeps_stored_text_exactly(full: Report) -> None:
    text = render(full, "json")
    assert text.isascii()
    data = json.loads(text)
    assert data["brute_force"]["items"][3]["account"] == samples.HOSTILE_ACCOUNT
    assert data["brute_force"]["items"][3]["detail"] == samples.HOSTILE_DETAIL


def test_escapers_on_their_own() -> None:
    assert esc_md("a|b*c_d`e[f](g)<h>&") == "a\\|b\\*c\\_d\\`e\\[f\\](g)&lt;h&gt;&amp;"
    assert esc_html('<a href="x">\x1b') == "&lt;a href=&quot;x&quot;&gt;\\x1b"
    assert visible("x" * 400, 10) == "xxxxxxx..."
    assert visible("\u202e\n\t") == "\\u202e\\n\\t"


def test_an_empty_period_renders_in_every_format() -> None:
    from sipguard.report.aggregate import RollupTally

    empty = report(rollups=RollupTally(samples.SINCE, samples.UNTIL), events=[], bans=[], drills=[])
    for fmt in ("md", "json", "html"):
        assert render(empty, fmt)
    assert "no data" in render(empty, "html")
    assert "No traffic rollups were recorded" in render(empty, "md")
