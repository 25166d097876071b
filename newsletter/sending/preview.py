"""`newsletter preview`: a subscriber's next digest, rendered, with nothing sent or saved."""

from __future__ import annotations

from datetime import UTC, datetime

from ..addresses import address_key
from ..config import Settings
from ..store import Store
from ..subscribers import Roster, SubscriberError, load_subscribers
from ..tokens import load_secret
from .deliver import make_renderer, personal
from .plan import plan_all


def preview(settings: Settings, email: str) -> tuple[str | None, str | None, str]:
    """(html, text, subject) of this subscriber's next digest; (None, None, "") when
    nothing is due. Reads only: no lock, no secret created, nothing recorded."""
    roster = load_subscribers(settings.subscribers.dir, settings.keyword_names)
    wanted = address_key(email.strip())
    subscriber = next((s for s in roster.subscribers if s.key == wanted), None)
    if subscriber is None:
        raise SubscriberError("not a subscriber (see `newsletter subscribers`)")
    if not settings.store.path.exists():
        return None, None, ""
    with Store(settings.store.path, lock=False) as store:
        groups, _, _ = plan_all(settings, store, Roster((subscriber,), ()))
    if not groups.members:
        return None, None, ""
    (digest,) = groups.digests.values()
    secret = load_secret(settings.web.secret_file) or b"preview: no secret file yet"
    rendered = make_renderer(settings).render(digest, subscriber.keywords, datetime.now(UTC).date())
    html, text = rendered.personalise(personal(settings, secret, subscriber, 0))
    return html, text, rendered.subject
