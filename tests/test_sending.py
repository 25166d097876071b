"""Sending to many at once: a pool of connections, each carrying many messages, and
one subscriber's refusal staying that subscriber's problem."""

from __future__ import annotations

import random
from datetime import date

from arxiv_server import entry
from conftest import SEED_KEYWORDS, subscribe

from newsletter.cycle import run_cycle
from newsletter.store import Store

DAY = date(2025, 3, 7)


def test_four_connections_carry_everyone_once_and_a_refusal_stays_with_its_address(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=SEED_KEYWORDS, smtp={"max_connections": 4})
    rng = random.Random(4)
    people = [f"reader{n:02d}@lab.example.org" for n in range(40)]
    for address in people:
        subscribe(settings, address, *rng.sample(SEED_KEYWORDS, rng.randint(1, 4)))
    smtp_server.refuse("reader13@lab.example.org")  # 550 5.1.1 No such user
    arxiv_server.add(
        *(
            entry(f"2503.{n:05d}", f"{keyword} paper {n}", day=f"2025-03-{1 + n % 6:02d}")
            for n, keyword in enumerate(SEED_KEYWORDS * 3, start=1)
        )
    )

    opened = smtp_server.connections  # aiosmtpd's own start-up probe
    with Store(settings.store.path) as store:
        writes = store.write_counts()
        report = run_cycle(settings, store, today=DAY)
        cycle_writes = {k: n - writes[k] for k, n in store.write_counts().items()}
        deliveries = store.deliveries.all()

    mail = report.delivery
    assert (mail.sent, mail.bounced, mail.pending) == (39, 1, 0)
    received = sorted(m.to for m in smtp_server.messages)
    assert received == [p for p in people if p != "reader13@lab.example.org"], "each once"
    assert smtp_server.connections - opened == 4, "max_connections sessions, each reused"
    assert deliveries["reader13@lab.example.org"].bounces == 1
    assert deliveries["reader13@lab.example.org"].last_cycle == 0
    assert all(deliveries[p].last_cycle == report.number for p in received)
    # The state file: begin, the keywords' counts, the deliveries, the end; the papers: the
    # diff (nothing to prune). Never once per subscriber.
    assert cycle_writes == {"state": 4, "papers": 1, "seen": 0}


def test_a_temporary_refusal_is_retried_then_left_pending_on_a_reused_connection(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["MLLM"], smtp={"max_connections": 1, "retries": 1})
    for name in ("a", "busy", "c"):
        subscribe(settings, f"{name}@example.org", "MLLM")
    smtp_server.refuse("busy@example.org", "451 4.2.1 Mailbox busy, try later")
    arxiv_server.add(entry("2502.00001", "MLLM paper 1"))
    opened = smtp_server.connections
    with Store(settings.store.path) as store:
        report = run_cycle(settings, store, today=DAY)
        busy = store.deliveries.get("busy@example.org")
    assert (report.delivery.sent, report.delivery.pending) == (2, 1)
    assert sorted(m.to for m in smtp_server.messages) == ["a@example.org", "c@example.org"]
    assert busy is not None and busy.failures == 1 and busy.last_cycle == 0
    assert busy.last_error.startswith("451")
    assert smtp_server.connections - opened == 1, "RSET after the refusal, same connection"
