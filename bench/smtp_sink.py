"""A loopback SMTP server for the benchmark: aiosmtpd, accepting and discarding.

It runs in its own process, so the server's work does not share the
benchmark's interpreter lock. aiosmtpd reads DATA one line at a time (about
3 ms for a 100 kB message, slower than our whole client side), which would make
the server the bottleneck and hide what the benchmark is about; this sink
speaks the same SMTP but takes DATA in large reads up to the terminating
<CRLF>.<CRLF>, as a production MTA written in C effectively does. It prints its
port on the first line, serves until its stdin closes, then prints how many
messages and bytes it accepted.

With `--lean`, MAIL and RCPT also skip aiosmtpd's address parsing (the email
package's header parser: about 0.4 ms a message, which makes this server, not
our client, the limit of the benchmark's ceiling) and take the address as sent.
"""

from __future__ import annotations

import asyncio
import sys

from aiosmtpd.smtp import SMTP, syntax

END = b"\r\n.\r\n"


class DiscardingSMTP(SMTP):
    messages = 0
    bytes = 0

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if not self.envelope or not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = bytearray()
        while not data.endswith(END):
            chunk = await self._reader.read(1 << 18)
            if not chunk:  # the client went away mid-message
                return
            data += chunk
        DiscardingSMTP.messages += 1
        DiscardingSMTP.bytes += len(data) - len(END) + 2
        self._set_post_data_state()
        await self.push("250 OK: discarded")


class LeanSMTP(DiscardingSMTP):
    @syntax("MAIL FROM:<address>")
    async def smtp_MAIL(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if not arg.upper().startswith("FROM:"):
            await self.push("501 Syntax: MAIL FROM:<address>")
            return
        self.envelope.mail_from = arg[5:].split(" ", 1)[0]
        await self.push("250 OK")

    @syntax("RCPT TO:<address>")
    async def smtp_RCPT(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if self.envelope.mail_from is None or not arg.upper().startswith("TO:"):
            await self.push("503 Error: need MAIL command, then RCPT TO:<address>")
            return
        self.envelope.rcpt_tos.append(arg[3:])
        await self.push("250 OK")


async def serve(lean: bool) -> None:
    loop = asyncio.get_running_loop()
    kind = LeanSMTP if lean else DiscardingSMTP
    server = await loop.create_server(
        lambda: kind(None, hostname="bench-sink.localhost"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes our stdin
    server.close()
    print(f"{DiscardingSMTP.messages} {DiscardingSMTP.bytes}", flush=True)


if __name__ == "__main__":
    asyncio.run(serve(lean="--lean" in sys.argv[1:]))
