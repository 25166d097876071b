"""Named places where the process can be told to kill itself, for the crash tests.

`NEWSLETTER_CRASH_AT=state-write-middle` makes the process SIGKILL itself the
first time it reaches that point; `name:3` on the third time. Choosing the
instant by name instead of by timing makes every crash test deterministic. When
the variable is unset (always, in production) a checkpoint costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "NEWSLETTER_CRASH_AT"
_seen: dict[str, int] = {}


def crashpoint(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition(":")
    if target != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
