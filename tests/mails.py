"""Mail that people (and robots) send to the newsletter, as the bytes an MTA would deliver."""

from __future__ import annotations

import itertools
import mailbox
import re
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from smtp_server import Received

INBOX = "papers-inbox@example.org"
_ids = itertools.count(1)


def mail(
    sender: str,
    subject: str = "",
    body: str = "",
    *,
    to: str = INBOX,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A plain-text message as a mail client writes it."""
    message = EmailMessage(policy=SMTP)
    message["Return-Path"] = f"<{sender.split('<')[-1].rstrip('>')}>"
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Fri, 07 Mar 2025 10:00:00 +0000"
    message["Message-ID"] = message_id or f"<m{next(_ids)}@client.example.net>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def reply_to(received: Received, sender: str, body: str = "Yes, please.") -> bytes:
    """What a mail client sends when a person presses Reply on a message we sent:
    'Re: ' + its subject, the original quoted below the answer."""
    original = received.message
    quoted = "\n".join("> " + line for line in original.get_content().splitlines())
    return mail(
        sender,
        "Re: " + original["Subject"],
        f"{body}\n\nOn Fri, 7 Mar 2025, Daily Papers wrote:\n{quoted}\n",
        headers={"In-Reply-To": original["Message-ID"], "References": original["Message-ID"]},
    )


def confirmation_code(received: Received) -> str:
    match = re.search(r"confirm ([a-z2-7]{26})", received.message["Subject"])
    assert match, received.message["Subject"]
    return match.group(1)


def dsn(recipient: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    """A delivery status notification (RFC 3464) in Postfix's form, naming `recipient`,
    that returns no digest of ours: anyone can write it (see `bounce_of` for a real one)."""
    return (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@relay.example.org (Mail Delivery System)\r\n"
        f"To: {INBOX}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        f"Message-ID: <bounce{next(_ids)}@relay.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--B\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; relay.example.org\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        "\r\n"
        "--B\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"From: Daily Papers <{INBOX}>\r\n"
        f"To: {recipient}\r\n"
        "Subject: [Daily Papers] 3 new papers\r\n"
        "\r\n"
        "--B--\r\n"
    ).encode()


def bounce_of(
    received: Received,
    *,
    returned: str = "message",
    recipient: str | None = None,
    sender: str = "MAILER-DAEMON@relay.example.org (Mail Delivery System)",
) -> bytes:
    """The DSN a relay like Postfix mails to the envelope sender when a message it accepted
    cannot be delivered: a notice, the delivery report, and the message it returns, whole
    ("message") or its headers ("headers"), as received. `recipient` names another
    address in the report than the one the message went to (a forgery)."""
    failed = recipient or received.rcpt_tos[0]
    original = received.data.replace(b"\r\n", b"\n").decode("utf-8", "replace")
    headers = original.split("\n\n", 1)[0]
    relayed = "Received: from mail.example.org by relay.example.org (Postfix); Fri, 7 Mar 2025\n"
    kind, description, body = {
        "message": ("message/rfc822", "Undelivered Message", relayed + original),
        "headers": ("text/rfc822-headers", "Undelivered Message Headers", relayed + headers),
    }[returned]
    text = (
        "Return-Path: <>\n"
        f"Delivered-To: {received.mail_from}\n"
        "Date: Fri,  7 Mar 2025 10:05:00 +0000 (UTC)\n"
        f"From: {sender}\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"To: {received.mail_from}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        '\tboundary="4F2A1C0.1741341900/relay.example.org"\n'
        "Content-Transfer-Encoding: 8bit\n"
        f"Message-Id: <2025030710{next(_ids):04d}.4F2A1C0@relay.example.org>\n"
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        "--4F2A1C0.1741341900/relay.example.org\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "This is the mail system at host relay.example.org.\n"
        "\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n"
        "\n"
        f"<{failed}>: host mx.example.org[192.0.2.25] said: 550 5.1.1\n"
        f"    <{failed}>: Recipient address rejected: User unknown (in reply to RCPT TO\n"
        "    command)\n"
        "\n"
        "--4F2A1C0.1741341900/relay.example.org\n"
        "Content-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; relay.example.org\n"
        "X-Postfix-Queue-ID: 4F2A1C0\n"
        f"X-Postfix-Sender: rfc822; {received.mail_from}\n"
        "Arrival-Date: Fri,  7 Mar 2025 10:04:58 +0000 (UTC)\n"
        "\n"
        f"Final-Recipient: rfc822; {failed}\n"
        f"Original-Recipient: rfc822;{failed}\n"
        "Action: failed\n"
        "Status: 5.1.1\n"
        "Remote-MTA: dns; mx.example.org\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: Recipient address rejected: User\n"
        "    unknown\n"
        "\n"
        "--4F2A1C0.1741341900/relay.example.org\n"
        f"Content-Description: {description}\n"
        f"Content-Type: {kind}\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        f"{body}\n"
        "--4F2A1C0.1741341900/relay.example.org--\n"
    )
    return text.replace("\n", "\r\n").encode()


def make_maildir(path: Path) -> mailbox.Maildir:
    return mailbox.Maildir(path, create=True)


def deliver(box: mailbox.Maildir, *messages: bytes) -> None:
    """Deliver as the MTA does: each message a new file in new/."""
    for data in messages:
        box.add(data)
