"""Which papers the store keeps in full: those a table, a digest or a monthly page can still show.

For each keyword in settings, newest first by the first version's time:
- its table (`archive.max_papers`) and a welcome issue (`digest.max_papers_per_keyword`);
- for every delivery still pending since cycle L (a weekly digest waiting for
  its weekday, however long; a temporary failure; a cycle stopped before its
  mail), the newest `max_papers_per_keyword` first seen after L (what
  `select_new` can pick);
- with `rotate`, all of them while this cycle's monthly pages are not written.
Everything else becomes a seen id at the end of the cycle, so the working set
follows keywords and subscribers, not the years behind them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .config import Settings
from .papers import StoredPaper, all_by_keyword, newest_after
from .sending.plan import is_new_subscription
from .store import Delivery
from .subscribers import Roster


def pending_since(deliveries: Mapping[str, Delivery], roster: Roster, cycle: int) -> set[int]:
    """The last delivered cycle of every subscriber whose digest is behind `cycle` (not the
    new ones: their welcome issue is each keyword's newest, kept anyway)."""
    behind = set()
    for subscriber in roster.subscribers:
        delivery = deliveries.get(subscriber.key)
        if is_new_subscription(subscriber, delivery) or delivery.state != "active":
            continue
        if delivery.last_cycle < cycle:
            behind.add(delivery.last_cycle)
    return behind


def papers_to_keep(
    settings: Settings,
    stored: Iterable[StoredPaper],
    pending: Iterable[int],
    *,
    pages_written: bool,
) -> set[str]:
    """The ids to keep in full; `pages_written` is False when this cycle's archive failed."""
    window = max(settings.archive.max_papers, settings.digest.max_papers_per_keyword)
    per_digest = settings.digest.max_papers_per_keyword
    behind = set(pending)
    keep: set[str] = set()
    for entries in all_by_keyword(stored, settings.keyword_names).values():
        held = entries if settings.archive.rotate and not pages_written else entries[:window]
        keep.update(e.paper.id for e in held)
        for after in behind:
            keep.update(e.paper.id for e in newest_after(entries, after, per_digest))
    return keep
