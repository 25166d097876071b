"""Where incoming mail is read from: a Maildir the local MTA delivers to, or an IMAP folder.

Both follow one protocol, so that a message is acted on at most once:
`waiting()` lists the messages not yet handled, `read()` returns one (at most
MAX_MESSAGE_BYTES of it), `done()` marks them handled, and `set_aside()` marks
those the inbox failed on too often, flagged for a person to look at. The
caller calls them only after the effects of those messages are saved, so a
crash in between means the message is seen again (and recognised by the store
as already handled), never lost.

- Maildir: waiting = the files in new/; done = renamed into cur/ with the
  Seen flag (":2,S"), which is what a mail client does when it reads one;
  set aside = the same with the Flagged flag too (":2,FS").
  Done on the directory layout itself rather than with mailbox.Maildir,
  which on Python 3.11 lists new/ and cur/ together, reads whole messages,
  and changes a message's folder or flags by writing a copy of it.
- IMAP: waiting = messages without our keyword flag (or, on a server that
  cannot store keywords, the unseen ones); done = \\Seen plus that keyword;
  set aside = also \\Flagged.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from ..config import InboxSettings
from ..credentials import CredentialError, read_password
from ..errors import NewsletterError
from ..files import fsync_dir
from ..tls import TlsSetupError, certificate_line, certificate_problem, client_context

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20  # commands and bounce reports sit at the start of a message
PROCESSED_FLAG = "DailyPapersProcessed"


class MailSourceError(NewsletterError):
    """The mailbox cannot be read now; str() is one line naming it."""


@dataclass(frozen=True)
class MailItem:
    ref: str  # the source's own handle: a Maildir file name, an IMAP UID
    data: bytes  # the message, cut at MAX_MESSAGE_BYTES
    truncated: bool


class MailSource(Protocol):
    def __enter__(self) -> MailSource: ...
    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def waiting(self) -> list[str]: ...
    def read(self, ref: str) -> MailItem | None: ...
    def done(self, refs: Sequence[str]) -> None: ...
    def set_aside(self, refs: Sequence[str]) -> None: ...


class MaildirSource:
    """A Maildir (new/, cur/, tmp/) written by the local MTA."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> MaildirSource:
        if not (self.path / "new").is_dir() or not (self.path / "cur").is_dir():
            raise MailSourceError(
                f"[inbox] maildir {self.path}: not a Maildir (needs new/ and cur/)"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def waiting(self) -> list[str]:
        try:
            names = os.listdir(self.path / "new")
        except OSError as err:
            raise MailSourceError(f"[inbox] maildir {self.path}: {err.strerror}") from None
        # Delivery names start with the time, so sorting is (about) arrival order.
        return sorted(n for n in names if not n.startswith("."))

    def read(self, ref: str) -> MailItem | None:
        try:
            with open(self.path / "new" / ref, "rb") as file:
                data = file.read(MAX_MESSAGE_BYTES + 1)
        except FileNotFoundError:  # taken by someone else in the meantime
            return None
        except OSError as err:
            raise MailSourceError(f"[inbox] maildir {self.path}: {ref}: {err.strerror}") from None
        return MailItem(ref, data[:MAX_MESSAGE_BYTES], len(data) > MAX_MESSAGE_BYTES)

    def done(self, refs: Sequence[str]) -> None:
        self._mark(refs, "S")

    def set_aside(self, refs: Sequence[str]) -> None:
        self._mark(refs, "FS")

    def _mark(self, refs: Sequence[str], add: str) -> None:
        for ref in refs:
            base, _, flags = ref.partition(":2,")
            target = f"{base}:2,{''.join(sorted(set(flags) | set(add)))}"
            try:
                os.rename(self.path / "new" / ref, self.path / "cur" / target)
            except FileNotFoundError:
                continue
            except OSError as err:
                raise MailSourceError(
                    f"[inbox] maildir {self.path}: {ref}: {err.strerror}"
                ) from None
        if refs:
            fsync_dir(self.path / "new")
            fsync_dir(self.path / "cur")


_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


class ImapSource:
    """One IMAP folder, over imaplib; one connection per poll."""

    def __init__(self, settings: InboxSettings):
        self.settings = settings
        self.where = f"[inbox] imap_host {settings.imap_host}:{settings.imap_port}"
        self.conn: imaplib.IMAP4 | None = None
        self.keywords = False  # whether the server keeps our PROCESSED_FLAG

    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        try:
            context = client_context(s.ca_file, "inbox") if s.security != "none" else None
        except TlsSetupError as err:
            raise MailSourceError(str(err)) from None
        if s.security == "tls":
            return imaplib.IMAP4_SSL(
                s.imap_host, s.imap_port, ssl_context=context, timeout=s.timeout_seconds
            )
        conn = imaplib.IMAP4(s.imap_host, s.imap_port, timeout=s.timeout_seconds)
        if s.security == "starttls":
            conn.starttls(ssl_context=context)
        return conn

    def __enter__(self) -> ImapSource:
        s = self.settings
        try:
            password = read_password("inbox", s.password_env, s.password_file)
        except CredentialError as err:
            raise MailSourceError(str(err)) from None
        try:
            self.conn = self._connect()
            self.conn.login(s.username, password)
            status, detail = self.conn.select(f'"{s.folder}"')
            if status != "OK":
                raise MailSourceError(
                    f"{self.where}: cannot open folder {s.folder!r}: {_text(detail)}"
                )
            flags = b" ".join(
                f for f in self.conn.response("PERMANENTFLAGS")[1] if isinstance(f, bytes)
            )
            self.keywords = b"\\*" in flags or PROCESSED_FLAG.encode() in flags
        except MailSourceError:
            self.__exit__(None, None, None)
            raise
        except UnicodeEncodeError:  # imaplib sends LOGIN arguments as ASCII
            self.__exit__(None, None, None)
            raise MailSourceError(
                f"{self.where}: the username and password must be ASCII for IMAP LOGIN"
            ) from None
        except (imaplib.IMAP4.error, OSError, EOFError) as err:
            self.__exit__(None, None, None)
            failed_check = certificate_problem(err)
            if failed_check is not None:  # the admin's to fix: said so, with what to set
                line = certificate_line(self.where, failed_check, "inbox", "imap_host", s.ca_file)
                raise MailSourceError(line) from None
            raise MailSourceError(f"{self.where}: {_describe(err)}") from None
        if not self.keywords:
            log.info(
                "%s: the server cannot store the %s flag; unseen messages are the new ones",
                self.where,
                PROCESSED_FLAG,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            with contextlib.suppress(imaplib.IMAP4.error, OSError, EOFError):
                self.conn.logout()
            self.conn = None

    def _command(self, *args: str) -> list:
        assert self.conn is not None
        try:
            status, data = self.conn.uid(*args)
        except (imaplib.IMAP4.error, OSError, EOFError) as err:
            raise MailSourceError(f"{self.where}: {_describe(err)}") from None
        if status != "OK":
            raise MailSourceError(f"{self.where}: UID {args[0]} refused: {_text(data)}")
        return data

    def waiting(self) -> list[str]:
        wanted = f"UNKEYWORD {PROCESSED_FLAG}" if self.keywords else "UNSEEN"
        data = self._command("SEARCH", None, f"UNDELETED {wanted}")  # type: ignore[arg-type]
        uids = b" ".join(d for d in data if isinstance(d, bytes)).split()
        return [u.decode() for u in sorted(uids, key=int)]

    def read(self, ref: str) -> MailItem | None:
        data = self._command("FETCH", ref, f"(UID RFC822.SIZE BODY.PEEK[]<0.{MAX_MESSAGE_BYTES}>)")
        for item in data:
            if isinstance(item, tuple) and _UID.search(item[0]):
                size = _SIZE.search(item[0])
                body = bytes(item[1])
                truncated = bool(size) and int(size.group(1)) > len(body)  # type: ignore[union-attr]
                return MailItem(ref, body, truncated)
        return None  # expunged in the meantime

    def done(self, refs: Sequence[str]) -> None:
        self._mark(refs, "\\Seen")

    def set_aside(self, refs: Sequence[str]) -> None:
        self._mark(refs, "\\Seen \\Flagged")

    def _mark(self, refs: Sequence[str], flags: str) -> None:
        if not refs:
            return
        if self.keywords:
            flags += f" {PROCESSED_FLAG}"
        self._command("STORE", ",".join(refs), "+FLAGS.SILENT", f"({flags})")


def _text(data: object) -> str:
    if isinstance(data, list | tuple):
        return " ".join(_text(d) for d in data if d is not None)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return _text(err.args[0]) if err.args else type(err).__name__


def open_source(settings: InboxSettings) -> MailSource:
    if settings.maildir is not None:
        return MaildirSource(settings.maildir)
    return ImapSource(settings)
