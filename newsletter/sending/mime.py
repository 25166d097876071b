"""One rendered digest as mail in SMTP's wire form, built once and addressed per person.

The MIME structure, the quoted-printable bodies and the shared headers are made
once per distinct digest; each message then adds one person's headers and the
few encoded bytes of their greeting, address and unsubscribe link.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from email import quoprimime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr
from urllib.parse import quote

from ..maildate import mail_date
from .render import HTML_ESCAPE, Body, Personal, Rendered, personal_parts
from .smtp_wire import END, stuffed


def unsubscribe_mailto(address: str, token: str) -> str:
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"


# RFC 2045 allows 76 characters per quoted-printable line; pieces are encoded to 75
# so a soft line break ("=") still fits after the last line of each.
_QP_LINE = 75
_NEWLINE = re.compile(r"\r\n|\r")
_TEXT_BODY, _HTML_BODY = "ZZbodyTextZZ", "ZZbodyHtmlZZ"


# A piece the email package's quoted-printable leaves as it is: one line of at most
# _QP_LINE printable ASCII characters, no "=", not ending in a space. Most personal
# values (address, link, greeting) are; checking is twice as fast as encoding.
_PLAIN = re.compile(rf"[ -<>-~]{{0,{_QP_LINE - 1}}}[!-<>-~]")


def quoted_printable(piece: str) -> bytes:
    """Quoted-printable of one piece of a body (UTF-8, CRLF), as the email package
    encodes a whole body, ending at a line end or with a soft line break: pieces
    encoded apart join into one valid body that decodes to their concatenation."""
    if not piece:
        return b""
    if _PLAIN.fullmatch(piece):
        return piece.encode("ascii") + b"=\r\n"
    encoded = quoprimime.body_encode(piece.encode("utf-8").decode("latin-1"), _QP_LINE, eol="\r\n")
    return (encoded if encoded.endswith("\r\n") else encoded + "=\r\n").encode("ascii")


def _pieces(body: Body) -> tuple[bytes | str, ...]:
    """The body's shared pieces encoded and dot-stuffed (bytes), with the names of the
    readers' spots between them (str). Line ends normalised as the email package does
    for a text body."""
    pieces = [_NEWLINE.sub("\n", piece) for piece in body.pieces]
    if not pieces[-1].endswith("\n"):
        pieces[-1] += "\n"
    out: list[bytes | str] = []
    for n, piece in enumerate(pieces):
        if n:
            out.append(body.slots[n - 1])
        if piece:
            out.append(stuffed(quoted_printable(piece)))
    return tuple(out)


def _filled(pieces: tuple[bytes | str, ...], values: Mapping[str, bytes]) -> bytes:
    """A body from `_pieces` with each slot's encoded value."""
    return b"".join(p if isinstance(p, bytes) else values[p] for p in pieces)


def _folded(headers: Mapping[str, str]) -> dict[str, bytes]:
    """Header lines as the email package writes them (parsed, encoded, folded)."""
    head = EmailMessage(policy=SMTP)
    for name, value in headers.items():
        head[name] = value
    return {name: SMTP.fold_binary(name, value) for name, value in head.raw_items()}


def _line(name: str, value: str) -> bytes:
    """One header line for a value that needs no encoding (ASCII), not folded: the
    email package folds at 78 columns by making a long URL an encoded word, which
    mail clients do not read as a link (List-Unsubscribe). Like the email package,
    it refuses anything that could end the line; RFC 5322 allows 998 characters."""
    line = f"{name}: {value}\r\n"
    if any(c in value for c in "\r\n\0") or not line.isascii() or len(line) > 1000:
        raise ValueError(f"{name}: not a one-line ASCII header value: {value!r}")
    return line.encode("ascii")


@functools.lru_cache(maxsize=1)
def _date_line(second: int) -> bytes:
    """The Date header, made once for all the messages sent in the same second."""
    return _line("Date", mail_date(second))


class MailTemplate:
    """One distinct digest as mail, built once for everyone who gets it.

    The MIME structure, the quoted-printable bodies and the shared headers (the
    expensive part) are made here, once, already in SMTP's wire form (every piece
    starts at a line start, so each is dot-stuffed apart; see smtp_wire.py).
    `message()` then writes one person's headers and encodes and stuffs the few
    bytes of their greeting, address and unsubscribe link between the shared
    pieces. Shared headers, and a name that needs encoding, go through the email
    package; the personal ones (and List-Unsubscribe) are plain ASCII and written
    directly (`_line`, which refuses line breaks just as the email package does,
    so no value can inject a header): the email package's header parser would
    cost more than the rest of the message.
    """

    def __init__(
        self,
        rendered: Rendered,
        *,
        sender: str,
        list_name: str,
        list_id: str,
    ):
        self.rendered = rendered
        self.shared = _folded(
            {
                "From": sender,
                # RFC 2919: a phrase, quoted or encoded like a display name, then <id>.
                "List-Id": formataddr((list_name, list_id)),
                "Subject": rendered.subject,
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Auto-Submitted": "auto-generated",
            }
        )
        self.text = _pieces(rendered.text)
        self.html = _pieces(rendered.html)
        skeleton = EmailMessage(policy=SMTP)
        skeleton.set_content(_TEXT_BODY, cte="7bit")
        skeleton.add_alternative(_HTML_BODY, subtype="html", cte="7bit")
        for part in skeleton.iter_parts():
            part.replace_header("Content-Transfer-Encoding", "quoted-printable")
        before, rest = skeleton.as_bytes().split(_TEXT_BODY.encode() + b"\r\n")
        between, after = rest.split(_HTML_BODY.encode() + b"\r\n")
        self.skeleton = (stuffed(before), stuffed(between), stuffed(after) + END)

    def _headers(self, person: Personal) -> bytes:
        shared = self.shared
        if person.name.isascii():
            to = _line("To", formataddr((person.name, person.email)))
        else:
            to = _folded({"To": formataddr((person.name, person.email))})["To"]
        unsubscribe = f"<{person.unsubscribe_mailto}>"
        if person.unsubscribe_url:
            unsubscribe += f", <{person.unsubscribe_url}>"
        return b"".join(
            (
                shared["From"],
                to,
                shared["Subject"],
                _date_line(int(time.time())),
                _line("Message-ID", person.message_id),
                shared["List-Id"],
                _line("List-Unsubscribe", unsubscribe),
                shared["List-Unsubscribe-Post"] if person.unsubscribe_url else b"",
                shared["Auto-Submitted"],
            )
        )

    def message(self, person: Personal) -> bytes:
        """The whole multipart/alternative message for one person, in wire form
        (ending with SMTP's "." line)."""
        text, html = {}, {}
        for slot, value in personal_parts(person).items():
            text[slot] = stuffed(quoted_printable(value))
            escaped = value.translate(HTML_ESCAPE)
            html[slot] = text[slot] if escaped == value else stuffed(quoted_printable(escaped))
        before, between, after = self.skeleton
        return b"".join(
            (
                self._headers(person),
                before,
                _filled(self.text, text),
                between,
                _filled(self.html, html),
                after,
            )
        )
