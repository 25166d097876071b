"""Mail that real servers accept (issue 15): servers with a private CA's certificate, the
EHLO name, addresses at single-label domains, and a numeric Date zone. The servers are
real (aiosmtpd with STARTTLS, pymap with STARTTLS), their certificates signed by a CA
made for the test (tests/certs.py), trusted only through ca_file."""

from __future__ import annotations

import re
import socket
import tomllib

import pytest
from arxiv_server import entry
from certs import private_ca
from conftest import run_cli, subscribe
from imap_server import PASSWORD, USER, ImapServer
from mails import mail, reply_to
from smtp_server import SmtpServer

from newsletter.addresses import AddressError, normalize_address
from newsletter.config import ConfigError, load_settings
from newsletter.cycle import run_cycle
from newsletter.inbox.poll import poll_inbox
from newsletter.sending.smtp import default_helo_name
from newsletter.status import format_status, gather
from newsletter.store import Store

NUMERIC_DATE = re.compile(rb"^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r$", re.M)


@pytest.fixture
def ca(tmp_path):
    return private_ca(tmp_path / "ca")


@pytest.fixture
def tls_smtp(ca):
    server = SmtpServer(tls=ca.server_context)
    yield server
    server.stop()


def cycle(settings):
    with Store(settings.store.path) as store:
        return run_cycle(settings, store)


def starttls(server: SmtpServer, **more) -> dict:
    return {"port": server.port, "security": "starttls", **more}


# -- SMTP with a private CA --------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_private_ca_in_ca_file_is_trusted_with_starttls_and_tls(
    make_settings, arxiv_server, ca, security
):
    server = SmtpServer(tls=ca.server_context, implicit_tls=security == "tls")
    smtp = {"port": server.port, "security": security, "ca_file": str(ca.ca_file)}
    settings = make_settings(keywords=["MLLM"], smtp=smtp)
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    try:
        report = cycle(settings)
    finally:
        server.stop()
    assert report.ok and report.delivery.sent == 1, report.delivery.summary()
    (received,) = server.messages
    assert received.to == "ann@example.org"
    # The default EHLO name: the machine's real FQDN, or the domain of [digest] from.
    assert received.helo == default_helo_name(socket.getfqdn(), "example.org")
    assert received.helo != "localhost"
    assert NUMERIC_DATE.search(received.data), received.data[:400]


def test_without_ca_file_run_once_fails_at_once_with_one_line(
    make_settings, arxiv_server, tls_smtp
):
    settings = make_settings(
        keywords=["MLLM"], smtp=starttls(tls_smtp, retries=3, max_connections=1)
    )
    for name in ("ann", "ben"):
        subscribe(settings, f"{name}@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    before = tls_smtp.connections
    result = run_cli("--settings", str(settings.file), "run", "--once")
    assert result.returncode == 1, "a setup problem: run --once exits 1"
    line = next(x for x in result.stdout.splitlines() if x.startswith("mail:"))
    assert line == (
        "mail: sent 0, pending 2, bounced 0, bouncing 0, skipped 0; FAILED: cannot use the "
        f"SMTP server 127.0.0.1:{tls_smtp.port}: certificate verify failed: unable to get "
        "local issuer certificate; set [smtp] ca_file to trust a private CA"
    )
    assert "; mail FAILED" in result.stdout.splitlines()[-1]
    assert tls_smtp.messages == [] and tls_smtp.connections - before == 1, "no retry mends it"
    # No subscription counts a failure: the server is the admin's to fix, and says so.
    with Store(settings.store.path, lock=False) as store:
        assert all(d.failures == 0 for d in store.deliveries.all().values())
    assert "mail FAILED: cannot use the SMTP server" in format_status(gather(settings))


def test_a_certificate_for_another_name_says_so(make_settings, arxiv_server, tmp_path):
    other = private_ca(tmp_path / "other", "mail.example.net")
    server = SmtpServer(tls=other.server_context)
    try:
        settings = make_settings(
            keywords=["MLLM"], smtp=starttls(server, ca_file=str(other.ca_file))
        )
        subscribe(settings, "ann@example.org", "MLLM")
        arxiv_server.add(entry("2502.00001", "MLLM one"))
        report = cycle(settings)
    finally:
        server.stop()
    assert not report.ok and report.delivery.pending == 1
    assert report.delivery.error == (
        f"cannot use the SMTP server 127.0.0.1:{server.port}: certificate verify failed: "
        "IP address mismatch, certificate is not valid for '127.0.0.1'; set [smtp] host to "
        "a name the certificate holds"
    )


def test_the_ehlo_name_is_the_one_set(make_settings, arxiv_server, smtp_server):
    settings = make_settings(keywords=["MLLM"], smtp={"helo_name": "Mail.Example.NET"})
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    assert cycle(settings).delivery.sent == 1
    assert smtp_server.messages[0].helo == "mail.example.net"


@pytest.mark.parametrize(
    ("fqdn", "expected"),
    [
        ("mail.example.net", "mail.example.net"),
        ("Mail.Example.NET.", "mail.example.net"),
        ("vm", "example.org"),  # no domain: not fully qualified
        ("localhost", "example.org"),
        ("localhost.localdomain", "example.org"),
        ("vm.localdomain", "example.org"),
        ("box.local", "example.org"),  # mDNS, not a name a relay can check
        ("bad_name.example.net", "example.org"),
    ],
)
def test_default_ehlo_name(fqdn, expected):
    assert default_helo_name(fqdn, "example.org") == expected


# -- settings -----------------------------------------------------------------------------


def test_a_ca_file_that_cannot_be_used_is_one_line_exit_2(make_settings, tmp_path, ca):
    settings = make_settings(smtp={"security": "starttls", "ca_file": str(ca.ca_file)})
    text = settings.file.read_text()
    cases = {
        "missing.pem": "no such file",
        "key.pem": "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        "broken.pem": "not a usable PEM bundle",
        "folder": "a folder, not a file of PEM certificates",
    }
    (tmp_path / "key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    (tmp_path / "broken.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    )
    (tmp_path / "folder").mkdir()
    for name, why in cases.items():
        settings.file.write_text(text.replace(str(ca.ca_file), str(tmp_path / name)))
        with pytest.raises(ConfigError) as caught:
            load_settings(settings.file)
        assert str(caught.value).startswith(
            f"{settings.file}: [smtp] ca_file {tmp_path / name}: {why}"
        ), str(caught.value)
    result = run_cli("--settings", str(settings.file), "status")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"[smtp] ca_file {tmp_path / 'folder'}: a folder" in result.stderr

    settings.file.write_text(text.replace('security = "starttls"', 'security = "none"'))
    with pytest.raises(
        ConfigError, match=r'\[smtp\] ca_file must be left out when security = "none"'
    ):
        load_settings(settings.file)
    settings.file.write_text(text + '\n[inbox]\nmaildir = "mail"\nca_file = "ca.pem"\n')
    with pytest.raises(ConfigError, match=r"\[inbox\] ca_file must be left out when mail is read"):
        load_settings(settings.file)


def test_a_helo_name_that_is_no_host_name_is_refused(make_settings):
    with pytest.raises(ConfigError) as caught:
        make_settings(smtp={"helo_name": "mail_relay.example.org"})
    assert str(caught.value).endswith(
        "[smtp] helo_name must be a host name like mail.example.org (label 'mail_relay' may "
        'hold only letters, digits and hyphens), got "mail_relay.example.org"'
    )


# -- IMAP with a private CA, and a local address subscribing by email ---------------------


def test_imap_starttls_to_a_private_ca_and_ann_at_localhost_subscribes(
    make_settings, tmp_path, ca, smtp_server, monkeypatch
):
    server = ImapServer(tmp_path, "dict", tls=ca.server_pem)
    try:
        inbox = {
            "address": "papers@localhost",
            "imap_host": "127.0.0.1",
            "imap_port": server.port,
            "security": "starttls",
            "username": USER,
            "password_env": "TEST_IMAP_PASSWORD",
            "timeout_seconds": 5,
        }
        settings = make_settings(
            keywords=["MLLM"], digest={"from": "Daily Papers <papers@localhost>"}, inbox=inbox
        )
        server.append(mail("Ann <ann@localhost>", "subscribe MLLM", to="papers@localhost"))
        # Not trusted: one line naming the server, the reason and the key; exit 1.
        result = run_cli(
            "--settings", str(settings.file), "inbox", "--once",
            env={"TEST_IMAP_PASSWORD": PASSWORD},
        )  # fmt: skip
        assert result.returncode == 1
        assert result.stdout.strip().endswith(
            f"FAILED: [inbox] imap_host 127.0.0.1:{server.port}: certificate verify failed: "
            "unable to get local issuer certificate; set [inbox] ca_file to trust a private CA"
        ), result.stdout
        assert server.flags() == [set()], "nothing read"

        monkeypatch.setenv("TEST_IMAP_PASSWORD", PASSWORD)
        settings = make_settings(
            keywords=["MLLM"],
            digest={"from": "Daily Papers <papers@localhost>"},
            inbox=inbox | {"ca_file": str(ca.ca_file)},
        )
        with Store(settings.store.path) as store:
            report = poll_inbox(settings, store)
        assert (report.read, report.replies_sent, report.error) == (1, 1, "")
        (question,) = smtp_server.to("ann@localhost")
        assert question.mail_from == "papers@localhost"
        assert NUMERIC_DATE.search(question.data), question.data[:400]
        server.append(reply_to(question, "Ann <ann@localhost>"))
        with Store(settings.store.path) as store:
            poll_inbox(settings, store)
    finally:
        server.stop()
    saved = tomllib.loads((settings.subscribers.dir / "ann@localhost.toml").read_text())
    assert (saved["email"], saved["keywords"], saved["source"]) == (
        "ann@localhost",
        ["MLLM"],
        "email",
    )


# -- addresses ------------------------------------------------------------------------------


def test_ann_at_localhost_subscribes_by_the_cli_and_gets_her_digest(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"], digest={"from": "Daily Papers <papers@intranet>"})
    result = run_cli("--settings", str(settings.file), "subscribe", "ann@localhost",
                     "--keyword", "MLLM")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ann@localhost: subscribed to MLLM")
    arxiv_server.add(entry("2502.00001", "MLLM one"))
    assert cycle(settings).delivery.sent == 1
    (received,) = smtp_server.messages
    assert (received.mail_from, received.to) == ("papers@intranet", "ann@localhost")
    message = received.message
    assert message["To"] == "ann@localhost"
    assert re.fullmatch(r"<digest\.1\.[0-9a-f]+@intranet>", message["Message-ID"])
    assert message["List-Unsubscribe"].startswith("<mailto:papers@intranet?subject=")
    assert message["List-Id"] == "Daily Papers <daily-papers.intranet>"


REFUSED = {
    "ann@exa_mple.org": "has an invalid domain: label 'exa_mple' may hold only letters, "
    "digits and hyphens",
    "ann@" + "a" * 64 + ".org": "has an invalid domain: label 'aaaaaaaaaaaaaaaaaaaa...' is "
    "longer than 63 characters",
    "a" * 65 + "@example.org": "has an invalid local part (before the @): it is longer than "
    "64 characters",
    "ann@example..org": "has an invalid domain: it has an empty label",
    "ann@example.org.": "has an invalid domain: it has an empty label",
    "ann@-example.org": "label '-example' must not start or end with a hyphen",
    "ann@192.0.2.1": "the last label '1' is all digits (an IP address is not a host name)",
    "ann@[192.0.2.1]": "address literals like [192.0.2.1] are not accepted",
    "ann.@example.org": "it must not start or end with a dot",
    "an..n@example.org": "it must not hold two dots in a row",
    '"ann"@example.org': "it must not hold '\"' (quoted local parts are not accepted)",
    "annexample.org": "is not an address like name@example.org (no @)",
    "@example.org": "(nothing before the @)",
    "ann@": "(nothing after the @)",
    "änn@example.org": "must be ASCII",
    "ann@example.org, ben@example.org": "must be one bare address",
    "a@" + "b" * 60 + ("." + "c" * 60) * 4: "is longer than 254 characters",
}


def test_every_refusal_names_the_rule_and_single_label_domains_pass():
    for address, rule in REFUSED.items():
        with pytest.raises(AddressError) as caught:
            normalize_address(address)
        assert rule in str(caught.value), (address, str(caught.value))
        assert "\n" not in str(caught.value)
    for good in ("ann@localhost", "ann@intranet", "Ann+news@Mail.Example.ORG", "a-b@x-1.example"):
        assert normalize_address(good).endswith(good.rpartition("@")[2].lower())


def test_a_from_address_refusal_names_the_rule(make_settings):
    with pytest.raises(ConfigError) as caught:
        make_settings(digest={"from": "Daily Papers <papers@exa_mple.org>"})
    assert "[digest] from must be one address like 'Name <name@example.org>'" in str(caught.value)
    assert "label 'exa_mple' may hold only letters, digits and hyphens" in str(caught.value)
