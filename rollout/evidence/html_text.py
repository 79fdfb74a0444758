"""Outside text made safe for report.html: escaped, one line, links only to what may be clicked.

Every string that came from users or from a metrics source (names, versions, reasons, notes,
queries, trace IDs, links) goes through these before it reaches the page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from typing import Final
from urllib.parse import urlsplit

from rollout.evidence.render_common import BAD_DECISIONS, GOOD_DECISIONS, one_line

LINK_SCHEMES: Final = frozenset({"http", "https", "file"})
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def text(value: str) -> str:
    """One line of outside text, safe in an element or an attribute."""
    return escape(one_line(value), quote=True)


def block(value: str) -> str:
    """Text kept as written (a query's lines), control characters dropped, escaped."""
    return escape(_CONTROL_BUT_NEWLINE.sub("", value).strip(), quote=True)


def code(value: str) -> str:
    return f"<code>{text(value)}</code>"


def link(label: str, url: str) -> str:
    """`label` (already HTML) as a link to http(s) or file; any other scheme stays text."""
    url = one_line(url)
    if urlsplit(url).scheme.lower() not in LINK_SCHEMES:
        return label
    return f'<a href="{escape(url, quote=True)}" rel="noopener noreferrer">{label}</a>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def tone(decision: str) -> str:
    """The decision's colour class: good (promoted, pass), bad (rolled back, fail, aborted)."""
    if decision in GOOD_DECISIONS:
        return "good"
    return "bad" if decision in BAD_DECISIONS else "neutral"
