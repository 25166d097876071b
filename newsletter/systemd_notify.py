"""The systemd notify protocol: READY, STATUS, WATCHDOG and STOPPING datagrams.

Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every call is
a no-op, so the daemon behaves the same from a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self.address = address
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_interval = int(usec) / 2_000_000 if watched else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        payload = "\n".join(fields).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._socket.sendto(payload, self.address)
            except OSError as err:
                log.debug("systemd notify failed: %s", err)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def ping(self) -> None:
        self.send("WATCHDOG=1")

    def start_watchdog(
        self,
        stop: threading.Event,
        heartbeat: Callable[[], float] = time.monotonic,
        quiet_limit: float = float("inf"),
    ) -> threading.Thread | None:
        """Ping at half of WATCHDOG_USEC from a thread, but only while the main loop shows
        progress: `heartbeat()` is the monotonic time it last did, and after `quiet_limit`
        seconds without any the pings stop, so systemd sees the hang and restarts us. A
        thread, so that one long step (each has its own timeout) is not taken for a hang."""
        if self.watchdog_interval is None or not self.address:
            return None
        interval = self.watchdog_interval

        def loop() -> None:
            silent = False
            while not stop.wait(interval):
                quiet = time.monotonic() - heartbeat()
                if quiet < quiet_limit:
                    self.ping()
                    silent = False
                elif not silent:
                    log.error(
                        "no progress for %.0f s: the daemon seems stuck; watchdog pings stop, "
                        "so systemd restarts it",
                        quiet,
                    )
                    silent = True

        thread = threading.Thread(target=loop, name="watchdog", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
