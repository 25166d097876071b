"""The commands people send to the newsletter's address, read from a subject or body lines.

Pure text in, `Command` out; what a command does is actions.py's job. The
grammar is the mailing-list one, case-insensitive:

    subscribe Hallucination, MLLM     subscribe all
    keywords Reasoning, MLLM          keywords all
    weekly    weekly friday           daily
    unsubscribe                       help

plus the two that carry a secret: "unsubscribe TOKEN" (the subject of every
digest's List-Unsubscribe mailto) and "confirm CODE" (anywhere in a reply to
a confirmation request, usually its quoted subject).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..cadence import DAILY, WEEKDAYS, WEEKLY
from ..tokens import TOKEN_LENGTH

SUBSCRIBE, KEYWORDS, UNSUBSCRIBE, HELP = "subscribe", "keywords", "unsubscribe", "help"
CONFIRM, TOKEN_UNSUBSCRIBE, CADENCE = "confirm", "token-unsubscribe", "cadence"

CODE_LENGTH = 26  # base32 characters of a confirmation code (130 random bits)

_CONFIRM = re.compile(rf"\bconfirm[\s:#-]+([a-z2-7]{{{CODE_LENGTH}}})\b", re.I)
_TOKEN = re.compile(rf"^unsubscribe\s+([a-z2-7]{{{TOKEN_LENGTH}}})\b", re.I)
_REPLY_PREFIX = re.compile(
    r"^\s*((re|fwd?|aw|wg|sv|vs|antw|tr)\s*(\[\d+\])?\s*:\s*|\[[^\]]*\]\s*)+", re.I
)
# "daily" alone, "weekly", "weekly friday", "weekly on fri", "weekly: Fridays": the whole
# line, so that a subject like "Daily Papers: commands" is never read as one.
_CADENCE = re.compile(
    rf"^(?:(daily)|(weekly)(?::?\s+(?:on\s+)?({'|'.join(WEEKDAYS)}|"
    rf"{'|'.join(w[:3] for w in WEEKDAYS)})s?)?)[.!]?$",
    re.I,
)
_VERBS = {
    "subscribe": SUBSCRIBE,
    "join": SUBSCRIBE,
    "keywords": KEYWORDS,
    "keyword": KEYWORDS,
    "unsubscribe": UNSUBSCRIBE,
    "leave": UNSUBSCRIBE,
    "help": HELP,
}
MAX_KEYWORDS = 100


@dataclass(frozen=True)
class Command:
    verb: str  # one of the constants above
    keywords: tuple[str, ...] = ()  # as written; "all" is `everything`
    everything: bool = False
    secret: str = ""  # the confirmation code or unsubscribe token
    understood: bool = True  # False: nothing recognisable, answered with help
    said: str = ""  # the line the command was read from, for the reply
    cadence: str = ""  # CADENCE: "daily" or "weekly"
    weekday: str = ""  # as written ("fri"); "" for the default


def strip_reply_prefixes(subject: str) -> str:
    """'Re: Fwd: [Daily Papers] subscribe MLLM' → 'subscribe MLLM'."""
    return _REPLY_PREFIX.sub("", subject).strip()


def parse_line(line: str) -> Command | None:
    """One line as a command, or None when it is not one."""
    line = " ".join(line.split())
    match = _TOKEN.match(line)
    if match:
        return Command(TOKEN_UNSUBSCRIBE, secret=match.group(1).lower(), said=line)
    match = _CADENCE.match(line)
    if match:
        every = DAILY if match.group(1) else WEEKLY
        return Command(CADENCE, cadence=every, weekday=match.group(3) or "", said=line)
    word, _, rest = line.partition(" ")
    verb = _VERBS.get(word.lower().rstrip(":"))
    if verb is None:
        return None
    if verb in (UNSUBSCRIBE, HELP):
        # "unsubscribe me please" still means unsubscribe; help takes no arguments.
        return Command(verb, said=line)
    names = [n.strip() for n in re.split(r"[,;]", rest)]
    names = [n for n in names if n][:MAX_KEYWORDS]
    if len(names) == 1 and names[0].lower() in ("all", "everything"):
        return Command(verb, everything=True, said=line)
    return Command(verb, keywords=tuple(names), said=line)


def parse_command(subject: str, lines: Sequence[str], text: str) -> Command:
    """The command of a message: a confirmation code anywhere wins, then the subject,
    then the first body line that is a command; anything else is a request for help."""
    code = _CONFIRM.search(text)
    if code:
        return Command(CONFIRM, secret=code.group(1).lower(), said=code.group(0))
    for line in (strip_reply_prefixes(subject), *lines):
        command = parse_line(line)
        if command is not None:
            return command
    said = next((line for line in (subject, *lines) if line.strip()), "")
    return Command(HELP, understood=False, said=said[:200])
