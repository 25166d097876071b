"""The Date header of every mail we send, in one form: RFC 5322's numeric zone.

`email.utils.formatdate(usegmt=True)` writes "GMT", a zone RFC 5322 lists as
obsolete (section 4.3), which some spam filters score; digests and replies both
say "+0000" instead, the same instant in the current form.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import format_datetime


def mail_date(seconds: float | None = None) -> str:
    """'Mon, 30 Nov 2026 22:24:07 +0000' for `seconds` since the epoch (now by default)."""
    when = datetime.fromtimestamp(time.time() if seconds is None else seconds, UTC)
    return format_datetime(when.replace(microsecond=0))
