"""One incoming email → the facts the inbox acts on (pure: bytes in, `Incoming` out).

Everything in an incoming message is untrusted and often malformed: headers
without a valid address, broken MIME, unknown charsets, megabytes of body. This
module never raises on bad mail; it reads what it can, notes what it could not
(`problems`), and leaves deciding to actions.py.

It uses the email package's compat32 policy: it keeps going over defects where
the newer policy raises from header access, and we decode what we need
ourselves.
"""

from __future__ import annotations

import email
import email.utils
import hashlib
import re
from dataclasses import dataclass
from email.header import Header, decode_header, make_header
from email.message import Message
from html.parser import HTMLParser
from typing import ClassVar

from ..addresses import AddressError, normalize_address
from .bounces import Bounce, Returned, parse_bounces, returned

MAX_TEXT_CHARS = 20_000  # of the text part: commands are in its first lines
MAX_COMMAND_LINES = 5
MAX_HEADER_CHARS = 998  # RFC 5322's line limit; longer values are cut

# Headers that mark mail sent by a program, not a person: never answered (RFC 3834).
_PRECEDENCE_AUTOMATIC = {"bulk", "list", "junk"}
_AUTORESPONDER_HEADERS = ("X-Autoreply", "X-Autorespond")  # older vacation programs
_NULL_SENDERS = {"mailer-daemon", "postmaster"}


@dataclass(frozen=True)
class Incoming:
    """What actions.py needs from one message; `sender` is None when there is no
    usable From address (then nobody can be answered)."""

    key: str  # identifies the message across polls: its Message-ID, else a hash of it
    sender: str | None
    sender_name: str
    subject: str
    message_id: str
    references: tuple[str, ...]
    automatic: str  # why this must not be answered ("Auto-Submitted: auto-replied"), or ""
    lines: tuple[str, ...]  # the first non-empty body lines, quotes and signature left out
    text: str  # the readable text (subject and body, quotes included), bounded
    bounces: tuple[Bounce, ...]
    problems: tuple[str, ...]
    returned: Returned = Returned()  # noqa: RUF009 (frozen): what a bounce report returns


def _raw_text(value: object) -> str:
    """A header value as str. compat32 hands raw 8-bit header bytes over as a Header of
    unknown charset: read them as UTF-8 (RFC 6532), so that nothing unencodable gets
    into a log line, the store or a subscriber file."""
    if isinstance(value, Header):
        return "".join(
            chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
            for chunk, _ in decode_header(value)
        )
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _decoded(value: object) -> str:
    """RFC 2047 encoded words → text; the value as it is when they are broken."""
    text = _raw_text(value)
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, ValueError, UnicodeError, email.errors.HeaderParseError):
        return text


def _header(message: Message, name: str) -> str:
    """A header decoded to text, one line, bounded; "" when absent."""
    raw = message.get(name)
    if raw is None:
        return ""
    return " ".join(_decoded(raw).split())[:MAX_HEADER_CHARS]


def _sender(message: Message) -> tuple[str | None, str, str]:
    """(address, display name, problem) from From; exactly one valid address or none."""
    raw = message.get_all("From") or []
    if not raw:
        return None, "", "no From header"
    try:
        pairs = email.utils.getaddresses([_raw_text(v) for v in raw])
    except (ValueError, TypeError, IndexError):
        return None, "", "unreadable From header"
    pairs = [(n, a) for n, a in pairs if a]
    if len(pairs) != 1:
        return None, "", f"From must hold one address, got {len(pairs)}"
    name, address = pairs[0]
    try:
        address = normalize_address(address)
    except AddressError as err:
        return None, "", f"invalid From address: {err}"
    return address, " ".join(_decoded(name).split())[:100], ""


def automatic_reason(message: Message, sender: str | None) -> str:
    """Why a message must not be answered, or "": auto-replies, bounces, lists, daemons."""
    auto = _header(message, "Auto-Submitted").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = _header(message, "Precedence").strip().lower()
    if precedence in _PRECEDENCE_AUTOMATIC:
        return f"Precedence: {precedence}"
    if message.get("List-Id") is not None:
        return "List-Id"
    for name in _AUTORESPONDER_HEADERS:
        if message.get(name) is not None:
            return name
    if _header(message, "Return-Path").replace(" ", "") == "<>":
        return "null sender (Return-Path: <>)"
    if sender is not None and sender.partition("@")[0].lower() in _NULL_SENDERS:
        return f"sent by {sender}"
    if message.get_content_type() == "multipart/report":
        return "a delivery or read report"
    return ""


class _HtmlText(HTMLParser):
    """Readable lines from an HTML-only message; quoted blocks are left out."""

    BREAKS: ClassVar[set[str]] = {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.quoted = 0
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "blockquote":
            self.quoted += 1
        if tag in ("style", "script", "head", "title"):
            self.hidden += 1
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote":
            self.quoted = max(0, self.quoted - 1)
        if tag in ("style", "script", "head", "title"):
            self.hidden = max(0, self.hidden - 1)
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(("\n> " + data.replace("\n", "\n> ")) if self.quoted else data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # HTMLParser gives up on some broken markup
        pass
    return "".join(parser.parts)


def _decode(part: Message) -> str:
    """A text part's payload as str, whatever its charset claims; never raises."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    payload = payload[: MAX_TEXT_CHARS * 4]
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, errors="replace")[:MAX_TEXT_CHARS]
    except LookupError:  # a charset Python does not know: keep what is ASCII-readable
        return payload.decode("utf-8", errors="replace")[:MAX_TEXT_CHARS]


def body_text(message: Message) -> str:
    """The first text/plain part that is not an attachment, else the first text/html one."""
    html = None
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            return _decode(part)
        if kind == "text/html" and html is None:
            html = part
    return html_to_text(_decode(html)) if html is not None else ""


_SIGNATURE = re.compile(r"^(--|__+|-{3,}\s*original message\s*-{3,})\s*$", re.I)
# "On Mon, Ann <ann@example.org> wrote:" and its translations, or Outlook's "From: ..." block.
_ATTRIBUTION = re.compile(
    r"^(.{0,300}\b(wrote|schrieb|a écrit|escribió|scrisse)\s*:|from: .+)$", re.I
)


def command_lines(text: str) -> tuple[str, ...]:
    """The first non-empty lines a person typed: stops at a signature ("-- ") or at the
    quoted message they replied to; quoted lines ("> ...") are skipped."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if _SIGNATURE.match(line) or _ATTRIBUTION.match(line):
            break
        if not line or line.startswith(">"):
            continue
        lines.append(line)
        if len(lines) == MAX_COMMAND_LINES:
            break
    return tuple(lines)


_MSGID = re.compile(r"<[^<>\s]{1,250}>")


def message_key(message_id: str, data: bytes) -> str:
    """Message-ID when there is one (it also folds a duplicate delivery of the same mail),
    else a hash of the bytes."""
    if message_id:
        return "id:" + message_id
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_incoming(data: bytes) -> Incoming:
    """Read one raw message; never raises on malformed input."""
    message = email.message_from_bytes(data)  # compat32: collects defects instead of raising
    problems = [type(d).__name__ for d in message.defects]
    sender, name, sender_problem = _sender(message)
    if sender_problem:
        problems.append(sender_problem)
    subject = _header(message, "Subject")
    ids = _MSGID.findall(_header(message, "Message-ID"))
    message_id = ids[0] if ids else ""
    references = tuple(_MSGID.findall(_header(message, "References")))[-10:]
    try:
        text = body_text(message)
    except Exception as err:  # broken MIME can fail in surprising places; the subject may do
        problems.append(f"unreadable body: {type(err).__name__}")
        text = ""
    try:
        bounces = parse_bounces(message)
        quoted = returned(message) if bounces else Returned()
    except Exception as err:
        problems.append(f"unreadable delivery report: {type(err).__name__}")
        bounces, quoted = (), Returned()
    return Incoming(
        key=message_key(message_id, data),
        sender=sender,
        sender_name=name,
        subject=subject,
        message_id=message_id,
        references=references,
        automatic=automatic_reason(message, sender),
        lines=command_lines(text),
        text=f"{subject}\n{text}",
        bounces=bounces,
        problems=tuple(problems),
        returned=quoted,
    )
