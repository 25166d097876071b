"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, recording what it accepts.

Tests read `messages` (parsed with the email package, each with the EHLO/HELO
name its session gave) and how many `connections` were opened, and can make it
require AUTH, require STARTTLS or speak TLS at once with a certificate (`tls`: a
server context, from a throwaway CA in tests/certs.py), refuse recipients (550/451) or messages
(after DATA), close the connection in DATA, answer slowly, greet with 421, or
stop and start again on the same port (the server "down for a cycle").
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    helo: str = ""  # the name the client gave in EHLO (or HELO)

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]

    @property
    def to(self) -> str:
        return self.rcpt_tos[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(
        self, smtp: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        reply = self.server.refusals.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        server = self.server
        if server.delay:
            await asyncio.sleep(server.delay)
            if smtp.transport is None or smtp.transport.is_closing():
                return "421 too late"  # the client gave up: it never saw a 250, so not accepted
        with server.lock:
            if server.data_reply:
                return server.data_reply
            if server.drop_in_data > 0:
                server.drop_in_data -= 1
                smtp.transport.close()
                return "421 closing"
            server.messages.append(
                Received(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.content),
                    session.host_name or "",
                )
            )
            server.accepted.set()
        return "250 Message accepted for delivery"


class _SMTP(SMTP):
    async def _handle_client(self) -> None:
        with self.event_handler.server.lock:
            self.event_handler.server.connections += 1
        if self.event_handler.server.greet_421:
            self.transport.write(b"421 4.3.2 Service not available, closing channel\r\n")
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    def __init__(
        self,
        login: tuple[bytes, bytes] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.login = login  # (user, password) that AUTH must give, or None: no AUTH
        self.tls = tls  # a server context: STARTTLS offered and required before MAIL ...
        self.implicit_tls = implicit_tls  # ... or TLS from the first byte (port 465's way)
        self.port = free_port()
        self.messages: list[Received] = []
        self.refusals: dict[str, str] = {}
        self.drop_in_data = 0
        self.data_reply = ""  # answer every message with this instead of accepting it
        self.delay = 0.0
        self.greet_421 = False
        self.connections = 0  # SMTP sessions opened so far
        self.lock = threading.Lock()
        self.accepted = threading.Event()
        self._controller: Controller | None = None
        self.start()

    def start(self) -> None:
        auth: dict[str, Any] = {}
        if self.login is not None:  # AUTH required, over plain loopback (no certificate here)
            auth = {"auth_required": True, "auth_require_tls": False}
            auth["authenticator"] = self._authenticate
        if self.tls is not None and self.implicit_tls:
            auth["ssl_context"] = self.tls
        elif self.tls is not None:
            auth |= {"tls_context": self.tls, "require_starttls": True}
        self._controller = _Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **auth)
        self._controller.start()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == self.login
        return AuthResult(success=ok)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, address: str, reply: str = "550 5.1.1 No such user") -> None:
        self.refusals[address.lower()] = reply

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
