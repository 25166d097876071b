"""Message bytes as SMTP's DATA carries them (RFC 5321 4.5.2): CRLF line ends,
a "." added to every line that starts with one, so that no line of the message
can be read as the "." line that ends it, and that line (`END`).

aiosmtplib's `data()` does this with two regular expressions over every byte
of every message, the largest cost of sending a digest. A digest is
the same bytes for thousands of people, so `MailTemplate` applies `stuffed` to
its shared pieces once and to each person's few bytes per message; other
messages go through `wire_form`. The mailer sends what it is given as is.
"""

from __future__ import annotations

import re

END = b".\r\n"
_LINE_END = re.compile(rb"\r\n|\r|\n")


def stuffed(piece: bytes) -> bytes:
    """A piece of a message with CRLF line ends that starts at a line start, with
    its lines that start with "." dot-stuffed. Pieces stuffed apart and joined
    are the whole message stuffed."""
    if piece.startswith(b"."):
        piece = b"." + piece
    return piece.replace(b"\n.", b"\n..")


def wire_form(message: bytes) -> bytes:
    """Any message as DATA transmits it: the same bytes aiosmtplib's `data()`
    would send (tests/test_mailer.py checks)."""
    message = _LINE_END.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return stuffed(message) + END
