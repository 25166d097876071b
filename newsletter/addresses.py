"""Email addresses: one strict validator shared by settings, subscribers and the inbox.

Strict on purpose: an address is written into a header of every digest, so
anything that could smuggle a second recipient or a header (commas, line
breaks, angle brackets) is refused with the reason, not cleaned up.
"""

from __future__ import annotations

import email.utils
import re

from .errors import NewsletterError

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class AddressError(NewsletterError):
    """str() says what is wrong with the address, for a one-line error."""


def normalize_address(text: str) -> str:
    """Validate one bare address (local@domain); returns it with the domain lowercased."""
    if any(c in text for c in "\r\n\0"):
        raise AddressError("an address must not contain line breaks")
    address = text.strip()
    if not address:
        raise AddressError("the address is empty")
    if any(c in address for c in ",;<> \t"):
        raise AddressError(f"{address!r} must be one bare address like name@example.org")
    if len(address) > 254 or not address.isascii():
        raise AddressError(f"{address!r} must be an ASCII address of at most 254 characters")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise AddressError(f"{address!r} is not an address like name@example.org")
    if len(local) > 64 or not _LOCAL.match(local):
        raise AddressError(f"{address!r} has an invalid part before the @")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise AddressError(f"{address!r} has an invalid domain")
    return f"{local}@{domain.lower()}"


def address_key(address: str) -> str:
    """What makes two addresses the same subscriber (case-insensitive, as mail providers are)."""
    return address.casefold()


# Domains whose mailboxes ignore dots in the part before the @ (Gmail says so); the
# second is another name of the first.
_DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def mailbox_key(address: str) -> str:
    """The mailbox that mail to `address` reaches, as far as a limit on what we send needs
    to know: case ignored, a +tag dropped (sub-addressing, which most providers offer),
    and dots where the domain is known to ignore them. Not an identity: two subscribers
    may share a mailbox key, and each still gets their own digest."""
    local, _, domain = address.casefold().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in _DOTS_IGNORED:
        domain = _DOTS_IGNORED[domain]
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def parse_mailbox(text: str) -> tuple[str, str]:
    """'Daily Papers <papers@example.org>' → ('Daily Papers', 'papers@example.org'), validated."""
    if any(c in text for c in "\r\n\0"):
        raise AddressError("an address must not contain line breaks")
    pairs = email.utils.getaddresses([text])
    if len(pairs) != 1 or not pairs[0][1]:
        raise AddressError(f"{text!r} must be one address like 'Name <name@example.org>'")
    name, address = pairs[0]
    return name, normalize_address(address)
