"""Bounce reports: which recipients a delivery status notification (RFC 3464) says failed,
and which of our messages it answers.

A relay accepts a digest and learns only later that the mailbox does not
exist; it then mails a DSN to the envelope sender (our inbox), with the
returned message or its headers. This reads the standard format only
(multipart/report; report-type=delivery-status); the free-text bounces of some
old MTAs are not guessed at. Anyone can send a report naming anyone, so what
it names proves nothing by itself: actions.py counts it only when the
returned headers carry the signed Message-ID of a digest we sent to that
subscriber (tokens.is_digest_to).
"""

from __future__ import annotations

import email.parser
import re
from dataclasses import dataclass
from email.message import Message

from ..addresses import AddressError, normalize_address

MAX_RECIPIENTS = 50  # per report; a report naming more is cut (it is not ours anyway)
MAX_RETURNED = 5  # returned messages read per report (a DSN returns one)
# The part of a report that returns the message, or only its headers (RFC 3462, 6533).
RETURNED_TYPES = {
    "text/rfc822-headers",
    "message/rfc822",
    "message/rfc822-headers",
    "message/global",
    "message/global-headers",
}
_MSGID = re.compile(r"<[^<>\s]{1,250}>")


@dataclass(frozen=True)
class Bounce:
    recipient: str  # the address we sent to: Original-Recipient when given, else Final-Recipient
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # "5.1.1"
    diagnostic: str = ""

    @property
    def permanent(self) -> bool:
        """Only a final failure with a permanent status counts, like a 5xx at send time."""
        return self.action == "failed" and self.status.startswith("5")

    def detail(self) -> str:
        return f"bounce report: {self.status} {self.diagnostic}".strip()[:300]


def _address(field: str | None) -> str | None:
    """'rfc822; ann@example.org' → 'ann@example.org', or None when unusable."""
    if not field:
        return None
    _, _, value = str(field).partition(";")
    value = value.strip().strip("<>").strip()
    try:
        return normalize_address(value)
    except AddressError:
        return None


@dataclass(frozen=True)
class Returned:
    """What the report quotes of the message it returns: its Message-IDs."""

    message_ids: tuple[str, ...] = ()


def _headers_of(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):  # message/rfc822: the email package parsed it
        first = payload[0] if payload else None
        return first if isinstance(first, Message) else None
    if isinstance(payload, str):  # text/rfc822-headers: a block of header lines
        return email.parser.HeaderParser().parsestr(payload[:65536])
    return None


def returned(message: Message) -> Returned:
    """The Message-IDs of the message(s) a report returns."""
    if message.get_content_type() != "multipart/report":
        return Returned()
    ids: list[str] = []
    read = 0
    for part in message.walk():
        if part.get_content_type() not in RETURNED_TYPES or read == MAX_RETURNED:
            continue
        read += 1
        headers = _headers_of(part)
        if headers is None:
            continue
        ids += _MSGID.findall(" ".join(str(v) for v in headers.get_all("Message-ID") or []))[:2]
    return Returned(tuple(ids))


def _field(block: Message, name: str) -> str:
    """One field, on one line, without control characters: it is logged and shown."""
    text = "".join(c if c.isprintable() else " " for c in str(block.get(name, "")))
    return " ".join(text.split())


def parse_bounces(message: Message) -> tuple[Bounce, ...]:
    """Every recipient block of a delivery-status report; () for any other message."""
    if message.get_content_type() != "multipart/report":
        return ()
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return ()
    found: list[Bounce] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block describes the report, the rest recipients
            if not isinstance(block, Message):
                continue
            recipient = _address(block.get("Original-Recipient")) or _address(
                block.get("Final-Recipient")
            )
            if recipient is None:
                continue
            found.append(
                Bounce(
                    recipient=recipient,
                    action=_field(block, "Action").lower(),
                    status=_field(block, "Status").split(" ")[0],
                    diagnostic=_field(block, "Diagnostic-Code"),
                )
            )
            if len(found) == MAX_RECIPIENTS:
                return tuple(found)
    return tuple(found)
