"""A tap on HAProxy's runtime API: a unix socket that forwards each command to the real one.

The router talks to the tap as to HAProxy (one command per connection, answer, close).
Once a command matching `trip_on` has reached HAProxy, every later command waits until
`release()`: a test can kill `rollout run` right after HAProxy applied a weight and
before the run hears the read-back, whatever the process' timing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path


class AdminTap:
    def __init__(self, target: Path) -> None:
        self.target = target
        self._dir = Path(tempfile.mkdtemp(prefix="rollout-tap-"))
        self.path = self._dir / "tap.sock"
        self.trip_on: Callable[[str], bool] | None = None
        self.tripped = threading.Event()
        self.released = threading.Event()
        self.released.set()
        self.commands: list[str] = []
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def arm(self, trip_on: Callable[[str], bool]) -> None:
        """Hold every command after the first one matching `trip_on` reached HAProxy."""
        self.tripped.clear()
        self.released.clear()
        self.trip_on = trip_on

    def release(self) -> None:
        self.trip_on = None
        self.released.set()

    def start(self) -> AdminTap:
        tap = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                command = self.rfile.readline()
                if tap.tripped.is_set():
                    tap.released.wait(timeout=120)
                answer = tap._forward(command)
                text = command.decode(errors="replace").strip()
                tap.commands.append(text)
                if tap.trip_on is not None and tap.trip_on(text):
                    tap.tripped.set()
                with contextlib.suppress(OSError):  # the run was killed meanwhile
                    self.wfile.write(answer)

        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _forward(self, command: bytes) -> bytes:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
                upstream.settimeout(5.0)
                upstream.connect(str(self.target))
                upstream.sendall(command)
                chunks = []
                while chunk := upstream.recv(4096):
                    chunks.append(chunk)
                return b"".join(chunks)
        except OSError:
            return b"tap: HAProxy is unreachable\n"  # any answer to `set weight` is a refusal

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)
