"""The short plain-text replies the inbox sends, and the message that carries them.

Replies are marked `Auto-Submitted: auto-replied` (RFC 3834) so that
well-behaved responders never answer them, and thread under the message they
answer (In-Reply-To, References). Texts are plain Python strings on purpose:
they are short, and each says what happened and what to do next.

No reply carries a stranger's text: the From address may be forged, and the
list's own domain must not deliver somebody else's words to it. A reply holds
only our sentences, the list's keyword names, and the recipient's own address.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP

from ..maildate import mail_date


@dataclass(frozen=True)
class Reply:
    recipient: str
    subject: str
    body: str


@dataclass(frozen=True)
class Voice:
    """Who speaks in replies: the list's name and address, and what it offers."""

    list_name: str
    address: str
    keywords: tuple[str, ...]
    confirm_hours: float

    def commands(self) -> str:
        return (
            f"Send one of these to {self.address}, in the subject or the first line:\n\n"
            "  subscribe KEYWORD, KEYWORD   get a digest of new papers on those keywords\n"
            "  subscribe all                every keyword\n"
            "  keywords KEYWORD, KEYWORD    change your keywords (or: keywords all)\n"
            "  weekly                       one digest a week, on Mondays, with every new paper\n"
            "  weekly friday                the same, on another day\n"
            "  daily                        a digest every day there is news (the default)\n"
            "  unsubscribe                  stop the digests\n"
            "  help                         this list\n\n"
            f"Keywords: {', '.join(self.keywords)}\n"
        )

    def expiry(self) -> str:
        hours = self.confirm_hours
        return f"{hours:g} hours" if hours != 1 else "1 hour"


def _names(keywords: Sequence[str]) -> str:
    return ", ".join(keywords)


def help_reply(voice: Voice, to: str, understood: bool = True) -> Reply:
    """The commands. What was not understood is not quoted back: the From address may be
    forged, and a reply must not carry a stranger's text to it."""
    intro = "" if understood else "I did not understand your message.\n\n"
    intro += f"{voice.list_name} mails a digest of new arXiv papers on the keywords you choose.\n\n"
    return Reply(to, f"{voice.list_name}: commands", intro + voice.commands())


def confirm_request(
    voice: Voice, to: str, action: str, keywords: Sequence[str], code: str, cadence: str = ""
) -> Reply:
    """`cadence`: for a cadence change, what it becomes ("weekly on Friday")."""
    asked = {
        "subscribe": f"to subscribe {to} to {voice.list_name} ({_names(keywords)})",
        "keywords": f"to change the keywords of {to} to {_names(keywords)}",
        "unsubscribe": f"to unsubscribe {to} from {voice.list_name}",
        "cadence": f"that {to} get {voice.list_name} {cadence}",
    }[action]
    body = (
        f"Someone, probably you, asked {asked}.\n\n"
        "To confirm, reply to this message (its subject carries the code), or send\n"
        f'"confirm {code}" to {voice.address}. The code expires in {voice.expiry()}.\n\n'
        "If you did not ask for this, ignore this message: nothing changes without a reply.\n"
    )
    return Reply(to, f"{voice.list_name}: please confirm (confirm {code})", body)


def done_reply(
    voice: Voice, to: str, action: str, keywords: Sequence[str], cadence: str = ""
) -> Reply:
    if action == "cadence":
        return Reply(
            to,
            f"{voice.list_name}: digests now {cadence}",
            f"{to} now gets {voice.list_name} {cadence}, from the next cycle on. The next\n"
            "digest holds every new paper since the last one; none is lost or sent twice.\n\n"
            + voice.commands(),
        )
    if action == "unsubscribe":
        return Reply(
            to,
            f"{voice.list_name}: unsubscribed",
            f"{to} is unsubscribed from {voice.list_name}: no more digests will be sent.\n\n"
            f'To subscribe again, send "subscribe KEYWORD" to {voice.address}.\n',
        )
    if action == "subscribe":
        return Reply(
            to,
            f"{voice.list_name}: subscribed to {_names(keywords)}",
            f"{to} is subscribed to {_names(keywords)}. The first digest, with the latest\n"
            "papers on these keywords, comes with the next cycle; after that, only new ones.\n\n"
            + voice.commands(),
        )
    return Reply(
        to,
        f"{voice.list_name}: keywords changed to {_names(keywords)}",
        f"{to} now gets {_names(keywords)}.\n\n" + voice.commands(),
    )


def problem_reply(voice: Voice, to: str, what: str) -> Reply:
    """Something could not be done: say what (in our words only), and how to go on."""
    return Reply(to, f"{voice.list_name}: nothing changed", f"{what}\n\n" + voice.commands())


def keywords_reply(voice: Voice, to: str) -> Reply:
    """Keywords we do not offer, or none: the valid ones, never the names that were sent."""
    what = (
        "Nothing changed: name one or more of the keywords listed below, separated by "
        'commas, or "all". Keyword names are matched ignoring case.'
    )
    return problem_reply(voice, to, what)


def already_reply(voice: Voice, to: str, keywords: Sequence[str]) -> Reply:
    return Reply(
        to,
        f"{voice.list_name}: already subscribed",
        f"{to} is already subscribed to {_names(keywords)}; nothing changed.\n\n"
        + voice.commands(),
    )


def already_cadence_reply(voice: Voice, to: str, cadence: str) -> Reply:
    return Reply(
        to,
        f"{voice.list_name}: already {cadence}",
        f"{to} already gets {voice.list_name} {cadence}; nothing changed.\n\n" + voice.commands(),
    )


def not_subscribed_reply(voice: Voice, to: str) -> Reply:
    return Reply(
        to,
        f"{voice.list_name}: not subscribed",
        f"{to} is not subscribed to {voice.list_name}; nothing changed.\n\n" + voice.commands(),
    )


def build_reply(
    reply: Reply,
    *,
    sender: str,
    answering: str = "",
    references: Sequence[str] = (),
) -> EmailMessage:
    """The message for one reply; `answering` is the Message-ID it answers.
    The email package refuses line breaks in header values: nothing can be injected."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = reply.recipient
    message["Subject"] = reply.subject
    message["Date"] = mail_date()
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = email.utils.make_msgid("reply", domain=domain)
    if answering:
        message["In-Reply-To"] = answering
        message["References"] = " ".join([*references, answering][-10:])
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"  # asks Exchange not to answer with its own
    message.set_content(reply.body, cte="quoted-printable")
    return message
