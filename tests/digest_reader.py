"""Reading the digests the test SMTP server received, the way a person would."""

from __future__ import annotations

import re
from email.message import EmailMessage
from html.parser import HTMLParser


class _Sections(HTMLParser):
    """Collects {section heading: [paper ids]} from a digest's HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.current: str | None = None
        self.in_h2 = False
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "h2":
            self.in_h2 = True
            self.current = ""
        if tag == "p" and attributes.get("class") == "title":
            self.in_title = True
        href = attributes.get("href") or ""
        if tag == "a" and self.in_title and self.current is not None:
            match = re.search(r"arxiv\.org/abs/(.+?)(?:v\d+)?$", href)
            if match:
                self.sections[self.current].append(match.group(1))

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self.in_h2 = False
            self.sections[self.current or ""] = []
        if tag == "p":
            self.in_title = False

    def handle_data(self, data: str) -> None:
        if self.in_h2 and self.current is not None:
            self.current += data.strip()


def html_part(message: EmailMessage) -> str:
    """The decoded HTML part, with the CRLFs of the SMTP transfer turned back into LF."""
    return message.get_body(("html",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


def text_part(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


def sections(message: EmailMessage) -> dict[str, list[str]]:
    parser = _Sections()
    parser.feed(html_part(message))
    return parser.sections


def paper_ids(message: EmailMessage) -> list[str]:
    return [pid for ids in sections(message).values() for pid in ids]
