"""The records the store hands out: a diff's counts, deliveries, confirmation requests,
queued replies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeywordDiff:
    """What one keyword's fetch changed: papers never seen before, and revisions."""

    new: int
    updated: int


@dataclass(frozen=True)
class Delivery:
    """What we know of one subscription's mail: O(1) per subscriber, never per paper."""

    key: str  # the address, case-folded
    since: str = ""  # the subscription's start (its file's `created`); another means a new one
    last_cycle: int = 0  # every paper first seen up to this cycle has been delivered
    last_sent: str = ""
    # The cycle's day in [schedule] timezone when the last digest went out (a weekly
    # digest is due once its weekday has come since); "" in records of the release before.
    last_day: str = ""
    failures: int = 0  # consecutive temporary failures
    bounces: int = 0  # permanent refusals and bounce reports that count (see bounce_log)
    state: str = "active"  # active | bouncing
    last_error: str = ""
    last_bounce: str = ""  # when a bounce report (DSN) last arrived; see BOUNCE_MEMORY
    # (cycle, ISO time) of each refusal or report counted, the newest last: one per
    # digest at most, and only those younger than [smtp] bounce_days count.
    bounce_log: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class PendingRequest:
    """A change asked for by email, waiting for the reply that carries its code.

    Only a hash of the code is kept: someone who can read the store still
    cannot confirm a request for somebody else's address.
    """

    key: str  # the address, case-folded; one pending request per address
    email: str
    action: str  # subscribe | keywords | unsubscribe | cadence
    code_hash: str
    created: str
    expires: str
    keywords: tuple[str, ...] = ()
    name: str = ""
    cadence: str = ""  # a cadence change: "daily" or "weekly"
    weekday: str = ""  # and the weekly digest's day


@dataclass(frozen=True)
class QueuedReply:
    """A reply saved with the effect it reports, sent after the store is written."""

    id: str
    recipient: str
    data: bytes
    created: str
    tries: int = 0
