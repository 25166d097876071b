"""Sending messages over SMTP with aiosmtplib, and saying what became of each.

`max_connections` workers share one queue; each keeps its connection open for
many messages. Every outcome is reported through a callback the moment it is
known, so the caller can record a delivery right after the server accepted it.

Failures are classified per message:
- temporary (4xx, refused/dropped connection, timeout): retried within the run
  with backoff, then reported "temporary" (the caller keeps it pending);
- permanent (5xx for that recipient or that message): reported "permanent".
When the server cannot be used at all (not reached after the retries, or at once
for a certificate that fails the check: the admin's to fix, which no retry
mends), that is a setup problem, `server_down`: the message being tried and the
rest of the queue are reported "held", not tried, and no subscriber's failure.

The client greets with `ehlo_name` ([smtp] helo_name, else the machine's fully
qualified name, else the domain of [digest] from): relays with
reject_non_fqdn_helo_hostname refuse the "localhost" a bare host gives.

Messages come in SMTP's wire form (smtp_wire.py) and go out as they are: MAIL, RCPT
and DATA use aiosmtplib's lower-level calls, not `sendmail` (`_transaction`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiosmtplib

from ..addresses import domain_problem
from ..config import SmtpSettings
from ..crashpoints import crashpoint
from ..credentials import CredentialError
from ..credentials import read_password as read_password_from
from ..errors import NewsletterError
from ..tls import TlsSetupError, certificate_line, certificate_problem, client_context
from .smtp_wire import END

log = logging.getLogger(__name__)

SENT, TEMPORARY, PERMANENT = "sent", "temporary", "permanent"
HELD = "held"  # not tried: the server cannot be used (Mailer.server_down); still due


class MailerError(NewsletterError):
    """A setup problem (no password, a ca_file gone); str() says which setting to fix."""


@dataclass(frozen=True)
class Outbound:
    recipient: str  # a bare address, validated (addresses.normalize_address)
    wire: bytes  # the whole message as DATA carries it, with its end line: see smtp_wire.py
    key: str = ""  # whatever the caller needs to match the outcome (subscriber key)

    def __post_init__(self) -> None:
        if not self.wire.endswith(b"\r\n" + END):  # or the server waits for the rest
            raise ValueError("Outbound.wire must be in wire form (smtp_wire.wire_form)")


@dataclass(frozen=True)
class Outcome:
    item: Outbound
    status: str  # SENT | TEMPORARY | PERMANENT | HELD
    detail: str = ""


# Names a machine has before anyone gave it one: no relay can check them.
_UNNAMED = {"localhost", "localhost4", "localhost6", "ip6-localhost", "ip6-loopback"}
_LOCAL_ONLY = {"localdomain", "localhost", "local"}


def default_helo_name(fqdn: str, from_domain: str) -> str:
    """The machine's fully qualified name when it has a real one (a dot, a valid host
    name, not localhost or *.localdomain), else the domain of the From address."""
    name = fqdn.strip().rstrip(".").lower()
    labels = name.split(".")
    if (
        len(labels) > 1
        and not domain_problem(name)
        and labels[0] not in _UNNAMED
        and labels[-1] not in _LOCAL_ONLY
    ):
        return name
    return from_domain


@functools.cache
def machine_fqdn() -> str:
    """socket.getfqdn(), asked once: it may wait on a resolver."""
    return socket.getfqdn()


def ehlo_name(settings: SmtpSettings, from_domain: str) -> str:
    """What the client says in EHLO/HELO: [smtp] helo_name, or `default_helo_name`."""
    return settings.helo_name or default_helo_name(machine_fqdn(), from_domain)


def read_password(settings: SmtpSettings) -> str | None:
    """The SMTP password (see credentials.read_password), or None without a username."""
    if not settings.username:
        return None
    try:
        return read_password_from("smtp", settings.password_env, settings.password_file)
    except CredentialError as err:
        raise MailerError(str(err)) from None


def _describe(err: BaseException) -> str:
    if isinstance(err, aiosmtplib.SMTPResponseException):
        return f"{err.code} {err.message}"
    return str(err) or type(err).__name__


def _classify(err: BaseException) -> tuple[str, str, bool]:
    """(status, detail, connection_lost) for an exception from sending one message."""
    if isinstance(err, aiosmtplib.SMTPSenderRefused):
        # The server refuses *our* sender: a setup problem, never the subscriber's fault.
        return TEMPORARY, f"sender refused: {err.code} {err.message}", False
    if isinstance(err, aiosmtplib.SMTPResponseException):
        status = PERMANENT if err.code >= 500 else TEMPORARY
        return status, _describe(err), err.code == 421
    if isinstance(err, aiosmtplib.SMTPException | OSError | asyncio.TimeoutError):
        return TEMPORARY, _describe(err), True
    raise err


class Mailer:
    """A pool of SMTP connections fed from one queue."""

    def __init__(
        self,
        settings: SmtpSettings,
        sender: str,
        password: str | None = None,
        *,
        helo_name: str = "",
    ):
        """`helo_name`: what to greet with; "" for `ehlo_name` with the sender's domain."""
        self.settings = settings
        self.sender = sender
        self._mail_from = f"FROM:<{sender}>".encode()
        self.password = password
        self.helo_name = helo_name or ehlo_name(settings, sender.rpartition("@")[2])
        self.where = f"{settings.host}:{settings.port}"
        self.server_down: str | None = None
        self.tls: ssl.SSLContext | None = None
        if settings.security != "none":
            try:
                self.tls = client_context(settings.ca_file, "smtp")
            except TlsSetupError as err:
                raise MailerError(str(err)) from None

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout_seconds,
            use_tls=s.security == "tls",
            start_tls=True if s.security == "starttls" else False if s.security == "none" else None,
            tls_context=self.tls,
            local_hostname=self.helo_name,
        )
        await client.connect()  # EHLO already if it started TLS
        if client.is_ehlo_or_helo_needed:  # our MAIL goes through execute_command
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        if s.username:
            await client.login(s.username, self.password or "")
        return client

    async def _worker(
        self,
        items: Iterator[Outbound],
        report: Callable[[Outcome], None],
        stop: threading.Event,
    ) -> None:
        client: aiosmtplib.SMTP | None = None
        try:
            while not stop.is_set():
                item = next(items, None)
                if item is None:
                    break
                if self.server_down:
                    report(Outcome(item, HELD, self.server_down))
                    continue
                client = await self._deliver(client, item, report, stop)
        finally:
            if client is not None and client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), timeout=2)
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    client.close()

    async def _deliver(
        self,
        client: aiosmtplib.SMTP | None,
        item: Outbound,
        report: Callable[[Outcome], None],
        stop: threading.Event,
    ) -> aiosmtplib.SMTP | None:
        """Try one message until it is accepted, refused, or out of retries."""
        attempt = 0
        while True:
            connecting = client is None
            try:
                if client is None:
                    client = await self._connect()
                    connecting = False
                await self._transaction(client, item)
            except Exception as err:
                failed_check = certificate_problem(err) if connecting else None
                if failed_check is not None:  # no retry mends it: the admin must act
                    if self.server_down is None:  # said once, whichever worker met it first
                        where = f"cannot use the SMTP server {self.where}"
                        self.server_down = certificate_line(
                            where, failed_check, "smtp", "host", self.settings.ca_file
                        )
                        log.error("smtp: %s; the rest of this run stays pending", self.server_down)
                    report(Outcome(item, HELD, self.server_down))
                    return None
                if connecting:  # greeting, STARTTLS, login: never the recipient's fault
                    status, detail, lost = TEMPORARY, _describe(err), True
                else:
                    status, detail, lost = _classify(err)
                if lost:
                    if client is not None:
                        client.close()
                    client = None
            else:
                crashpoint("before-record")  # accepted by the server, not yet recorded
                report(Outcome(item, SENT))
                crashpoint("after-send")
                return client
            if status == PERMANENT:
                report(Outcome(item, PERMANENT, detail))
                return client
            attempt += 1
            if attempt > self.settings.retries or stop.is_set():
                if connecting:
                    self.server_down = f"cannot use the SMTP server {self.where}: {detail}"
                    log.warning("smtp: %s; the rest of this run stays pending", self.server_down)
                    report(Outcome(item, HELD, self.server_down))
                    return client
                report(Outcome(item, TEMPORARY, detail))
                return client
            delay = self.settings.retry_delay_seconds * 2 ** (attempt - 1)
            log.info("smtp: %s for %s; retry %d in %.1f s", detail, item.recipient, attempt, delay)
            await asyncio.sleep(delay)

    async def _transaction(self, client: aiosmtplib.SMTP, item: Outbound) -> None:
        """MAIL, RCPT, DATA, and RSET after a refusal: aiosmtplib's `sendmail` for one
        recipient, minus its work on every message that ours need not have: parsing
        both addresses with the email package (they are bare addresses, validated
        when they were read: addresses.py), then passes over every byte for SIZE,
        line ends and dot-stuffing (`item.wire` has had those once per digest:
        smtp_wire.py). Refusals raise the aiosmtplib errors `_classify` reads."""
        # SIZE is the message without the dots added to lines that start with one
        # (RFC 1870); counting them too makes it an upper bound by a few bytes.
        length = len(item.wire) - len(END)
        size = [f"SIZE={length}".encode()] if client.supports_extension("size") else []
        try:
            reply = await client.execute_command(b"MAIL", self._mail_from, *size)
            if reply.code != aiosmtplib.SMTPStatus.completed:
                raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, self.sender)
            reply = await client.execute_command(b"RCPT", f"TO:<{item.recipient}>".encode())
            if reply.code not in (
                aiosmtplib.SMTPStatus.completed,
                aiosmtplib.SMTPStatus.will_forward,
            ):
                raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, item.recipient)
            await self._data(client, item.wire)
        except aiosmtplib.SMTPResponseException:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.rset()
            raise

    async def _data(self, client: aiosmtplib.SMTP, wire: bytes) -> None:
        """DATA, then the message. `SMTP.data()` would normalise it again; instead it
        goes through the connection's protocol, which aiosmtplib exposes as
        `SMTP.protocol`: `write`, then one `read_response` for it (as its docstring
        asks), awaited before anything else can run on this connection, which only
        this worker uses."""
        response = await client.execute_command(b"DATA")
        if response.code != aiosmtplib.SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        protocol = client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("connection lost before the message")
        protocol.write(wire)
        response = await protocol.read_response(timeout=self.settings.timeout_seconds)
        if response.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(response.code, response.message)

    async def send_all(
        self,
        items: Iterator[Outbound],
        report: Callable[[Outcome], None],
        stop: threading.Event | None = None,
    ) -> None:
        """Send everything `items` yields (lazily: messages are built as workers take them)."""
        stop = stop or threading.Event()
        workers = [
            asyncio.create_task(self._worker(items, report, stop))
            for _ in range(self.settings.max_connections)
        ]
        await asyncio.gather(*workers)


def send_all(
    settings: SmtpSettings,
    sender: str,
    items: Iterator[Outbound],
    report: Callable[[Outcome], None],
    *,
    password: str | None = None,
    stop: threading.Event | None = None,
    helo_name: str = "",
) -> str | None:
    """Synchronous entry point: runs the pool in its own event loop. Returns why the
    server could not be used at all, when that left the rest of the run pending."""
    mailer = Mailer(settings, sender, password, helo_name=helo_name)
    asyncio.run(mailer.send_all(items, report, stop))
    return mailer.server_down
