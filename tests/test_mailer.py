"""The message on the wire (wire.py, and the mailer's own DATA) exactly as
aiosmtplib's `data()` would send it, and refusals after the message classified
as before."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import aiosmtplib
import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import given, settings
from hypothesis import strategies as st
from smtp_server import SmtpServer

from newsletter.config import SmtpSettings
from newsletter.sending.smtp import PERMANENT, SENT, TEMPORARY, Mailer, Outbound, Outcome
from newsletter.sending.smtp_wire import END, stuffed, wire_form

# What matters to line ends and dot-stuffing, and some ordinary bytes.
RAW = st.binary(max_size=40) | st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"..", b"a", b" ", b"\r\n.\r\n"]), max_size=30
).map(b"".join)

AWKWARD = [
    b"Subject: dots\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nend",
    b".first line\nbare LF\rbare CR\r\n\r\n.",
    b"no line end at all",
    b"",
]


def library_form(message: bytes) -> bytes:
    """What aiosmtplib's `data()` writes after DATA (its own helpers)."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


@settings(max_examples=500, deadline=None)
@given(message=RAW)
def test_wire_form_is_what_aiosmtplib_would_send(message):
    assert wire_form(message) == library_form(message)


# Pieces as MailTemplate has them: CRLF line ends, each ending at a line end.
PIECES = st.lists(
    st.lists(st.sampled_from([b".", b"..", b"a", b" ", b"=", b"\r\n"]), max_size=12).map(
        lambda parts: b"".join(parts) + b"\r\n"
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=500, deadline=None)
@given(pieces=PIECES)
def test_pieces_stuffed_apart_join_into_the_whole_message_stuffed(pieces):
    assert b"".join(map(stuffed, pieces)) + END == wire_form(b"".join(pieces))


def test_bytes_not_in_wire_form_are_refused_before_any_server_waits_for_the_rest():
    with pytest.raises(ValueError, match="wire form"):
        Outbound("a@example.org", b"Subject: x\r\n\r\nno end line\r\n")
    assert Outbound("a@example.org", wire_form(b"Subject: x\r\n\r\nhi")).wire.endswith(END)


def send(
    server: SmtpServer, items: list[Outbound], password: str | None = None, **smtp
) -> list[Outcome]:
    settings = SmtpSettings(
        host="127.0.0.1", port=server.port, security="none", retry_delay_seconds=0.01
    )
    mailer = Mailer(replace(settings, **smtp), "papers@example.org", password)
    outcomes: list[Outcome] = []
    asyncio.run(mailer.send_all(iter(items), outcomes.append, threading.Event()))
    return outcomes


async def send_with_library(port: int, messages: list[bytes]) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
        for data in messages:
            await client.sendmail("papers@example.org", ["ref@example.org"], data)


def test_the_server_receives_the_same_bytes_as_from_aiosmtplibs_data(smtp_server):
    asyncio.run(send_with_library(smtp_server.port, AWKWARD))
    items = [Outbound(f"r{i}@example.org", wire_form(m)) for i, m in enumerate(AWKWARD)]
    outcomes = send(smtp_server, items, retries=0)  # each accepted at the first try
    assert [o.status for o in outcomes] == [SENT] * len(AWKWARD)
    reference = [m.data for m in smtp_server.to("ref@example.org")]
    ours = [smtp_server.to(f"r{i}@example.org")[0].data for i in range(len(AWKWARD))]
    assert ours == reference
    assert ours[0].startswith(b"Subject: dots\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nend")


@pytest.mark.parametrize(
    ("reply", "status"),
    [("552 5.3.4 Message too big", PERMANENT), ("451 4.3.0 Try again later", TEMPORARY)],
)
def test_a_refusal_after_the_message_is_classified_and_the_connection_reused(
    smtp_server, reply, status
):
    smtp_server.data_reply = reply
    before = smtp_server.connections
    outcomes = send(
        smtp_server,
        [Outbound("a@example.org", wire_form(b"Subject: x\r\n\r\nhi\r\n"))] * 2,
        max_connections=1,
        retries=2,
    )
    assert [(o.status, o.detail) for o in outcomes] == [(status, reply)] * 2
    assert smtp_server.connections == before + 1  # a refusal is not a lost connection: RSET, go on
    smtp_server.data_reply = ""
    assert [o.status for o in send(smtp_server, [Outbound("b@example.org", wire_form(b""))])] == [
        SENT
    ]


def test_login_comes_before_our_own_mail_rcpt_data():
    """Without TLS, aiosmtplib's connect sends no EHLO: ours comes before AUTH, or
    before the first MAIL (the test above) when there is no login."""
    server = SmtpServer(login=(b"papers", b"s3cret"))
    try:
        items = [Outbound("a@example.org", wire_form(b"Subject: x\r\n\r\nhi\r\n"))] * 2
        sent = send(server, items, "s3cret", username="papers", retries=0)
        assert [o.status for o in sent] == [SENT] * 2
        assert [m.to for m in server.messages] == ["a@example.org"] * 2
    finally:
        server.stop()
