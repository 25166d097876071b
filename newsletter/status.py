"""`newsletter status`: what the daemon did and will do, read without its lock.

The store is replaced atomically, so reading it while the daemon runs always
sees one consistent version; nothing here writes anything.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .cadence import local_today
from .clock import next_due
from .config import Settings
from .files import InstanceLock
from .logs import printable
from .preflight import warnings
from .sending.plan import is_new_subscription, plan_all
from .store import Store, lock_path
from .subscribers import load_subscribers

RECENT_CYCLES = 5


def _daemon_pid(settings: Settings) -> int | None:
    """The pid in the lock file, if that process is alive (the lock itself is not taken)."""
    pid = InstanceLock(lock_path(settings.store.path)).owner()
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _duration(cycle: dict[str, Any]) -> float | None:
    if not cycle.get("finished"):
        return None
    started = datetime.fromisoformat(cycle["started"])
    return (datetime.fromisoformat(cycle["finished"]) - started).total_seconds()


def gather(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    cycles: list[dict[str, Any]] = []
    states = {"active": 0, "new": 0, "bouncing": 0}
    bouncing: list[dict[str, Any]] = []
    dropped = 0
    pending = 0
    papers = {"full": 0, "seen_ids": 0}
    disk = {"bytes": 0, "backup": None}
    if settings.store.path.exists():
        with Store(settings.store.path, lock=False) as store:
            papers = {"full": store.papers.count(), "seen_ids": len(store.papers.seen())}
            disk["bytes"] = sum(_size(path) for path in store.files())
            backup = store.backup()
            if backup is not None:
                disk["backup"] = {"path": str(backup), "bytes": _size(backup)}
            for cycle in store.cycles.all()[-RECENT_CYCLES:]:
                cycles.append(cycle | {"seconds": _duration(cycle)})
            today = local_today(settings.schedule.timezone, now)
            groups, _, _ = plan_all(settings, store, roster, today)
            pending = sum(len(members) for members in groups.members.values())
            for subscriber in roster.subscribers:
                delivery = store.deliveries.get(subscriber.key)
                if is_new_subscription(subscriber, delivery):
                    states["new"] += 1
                else:
                    states[delivery.state] = states.get(delivery.state, 0) + 1
                    if delivery.state == "bouncing":
                        bouncing.append(
                            {
                                "email": subscriber.email,
                                "bounces": delivery.bounces,
                                "last_error": delivery.last_error,
                            }
                        )
            dropped = store.inbox.dropped_since(now - timedelta(days=1))
    else:
        states["new"] = len(roster.subscribers)
    return {
        "daemon_pid": _daemon_pid(settings),
        "warnings": warnings(settings),
        "store": str(settings.store.path),
        "papers": papers,
        "state_on_disk": disk,
        "cycles": cycles,
        "next_run": next_due(settings.schedule, now).isoformat(),
        "schedule": {
            "times": list(settings.schedule.times),
            "timezone": settings.schedule.timezone,
        },
        "subscribers": {
            "total": len(roster.subscribers),
            **states,
            "files_skipped": len(roster.problems),
        },
        "bouncing": bouncing,
        "pending_deliveries": pending,
        "inbox": {"dropped_last_day": dropped},
    }


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def format_status(status: dict[str, Any]) -> str:
    pid = status["daemon_pid"]
    papers, disk = status["papers"], status["state_on_disk"]
    lines = [f"warning: {warning}" for warning in status["warnings"]]
    lines += [
        f"daemon: {'running (pid ' + str(pid) + ')' if pid else 'not running'}",
        f"store: {status['store']} ({_megabytes(disk['bytes'])} on disk; "
        f"{papers['full']} papers in full, {papers['seen_ids']} only as seen ids)",
        f"next run: {status['next_run']} (at {', '.join(status['schedule']['times'])} "
        f"{status['schedule']['timezone']})",
    ]
    if disk["backup"]:
        backup = disk["backup"]
        lines.append(
            f"old store kept: {backup['path']} ({_megabytes(backup['bytes'])}), from before "
            "its conversion; delete it once you will not go back to the earlier release"
        )
    s = status["subscribers"]
    lines.append(
        f"subscribers: {s['total']} ({s['active']} active, {s['new']} new, "
        f"{s['bouncing']} bouncing; {s['files_skipped']} files skipped)"
    )
    for person in status["bouncing"]:
        lines.append(
            f"bouncing: {person['email']} ({person['bounces']} refusals; last: "
            f"{person['last_error']}): no digests until they write to the list"
        )
    lines.append(
        f"pending deliveries: {status['pending_deliveries']} subscribers have a digest due"
    )
    dropped = status["inbox"]["dropped_last_day"]
    if dropped:
        lines.append(
            f"inbox: {dropped} requests dropped without a reply in the last day, over the "
            "reply caps ([inbox] max_confirmations_per_hour and per domain, "
            "max_replies_per_hour)"
        )
    if not status["cycles"]:
        lines.append("cycles: none yet")
    for cycle in reversed(status["cycles"]):
        seconds = cycle["seconds"]
        took = f"{seconds:.1f} s" if seconds is not None else "unfinished"
        head = f"cycle {cycle['number']}: started {cycle['started']}, {took}"
        if cycle.get("error"):
            head += f"; FAILED: {cycle['error']}"
        if cycle.get("interrupted"):
            head += "; interrupted by shutdown"
        mail = cycle.get("mail")
        if mail:
            head += (
                f"; mail sent {mail['sent']}, pending {mail['pending']}, bounced {mail['bounced']}"
            )
            if mail.get("error"):
                head += f"; mail FAILED: {mail['error']}"
        lines.append(head)
        for name, counts in (cycle.get("keywords") or {}).items():
            result = f"error: {counts['error']}" if counts.get("error") else ""
            lines.append(
                f"  {name}: fetched {counts['fetched']}, new {counts['new']}"
                + (f"; {result}" if result else "")
            )
    # Errors and names come from outside (arXiv, mail servers, subscriber files): each
    # line is shown as one line, its control characters escaped.
    return "\n".join(printable(line) for line in lines)
