"""Email addresses: one strict validator shared by settings, subscribers and the inbox.

Strict on purpose: an address is written into a header of every digest, so
anything that could smuggle a second recipient or a header (commas, line
breaks, angle brackets) is refused with the reason, not cleaned up. Every
refusal names the rule the address broke, so whoever typed it can fix it.

A domain of one label (`ann@localhost`, `ann@intranet`) is accepted: a local-only
mail server and internal hosts use them, and SMTP (RFC 5321) allows them. What
is refused is what no mail server can route: labels of other characters, empty
or too long labels, an all-digit last label (an IP address must be written as a
literal, `[192.0.2.1]`, which is not accepted either).
"""

from __future__ import annotations

import email.utils
import re

from .errors import NewsletterError

# RFC 5322 dot-atom: atext characters, dots only between them. Quoted local parts
# ("a b"@example.org) are valid mail but not accepted: they need quoting in headers.
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_LABEL_CHARS = re.compile(r"^[A-Za-z0-9-]+$")
MAX_ADDRESS, MAX_LOCAL, MAX_DOMAIN, MAX_LABEL = 254, 64, 253, 63


class AddressError(NewsletterError):
    """str() says what is wrong with the address, for a one-line error."""


def domain_problem(domain: str) -> str:
    """Why `domain` is not a host name mail can be sent to, or "" when it is one.
    Also the check for [smtp] helo_name, which must be a host name too."""
    if not domain:
        return "it is empty"
    if domain.startswith("[") or domain.endswith("]"):
        return "address literals like [192.0.2.1] are not accepted; use a host name"
    if len(domain) > MAX_DOMAIN:
        return f"it is longer than {MAX_DOMAIN} characters"
    labels = domain.split(".")
    if "" in labels:
        return "it has an empty label (a dot at the start or end, or two dots in a row)"
    for label in labels:
        if not _LABEL_CHARS.match(label):
            return f"label {label!r} may hold only letters, digits and hyphens"
        if len(label) > MAX_LABEL:
            return f"label {label[:20] + '...'!r} is longer than {MAX_LABEL} characters"
        if label.startswith("-") or label.endswith("-"):
            return f"label {label!r} must not start or end with a hyphen"
    if labels[-1].isdigit():
        return f"the last label {labels[-1]!r} is all digits (an IP address is not a host name)"
    return ""


def _local_problem(local: str) -> str:
    if len(local) > MAX_LOCAL:
        return f"it is longer than {MAX_LOCAL} characters"
    if local.startswith(".") or local.endswith("."):
        return "it must not start or end with a dot"
    if ".." in local:
        return "it must not hold two dots in a row"
    if not _ATEXT.match(local):
        bad = next(c for c in local if not _ATEXT.match(c))
        return f"it must not hold {bad!r} (quoted local parts are not accepted)"
    return ""


def normalize_address(text: str) -> str:
    """Validate one bare address (local@domain); returns it with the domain lowercased."""
    if any(c in text for c in "\r\n\0"):
        raise AddressError("an address must not contain line breaks")
    address = text.strip()
    if not address:
        raise AddressError("the address is empty")
    if any(c in address for c in ",;<> \t"):
        raise AddressError(f"{address!r} must be one bare address like name@example.org")
    if not address.isascii():
        raise AddressError(
            f"{address!r} must be ASCII (internationalised addresses are not supported)"
        )
    if len(address) > MAX_ADDRESS:
        raise AddressError(f"{address[:40]!r}... is longer than {MAX_ADDRESS} characters")
    local, at, domain = address.rpartition("@")
    if not at:
        raise AddressError(f"{address!r} is not an address like name@example.org (no @)")
    if not local:
        raise AddressError(
            f"{address!r} is not an address like name@example.org (nothing before the @)"
        )
    if not domain:
        raise AddressError(
            f"{address!r} is not an address like name@example.org (nothing after the @)"
        )
    problem = _local_problem(local)
    if problem:
        raise AddressError(f"{address!r} has an invalid local part (before the @): {problem}")
    problem = domain_problem(domain)
    if problem:
        raise AddressError(f"{address!r} has an invalid domain: {problem}")
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
