"""The systemd unit and the Makefile: what `make install-service` writes for a settings
file, that systemd accepts it and rates it, that the daemon runs under its syscall
filter, and that each make target installs what it needs."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from arxiv_server import entry
from conftest import REPO, cli_command, cli_env, subscribe
from git_repos import Remote, isolate_git
from mails import INBOX, deliver, mail, make_maildir

TEMPLATE = REPO / "systemd" / "newsletter.service"
RENDER = REPO / "systemd" / "render_unit.py"
PROGRAM = Path(sys.prefix) / "bin" / "newsletter"  # what ExecStart runs: this venv's
MAX_EXPOSURE = 2.5
HOMES = ("/home", "/root", "/run/user")

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def render(settings: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RENDER), "--settings", str(settings), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def directive(unit: str, key: str) -> str:
    values = re.findall(rf"^{key}=(.*)$", unit, flags=re.MULTILINE)
    assert len(values) == 1, f"{key}= {values}"
    return values[0]


def verify(unit_file: Path) -> None:
    if not PROGRAM.exists():
        pytest.skip(f"systemd-analyze verify needs ExecStart's {PROGRAM}")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def exposure(unit_file: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit_file)],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


def home_python() -> bool:
    """Whether this venv's Python lives under /home, /root or /run/user."""
    places = (REPO, Path(sys.executable).resolve(), Path(sys.base_prefix).resolve())
    return any(str(p) == h or str(p).startswith(h + "/") for p in places for h in HOMES)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A list's folder (with a space in its name) and its settings.toml: the archive in a
    git repository `repo`, an inbox Maildir, and the state where systemd puts it."""
    folder = tmp_path / "my list"
    (folder / "repo" / "archive").mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", str(folder / "repo")], check=True)
    (folder / "subscribers").mkdir()
    make_maildir(folder / "Maildir")
    (folder / "settings.toml").write_text(
        'keywords = [{ name = "MLLM" }]\n'
        '[archive]\npath = "repo/archive/README.md"\ngit = true\n'
        '[subscribers]\ndir = "subscribers"\n'
        '[digest]\nfrom = "Daily Papers <papers@example.org>"\n'
        f'[inbox]\naddress = "{INBOX}"\nmaildir = "Maildir"\n'
    )
    return folder


@needs_analyze
def test_the_unit_follows_the_settings_file_and_systemd_rates_it_ok(site, tmp_path):
    result = render(site / "settings.toml")
    assert result.returncode == 0, result.stderr
    unit = result.stdout
    assert directive(unit, "ExecStart") == (f'{PROGRAM} --settings "{site / "settings.toml"}" run')
    assert directive(unit, "WorkingDirectory") == str(site)
    assert directive(unit, "Documentation") == (REPO / "docs" / "service.md").as_uri()
    # The archive folder is inside the repository, which git writes whole (a rebase
    # updates the work tree); the state stays in StateDirectory=, so it is not listed.
    assert shlex.split(directive(unit, "ReadWritePaths")) == [
        str(site / "subscribers"),
        str(site / "Maildir"),
        str(site / "repo"),
    ]
    assert directive(unit, "ProtectHome") == ("read-only" if home_python() else "yes")
    # The service sees its own /tmp: said, since nothing in the unit can fix it.
    assert "the service has its own empty /tmp (PrivateTmp=yes)" in result.stderr

    unit_file = tmp_path / "newsletter.service"
    unit_file.write_text(unit)
    verify(unit_file)
    assert exposure(unit_file) <= MAX_EXPOSURE
    # The other choice of ProtectHome= rates as well.
    chosen = directive(unit, "ProtectHome")
    other = "yes" if chosen == "read-only" else "read-only"
    unit_file.write_text(unit.replace(f"\nProtectHome={chosen}\n", f"\nProtectHome={other}\n"))
    assert exposure(unit_file) <= MAX_EXPOSURE, f"with ProtectHome={other}"


@needs_analyze
def test_the_checkouts_own_settings_give_a_unit_that_verifies(tmp_path):
    result = render(REPO / "settings.toml")
    assert result.returncode == 0, result.stderr
    unit = result.stdout
    assert shlex.split(directive(unit, "ReadWritePaths")) == [
        str(REPO / "archive"),
        str(REPO / "subscribers"),
    ]
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=newsletter",
        "LoadCredential=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "PrivateUsers=yes",
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
        "Restart=on-failure",
    ):
        assert line in unit
    unit_file = tmp_path / "newsletter.service"
    unit_file.write_text(unit)
    verify(unit_file)


def test_state_files_elsewhere_are_listed_and_a_missing_folder_is_refused(site):
    settings = site / "settings.toml"
    text = settings.read_text()
    settings.write_text(text + f'[store]\npath = "{site / "state" / "newsletter.json"}"\n')
    result = render(settings)
    assert result.returncode == 1
    assert f"{site / 'state'}: no such folder; create it" in result.stderr

    (site / "state").mkdir()
    result = render(settings)
    assert result.returncode == 0, result.stderr
    assert str(site / "state") in shlex.split(directive(result.stdout, "ReadWritePaths"))


def test_git_without_a_repository_is_refused(tmp_path):
    (tmp_path / "archive").mkdir()
    (tmp_path / "settings.toml").write_text(
        'keywords = [{ name = "MLLM" }]\n[archive]\ngit = true\n'
        '[digest]\nfrom = "Daily Papers <papers@example.org>"\n'
    )
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(RENDER), "--settings", str(tmp_path / "settings.toml")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1
    assert f"[archive] git = true, but {tmp_path / 'archive'} is not in a git repository" in (
        result.stderr
    )


def test_invalid_settings_are_one_line():
    result = render(Path("/nonexistent/settings.toml"))
    assert result.returncode == 1
    assert result.stderr.startswith("install-service: /nonexistent/settings.toml: settings file")


# --- make ---------------------------------------------------------------------------


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_make
def test_make_install_service_writes_the_unit_and_prints_the_next_steps(site, tmp_path):
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the checkout's .venv (make install)")
    units = tmp_path / "units"
    units.mkdir()
    # -o: the venv is there already; a test does not run pip.
    result = make(
        "-o", ".venv/.installed-runtime", "install-service",
        f"UNIT_DIR={units}", f"SETTINGS={site / 'settings.toml'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    unit = (units / "newsletter.service").read_text()
    assert unit == render(site / "settings.toml").stdout
    out = result.stdout
    assert f"Installed {units / 'newsletter.service'} for {site / 'settings.toml'}." in out
    assert "useradd --system --home-dir /var/lib/newsletter" in out
    paths = " ".join(shlex.quote(str(site / p)) for p in ("subscribers", "Maildir", "repo"))
    assert f"chown -R newsletter: {paths}" in out
    assert "systemctl daemon-reload && systemctl enable --now newsletter" in out


@needs_make
def test_each_make_target_installs_what_it_needs(tmp_path):
    venv = tmp_path / "venv"

    def dry(target: str) -> str:
        result = make("-n", target, f"VENV={venv}")
        assert result.returncode == 0, result.stderr
        return result.stdout

    # From nothing: a venv, then the runtime alone or with the extra the target needs.
    assert f"-m venv {venv}" in dry("test")
    assert re.search(r"pip install .* -e \.$", dry("install"), flags=re.MULTILINE)
    assert "[test]" not in dry("install") and "[test]" not in dry("install-service")
    assert "-e '.[test]'" in dry("test") and "pytest" in dry("test")
    assert "-e '.[test]'" in dry("bench")
    assert "-e '.[dev]'" in dry("lint") and "[test]" not in dry("lint")

    # After `make test`: the runtime is there too; lint still needs the dev extra.
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed-runtime").touch()
    (venv / ".installed-test").touch()
    assert "pip" not in dry("install") and "pip" not in dry("test")
    assert "-e '.[dev]'" in dry("lint")
    # After `make install` alone: test installs its extra.
    (venv / ".installed-test").unlink()
    assert "-e '.[test]'" in dry("test")


# --- the syscall filter --------------------------------------------------------------

SECCOMP = ctypes.util.find_library("seccomp")
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_CMP_MASKED_EQ = 7
# Allowed by systemd with any SystemCallFilter= allow list (systemd.exec(5)).
IMPLICIT = {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"}
IMPLICIT |= {"clock_getres", "clock_gettime", "clock_nanosleep", "gettimeofday", "nanosleep"}
IMPLICIT |= {"time"}


class ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def syscall_set(name: str) -> set[str]:
    """The system calls of a group like @system-service, nested groups expanded."""
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:
        word = line.strip()
        if word.startswith("@"):
            calls |= syscall_set(word)
        elif word and not word.startswith("#"):
            calls.add(word)
    return calls


def unit_filter(unit: str) -> set[str]:
    """What the unit's SystemCallFilter= lines allow, in order (~ takes away)."""
    allowed = set(IMPLICIT)
    for line in re.findall(r"^SystemCallFilter=(.*)$", unit, flags=re.MULTILINE):
        deny = line.startswith("~")
        groups = set().union(*(syscall_set(w) for w in line.lstrip("~").split()))
        allowed = allowed - groups if deny else allowed | groups
    return allowed


def sandbox_exec(allowed: list[str], deny_write_execute: bool, command: list[str]) -> None:
    """Load the filters, as systemd would, then exec `command`. Stricter than the unit:
    a call outside the list kills the process instead of failing with EPERM, so none
    can go unnoticed."""
    lib = ctypes.CDLL(SECCOMP)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p
    ]  # fmt: skip
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    if deny_write_execute:  # MemoryDenyWriteExecute=yes, as systemd implements it
        mdwe = lib.seccomp_init(SCMP_ACT_ALLOW)
        prot_write, prot_exec, shm_exec = 2, 4, 0o100000
        for call, mask in (
            ("mmap", prot_write | prot_exec),
            ("mprotect", prot_exec),
            ("pkey_mprotect", prot_exec),
            ("shmat", shm_exec),
        ):
            number = lib.seccomp_syscall_resolve_name(call.encode())
            rule = ArgCmp(2, SCMP_CMP_MASKED_EQ, mask, mask)
            assert not lib.seccomp_rule_add_array(
                mdwe, SCMP_ACT_KILL_PROCESS, number, 1, ctypes.byref(rule)
            )
        assert not lib.seccomp_load(mdwe)
    context = lib.seccomp_init(SCMP_ACT_KILL_PROCESS)
    for call in allowed:
        number = lib.seccomp_syscall_resolve_name(call.encode())
        if number >= 0:  # names of other architectures resolve to nothing
            assert not lib.seccomp_rule_add_array(context, SCMP_ACT_ALLOW, number, 0, None)
    assert not lib.seccomp_load(context)  # last: seccomp() itself is not on the list
    os.execvp(command[0], command)


def sandboxed(unit: str, *args: str) -> list[str]:
    """The command line that runs `newsletter ARGS` under the unit's filters."""
    deny = directive(unit, "MemoryDenyWriteExecute") == "yes"
    calls = ",".join(sorted(unit_filter(unit)))
    launcher = f"from test_service import sandbox_exec as s; import sys; s({calls!r}.split(','),"
    launcher += f" {deny}, sys.argv[1:])"
    return [sys.executable, "-c", launcher, *cli_command(*args)]


@needs_analyze
@pytest.mark.skipif(SECCOMP is None, reason="libseccomp not installed")
def test_a_cycle_and_an_inbox_poll_run_under_the_units_syscall_filter(
    make_settings, arxiv_server, smtp_server, tmp_path, monkeypatch
):
    """Fetch, archive, git commit and push, digests over SMTP, and a Maildir poll with a
    reply: every system call they make (git's too) is in the unit's filter, and nothing
    needs writable executable memory (MemoryDenyWriteExecute=)."""
    isolate_git(monkeypatch, tmp_path / "home")
    remote = Remote.create(tmp_path)
    settings = make_settings(
        keywords=["MLLM"],
        archive={"path": str(remote.site / "README.md"), "git": True, "push": True},
        inbox={"address": INBOX, "maildir": str(tmp_path / "Maildir")},
    )
    box = make_maildir(tmp_path / "Maildir")
    subscribe(settings, "ann@example.org", "MLLM")
    arxiv_server.add(entry("2503.00001", "MLLM one"))
    unit = TEMPLATE.read_text()
    env = cli_env({"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])})

    cycle = subprocess.run(
        sandboxed(unit, "--settings", str(settings.file), "run", "--once"),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert cycle.returncode == 0, cycle.stderr
    assert "pushed 1 commit to origin/main" in cycle.stdout + cycle.stderr
    assert len(remote.log()) == 2
    assert [m.to for m in smtp_server.messages] == ["ann@example.org"]

    deliver(box, mail("ben@example.org", "help"))
    poll = subprocess.run(
        sandboxed(unit, "--settings", str(settings.file), "inbox", "--once"),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert poll.returncode == 0, poll.stderr
    assert poll.stdout.startswith("inbox: read 1, acted on 1"), poll.stdout
    assert smtp_server.messages[-1].to == "ben@example.org"
