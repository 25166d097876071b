"""A throwaway certificate authority for the tests' TLS servers (trustme).

The CA exists only in the test's folder: trusting it means naming its PEM file
in [smtp] or [inbox] ca_file, exactly as an admin trusts a private CA. Servers
get a certificate for 127.0.0.1 and localhost, signed by it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class PrivateCA:
    ca_file: Path  # the CA's certificate (PEM): what ca_file names
    server_pem: Path  # the server's key and certificate chain in one PEM (pymap --cert/--key)
    server_context: ssl.SSLContext  # for a server in this process (aiosmtpd)


def private_ca(folder: Path, *names: str) -> PrivateCA:
    """A new CA, and a server certificate for `names` (default 127.0.0.1 and localhost)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Daily Papers test CA")
    cert = ca.issue_cert(*(names or ("127.0.0.1", "localhost")))
    ca_file, server_pem = folder / "ca.pem", folder / "server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return PrivateCA(ca_file, server_pem, context)
