"""Reading one TOML table with type checks, for any section of settings.toml.

Every accessor names the file, the table and the key in its error, and says
what was expected and what was found, in TOML's own spelling, so the admin
recognises the line to fix. Unknown keys are errors, not warnings: a typo such
as `delay_second` would otherwise silently leave the default in place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError


class ConfigError(UsageError):
    """A problem in settings.toml; str() is the one line shown to the admin."""


def show(value: Any) -> str:
    """Render a bad value the way it looks in TOML, so the admin recognises it."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return str(value)


REQUIRED = object()


class TomlTable:
    """One table of the file: typed accessors, and the keys they used (for `finish`)."""

    def __init__(self, file: str, where: str, raw: Any):
        self.file = file
        self.where = where
        if not isinstance(raw, dict):
            raise ConfigError(f"{file}: {where} must be a table, got {show(raw)}")
        self.raw: dict[str, Any] = raw
        self.used: set[str] = set()

    def fail(self, key: str, expected: str, got: Any = REQUIRED) -> ConfigError:
        shown = "nothing" if got is REQUIRED else show(got)
        return ConfigError(f"{self.file}: {self.where} {key} must be {expected}, got {shown}")

    def value(self, key: str, default: Any, expected: str, ok: Callable[[Any], bool]) -> Any:
        """The key's value when `ok` accepts it, `default` when it is absent."""
        self.used.add(key)
        if key not in self.raw:
            if default is REQUIRED:
                raise self.fail(key, expected)
            return default
        value = self.raw[key]
        if not ok(value):
            raise self.fail(key, expected, value)
        return value

    def string(self, key: str, default: Any = REQUIRED, *, nonempty: bool = True) -> Any:
        expected = "a non-empty string" if nonempty else "a string"
        return self.value(
            key,
            default,
            expected,
            lambda v: isinstance(v, str) and (bool(v.strip()) or not nonempty),
        )

    def integer(self, key: str, default: Any = REQUIRED, *, minimum: int = 0) -> int:
        return self.value(
            key,
            default,
            f"an integer ≥ {minimum}",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
        )

    def number(self, key: str, default: Any = REQUIRED, *, minimum: float = 0.0) -> float:
        value = self.value(
            key,
            default,
            f"a number ≥ {minimum:g}",
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= minimum,
        )
        return float(value)

    def boolean(self, key: str, default: Any = REQUIRED) -> bool:
        return self.value(key, default, "true or false", lambda v: isinstance(v, bool))

    def strings(self, key: str, default: Any = REQUIRED) -> tuple[str, ...] | None:
        value = self.value(
            key,
            default,
            "a list of non-empty strings",
            lambda v: isinstance(v, list) and all(isinstance(s, str) and s.strip() for s in v),
        )
        return None if value is None else tuple(value)

    def path(self, key: str, default: str | None, base: Path) -> Path | None:
        value = self.string(key, default)
        if value is None:
            return None
        value = Path(value)
        return value if value.is_absolute() else base / value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        return self.value(key, default, " | ".join(choices), lambda v: v in choices)

    def url(self, key: str, default: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
        """A URL with one of `schemes` and a host; "" only when that is the default."""
        optional = default == ""
        value = self.string(key, default, nonempty=not optional)
        if optional and not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise self.fail(key, "an " + " or ".join(f"{s}://" for s in schemes) + " URL", value)
        return value

    def template(self, key: str, default: str, fields: tuple[str, ...]) -> str:
        """A str.format template that may use only the named fields: fail now, not at
        send time."""
        value = self.string(key, default)
        try:
            value.format(**{f: "" for f in fields})
        except (KeyError, IndexError, ValueError) as err:
            raise self.fail(key, f"a text using only {{{'}, {'.join(fields)}}}", value) from err
        return value

    def table(self, key: str) -> TomlTable:
        """A sub-table (missing means empty); the caller must finish() it."""
        return TomlTable(self.file, f"[{key}]", self.value(key, {}, "a table", lambda v: True))

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise ConfigError(f"{self.file}: {self.where} has unknown key {unknown[0]!r}")
