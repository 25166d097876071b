"""The systemd notify protocol: READY, STATUS, WATCHDOG and STOPPING datagrams.

Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every call is
a no-op, so the daemon behaves the same from a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

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

    def start_watchdog(self, stop: threading.Event) -> threading.Thread | None:
        """Ping at half of WATCHDOG_USEC from a thread, so a long cycle (minutes of
        fetching and sending, each step with its own timeout) is not mistaken for a hang."""
        if self.watchdog_interval is None or not self.address:
            return None
        interval = self.watchdog_interval

        def loop() -> None:
            while not stop.wait(interval):
                self.ping()

        thread = threading.Thread(target=loop, name="watchdog", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
