"""TLS for the SMTP and IMAP clients: which certificates are trusted, and a failed
check told as one line.

Trusted: the system's store *and* `ca_file` ([smtp] or [inbox]) when set. In
addition rather than instead, so that pointing the SMTP client at an internal
relay's private CA cannot stop it trusting anything else, and a bundle holding
only that CA is enough. The file is checked when the settings are read
(`ca_file_problem`), so a wrong path costs one line at start, not a cycle.

A certificate the client cannot verify is the admin's to fix, never a
subscriber's temporary failure: `certificate_problem` finds it behind the
errors aiosmtplib and imaplib wrap it in, and `certificate_line` says which
server, why, and what to set.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import NewsletterError

# OpenSSL's verify codes (X509_V_ERR_*) that a private or self-signed CA causes:
# a CA in ca_file would make them pass.
_UNKNOWN_ISSUER = {2, 18, 19, 20, 21}  # no issuer cert, self-signed (leaf, in chain), ...
_NAME_MISMATCH = {62, 64}  # hostname, IP address


class TlsSetupError(NewsletterError):
    """A ca_file that cannot be used; str() names the file and the key."""


def ca_file_problem(path: Path) -> str:
    """Why `path` cannot serve as a bundle of trusted CAs (PEM), or "" when it can."""
    try:
        with open(path, "rb") as file:
            data = file.read(1 << 24)
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "a folder, not a file of PEM certificates"
    except OSError as err:
        return f"cannot be read: {err.strerror}"
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    try:
        ssl.create_default_context(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as err:
        return f"not a usable PEM bundle: {getattr(err, 'reason', None) or err}"
    return ""


def client_context(ca_file: Path | None, section: str) -> ssl.SSLContext:
    """A context that verifies the server's certificate and name, trusting the system's
    CAs and those in `ca_file`. Raises TlsSetupError naming [section] ca_file."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as err:
            why = ca_file_problem(ca_file) or str(err)
            raise TlsSetupError(f"[{section}] ca_file {ca_file}: {why}") from None
    return context


def certificate_problem(err: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The failed certificate check behind `err` (its cause, or the cause's), if any."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, ssl.SSLCertVerificationError):
            return err
        err = err.__cause__ or err.__context__
        seen += 1
    return None


def certificate_line(
    where: str,
    err: ssl.SSLCertVerificationError,
    section: str,
    host_key: str,
    ca_file: Path | None,
) -> str:
    """One line for a failed certificate check: the server, OpenSSL's reason, what to set.
    `where` names the server ("host:port", with what it is); `host_key` is the key of
    [section] that names the host."""
    reason = (err.verify_message or err.reason or str(err)).rstrip(".")
    line = f"{where}: certificate verify failed: {reason}"
    if err.verify_code in _UNKNOWN_ISSUER:
        if ca_file is None:
            return f"{line}; set [{section}] ca_file to trust a private CA"
        return f"{line}; [{section}] ca_file {ca_file} does not hold the CA that signed it"
    if err.verify_code in _NAME_MISMATCH:
        return f"{line}; set [{section}] {host_key} to a name the certificate holds"
    return line
