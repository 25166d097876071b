"""Daily or weekly: each subscriber's rhythm, over real cycles on the days a test names.

A cycle's `today` is the clock here: it is the day weekdays are counted on,
and the day recorded with each delivered digest.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, date, datetime, timedelta

import pytest
from arxiv_server import entry
from conftest import run_main, subscribe
from digest_reader import paper_ids, text_part
from mails import INBOX, deliver, mail, make_maildir, reply_to

from newsletter.cadence import Cadence, day_of, parse_cadence
from newsletter.cycle import run_cycle
from newsletter.inbox.poll import poll_inbox
from newsletter.sending.preview import preview_next
from newsletter.store import Store
from newsletter.subscribers import load_subscribers, save_subscriber

MONDAY = date(2025, 3, 3)
WEEKLY = Cadence("weekly", "monday")


def cycle(settings, today):
    with Store(settings.store.path) as store:
        return run_cycle(settings, store, today=today)


def weekly(settings, email, *keywords, weekday="monday"):
    subscriber, _ = save_subscriber(
        settings.subscribers.dir,
        email,
        keywords,
        settings.keyword_names,
        cadence=parse_cadence("weekly", weekday),
    )
    return subscriber


def paper_of(day: date, n: int = 0):
    return entry(f"2503.{day.day:03d}{n:02d}", f"Hallucination of {day}", day=day.isoformat())


def received(smtp_server, address):
    return [m.message for m in smtp_server.to(address)]


def test_a_weekly_subscriber_gets_one_digest_on_their_day_with_everything_since_the_last(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["Hallucination"])
    weekly(settings, "wes@example.org", "Hallucination")
    weekly(settings, "wil@example.org", "Hallucination")
    subscribe(settings, "dan@example.org", "Hallucination")
    arxiv_server.add(paper_of(MONDAY - timedelta(days=3)))
    assert cycle(settings, MONDAY).delivery.sent == 3, "the welcome issue, whatever the cadence"

    week = []
    for offset in range(1, 7):  # Tuesday to Sunday
        day = MONDAY + timedelta(days=offset)
        arxiv_server.add(paper_of(day))
        week.append(paper_of(day).id)
        report = cycle(settings, day)
        assert report.delivery.sent == 1 and report.delivery.waiting == 2, day
    assert len(received(smtp_server, "wes@example.org")) == 1
    assert len(received(smtp_server, "dan@example.org")) == 7

    next_monday = MONDAY + timedelta(days=7)
    arxiv_server.add(paper_of(next_monday))
    week.append(paper_of(next_monday).id)
    report = cycle(settings, next_monday)
    assert report.delivery.sent == 3
    # The two weekly readers share one render; the daily one, with other papers, another.
    assert (report.delivery.digests, report.delivery.renders) == (2, 2)
    digest = received(smtp_server, "wes@example.org")[-1]
    assert sorted(paper_ids(digest)) == sorted(week)
    assert digest["Subject"].strip() == (  # folded after "Subject:", being long
        "[Daily Papers] 7 new papers: Hallucination (weekly, 2025-03-04 to 2025-03-10)"
    )
    assert "Your weekly digest: the papers on your keywords\nfirst seen from 2025-03-04 to " in (
        text_part(digest)
    )
    assert paper_ids(received(smtp_server, "dan@example.org")[-1]) == [week[-1]]

    # A second cycle the same Monday sends the weekly readers nothing more.
    arxiv_server.add(paper_of(next_monday, 1))
    report = cycle(settings, next_monday)
    assert report.delivery.sent == 1 and report.delivery.waiting == 2


def test_a_monday_missed_while_the_daemon_was_down_is_sent_on_tuesday(
    make_settings, arxiv_server, smtp_server
):
    settings = make_settings(keywords=["Hallucination"])
    weekly(settings, "wes@example.org", "Hallucination")
    arxiv_server.add(paper_of(MONDAY))
    cycle(settings, MONDAY)
    wednesday = MONDAY + timedelta(days=2)
    arxiv_server.add(paper_of(wednesday))
    assert cycle(settings, wednesday).delivery.sent == 0

    tuesday = MONDAY + timedelta(days=8)  # down from Thursday to Tuesday morning
    arxiv_server.add(paper_of(tuesday))
    report = cycle(settings, tuesday)
    assert report.delivery.sent == 1
    digest = received(smtp_server, "wes@example.org")[-1]
    assert sorted(paper_ids(digest)) == sorted([paper_of(wednesday).id, paper_of(tuesday).id])
    assert "(weekly, 2025-03-04 to 2025-03-11)" in digest["Subject"]
    assert cycle(settings, tuesday + timedelta(days=1)).delivery.waiting == 1


def test_weekly_to_daily_by_email_takes_effect_at_the_next_cycle_losing_and_repeating_nothing(
    make_settings, arxiv_server, smtp_server, tmp_path
):
    make_maildir(tmp_path / "Maildir")
    settings = make_settings(
        keywords=["Hallucination"], inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir")}
    )
    box = make_maildir(tmp_path / "Maildir")
    weekly(settings, "wes@example.org", "Hallucination", weekday="friday")
    arxiv_server.add(paper_of(MONDAY))
    cycle(settings, MONDAY)  # the welcome issue
    tuesday = MONDAY + timedelta(days=1)
    arxiv_server.add(paper_of(tuesday))
    assert cycle(settings, tuesday).delivery.waiting == 1

    def ask(subject: str) -> None:
        deliver(box, mail("Wes <wes@example.org>", subject))
        with Store(settings.store.path) as store:
            poll_inbox(settings, store)

    def confirm() -> None:
        deliver(box, reply_to(smtp_server.to("wes@example.org")[-1], "wes@example.org"))
        with Store(settings.store.path) as store:
            poll_inbox(settings, store)

    ask("weekly friday")
    assert received(smtp_server, "wes@example.org")[-1]["Subject"] == (
        "Daily Papers: already weekly on Friday"
    )
    ask("daily")
    question = received(smtp_server, "wes@example.org")[-1]
    assert "that wes@example.org get Daily Papers daily" in question.get_content()
    assert 'cadence = "weekly"' in (settings.subscribers.dir / "wes@example.org.toml").read_text()
    confirm()
    assert received(smtp_server, "wes@example.org")[-1]["Subject"] == (
        "Daily Papers: digests now daily"
    )
    saved = tomllib.loads((settings.subscribers.dir / "wes@example.org.toml").read_text())
    assert "cadence" not in saved and saved["keywords"] == ["Hallucination"]

    wednesday = MONDAY + timedelta(days=2)
    arxiv_server.add(paper_of(wednesday))
    assert cycle(settings, wednesday).delivery.sent == 1
    digests = [m for m in received(smtp_server, "wes@example.org") if "new papers" in m["Subject"]]
    assert [sorted(paper_ids(d)) for d in digests] == [
        sorted([paper_of(tuesday).id, paper_of(wednesday).id])
    ]
    assert "weekly" not in digests[0]["Subject"]
    assert cycle(settings, wednesday + timedelta(days=1)).delivery.nothing_new == 1


def test_cadence_commands_are_whole_lines_and_need_a_subscription(
    make_settings, smtp_server, tmp_path
):
    make_maildir(tmp_path / "Maildir")
    settings = make_settings(inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir")})
    box = make_maildir(tmp_path / "Maildir")
    deliver(
        box,
        mail("stranger@example.org", "weekly"),
        # The subject of our own help reply: a reply to it is not a cadence change.
        mail("ann@example.org", "Re: Daily Papers: commands", "keywords all"),
    )
    with Store(settings.store.path) as store:
        poll_inbox(settings, store)
    stranger = received(smtp_server, "stranger@example.org")[0]
    assert "is not subscribed" in stranger.get_content()
    help_text = received(smtp_server, "ann@example.org")[0].get_content()
    assert "weekly friday" in help_text and "daily" in help_text


def test_subscriber_files_say_the_cadence_and_bad_values_cost_that_file(make_settings, caplog):
    settings = make_settings()
    folder = settings.subscribers.dir
    subscriber = weekly(settings, "wes@example.org", "MLLM", weekday="Fri")
    text = (folder / "wes@example.org.toml").read_text()
    assert 'cadence = "weekly"\nweekday = "friday"\n' in text
    subscribe(settings, "dan@example.org", "MLLM")
    assert "cadence" not in (folder / "dan@example.org.toml").read_text(), "as before"
    (folder / "bad1.toml").write_text(
        'email = "hour@example.org"\nkeywords = ["MLLM"]\ncadence = "hourly"\n'
    )
    (folder / "bad2.toml").write_text(
        'email = "moon@example.org"\nkeywords = ["MLLM"]\ncadence = "weekly"\nweekday = "moonday"\n'
    )
    roster = load_subscribers(folder, settings.keyword_names)
    assert {s.email: s.cadence for s in roster.subscribers} == {
        "dan@example.org": Cadence(),
        "wes@example.org": subscriber.cadence,
    }
    assert roster.problems == (
        f'{folder}/bad1.toml: cadence must be "daily" or "weekly", got \'hourly\'; skipped',
        f'{folder}/bad2.toml: weekday must be a day of the week like "friday", '
        "got 'moonday'; skipped",
    )


def test_the_command_line_sets_shows_and_previews_the_cadence(make_settings, arxiv_server, capsys):
    settings = make_settings(keywords=["Hallucination"], schedule={"timezone": "Europe/Berlin"})
    base = ["--settings", str(settings.file)]
    assert run_main(*base, "subscribe", "wes@example.org", "--keyword", "hallucination") == 0
    assert run_main(*base, "subscribe", "wes@example.org", "--weekly", "--weekday", "fri") == 0
    assert "updated to Hallucination, weekly on Friday" in capsys.readouterr().out
    assert run_main(*base, "subscribe", "wes@example.org", "--daily", "--weekday", "mon") == 2
    assert "--weekday is for --weekly" in capsys.readouterr().err
    assert run_main(*base, "subscribe", "new@example.org", "--weekly") == 2
    assert "choose at least one keyword" in capsys.readouterr().err
    assert run_main(*base, "subscribers") == 0
    assert "wes@example.org: Hallucination; weekly on Friday; last delivery" in (
        capsys.readouterr().out
    )

    arxiv_server.add(paper_of(MONDAY))
    cycle(settings, MONDAY)  # the welcome issue, on a Monday
    arxiv_server.add(paper_of(MONDAY + timedelta(days=1)))
    cycle(settings, MONDAY + timedelta(days=1))
    # On Wednesday 2025-03-05, before the 07:00 run: the digest waits for Friday's run.
    now = datetime(2025, 3, 5, 5, 0, tzinfo=UTC)
    found = preview_next(settings, "wes@example.org", now)
    assert found.cadence == "weekly on Friday"
    assert found.goes_out == datetime(2025, 3, 7, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
    assert "(weekly, 2025-03-04 to 2025-03-07)" in found.subject
    assert found.text is not None and paper_of(MONDAY + timedelta(days=1)).id in found.text
    assert run_main(*base, "preview", "wes@example.org", "--text") == 0
    out, err = capsys.readouterr()
    assert "Your weekly digest" in out
    assert "wes@example.org: weekly on Friday; next digest at the cycle of " in err


@pytest.mark.parametrize(
    "last, today, due",
    [
        (date(2025, 3, 3), date(2025, 3, 9), False),  # Sunday: not yet
        (date(2025, 3, 3), date(2025, 3, 10), True),  # Monday
        (date(2025, 3, 3), date(2025, 3, 12), True),  # Monday missed
        (date(2025, 3, 10), date(2025, 3, 10), False),  # sent this Monday already
        (None, date(2025, 3, 12), True),  # never delivered
    ],
)
def test_weekly_is_due_once_the_weekday_has_come_since_the_last_digest(last, today, due):
    assert WEEKLY.due(last, today) is due
    assert Cadence().due(last, today), "daily is always due"


def test_records_of_the_release_before_are_read_and_count_from_their_last_sent(tmp_path):
    """Deliveries without `last_day`, journal lines without `day`, requests without a
    cadence: read as they are; the weekday counts from `last_sent` in the schedule's zone."""
    path = tmp_path / "newsletter.json"
    old = {"key": "wes@example.org", "since": "s", "last_cycle": 4, "failures": 0}
    old |= {"last_sent": "2025-03-09T23:30:00+00:00", "bounces": 0, "state": "active"}
    old |= {"last_error": "", "last_bounce": "", "bounce_log": []}
    request = {"key": "ann@example.org", "email": "ann@example.org", "action": "keywords"}
    request |= {"code_hash": "h", "created": "2025-03-09T10:00:00+00:00", "keywords": ["MLLM"]}
    request |= {"expires": "2099-01-01T00:00:00+00:00", "name": ""}
    tables = {"meta": {"1": {"format": 2}}, "deliveries": {"1": old}, "pending": {"1": request}}
    path.write_text(json.dumps(tables))
    line = {"key": "ann@example.org", "since": "t", "cycle": 5, "at": "2025-03-10T07:00:00+00:00"}
    path.with_name(path.name + ".journal").write_text(json.dumps(line) + "\n")
    with Store(path) as store:
        wes, ann = store.deliveries.get("wes@example.org"), store.deliveries.get("ann@example.org")
        assert (wes.last_day, ann.last_day, ann.last_cycle) == ("", "", 5)
        assert store.inbox.pending_request("h").cadence == ""
    # 23:30 UTC on Sunday is Monday in Berlin: the digest of that Monday went out.
    assert day_of(wes.last_sent, "Europe/Berlin") == date(2025, 3, 10)
    assert day_of(wes.last_sent, "UTC") == date(2025, 3, 9)
    assert not WEEKLY.due(day_of(wes.last_sent, "Europe/Berlin"), date(2025, 3, 16))
