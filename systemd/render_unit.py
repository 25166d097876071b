"""Render systemd/newsletter.service for this checkout and one settings file.

    .venv/bin/python systemd/render_unit.py --settings PATH [--output FILE]

`make install-service` runs it with the checkout's venv. The lines of the template
that depend on where things are get filled in: ExecStart (this venv's `newsletter`
with --settings PATH), WorkingDirectory (the settings file's folder),
Documentation (this checkout's docs/service.md), ReadWritePaths (what the daemon
writes outside its state directory, from the settings file) and ProtectHome.
Without --output the unit goes to stdout; with it, the next steps are printed.
Warnings (a path the service cannot reach, say) go to stderr; a problem that would
stop the service from starting (a folder that does not exist) exits 1.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
TEMPLATE = CHECKOUT / "systemd" / "newsletter.service"
HOMES = (Path("/home"), Path("/root"), Path("/run/user"))  # what ProtectHome= covers
PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))  # what PrivateTmp= replaces
GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")

sys.path.insert(0, str(CHECKOUT))  # the checkout's package, also when run by path

from newsletter.config import ConfigError, Settings, load_settings  # noqa: E402


class UnitError(Exception):
    """Something that would keep the rendered unit from starting; one line."""


def directive(unit: str, key: str) -> str:
    """The value of the one `key=` line of the template."""
    values = re.findall(rf"^{key}=(.*)$", unit, flags=re.MULTILINE)
    if len(values) != 1:
        raise UnitError(f"{TEMPLATE}: expected one {key}= line, found {len(values)}")
    return values[0]


def set_directive(unit: str, key: str, value: str) -> str:
    directive(unit, key)
    return re.sub(rf"^{key}=.*$", lambda _: f"{key}={value}", unit, flags=re.MULTILINE)


def quoted(path: Path | str, dollar: bool = False) -> str:
    """A path as one word of a unit file: % escaped (specifiers), and in double quotes
    with backslash escapes when it has spaces, quotes or backslashes. `dollar` for
    ExecStart=, where $ would expand a variable."""
    text = str(path).replace("%", "%%")
    if dollar:
        text = text.replace("$", "$$")
    if re.search(r"[\s\"'\\]", text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def under(path: Path, folders: tuple[Path, ...]) -> Path | None:
    return next((f for f in folders if path == f or f in path.parents), None)


def git_folders(archive: Path) -> tuple[list[Path], str]:
    """The archive's repository: its top and any git folder outside it (a worktree's, a
    submodule's), and core.sharedRepository. Run as root in a repository that may
    belong to the service user, so safe.directory is waived for these reads."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_ENV}
    base = ["git", "-c", "safe.directory=*", "-C", str(archive)]
    query = ["rev-parse", "--path-format=absolute", "--show-toplevel", "--absolute-git-dir"]
    try:
        found = subprocess.run(
            [*base, *query, "--git-common-dir"], capture_output=True, text=True, env=env
        )
        shared = subprocess.run(
            [*base, "config", "--get", "core.sharedRepository"],
            capture_output=True,
            text=True,
            env=env,
        )
    except OSError as err:
        raise UnitError(f"[archive] git = true, but git cannot be run: {err}") from None
    if found.returncode:
        reason = found.stderr.strip().splitlines()[0] if found.stderr.strip() else "git failed"
        raise UnitError(f"[archive] git = true, but {archive} is not in a git repository: {reason}")
    top, *git_dirs = (Path(line).resolve() for line in found.stdout.splitlines())
    return [top, *git_dirs], shared.stdout.strip()


def unit_paths(settings: Settings, state: Path) -> tuple[list[Path], list[Path], list[str]]:
    """What the unit must make writable, what else the service reads, and warnings."""
    warnings: list[str] = []
    writable = [settings.archive.path.parent, settings.subscribers.dir]
    if settings.inbox is not None and settings.inbox.maildir is not None:
        writable.append(settings.inbox.maildir)
    # The state files are in the state directory unless the settings put them elsewhere.
    writable += [settings.store.path.parent, settings.web.secret_file.parent]
    if settings.archive.git:
        folders, shared = git_folders(settings.archive.path.parent)
        writable += folders
        if shared.lower() not in ("", "false", "umask", "no", "off", "0"):
            warnings.append(
                f"{folders[0]}: core.sharedRepository = {shared} makes git set the setgid "
                "bit, which RestrictSUIDSGID=yes refuses: commits would fail; unset it"
            )
        if folders[0] == CHECKOUT or folders[0] in CHECKOUT.parents:
            warnings.append(
                f"the archive's repository {folders[0]} holds this checkout: the service may "
                "then rewrite its own program; give the archive a repository of its own"
            )
    python = [Path(sys.prefix), Path(sys.executable).resolve(), Path(sys.base_prefix)]
    readable = [settings.file, CHECKOUT, *python]
    for extra in (settings.digest.templates, settings.smtp.password_file):
        if extra is not None and extra.exists():
            readable.append(extra)
    inbox_password = settings.inbox.password_file if settings.inbox is not None else None
    if inbox_password is not None and inbox_password.exists():
        readable.append(inbox_password)

    resolved: list[Path] = []
    for path in writable:
        path = path.resolve()
        if under(path, (state,)) is None and path not in resolved:
            resolved.append(path)
    # A folder inside another listed one is writable already.
    resolved = [p for p in resolved if not any(q in p.parents for q in resolved)]
    missing = [str(p) for p in resolved if not p.is_dir()]
    if missing:
        raise UnitError(
            f"{', '.join(missing)}: no such folder; create it, owned by the service user, "
            "and run this again (systemd does not start a unit whose ReadWritePaths= are missing)"
        )
    return resolved, [p.resolve() for p in readable], warnings


def reach_warnings(paths: list[Path], user: str) -> list[str]:
    """Folders on the way to `paths` that `user` cannot enter (the service runs as it)."""
    try:
        account = pwd.getpwnam(user)
        uid, gids = account.pw_uid, set(os.getgrouplist(user, account.pw_gid))
    except KeyError:  # not created yet: it will own nothing and be in no group
        uid, gids = -1, set()
    found: dict[Path, str] = {}  # one line per folder in the way
    for path in paths:
        for folder in reversed(path.parents):
            try:
                info = folder.stat()
            except OSError:
                continue
            if info.st_uid == uid:
                bit = stat.S_IXUSR
            elif info.st_gid in gids:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not info.st_mode & bit:
                mode = stat.S_IMODE(info.st_mode)
                found.setdefault(folder, f"{path}: user {user} cannot enter {folder} ({mode:04o})")
                break
    return list(found.values())


@dataclass(frozen=True)
class Rendered:
    unit: str
    writable: list[Path]  # its ReadWritePaths=
    warnings: list[str]
    notes: list[str]
    user: str
    state: Path
    push: bool  # [archive] push: ssh wants a key in the service user's home


def render(settings_file: Path) -> Rendered:
    """The unit for `settings_file`, with what the admin needs to know about it."""
    template = TEMPLATE.read_text(encoding="utf-8")
    state = Path("/var/lib") / directive(template, "StateDirectory").split()[0]
    user = directive(template, "User")
    os.environ["STATE_DIRECTORY"] = str(state)  # as systemd sets it: state paths resolve there
    settings_file = Path(os.path.abspath(settings_file))
    settings = load_settings(settings_file)
    writable, readable, warnings = unit_paths(settings, state)

    everything = [*writable, *readable]
    odd = [str(p) for p in everything if any(ord(c) < 32 or c == "\x7f" for c in str(p))]
    if odd:
        raise UnitError(f"{odd[0]!r}: a control character cannot go in a unit file")
    homes = [p for p in everything if under(p, HOMES)]
    in_tmp = [p for p in everything if under(p, PRIVATE_TMP)]
    if in_tmp:
        more = f" (and {len(in_tmp) - 1} more)" if len(in_tmp) > 1 else ""
        warnings.append(
            f"{in_tmp[0]}{more}: the service has its own empty {under(in_tmp[0], PRIVATE_TMP)} "
            "(PrivateTmp=yes) and will not find it there"
        )
    warnings += reach_warnings(everything, user)

    program = Path(sys.prefix) / "bin" / "newsletter"
    unit = template
    header = (
        f"# Rendered by systemd/render_unit.py from {TEMPLATE}\n"
        f"# for {settings_file}; run `make install-service` again after changing it.\n"
    )
    unit = header + unit
    documentation = (CHECKOUT / "docs" / "service.md").as_uri().replace("%", "%%")
    unit = set_directive(unit, "Documentation", documentation)
    unit = set_directive(unit, "WorkingDirectory", str(settings_file.parent).replace("%", "%%"))
    unit = set_directive(
        unit,
        "ExecStart",
        f"{quoted(program, True)} --settings {quoted(settings_file, True)} run",
    )
    unit = set_directive(unit, "ReadWritePaths", " ".join(quoted(p) for p in writable))
    unit = set_directive(unit, "ProtectHome", "read-only" if homes else "yes")
    notes = []
    if homes:
        notes.append(
            f"ProtectHome=read-only, not yes: {homes[0]} is under {under(homes[0], HOMES)}; "
            "the service can read the home folders, and write only its ReadWritePaths there"
        )
    return Rendered(unit, writable, warnings, notes, user, state, settings.archive.push)


def next_steps(unit_file: Path, settings_file: Path, rendered: Rendered) -> str:
    user, state = rendered.user, rendered.state
    if rendered.writable:
        owned = f"chown -R {user}: " + " ".join(shlex.quote(str(p)) for p in rendered.writable)
    else:
        owned = f"none: everything it writes is in {state}"
    lines = [
        f"Installed {unit_file} for {os.path.abspath(settings_file)}. Next steps (as root):",
        f"  1. A system user:  useradd --system --home-dir {state} "
        f"--shell /usr/sbin/nologin {user}",
        f"  2. Its folders:    {owned}",
    ]
    if rendered.push:
        lines.append(
            f"                     and for [archive] push over ssh: its key and known_hosts "
            f"in {state}/.ssh, owned by {user}"
        )
    return "\n".join(
        [
            *lines,
            "  3. SMTP password, if the relay wants a login:\n"
            "                     install -d -m 0700 /etc/newsletter && "
            "install -m 0600 /dev/stdin /etc/newsletter/smtp-password",
            '                     and in the settings: [smtp] password_file = "smtp-password"',
            "  4. Start it:       systemctl daemon-reload && systemctl enable --now newsletter",
            "  5. Watch it:       systemctl status newsletter; journalctl -u newsletter -f",
            f"  Check it:          systemd-analyze security {unit_file.name}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", required=True, type=Path)
    parser.add_argument("--output", type=Path, help="write the unit here (default: stdout)")
    args = parser.parse_args(argv)
    try:
        rendered = render(args.settings)
    except (ConfigError, UnitError) as err:
        print(f"install-service: {err}", file=sys.stderr)
        return 1
    for warning in rendered.warnings:
        print(f"install-service: warning: {warning}", file=sys.stderr)
    for note in rendered.notes:
        print(f"install-service: {note}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(rendered.unit)
        return 0
    try:
        args.output.write_text(rendered.unit, encoding="utf-8")
    except OSError as err:
        print(f"install-service: {args.output}: {err.strerror}", file=sys.stderr)
        return 1
    print(next_steps(args.output, args.settings, rendered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
