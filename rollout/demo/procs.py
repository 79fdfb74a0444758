"""Start and stop local helper processes (Prometheus, HAProxy, model servers) on loopback.

Every process is started here in its own session and stopped by the pid we
started, never by name: a machine may run other Prometheus or HAProxy instances.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessError(RuntimeError):
    """A helper process failed to start or died; the message carries its log tail."""


class ManagedProcess:
    """A child process with its output in a log file, stopped by its own pid."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ProcessError(f"{self.name} is not started")
        return self.process.pid

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                cwd=self.cwd,
                start_new_session=True,  # Ctrl-C on the terminal reaches us, not the children
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """Poll `ready` until it holds; fail early, with the log tail, if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.1)
        raise ProcessError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        def ok() -> bool:
            return httpx.get(url, timeout=1.0).status_code < 500

        self.wait_until(ok, timeout)

    def kill(self) -> None:
        """SIGKILL, for fault tests: the process gets no chance to clean up."""
        if self.alive() and self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM our pid, then SIGKILL after `grace` seconds; reap it."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=grace)

    def __enter__(self) -> ManagedProcess:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# A process recorded in a pid file is stopped later by another command (`rollout sandbox
# down`): by then its pid may belong to someone else. It is ours only while its start time
# and command line are still the ones recorded when we started it.


EXEC_SETTLE_TRIES = 100  # 1 s; a kernel thread's command stays empty, and that is its identity


def process_identity(pid: int) -> str | None:
    """The process's start time and command line, or None when no live process has `pid`.

    Linux reads /proc (start time in clock ticks since boot); elsewhere `ps`. A zombie
    (exited, not yet reaped) has no identity: it is gone for our purposes.
    """
    proc = Path("/proc") / str(pid)
    if Path("/proc/self/stat").exists():
        try:
            stat = (proc / "stat").read_text()
            fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state is fields[0]
            if not fields or fields[0] in ("Z", "X"):
                return None
            cmdline = (proc / "cmdline").read_bytes()
            # Popen returns once exec has closed its pipe, which the kernel does before it
            # lays out the new arguments: a process read right then has an empty command.
            for _ in range(EXEC_SETTLE_TRIES):
                if cmdline:
                    break
                time.sleep(0.01)
                cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            return None
        command = " ".join(part.decode(errors="replace") for part in cmdline.split(b"\0") if part)
        return f"{fields[19]} {command}"  # starttime is the 22nd field of stat
    try:
        done = subprocess.run(
            ["ps", "-o", "stat=", "-o", "lstart=", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = done.stdout.strip()
    if done.returncode != 0 or not line or line.startswith("Z"):
        return None
    return line.split(None, 1)[1] if " " in line else line


def stop_recorded(pid: int, identity: str, grace: float = 10.0) -> bool:
    """Stop the process `pid` if it is still the one recorded as `identity` (SIGTERM, then
    SIGKILL after `grace` seconds) and wait until it is gone; True when it was stopped here,
    False when it was not running (or the pid now names another process, left alone)."""
    if process_identity(pid) != identity:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for sig in (signal.SIGKILL, None):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if process_identity(pid) != identity:
                return True
            time.sleep(0.1)
        if sig is not None and process_identity(pid) == identity:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    if process_identity(pid) == identity:
        raise ProcessError(f"process {pid} did not exit after SIGKILL")
    return True
