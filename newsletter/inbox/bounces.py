"""Bounce reports: which recipients a delivery status notification (RFC 3464) says failed.

A relay accepts a digest and learns only later that the mailbox does not
exist; it then mails a DSN to the envelope sender (our inbox). This reads the
standard format only (multipart/report; report-type=delivery-status); the
free-text bounces of some old MTAs are not guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from ..addresses import AddressError, normalize_address

MAX_RECIPIENTS = 50  # per report; a report naming more is cut (it is not ours anyway)


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


def _field(block: Message, name: str) -> str:
    return " ".join(str(block.get(name, "")).split())


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
