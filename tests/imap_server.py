"""A real IMAP server for the tests: pymap (pure Python) in a subprocess on 127.0.0.1.

Two backends, for the two kinds of server the inbox must handle:
- "maildir": stores keyword flags (like Dovecot). pymap keeps only the keywords
  listed in the folder's dovecot-keywords file (Dovecot's own format), so the
  test lists ours there; Dovecot would add it on first use.
- "dict": in memory, and cannot store keywords at all (PERMANENTFLAGS has no
  \\*), so the inbox must fall back to \\Seen alone.

With `tls` (a certificate and key file, from a throwaway CA in tests/certs.py)
it offers STARTTLS; pymap has no implicit TLS. Its LOGIN works without TLS
from 127.0.0.1, which the tests' own client uses.

Tests deliver mail with IMAP APPEND and read flags back with a second client.
"""

from __future__ import annotations

import imaplib
import mailbox
import re
import subprocess
import sys
import time
from pathlib import Path

from pysasl.hashing import BuiltinHash
from smtp_server import free_port

from newsletter.inbox.sources import PROCESSED_FLAG

USER, PASSWORD = "papers", "imap-secret"


class ImapServer:
    def __init__(self, root: Path, backend: str = "maildir", tls: Path | None = None):
        self.port = free_port()
        self.log = root / "pymap.log"
        args = ["--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--cert", str(tls), "--key", str(tls)] if tls else ["--no-tls"]
        if backend == "maildir":
            base = root / "imap"
            (base / "mail").mkdir(parents=True)
            (base / "pymap-etc-passwd").write_text(f"{USER}:x::::mail/inbox:\n")
            hashed = BuiltinHash(rounds=1000).hash(PASSWORD)  # fast logins
            (base / "pymap-etc-shadow").write_text(f"{USER}:{hashed}:::::::\n")
            mailbox.Maildir(base / "mail" / "inbox", create=True)
            (base / "mail" / "inbox" / "dovecot-keywords").write_text(f"0 {PROCESSED_FLAG}\n")
            args += ["maildir", str(base)]
        else:
            args += ["dict", "--demo-user", USER, "--demo-password", PASSWORD]
        code = "import sys; from pymap.main import main; sys.argv[0] = 'pymap'; main()"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, *args], stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pymap exited: {self.log.read_text()}")
            try:
                self.client().logout()
                return
            except (OSError, imaplib.IMAP4.error):
                time.sleep(0.05)
        raise RuntimeError("pymap did not start")

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=5)
        conn.login(USER, PASSWORD)
        return conn

    def append(self, *messages: bytes) -> None:
        conn = self.client()
        try:
            for data in messages:
                status, detail = conn.append("INBOX", None, None, data)
                assert status == "OK", detail
        finally:
            conn.logout()

    def flags(self) -> list[set[str]]:
        """Each message's flags, in UID order."""
        conn = self.client()
        try:
            conn.select("INBOX")
            _status, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        finally:
            conn.logout()
        found = [re.search(rb"FLAGS \(([^)]*)\)", d) for d in data if isinstance(d, bytes)]
        return [set(m.group(1).decode().split()) - {"\\Recent"} for m in found if m]

    def clear_flags(self) -> None:
        """What a person does in a mail client: mark everything unread again."""
        conn = self.client()
        try:
            conn.select("INBOX")
            conn.uid("STORE", "1:*", "-FLAGS.SILENT", f"(\\Seen {PROCESSED_FLAG})")
        finally:
            conn.logout()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
